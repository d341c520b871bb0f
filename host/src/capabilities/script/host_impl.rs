//! The `script` interface: the version's bundle, copied into the guest.

use super::ScriptState;
use crate::capabilities::bindings::script::Host;

impl Host for ScriptState {
    fn source(&mut self) -> wasmtime::Result<String> {
        Ok(self.source.as_deref().unwrap_or_default().to_owned())
    }
}
