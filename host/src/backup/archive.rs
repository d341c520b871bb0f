//! The archive: one uncompressed tar (the dump is compressed already, and
//! object bytes seldom compress), members in a fixed order, and
//! `manifest.json` last, listing every other member with its size and
//! SHA-256. An archive cut short has no manifest; a changed byte changes a
//! hash; either is refused before anything is restored.
//!
//! Members: `selfdb-backup` (`selfdb-backup 1`), `db.dump` (pg_dump's
//! custom format), `roles.sql`, `secrets.key`, `objects/<vv>/<version>`
//! (one per object file), `manifest.json`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "selfdb-backup";
pub const FORMAT_VERSION: u32 = 1;
const MARKER: &str = "selfdb-backup";
const MARKER_TEXT: &[u8] = b"selfdb-backup 1\n";
const MANIFEST: &str = "manifest.json";
/// Larger than any manifest (a few hundred bytes per object): a bound on
/// what a corrupted header can make restore read into memory.
const MANIFEST_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub selfdb_version: String,
    /// The newest platform migration the database had.
    pub migration: i32,
    pub postgres: PostgresVersions,
    pub storage: StorageSummary,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostgresVersions {
    pub server: String,
    pub pg_dump: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageSummary {
    /// `local <dir>` or `s3://...` of the instance backed up.
    pub backend: String,
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] io::Error),
    #[error("not a SelfDB backup (it does not start with the `selfdb-backup` member)")]
    NotABackup,
    #[error("the archive is truncated or corrupted: {0}")]
    Corrupted(String),
    #[error("the archive is truncated: it has no manifest (the backup that wrote it did not finish, or the file was cut short)")]
    NoManifest,
    #[error("the archive's manifest is unreadable: {0}")]
    BadManifest(String),
    #[error("the archive is format version {0}; this SelfDB reads version {FORMAT_VERSION}")]
    UnknownVersion(u32),
    #[error("member {path}: {why}")]
    Member { path: String, why: String },
}

/// Writes an archive as `<name>.partial` beside its final name, and
/// renames it only once the manifest is written and the file synced, so
/// no file named `selfdb-*.tar` is ever incomplete.
pub struct ArchiveWriter {
    builder: tar::Builder<BufWriter<File>>,
    members: Vec<Member>,
    partial: PathBuf,
    done: PathBuf,
}

impl ArchiveWriter {
    pub fn create(dir: &Path, name: &str) -> io::Result<Self> {
        let done = dir.join(name);
        let partial = dir.join(format!("{name}.partial"));
        // It holds the secrets key, the JWT secret and password hashes.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&partial)?
        };
        let mut writer = ArchiveWriter {
            builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)),
            members: Vec::new(),
            partial,
            done,
        };
        writer.append(MARKER, MARKER_TEXT.len() as u64, MARKER_TEXT)?;
        Ok(writer)
    }

    /// Adds `size` bytes read from `reader` as `path`; a reader that ends
    /// early or runs on is an error, never a short member.
    pub fn append(&mut self, path: &str, size: u64, reader: impl Read) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let mut hashing = Hashing::new(reader.take(size + 1));
        // `append_data` pads from what it copied: count first, so a short
        // source cannot leave a short member behind unnoticed.
        self.builder.append_data(&mut header, path, &mut hashing)?;
        if hashing.count != size {
            return Err(io::Error::other(format!(
                "{path}: expected {size} bytes, read {}",
                hashing.count
            )));
        }
        self.members.push(Member {
            path: path.to_owned(),
            size,
            sha256: hashing.finish(),
        });
        Ok(())
    }

    pub fn append_file(&mut self, path: &str, file: &Path) -> io::Result<()> {
        let size = std::fs::metadata(file)?.len();
        self.append(path, size, BufReader::new(File::open(file)?))
    }

    pub fn append_bytes(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.append(path, bytes.len() as u64, bytes)
    }

    /// Writes the manifest (with every member so far), makes the file
    /// durable and gives it its final name.
    pub fn finish(mut self, mut manifest: Manifest) -> io::Result<PathBuf> {
        manifest.members = std::mem::take(&mut self.members);
        let text = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_data(&mut header, MANIFEST, text.as_slice())?;
        let file = self
            .builder
            .into_inner()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.partial, &self.done)?;
        if let Some(dir) = self.done.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.done.clone())
    }

    /// Removes the unfinished file (a backup that failed).
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Where a member may be extracted, or why it may not: only the names
/// this format writes, so no member can name a path outside the stage.
fn member_path(path: &str) -> Option<PathBuf> {
    match path {
        "db.dump" | "roles.sql" | "secrets.key" => Some(PathBuf::from(path)),
        _ => {
            let rest = path.strip_prefix("objects/")?;
            let (shard, version) = rest.split_once('/')?;
            let valid = storage_s3s::files::check_version(version).is_ok()
                && version.get(..2) == Some(shard);
            valid.then(|| PathBuf::from("objects").join(shard).join(version))
        }
    }
}

/// Reads the whole archive into `stage`, hashing as it goes, and returns
/// its manifest once every member is present with its size and hash.
/// Nothing outside `stage` is written.
pub fn extract_verified(archive: &Path, stage: &Path) -> Result<Manifest, ArchiveError> {
    let file = File::open(archive)?;
    let mut tar = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let mut found: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest_text: Option<Vec<u8>> = None;
    let mut first = true;
    let entries = tar
        .entries()
        .map_err(|e| ArchiveError::Corrupted(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Corrupted(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| ArchiveError::Corrupted(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let size = entry
            .header()
            .size()
            .map_err(|e| ArchiveError::Corrupted(e.to_string()))?;
        if manifest_text.is_some() {
            return Err(ArchiveError::Member {
                path,
                why: "comes after the manifest".into(),
            });
        }
        if first {
            first = false;
            let mut marker = Vec::new();
            (&mut entry).take(64).read_to_end(&mut marker)?;
            if path != MARKER || marker != MARKER_TEXT {
                return Err(ArchiveError::NotABackup);
            }
            continue;
        }
        if path == MANIFEST {
            if size > MANIFEST_MAX_BYTES {
                return Err(ArchiveError::BadManifest(format!("{size} bytes")));
            }
            let mut text = Vec::new();
            (&mut entry).take(size).read_to_end(&mut text)?;
            if text.len() as u64 != size {
                return Err(ArchiveError::Corrupted(format!(
                    "the manifest is cut short ({} of {size} bytes)",
                    text.len()
                )));
            }
            manifest_text = Some(text);
            continue;
        }
        let Some(relative) = member_path(&path) else {
            return Err(ArchiveError::Member {
                path,
                why: "is not a member this format has".into(),
            });
        };
        if found.contains_key(&path) {
            return Err(ArchiveError::Member {
                path,
                why: "appears twice".into(),
            });
        }
        let target = stage.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = BufWriter::new(File::create(&target)?);
        let mut hashing = Hashing::new(&mut entry);
        let copied = io::copy(&mut hashing, &mut out)
            .map_err(|e| ArchiveError::Corrupted(format!("{path}: {e}")))?;
        out.flush()?;
        if copied != size {
            return Err(ArchiveError::Corrupted(format!(
                "{path} is cut short ({copied} of {size} bytes)"
            )));
        }
        found.insert(path, (size, hashing.finish()));
    }
    if first {
        return Err(ArchiveError::NotABackup);
    }
    let Some(text) = manifest_text else {
        return Err(ArchiveError::NoManifest);
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| ArchiveError::BadManifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::BadManifest(format!(
            "format {:?}, expected {FORMAT:?}",
            manifest.format
        )));
    }
    if manifest.format_version != FORMAT_VERSION {
        return Err(ArchiveError::UnknownVersion(manifest.format_version));
    }
    let mut listed: BTreeMap<&str, &Member> = BTreeMap::new();
    for member in &manifest.members {
        listed.insert(member.path.as_str(), member);
    }
    for member in &manifest.members {
        if member.path == MARKER {
            continue;
        }
        match found.get(&member.path) {
            None => {
                return Err(ArchiveError::Member {
                    path: member.path.clone(),
                    why: "is listed in the manifest but missing".into(),
                })
            }
            Some((size, sha256)) if *size != member.size || *sha256 != member.sha256 => {
                return Err(ArchiveError::Member {
                    path: member.path.clone(),
                    why: format!(
                        "does not match the manifest ({size} bytes, sha256 {sha256}; \
                         listed {} bytes, sha256 {})",
                        member.size, member.sha256
                    ),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = found
        .keys()
        .find(|path| !listed.contains_key(path.as_str()))
    {
        return Err(ArchiveError::Member {
            path: extra.clone(),
            why: "is not listed in the manifest".into(),
        });
    }
    for required in ["db.dump", "roles.sql", "secrets.key"] {
        if !found.contains_key(required) {
            return Err(ArchiveError::Member {
                path: required.into(),
                why: "is missing".into(),
            });
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            created_at: "2026-12-07T00:00:00Z".into(),
            selfdb_version: "test".into(),
            migration: 14,
            postgres: PostgresVersions {
                server: "15".into(),
                pg_dump: "15".into(),
            },
            storage: StorageSummary {
                backend: "local".into(),
                objects: 1,
                bytes: 5,
            },
            members: Vec::new(),
        }
    }

    fn write_archive(dir: &Path) -> PathBuf {
        let mut writer = ArchiveWriter::create(dir, "a.tar").unwrap();
        writer.append_bytes("db.dump", b"dump bytes").unwrap();
        writer.append_bytes("roles.sql", b"-- roles").unwrap();
        writer.append_bytes("secrets.key", b"key").unwrap();
        writer
            .append_bytes("objects/ab/ab0123456789abcdef", b"hello")
            .unwrap();
        writer.finish(manifest()).unwrap()
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("selfdb-archive-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_archive_extracts_and_verifies() {
        let dir = tempdir();
        let archive = write_archive(&dir);
        assert!(!dir.join("a.tar.partial").exists());
        let stage = dir.join("stage");
        let manifest = extract_verified(&archive, &stage).unwrap();
        assert_eq!(manifest.members.len(), 5);
        assert_eq!(
            std::fs::read(stage.join("objects/ab/ab0123456789abcdef")).unwrap(),
            b"hello"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_and_altered_archives_are_refused() {
        let dir = tempdir();
        let archive = write_archive(&dir);
        let bytes = std::fs::read(&archive).unwrap();
        // Cut before the manifest, on a block boundary and mid-block.
        let manifest_at = bytes
            .windows(MANIFEST.len())
            .position(|w| w == MANIFEST.as_bytes())
            .unwrap();
        for cut in [manifest_at - manifest_at % 512, bytes.len() / 2, 700] {
            let cut_path = dir.join(format!("cut-{cut}.tar"));
            std::fs::write(&cut_path, &bytes[..cut]).unwrap();
            let err = extract_verified(&cut_path, &dir.join(format!("s{cut}"))).unwrap_err();
            assert!(
                matches!(err, ArchiveError::NoManifest | ArchiveError::Corrupted(_)),
                "cut at {cut}: {err}"
            );
        }
        let mut flipped = bytes.clone();
        let at = flipped.windows(5).position(|w| w == b"hello").unwrap();
        flipped[at] ^= 0x20;
        let flipped_path = dir.join("flipped.tar");
        std::fs::write(&flipped_path, &flipped).unwrap();
        let err = extract_verified(&flipped_path, &dir.join("sf")).unwrap_err();
        assert!(
            err.to_string().contains("does not match the manifest"),
            "{err}"
        );
        let err = extract_verified(&dir.join("absent.tar"), &dir.join("sa")).unwrap_err();
        assert!(matches!(err, ArchiveError::Io(_)), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn members_cannot_name_paths_outside_the_stage() {
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "objects/../../x",
            "objects/ab/cd0123456789",
            "objects/ab/ab01/../../x",
            "pg/PG_VERSION",
        ] {
            assert!(member_path(bad).is_none(), "{bad}");
        }
        assert!(member_path("objects/ab/ab0123456789abcdef").is_some());
    }
}
