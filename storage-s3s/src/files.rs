//! Object bytes on local disk.
//!
//! A file is named by a random version id, never by the object's key, so no
//! key can reach outside the store's directory, and a file is never
//! rewritten: an upload streams into `tmp/`, is fsynced, and is renamed into
//! `objects/` (and the directory fsynced) before its metadata row commits.
//! Small uploads are written and renamed first and then made durable by a
//! shared `syncfs` (group commit); either way no row commits before its
//! file is durable, and a file whose row never committed is an orphan that
//! start-up collects. Readers hold an open file, so replacing or deleting
//! an object never cuts a download short.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use std::io;
use std::path::{Path, PathBuf};
use tokio::fs;
use tokio::io::AsyncWriteExt;

use crate::blobs::Cleanup;
pub use crate::blobs::{WriteError, Written};

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    sync: SyncGroup,
}

/// Group commit for small objects: each waiter's file is written and
/// renamed into place before it queues, and one `syncfs` that starts after
/// the queue is taken makes every file of the batch and its directory entry
/// durable at once, instead of two fsyncs per object.
#[derive(Debug, Clone)]
struct SyncGroup {
    waiters: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl SyncGroup {
    fn start(root: PathBuf) -> Self {
        let (waiters, mut queue) = tokio::sync::mpsc::unbounded_channel::<
            tokio::sync::oneshot::Sender<Result<(), String>>,
        >();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = queue.try_recv() {
                    batch.push(more);
                }
                let root = root.clone();
                let synced = tokio::task::spawn_blocking(move || {
                    let dir = std::fs::File::open(&root)?;
                    nix::unistd::syncfs(&dir).map_err(io::Error::from)
                })
                .await;
                let outcome = match synced {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(err) => Err(err.to_string()),
                };
                for waiter in batch {
                    let _ = waiter.send(outcome.clone());
                }
            }
        });
        SyncGroup { waiters }
    }

    /// Returns once everything written before the call is durable.
    async fn durable(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters
            .send(tx)
            .map_err(|_| io::Error::other("the storage sync task stopped"))?;
        rx.await
            .map_err(|_| io::Error::other("the storage sync task stopped"))?
            .map_err(io::Error::other)
    }
}

/// Bodies up to this size are gathered in memory before they are written.
const SMALL_OBJECT_BYTES: u64 = 256 * 1024;

pub fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Refuses anything but a version this module could have made (8 to 64
/// hex digits): versions are read back from the database and become file
/// paths or upstream keys.
pub fn check_version(version: &str) -> io::Result<()> {
    let valid =
        version.len() >= 8 && version.len() <= 64 && version.bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a storage file version",
        ))
    }
}

impl FileStore {
    /// Opens (creating) the store under `root` and removes temp files left by
    /// an earlier process that died mid-upload.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("objects")).await?;
        let tmp = root.join("tmp");
        if fs::try_exists(&tmp).await? {
            let removed = remove_files_below(&tmp).await?;
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed unfinished uploads from the storage temp dir"
                );
            }
        }
        // Temp files are spread over 256 directories: ext4 allocates a
        // file's inode near its directory's, and one busy temp directory
        // made concurrent uploads queue on one inode group's lock.
        for shard in 0..=255u8 {
            fs::create_dir_all(tmp.join(format!("{shard:02x}"))).await?;
        }
        let sync = SyncGroup::start(root.clone());
        Ok(Self { root, sync })
    }

    /// The store under `root` as it is, for reading only (a backup): no
    /// temp file is touched, since a host may be writing them.
    pub fn for_reading(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let sync = SyncGroup::start(root.clone());
        Self { root, sync }
    }

    /// Where a version's bytes are written before they are moved into place.
    fn tmp_path_of(&self, version: &str) -> PathBuf {
        let shard = version.get(..2).unwrap_or("00");
        self.root.join("tmp").join(shard).join(version)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a version's file. Versions are generated here (hex), but
    /// also read back from the database, so anything else is refused.
    pub fn path_of(&self, version: &str) -> io::Result<PathBuf> {
        check_version(version)?;
        Ok(self.root.join("objects").join(&version[..2]).join(version))
    }

    /// Streams `body` into a new file, at most `limit` bytes, and moves it
    /// into place once it is durable. Small bodies are gathered in memory
    /// and written, synced and placed by one blocking task, which spares
    /// them most of the thread hops of async file I/O.
    pub async fn write<S, E>(&self, body: S, limit: Option<u64>) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let version = new_version();
        let tmp_path = self.tmp_path_of(&version);
        let result = self.write_body(&tmp_path, &version, body, limit).await;
        match result {
            Ok((size, etag, path)) => Ok(Written::new(version, size, etag, Cleanup::File(path))),
            Err(err) => {
                let _ = fs::remove_file(&tmp_path).await;
                Err(err)
            }
        }
    }

    async fn write_body<S, E>(
        &self,
        tmp_path: &Path,
        version: &str,
        body: S,
        limit: Option<u64>,
    ) -> Result<(u64, String, PathBuf), WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut hasher = Md5::new();
        let mut size = 0u64;
        let mut gathered: Vec<Bytes> = Vec::new();
        let mut file: Option<fs::File> = None;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| WriteError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if let Some(limit) = limit {
                if size > limit {
                    return Err(WriteError::TooLarge { limit });
                }
            }
            hasher.update(&chunk);
            match &mut file {
                Some(file) => file.write_all(&chunk).await?,
                None if size <= SMALL_OBJECT_BYTES => gathered.push(chunk),
                None => {
                    let mut created = fs::File::create(tmp_path).await?;
                    for part in gathered.drain(..) {
                        created.write_all(&part).await?;
                    }
                    created.write_all(&chunk).await?;
                    file = Some(created);
                }
            }
        }
        let etag = hex::encode(hasher.finalize());
        let path = self.path_of(version)?;
        match file {
            Some(mut file) => {
                file.flush().await?;
                file.sync_data().await?;
                drop(file);
                self.place(tmp_path, version).await?;
            }
            None => {
                let tmp_path = tmp_path.to_owned();
                let path = path.clone();
                tokio::task::spawn_blocking(move || write_small(&tmp_path, &path, &gathered))
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))??;
                self.sync.durable().await?;
            }
        }
        Ok((size, etag, path))
    }

    /// Renames a durable temp file to its version's path and makes the
    /// rename itself durable.
    async fn place(&self, tmp_path: &Path, version: &str) -> io::Result<PathBuf> {
        let path = self.path_of(version)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).await?;
        if let Err(err) = fs::rename(tmp_path, &path).await {
            let _ = fs::remove_file(tmp_path).await;
            return Err(err);
        }
        sync_dir(&dir).await?;
        Ok(path)
    }

    /// A new version sharing the bytes of `version` (a hard link: files are
    /// immutable, so a copy costs nothing).
    pub async fn link(&self, version: &str) -> io::Result<Written> {
        let source = self.path_of(version)?;
        let new = new_version();
        let path = self.path_of(&new)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).await?;
        fs::hard_link(&source, &path).await?;
        // A link keeps the source's old mtime; orphan collection goes by
        // mtime, so make the new name look as new as it is.
        let file = fs::OpenOptions::new().write(true).open(&path).await?;
        file.into_std()
            .await
            .set_modified(std::time::SystemTime::now())?;
        sync_dir(&dir).await?;
        let size = fs::metadata(&path).await?.len();
        Ok(Written::new(new, size, String::new(), Cleanup::File(path)))
    }

    /// Concatenates the files of `versions` (multipart parts, or ranges of
    /// objects) into one new file.
    pub async fn concat(&self, versions: &[String]) -> Result<Written, WriteError> {
        let version = new_version();
        let tmp_path = self.tmp_path_of(&version);
        let result: Result<u64, io::Error> = async {
            let mut out = fs::File::create(&tmp_path).await?;
            let mut size = 0u64;
            for part in versions {
                let mut input = fs::File::open(self.path_of(part)?).await?;
                size += tokio::io::copy(&mut input, &mut out).await?;
            }
            out.flush().await?;
            out.sync_data().await?;
            Ok(size)
        }
        .await;
        let size = match result {
            Ok(size) => size,
            Err(err) => {
                let _ = fs::remove_file(&tmp_path).await;
                return Err(err.into());
            }
        };
        let path = self.place(&tmp_path, &version).await?;
        Ok(Written::new(
            version,
            size,
            String::new(),
            Cleanup::File(path),
        ))
    }

    /// Versions of files under `objects/` last modified before `before`.
    pub async fn versions_older_than(
        &self,
        before: std::time::SystemTime,
    ) -> io::Result<Vec<String>> {
        let mut found = Vec::new();
        let mut shards = fs::read_dir(self.root.join("objects")).await?;
        while let Some(shard) = shards.next_entry().await? {
            if !shard.file_type().await?.is_dir() {
                continue;
            }
            let mut files = fs::read_dir(shard.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let modified = file.metadata().await?.modified()?;
                if modified < before {
                    if let Some(name) = file.file_name().to_str() {
                        found.push(name.to_owned());
                    }
                }
            }
        }
        Ok(found)
    }

    pub async fn open_file(&self, version: &str) -> io::Result<fs::File> {
        fs::File::open(self.path_of(version)?).await
    }

    /// Deletes a version's file; one already gone is not an error.
    pub async fn remove(&self, version: &str) -> io::Result<()> {
        match fs::remove_file(self.path_of(version)?).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Writes a small object and renames it into place in one go, on a
/// blocking thread; the caller then waits for the group sync, which makes
/// both durable.
fn write_small(tmp_path: &Path, path: &Path, parts: &[Bytes]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(tmp_path)?;
    for part in parts {
        file.write_all(part)?;
    }
    drop(file);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("an object path has a directory"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::rename(tmp_path, path)
}

/// Removes every file under `dir` (one level of subdirectories deep);
/// returns how many.
async fn remove_files_below(dir: &Path) -> io::Result<usize> {
    let mut removed = 0usize;
    let mut entries = fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_dir() {
            let mut inner = fs::read_dir(entry.path()).await?;
            while let Some(file) = inner.next_entry().await? {
                if fs::remove_file(file.path()).await.is_ok() {
                    removed += 1;
                }
            }
        } else if fs::remove_file(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir).await?.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn write_is_durable_and_dropped_files_vanish() {
        let dir = tempdir();
        let store = FileStore::open(&dir).await.unwrap();
        let written = store
            .write(chunks(&[b"hello ", b"world"]), None)
            .await
            .unwrap();
        assert_eq!(written.size, 11);
        assert_eq!(written.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let path = store.path_of(&written.version).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        drop(written);
        assert!(!path.exists());
        let kept = store.write(chunks(&[b"x"]), None).await.unwrap();
        let version = kept.version.clone();
        kept.keep();
        assert!(store.path_of(&version).unwrap().exists());
    }

    #[tokio::test]
    async fn large_bodies_stream_to_disk_whole() {
        let dir = tempdir();
        let store = FileStore::open(&dir).await.unwrap();
        let part = Bytes::from(vec![9u8; 200 * 1024]);
        let parts = futures::stream::iter(
            (0..3)
                .map(|_| Ok::<_, io::Error>(part.clone()))
                .collect::<Vec<_>>(),
        );
        let written = store.write(parts, None).await.unwrap();
        assert_eq!(written.size, 600 * 1024);
        let bytes = std::fs::read(store.path_of(&written.version).unwrap()).unwrap();
        assert_eq!(bytes, vec![9u8; 600 * 1024]);
        assert_eq!(written.etag, hex::encode(Md5::digest(&bytes)));
        assert_eq!(files_below(&dir.join("tmp")), 0);
    }

    #[tokio::test]
    async fn limit_stops_the_write_and_leaves_nothing() {
        let dir = tempdir();
        let store = FileStore::open(&dir).await.unwrap();
        let err = store
            .write(chunks(&[b"12345", b"67890"]), Some(7))
            .await
            .unwrap_err();
        assert!(matches!(err, WriteError::TooLarge { limit: 7 }));
        assert_eq!(files_below(&dir.join("tmp")), 0);
    }

    #[tokio::test]
    async fn leftover_temp_files_are_removed_at_open() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("tmp/de")).unwrap();
        std::fs::write(dir.join("tmp").join("deadbeef"), b"partial").unwrap();
        std::fs::write(dir.join("tmp/de").join("deadbeef"), b"partial").unwrap();
        FileStore::open(&dir).await.unwrap();
        assert_eq!(files_below(&dir.join("tmp")), 0);
    }

    #[tokio::test]
    async fn versions_from_elsewhere_cannot_name_other_paths() {
        let dir = tempdir();
        let store = FileStore::open(&dir).await.unwrap();
        for bad in ["../../etc/passwd", "/etc/passwd", "ab", "abcdefgh/..", ""] {
            assert!(store.path_of(bad).is_err(), "{bad}");
        }
        let good = store.path_of("0123456789abcdef").unwrap();
        assert!(good.starts_with(dir.join("objects")));
    }

    fn files_below(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_below(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("selfdb-files-{}", new_version()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
