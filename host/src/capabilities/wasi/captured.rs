//! A component's stdout or stderr, kept for its logs: what `console.log`
//! writes in a JavaScript function. Bounded per invocation; past the bound
//! output is dropped, never a trap, so a chatty function keeps running.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Output kept per stream and invocation.
pub const CAPTURE_BYTES: usize = 64 << 10;

#[derive(Clone, Default)]
pub struct CapturedOutput {
    buffer: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: bool,
}

impl CapturedOutput {
    fn append(&self, data: &[u8]) {
        let mut captured = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = CAPTURE_BYTES.saturating_sub(captured.bytes.len());
        if data.len() > room {
            captured.dropped = true;
        }
        captured
            .bytes
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    /// What was written, as lines (a cut-off tail marked).
    pub fn lines(&self) -> Vec<String> {
        let captured = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&captured.bytes);
        let mut lines: Vec<String> = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if captured.dropped {
            lines.push(format!("… output past {CAPTURE_BYTES} bytes was dropped"));
        }
        lines
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always writable: what does not fit is dropped, not refused.
        Ok(CAPTURE_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
