//! The `mailer` interface: one message, its failure as text.

use super::MailerState;
use crate::capabilities::bindings::mailer::Host;

impl Host for MailerState {
    async fn send(
        &mut self,
        to: String,
        subject: String,
        body: String,
        kind: String,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(self
            .mailer
            .send(&to, &subject, &body, &kind)
            .await
            .map_err(|e| e.to_string()))
    }
}
