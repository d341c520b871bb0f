//! The Rust bindings `bindgen!` generates from `wit/`, fenced off here so
//! capability code imports named types instead of reaching into generated
//! module paths.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "system-host",
    imports: {
        "selfdb:platform/db": async | trappable,
        "selfdb:platform/auth-db": async | trappable,
        "selfdb:platform/passwords": async | trappable,
        "selfdb:platform/mailer": async | trappable,
        "selfdb:platform/rate-limit": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use self::exports::selfdb::platform::handler::{
    Request as HandlerRequest, Response as HandlerResponse,
};
pub use self::selfdb::platform::*;
/// A system component's `handler` export, ready to instantiate.
pub use self::SystemHostPre as RecordHandlerPre;
