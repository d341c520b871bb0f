//! The WebAssembly component runtime: two engines per process (component
//! model, pooling allocator, epoch interruption; functions' without
//! concurrency support, Spin apps' with it: see `engine`), compiled components cached
//! on disk, one pre-instantiated component per deployed version and a fresh
//! `Store` per invocation, capped in memory and time.

pub mod cache;
pub mod engine;
pub mod event;
pub mod invoke;
pub mod limits;
pub mod registry;
pub mod spin;

/// System components embedded at build time (see `host/build.rs`).
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/system_components.rs"));
}

pub use engine::{Compiled, Runtime, RuntimeError};
pub use event::EventError;
pub use invoke::{Invocation, InvokeError, Invoked, Report, RequestBody};
pub use registry::Deployed;
