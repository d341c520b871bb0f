use super::selfdb::platform::mailer::Host;
use crate::runtime::state::InvocationState;

impl Host for InvocationState {
    async fn send(
        &mut self,
        to: String,
        subject: String,
        body: String,
        kind: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let Some(p) = &self.privileged else {
            return Ok(Err("this component may not send mail".into()));
        };
        Ok(p.mailer
            .send(&to, &subject, &body, &kind)
            .await
            .map_err(|e| e.to_string()))
    }
}
