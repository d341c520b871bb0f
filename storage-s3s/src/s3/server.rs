//! The S3 endpoint's service (s3s with SelfDB's signing keys and access
//! rule) and its HTTP server.

use super::auth::{KeyAuth, S3Rules};
use super::S3Frontend;
use crate::keys::KeyRegistry;
use crate::store::Store;
use s3s::service::{S3Service, S3ServiceBuilder};
use std::sync::Arc;

/// The s3s service over `store`, with access keys from `keys`, naming
/// itself `region`.
pub fn service(store: Store, keys: Arc<KeyRegistry>, region: String) -> S3Service {
    let mut builder = S3ServiceBuilder::new(S3Frontend {
        store: store.clone(),
        keys: keys.clone(),
        region,
    });
    builder.set_auth(KeyAuth(keys));
    builder.set_access(S3Rules { store });
    builder.build()
}

/// The S3 endpoint over HTTP: s3s with the edge rules (`edge`) around it
/// and a request id on every answer (`request_id`). The caller owns the
/// sockets (plain or TLS) and serves each connection with
/// [`Endpoint::serve_connection`].
#[derive(Clone)]
pub struct Endpoint {
    service: S3Service,
    ids: Arc<super::request_id::RequestIds>,
}

impl Endpoint {
    pub fn new(service: S3Service) -> Endpoint {
        Endpoint {
            service,
            ids: Arc::new(super::request_id::RequestIds::new()),
        }
    }

    /// Answers one request.
    pub async fn handle(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<s3s::HttpResponse, s3s::HttpError> {
        let id = self.ids.next();
        let attributes = super::edge::asks_attributes(&request);
        let form = super::edge::is_form_upload(&request);
        let mut response = match super::edge::answer(&request) {
            Some(answer) => answer,
            None => match super::edge::sized(request).await {
                Ok(request) => self.service.call(request).await?,
                Err(refused) => refused,
            },
        };
        if attributes {
            super::edge::unquote_attributes_etag(&mut response);
        }
        if form {
            super::edge::policy_condition_is_forbidden(&mut response);
            super::edge::quote_redirect_etag(&mut response);
        }
        super::request_id::stamp(&mut response, &id);
        Ok(response)
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client closes it.
    pub async fn serve_connection<I>(self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |request| {
            let endpoint = self.clone();
            async move { endpoint.handle(request).await }
        });
        serve_with(io, service).await;
    }
}

/// Serves `service` on one connection, HTTP/1.1 or HTTP/2 (by its preface).
pub async fn serve_with<I, S, B>(io: I, service: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<B>,
        > + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let builder = Builder::new(TokioExecutor::new());
    if let Err(err) = builder.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!(%err, "S3 connection ended");
    }
}

/// Serves the S3 endpoint on a plain TCP `listener` until the task is
/// dropped.
pub async fn serve(listener: tokio::net::TcpListener, service: S3Service) {
    let endpoint = Endpoint::new(service);
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "accepting an S3 connection");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(endpoint.clone().serve_connection(socket));
    }
}
