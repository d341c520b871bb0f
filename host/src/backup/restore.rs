//! `selfdb restore ARCHIVE --data-dir DIR`: a new `selfdb dev` instance
//! identical to the one backed up (same keys, users and passwords, rows,
//! objects, functions and secrets).
//!
//! Nothing is overwritten until everything is known to be good: the
//! archive is extracted into a staging directory beside DIR and verified
//! against its manifest (a truncated or altered archive is refused there),
//! the new instance is built inside the staging directory (cluster, roles,
//! `pg_restore` in one transaction, every object the restored rows
//! reference checked), and only then moved to DIR, by a rename.
//!
//! Restore only archives you trust: `roles.sql` and the dump run as the
//! new cluster's superuser, who can do anything the `postgres` user can.

use super::archive::{extract_verified, Manifest};
use super::source::{libpq_environment, EMBEDDED_DATABASE};
use crate::embedded_pg::EmbeddedPg;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

pub struct RestoreOptions {
    /// A file, or `s3://bucket/prefix/selfdb-<time>.tar?endpoint=...`.
    pub archive: String,
    /// Keys for an `s3://` archive (else the usual AWS sources).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub data_dir: PathBuf,
    /// Move a non-empty DIR aside (to `DIR.before-restore-<time>`) rather
    /// than refusing.
    pub force: bool,
    /// Verify the archive and stop.
    pub check_only: bool,
}

/// What a restore did, for the command to print.
pub struct Restored {
    pub manifest: Manifest,
    /// Where an existing DIR was moved (`--force`).
    pub moved_aside: Option<PathBuf>,
}

pub async fn restore(options: &RestoreOptions) -> anyhow::Result<Restored> {
    let data_dir = std::path::absolute(&options.data_dir)?;
    let name = data_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("--data-dir needs a final path component")?
        .to_owned();
    let parent = data_dir
        .parent()
        .context("--data-dir needs a parent directory")?
        .to_owned();
    std::fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    if !options.check_only {
        if crate::embedded_pg::running_cluster(&data_dir)?.is_some() {
            bail!(
                "a host is serving {}: stop it before restoring over it",
                data_dir.display()
            );
        }
        if !options.force && !is_absent_or_empty(&data_dir)? {
            bail!(
                "{} is not empty: restore into a new directory, or give --force to move it aside",
                data_dir.display()
            );
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    // Beside DIR, so that the final move is a rename on one filesystem.
    // Others may pass through (the postgres user reaches the new cluster
    // inside) but not list it; the extracted archive, with the secrets
    // key, is the owner's alone.
    let stage = parent.join(format!(".{name}.restoring-{stamp}"));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o711).create(&stage)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(stage.join("archive"))?;
    }
    let result = build(options, &stage, &data_dir, &stamp).await;
    let _ = std::fs::remove_dir_all(&stage);
    result
}

async fn build(
    options: &RestoreOptions,
    stage: &Path,
    data_dir: &Path,
    stamp: &str,
) -> anyhow::Result<Restored> {
    let extracted = stage.join("archive");
    let archive = fetch(options, &extracted).await?;
    let target = extracted.clone();
    let manifest = tokio::task::spawn_blocking(move || extract_verified(&archive, &target))
        .await?
        .with_context(|| format!("{} refused", options.archive))?;
    let latest = crate::db::migrations::latest();
    if manifest.migration > latest {
        bail!(
            "{} was made by a newer SelfDB (its database is at migration {}, this binary \
             knows up to {latest}): restore it with that version or later",
            options.archive,
            manifest.migration
        );
    }
    if options.check_only {
        return Ok(Restored {
            manifest,
            moved_aside: None,
        });
    }

    let instance = stage.join("instance");
    std::fs::create_dir_all(&instance)?;
    let root = instance.clone();
    let mut pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&root))
        .await?
        .context("start the new instance's PostgreSQL cluster")?;
    let loaded = load(&pg, &extracted, &instance).await;
    let stopped = tokio::task::spawn_blocking(move || pg.stop()).await?;
    loaded?;
    stopped.context("stop the new instance's PostgreSQL cluster")?;

    let mut moved_aside = None;
    if data_dir.exists() {
        if is_absent_or_empty(data_dir)? {
            std::fs::remove_dir(data_dir)?;
        } else {
            let aside = PathBuf::from(format!("{}.before-restore-{stamp}", data_dir.display()));
            std::fs::rename(data_dir, &aside)
                .with_context(|| format!("move {} aside", data_dir.display()))?;
            moved_aside = Some(aside);
        }
    }
    if let Err(err) = std::fs::rename(&instance, data_dir) {
        if let Some(aside) = &moved_aside {
            let _ = std::fs::rename(aside, data_dir);
        }
        return Err(err)
            .with_context(|| format!("move the new instance to {}", data_dir.display()));
    }
    Ok(Restored {
        manifest,
        moved_aside,
    })
}

/// Roles, the dump, object files and the secrets key, into the new
/// instance's cluster and directory.
async fn load(pg: &EmbeddedPg, extracted: &Path, instance: &Path) -> anyhow::Result<()> {
    let maintenance = connect(&pg.url("postgres")).await?;
    maintenance
        .batch_execute(&format!(
            "create database {}",
            crate::db::quote_ident(EMBEDDED_DATABASE)
        ))
        .await?;
    let roles = std::fs::read_to_string(extracted.join("roles.sql"))?;
    maintenance
        .batch_execute(&roles)
        .await
        .context("create the instance's roles (roles.sql)")?;
    drop(maintenance);

    let target = crate::db::connect::plain(
        pg.url(EMBEDDED_DATABASE)
            .parse()
            .context("the new cluster's URL")?,
    )?;
    let mut command = tokio::process::Command::new(pg.bin_dir().join("pg_restore"));
    libpq_environment(&mut command, &target)?;
    let output = command
        .args(["--exit-on-error", "--single-transaction", "--no-password"])
        .arg(format!("--dbname={EMBEDDED_DATABASE}"))
        .arg(extracted.join("db.dump"))
        .output()
        .await
        .context("run pg_restore")?;
    if !output.status.success() {
        bail!(
            "pg_restore failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    // Every object file the restored rows reference must be in the archive.
    let client = connect(&pg.url(EMBEDDED_DATABASE)).await?;
    let objects = instance.join("storage").join("objects");
    std::fs::create_dir_all(&objects)?;
    for row in client.query(super::FILE_VERSIONS_SQL, &[]).await? {
        let version: String = row.get(0);
        let size: Option<i64> = row.get(1);
        storage_s3s::files::check_version(&version)
            .with_context(|| format!("object version {version:?} in the restored rows"))?;
        let shard = &version[..2];
        let from = extracted.join("objects").join(shard).join(&version);
        let found = std::fs::metadata(&from).map(|m| m.len()).ok();
        if found.is_none() || found != size.and_then(|s| u64::try_from(s).ok()) {
            bail!("the archive lacks the bytes of object version {version} (or their size differs from its row)");
        }
        std::fs::create_dir_all(objects.join(shard))?;
        std::fs::rename(&from, objects.join(shard).join(&version))?;
    }
    // The restored instance is a new one: it claims an upstream prefix of
    // its own rather than the original's (their collectors would take each
    // other's objects for orphans).
    client
        .execute(
            "delete from selfdb.settings where key in ('instance_id', 'backup_last_tick')",
            &[],
        )
        .await?;
    let key = std::fs::read(extracted.join("secrets.key"))?;
    crate::files::write_private(&instance.join("secrets.key"), &key)?;
    Ok(())
}

/// The archive as a local file: itself, or downloaded from S3 into the
/// (owner-only) extraction directory.
async fn fetch(options: &RestoreOptions, extracted: &Path) -> anyhow::Result<PathBuf> {
    if !options.archive.starts_with("s3://") {
        return Ok(PathBuf::from(&options.archive));
    }
    let mut location =
        storage_s3s::S3Location::parse(&options.archive).map_err(anyhow::Error::msg)?;
    let (folder, name) = match location.prefix.rsplit_once('/') {
        Some((folder, name)) => (folder.to_owned(), name.to_owned()),
        None => (String::new(), location.prefix.clone()),
    };
    if name.is_empty() {
        bail!("{} names no archive file", options.archive);
    }
    location.prefix = folder;
    let config = storage_s3s::UpstreamConfig::for_folder(
        location,
        options.access_key_id.clone(),
        options.secret_access_key.clone(),
    );
    let local = extracted.join(".download.tar");
    storage_s3s::S3Folder::open(&config)?
        .download(&name, &local)
        .await
        .with_context(|| format!("download {}", options.archive))?;
    Ok(local)
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connect to the new cluster")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn is_absent_or_empty(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(err) => Err(err).with_context(|| format!("read {}", dir.display())),
    }
}
