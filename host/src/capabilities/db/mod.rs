//! `selfdb:platform/db`: SQL in the invocation's transaction, opened with
//! the caller's role and claims so row-level security holds whatever the
//! component does.

pub(super) mod convert;
mod host_impl;

use super::{Capability, FinishError, Prepare};
use crate::db::invocation::InvocationTx;
use crate::db::Database;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the platform database.
pub struct Db {
    database: Database,
}

impl Db {
    pub fn new(database: Database) -> Self {
        Self { database }
    }
}

/// Per invocation: the transaction as the caller.
pub struct DbState {
    tx: InvocationTx,
}

impl Capability for Db {
    type State = DbState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut DbState,
    ) -> wasmtime::Result<()> {
        super::bindings::db::add_to_linker::<T, HasSelf<DbState>>(linker, get)?;
        // `events.publish` writes in the same transaction.
        super::bindings::events::add_to_linker::<T, HasSelf<DbState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> DbState {
        let tx = match cx.external {
            Some(external) => InvocationTx::external(
                external.pool().clone(),
                external.transaction_pooling(),
                cx.function.limits.time_ms,
            ),
            None => InvocationTx::new(
                self.database.clone(),
                cx.principal.clone(),
                cx.function.limits.time_ms,
            ),
        };
        DbState { tx }
    }

    async fn finish(state: &mut DbState, success: bool) -> Result<(), FinishError> {
        finish_tx(&mut state.tx, success).await
    }
}

/// Commits or rolls back one of the invocation's transactions.
pub(super) async fn finish_tx(tx: &mut InvocationTx, success: bool) -> Result<(), FinishError> {
    tx.finish(success)
        .await
        .map(drop)
        .map_err(|err| FinishError(err.message))
}
