//! Start-up and shutdown: the database (embedded or external), keys, the
//! first admin, the component runtime, and the HTTP listener.

use crate::auth::first_admin::{ensure_first_admin, FirstAdmin};
use crate::auth::mailer::Mailer;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::signing::SigningKey;
use crate::auth::{JwtKeys, Role};
use crate::capabilities::{Capabilities, Services};
use crate::config::{DatabaseSource, Settings};
use crate::db::schema::{SchemaCache, SharedSchema};
use crate::db::Database;
use crate::embedded_pg::EmbeddedPg;
use crate::functions::Functions;
use crate::http::auth::AUTH_COMPONENT;
use crate::http::rest::CRUD_COMPONENT;
use crate::http::{router, App};
use crate::runtime::embedded;
use crate::runtime::Runtime;
use crate::secrets::{random_token, read_or_create_secret};
use anyhow::Context;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// How long shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Name of the platform database inside the embedded cluster.
use crate::embedded_pg::EMBEDDED_DATABASE;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let signals = ShutdownSignals::install().context("listen for SIGINT and SIGTERM")?;
    let settings = Arc::new(settings);
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("create data dir {}", settings.data_dir.display()))?;

    let mut embedded = None;
    let mut socket_config = None;
    let database_url = match &settings.database {
        DatabaseSource::External(url) => url.clone(),
        DatabaseSource::Embedded => {
            let root = settings.data_dir.clone();
            let pg = tokio::task::spawn_blocking(move || EmbeddedPg::start(&root))
                .await?
                .context("start the embedded PostgreSQL cluster")?;
            create_database_if_missing(&pg.url("postgres"), EMBEDDED_DATABASE).await?;
            let url = pg.url(EMBEDDED_DATABASE);
            socket_config = pg.socket_config(EMBEDDED_DATABASE);
            embedded = Some(pg);
            url
        }
    };

    let config = match socket_config {
        Some(config) => crate::db::connect::plain(config)?,
        None if embedded.is_some() => {
            // The embedded cluster has no certificate: no TLS attempt.
            let target = crate::db::connect::parse(&database_url, None)?;
            crate::db::connect::plain(target.config)?
        }
        None => crate::db::connect::parse(&database_url, None).context("the database URL")?,
    };
    let result = serve(settings, config, &database_url, started, signals).await;
    if let Some(mut pg) = embedded {
        let stopped = tokio::task::spawn_blocking(move || pg.stop()).await?;
        if let Err(err) = stopped {
            tracing::error!(%err, "stopping the embedded cluster failed");
        } else {
            tracing::info!("embedded PostgreSQL stopped");
        }
    }
    result
}

/// The platform database, opened and made ready: pools, the request roles
/// restricted, and the keys.
struct Opened {
    db: Database,
    keys: JwtKeys,
    anon_key: String,
    service_key: String,
}

/// `database` is what the host connects with; `database_url` is what it
/// publishes for people and tools (the embedded cluster's TCP address).
///
/// Start-up runs in phases, each failing with its cause: open the
/// database, load the schema, connect the mailer and Redis, start the
/// runtime and storage, bind, create the first admin. Only then does the
/// host announce itself and write `selfdb.env`, so nothing reads "serving"
/// from a host that is not, and a generated admin password is never created
/// by a start-up that then fails before printing it.
async fn serve(
    settings: Arc<Settings>,
    database: crate::db::connect::PgTarget,
    database_url: &str,
    started: Instant,
    signals: ShutdownSignals,
) -> anyhow::Result<()> {
    let opened = open_database(&settings, database)
        .await
        .context("open the platform database")?;
    let db = opened.db.clone();

    let schema = SharedSchema::new(
        SchemaCache::load(&db, &settings.db_schemas)
            .await
            .context("load the schema")?,
    );

    let mailer = Arc::new(match &settings.smtp_url {
        Some(url) => {
            let mailer = Mailer::smtp(url, &settings.smtp_from).context("configure SMTP")?;
            mailer.check().await.context("connect to the SMTP server")?;
            mailer
        }
        None => Mailer::outbox(db.clone()),
    });
    let limiter = Arc::new(match &settings.redis_url {
        Some(url) => RateLimiter::redis(url)
            .await
            .context("connect to Redis for rate limiting")?,
        None => RateLimiter::default(),
    });

    let capabilities = Capabilities::new(&Services {
        db: db.clone(),
        keys: opened.keys.clone(),
        limiter: limiter.clone(),
        mailer: mailer.clone(),
        schema: schema.clone(),
        data_dir: settings.data_dir.clone(),
    });
    let runtime =
        Runtime::new(settings.clone(), capabilities).context("start the component runtime")?;
    let secrets_key = match &settings.secrets_key {
        Some(key) => key.clone(),
        None => read_or_create_secret(&settings.data_dir.join("secrets.key"))
            .context("read or create the secrets key")?,
    };
    let functions = Functions::new(
        db.owner().clone(),
        runtime.clone(),
        settings.clone(),
        &secrets_key,
    );
    let served = functions.load_all().await.context("load functions")?;
    let deployed = functions.deploy_dir(&settings.functions_dir).await;
    tracing::info!(served, functions = ?deployed, dir = %settings.functions_dir.display(), "functions deployed");
    tokio::spawn(crate::functions::follow_changes(
        functions.clone(),
        db.owner_target().clone(),
    ));
    functions.warm_up();
    functions.events.start(db.owner_target().clone());
    if matches!(settings.database, DatabaseSource::Embedded) {
        tokio::spawn(crate::functions::watch::watch(
            functions.clone(),
            settings.functions_dir.clone(),
        ));
    }

    let projects = crate::projects::Projects::new(
        crate::projects::store::Store::new(db.clone()),
        &secrets_key,
        mailer,
        crate::projects::ProjectSettings {
            schema_poll: settings.project_schema_poll,
        },
    );
    let known = projects.load_all().await.context("read projects")?;
    tracing::info!(projects = known, "projects registered");
    projects.start(db.owner_target().clone());

    let tls = match &settings.tls {
        Some(files) => {
            let tls = crate::tls::Tls::load(files.clone()).context("load the TLS certificate")?;
            tls.reload_on_sighup().context("listen for SIGHUP")?;
            Some(tls)
        }
        None => None,
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let storage = Arc::new(
        crate::storage::Storage::start(
            &settings,
            &db,
            tls.as_ref(),
            crate::s3_port::S3Edge {
                cors: settings.cors.clone(),
                metrics: metrics.clone(),
                log_format: settings.log_format,
            },
        )
        .await
        .context("start object storage")?,
    );
    crate::backup::schedule::spawn(settings.clone(), db.clone()).context("--backup-cron")?;

    let listener = crate::listen::Incoming::bind(settings.listen, tls.as_ref())
        .await
        .with_context(|| format!("listen on {}", settings.listen))?;
    let addr = listener.local_addr();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    deploy_auth(&runtime, &settings, &url)?;
    deploy_crud(&runtime, &settings)?;

    schema.spawn_refresher(db.clone());
    let realtime = crate::realtime::Realtime::start(
        opened.keys.clone(),
        db.clone(),
        crate::realtime::Limits {
            connections: settings.realtime_max_connections,
            channels_per_connection: settings.realtime_max_channels,
            ..crate::realtime::Limits::default()
        },
        settings.redis_url.as_deref(),
    )
    .await
    .context("start realtime")?;
    let db_for_admin = db.clone();
    let request_log = if settings.request_log {
        let sink = match &settings.logs_clickhouse_url {
            Some(url) => crate::request_log::Sink::ClickHouse(
                crate::request_log::clickhouse::ClickHouseLogs::new(url)?.into(),
            ),
            None => crate::request_log::Sink::Postgres(db_for_admin.clone()),
        };
        Some(crate::request_log::RequestLog::start(
            sink,
            settings.request_log_retention_days,
        ))
    } else {
        None
    };
    let log_to_flush = request_log.clone();
    let app = Arc::new(App {
        settings: settings.clone(),
        db,
        runtime,
        keys: opened.keys.clone(),
        started,
        storage: storage.clone(),
        functions,
        realtime,
        projects,
        request_log,
        metrics,
        cors: settings.cors.clone(),
        limiter,
        public: crate::http::instance::Public {
            url: url.clone(),
            anon_key: opened.anon_key.clone(),
            service_key: opened.service_key.clone(),
        },
        schema: schema.clone(),
    });
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();

    // Last before announcing: a generated password is shown only once, so
    // nothing that can still fail may come between creating it and
    // printing it.
    let first_admin = ensure_first_admin(
        &db_for_admin,
        &settings.admin_email,
        settings.admin_password.as_deref(),
    )
    .await
    .context("create the first admin")?;
    announce(
        &settings,
        &opened,
        &first_admin,
        &storage,
        &url,
        database_url,
    )?;
    tracing::info!(%url, startup_ms = started.elapsed().as_millis() as u64, "SelfDB is serving");
    // Through `tap_io` (doing nothing): axum gives `ConnectInfo` of a
    // listener's address type only to a tapped listener or its own.
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
    // Shutdown waits for requests in flight, but not past
    // SHUTDOWN_GRACE: a client that keeps a connection open (an HTTP/2
    // client that never answers the closing PING) must not keep the host
    // from stopping.
    let (began, shutdown_began) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        signals.wait().await;
        let _ = began.send(());
    });
    tokio::select! {
        served = server.into_future() => served.context("HTTP server")?,
        () = async {
            match shutdown_began.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                // The server ended on its own.
                Err(_) => std::future::pending().await,
            }
        } => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open at shutdown were closed"),
    }
    tracing::info!("HTTP server stopped");
    // The last requests' records, before the database may stop.
    if let Some(log) = log_to_flush {
        log.stop(std::time::Duration::from_secs(5)).await;
    }
    Ok(())
}

/// Connects the pools, restricts the request roles, and reads (or makes)
/// the keys.
async fn open_database(
    settings: &Settings,
    database: crate::db::connect::PgTarget,
) -> anyhow::Result<Opened> {
    let db = Database::connect_with(database, settings.db_pool_size)
        .await
        .context("connect")?;
    db.harden().await.context("restrict the request roles")?;

    let secret = match &settings.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            db.setting_or_init("jwt_secret", || random_token(32))
                .await?
        }
    };
    let keys = match &settings.jwt_signing_key {
        Some(path) => {
            let key = SigningKey::load(path).context("load the JWT signing key")?;
            tracing::info!(kid = %key.kid, algorithm = ?key.algorithm, "users' access tokens are signed with an asymmetric key");
            JwtKeys::with_signing_key(&secret, key)
        }
        None => JwtKeys::new(&secret),
    };
    let anon_key = api_key(&db, &keys, Role::Anon).await?;
    let anon = keys.verify(&anon_key).context("verify the anon key")?;
    db.serve_anon_reads(anon.claims_text.clone());
    let service_key = api_key(&db, &keys, Role::ServiceRole).await?;
    Ok(Opened {
        db,
        keys,
        anon_key,
        service_key,
    })
}

/// Writes `selfdb.env` and prints the same `KEY=value` lines (and the first
/// admin's credentials, once): the last step before serving.
fn announce(
    settings: &Settings,
    opened: &Opened,
    first_admin: &FirstAdmin,
    storage: &crate::storage::Storage,
    url: &str,
    database_url: &str,
) -> anyhow::Result<()> {
    let mut lines = vec![
        format!("SELFDB_URL={url}"),
        format!("SELFDB_DASHBOARD_URL={url}/_/"),
        format!("SELFDB_ANON_KEY={}", opened.anon_key),
        format!("SELFDB_SERVICE_KEY={}", opened.service_key),
        format!("S3_ENDPOINT={}", storage.s3_endpoint),
        format!("S3_ACCESS_KEY_ID={}", storage.service_access_key_id),
        format!("S3_SECRET_ACCESS_KEY={}", storage.service_secret_access_key),
    ];
    if matches!(settings.database, DatabaseSource::Embedded) {
        lines.push(format!("DATABASE_URL={database_url}"));
    }
    write_env_file(settings, &lines)?;
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    match first_admin {
        FirstAdmin::Generated { email, password } => {
            writeln!(out, "SELFDB_ADMIN_EMAIL={email}")?;
            writeln!(out, "SELFDB_ADMIN_PASSWORD={password}")?;
        }
        FirstAdmin::Created { email } => writeln!(out, "SELFDB_ADMIN_EMAIL={email}")?,
        FirstAdmin::Existing => {}
    }
    writeln!(
        out,
        "SELFDB_ENV_FILE={}",
        settings.data_dir.join("selfdb.env").display()
    )?;
    out.flush()?;
    Ok(())
}

/// Installs the auth component: the operator's replacement when given, else
/// the one embedded at build time.
fn deploy_auth(runtime: &Runtime, settings: &Settings, url: &str) -> anyhow::Result<()> {
    let bytes = match &settings.auth_component {
        Some(path) => std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        None => match embedded::SYSTEM_COMPONENTS
            .iter()
            .find(|(name, _)| *name == AUTH_COMPONENT)
        {
            Some((_, bytes)) => bytes.to_vec(),
            None => {
                tracing::warn!("this binary was built without the auth component (run `make components` before building the host): /auth/v1 answers 503");
                return Ok(());
            }
        },
    };
    let auth = &settings.auth;
    let config: BTreeMap<String, String> = [
        ("JWT_EXPIRY", settings.jwt_expiry_seconds.to_string()),
        ("AUTOCONFIRM", auth.autoconfirm.to_string()),
        ("PASSWORD_MIN_LENGTH", auth.password_min_length.to_string()),
        ("DISABLE_SIGNUP", auth.disable_signup.to_string()),
        (
            "SITE_URL",
            auth.site_url.clone().unwrap_or_else(|| url.to_owned()),
        ),
        ("API_EXTERNAL_URL", format!("{url}/auth/v1")),
        (
            "FAILED_SIGN_INS_PER_EMAIL",
            auth.failed_sign_ins_per_email.to_string(),
        ),
        (
            "FAILED_SIGN_INS_PER_IP",
            auth.failed_sign_ins_per_ip.to_string(),
        ),
        ("RATE_WINDOW_SECONDS", auth.rate_window_seconds.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    runtime
        .deploy_with_config(AUTH_COMPONENT, &bytes, true, config)
        .context("deploy the auth component")?;
    Ok(())
}

/// Installs the CRUD component that serves `/rest/v1`.
fn deploy_crud(runtime: &Runtime, settings: &Settings) -> anyhow::Result<()> {
    let bytes = match &settings.crud_component {
        Some(path) => std::fs::read(path).with_context(|| format!("read {}", path.display()))?,
        None => match embedded::SYSTEM_COMPONENTS
            .iter()
            .find(|(name, _)| *name == CRUD_COMPONENT)
        {
            Some((_, bytes)) => bytes.to_vec(),
            None => {
                tracing::warn!("this binary was built without the crud component (run `make components` before building the host): /rest/v1 answers 503");
                return Ok(());
            }
        },
    };
    runtime
        .deploy_with_config(CRUD_COMPONENT, &bytes, true, BTreeMap::new())
        .context("deploy the crud component")?;
    Ok(())
}

/// The stored API key for `role`, re-issued when the JWT secret changed.
async fn api_key(db: &Database, keys: &JwtKeys, role: Role) -> anyhow::Result<String> {
    let name = format!("{}_key", role.as_str());
    let now = chrono::Utc::now().timestamp();
    let fresh = keys.api_key(role, now)?;
    let stored = db.setting_or_init(&name, || fresh.clone()).await?;
    if keys.verify(&stored).map(|p| p.role) == Ok(role) {
        return Ok(stored);
    }
    db.set_setting(&name, &fresh).await?;
    Ok(fresh)
}

fn write_env_file(settings: &Settings, lines: &[String]) -> anyhow::Result<()> {
    let path = settings.data_dir.join("selfdb.env");
    let mut text = lines.join("\n");
    text.push('\n');
    crate::files::write_private(&path, text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

async fn create_database_if_missing(maintenance_url: &str, name: &str) -> anyhow::Result<()> {
    // The embedded cluster's own URL: no TLS there.
    let target = crate::db::connect::parse(maintenance_url, None)?;
    let target = crate::db::connect::plain(target.config)?;
    let (client, connection) = target.config.connect(target.tls).await?;
    let task = tokio::spawn(connection);
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // `name` is a constant of ours, not input.
        client
            .batch_execute(&format!("create database \"{name}\""))
            .await?;
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// SIGINT and SIGTERM, listened for from the very start: a signal that
/// arrives while the host is still starting is kept, and shuts it down as
/// soon as it serves, instead of killing it with the cluster still up.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        tracing::info!("shutting down");
    }
}
