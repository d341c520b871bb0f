//! The outbound HTTP policy: `wasi:http` requests go out only to the hosts
//! a function's allow-list names.

use crate::spin::allowed_hosts::AllowedHosts;
use std::future::Future;
use std::sync::Arc;
use wasmtime_wasi_http::WasiHttpHooks;

/// Outbound HTTP is denied unless the function's allow-list names the host
/// (or, for a Spin app's component, its `allowed_outbound_hosts` allow the
/// URL's scheme, host and port).
pub struct OutboundPolicy {
    pub allowed_hosts: Arc<Vec<String>>,
    pub spin: Option<Arc<AllowedHosts>>,
}

impl OutboundPolicy {
    fn allows(&self, uri: &http::Uri) -> bool {
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        match &self.spin {
            Some(spin) => {
                let scheme = uri.scheme_str().unwrap_or("http");
                let port = uri
                    .port_u16()
                    .or_else(|| crate::spin::allowed_hosts::well_known_port(scheme));
                port.is_some_and(|port| spin.allows(scheme, &host, port))
            }
            None => self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host)),
        }
    }
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
        let allowed = self.allows(request.uri());
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
