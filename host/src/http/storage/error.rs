//! Storage API errors in the shape storage-js reads:
//! `{"statusCode": "404", "error": "not_found", "message": "..."}`, with the
//! matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use storage_s3s::StorageError;

#[derive(Debug)]
pub struct StorageApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
}

impl StorageApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
}

impl IntoResponse for StorageApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "statusCode": self.status.as_u16().to_string(),
            "error": self.error,
            "code": self.error,
            "message": self.message,
        });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StorageError> for StorageApiError {
    fn from(err: StorageError) -> Self {
        use StatusCode as S;
        let (status, error) = match &err {
            StorageError::NoSuchBucket => (S::NOT_FOUND, "Bucket not found"),
            StorageError::NoSuchKey => (S::NOT_FOUND, "not_found"),
            StorageError::BucketExists | StorageError::ObjectExists => (S::CONFLICT, "Duplicate"),
            StorageError::BucketNotEmpty => (S::CONFLICT, "InvalidRequest"),
            StorageError::AccessDenied(_) | StorageError::Refused(_) => {
                (S::FORBIDDEN, "Unauthorized")
            }
            StorageError::InvalidKey(_) => (S::BAD_REQUEST, "InvalidKey"),
            StorageError::InvalidBucketName(_) => (S::BAD_REQUEST, "InvalidBucketName"),
            StorageError::InvalidArgument(_) => (S::BAD_REQUEST, "InvalidRequest"),
            StorageError::EntityTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "Payload too large"),
            StorageError::InvalidMimeType(_) => (S::UNSUPPORTED_MEDIA_TYPE, "invalid_mime_type"),
            StorageError::BadDigest => (S::BAD_REQUEST, "InvalidDigest"),
            StorageError::PreconditionFailed => (S::PRECONDITION_FAILED, "PreconditionFailed"),
            StorageError::Body(_) => (S::BAD_REQUEST, "InvalidRequest"),
            StorageError::NoSuchUpload
            | StorageError::InvalidPart(_)
            | StorageError::InvalidPartOrder
            | StorageError::EntityTooSmall => (S::BAD_REQUEST, "InvalidRequest"),
            StorageError::Database(_) | StorageError::Io(_) => {
                tracing::error!(%err, "storage request failed");
                return Self::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error");
            }
        };
        let message = match &err {
            StorageError::NoSuchKey => "Object not found".to_owned(),
            StorageError::NoSuchBucket => "Bucket not found".to_owned(),
            StorageError::BucketExists | StorageError::ObjectExists => {
                "The resource already exists".to_owned()
            }
            other => other.to_string(),
        };
        Self::new(status, error, message)
    }
}
