//! `selfdb:platform/log`: a component's log lines, tagged with its name
//! and the request id, into the host's log.

mod host_impl;

use super::{Capability, Prepare};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per process: nothing.
pub struct Log;

/// Per invocation: what each line is tagged with.
pub struct LogState {
    function: Arc<str>,
    request_id: Arc<str>,
    /// The invocation's lines, for the function's logs.
    lines: Vec<(&'static str, String)>,
}

impl LogState {
    /// The lines written so far, as (level, message).
    pub fn take_lines(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.lines)
    }
}

impl Capability for Log {
    type State = LogState;

    fn link<T: Send + 'static>(
        linker: &mut Linker<T>,
        get: fn(&mut T) -> &mut LogState,
    ) -> wasmtime::Result<()> {
        super::bindings::log::add_to_linker::<T, HasSelf<LogState>>(linker, get)
    }

    fn prepare(&self, cx: &Prepare<'_>) -> LogState {
        LogState {
            function: cx.function.name.clone(),
            request_id: cx.request_id.clone(),
            lines: Vec::new(),
        }
    }
}
