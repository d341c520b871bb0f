//! What a storage operation can fail with, in terms both APIs translate:
//! the REST API to Supabase Storage's JSON errors, the S3 endpoint to S3's
//! error codes.

use crate::blobs::WriteError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("bucket not found")]
    NoSuchBucket,
    #[error("object not found")]
    NoSuchKey,
    #[error("the bucket already exists")]
    BucketExists,
    #[error("the object already exists")]
    ObjectExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    /// Refused by row-level security or a missing grant (SQLSTATE 42501):
    /// what an S3 ACL may grant on top.
    #[error("{0}")]
    AccessDenied(String),
    /// Refused by a CHECK or a policy that raises: the app's own rule,
    /// which no ACL overrides.
    #[error("{0}")]
    Refused(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the object exceeds the maximum allowed size of {limit} bytes")]
    EntityTooLarge { limit: u64 },
    #[error("mime type {0} is not supported by this bucket")]
    InvalidMimeType(String),
    #[error("the multipart upload does not exist")]
    NoSuchUpload,
    #[error("{0}")]
    InvalidPart(String),
    #[error("the parts must be listed in ascending order")]
    InvalidPartOrder,
    #[error("every part but the last must be at least 5 MiB")]
    EntityTooSmall,
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    #[error("the Content-MD5 you specified did not match what we received")]
    BadDigest,
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("database: {0}")]
    Database(String),
    #[error("object bytes: {0}")]
    Io(#[from] std::io::Error),
}

pub type StorageResult<T> = Result<T, StorageError>;

impl From<WriteError> for StorageError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::TooLarge { limit } => StorageError::EntityTooLarge { limit },
            WriteError::Body(msg) => StorageError::Body(msg),
            WriteError::Io(err) => StorageError::Io(err),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StorageError::Database(format!("no connection: {err}"))
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            return StorageError::Database(err.to_string());
        };
        let code = db.code().code();
        match code {
            // Row-level security or a missing grant.
            "42501" => StorageError::AccessDenied(db.message().to_owned()),
            "23505" => StorageError::ObjectExists,
            // A CHECK or policy written with `raise`: the caller's fault.
            "23514" | "P0001" => StorageError::Refused(db.message().to_owned()),
            _ => {
                tracing::warn!(code, message = db.message(), "storage query failed");
                StorageError::Database(format!("{code}: {}", db.message()))
            }
        }
    }
}
