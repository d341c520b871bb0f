//! `selfdb backup`: one consistent archive of an instance while it serves.
//!
//! Everything an instance is lives in its database (data, users and their
//! password hashes, keys and the JWT secret, storage metadata and inline
//! objects, functions with their source and components, secrets sealed,
//! settings, projects) plus the object files and the key that seals
//! function secrets. The archive holds the database as `pg_dump` writes it
//! from one exported snapshot, the roles it needs, the object bytes every
//! row of that snapshot references, and the secrets key
//! ([`archive`] has the format).
//!
//! Consistency: a write commits either before the snapshot (its rows, its
//! inline bytes and its object file, durable before its row committed, are
//! all in the archive) or after it (none of it is). Object files are never
//! rewritten, and the only deletions of committed bytes (sweeps of
//! released rows, orphan collection) run under a shared advisory lock that
//! the backup holds exclusively from before its snapshot until the last
//! object is copied, so every file the snapshot references is still there
//! to copy (`storage_s3s::store::BYTES_DELETION_LOCK`). Uploads go on
//! meanwhile; deletions wait.

pub mod archive;
pub mod restore;
mod roles;
pub mod schedule;
pub mod source;

use crate::config::Settings;
use anyhow::{bail, Context};
use archive::{ArchiveWriter, Manifest, PostgresVersions, StorageSummary};
use source::Source;
use std::path::{Path, PathBuf};
use storage_s3s::store::BYTES_DELETION_LOCK;

/// File versions the snapshot's rows reference (objects and uploaded
/// multipart parts), with their sizes; inline bytes are in the dump.
pub(crate) const FILE_VERSIONS_SQL: &str = "\
    select version, (metadata->>'size')::bigint from storage.objects \
    where version is not null and version not like 'inline-%' \
    union select version, size from storage.s3_multipart_uploads_parts \
    order by 1";

/// Where archives go: a folder, or a prefix in an S3 store.
#[derive(Debug, Clone)]
pub enum Destination {
    Dir(PathBuf),
    S3(storage_s3s::UpstreamConfig),
}

impl Destination {
    /// A folder, or `s3://bucket[/prefix]?endpoint=...&region=...` with
    /// these keys (else the usual AWS sources).
    pub fn parse(
        text: &str,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> anyhow::Result<Self> {
        if !text.starts_with("s3://") {
            return Ok(Destination::Dir(std::path::absolute(text)?));
        }
        let location = storage_s3s::S3Location::parse(text).map_err(anyhow::Error::msg)?;
        Ok(Destination::S3(storage_s3s::UpstreamConfig::for_folder(
            location,
            access_key_id,
            secret_access_key,
        )))
    }
}

/// Writes one archive of the instance `settings` describe into `to` and
/// returns where it is: its path, or its `s3://` URL. An archive bound for
/// S3 is written beside the data directory first (`backups-outgoing/`),
/// uploaded, then deleted there.
pub async fn backup(settings: &Settings, to: &Destination) -> anyhow::Result<String> {
    let dir = match to {
        Destination::Dir(dir) => dir.clone(),
        Destination::S3(_) => settings.data_dir.join("backups-outgoing"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let source = Source::open(&settings.database, &settings.data_dir).await?;
    let result = write(settings, &source, &dir).await;
    let closed = source.close().await;
    let path = result?;
    closed?;
    let Destination::S3(config) = to else {
        return Ok(path.display().to_string());
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("an archive has a file name")?
        .to_owned();
    let folder = storage_s3s::S3Folder::open(config)?;
    let uploaded = folder.upload(&name, &path).await;
    let _ = std::fs::remove_file(&path);
    uploaded.with_context(|| format!("upload {name} to {}", config.location))?;
    Ok(folder.url_of(&name))
}

async fn write(settings: &Settings, source: &Source, to: &Path) -> anyhow::Result<PathBuf> {
    let client = source.connect().await?;
    let server_version: String = client
        .query_one("select current_setting('server_version')", &[])
        .await?
        .get(0);
    let server_major: i32 = client
        .query_one(
            "select current_setting('server_version_num')::int / 10000",
            &[],
        )
        .await?
        .get(0);
    let pg_dump_version = tool_version(&source.bin_dir, "pg_dump").await?;
    let dump_major = major_of(&pg_dump_version);
    if dump_major < server_major {
        bail!(
            "pg_dump {dump_major} ({}) cannot dump PostgreSQL {server_major}: install \
             postgresql-client-{server_major} or point SELFDB_PG_BIN at its bin directory",
            source.bin_dir.display()
        );
    }
    let secrets_key = match &settings.secrets_key {
        Some(key) => key.clone(),
        None => {
            let path = settings.data_dir.join("secrets.key");
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "read the secrets key {} (give --secrets-key, or the --data-dir of \
                         a host of this instance)",
                        path.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };

    // Deletions of object bytes wait from here until the copy is done.
    client
        .execute("select pg_advisory_lock($1)", &[&BYTES_DELETION_LOCK])
        .await
        .context("wait for storage deletions in progress")?;
    client
        .batch_execute("begin isolation level repeatable read, read only")
        .await?;
    let snapshot: String = client
        .query_one("select pg_export_snapshot()", &[])
        .await?
        .get(0);
    let migration: i32 = client
        .query_one(
            "select coalesce(max(version), 0) from selfdb.migrations",
            &[],
        )
        .await
        .context("this database is not a SelfDB instance's (no selfdb.migrations)")?
        .get(0);
    let mut versions: Vec<(String, u64)> = Vec::new();
    for row in client.query(FILE_VERSIONS_SQL, &[]).await? {
        let version: String = row.get(0);
        let size: Option<i64> = row.get(1);
        let Some(size) = size.and_then(|s| u64::try_from(s).ok()) else {
            bail!("object version {version} has no size in its row");
        };
        versions.push((version, size));
    }
    let roles_sql = roles::script(&client).await?;
    let instance_id: Option<String> = client
        .query_opt(
            "select value from selfdb.settings where key = 'instance_id'",
            &[],
        )
        .await?
        .map(|row| row.get(0));

    let stage = tempfile::Builder::new()
        .prefix(".selfdb-backup-")
        .tempdir_in(to)
        .context("make a staging directory beside the archive")?;
    let dump = stage.path().join("db.dump");
    let output = source
        .tool("pg_dump")?
        .arg("--format=custom")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--no-password")
        .arg("--file")
        .arg(&dump)
        .output()
        .await
        .context("run pg_dump")?;
    if !output.status.success() {
        bail!(
            "pg_dump failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    let blobs = open_blobs(settings, source, instance_id).await?;
    let created = chrono::Utc::now();
    let name = format!("selfdb-{}.tar", created.format("%Y%m%dT%H%M%S%.3fZ"));
    let bytes: u64 = versions.iter().map(|(_, size)| size).sum();
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        format_version: archive::FORMAT_VERSION,
        created_at: created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        selfdb_version: env!("CARGO_PKG_VERSION").into(),
        migration,
        postgres: PostgresVersions {
            server: server_version,
            pg_dump: pg_dump_version,
        },
        storage: StorageSummary {
            backend: blobs.describe(),
            objects: versions.len() as u64,
            bytes,
        },
        members: Vec::new(),
    };
    let runtime = tokio::runtime::Handle::current();
    let directory = to.to_owned();
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<PathBuf> {
        let mut writer = ArchiveWriter::create(&directory, &name)?;
        let filled = (|| -> anyhow::Result<()> {
            writer.append_file("db.dump", &dump)?;
            writer.append_bytes("roles.sql", roles_sql.as_bytes())?;
            writer.append_bytes("secrets.key", secrets_key.as_bytes())?;
            for (version, size) in &versions {
                let body = runtime
                    .block_on(blobs.open_body(version))
                    .with_context(|| format!("open object version {version}"))?;
                let stream = runtime.block_on(body.into_stream(0, *size))?;
                let reader = tokio_util::io::SyncIoBridge::new_with_handle(
                    tokio_util::io::StreamReader::new(stream),
                    runtime.clone(),
                );
                let path = format!("objects/{}/{version}", &version[..2]);
                writer
                    .append(&path, *size, reader)
                    .with_context(|| format!("copy object version {version}"))?;
            }
            Ok(())
        })();
        match filled {
            Ok(()) => Ok(writer.finish(manifest)?),
            Err(err) => {
                writer.abandon();
                Err(err)
            }
        }
    })
    .await??;
    drop(stage);
    client.batch_execute("commit").await?;
    client
        .execute("select pg_advisory_unlock($1)", &[&BYTES_DELETION_LOCK])
        .await?;
    Ok(written)
}

/// The instance's object bytes, opened for reading only: local files are
/// read in place (a host may be writing beside them), an upstream store
/// through its client.
async fn open_blobs(
    settings: &Settings,
    source: &Source,
    instance_id: Option<String>,
) -> anyhow::Result<storage_s3s::blobs::Blobs> {
    use storage_s3s::blobs::{Backend, Blobs};
    let backend = match &settings.storage_upstream {
        None => Backend::Local(settings.storage_dir.clone()),
        Some(upstream) => {
            let mut upstream = upstream.clone();
            upstream.instance_id = instance_id.context(
                "the instance has never opened its upstream store (no instance_id setting)",
            )?;
            Backend::Upstream(upstream)
        }
    };
    let pool = crate::db::pool_for(source.target.clone(), 2)?;
    Ok(Blobs::open_for_reading(&backend, &pool, settings.storage_max_object_bytes).await?)
}

/// `<program> --version`'s version, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
pub(crate) async fn tool_version(bin_dir: &Path, program: &str) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(bin_dir.join(program))
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("run {program} --version"))?;
    if !output.status.success() {
        bail!(
            "{program} --version failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .trim()
        .rsplit_once(") ")
        .map(|(_, version)| version)
        .unwrap_or(text.trim())
        .to_owned())
}

/// The major version of a version string (`15` of `15.18 (Debian ...)`),
/// 0 when there is none.
pub(crate) fn major_of(version: &str) -> i32 {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| !part.is_empty())
        .and_then(|major| major.parse().ok())
        .unwrap_or(0)
}
