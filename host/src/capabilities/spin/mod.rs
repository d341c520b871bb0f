//! Spin's interfaces, served to Spin apps: one module per interface
//! family, each serving every version spin-sdk 5.x and 7.x components
//! import (see `wit-spin/`). Only Spin apps link them, and a Spin app's
//! store holds their states in the slot a system component keeps its
//! privileged ones ([`SpinState`]).
//!
//! - [`key_value`]: stores in PostgreSQL, shared by every host;
//! - [`variables`]: the component's variables, rendered at load;
//! - [`refused`]: MQTT, MySQL and LLM, answered with each interface's
//!   own "not supported" error.

pub mod bindings;
pub mod key_value;
pub mod refused;
pub mod variables;

use super::compose::{FinishSet, HasSet};
use super::{FinishError, InvocationState};
use crate::db::Database;
use crate::spin::ComponentSpec;
use std::sync::Arc;
use wasmtime::component::Linker;

/// Per process: what the Spin capabilities are built from.
pub struct SpinServices {
    db: Database,
}

impl SpinServices {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The states of one invocation of `spec`'s component.
    pub fn prepare(&self, spec: &Arc<ComponentSpec>) -> SpinHost {
        SpinHost {
            key_value: key_value::KeyValueState::new(spec.clone(), self.db.owner().clone()),
            variables: variables::VariablesState::new(spec.clone()),
            refused: refused::Refused,
        }
    }
}

/// One invocation's Spin states.
pub struct SpinHost {
    pub key_value: key_value::KeyValueState,
    pub variables: variables::VariablesState,
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
    /// Nothing to end: key-value writes committed as they were made.
    async fn finish(&mut self, _success: bool) -> Vec<FinishError> {
        Vec::new()
    }
}

/// Links every Spin interface.
pub fn link<T: HasSet<SpinHost>>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    key_value::link(linker, |s: &mut T| &mut s.set().key_value)?;
    variables::link(linker, |s: &mut T| &mut s.set().variables)?;
    refused::link(linker, |s: &mut T| &mut s.set().refused)
}
