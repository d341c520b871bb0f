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
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
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

    /// A Spin component's: its environment, its `files` (read-only at
    /// `/`), outbound requests as its `allowed_outbound_hosts` allow, and
    /// stdout and stderr kept for the app's logs.
    pub fn for_spin(
        spec: &crate::spin::ComponentSpec,
        files: Option<&std::path::Path>,
    ) -> (Self, CapturedOutput, CapturedOutput) {
        let (stdout, stderr) = (CapturedOutput::default(), CapturedOutput::default());
        let mut builder = Self::builder(Some((stdout.clone(), stderr.clone())));
        for (key, value) in &spec.environment {
            builder.env(key, value);
        }
        if let Some(dir) = files {
            if let Err(err) = builder.preopened_dir(dir, "/", FsPerms::ReadOnly) {
                tracing::warn!(dir = %dir.display(), %err, "cannot mount a Spin component's files");
            }
        }
        let state = Self {
            ctx: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed_hosts: Arc::default(),
                spin: Some(spec.allowed_hosts.clone()),
            },
        };
        (state, stdout, stderr)
    }

    fn builder(output: Option<(CapturedOutput, CapturedOutput)>) -> wasmtime_wasi::WasiCtxBuilder {
        let mut builder = WasiCtx::builder();
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some((stdout, stderr)) = output {
            builder.stdout(stdout).stderr(stderr);
        }
        builder
    }

    fn build(
        allowed_hosts: Arc<Vec<String>>,
        output: Option<(CapturedOutput, CapturedOutput)>,
    ) -> Self {
        let mut builder = Self::builder(output);
        Self {
            ctx: builder.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed_hosts,
                spin: None,
            },
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

/// Adds WASI 0.3 and `wasi:http@0.3.0` (types and client), for components
/// built for WASI 0.3 (spin-sdk 7); their outbound requests go through the
/// same policy.
pub fn link_p3<T: WasiView + WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p3::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)
}

/// Adds WASI 0.2 and `wasi:http`'s types and outgoing handler.
pub fn link<T: WasiView + WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}
