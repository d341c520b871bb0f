//! The S3 port: accepts connections (plain or TLS, `listen`) and hands
//! each request to storage-s3s's endpoint, with what the API port's edge
//! does for its own requests: the CORS policy (`cors`: a browser uploading
//! with a presigned URL needs it; it is global, as MinIO's, since SelfDB
//! keeps no per-bucket CORS configuration), the counters of `/metrics`
//! (API `s3`) and the access-log line, under S3's own request id
//! (`x-amz-request-id`).

use crate::config::LogFormat;
use crate::cors::{CorsPolicy, EXPOSE_S3};
use crate::listen::Incoming;
use crate::metrics::{Api, Metrics};
use hyper::{header, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Instant;
use storage_s3s::s3::Endpoint;

/// What the port adds around the endpoint.
#[derive(Clone)]
pub struct S3Edge {
    pub cors: CorsPolicy,
    pub metrics: Arc<Metrics>,
    pub log_format: LogFormat,
}

/// Serves the endpoint on `incoming` until the task is dropped.
pub async fn serve(mut incoming: Incoming, endpoint: Endpoint, edge: S3Edge) {
    let edge = Arc::new(edge);
    loop {
        let (connection, _peer) = incoming.next().await;
        let endpoint = endpoint.clone();
        let edge = edge.clone();
        let service = hyper::service::service_fn(move |request| {
            let endpoint = endpoint.clone();
            let edge = edge.clone();
            async move { edge.handle(&endpoint, request).await }
        });
        tokio::spawn(storage_s3s::s3::serve_with(connection, service));
    }
}

impl S3Edge {
    async fn handle(
        &self,
        endpoint: &Endpoint,
        request: Request<hyper::body::Incoming>,
    ) -> Result<s3s::HttpResponse, s3s::HttpError> {
        let started = Instant::now();
        let in_flight = self.metrics.started(Api::S3);
        let method = crate::http::observe::method_name(request.method());
        let path = request.uri().path().to_owned();
        let response = if CorsPolicy::is_preflight(request.method(), request.headers()) {
            let mut response = Response::new(s3s::Body::empty());
            *response.status_mut() = StatusCode::OK;
            *response.headers_mut() = self.cors.preflight(request.headers());
            response
        } else {
            let origin = request.headers().get(header::ORIGIN).cloned();
            let mut response = endpoint.handle(request).await?;
            self.cors.decorate(
                origin.as_ref(),
                response.headers_mut(),
                false,
                Some(EXPOSE_S3),
            );
            response
        };
        drop(in_flight);
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.answered(Api::S3, method, status, elapsed);
        let id = response
            .headers()
            .get("x-amz-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        crate::http::observe::access_line(
            self.log_format,
            Api::S3,
            method,
            &path,
            status,
            elapsed,
            id,
        );
        Ok(response)
    }
}
