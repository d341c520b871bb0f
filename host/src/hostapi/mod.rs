//! Host implementations of the `selfdb:platform` WIT interfaces that
//! components import. Each module implements one interface on the
//! invocation's store state.

mod auth_db;
mod config;
mod context;
mod db;
mod log;
mod mailer;
mod passwords;
mod rate_limit;
mod schema;
mod tokens;

use crate::runtime::state::InvocationState;
use wasmtime::component::{HasSelf, Linker};

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
/// A system component's `handler` export, ready to instantiate.
pub use self::SystemHostPre as RecordHandlerPre;

pub use self::selfdb::platform::db::{Column, DbError, RowSet, Value};

/// Adds the interfaces every component may import.
pub fn add_platform(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    self::selfdb::platform::db::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::config::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::log::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::context::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// Adds the privileged interfaces only system components may import.
pub fn add_privileged(linker: &mut Linker<InvocationState>) -> wasmtime::Result<()> {
    self::selfdb::platform::tokens::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::auth_db::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::passwords::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::rate_limit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::mailer::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    self::selfdb::platform::schema::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}
