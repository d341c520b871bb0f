//! Object bytes in an upstream S3 store (`--storage-backend s3://...`), so
//! that hosts on several machines serve the same objects. Metadata stays
//! in Postgres as with local files; only the bytes move, through the
//! `object_store` crate's S3 client.
//!
//! Each version is one key, `<prefix>/objects/<vv>/<version>`, written
//! before its row commits and never rewritten. Bodies up to [`PART_BYTES`]
//! are one PUT; larger ones one multipart upload (a few parts in flight,
//! so memory stays bounded), recorded in `storage.pending_blobs` until its
//! row commits: a host that dies mid-upload leaves a row there, and any
//! host's collector aborts the upload once it is older than the grace
//! period. Completed keys that no row references are found by listing
//! `objects/`, as local orphan files are found by reading the directory.
//! The store computes MD5 ETags itself while streaming, as for local files.

use crate::blobs::{Cleanup, WriteError, Written};
use crate::files::{check_version, new_version};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, PutPayloadMut,
    RetryConfig,
};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bodies up to this size are one PUT; larger ones are sent in parts of
/// exactly this size (R2 and others want equal parts but the last), or
/// larger where the object size limit needs it (see [`part_bytes_for`]).
const PART_BYTES: usize = 8 << 20;

/// S3 allows 10,000 parts; a margin keeps rounding from reaching it.
const MAX_PARTS: u64 = 9_000;

/// Everything but downloads gets a deadline, so a connection that hangs
/// cannot stall a writer or the sweeper forever. Generous: it covers an
/// 8 MiB part on a slow link and a server-side copy of 5 GiB.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(300);

/// The key beside `objects/` naming the instance that owns the prefix.
const OWNER_MARKER: &str = "selfdb-instance";

/// Parts of one upload sent at once: enough to keep a link busy while the
/// next part is read, few enough that an upload holds at most
/// `(PARTS_IN_FLIGHT + 1) * PART_BYTES` of memory.
const PARTS_IN_FLIGHT: usize = 3;

/// S3's CopyObject refuses sources above 5 GiB; larger copies stream.
const COPY_OBJECT_MAX_BYTES: u64 = 5 << 30;

/// Where an upstream store's objects are: `s3://bucket[/prefix]` with
/// `endpoint` and `region` as query options. Credentials never go in it
/// (it shows in process lists and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// `http[s]://host:port` of an S3-compatible store; AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl S3Location {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text.trim())
            .map_err(|err| format!("{text:?} is not an s3:// URL: {err}"))?;
        if url.scheme() != "s3" {
            return Err(format!("{text:?} must start with s3://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials do not belong in an s3:// URL: give them as \
                 --storage-s3-access-key-id and --storage-s3-secret-access-key"
                .into());
        }
        let bucket = url.host_str().unwrap_or_default().to_owned();
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !valid_bucket {
            return Err(format!(
                "{text:?} names no valid bucket (3 to 63 characters: a-z, 0-9, '.', '-', '_')"
            ));
        }
        // The URL parser resolves `a/../b` to `b`: look at the text itself.
        let raw_path = text
            .trim()
            .get("s3://".len()..)
            .unwrap_or_default()
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        if raw_path
            .split('/')
            .skip(1)
            .any(|part| part == "." || part == "..")
        {
            return Err(format!(
                "the prefix of {text:?} has an empty, '.' or '..' segment"
            ));
        }
        let prefix = percent_encoding::percent_decode_str(url.path().trim_matches('/'))
            .decode_utf8()
            .map_err(|_| format!("the prefix of {text:?} is not UTF-8"))?
            .into_owned();
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!(
                "the prefix of {text:?} has an empty, '.' or '..' segment"
            ));
        }
        let mut location = S3Location {
            bucket,
            prefix,
            endpoint: None,
            region: None,
        };
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "endpoint" => {
                    let endpoint = url::Url::parse(&value)
                        .ok()
                        .filter(|e| matches!(e.scheme(), "http" | "https") && e.has_host())
                        .ok_or_else(|| {
                            format!("endpoint {value:?} is not an http:// or https:// URL")
                        })?;
                    location.endpoint = Some(endpoint.as_str().trim_end_matches('/').to_owned());
                }
                "region" if !value.is_empty() => location.region = Some(value.into_owned()),
                other => {
                    return Err(format!(
                        "unknown option {other:?} in {text:?} (known: endpoint, region)"
                    ))
                }
            }
        }
        Ok(location)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        if let Some(endpoint) = &self.endpoint {
            write!(f, " at {endpoint}")?;
        }
        Ok(())
    }
}

/// How to reach an upstream store, and how long released bytes are kept.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub location: S3Location,
    /// Without both, the usual AWS sources are used (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, instance metadata, ...).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// How long a replaced or deleted object's bytes stay for downloads
    /// that had already started (see [`crate::blobs::Blobs::release_grace`]).
    pub release_grace: Duration,
    /// The orphan collector's grace period: a live writer refreshes its
    /// multipart upload's record well within it.
    pub orphan_grace: Duration,
    /// Names the instance (its database) that owns the prefix: two
    /// instances sharing one would take each other's bytes for orphans.
    pub instance_id: String,
}

impl UpstreamConfig {
    /// A store used as a folder of whole files (backup archives), where
    /// graces and the instance claim do not apply.
    pub fn for_folder(
        location: S3Location,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> Self {
        UpstreamConfig {
            location,
            access_key_id,
            secret_access_key,
            release_grace: Duration::ZERO,
            orphan_grace: Duration::ZERO,
            instance_id: String::new(),
        }
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("location", &self.location)
            .field("access_key_id", &self.access_key_id)
            .field("release_grace", &self.release_grace)
            .field("orphan_grace", &self.orphan_grace)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every request but downloads, each within [`CONTROL_TIMEOUT`].
    store: Arc<AmazonS3>,
    /// Downloads, which last as long as their client reads.
    reads: Arc<AmazonS3>,
    /// `<prefix>/objects`.
    objects: Path,
    owner: deadpool_postgres::Pool,
    location: S3Location,
    release_grace: Duration,
    part_bytes: usize,
    /// How often a writer refreshes its pending upload's record.
    heartbeat: Duration,
}

/// The part size that keeps an object of `max_object_bytes` within S3's
/// part count: 8 MiB up to about 70 GiB, then whole MiBs above.
fn part_bytes_for(max_object_bytes: u64) -> usize {
    let needed = max_object_bytes.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    needed.max(PART_BYTES as u64) as usize
}

/// An S3 client for `config`. Explicit keys are used alone (an
/// `AWS_SESSION_TOKEN` in the environment would not match them); without
/// them, the usual AWS sources.
fn client(config: &UpstreamConfig, timeout: Option<Duration>) -> object_store::Result<AmazonS3> {
    let location = &config.location;
    let explicit = config
        .access_key_id
        .as_ref()
        .zip(config.secret_access_key.as_ref());
    let mut builder = match explicit {
        Some((id, secret)) => AmazonS3Builder::new()
            .with_access_key_id(id)
            .with_secret_access_key(secret),
        None => AmazonS3Builder::from_env(),
    };
    let options = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
    let options = match timeout {
        Some(timeout) => options.with_timeout(timeout),
        None => options.with_timeout_disabled(),
    };
    builder = builder
        .with_bucket_name(&location.bucket)
        .with_client_options(options)
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            backoff: Default::default(),
        });
    if let Some(endpoint) = &location.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    }
    builder.build()
}

fn store_error(err: object_store::Error) -> io::Error {
    io::Error::from(err)
}

fn db_error(err: impl fmt::Display) -> io::Error {
    io::Error::other(format!("storage database: {err}"))
}

impl Upstream {
    /// Connects to the store, checks that the bucket answers and that the
    /// prefix is this instance's (claiming it when new), so a wrong URL or
    /// key fails at start rather than at the first upload.
    pub async fn open(
        config: &UpstreamConfig,
        owner: deadpool_postgres::Pool,
        max_object_bytes: u64,
    ) -> io::Result<Self> {
        let location = &config.location;
        let fail = |what: String| io::Error::other(format!("storage backend {location}: {what}"));
        let store = client(config, Some(CONTROL_TIMEOUT)).map_err(|e| fail(e.to_string()))?;
        // A download runs as long as its client reads: a whole-request
        // timeout would cut large objects.
        let reads = client(config, None).map_err(|e| fail(e.to_string()))?;
        let root = if location.prefix.is_empty() {
            Path::default()
        } else {
            Path::parse(&location.prefix).map_err(|e| fail(format!("bad prefix: {e}")))?
        };
        let objects = root.child("objects");
        let marker = root.child(OWNER_MARKER);
        let owner_id = match store.get(&marker).await {
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| fail(format!("does not answer: {e}")))?;
                String::from_utf8_lossy(&bytes).trim().to_owned()
            }
            Err(object_store::Error::NotFound { .. }) => {
                store
                    .put(&marker, PutPayload::from(config.instance_id.clone()))
                    .await
                    .map_err(|e| fail(format!("cannot be written: {e}")))?;
                config.instance_id.clone()
            }
            Err(err) => return Err(fail(format!("does not answer: {err}"))),
        };
        if owner_id != config.instance_id {
            return Err(fail(format!(
                "belongs to another SelfDB instance ({owner_id}, this one is {}): \
                 each instance needs its own bucket or prefix, or the collectors \
                 would take each other's objects for orphans",
                config.instance_id
            )));
        }
        Ok(Upstream {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                reads: Arc::new(reads),
                objects,
                owner,
                location: location.clone(),
                release_grace: config.release_grace,
                part_bytes: part_bytes_for(max_object_bytes),
                heartbeat: (config.orphan_grace / 4).max(Duration::from_millis(50)),
            }),
        })
    }

    pub fn release_grace(&self) -> Duration {
        self.inner.release_grace
    }

    pub fn describe(&self) -> String {
        self.inner.location.to_string()
    }

    /// The key of a version. Versions are generated here (hex), but also
    /// read back from the database, so anything else is refused.
    fn key_of(&self, version: &str) -> io::Result<Path> {
        check_version(version)?;
        Ok(self.inner.objects.child(&version[..2]).child(version))
    }

    fn unclaimed(&self, version: String, heartbeat: Option<Heartbeat>) -> Cleanup {
        Cleanup::Upstream(Unclaimed {
            upstream: self.clone(),
            version,
            heartbeat,
        })
    }

    pub async fn write<S, E>(&self, body: S, limit: Option<u64>) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: fmt::Display,
    {
        let version = new_version();
        let key = self.key_of(&version)?;
        let mut multipart: Option<MultipartWrite> = None;
        match self
            .write_into(&key, &version, body, limit, &mut multipart)
            .await
        {
            Ok((size, etag)) => {
                // The record stays, refreshed, until the row commits.
                let heartbeat = multipart.map(|upload| upload.heartbeat);
                Ok(Written::new(
                    version.clone(),
                    size,
                    etag,
                    self.unclaimed(version, heartbeat),
                ))
            }
            Err(err) => {
                if let Some(mut upload) = multipart {
                    // Parts still uploading during an abort may survive it.
                    upload.parts.shutdown().await;
                    self.abort(&key, &version, &upload.id).await;
                }
                Err(err)
            }
        }
    }

    async fn write_into<S, E>(
        &self,
        key: &Path,
        version: &str,
        body: S,
        limit: Option<u64>,
        multipart: &mut Option<MultipartWrite>,
    ) -> Result<(u64, String), WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: fmt::Display,
    {
        let mut hasher = Md5::new();
        let mut size = 0u64;
        let mut buffer = PutPayloadMut::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if let Some(limit) = limit {
                if size > limit {
                    return Err(WriteError::TooLarge { limit });
                }
            }
            hasher.update(&chunk);
            // A part goes out only once more bytes follow it, so a body of
            // exactly one part is still a single PUT.
            let part_bytes = self.inner.part_bytes;
            while buffer.content_length() + chunk.len() > part_bytes {
                let head = chunk.split_to(part_bytes - buffer.content_length());
                buffer.push(head);
                let part = std::mem::take(&mut buffer).freeze();
                if multipart.is_none() {
                    *multipart = Some(self.start_multipart(key, version).await?);
                }
                if let Some(upload) = multipart.as_mut() {
                    self.send_part(key, upload, part).await?;
                }
            }
            if !chunk.is_empty() {
                buffer.push(chunk);
            }
        }
        let etag = hex::encode(hasher.finalize());
        match multipart.as_mut() {
            None => {
                self.inner
                    .store
                    .put(key, buffer.freeze())
                    .await
                    .map_err(store_error)?;
            }
            Some(upload) => {
                if buffer.content_length() > 0 {
                    self.send_part(key, upload, buffer.freeze()).await?;
                }
                while let Some(done) = upload.parts.join_next().await {
                    upload.done.push(finished_part(done)?);
                }
                upload.done.sort_by_key(|(idx, _)| *idx);
                let parts = upload.done.drain(..).map(|(_, part)| part).collect();
                self.inner
                    .store
                    .complete_multipart(key, &upload.id, parts)
                    .await
                    .map_err(store_error)?;
            }
        }
        Ok((size, etag))
    }

    /// Starts a multipart upload and records it, in a task of its own:
    /// a caller dropped in between (a client that went away) must not
    /// leave an upload that no record names.
    async fn start_multipart(&self, key: &Path, version: &str) -> io::Result<MultipartWrite> {
        let upstream = self.clone();
        let key = key.clone();
        let recorded_version = version.to_owned();
        let id = tokio::spawn(async move {
            let version = recorded_version;
            let inner = &upstream.inner;
            let id = inner
                .store
                .create_multipart(&key)
                .await
                .map_err(store_error)?;
            let recorded = async {
                let client = inner.owner.get().await.map_err(db_error)?;
                client
                    .execute(
                        "insert into storage.pending_blobs (version, upload_id) values ($1, $2)",
                        &[&version, &id],
                    )
                    .await
                    .map_err(db_error)
            }
            .await;
            if let Err(err) = recorded {
                let _ = inner.store.abort_multipart(&key, &id).await;
                return Err(err);
            }
            Ok::<_, io::Error>(id)
        })
        .await
        .map_err(|err| io::Error::other(format!("starting an upload: {err}")))??;
        Ok(MultipartWrite {
            id,
            next_idx: 0,
            parts: tokio::task::JoinSet::new(),
            done: Vec::new(),
            heartbeat: Heartbeat::start(self.clone(), version.to_owned()),
        })
    }

    /// Queues one part, first waiting while [`PARTS_IN_FLIGHT`] are out.
    /// Parts run as tasks, so they go on while the body is read.
    async fn send_part(
        &self,
        key: &Path,
        upload: &mut MultipartWrite,
        part: PutPayload,
    ) -> io::Result<()> {
        while upload.parts.len() >= PARTS_IN_FLIGHT {
            if let Some(done) = upload.parts.join_next().await {
                upload.done.push(finished_part(done)?);
            }
        }
        let idx = upload.next_idx;
        upload.next_idx += 1;
        let store = self.inner.store.clone();
        let key = key.clone();
        let id = upload.id.clone();
        upload.parts.spawn(async move {
            store
                .put_part(&key, &id, idx, part)
                .await
                .map(|part| (idx, part))
        });
        Ok(())
    }

    /// Gives up an unfinished multipart upload, best effort: whatever is
    /// left, the collector finds through `storage.pending_blobs`.
    async fn abort(&self, key: &Path, version: &str, id: &str) {
        if let Err(err) = self.inner.store.abort_multipart(key, &id.to_owned()).await {
            tracing::warn!(%err, version, "aborting an upstream multipart upload");
            return;
        }
        self.forget_pending(version).await;
    }

    /// Drops a multipart upload's record, best effort: one left behind is
    /// dropped by the collector, which finds its row or aborts it.
    async fn forget_pending(&self, version: &str) {
        if let Ok(client) = self.inner.owner.get().await {
            let _ = client
                .execute(
                    "delete from storage.pending_blobs where version = $1",
                    &[&version],
                )
                .await;
        }
    }

    /// A new version with the bytes of `version`: S3's server-side copy
    /// (no byte crosses this host), streamed above CopyObject's limit.
    pub async fn copy(&self, version: &str) -> Result<Written, WriteError> {
        let from = self.key_of(version)?;
        let meta = self.inner.store.head(&from).await.map_err(store_error)?;
        if meta.size > COPY_OBJECT_MAX_BYTES {
            let source = self.inner.reads.get(&from).await.map_err(store_error)?;
            return self.write(source.into_stream(), None).await;
        }
        let new = new_version();
        let to = self.key_of(&new)?;
        self.inner
            .store
            .copy(&from, &to)
            .await
            .map_err(store_error)?;
        Ok(Written::new(
            new.clone(),
            meta.size,
            String::new(),
            self.unclaimed(new, None),
        ))
    }

    /// One new version from several (multipart parts): their bytes pass
    /// through this host once, as local parts are copied into one file.
    pub async fn concat(&self, versions: &[String]) -> Result<Written, WriteError> {
        let keys = versions
            .iter()
            .map(|v| self.key_of(v))
            .collect::<io::Result<Vec<_>>>()?;
        let store = self.inner.reads.clone();
        let sources: Vec<(Arc<AmazonS3>, Path)> =
            keys.into_iter().map(|key| (store.clone(), key)).collect();
        let bytes: BoxStream<'static, object_store::Result<Bytes>> = futures::stream::iter(sources)
            .then(whole)
            .try_flatten()
            .boxed();
        self.write(bytes, None).await
    }

    pub fn reader(&self, version: &str) -> io::Result<RemoteBody> {
        Ok(RemoteBody {
            store: self.inner.reads.clone(),
            key: self.key_of(version)?,
        })
    }

    pub async fn remove(&self, version: &str) -> io::Result<()> {
        match self.inner.store.delete(&self.key_of(version)?).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Versions of keys under `objects/` written before `before`, as the
    /// listing pages arrive (a large bucket never sits in memory whole).
    pub fn versions_older_than(
        &self,
        before: SystemTime,
    ) -> BoxStream<'static, io::Result<String>> {
        self.inner
            .store
            .list(Some(&self.inner.objects))
            .map_err(store_error)
            .try_filter_map(move |meta| async move {
                let old = SystemTime::from(meta.last_modified) < before;
                let version = meta
                    .location
                    .filename()
                    .filter(|name| check_version(name).is_ok())
                    .map(str::to_owned);
                Ok(version.filter(|_| old))
            })
            .boxed()
    }

    /// Aborts multipart uploads whose writer stopped saying it is alive
    /// more than `grace` ago (it died), deleting their keys when no row
    /// took them; returns how many.
    pub async fn abort_abandoned(&self, grace: Duration) -> io::Result<usize> {
        let client = self.inner.owner.get().await.map_err(db_error)?;
        let rows = client
            .query(
                "select version, upload_id from storage.pending_blobs \
                 where touched_at < now() - make_interval(secs => $1)",
                &[&grace.as_secs_f64()],
            )
            .await
            .map_err(db_error)?;
        let mut aborted = 0;
        for row in rows {
            let version: String = row.get(0);
            let id: String = row.get(1);
            // Taken only while still stale: a writer that came back to life
            // refreshed it, and another host may have taken it already.
            let taken = client
                .execute(
                    "delete from storage.pending_blobs \
                     where version = $1 and upload_id = $2 \
                       and touched_at < now() - make_interval(secs => $3)",
                    &[&version, &id, &grace.as_secs_f64()],
                )
                .await
                .map_err(db_error)?;
            if taken == 0 {
                continue;
            }
            let key = self.key_of(&version)?;
            // Fails harmlessly when the upload completed before its
            // writer died: the key is then judged below.
            if let Err(err) = self.inner.store.abort_multipart(&key, &id).await {
                tracing::debug!(%err, version, "aborting an abandoned upstream upload");
            }
            let referenced = client
                .query_opt(
                    "select 1 from storage.objects where version = $1 \
                     union all select 1 from storage.s3_multipart_uploads_parts where version = $1 \
                     limit 1",
                    &[&version],
                )
                .await
                .map_err(db_error)?
                .is_some();
            if !referenced {
                self.remove(&version).await?;
                aborted += 1;
            }
        }
        if aborted > 0 {
            tracing::info!(aborted, "aborted upstream uploads whose hosts stopped");
        }
        Ok(aborted)
    }
}

/// A GET of a whole key. A function and a boxed stream rather than a
/// closure: a closure's `async` block here trips the compiler's
/// higher-ranked `Send` inference in s3s's `async_trait` methods.
fn whole(
    (store, key): (Arc<AmazonS3>, Path),
) -> futures::future::BoxFuture<
    'static,
    object_store::Result<BoxStream<'static, object_store::Result<Bytes>>>,
> {
    Box::pin(async move { store.get(&key).await.map(|got| got.into_stream()) })
}

/// One multipart upload in progress.
struct MultipartWrite {
    id: String,
    next_idx: usize,
    parts: tokio::task::JoinSet<object_store::Result<(usize, PartId)>>,
    done: Vec<(usize, PartId)>,
    heartbeat: Heartbeat,
}

/// Refreshes a pending upload's `touched_at` while its writer lives, from
/// the first part until its row commits (or it is given up); the
/// collector takes only records this stopped refreshing.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    fn start(upstream: Upstream, version: String) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(upstream.inner.heartbeat);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Ok(client) = upstream.inner.owner.get().await else {
                    continue;
                };
                let _ = client
                    .execute(
                        "update storage.pending_blobs set touched_at = now() where version = $1",
                        &[&version],
                    )
                    .await;
            }
        });
        Heartbeat { task }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn finished_part(
    joined: Result<object_store::Result<(usize, PartId)>, tokio::task::JoinError>,
) -> io::Result<(usize, PartId)> {
    joined
        .map_err(|err| io::Error::other(format!("uploading a part: {err}")))?
        .map_err(store_error)
}

/// An upstream version written but not yet claimed by a committed row.
pub(crate) struct Unclaimed {
    upstream: Upstream,
    version: String,
    /// Written by multipart upload, so recorded in `storage.pending_blobs`
    /// and kept fresh there until claimed or abandoned.
    heartbeat: Option<Heartbeat>,
}

impl fmt::Debug for Unclaimed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unclaimed")
            .field("version", &self.version)
            .field("pending", &self.heartbeat.is_some())
            .finish()
    }
}

impl Unclaimed {
    /// Its row committed: the pending record, if any, is no longer needed
    /// (left behind, the collector finds the row and drops it).
    pub(crate) fn claimed(mut self) {
        let Some(heartbeat) = self.heartbeat.take() else {
            return;
        };
        drop(heartbeat);
        spawn_detached(async move { self.upstream.forget_pending(&self.version).await });
    }

    /// No row will take it: delete the key now rather than at the next
    /// collection.
    pub(crate) fn abandon(mut self) {
        let pending = self.heartbeat.take().is_some();
        spawn_detached(async move {
            if let Err(err) = self.upstream.remove(&self.version).await {
                tracing::warn!(%err, version = self.version, "deleting an unclaimed upstream object");
                return;
            }
            if pending {
                self.upstream.forget_pending(&self.version).await;
            }
        });
    }
}

/// Runs cleanup on the current runtime; outside one (a test's end, a
/// shutdown) the collector does it later.
fn spawn_detached(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

/// A version to download: each range is one ranged GET, made when the
/// download starts.
pub struct RemoteBody {
    store: Arc<AmazonS3>,
    key: Path,
}

impl RemoteBody {
    pub async fn stream(
        self,
        start: u64,
        length: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        if length == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + length)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.key, options)
            .await
            .map_err(store_error)?;
        Ok(got.into_stream().map_err(store_error).boxed())
    }
}

/// A folder of whole files in an S3 store (backup archives), apart from
/// any instance's objects: upload a local file, download one, list and
/// delete.
pub struct S3Folder {
    store: AmazonS3,
    reads: AmazonS3,
    prefix: Path,
    location: S3Location,
}

impl S3Folder {
    pub fn open(config: &UpstreamConfig) -> io::Result<Self> {
        let location = &config.location;
        let fail = |e: object_store::Error| io::Error::other(format!("{location}: {e}"));
        Ok(S3Folder {
            store: client(config, Some(CONTROL_TIMEOUT)).map_err(fail)?,
            reads: client(config, None).map_err(fail)?,
            prefix: Path::parse(&location.prefix)
                .map_err(|e| io::Error::other(format!("{location}: bad prefix: {e}")))?,
            location: location.clone(),
        })
    }

    /// `s3://bucket/prefix/name`.
    pub fn url_of(&self, name: &str) -> String {
        let mut url = format!("s3://{}", self.location.bucket);
        if !self.location.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.location.prefix);
        }
        format!("{url}/{name}")
    }

    /// Uploads `file` as `name`; nothing is visible under `name` until all
    /// of it is in.
    pub async fn upload(&self, name: &str, file: &std::path::Path) -> io::Result<()> {
        upload_file(&self.store, &self.prefix.child(name), file).await
    }

    /// Downloads `name` into `file` (created, mode 0600).
    pub async fn download(&self, name: &str, file: &std::path::Path) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let got = self
            .reads
            .get(&self.prefix.child(name))
            .await
            .map_err(store_error)?;
        let mut out = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(store_error)?).await?;
        }
        out.flush().await
    }

    /// Names of the files directly under the prefix.
    pub async fn list(&self) -> io::Result<Vec<String>> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(store_error)?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .collect())
    }

    pub async fn delete(&self, name: &str) -> io::Result<()> {
        match self.store.delete(&self.prefix.child(name)).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(err) => Err(store_error(err)),
        }
    }
}

/// Uploads a local file as `key`: one PUT up to [`PART_BYTES`], else a
/// multipart upload of 8 MiB parts, a few at once, aborted on failure.
async fn upload_file(store: &AmazonS3, key: &Path, file: &std::path::Path) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut input = tokio::fs::File::open(file).await?;
    let size = input.metadata().await?.len();
    if size <= PART_BYTES as u64 {
        let mut bytes = Vec::with_capacity(size as usize);
        input.read_to_end(&mut bytes).await?;
        store
            .put(key, PutPayload::from(bytes))
            .await
            .map_err(store_error)?;
        return Ok(());
    }
    let upload = store.put_multipart(key).await.map_err(store_error)?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let copied = async {
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buffer).await?;
            if n == 0 {
                return Ok::<_, io::Error>(());
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(store_error)?;
            writer.write(&buffer[..n]);
        }
    }
    .await;
    match copied {
        Ok(()) => {
            writer.finish().await.map_err(store_error)?;
            Ok(())
        }
        Err(err) => {
            let _ = writer.abort().await;
            Err(err)
        }
    }
}

/// An instance's prefix before any host has opened it, for `selfdb
/// restore` to fill with an archive's object versions under their own
/// names. The first host to open it claims it, as with any new prefix.
pub struct FreshPrefix {
    store: AmazonS3,
    objects: Path,
}

impl FreshPrefix {
    /// Refuses a prefix an instance has claimed or that holds objects: the
    /// restored instance would share them with another, whose collector
    /// would take its objects for orphans (and the reverse).
    pub async fn open(config: &UpstreamConfig) -> io::Result<Self> {
        let location = &config.location;
        let fail = |what: String| io::Error::other(format!("storage backend {location}: {what}"));
        let store = client(config, Some(CONTROL_TIMEOUT)).map_err(|e| fail(e.to_string()))?;
        let root = if location.prefix.is_empty() {
            Path::default()
        } else {
            Path::parse(&location.prefix).map_err(|e| fail(format!("bad prefix: {e}")))?
        };
        match store.head(&root.child(OWNER_MARKER)).await {
            Ok(_) => {
                return Err(fail(
                    "belongs to a SelfDB instance already: restore into a bucket or prefix \
                     of its own"
                        .into(),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => return Err(fail(format!("does not answer: {err}"))),
        }
        let objects = root.child("objects");
        if let Some(first) = store.list(Some(&objects)).next().await {
            let what = match first {
                Ok(meta) => format!(
                    "holds objects already ({}): restore into an empty prefix",
                    meta.location
                ),
                Err(err) => format!("cannot be listed: {err}"),
            };
            return Err(fail(what));
        }
        Ok(FreshPrefix { store, objects })
    }

    /// Uploads `file` as the bytes of `version`.
    pub async fn put_version(&self, version: &str, file: &std::path::Path) -> io::Result<()> {
        check_version(version)?;
        let key = self.objects.child(&version[..2]).child(version);
        upload_file(&self.store, &key, file).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_their_options() {
        let location = S3Location::parse(
            "s3://media-1/app/prod?endpoint=http://127.0.0.1:8333&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(
            location,
            S3Location {
                bucket: "media-1".into(),
                prefix: "app/prod".into(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: Some("eu-west-1".into()),
            }
        );
        let bare = S3Location::parse("s3://bucket").unwrap();
        assert_eq!(bare.prefix, "");
        assert_eq!(bare.endpoint, None);
        assert_eq!(
            S3Location::parse("s3://bucket/").unwrap().to_string(),
            "s3://bucket"
        );
    }

    #[test]
    fn bad_locations_say_why() {
        for (bad, why) in [
            ("http://bucket/x", "must start with s3://"),
            ("s3://ab", "no valid bucket"),
            ("s3://Bucket", "no valid bucket"),
            ("s3://key:secret@bucket", "credentials do not belong"),
            ("s3://bucket/a//b", "empty, '.' or '..'"),
            ("s3://bucket/a/../b", "empty, '.' or '..'"),
            (
                "s3://bucket?endpoint=ftp://x",
                "not an http:// or https:// URL",
            ),
            ("s3://bucket?secret=x", "unknown option"),
            ("bucket", "not an s3:// URL"),
        ] {
            let err = S3Location::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
