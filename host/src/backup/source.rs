//! Reaching the database of the instance being backed up: the embedded
//! cluster of a data directory (used as it is when a host is serving it,
//! started and stopped again otherwise) or the server of `selfdb serve`'s
//! URL; and running PostgreSQL's client tools against it with the
//! password in the environment, never on a command line.

use crate::config::DatabaseSource;
use crate::db::connect::{PgTarget, SslMode};
use crate::embedded_pg::EmbeddedPg;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// The database of the instance, open for the length of a backup.
pub struct Source {
    pub target: PgTarget,
    /// PostgreSQL's client programs (pg_dump) of a major version that can
    /// dump the server.
    pub bin_dir: PathBuf,
    /// A cluster this backup started, stopped when it ends.
    started: Option<EmbeddedPg>,
}

pub use crate::embedded_pg::EMBEDDED_DATABASE;

impl Source {
    pub async fn open(database: &DatabaseSource, data_dir: &Path) -> anyhow::Result<Self> {
        match database {
            DatabaseSource::External(url) => {
                let target = crate::db::connect::parse(url, None).context("the database URL")?;
                Ok(Source {
                    target,
                    bin_dir: crate::embedded_pg::find_client_dir()?,
                    started: None,
                })
            }
            DatabaseSource::Embedded => Self::embedded(data_dir).await,
        }
    }

    async fn embedded(data_dir: &Path) -> anyhow::Result<Self> {
        if !data_dir.join("pg").join("PG_VERSION").exists() {
            bail!(
                "{} holds no SelfDB instance (no pg/ cluster): give the instance's --data-dir, \
                 or --database-url for one run by `selfdb serve`",
                data_dir.display()
            );
        }
        let bin_dir = crate::embedded_pg::find_client_dir()?;
        if let Some(running) = crate::embedded_pg::running_cluster(data_dir)? {
            // A host is serving it: use it as it is, never stop it.
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(running.port)
                .user("postgres")
                .password(running.password)
                .dbname(EMBEDDED_DATABASE);
            return Ok(Source {
                target: crate::db::connect::plain(config)?,
                bin_dir,
                started: None,
            });
        }
        let root = data_dir.to_owned();
        let pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&root))
            .await?
            .context("start the instance's PostgreSQL cluster")?;
        let config: tokio_postgres::Config = pg
            .url(EMBEDDED_DATABASE)
            .parse()
            .context("the embedded cluster's URL")?;
        Ok(Source {
            target: crate::db::connect::plain(config)?,
            bin_dir,
            started: Some(pg),
        })
    }

    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .target
            .config
            .connect(self.target.tls.clone())
            .await
            .context("connect to the instance's database")?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "backup connection ended");
            }
        });
        Ok(client)
    }

    /// A client program (`pg_dump`) set up to reach this database through
    /// libpq's environment variables.
    pub fn tool(&self, program: &str) -> anyhow::Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(self.bin_dir.join(program));
        libpq_environment(&mut command, &self.target)?;
        Ok(command)
    }

    /// Stops a cluster this backup started.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(mut pg) = self.started.take() {
            tokio::task::spawn_blocking(move || pg.stop())
                .await?
                .context("stop the instance's PostgreSQL cluster")?;
        }
        Ok(())
    }
}

/// PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and the TLS settings of
/// `target`, so no secret shows in a process list.
pub fn libpq_environment(
    command: &mut tokio::process::Command,
    target: &PgTarget,
) -> anyhow::Result<()> {
    let config = &target.config;
    command.env_clear().env("PATH", "/usr/bin:/bin");
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => {
            command.env("PGHOST", host);
        }
        Some(Host::Unix(path)) => {
            command.env("PGHOST", path);
        }
        None => bail!("the database URL names no host"),
    }
    if let Some(port) = config.get_ports().first() {
        command.env("PGPORT", port.to_string());
    }
    if let Some(user) = config.get_user() {
        command.env("PGUSER", user);
    }
    if let Some(password) = config.get_password() {
        command.env("PGPASSWORD", String::from_utf8_lossy(password).as_ref());
    }
    if let Some(database) = config.get_dbname() {
        command.env("PGDATABASE", database);
    }
    command.env("PGSSLMODE", target.ssl_mode.as_str());
    if let Some(root) = &target.root_cert_path {
        command.env("PGSSLROOTCERT", root);
    } else if matches!(target.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        command.env("PGSSLROOTCERT", "system");
    }
    command.env("PGAPPNAME", "selfdb-backup");
    Ok(())
}
