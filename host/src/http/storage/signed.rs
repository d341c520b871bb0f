//! Signed URLs: a download or upload link that works without credentials
//! until it expires. The caller's policies are checked when the link is
//! made; the link itself is a JWT signed with the instance secret, naming
//! the object (and for uploads, the user it uploads as). Such a token has
//! no role, so it is never accepted as a credential.

use super::objects::{serve_object, store_upload, Reading};
use super::{json_response, Call, StorageApiError, StorageResult};
use crate::auth::JwtKeys;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use storage_s3s::{Access, Read};

/// Lifetime of a signed upload URL, as on Supabase.
const UPLOAD_URL_SECONDS: i64 = 2 * 3600;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignBody {
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignManyBody {
    expires_in: Option<Value>,
    paths: Vec<String>,
}

fn expires_in(value: Option<&Value>) -> StorageResult<i64> {
    let seconds = match value {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    seconds.filter(|s| *s > 0).ok_or_else(|| {
        StorageApiError::bad_request("expiresIn must be a positive number of seconds")
    })
}

/// `bucket/key` as it goes into a signed URL's path: raw, because
/// storage-js passes the URL through `encodeURI` itself.
fn url_path(bucket: &str, key: &str) -> String {
    format!("{bucket}/{key}")
}

fn sign_token(keys: &JwtKeys, claims: Value) -> StorageResult<String> {
    keys.sign(&claims).map_err(|e| {
        tracing::error!(%e, "signing a storage URL");
        StorageApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}

fn download_url(keys: &JwtKeys, bucket: &str, key: &str, seconds: i64) -> StorageResult<String> {
    let now = chrono::Utc::now().timestamp();
    let token = sign_token(
        keys,
        json!({ "url": format!("{bucket}/{key}"), "typ": "storage-download", "iat": now, "exp": now + seconds }),
    )?;
    Ok(format!(
        "/object/sign/{}?token={token}",
        url_path(bucket, key)
    ))
}

pub async fn sign(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    app.storage
        .store
        .head_object(&access, bucket, key, Read::AsCaller)
        .await?;
    let body: SignBody = call.json().await?;
    let seconds = expires_in(body.expires_in.as_ref())?;
    let url = download_url(&app.keys, bucket, key, seconds)?;
    Ok(json_response(StatusCode::OK, json!({ "signedURL": url })))
}

pub async fn sign_many(call: Call, bucket: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let store = app.storage.store.clone();
    let body: SignManyBody = call.json().await?;
    let seconds = expires_in(body.expires_in.as_ref())?;
    if body.paths.len() > 1000 {
        return Err(StorageApiError::bad_request("at most 1000 paths at once"));
    }
    let mut out = Vec::with_capacity(body.paths.len());
    for path in &body.paths {
        let entry = match store
            .head_object(&access, bucket, path, Read::AsCaller)
            .await
        {
            Ok(_) => json!({
                "error": null,
                "path": path,
                "signedURL": download_url(&app.keys, bucket, path, seconds)?,
            }),
            Err(storage_s3s::StorageError::NoSuchBucket) => {
                return Err(storage_s3s::StorageError::NoSuchBucket.into())
            }
            Err(_) => {
                json!({ "error": "Either the object does not exist or you do not have access to it", "path": path, "signedURL": null })
            }
        };
        out.push(entry);
    }
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

/// The claims of `?token=` when it was signed for `bucket/key`.
fn verify(
    call: &Call,
    bucket: &str,
    key: &str,
    typ: &str,
) -> StorageResult<serde_json::Map<String, Value>> {
    let token = call
        .query_param("token")
        .ok_or_else(|| StorageApiError::bad_request("the URL has no token"))?;
    let claims = call.app.keys.verify_own(&token).map_err(|e| {
        StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidSignature",
            format!("invalid signature: {e}"),
        )
    })?;
    let url_matches = claims.get("url").and_then(Value::as_str) == Some(&format!("{bucket}/{key}"));
    let typ_matches = claims.get("typ").and_then(Value::as_str) == Some(typ);
    if !url_matches || !typ_matches {
        return Err(StorageApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidSignature",
            "the token was not signed for this object",
        ));
    }
    Ok(claims)
}

pub async fn download(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    verify(&call, bucket, key, "storage-download")?;
    let reading = Reading::of(&call);
    let (info, body) = reading
        .fetch(
            &call.app.storage.store,
            &Access::System,
            bucket,
            key,
            Read::AsCaller,
        )
        .await?;
    serve_object(reading, &info, body).await
}

pub async fn sign_upload(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    let access = call.access()?;
    call.app
        .storage
        .store
        .can_insert(&access, bucket, key)
        .await?;
    let upsert = call
        .header("x-upsert")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let now = chrono::Utc::now().timestamp();
    let token = sign_token(
        &call.app.keys,
        json!({
            "url": format!("{bucket}/{key}"),
            "typ": "storage-upload",
            "owner": access.user_id(),
            "upsert": upsert,
            "iat": now,
            "exp": now + UPLOAD_URL_SECONDS,
        }),
    )?;
    let url = format!(
        "/object/upload/sign/{}?token={token}",
        url_path(bucket, key)
    );
    Ok(json_response(
        StatusCode::OK,
        json!({ "url": url, "token": token }),
    ))
}

pub async fn upload(call: Call, bucket: &str, key: &str) -> StorageResult<Response> {
    let claims = verify(&call, bucket, key, "storage-upload")?;
    let owner = claims
        .get("owner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let upsert = claims
        .get("upsert")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    store_upload(call, &Access::System, bucket, key, upsert, owner).await
}
