//! What one invocation's `Store` holds: WASI state with every capability
//! denied, the invocation's transaction, its principal and its limits.

use super::limits::MemoryLimiter;
use crate::auth::mailer::Mailer;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::{JwtKeys, Principal};
use crate::db::invocation::InvocationTx;
use crate::db::schema::SchemaCache;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Outbound HTTP is denied unless the function's allow-list names the host.
pub struct OutboundPolicy {
    pub allowed_hosts: Arc<Vec<String>>,
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<
            dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send,
        >,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<
                        dyn Future<
                                Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>,
                            > + Send,
                    >,
                )>,
            > + Send,
    > {
        _ = fut;
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let allowed = self
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host));
        Box::new(async move {
            if !allowed {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

pub struct InvocationState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: OutboundPolicy,
    pub limiter: MemoryLimiter,
    pub tx: InvocationTx,
    pub principal: Arc<Principal>,
    pub request_id: String,
    pub function: Arc<str>,
    pub config: Arc<BTreeMap<String, String>>,
    pub client_ip: Option<String>,
    /// Present only for system components.
    pub privileged: Option<Privileged>,
}

/// What the privileged interfaces work with.
pub struct Privileged {
    pub keys: JwtKeys,
    /// The invocation's transaction as `supabase_auth_admin`.
    pub auth_tx: InvocationTx,
    pub limiter: Arc<RateLimiter>,
    pub mailer: Arc<Mailer>,
    /// The schema cache as it was when the invocation started.
    pub schema: Arc<SchemaCache>,
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A WASI context with nothing granted: no files, no sockets, no
/// environment, no stdin; stdout/stderr are discarded (components log
/// through the `log` interface).
pub fn sealed_wasi() -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}
