//! `selfdb projects ...`: a client of `/api/v1/projects` on a running
//! instance (add, list, show, rotate-key, pause, resume, remove, changes).
//! The instance is found as for `selfdb functions`.

use super::functions::{print, target};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(subcommand)]
    pub command: ProjectsCommand,
    /// The instance's URL (default: SELFDB_URL, then .selfdb/selfdb.env).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The service key (default: SELFDB_SERVICE_KEY, then .selfdb/selfdb.env).
    #[arg(long, global = true)]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Register a PostgreSQL database by URL and print its projectId and
    /// API key (shown only now). `sslmode` and `sslrootcert` in the URL are
    /// honoured as libpq does. A URL given here is visible to other local
    /// users in the process list while the command runs: leave it out (or
    /// give `-`) to read it from standard input or SELFDB_PROJECT_URL.
    Add {
        name: String,
        database_url: Option<String>,
        /// A PEM file with the root certificate to trust (verify-ca/-full).
        #[arg(long)]
        ca_certificate: Option<std::path::PathBuf>,
        /// Schemas to expose (default: public).
        #[arg(long = "schema")]
        schemas: Vec<String>,
        /// Most connections each host opens to the database.
        #[arg(long)]
        pool_size: Option<i32>,
        /// Install an event trigger that reports DDL at once (needs a
        /// superuser); otherwise the schema is polled.
        #[arg(long)]
        install_triggers: bool,
        /// Whether the URL reaches a pooler in transaction mode (PgBouncer):
        /// then nothing outlives a transaction. Probed when not given.
        #[arg(long)]
        transaction_pooling: Option<bool>,
        /// Email schema changes to this address.
        #[arg(long)]
        notify_email: Option<String>,
        /// POST schema changes to this URL (signed; the secret is printed).
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// List projects.
    List,
    /// Show one project (by id or name).
    Show {
        project: String,
    },
    /// Replace a project's API key; the old one is refused at once.
    RotateKey {
        project: String,
    },
    /// Refuse a project's requests until it is resumed.
    Pause {
        project: String,
    },
    Resume {
        project: String,
    },
    /// Forget a project (and remove its event trigger, if installed).
    Remove {
        project: String,
    },
    /// A project's detected schema changes, newest first.
    Changes {
        project: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub async fn run(args: ProjectsArgs) -> anyhow::Result<()> {
    let target = target(args.url, args.key)?;
    let base = "/api/v1/projects";
    let answer: Value = match args.command {
        ProjectsCommand::Add {
            name,
            database_url,
            ca_certificate,
            schemas,
            pool_size,
            install_triggers,
            transaction_pooling,
            notify_email,
            webhook_url,
        } => {
            let database_url = match database_url.filter(|url| url != "-") {
                Some(url) => url,
                None => database_url_from_env_or_stdin()?,
            };
            let mut body = json!({"name": name, "database_url": database_url});
            if let Some(path) = ca_certificate {
                let pem = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                body["ca_certificate"] = json!(pem);
            }
            if !schemas.is_empty() {
                body["schemas"] = json!(schemas);
            }
            if let Some(size) = pool_size {
                body["pool_size"] = json!(size);
            }
            if install_triggers {
                body["install_triggers"] = json!(true);
            }
            if let Some(pooling) = transaction_pooling {
                body["transaction_pooling"] = json!(pooling);
            }
            if let Some(email) = notify_email {
                body["notify_email"] = json!(email);
            }
            if let Some(url) = webhook_url {
                body["webhook_url"] = json!(url);
            }
            target
                .json(target.request(Method::POST, base).json(&body))
                .await?
        }
        ProjectsCommand::List => target.json(target.request(Method::GET, base)).await?,
        ProjectsCommand::Show { project } => {
            target
                .json(target.request(Method::GET, &format!("{base}/{project}")))
                .await?
        }
        ProjectsCommand::RotateKey { project } => {
            target
                .json(target.request(Method::POST, &format!("{base}/{project}/rotate-key")))
                .await?
        }
        ProjectsCommand::Pause { project } => {
            target
                .json(target.request(Method::POST, &format!("{base}/{project}/pause")))
                .await?
        }
        ProjectsCommand::Resume { project } => {
            target
                .json(target.request(Method::POST, &format!("{base}/{project}/resume")))
                .await?
        }
        ProjectsCommand::Remove { project } => {
            target
                .json(target.request(Method::DELETE, &format!("{base}/{project}")))
                .await?
        }
        ProjectsCommand::Changes { project, limit } => {
            target
                .json(target.request(
                    Method::GET,
                    &format!("{base}/{project}/schema-changes?limit={limit}"),
                ))
                .await?
        }
    };
    print(&answer);
    Ok(())
}

/// The database URL from SELFDB_PROJECT_URL, or else the first line of
/// standard input (prompted for, unechoed, on a terminal).
fn database_url_from_env_or_stdin() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if let Ok(url) = std::env::var("SELFDB_PROJECT_URL") {
        if !url.trim().is_empty() {
            return Ok(url.trim().to_owned());
        }
    }
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        // Not echoed: the URL holds a password.
        rpassword::prompt_password("database URL: ")?
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line
    };
    let url = line.trim();
    anyhow::ensure!(
        !url.is_empty(),
        "no database URL: give it as an argument, in SELFDB_PROJECT_URL, or on standard input"
    );
    Ok(url.to_owned())
}
