//! Everything that reaches PostgreSQL: pools, migrations, the per-invocation
//! transaction that components run in, and value conversion.
//!
//! Two pools: `owner` connects as the platform's owner role and serves the
//! host's own work (migrations, settings, admin); `api` connects as a
//! per-database `authenticator_<db>` login role that holds no privileges of
//! its own and may only switch to `anon` or `authenticated` — so no SQL a
//! component sends under those roles can reach `service_role`. Requests
//! made with the service key run on the owner pool as `service_role`.

pub mod api_storage;
pub mod api_tables;
pub mod catalog;
pub mod connect;
pub mod ddl;
pub mod external;
pub mod guard;
pub mod invocation;
pub mod migrations;
pub mod schema;
pub mod script;
pub mod user_ddl;
pub mod values;

use connect::{PgTarget, PgTls};
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, PoolBuilder, RecyclingMethod,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database pool setup: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database URL names no database")]
    NoDatabase,
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
}

#[derive(Clone)]
pub struct Database {
    // Shared, not copied: every request's invocation holds a `Database`.
    owner_target: Arc<PgTarget>,
    owner: Pool,
    api: Pool,
    anon_readers: Arc<AnonReaderSlot>,
    authenticator: Arc<str>,
    database: Arc<str>,
}

/// Connections of the authenticator role that stay, for their whole life,
/// in the `anon` role with the anon key's claims and read-only
/// transactions: an anonymous read that is an invocation's only statement
/// runs on one of them as it is, with no `begin`, role switch or `commit`
/// around it. Made on first use.
struct AnonReaderSlot {
    /// The authenticator role's connection settings.
    config: tokio_postgres::Config,
    tls: PgTls,
    size: usize,
    state: Mutex<AnonReaders>,
}

#[derive(Default)]
struct AnonReaders {
    /// The anon key's claims; until they are set, nobody is served.
    claims: Option<String>,
    /// The pool, and the statement timeout its sessions carry.
    pool: Option<(u64, Pool)>,
}

impl AnonReaderSlot {
    fn new(config: tokio_postgres::Config, tls: PgTls, size: usize) -> Arc<Self> {
        Arc::new(AnonReaderSlot {
            config,
            tls,
            size,
            state: Mutex::default(),
        })
    }
}

/// Session-level advisory lock functions: a lock taken with one outlives the
/// request on its pooled connection (the `_xact_` forms stay callable).
const SESSION_LOCK_FUNCTIONS: &[&str] = &[
    "pg_advisory_lock(bigint)",
    "pg_advisory_lock(integer, integer)",
    "pg_advisory_lock_shared(bigint)",
    "pg_advisory_lock_shared(integer, integer)",
    "pg_try_advisory_lock(bigint)",
    "pg_try_advisory_lock(integer, integer)",
    "pg_try_advisory_lock_shared(bigint)",
    "pg_try_advisory_lock_shared(integer, integer)",
];

/// What an anon reader connection is set to once, at connect time.
const ANON_READER_SQL: &str = "select set_config('request.jwt.claims', $1, false), \
                                      set_config('statement_timeout', $2, false), \
                                      set_config('default_transaction_read_only', 'on', false), \
                                      set_config('role', 'anon', false)";

pub(crate) fn pool_builder(config: tokio_postgres::Config, tls: PgTls, size: usize) -> PoolBuilder {
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
}

/// A pool of `size` connections to `target`, for tools outside the host
/// (a backup reading an upstream store).
pub fn pool_for(target: PgTarget, size: usize) -> Result<Pool, DbError> {
    pool(target.config, target.tls, size)
}

fn pool(config: tokio_postgres::Config, tls: PgTls, size: usize) -> Result<Pool, DbError> {
    Ok(pool_builder(config, tls, size).build()?)
}

fn anon_reader_pool(
    config: tokio_postgres::Config,
    tls: PgTls,
    size: usize,
    claims: String,
    statement_timeout_ms: u64,
) -> Result<Pool, DbError> {
    let timeout = statement_timeout_ms.to_string();
    let setup = Hook::async_fn(move |client: &mut deadpool_postgres::ClientWrapper, _| {
        let claims = claims.clone();
        let timeout = timeout.clone();
        Box::pin(async move {
            client
                .execute(ANON_READER_SQL, &[&claims, &timeout])
                .await
                .map_err(HookError::Backend)?;
            Ok(())
        })
    });
    Ok(pool_builder(config, tls, size).post_create(setup).build()?)
}

/// The login role request transactions connect as, one per database so that
/// several SelfDB instances can share a cluster.
pub fn authenticator_role(database: &str) -> String {
    let clean: String = plain_name(database).chars().take(40).collect();
    format!("authenticator_{clean}")
}

/// `text` with only `[a-z0-9_]`: a name usable unquoted where PostgreSQL
/// allows no quoting (role names built here, replication slots).
pub fn plain_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A SQL string literal. Only for utility statements that cannot take bound
/// parameters (`CREATE ROLE ... PASSWORD`, `SET`); relies on
/// `standard_conforming_strings`, which the owner connection keeps on.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Drives a LISTEN connection: its notifications arrive on the returned
/// receiver, which ends when the connection does (the caller reconnects).
pub fn notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if sender.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    receiver
}

/// An identifier quoted for SQL text (`"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Database {
    /// Connects, migrates, and prepares the request pool; the URL's
    /// `sslmode` is honoured (see [`connect`]).
    pub async fn connect(url: &str, api_pool_size: usize) -> Result<Self, DbError> {
        Self::connect_with(connect::parse(url, None)?, api_pool_size).await
    }

    /// As [`Database::connect`], from parsed settings (the embedded
    /// cluster's Unix socket, which has no URL form).
    pub async fn connect_with(target: PgTarget, api_pool_size: usize) -> Result<Self, DbError> {
        let PgTarget {
            mut config,
            tls,
            ssl_mode,
            root_cert_path,
        } = target;
        config.application_name("selfdb");
        let database = config.get_dbname().ok_or(DbError::NoDatabase)?.to_owned();
        // Service-key requests run on this pool too.
        let owner = pool(config.clone(), tls.clone(), api_pool_size.max(4))?;
        {
            let mut client = owner.get().await?;
            client
                .batch_execute("set standard_conforming_strings = on")
                .await?;
            let applied = migrations::migrate(&mut client).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied platform migrations");
            }
        }
        let owner_target = Arc::new(PgTarget {
            config: config.clone(),
            tls: tls.clone(),
            ssl_mode,
            root_cert_path,
        });
        let db_for_settings = Database {
            owner_target: owner_target.clone(),
            owner: owner.clone(),
            api: owner.clone(),
            anon_readers: AnonReaderSlot::new(config.clone(), tls.clone(), 1),
            authenticator: Arc::from(""),
            database: Arc::from(database.as_str()),
        };
        let authenticator = authenticator_role(&database);
        let password = db_for_settings
            .setting_or_init("authenticator_password", || {
                crate::secrets::random_token(24)
            })
            .await?;
        db_for_settings
            .ensure_authenticator(&authenticator, &password)
            .await?;
        let mut api_config = config.clone();
        api_config.user(&authenticator).password(password);
        let api = pool(api_config.clone(), tls.clone(), api_pool_size)?;
        Ok(Database {
            owner_target,
            owner,
            api,
            anon_readers: AnonReaderSlot::new(api_config, tls, api_pool_size),
            authenticator: Arc::from(authenticator),
            database: Arc::from(database),
        })
    }

    async fn ensure_authenticator(&self, role: &str, password: &str) -> Result<(), DbError> {
        let client = self.owner.get().await?;
        // `role` is built by `authenticator_role` from [a-z0-9_] only.
        let exists = client
            .query_opt("select 1 from pg_roles where rolname = $1", &[&role])
            .await?
            .is_some();
        let verb = if exists { "alter" } else { "create" };
        client
            .batch_execute(&format!(
                "{verb} role {role} login noinherit password {}; \
                 grant anon, authenticated to {role}; \
                 grant usage on schema storage to {role}; \
                 grant insert on storage.object_data to {role};",
                quote_literal(password)
            ))
            .await?;
        Ok(())
    }

    /// Connection settings of the owner role, for connections outside the
    /// pools (the schema listener).
    pub fn owner_config(&self) -> &tokio_postgres::Config {
        &self.owner_target.config
    }

    /// The owner role's settings with the TLS they are made with.
    pub fn owner_target(&self) -> &PgTarget {
        &self.owner_target
    }

    /// Pool of the platform's owner role (host-internal work only).
    pub fn owner(&self) -> &Pool {
        &self.owner
    }

    /// Pool of the authenticator role (request transactions).
    pub fn api(&self) -> &Pool {
        &self.api
    }

    /// Forgets the statements prepared on every pooled connection, after
    /// DDL: a statement prepared before it keeps its parameter and result
    /// types, and fails ("cached plan must not change result type", or an
    /// operator that no longer exists) once a column's type changed.
    pub fn clear_statement_caches(&self) {
        self.api.manager().statement_caches.clear();
        self.owner.manager().statement_caches.clear();
        if let Ok(state) = self.anon_readers.state.lock() {
            if let Some((_, pool)) = &state.pool {
                pool.manager().statement_caches.clear();
            }
        }
    }

    /// Serves anonymous reads with the anon key's `claims` from pooled
    /// sessions that keep them (see [`Database::anon_readers`]).
    pub fn serve_anon_reads(&self, claims: String) {
        if let Ok(mut state) = self.anon_readers.state.lock() {
            *state = AnonReaders {
                claims: Some(claims),
                pool: None,
            };
        }
    }

    /// The pool of anon reader sessions, for an anonymous caller whose
    /// `claims` are the anon key's; made on first use, for the first
    /// statement timeout asked for. Other callers get `None` and take the
    /// transaction path.
    pub fn anon_readers(&self, claims: &str, statement_timeout_ms: u64) -> Option<Pool> {
        let mut state = self.anon_readers.state.lock().ok()?;
        if state.claims.as_deref() != Some(claims) {
            return None;
        }
        if let Some((timeout, pool)) = &state.pool {
            return (*timeout == statement_timeout_ms).then(|| pool.clone());
        }
        let pool = anon_reader_pool(
            self.anon_readers.config.clone(),
            self.anon_readers.tls.clone(),
            self.anon_readers.size,
            claims.to_owned(),
            statement_timeout_ms,
        )
        .ok()?;
        state.pool = Some((statement_timeout_ms, pool.clone()));
        Some(pool)
    }

    pub fn authenticator(&self) -> &str {
        &self.authenticator
    }

    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// Round-trip time of a trivial query on the request pool.
    pub async fn ping(&self) -> Result<Duration, DbError> {
        let started = Instant::now();
        let client = self.api.get().await?;
        client.simple_query("select 1").await?;
        Ok(started.elapsed())
    }

    /// Reads a platform setting, storing `init()` first when it is missing;
    /// concurrent first starts agree on one value.
    pub async fn setting_or_init(
        &self,
        key: &str,
        init: impl FnOnce() -> String,
    ) -> Result<String, DbError> {
        let client = self.owner.get().await?;
        let value = init();
        client
            .execute(
                "insert into selfdb.settings (key, value) values ($1, $2) on conflict (key) do nothing",
                &[&key, &value],
            )
            .await?;
        let row = client
            .query_one("select value from selfdb.settings where key = $1", &[&key])
            .await?;
        Ok(row.get(0))
    }
}

impl Database {
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        let client = self.owner.get().await?;
        client
            .execute(
                "insert into selfdb.settings (key, value) values ($1, $2) \
                 on conflict (key) do update set value = excluded.value",
                &[&key, &value],
            )
            .await?;
        Ok(())
    }

    /// Takes from the request roles what they could use to leave the role
    /// and claims a transaction was opened with, or to leave state on a
    /// pooled connection for the next request: temporary objects (a
    /// temporary function could run `SET ROLE` from dynamic SQL) and, where
    /// the owner is a superuser, `set_config` and session-level advisory
    /// locks. Idempotent; run at start-up.
    pub async fn harden(&self) -> Result<(), DbError> {
        let client = self.owner.get().await?;
        let row = client
            .query_one(
                "select current_database()::text, (select rolsuper from pg_roles where rolname = current_user), current_user::text",
                &[],
            )
            .await?;
        let database: String = row.get(0);
        let superuser: bool = row.get(1);
        let owner: String = row.get(2);
        let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        client
            .batch_execute(&format!(
                "revoke temporary on database {} from public",
                ident(&database)
            ))
            .await?;
        if superuser {
            client
                .batch_execute(&format!(
                    "revoke execute on function pg_catalog.set_config(text, text, boolean) from public; \
                     grant execute on function pg_catalog.set_config(text, text, boolean) to {}, {};",
                    ident(&self.authenticator),
                    ident(&owner)
                ))
                .await?;
            let functions = SESSION_LOCK_FUNCTIONS
                .iter()
                .map(|f| format!("pg_catalog.{f}"))
                .collect::<Vec<_>>()
                .join(", ");
            client
                .batch_execute(&format!(
                    "revoke execute on function {functions} from public; \
                     grant execute on function {functions} to {};",
                    ident(&owner)
                ))
                .await?;
        } else {
            tracing::warn!("the database owner is not a superuser: set_config stays callable by request roles (the SQL guard still refuses it)");
            client
                .batch_execute(
                    "grant anon, authenticated, service_role, supabase_auth_admin to current_user",
                )
                .await?;
        }
        Ok(())
    }
}
