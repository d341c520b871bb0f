//! `/storage/v1`: Supabase Storage's REST API, as storage-js calls it, over
//! the object store that the S3 endpoint serves too.
//!
//! Routing is by hand on decoded path segments: object keys contain `/`,
//! and Supabase's fixed words (`list`, `sign`, `public`, ...) sit where a
//! bucket name could, so the order of the match below is the routing rule.

mod buckets;
mod error;
pub(crate) mod objects;
mod signed;

use super::principal::authenticate;
use super::AppState;
use crate::auth::{Principal, Role};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
pub use error::StorageApiError;
use serde::de::DeserializeOwned;
use storage_s3s::Access;

pub type StorageResult<T> = Result<T, StorageApiError>;

/// Largest JSON body of a storage API call (not an upload).
const MAX_JSON_BYTES: usize = 1 << 20;

/// What every handler gets.
pub struct Call {
    pub app: AppState,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Body,
}

impl Call {
    /// The caller, from `apikey` and `Authorization`, as an access for the
    /// store.
    pub fn access(&self) -> StorageResult<Access> {
        let principal = authenticate(&self.headers, &self.app.keys).map_err(|e| {
            StorageApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", e.message)
        })?;
        Ok(access_of(&principal))
    }

    pub async fn json<T: DeserializeOwned>(self) -> StorageResult<T> {
        let bytes = axum::body::to_bytes(self.body, MAX_JSON_BYTES)
            .await
            .map_err(|_| {
                StorageApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload too large",
                    format!("a storage API request body is at most {MAX_JSON_BYTES} bytes"),
                )
            })?;
        let bytes = if bytes.is_empty() {
            axum::body::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| StorageApiError::bad_request(format!("invalid JSON body: {e}")))
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn access_of(principal: &Principal) -> Access {
    match principal.role {
        Role::ServiceRole => Access::Service,
        Role::Authenticated => match &principal.user_id {
            Some(user_id) => Access::User {
                user_id: user_id.clone(),
                claims: principal.claims_text.clone(),
            },
            None => Access::Anon {
                claims: principal.claims_text.clone(),
            },
        },
        Role::Anon => Access::Anon {
            claims: principal.claims_text.clone(),
        },
    }
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_query(k), decode_query(v))
    })
}

fn decode_query(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn segments(path: &str) -> StorageResult<Vec<String>> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| StorageApiError::bad_request("the path is not valid UTF-8"))
        })
        .collect()
}

pub async fn route(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path().strip_prefix("/storage/v1").unwrap_or_default();
    let segments = match segments(path) {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    let call = Call {
        app,
        method: method.clone(),
        headers,
        query: uri.query().map(str::to_owned),
        body,
    };
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let key = |rest: &[&str]| rest.join("/");
    let read = method == Method::GET || method == Method::HEAD;
    let result = match (method.clone(), parts.as_slice()) {
        (Method::GET, ["bucket"]) => buckets::list(call).await,
        (Method::POST, ["bucket"]) => buckets::create(call).await,
        (Method::GET, ["bucket", id]) => buckets::get(call, id).await,
        (Method::PUT, ["bucket", id]) => buckets::update(call, id).await,
        (Method::DELETE, ["bucket", id]) => buckets::delete(call, id).await,
        (Method::POST, ["bucket", id, "empty"]) => buckets::empty(call, id).await,

        (Method::POST, ["object", "list", bucket]) => objects::list(call, bucket).await,
        (Method::POST, ["object", "move"]) => objects::move_object(call).await,
        (Method::POST, ["object", "copy"]) => objects::copy(call).await,
        (Method::POST, ["object", "sign", bucket]) => signed::sign_many(call, bucket).await,
        (Method::POST, ["object", "sign", bucket, rest @ ..]) => {
            signed::sign(call, bucket, &key(rest)).await
        }
        (_, ["object", "sign", bucket, rest @ ..]) if read => {
            signed::download(call, bucket, &key(rest)).await
        }
        (Method::POST, ["object", "upload", "sign", bucket, rest @ ..]) if !rest.is_empty() => {
            signed::sign_upload(call, bucket, &key(rest)).await
        }
        (Method::PUT, ["object", "upload", "sign", bucket, rest @ ..]) if !rest.is_empty() => {
            signed::upload(call, bucket, &key(rest)).await
        }
        (_, ["object", "public", bucket, rest @ ..]) if read && !rest.is_empty() => {
            objects::download(call, bucket, &key(rest), true).await
        }
        (_, ["object", "authenticated", bucket, rest @ ..]) if read && !rest.is_empty() => {
            objects::download(call, bucket, &key(rest), false).await
        }
        (Method::GET, ["object", "info", "public", bucket, rest @ ..]) if !rest.is_empty() => {
            objects::info(call, bucket, &key(rest), true).await
        }
        (Method::GET, ["object", "info", "authenticated", bucket, rest @ ..])
            if !rest.is_empty() =>
        {
            objects::info(call, bucket, &key(rest), false).await
        }
        (Method::GET, ["object", "info", bucket, rest @ ..]) if !rest.is_empty() => {
            objects::info(call, bucket, &key(rest), false).await
        }
        (Method::DELETE, ["object", bucket]) => objects::remove_many(call, bucket).await,
        (Method::DELETE, ["object", bucket, rest @ ..]) => {
            objects::remove_one(call, bucket, &key(rest)).await
        }
        (Method::POST | Method::PUT, ["object", bucket, rest @ ..]) if !rest.is_empty() => {
            objects::upload(call, bucket, &key(rest)).await
        }
        (_, ["object", bucket, rest @ ..]) if read && !rest.is_empty() => {
            objects::download(call, bucket, &key(rest), false).await
        }
        _ => Err(StorageApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no storage route for {method} {path}"),
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
