//! Host capabilities: what a component can ask of the host, one folder per
//! WIT interface (after Spin's factors). Each capability is built in three
//! steps:
//!
//! 1. **link**: [`Capability::link`] adds its interfaces to a linker, given
//!    a function that narrows the store to the capability's own state, so
//!    its WIT traits are implemented on that narrow type, never on the
//!    whole store;
//! 2. **per process**: the capability value itself (a pool, keys, a
//!    mailer), built once at start-up and owned by the runtime;
//! 3. **per invocation**: [`Capability::prepare`] builds the state one
//!    invocation's store holds, and [`Capability::finish`] ends it (commits
//!    or rolls back) when the invocation is over.
//!
//! [`compose`] lists every capability in one place, in two sets: the
//! platform set every component links, and the privileged set only system
//! components link. A user function importing a privileged interface fails
//! to link, so no privileged implementation has a "not privileged" branch.
//!
//! To add a capability: write its interface in `wit/` (and add it to a world
//! in `wit/worlds.wit`), create `capabilities/<name>/` with a `mod.rs`
//! implementing [`Capability`] and a `host_impl.rs` implementing the
//! generated `Host` trait on its state, and add one line to the set in
//! [`compose`] that should link it (its field, its type, and how it is built
//! from the host's [`Services`]).

pub mod bindings;
pub mod compose;
pub mod spin;
pub mod wasi;

pub mod auth_db;
pub mod config;
pub mod context;
pub mod db;
pub mod log;
pub mod mailer;
pub mod passwords;
pub mod rate_limit;
pub mod schema;
pub mod script;
pub mod tokens;

use crate::auth::Principal;
use crate::runtime::Deployed;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use wasmtime::component::Linker;

pub use compose::{
    Capabilities, InvocationState, Platform, PlatformState, Privileged, PrivilegedState, Services,
    SystemState, UserState,
};

/// What a capability may build its per-invocation state from.
pub struct Prepare<'a> {
    /// The component being invoked: its name, limits and configuration.
    pub function: &'a Deployed,
    /// Who is calling, as the host verified it.
    pub principal: &'a Arc<Principal>,
    /// The host's id for this request, as it appears in the logs.
    pub request_id: &'a Arc<str>,
    /// The client's address as the host saw it.
    pub client_ip: Option<IpAddr>,
    /// A project's database, when the invocation serves a project: its SQL
    /// and schema are that database's.
    pub external: Option<&'a Arc<crate::db::external::ExternalDb>>,
}

/// Why ending an invocation's state failed (a commit that did not succeed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FinishError(pub String);

/// One host capability: its per-process value is `Self`.
pub trait Capability: Send + Sync + 'static {
    /// What one invocation's store holds for this capability: all its WIT
    /// implementations see.
    type State: Send + 'static;

    /// Adds the capability's interfaces to `linker`; `get` finds its state
    /// in the store.
    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut Self::State,
    ) -> wasmtime::Result<()>;

    /// Builds the state of one invocation.
    fn prepare(&self, cx: &Prepare<'_>) -> Self::State;

    /// Ends the invocation's state: keep its effects when `success`, undo
    /// them otherwise. Most capabilities hold nothing to end.
    fn finish(
        state: &mut Self::State,
        success: bool,
    ) -> impl Future<Output = Result<(), FinishError>> + Send {
        let _ = (state, success);
        async { Ok(()) }
    }
}
