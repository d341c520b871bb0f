use super::selfdb::platform::context::{Host, Principal};
use crate::runtime::state::InvocationState;

impl Host for InvocationState {
    fn caller(&mut self) -> wasmtime::Result<Principal> {
        Ok(Principal {
            role: self.principal.role.as_str().to_owned(),
            user_id: self.principal.user_id.clone(),
            claims: self.principal.claims_text.clone(),
        })
    }

    fn request_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.request_id.clone())
    }

    fn client_ip(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.client_ip.clone())
    }
}
