//! The Rust bindings `bindgen!` generates from `wit/`, fenced off here so
//! capability code imports named types instead of reaching into generated
//! module paths.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "system-host",
    imports: {
        "selfdb:platform/db": async | trappable,
        "selfdb:platform/events": async | trappable,
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

/// The `listener` export of a function that runs on its own, bound apart:
/// a world with nothing but that export, so its bindings do not repeat the
/// platform's imports (those are linked through the world above).
pub mod listener {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "listener-export",
        exports: { default: async },
    });

    pub use self::exports::selfdb::platform::listener::{Event, EventKind};
    /// A component's `listener` export, ready to instantiate.
    pub use self::ListenerExportPre as ListenerPre;
}
