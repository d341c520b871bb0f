//! `selfdb restore ARCHIVE --data-dir DIR`: a new instance identical to the
//! one backed up (same keys, users and passwords, rows, objects, functions
//! and secrets). By default a `selfdb dev` instance, its own cluster in
//! DIR; with `--database-url` one for `selfdb serve`, in an existing empty
//! database, with DIR holding its secrets key and object files (or, with
//! `--storage-backend`, the object bytes in an S3 prefix no instance has
//! claimed).
//!
//! Nothing is overwritten until everything is known to be good: the
//! archive is extracted into a staging directory beside DIR and verified
//! against its manifest (a truncated or altered archive is refused there),
//! the new instance is built inside the staging directory (cluster, roles,
//! `pg_restore` in one transaction, every object the restored rows
//! reference checked), and only then moved to DIR, by a rename. A server
//! database is checked empty and an upstream prefix unclaimed before
//! anything is written to either; the dump then goes in as one transaction.
//!
//! Restore only archives you trust: `roles.sql` and the dump run as the
//! new cluster's superuser (or the `--database-url` role), who can do
//! anything that role can.

use super::archive::{extract_verified, Manifest};
use super::source::{libpq_environment, EMBEDDED_DATABASE};
use crate::db::connect::PgTarget;
use crate::embedded_pg::EmbeddedPg;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// What the restored instance runs on.
pub enum Target {
    /// A new embedded cluster in the data directory (`selfdb dev`).
    NewCluster,
    /// An existing, empty database (`selfdb serve`), and where object
    /// bytes go: the data directory's `storage/`, or an S3 prefix.
    Server {
        database_url: String,
        storage: Option<Box<storage_s3s::UpstreamConfig>>,
    },
}

pub struct RestoreOptions {
    /// A file, or `s3://bucket/prefix/selfdb-<time>.tar?endpoint=...`.
    pub archive: String,
    /// Keys for an `s3://` archive (else the usual AWS sources).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub data_dir: PathBuf,
    pub target: Target,
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
    match &options.target {
        Target::NewCluster => {
            let root = instance.clone();
            let mut pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&root))
                .await?
                .context("start the new instance's PostgreSQL cluster")?;
            let loaded = into_new_cluster(&pg, &extracted, &instance).await;
            let stopped = tokio::task::spawn_blocking(move || pg.stop()).await?;
            loaded?;
            stopped.context("stop the new instance's PostgreSQL cluster")?;
        }
        Target::Server {
            database_url,
            storage,
        } => {
            into_server(
                database_url,
                storage.as_deref(),
                &manifest,
                &extracted,
                &instance,
            )
            .await?
        }
    }

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

/// Roles, the dump, object files and the secrets key, into a new cluster
/// and the new instance's directory.
async fn into_new_cluster(
    pg: &EmbeddedPg,
    extracted: &Path,
    instance: &Path,
) -> anyhow::Result<()> {
    let maintenance = connect(&pg.url("postgres")).await?;
    maintenance
        .batch_execute(&format!(
            "create database {}",
            crate::db::quote_ident(EMBEDDED_DATABASE)
        ))
        .await?;
    let target = crate::db::connect::plain(
        pg.url(EMBEDDED_DATABASE)
            .parse()
            .context("the new cluster's URL")?,
    )?;
    // Roles belong to the cluster: any of its databases will do.
    load(&maintenance, &target, pg.bin_dir(), extracted).await?;
    drop(maintenance);
    let client = connect(&pg.url(EMBEDDED_DATABASE)).await?;
    let versions = referenced_versions(&client, extracted).await?;
    place_objects(&versions, extracted, instance, None).await?;
    finish(&client, extracted, instance).await
}

/// Roles and the dump into an existing empty database; object files into
/// the new instance's directory or an unclaimed S3 prefix; the secrets key
/// into the directory.
async fn into_server(
    database_url: &str,
    storage: Option<&storage_s3s::UpstreamConfig>,
    manifest: &Manifest,
    extracted: &Path,
    instance: &Path,
) -> anyhow::Result<()> {
    let target = crate::db::connect::parse(database_url, None).context("--database-url")?;
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .context("connect to --database-url")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // Checked before anything is written anywhere.
    let occupied: i64 = client
        .query_one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') \
               and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'",
            &[],
        )
        .await?
        .get(0);
    if occupied > 0 {
        bail!(
            "--database-url's database is not empty ({occupied} tables, views or sequences): \
             restore into a new, empty database (createdb); nothing was changed"
        );
    }
    let bin_dir = crate::embedded_pg::find_client_dir()?;
    let pg_restore = super::tool_version(&bin_dir, "pg_restore").await?;
    let dump_major = super::major_of(&manifest.postgres.pg_dump);
    if super::major_of(&pg_restore) < dump_major {
        bail!(
            "pg_restore {pg_restore} ({}) cannot read a dump made by pg_dump {}: install \
             postgresql-client-{dump_major} or point SELFDB_PG_BIN at its bin directory",
            bin_dir.display(),
            manifest.postgres.pg_dump
        );
    }
    let fresh = match storage {
        Some(config) => Some(storage_s3s::FreshPrefix::open(config).await?),
        None => None,
    };

    load(&client, &target, &bin_dir, extracted).await?;
    let versions = referenced_versions(&client, extracted).await?;
    place_objects(&versions, extracted, instance, fresh.as_ref()).await?;
    finish(&client, extracted, instance).await
}

/// Each version's bytes from the extracted archive into the new instance's
/// `storage/objects/`, or uploaded into an unclaimed S3 prefix.
async fn place_objects(
    versions: &[String],
    extracted: &Path,
    instance: &Path,
    prefix: Option<&storage_s3s::FreshPrefix>,
) -> anyhow::Result<()> {
    let objects = instance.join("storage").join("objects");
    if prefix.is_none() {
        std::fs::create_dir_all(&objects)?;
    }
    for version in versions {
        let shard = &version[..2];
        let from = extracted.join("objects").join(shard).join(version);
        match prefix {
            Some(prefix) => prefix.put_version(version, &from).await.with_context(|| {
                format!(
                    "upload object version {version} (the database is restored already: \
                     drop and create it, and empty the prefix, before restoring again)"
                )
            })?,
            None => {
                std::fs::create_dir_all(objects.join(shard))?;
                std::fs::rename(&from, objects.join(shard).join(version))?;
            }
        }
    }
    Ok(())
}

/// `roles.sql` through `roles` (a connection to the target cluster), then
/// the dump into `target`'s database in one transaction.
async fn load(
    roles: &tokio_postgres::Client,
    target: &PgTarget,
    bin_dir: &Path,
    extracted: &Path,
) -> anyhow::Result<()> {
    let script = std::fs::read_to_string(extracted.join("roles.sql"))?;
    roles.batch_execute(&script).await.context(
        "create the instance's roles (roles.sql; this needs a role that may create and alter \
         roles, such as the cluster's superuser)",
    )?;
    let database = target
        .config
        .get_dbname()
        .context("the database URL names no database")?
        .to_owned();
    let mut command = tokio::process::Command::new(bin_dir.join("pg_restore"));
    libpq_environment(&mut command, target)?;
    let output = command
        .args(["--exit-on-error", "--single-transaction", "--no-password"])
        .arg(format!("--dbname={database}"))
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
    Ok(())
}

/// The file versions the restored rows reference, each checked to be in
/// the archive with the size its row gives.
async fn referenced_versions(
    client: &tokio_postgres::Client,
    extracted: &Path,
) -> anyhow::Result<Vec<String>> {
    let mut versions = Vec::new();
    for row in client.query(super::FILE_VERSIONS_SQL, &[]).await? {
        let version: String = row.get(0);
        let size: Option<i64> = row.get(1);
        storage_s3s::files::check_version(&version)
            .with_context(|| format!("object version {version:?} in the restored rows"))?;
        let from = extracted.join("objects").join(&version[..2]).join(&version);
        let found = std::fs::metadata(&from).map(|m| m.len()).ok();
        if found.is_none() || found != size.and_then(|s| u64::try_from(s).ok()) {
            bail!("the archive lacks the bytes of object version {version} (or their size differs from its row)");
        }
        versions.push(version);
    }
    Ok(versions)
}

/// Makes the restored database a new instance and puts the secrets key in
/// its directory.
async fn finish(
    client: &tokio_postgres::Client,
    extracted: &Path,
    instance: &Path,
) -> anyhow::Result<()> {
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
