//! The `log` interface: one `tracing` event per line, cut to a bounded size.

use super::LogState;
use crate::capabilities::bindings::log::{Host, Level};

/// Longest message kept; longer ones are cut so a component cannot flood
/// the log pipeline with one call.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Lines kept per invocation for the function's logs.
const MAX_LINES: usize = 1_000;

impl Host for LogState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        if self.lines.len() < MAX_LINES {
            let name = match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            self.lines.push((name, message.clone()));
        }
        let function = &*self.function;
        let request_id = &*self.request_id;
        match level {
            Level::Trace => {
                tracing::trace!(target: "selfdb::function", function, request_id, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "selfdb::function", function, request_id, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "selfdb::function", function, request_id, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "selfdb::function", function, request_id, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "selfdb::function", function, request_id, "{message}")
            }
        }
        Ok(())
    }
}
