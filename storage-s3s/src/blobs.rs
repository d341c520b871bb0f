//! Where object bytes live: files on this machine's disk ([`FileStore`]) or
//! keys in an upstream S3 store ([`Upstream`]), behind the few operations
//! the store needs. Either way bytes are written under a fresh random
//! version before the metadata row that names them commits, are never
//! rewritten, and are deleted only by the sweeper (released rows) or the
//! orphan collector (rows that never committed), so both backends give the
//! same guarantees: no partial object is ever visible, and nothing is left
//! behind by a crash for longer than the orphan grace period.

use crate::body::ObjectBody;
use crate::files::FileStore;
use crate::upstream::{Upstream, UpstreamConfig};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Where a stream stopped being written, and why.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the upload: {0}")]
    Body(String),
    #[error("writing the object: {0}")]
    Io(#[from] io::Error),
}

/// Bytes written and durable under a new version, not yet referenced by
/// any metadata row. Dropping it without [`Written::keep`] deletes them.
#[derive(Debug)]
pub struct Written {
    pub version: String,
    pub size: u64,
    /// MD5 of the bytes, lowercase hex: S3's ETag for a single-part upload.
    pub etag: String,
    cleanup: Option<Cleanup>,
}

/// What undoing a write takes.
#[derive(Debug)]
pub(crate) enum Cleanup {
    File(PathBuf),
    Upstream(crate::upstream::Unclaimed),
}

impl Written {
    pub(crate) fn new(version: String, size: u64, etag: String, cleanup: Cleanup) -> Self {
        Written {
            version,
            size,
            etag,
            cleanup: Some(cleanup),
        }
    }

    /// The metadata row committed: the bytes now belong to it.
    pub fn keep(mut self) {
        if let Some(Cleanup::Upstream(unclaimed)) = self.cleanup.take() {
            unclaimed.claimed();
        }
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::File(path)) => {
                let _ = std::fs::remove_file(path);
            }
            Some(Cleanup::Upstream(unclaimed)) => unclaimed.abandon(),
            None => {}
        }
    }
}

/// Where a store keeps object bytes.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Files under this directory (`objects/` and `tmp/`).
    Local(PathBuf),
    /// Keys in a bucket of an S3 store.
    Upstream(UpstreamConfig),
}

#[derive(Clone)]
pub enum Blobs {
    Local(FileStore),
    Upstream(Upstream),
}

impl Blobs {
    pub(crate) async fn open(
        backend: &Backend,
        owner: &deadpool_postgres::Pool,
        max_object_bytes: u64,
    ) -> io::Result<Self> {
        Ok(match backend {
            Backend::Local(root) => Blobs::Local(FileStore::open(root).await?),
            Backend::Upstream(config) => {
                Blobs::Upstream(Upstream::open(config, owner.clone(), max_object_bytes).await?)
            }
        })
    }

    /// Where `backend` keeps bytes, for reading them only (a backup while
    /// hosts serve): local temp files are left alone.
    pub async fn open_for_reading(
        backend: &Backend,
        owner: &deadpool_postgres::Pool,
        max_object_bytes: u64,
    ) -> io::Result<Self> {
        match backend {
            Backend::Local(root) => Ok(Blobs::Local(FileStore::for_reading(root.clone()))),
            Backend::Upstream(_) => Self::open(backend, owner, max_object_bytes).await,
        }
    }

    /// How long after its row was released a version may be deleted.
    /// A local download holds an open file, so deleting at once never cuts
    /// one short; an upstream download is a ranged GET that may still be
    /// running, so its bytes are kept a while.
    pub(crate) fn release_grace(&self) -> Duration {
        match self {
            Blobs::Local(_) => Duration::ZERO,
            Blobs::Upstream(upstream) => upstream.release_grace(),
        }
    }

    /// Streams `body` into a new version, at most `limit` bytes.
    pub async fn write<S, E>(&self, body: S, limit: Option<u64>) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        match self {
            Blobs::Local(files) => files.write(body, limit).await,
            Blobs::Upstream(upstream) => upstream.write(body, limit).await,
        }
    }

    /// A new version with the bytes of `version`.
    pub async fn link(&self, version: &str) -> Result<Written, WriteError> {
        match self {
            Blobs::Local(files) => Ok(files.link(version).await?),
            Blobs::Upstream(upstream) => upstream.copy(version).await,
        }
    }

    /// A new version with the bytes of `versions`, one after the other.
    pub async fn concat(&self, versions: &[String]) -> Result<Written, WriteError> {
        match self {
            Blobs::Local(files) => files.concat(versions).await,
            Blobs::Upstream(upstream) => upstream.concat(versions).await,
        }
    }

    /// The bytes of `version`, for a download.
    pub async fn open_body(&self, version: &str) -> io::Result<ObjectBody> {
        match self {
            Blobs::Local(files) => Ok(ObjectBody::File(files.open_file(version).await?)),
            Blobs::Upstream(upstream) => Ok(ObjectBody::Remote(upstream.reader(version)?)),
        }
    }

    /// Deletes a version's bytes; ones already gone are not an error.
    pub async fn remove(&self, version: &str) -> io::Result<()> {
        match self {
            Blobs::Local(files) => files.remove(version).await,
            Blobs::Upstream(upstream) => upstream.remove(version).await,
        }
    }

    /// Versions whose bytes were last written before `before`.
    pub async fn versions_older_than(
        &self,
        before: SystemTime,
    ) -> io::Result<BoxStream<'static, io::Result<String>>> {
        match self {
            Blobs::Local(files) => {
                let found = files.versions_older_than(before).await?;
                Ok(futures::stream::iter(found.into_iter().map(Ok)).boxed())
            }
            Blobs::Upstream(upstream) => Ok(upstream.versions_older_than(before)),
        }
    }

    /// Finishes what writers that died left behind beyond the collector's
    /// reach (unfinished upstream multipart uploads); returns how many.
    pub async fn abandoned_uploads(&self, grace: Duration) -> io::Result<usize> {
        match self {
            Blobs::Local(_) => Ok(0),
            Blobs::Upstream(upstream) => upstream.abort_abandoned(grace).await,
        }
    }

    /// `local` or `s3://bucket/prefix`, for logs and `/health`.
    pub fn describe(&self) -> String {
        match self {
            Blobs::Local(files) => format!("local {}", files.root().display()),
            Blobs::Upstream(upstream) => upstream.describe(),
        }
    }
}
