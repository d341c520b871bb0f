//! Spin's interfaces, served to Spin apps: one module per interface
//! family, each serving every version spin-sdk 5.x and 7.x components
//! import (see `wit-spin/`). Only Spin apps link them, and a Spin app's
//! store holds their states in the slot a system component keeps its
//! privileged ones ([`SpinState`]).
//!
//! - [`key_value`]: stores in PostgreSQL, shared by every host;
//! - [`variables`]: the component's variables, rendered at load;
//! - [`sqlite`]: a database file per app and label, on this host;
//! - [`postgres`]: SelfDB's own database as the caller (RLS applies), or
//!   other servers the manifest allows;
//! - [`redis`]: servers the manifest allows;
//! - [`refused`]: MQTT, MySQL and LLM, answered with each interface's
//!   own "not supported" error.

pub mod bindings;
mod handles;
pub mod key_value;
pub mod postgres;
pub mod redis;
pub mod refused;
pub mod sqlite;
pub mod variables;

use super::compose::{FinishSet, HasSet};
use super::{FinishError, InvocationState, Prepare};
use crate::db::Database;
use crate::spin::ComponentSpec;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Linker;

/// Per process: what the Spin capabilities are built from.
pub struct SpinServices {
    db: Database,
    /// Where apps' SQLite databases are (`{data dir}/spin/sqlite`).
    sqlite_dir: PathBuf,
}

impl SpinServices {
    pub fn new(db: Database, data_dir: &Path) -> Self {
        Self {
            db,
            sqlite_dir: data_dir.join("spin").join("sqlite"),
        }
    }

    /// The states of one invocation of `spec`'s component.
    pub fn prepare(&self, spec: &Arc<ComponentSpec>, cx: &Prepare<'_>) -> SpinHost {
        SpinHost {
            key_value: key_value::KeyValueState::new(spec.clone(), self.db.owner().clone()),
            variables: variables::VariablesState::new(spec.clone()),
            sqlite: sqlite::SqliteState::new(
                spec.clone(),
                self.sqlite_dir.clone(),
                cx.function.limits.time_ms,
            ),
            postgres: postgres::PostgresState::new(
                spec.clone(),
                &self.db,
                cx.principal.clone(),
                cx.function.limits.time_ms,
            ),
            redis: redis::RedisState::new(spec.clone(), cx.function.limits.memory_bytes),
            refused: refused::Refused,
        }
    }
}

/// One invocation's Spin states.
pub struct SpinHost {
    pub key_value: key_value::KeyValueState,
    pub variables: variables::VariablesState,
    pub sqlite: sqlite::SqliteState,
    pub postgres: postgres::PostgresState,
    pub redis: redis::RedisState,
    pub refused: refused::Refused,
}

/// A Spin app's store state.
pub type SpinState = InvocationState<SpinHost>;

impl HasSet<SpinHost> for SpinState {
    fn set(&mut self) -> &mut SpinHost {
        &mut self.privileged
    }
}

impl FinishSet for SpinHost {
    /// Ends the caller's PostgreSQL transaction; key-value and SQLite
    /// writes committed as they were made.
    async fn finish(&mut self, success: bool) -> Vec<FinishError> {
        match self.postgres.finish(success).await {
            Ok(()) => Vec::new(),
            Err(err) => vec![FinishError(err)],
        }
    }
}

/// Links every Spin interface.
pub fn link<T: HasSet<SpinHost>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    key_value::link(linker, |s: &mut T| &mut s.set().key_value)?;
    variables::link(linker, |s: &mut T| &mut s.set().variables)?;
    sqlite::link(linker, |s: &mut T| &mut s.set().sqlite)?;
    postgres::link(linker, |s: &mut T| &mut s.set().postgres)?;
    redis::link(linker, |s: &mut T| &mut s.set().redis)?;
    refused::link(linker, |s: &mut T| &mut s.set().refused)
}
