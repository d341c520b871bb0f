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
        let sent_body = sends_body_over_http1(&request);
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
        // An error answered before the body was read (a key too long, a
        // bad signature) leaves the body's bytes on the connection, racing
        // the client's next request on it (a client that waited out
        // `Expect: 100-continue` sends the body late): the connection
        // ends with this answer instead. (A CI run under load once saw a
        // GET right after such a refused PUT fail its signature, which is
        // what a request prefixed with a stale body byte would do; not
        // reproduced since.)
        if sent_body && (response.status().is_client_error() || response.status().is_server_error())
        {
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
        }
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

/// Whether `request` carries a body on an HTTP/1 connection (HTTP/2
/// frames bodies, so nothing of one can be taken for the next request).
fn sends_body_over_http1<B>(request: &hyper::Request<B>) -> bool {
    let http1 = matches!(
        request.version(),
        hyper::Version::HTTP_10 | hyper::Version::HTTP_11
    );
    let headers = request.headers();
    let length = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    http1 && (length > 0 || headers.contains_key(hyper::header::TRANSFER_ENCODING))
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
