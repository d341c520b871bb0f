//! Privileged `selfdb:platform/mailer`: mail over SMTP, or into the dev
//! outbox when no SMTP server is configured.

mod host_impl;

use super::{Capability, Prepare};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: the configured mailer.
pub struct Mailer {
    mailer: Arc<crate::auth::mailer::Mailer>,
}

impl Mailer {
    pub fn new(mailer: Arc<crate::auth::mailer::Mailer>) -> Self {
        Self { mailer }
    }
}

/// Per invocation: the same mailer.
pub struct MailerState {
    mailer: Arc<crate::auth::mailer::Mailer>,
}

impl Capability for Mailer {
    type State = MailerState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut MailerState,
    ) -> wasmtime::Result<()> {
        super::bindings::mailer::add_to_linker::<T, HasSelf<MailerState>>(linker, get)
    }

    fn prepare(&self, _cx: &Prepare<'_>) -> MailerState {
        MailerState {
            mailer: self.mailer.clone(),
        }
    }
}
