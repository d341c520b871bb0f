//! Projects: a user's own PostgreSQL database, registered by URL, served at
//! once through the data API (`/projects/{id}/rest/v1`) and Dbify's
//! `/query` and `/api/crud`, with no migration in that database.
//!
//! - `store`: the registry in the platform database (`selfdb.projects`).
//! - `diff`: what changed between two schema caches.
//! - `watch` : schema-change detection (polling a catalog digest, or an
//!   event trigger when the user allows one) and its notifications.
//! - this file: the live projects of this host, keys, and registering.
//!
//! Every host keeps every project's row in memory (keys are checked
//! without a query) and opens a project's pool on first use. Changes made
//! on one host reach the others through `selfdb_projects` notifications.
//! A project key acts with the rights of the database user in the URL
//! (Dbify's model: a user's database has no `anon` or `authenticated`).

pub mod diff;
pub mod store;
pub mod watch;

use crate::auth::mailer::Mailer;
use crate::db::connect::{self, ConnectError, PgTarget};
use crate::db::external::{ExternalDb, ServerInfo};
use crate::db::DbError;
use crate::functions::sealed::SecretBox;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{NewProject, ProjectRow, Store, StoreError};

/// What a project key starts with, to tell it apart from JWTs and service
/// keys at a glance (and in secret scanners).
pub const KEY_PREFIX: &str = "sdbp_";

/// How long a database that failed to open is answered for by that
/// failure, without another attempt.
const RETRY_OPEN: Duration = Duration::from_secs(5);

/// How a host serves projects.
#[derive(Debug, Clone)]
pub struct ProjectSettings {
    /// How often each project's schema digest is compared (Dbify-style
    /// detection without an event trigger).
    pub schema_poll: Duration,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            schema_poll: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{0}")]
    Invalid(String),
    #[error("no project {0}")]
    NotFound(String),
    #[error(transparent)]
    Url(#[from] ConnectError),
    /// The database could not be used: the message names why.
    #[error("{message}")]
    Database { code: &'static str, message: String },
    #[error("the project is paused")]
    Paused,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored database URL of project {0:?} does not decrypt with this instance's secrets key")]
    Sealed(String),
}

impl ProjectError {
    /// Why a user's database could not be reached or used, in words that
    /// name the cause (and a code per cause).
    pub fn from_db(err: DbError) -> Self {
        let (code, message) = describe_db_error(&err);
        ProjectError::Database { code, message }
    }
}

fn describe_db_error(err: &DbError) -> (&'static str, String) {
    let pg = match err {
        DbError::Postgres(e) => Some(e),
        DbError::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
        _ => None,
    };
    if let Some(e) = pg {
        if let Some(db) = e.as_db_error() {
            let code = match db.code().code() {
                "28P01" | "28000" => "database_login_failed",
                "3D000" => "database_not_found",
                "53300" => "database_too_many_connections",
                "42501" => "database_permission_denied",
                _ => "database_error",
            };
            return (code, format!("the database refused: {}", db.message()));
        }
        let text = format!("{e:#}");
        let source = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let lower = format!("{text} {source}").to_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("ssl")
            || lower.contains("handshake")
        {
            return (
                "database_tls",
                format!("TLS with the database failed: {text} {source}")
                    .trim()
                    .to_owned(),
            );
        }
        return (
            "database_unreachable",
            format!("cannot reach the database: {text} {source}")
                .trim()
                .to_owned(),
        );
    }
    match err {
        DbError::Pool(deadpool_postgres::PoolError::Timeout(_)) => (
            "database_unreachable",
            "cannot reach the database: connecting timed out".to_owned(),
        ),
        other => ("database_error", other.to_string()),
    }
}

/// SHA-256 of a key, as stored.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn new_key() -> String {
    format!("{KEY_PREFIX}{}", crate::secrets::random_token(24))
}

/// A project as this host serves it.
pub struct Project {
    pub row: ProjectRow,
    key_hash: [u8; 32],
    db: tokio::sync::OnceCell<Arc<ExternalDb>>,
    /// When and why opening the database last failed.
    open_failed: std::sync::Mutex<Option<(std::time::Instant, &'static str, String)>>,
}

impl Project {
    pub fn id(&self) -> i64 {
        self.row.id
    }

    pub fn name(&self) -> &str {
        &self.row.name
    }

    /// Whether `key` is this project's.
    pub fn accepts(&self, key: &str) -> bool {
        key_hash(key) == self.key_hash
    }

    /// The pool, if it is open on this host.
    pub fn opened(&self) -> Option<Arc<ExternalDb>> {
        self.db.get().cloned()
    }
}

/// What registering answers with.
pub struct Registered {
    pub project: Arc<Project>,
    pub api_key: String,
    pub webhook_secret: Option<String>,
    pub server: ServerInfo,
    pub ssl_mode: &'static str,
    pub tables: Vec<String>,
    /// Why the event trigger could not be installed (schema polling is
    /// used instead).
    pub trigger_warning: Option<String>,
    /// Why the probe chose transaction pooling, when it did.
    pub pooling_warning: Option<String>,
}

/// What a registration asks for. Not `Debug`: the URL holds a password.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub name: String,
    pub database_url: String,
    #[serde(default)]
    pub ca_certificate: Option<String>,
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    #[serde(default)]
    pub pool_size: Option<i32>,
    #[serde(default)]
    pub install_triggers: bool,
    /// Whether the URL reaches a transaction-mode pooler; probed when not
    /// given.
    #[serde(default)]
    pub transaction_pooling: Option<bool>,
    #[serde(default)]
    pub notify_email: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
}

pub struct Projects {
    store: Store,
    sealer: SecretBox,
    mailer: Arc<Mailer>,
    webhooks: reqwest::Client,
    settings: ProjectSettings,
    live: RwLock<HashMap<i64, Arc<Project>>>,
    /// Wakes the schema watcher when projects were added or changed.
    changed: tokio::sync::Notify,
}

impl Projects {
    pub fn new(
        store: Store,
        secrets_key: &str,
        mailer: Arc<Mailer>,
        settings: ProjectSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            sealer: SecretBox::new(secrets_key),
            mailer,
            webhooks: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            settings,
            live: RwLock::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads every project's row (no database is connected yet); open
    /// pools of unchanged projects are kept.
    pub async fn load_all(&self) -> Result<usize, StoreError> {
        let rows = self.store.list().await?;
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            next.insert(id, Arc::new(merged(live.get(&id), row)));
        }
        *live = next;
        self.changed.notify_one();
        Ok(live.len())
    }

    /// Takes the stored row of project `id` again (another host changed
    /// it): a new key applies at once; a changed URL or pool size gets a
    /// new pool on next use; a deleted project is gone.
    pub async fn refresh(&self, id: i64) -> Result<(), StoreError> {
        let row = self.store.get(id).await?;
        let mut live = self.live.write().unwrap_or_else(|p| p.into_inner());
        match row {
            None => {
                live.remove(&id);
            }
            // Two refreshes may race (a notification and the changing
            // request's own): an older row never replaces a newer one.
            Some(row)
                if live
                    .get(&id)
                    .is_some_and(|old| old.row.updated_at > row.updated_at) => {}
            Some(row) => {
                let project = merged(live.get(&id), row);
                live.insert(id, Arc::new(project));
            }
        }
        self.changed.notify_one();
        Ok(())
    }

    pub fn get(&self, id: i64) -> Option<Arc<Project>> {
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// The project `key` belongs to.
    pub fn by_key(&self, key: &str) -> Option<Arc<Project>> {
        let hash = key_hash(key);
        self.live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|p| p.key_hash == hash)
            .cloned()
    }

    /// A project by id (digits) or name.
    pub fn find(&self, id_or_name: &str) -> Option<Arc<Project>> {
        match id_or_name.parse::<i64>() {
            Ok(id) => self.get(id),
            Err(_) => self
                .live
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .find(|p| p.row.name == id_or_name)
                .cloned(),
        }
    }

    pub fn all(&self) -> Vec<Arc<Project>> {
        let mut all: Vec<_> = self
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by_key(|p| p.row.id);
        all
    }

    /// The project's database, opened on first use. A database that just
    /// failed to open fails again at once for [`RETRY_OPEN`] (each attempt
    /// may wait out a connect timeout; requests and schema checks should
    /// not queue behind it).
    pub async fn database(&self, project: &Project) -> Result<Arc<ExternalDb>, ProjectError> {
        if project.row.paused {
            return Err(ProjectError::Paused);
        }
        if let Some(db) = project.db.get() {
            return Ok(db.clone());
        }
        let recent_failure = || {
            project
                .open_failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .filter(|(at, _, _)| at.elapsed() < RETRY_OPEN)
                .map(|(_, code, message)| ProjectError::Database { code, message })
        };
        if let Some(failure) = recent_failure() {
            return Err(failure);
        }
        project
            .db
            .get_or_try_init(|| async {
                // Callers that queued behind a failed attempt run the
                // initializer in turn: they take its failure instead.
                if let Some(failure) = recent_failure() {
                    return Err(failure);
                }
                let target = self.target(&project.row)?;
                let db = ExternalDb::open(
                    &target,
                    usize::try_from(project.row.pool_size).unwrap_or(10),
                    project.row.schemas.clone(),
                )
                .await
                .map_err(|err| {
                    let failure = ProjectError::from_db(err);
                    // Recorded before the cell lets the next caller in.
                    if let ProjectError::Database { code, message } = &failure {
                        *project
                            .open_failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) =
                            Some((std::time::Instant::now(), *code, message.clone()));
                    }
                    failure
                })?;
                db.set_transaction_pooling(project.row.transaction_pooling);
                Ok::<_, ProjectError>(Arc::new(db))
            })
            .await
            .cloned()
    }

    fn target(&self, row: &ProjectRow) -> Result<PgTarget, ProjectError> {
        let url = self
            .sealer
            .open(
                &seal_scope(&row.name),
                "url",
                &row.url_nonce,
                &row.url_ciphertext,
            )
            .map_err(|_| ProjectError::Sealed(row.name.clone()))?;
        Ok(connect::parse(&url, row.ca_certificate.as_deref())?)
    }

    /// Registers a database: connects, reads its schema, and stores the
    /// project only when all of that worked.
    pub async fn register(&self, request: Register) -> Result<Registered, ProjectError> {
        validate_name(&request.name)?;
        let schemas = request.schemas.unwrap_or_else(|| vec!["public".to_owned()]);
        if schemas.is_empty() || schemas.iter().any(|s| s.is_empty() || s.len() > 63) {
            return Err(ProjectError::Invalid(
                "schemas must name at least one schema".into(),
            ));
        }
        let pool_size = request.pool_size.unwrap_or(10);
        if !(1..=1000).contains(&pool_size) {
            return Err(ProjectError::Invalid(
                "pool_size must be between 1 and 1000".into(),
            ));
        }
        if let Some(email) = &request.notify_email {
            if !email.contains('@') || email.len() > 320 {
                return Err(ProjectError::Invalid(format!(
                    "notify_email {email:?} is not an address"
                )));
            }
        }
        if let Some(url) = &request.webhook_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ProjectError::Invalid(format!("webhook_url: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ProjectError::Invalid(
                    "webhook_url must be an http or https URL".into(),
                ));
            }
        }
        if connect::names_root_file(&request.database_url) {
            return Err(ProjectError::Invalid(
                "sslrootcert must not name a file for a project (every host must reach it): \
                 give the certificate as ca_certificate (PEM) instead"
                    .into(),
            ));
        }
        let target = connect::parse(&request.database_url, request.ca_certificate.as_deref())?;
        if target.config.get_dbname().is_none() {
            return Err(ProjectError::Invalid(
                "the database URL names no database".into(),
            ));
        }
        let ssl_mode = target.ssl_mode.as_str();
        let db = ExternalDb::open(
            &target,
            usize::try_from(pool_size).unwrap_or(10),
            schemas.clone(),
        )
        .await
        .map_err(ProjectError::from_db)?;
        let server = db.server_info().await.map_err(ProjectError::from_db)?;
        let digest = db.fingerprint().await.map_err(ProjectError::from_db)?;
        db.set_last_digest(digest.clone());
        let tables = db.table_names();
        let shape = serde_json::to_value(diff::Shape::of(&db.schema().get()))
            .unwrap_or(serde_json::Value::Null);
        // Before anything is installed in the user's database: a name
        // already taken must leave nothing behind there.
        if self.store.by_name(&request.name).await?.is_some() {
            return Err(StoreError::NameTaken(request.name).into());
        }
        // Whether sessions are kept (a direct connection, or a pooler in
        // session mode): LISTEN works, and prepared statements may stay.
        let sessions = watch::probe_sessions(&target, &db).await;
        let transaction_pooling = request.transaction_pooling.unwrap_or(sessions.is_err());
        db.set_transaction_pooling(transaction_pooling);
        // A direct connection can fail the probe too (a hot standby refuses
        // LISTEN, a connection limit): the user sees why, and can say
        // `"transaction_pooling": false`.
        let pooling_warning = match (&sessions, request.transaction_pooling) {
            (Err(why), None) => Some(format!(
                "statements are prepared and closed inside each transaction \
                 (transaction_pooling): {why}"
            )),
            _ => None,
        };
        let trigger_warning = match (&sessions, request.install_triggers) {
            (_, false) => None,
            (Err(why), true) => Some(format!(
                "the event trigger was not installed: {why}; schema changes are found by polling"
            )),
            (Ok(()), true) => watch::install_trigger(&request.name, &db).await.err(),
        };
        let key = new_key();
        let hash = key_hash(&key);
        let (url_nonce, url_ciphertext) =
            self.sealer
                .seal(&seal_scope(&request.name), "url", &request.database_url);
        let webhook_secret = request
            .webhook_url
            .as_ref()
            .map(|_| format!("whsec_{}", crate::secrets::random_token(24)));
        let sealed_webhook = webhook_secret.as_ref().map(|secret| {
            self.sealer
                .seal(&seal_scope(&request.name), "webhook", secret)
        });
        let display = display_url(&target);
        let row = self
            .store
            .insert(&NewProject {
                name: &request.name,
                url_nonce: &url_nonce,
                url_ciphertext: &url_ciphertext,
                url_display: &display,
                ca_certificate: request.ca_certificate.as_deref(),
                key_hash: &hash,
                key_prefix: &key[..KEY_PREFIX.len() + 6],
                schemas: &schemas,
                pool_size,
                install_triggers: request.install_triggers && trigger_warning.is_none(),
                transaction_pooling,
                notify_email: request.notify_email.as_deref(),
                webhook_url: request.webhook_url.as_deref(),
                webhook_nonce: sealed_webhook.as_ref().map(|(n, _)| n.as_slice()),
                webhook_secret: sealed_webhook.as_ref().map(|(_, c)| c.as_slice()),
                schema_digest: &digest,
                schema_shape: &shape,
            })
            .await?;
        let project = project_from(row);
        // The pool just used is this project's now: no second connect.
        let _ = project.db.set(Arc::new(db));
        let project = Arc::new(project);
        self.live
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(project.row.id, project.clone());
        self.changed.notify_one();
        Ok(Registered {
            project,
            api_key: key,
            webhook_secret,
            server,
            ssl_mode,
            tables,
            trigger_warning,
            pooling_warning,
        })
    }

    /// A new key for project `id`; the old one is refused from now on.
    pub async fn rotate_key(&self, id: i64) -> Result<String, ProjectError> {
        let key = new_key();
        let hash = key_hash(&key);
        if !self
            .store
            .set_key(id, &hash, &key[..KEY_PREFIX.len() + 6])
            .await?
        {
            return Err(ProjectError::NotFound(id.to_string()));
        }
        self.refresh(id).await?;
        Ok(key)
    }

    pub async fn set_paused(&self, id: i64, paused: bool) -> Result<(), ProjectError> {
        if !self.store.set_paused(id, paused).await? {
            return Err(ProjectError::NotFound(id.to_string()));
        }
        self.refresh(id).await?;
        Ok(())
    }

    /// Forgets the project; what SelfDB installed in its database (the
    /// event trigger, if the user allowed one) is removed first, when the
    /// database can be reached.
    pub async fn delete(&self, id: i64) -> Result<(), ProjectError> {
        let project = self
            .get(id)
            .ok_or_else(|| ProjectError::NotFound(id.to_string()))?;
        if project.row.install_triggers {
            if let Ok(target) = self.target(&project.row) {
                if let Err(err) = watch::remove_trigger(&project.row.name, &target).await {
                    tracing::warn!(project = %project.row.name, %err, "cannot remove the DDL event trigger");
                }
            }
        }
        if !self.store.delete(id).await? {
            return Err(ProjectError::NotFound(id.to_string()));
        }
        self.refresh(id).await?;
        Ok(())
    }

    /// The webhook secret of a project, unsealed.
    fn webhook_secret(&self, row: &ProjectRow) -> Option<String> {
        let (Some(nonce), Some(ciphertext)) = (&row.webhook_nonce, &row.webhook_secret) else {
            return None;
        };
        self.sealer
            .open(&seal_scope(&row.name), "webhook", nonce, ciphertext)
            .ok()
    }
}

/// `row` as a live project, keeping `old`'s open pool when the settings the
/// pool was made from are unchanged.
fn merged(old: Option<&Arc<Project>>, row: ProjectRow) -> Project {
    let keep_pool = old.and_then(|old| {
        let same = old.row.url_ciphertext == row.url_ciphertext
            && old.row.pool_size == row.pool_size
            && old.row.schemas == row.schemas
            && old.row.ca_certificate == row.ca_certificate
            && old.row.transaction_pooling == row.transaction_pooling;
        same.then(|| old.db.clone())
    });
    let mut project = project_from(row);
    if let Some(db) = keep_pool {
        project.db = db;
    }
    project
}

fn project_from(row: ProjectRow) -> Project {
    let mut key_hash = [0u8; 32];
    if row.key_hash.len() == 32 {
        key_hash.copy_from_slice(&row.key_hash);
    }
    Project {
        row,
        key_hash,
        db: tokio::sync::OnceCell::new(),
        open_failed: std::sync::Mutex::default(),
    }
}

/// The associated data a project's sealed values are bound to (function
/// names are `[a-z0-9_-]`, so no function's secret shares it).
fn seal_scope(name: &str) -> String {
    format!("project:{name}")
}

fn validate_name(name: &str) -> Result<(), ProjectError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        // All digits would read as a project id.
        && name.bytes().any(|b| b.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(ProjectError::Invalid(format!(
            "{name:?} is not a valid project name: use lowercase letters, digits, '-' and '_', starting with a letter or digit, with at least one letter, at most 63"
        )))
    }
}

/// The URL without its password, for listings.
fn display_url(target: &PgTarget) -> String {
    let host = target
        .config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}?sslmode={}",
        target.config.get_user().unwrap_or_default(),
        target.config.get_dbname().unwrap_or_default(),
        target.ssl_mode.as_str()
    )
}
