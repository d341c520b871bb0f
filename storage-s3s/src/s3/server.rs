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

/// Serves the S3 endpoint on `listener` until the task is dropped; every
/// answer carries a request id (`request_id`).
pub async fn serve(listener: tokio::net::TcpListener, service: S3Service) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let ids = Arc::new(super::request_id::RequestIds::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(%err, "accepting an S3 connection");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let ids = ids.clone();
        let stamped = hyper::service::service_fn(move |request| {
            let service = service.clone();
            let id = ids.next();
            async move {
                let attributes = super::edge::asks_attributes(&request);
                let form = super::edge::is_form_upload(&request);
                let mut response = match super::edge::answer(&request) {
                    Some(answer) => answer,
                    None => match super::edge::sized(request).await {
                        Ok(request) => service.call(request).await?,
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
                Ok::<_, s3s::HttpError>(response)
            }
        });
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(socket), stamped)
                .await
            {
                tracing::debug!(%err, "S3 connection ended");
            }
        });
    }
}
