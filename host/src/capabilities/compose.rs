//! Where the runtime is composed: every capability, in the set that links
//! it. The macro below turns each list into the per-process set (the
//! capabilities' values), the per-invocation set (their states), and the
//! code that links, prepares and finishes them all.

use super::wasi::WasiState;
use super::{
    auth_db, config, context, db, log, mailer, passwords, rate_limit, schema, script, tokens,
};
use super::{Capability, FinishError, Prepare};
use crate::auth::rate_limit::RateLimiter;
use crate::auth::JwtKeys;
use crate::db::schema::SharedSchema;
use crate::db::Database;
use crate::runtime::limits::MemoryLimiter;
use std::future::Future;
use std::sync::Arc;
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

/// Declares a set of capabilities: `Set` (their per-process values),
/// `SetState` (their per-invocation states) and how to link, prepare and
/// finish them.
macro_rules! capability_set {
    ($(#[$doc:meta])* $set:ident, $state:ident, $services:ident {
        $($name:ident: $ty:ty = $init:expr,)*
    }) => {
        $(#[$doc])*
        pub struct $set {
            $(pub $name: $ty,)*
        }

        /// One invocation's state of each capability in the set.
        pub struct $state {
            $(pub $name: <$ty as Capability>::State,)*
        }

        impl $set {
            /// Builds every capability of the set from the host's services.
            pub fn new($services: &Services) -> Self {
                Self {
                    $($name: $init,)*
                }
            }

            /// Links every interface of the set.
            pub fn link<T: HasSet<$state>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
                $(<$ty as Capability>::link(linker, |store: &mut T| &mut store.set().$name)?;)*
                Ok(())
            }

            /// Builds the states of one invocation.
            pub fn prepare(&self, cx: &Prepare<'_>) -> $state {
                $state {
                    $($name: self.$name.prepare(cx),)*
                }
            }
        }

        impl FinishSet for $state {
            async fn finish(&mut self, success: bool) -> Vec<FinishError> {
                let mut failures = Vec::new();
                $(
                    if let Err(err) = <$ty as Capability>::finish(&mut self.$name, success).await {
                        failures.push(err);
                    }
                )*
                failures
            }
        }
    };
}

// One line per capability: its field, its type, and how its per-process
// value is built from the host's services.
capability_set! {
    /// The capabilities every component links.
    Platform, PlatformState, services {
        db: db::Db = db::Db::new(services.db.clone()),
        config: config::Config = config::Config,
        log: log::Log = log::Log,
        context: context::Context = context::Context,
        script: script::Script = script::Script,
    }
}

capability_set! {
    /// The capabilities only system components (auth, crud) link.
    Privileged, PrivilegedState, services {
        tokens: tokens::Tokens = tokens::Tokens::new(services.keys.clone()),
        auth_db: auth_db::AuthDb = auth_db::AuthDb::new(services.db.clone()),
        passwords: passwords::Passwords = passwords::Passwords,
        rate_limit: rate_limit::RateLimit = rate_limit::RateLimit::new(services.limiter.clone()),
        mailer: mailer::Mailer = mailer::Mailer::new(services.mailer.clone()),
        schema: schema::Schema = schema::Schema::new(services.schema.clone()),
    }
}

/// The host's services the capabilities are built from, started by
/// `server` in its phases.
pub struct Services {
    pub db: Database,
    pub keys: JwtKeys,
    pub limiter: Arc<RateLimiter>,
    pub mailer: Arc<crate::auth::mailer::Mailer>,
    pub schema: Arc<SharedSchema>,
    /// The host's data directory (Spin apps' SQLite files).
    pub data_dir: std::path::PathBuf,
}

/// Every capability's per-process value, owned by the runtime.
pub struct Capabilities {
    pub platform: Platform,
    pub privileged: Privileged,
    /// Spin's interfaces, for Spin apps.
    pub spin: super::spin::SpinServices,
}

impl Capabilities {
    pub fn new(services: &Services) -> Self {
        Self {
            platform: Platform::new(services),
            privileged: Privileged::new(services),
            spin: super::spin::SpinServices::new(services.db.clone(), &services.data_dir),
        }
    }
}

/// What one invocation's `Store` holds: WASI with every capability denied,
/// the memory cap, the platform capabilities' states, and `P`: the
/// privileged capabilities' states for a system component, nothing for a
/// user function.
pub struct InvocationState<P> {
    pub wasi: WasiState,
    pub limiter: MemoryLimiter,
    pub platform: PlatformState,
    pub privileged: P,
}

/// A user function's store state.
pub type UserState = InvocationState<()>;
/// A system component's store state.
pub type SystemState = InvocationState<PrivilegedState>;

/// A store state that holds the set `S`: how the set's capabilities find
/// their states in it.
pub trait HasSet<S>: Send + 'static {
    fn set(&mut self) -> &mut S;
}

impl<P: Send + 'static> HasSet<PlatformState> for InvocationState<P> {
    fn set(&mut self) -> &mut PlatformState {
        &mut self.platform
    }
}

impl HasSet<PrivilegedState> for SystemState {
    fn set(&mut self) -> &mut PrivilegedState {
        &mut self.privileged
    }
}

/// Ends every state of a set when the invocation is over.
pub trait FinishSet: Send + 'static {
    /// The failures, if any; every state is finished either way.
    fn finish(&mut self, success: bool) -> impl Future<Output = Vec<FinishError>> + Send;
}

/// A user function holds no privileged state.
impl FinishSet for () {
    async fn finish(&mut self, _success: bool) -> Vec<FinishError> {
        Vec::new()
    }
}

impl<P: Send + 'static> WasiView for InvocationState<P> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx_view()
    }
}

impl<P: Send + 'static> WasiHttpView for InvocationState<P> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.wasi.http_view()
    }
}
