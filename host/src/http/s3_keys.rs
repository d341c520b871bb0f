//! `/api/v1/s3/keys`: S3 access keys, which an admin (or the service key)
//! issues to a user or to the service role, lists and revokes.

use super::error::ApiError;
use super::principal::require_admin;
use super::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// The user the key acts as; none for the service role.
    user_id: Option<uuid::Uuid>,
    #[serde(default)]
    description: String,
}

fn storage_error(err: storage_s3s::StorageError) -> ApiError {
    tracing::error!(%err, "S3 key administration");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the key store failed",
    )
}

pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(&headers, &app).await?;
    let request: CreateKey = if body.is_empty() {
        CreateKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body must be {{\"user_id\"?, \"description\"?}}: {e}"),
            )
        })?
    };
    if let Some(user_id) = request.user_id {
        let client = app.db.owner().get().await.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", e.to_string())
        })?;
        let exists = client
            .query_opt("select 1 from auth.users where id = $1", &[&user_id])
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "database", e.to_string())
            })?
            .is_some();
        if !exists {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "user_not_found",
                format!("no user {user_id}"),
            ));
        }
    }
    let key = app
        .storage
        .keys
        .create(request.user_id, &request.description)
        .await
        .map_err(storage_error)?;
    Ok((StatusCode::CREATED, Json(json!(key))))
}

pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_admin(&headers, &app).await?;
    let keys = app.storage.keys.list().await.map_err(storage_error)?;
    Ok(Json(json!({ "keys": keys })))
}

pub async fn revoke(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&headers, &app).await?;
    if app.storage.keys.revoke(&id).await.map_err(storage_error)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no active key {id}"),
        ))
    }
}
