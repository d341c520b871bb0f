//! `/storage/v1/bucket`: create, list, get, update, empty and delete
//! buckets, each as the caller (RLS on `storage.buckets` decides).

use super::{json_response, Call, StorageApiError, StorageResult};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};
use storage_s3s::{BucketUpdate, NewBucket};

#[derive(Deserialize)]
struct CreateBody {
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    public: bool,
    file_size_limit: Option<Value>,
    allowed_mime_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct UpdateBody {
    public: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    file_size_limit: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    allowed_mime_types: Option<Option<Vec<String>>>,
}

/// Tells a field that is `null` (clear it) from one that is absent (keep it).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A size limit as Supabase takes it: bytes, or text such as `"20MB"`.
fn size_limit(value: Option<&Value>) -> StorageResult<Option<i64>> {
    let bad = || {
        StorageApiError::bad_request(
            "file_size_limit must be a number of bytes or a size such as \"20MB\"",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(bad),
        Some(Value::String(text)) => {
            let text = text.trim().to_ascii_uppercase();
            let digits_end = text
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(digits_end);
            let number: i64 = number.parse().map_err(|_| bad())?;
            let factor: i64 = match unit.trim() {
                "" | "B" => 1,
                "KB" => 1 << 10,
                "MB" => 1 << 20,
                "GB" => 1 << 30,
                _ => return Err(bad()),
            };
            number.checked_mul(factor).map(Some).ok_or_else(bad)
        }
        Some(_) => Err(bad()),
    }
}

pub async fn list(call: Call) -> StorageResult<Response> {
    let access = call.access()?;
    let buckets = call.app.storage.store.list_buckets(&access).await?;
    Ok(json_response(StatusCode::OK, json!(buckets)))
}

pub async fn get(call: Call, id: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let bucket = call.app.storage.store.get_bucket(&access, id).await?;
    Ok(json_response(StatusCode::OK, json!(bucket)))
}

pub async fn create(call: Call) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let body: CreateBody = call.json().await?;
    let id = body
        .id
        .or(body.name.clone())
        .ok_or_else(|| StorageApiError::bad_request("a bucket needs a name"))?;
    let bucket = NewBucket {
        name: body.name.unwrap_or_else(|| id.clone()),
        id,
        public: body.public,
        file_size_limit: size_limit(body.file_size_limit.as_ref())?,
        allowed_mime_types: body.allowed_mime_types,
        ..Default::default()
    };
    let created = app.storage.store.create_bucket(&access, bucket).await?;
    Ok(json_response(StatusCode::OK, json!({ "name": created.id })))
}

pub async fn update(call: Call, id: &str) -> StorageResult<Response> {
    let access = call.access()?;
    let app = call.app.clone();
    let body: UpdateBody = call.json().await?;
    let update = BucketUpdate {
        public: body.public,
        file_size_limit: match body.file_size_limit {
            Some(value) => Some(size_limit(value.as_ref())?),
            None => None,
        },
        allowed_mime_types: body.allowed_mime_types,
    };
    app.storage.store.update_bucket(&access, id, update).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "message": "Successfully updated" }),
    ))
}

pub async fn empty(call: Call, id: &str) -> StorageResult<Response> {
    let access = call.access()?;
    call.app.storage.store.empty_bucket(&access, id).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "message": "Successfully emptied" }),
    ))
}

pub async fn delete(call: Call, id: &str) -> StorageResult<Response> {
    let access = call.access()?;
    call.app.storage.store.delete_bucket(&access, id).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "message": "Successfully deleted" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limits() {
        assert_eq!(size_limit(Some(&json!(1024))).unwrap(), Some(1024));
        assert_eq!(size_limit(Some(&json!("20MB"))).unwrap(), Some(20 << 20));
        assert_eq!(size_limit(Some(&json!("5 kb"))).unwrap(), Some(5 << 10));
        assert_eq!(size_limit(None).unwrap(), None);
        assert!(size_limit(Some(&json!(-1))).is_err());
        assert!(size_limit(Some(&json!("lots"))).is_err());
        assert!(size_limit(Some(&json!(true))).is_err());
    }
}
