//! WASI 0.2 and `wasi:http` for components, with every capability denied:
//! no files, sockets, environment or stdin; outbound HTTP only to the
//! hosts a function's allow-list names.
//!
//! Unlike the other capabilities, wasmtime's WASI linkers find their state
//! through `WasiView`/`WasiHttpView` on the store type itself, so the
//! runtime links this one directly and `InvocationState` implements those
//! traits by handing out [`WasiState`].

mod captured;
mod outbound;

pub use captured::CapturedOutput;
pub use outbound::OutboundPolicy;

use std::sync::Arc;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// One invocation's WASI state.
pub struct WasiState {
    ctx: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
}

impl WasiState {
    /// Nothing granted; stdout and stderr are discarded (system components
    /// log through the `log` interface). Outbound HTTP reaches
    /// `allowed_hosts`.
    pub fn sealed(allowed_hosts: Arc<Vec<String>>) -> Self {
        Self::build(allowed_hosts, None)
    }

    /// As [`WasiState::sealed`], with stdout and stderr kept (what a
    /// JavaScript function's `console` writes) for the function's logs.
    pub fn capturing(allowed_hosts: Arc<Vec<String>>) -> (Self, CapturedOutput, CapturedOutput) {
        let (stdout, stderr) = (CapturedOutput::default(), CapturedOutput::default());
        let state = Self::build(allowed_hosts, Some((stdout.clone(), stderr.clone())));
        (state, stdout, stderr)
    }

    fn build(
        allowed_hosts: Arc<Vec<String>>,
        output: Option<(CapturedOutput, CapturedOutput)>,
    ) -> Self {
        let mut builder = WasiCtx::builder();
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some((stdout, stderr)) = output {
            builder.stdout(stdout).stderr(stderr);
        }
        Self {
            ctx: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy { allowed_hosts },
        }
    }

    pub fn ctx_view(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }

    pub fn http_view(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Adds WASI 0.2 and `wasi:http`'s types and outgoing handler.
pub fn link<T: WasiView + WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}
