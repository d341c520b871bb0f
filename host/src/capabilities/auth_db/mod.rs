//! Privileged `selfdb:platform/auth-db`: SQL as `supabase_auth_admin`, the
//! role owning the `auth` schema, in a transaction of its own that ends
//! with the invocation like the caller's.

mod host_impl;

use super::db::finish_tx;
use super::{Capability, FinishError, Prepare};
use crate::db::invocation::InvocationTx;
use crate::db::Database;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the platform database.
pub struct AuthDb {
    database: Database,
}

impl AuthDb {
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

/// Per invocation: the transaction as `supabase_auth_admin`.
pub struct AuthDbState {
    tx: InvocationTx,
}

impl Capability for AuthDb {
    type State = AuthDbState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut AuthDbState,
    ) -> wasmtime::Result<()> {
        super::bindings::auth_db::add_to_linker::<T, HasSelf<AuthDbState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> AuthDbState {
        AuthDbState {
            tx: InvocationTx::auth_admin(&self.database, cx.function.limits.time_ms),
        }
    }

    async fn finish(state: &mut AuthDbState, success: bool) -> Result<(), FinishError> {
        finish_tx(&mut state.tx, success).await
    }
}
