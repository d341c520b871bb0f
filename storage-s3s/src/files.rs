//! Object bytes on local disk.
//!
//! A file is named by a random version id, never by the object's key, so no
//! key can reach outside the store's directory, and a file is never
//! rewritten: an upload streams into `tmp/`, is fsynced, and is renamed into
//! `objects/` before its metadata row commits. Readers hold an open file,
//! so replacing or deleting an object never cuts a download short.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use std::io;
use std::path::{Path, PathBuf};
use tokio::fs;
use tokio::io::AsyncWriteExt;

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

/// A file written and fsynced under `objects/`, not yet referenced by any
/// metadata row. Dropping it without [`Written::keep`] removes the file.
#[derive(Debug)]
pub struct Written {
    pub version: String,
    pub size: u64,
    /// MD5 of the bytes, lowercase hex: S3's ETag for a single-part upload.
    pub etag: String,
    path: Option<PathBuf>,
}

impl Written {
    /// The metadata row committed: the file now belongs to it.
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

pub fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl FileStore {
    /// Opens (creating) the store under `root` and removes temp files left by
    /// an earlier process that died mid-upload.
    pub async fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("objects")).await?;
        let tmp = root.join("tmp");
        if fs::try_exists(&tmp).await? {
            let mut entries = fs::read_dir(&tmp).await?;
            let mut removed = 0usize;
            while let Some(entry) = entries.next_entry().await? {
                if fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed unfinished uploads from the storage temp dir"
                );
            }
        }
        fs::create_dir_all(&tmp).await?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a version's file. Versions are generated here (hex), but
    /// also read back from the database, so anything else is refused.
    pub fn path_of(&self, version: &str) -> io::Result<PathBuf> {
        let valid = version.len() >= 8
            && version.len() <= 64
            && version.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a storage file version",
            ));
        }
        Ok(self.root.join("objects").join(&version[..2]).join(version))
    }

    /// Streams `body` into a new file, at most `limit` bytes, and moves it
    /// into place once it is durable.
    pub async fn write<S, E>(&self, body: S, limit: Option<u64>) -> Result<Written, WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let version = new_version();
        let tmp_path = self.root.join("tmp").join(&version);
        let result = self.write_tmp(&tmp_path, body, limit).await;
        let (size, etag) = match result {
            Ok(done) => done,
            Err(err) => {
                let _ = fs::remove_file(&tmp_path).await;
                return Err(err);
            }
        };
        let path = self.place(&tmp_path, &version).await?;
        Ok(Written {
            version,
            size,
            etag,
            path: Some(path),
        })
    }

    async fn write_tmp<S, E>(
        &self,
        tmp_path: &Path,
        body: S,
        limit: Option<u64>,
    ) -> Result<(u64, String), WriteError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut file = fs::File::create(tmp_path).await?;
        let mut hasher = Md5::new();
        let mut size = 0u64;
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
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok((size, hex::encode(hasher.finalize())))
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
        sync_dir(&dir).await?;
        let size = fs::metadata(&path).await?.len();
        Ok(Written {
            version: new,
            size,
            etag: String::new(),
            path: Some(path),
        })
    }

    /// Concatenates the files of `versions` (multipart parts, or ranges of
    /// objects) into one new file.
    pub async fn concat(&self, versions: &[String]) -> Result<Written, WriteError> {
        let version = new_version();
        let tmp_path = self.root.join("tmp").join(&version);
        let result: Result<u64, io::Error> = async {
            let mut out = fs::File::create(&tmp_path).await?;
            let mut size = 0u64;
            for part in versions {
                let mut input = fs::File::open(self.path_of(part)?).await?;
                size += tokio::io::copy(&mut input, &mut out).await?;
            }
            out.flush().await?;
            out.sync_all().await?;
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
        Ok(Written {
            version,
            size,
            etag: String::new(),
            path: Some(path),
        })
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
    async fn limit_stops_the_write_and_leaves_nothing() {
        let dir = tempdir();
        let store = FileStore::open(&dir).await.unwrap();
        let err = store
            .write(chunks(&[b"12345", b"67890"]), Some(7))
            .await
            .unwrap_err();
        assert!(matches!(err, WriteError::TooLarge { limit: 7 }));
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn leftover_temp_files_are_removed_at_open() {
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        std::fs::write(dir.join("tmp").join("deadbeef"), b"partial").unwrap();
        FileStore::open(&dir).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn versions_from_elsewhere_cannot_name_other_paths() {
        let store = FileStore {
            root: PathBuf::from("/store"),
        };
        for bad in ["../../etc/passwd", "/etc/passwd", "ab", "abcdefgh/..", ""] {
            assert!(store.path_of(bad).is_err(), "{bad}");
        }
        assert!(store.path_of("0123456789abcdef").is_ok());
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("selfdb-files-{}", new_version()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
