//! `selfdb:platform/config`: a component's own variables and secrets, as
//! the operator configured them for it.

mod host_impl;

use super::{Capability, Prepare};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: nothing; each deployed component carries its own table.
pub struct Config;

/// Per invocation: the invoked component's table.
pub struct ConfigState {
    values: Arc<BTreeMap<String, String>>,
}

impl Capability for Config {
    type State = ConfigState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut ConfigState,
    ) -> wasmtime::Result<()> {
        super::bindings::config::add_to_linker::<T, HasSelf<ConfigState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> ConfigState {
        ConfigState {
            values: cx.function.config.clone(),
        }
    }
}
