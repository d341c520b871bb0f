//! The `config` interface: one lookup in the component's table.

use super::ConfigState;
use crate::capabilities::bindings::config::Host;

impl Host for ConfigState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.values.get(&key).cloned())
    }
}
