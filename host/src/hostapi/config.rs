use super::selfdb::platform::config::Host;
use crate::runtime::state::InvocationState;

impl Host for InvocationState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }
}
