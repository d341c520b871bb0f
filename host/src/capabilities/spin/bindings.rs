//! The Rust bindings `bindgen!` generates from Spin's WIT (`wit-spin/`).
//! Every import is async (its implementation awaits the database or the
//! network) and trappable: each returns `wasmtime::Result<Result<T, E>>`,
//! where `E` is the interface's own error the guest sees and the outer
//! error traps (only for the host's own failures, such as a bad handle).

#![allow(clippy::all)]

wasmtime::component::bindgen!({
    path: "../wit-spin",
    world: "selfdb:spin/host",
    imports: { default: async | trappable },
});

pub use fermyon::spin as v2;
