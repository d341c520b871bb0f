//! The `context` interface: the request's caller, as verified by the host.

use super::ContextState;
use crate::capabilities::bindings::context::{Host, Principal};

impl Host for ContextState {
    fn caller(&mut self) -> wasmtime::Result<Principal> {
        Ok(Principal {
            role: self.principal.role.as_str().to_owned(),
            user_id: self.principal.user_id.clone(),
            claims: self.principal.claims_text.clone(),
        })
    }

    fn request_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.request_id.to_string())
    }

    fn client_ip(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.client_ip.map(|ip| ip.to_string()))
    }
}
