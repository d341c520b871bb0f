//! The `selfdb` command line: `selfdb dev` and `selfdb serve` start the
//! host; `selfdb functions ...` is a client of a running one.

pub mod functions;
pub mod projects;
pub mod spin_upload;

use crate::config::{DatabaseSource, FileConfig, FunctionLimits, LogFormat, Settings};
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// SelfDB: a self-hosted backend (Postgres, auth, storage, realtime and
/// WebAssembly functions) behind a Supabase-compatible API.
#[derive(Debug, Parser)]
#[command(name = "selfdb", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything on one machine: starts a private PostgreSQL cluster in
    /// `<data dir>/pg`, migrates it, prints URLs and keys, and serves HTTP.
    Dev(DevArgs),
    /// Run the host against an existing PostgreSQL (`DATABASE_URL`); hosts
    /// are stateless, so several can serve one database behind a balancer.
    Serve(ServeArgs),
    /// Write, deploy, version, roll back, configure and watch functions on a
    /// running instance.
    Functions(functions::FunctionsArgs),
    /// Register existing PostgreSQL databases and manage them (projects:
    /// an instant API over each).
    Projects(projects::ProjectsArgs),
    /// Write one consistent archive of an instance (its database, object
    /// bytes and secrets key) into a folder while it keeps serving, and
    /// print its path. Finds the instance as `dev` (`--data-dir`) or
    /// `serve` (`--database-url` and the storage settings) would.
    Backup(BackupArgs),
    /// Make a new instance from an archive of `selfdb backup`, after
    /// verifying the whole archive: a `selfdb dev` data directory, or with
    /// `--database-url` one for `selfdb serve`.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Folder the archive (`selfdb-<UTC time>.tar`) is written into
    /// (created when missing), or `s3://bucket/prefix?endpoint=...`
    /// (keys from `--storage-s3-*`, else the usual AWS sources).
    #[arg(long)]
    pub to: String,
    /// The database of an instance `selfdb serve` runs; without it, the
    /// embedded cluster of `--data-dir` (used as it is while a host
    /// serves it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Keys of an S3 store (`--storage-backend`, `s3://` backups); without
/// them, the usual AWS sources (`AWS_ACCESS_KEY_ID`, instance metadata, ...).
#[derive(Debug, Args)]
pub struct S3Keys {
    /// Access key id for S3 (`--storage-backend`, `s3://` backups).
    #[arg(
        long,
        env = "SELFDB_STORAGE_S3_ACCESS_KEY_ID",
        hide_env_values = true,
        requires = "storage_s3_secret_access_key"
    )]
    pub storage_s3_access_key_id: Option<String>,
    /// Secret access key for S3.
    #[arg(
        long,
        env = "SELFDB_STORAGE_S3_SECRET_ACCESS_KEY",
        hide_env_values = true,
        requires = "storage_s3_access_key_id"
    )]
    pub storage_s3_secret_access_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive written by `selfdb backup`: a file, or
    /// `s3://bucket/prefix/selfdb-<time>.tar?endpoint=...`. Restore only
    /// archives you trust: they run as the new cluster's superuser (or the
    /// `--database-url` role).
    pub archive: String,
    /// Keys for an `s3://` archive and an `s3://` `--storage-backend`.
    #[command(flatten)]
    pub s3_keys: S3Keys,
    /// Data directory of the new instance; it must be absent or empty. For
    /// `selfdb dev` it holds the whole instance; with `--database-url`, the
    /// secrets key and (without `--storage-backend`) the object files, as
    /// `selfdb serve --data-dir` reads them.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Restore for `selfdb serve`: into this existing database, which must
    /// be empty (create it first), rather than a new embedded cluster.
    #[arg(long)]
    pub database_url: Option<String>,
    /// With `--database-url`: put the object bytes in this S3 store
    /// (`s3://bucket/prefix?endpoint=...&region=...`, a prefix no instance
    /// has claimed) instead of the data directory.
    #[arg(long, requires = "database_url")]
    pub storage_backend: Option<String>,
    /// Restore into a non-empty `--data-dir`, moving it aside first (to
    /// `<dir>.before-restore-<time>`, never deleted).
    #[arg(long)]
    pub force: bool,
    /// Only verify the archive (every member against its manifest).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port for HTTP on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "SELFDB_PORT", default_value_t = 8000)]
    pub port: u16,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// PostgreSQL connection string of the platform database; the role needs
    /// to own the database and be able to create roles.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "SELFDB_LISTEN")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Directory for SelfDB's state: the embedded cluster, compiled-component
    /// cache, objects, `selfdb.env`.
    #[arg(long, env = "SELFDB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML). Defaults to `selfdb.toml` in the working directory
    /// when it exists.
    #[arg(long, env = "SELFDB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL (optional): auth rate limits are counted there, so hosts
    /// behind one balancer share them. (Realtime fan-out will use it too.)
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Directory of user functions: every `NAME.wasm` there is served at
    /// `/functions/v1/NAME`. Defaults to `<data dir>/functions`.
    #[arg(long, env = "SELFDB_FUNCTIONS_DIR")]
    pub functions_dir: Option<PathBuf>,
    /// HS256 secret for JWTs (at least 32 characters). Generated and stored in
    /// the database on first start when not given.
    #[arg(long, env = "SELFDB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM private key (PKCS#8 P-256 for ES256, or RSA for RS256) to sign
    /// users' access tokens with; its public key is published at
    /// /auth/v1/.well-known/jwks.json. API keys stay HS256.
    #[arg(long, env = "SELFDB_JWT_SIGNING_KEY")]
    pub jwt_signing_key: Option<PathBuf>,
    /// Lifetime of access tokens in seconds.
    #[arg(long, env = "SELFDB_JWT_EXPIRY")]
    pub jwt_expiry_seconds: Option<u64>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SELFDB_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Realtime WebSocket connections this host accepts (then 429).
    #[arg(long, env = "SELFDB_REALTIME_MAX_CONNECTIONS")]
    pub realtime_max_connections: Option<usize>,
    /// Realtime channels one connection may join (Supabase's default: 100).
    #[arg(long, env = "SELFDB_REALTIME_MAX_CHANNELS")]
    pub realtime_max_channels: Option<usize>,
    /// Event deliveries (database triggers, schedules, custom events) this
    /// host runs at once; the rest wait in the database.
    #[arg(long, env = "SELFDB_EVENT_CONCURRENCY")]
    pub event_concurrency: Option<usize>,
    /// Delay before the first retry of a failed delivery, in milliseconds;
    /// it doubles with each attempt (with jitter), up to an hour.
    #[arg(long, env = "SELFDB_EVENT_RETRY_BASE_MS")]
    pub event_retry_base_ms: Option<u64>,
    /// How often each project's schema is checked for changes, in
    /// milliseconds (projects without an event trigger rely on it).
    #[arg(long, env = "SELFDB_PROJECT_SCHEMA_POLL_MS")]
    pub project_schema_poll_ms: Option<u64>,
    /// Log every API request (projects' and the main instance's) for the
    /// logs and analytics routes.
    #[arg(long, env = "SELFDB_REQUEST_LOG")]
    pub request_log: Option<bool>,
    /// Days of request logs kept (older days are dropped).
    #[arg(long, env = "SELFDB_REQUEST_LOG_RETENTION_DAYS")]
    pub request_log_retention_days: Option<u32>,
    /// Write request logs to ClickHouse instead of PostgreSQL:
    /// `http[s]://user:password@host:8123/database` (its HTTP interface).
    #[arg(long, env = "SELFDB_LOGS_CLICKHOUSE_URL", hide_env_values = true)]
    pub logs_clickhouse_url: Option<String>,
    /// Connections in the pool used for request transactions.
    #[arg(long, env = "SELFDB_DB_POOL_SIZE")]
    pub db_pool_size: Option<usize>,
    /// Component instances that may run at once (the pooling allocator's size).
    #[arg(long, env = "SELFDB_MAX_INSTANCES")]
    pub max_instances: Option<u32>,
    /// Default memory cap of a function invocation, in MiB.
    #[arg(long, env = "SELFDB_FUNCTION_MEMORY_MB")]
    pub function_memory_mb: Option<u64>,
    /// Default time cap of a function invocation, in milliseconds.
    #[arg(long, env = "SELFDB_FUNCTION_TIME_MS")]
    pub function_time_ms: Option<u64>,
    /// Email of the first admin, created on first start.
    #[arg(long, env = "SELFDB_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of the first admin; generated and printed once when not given.
    #[arg(long, env = "SELFDB_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// A component to serve `/auth/v1` instead of the embedded one.
    #[arg(long, env = "SELFDB_AUTH_COMPONENT")]
    pub auth_component: Option<PathBuf>,
    /// A component to serve `/rest/v1` instead of the embedded one.
    #[arg(long, env = "SELFDB_CRUD_COMPONENT")]
    pub crud_component: Option<PathBuf>,
    /// Sign users in at sign-up without email confirmation (default true).
    #[arg(long, env = "SELFDB_AUTH_AUTOCONFIRM")]
    pub auth_autoconfirm: Option<bool>,
    /// Shortest password accepted at sign-up (default 6).
    #[arg(long, env = "SELFDB_AUTH_PASSWORD_MIN_LENGTH")]
    pub auth_password_min_length: Option<u32>,
    /// Refuse new sign-ups (admins can still create users).
    #[arg(long, env = "SELFDB_AUTH_DISABLE_SIGNUP")]
    pub auth_disable_signup: Option<bool>,
    /// Failed sign-ins allowed per email within the rate window (default 5).
    #[arg(long, env = "SELFDB_AUTH_FAILED_SIGN_INS_PER_EMAIL")]
    pub auth_failed_sign_ins_per_email: Option<u32>,
    /// Where links in auth mails send users after verification.
    #[arg(long, env = "SELFDB_SITE_URL")]
    pub site_url: Option<String>,
    /// SMTP server for auth mail, e.g. `smtp://user:pass@host:587?tls=required`
    /// or `smtps://host:465`; without it mail lands in the dev outbox
    /// (`selfdb.mail_outbox` and the log).
    #[arg(long, env = "SELFDB_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Schemas the data API serves, comma-separated (default `public`).
    #[arg(long, env = "SELFDB_DB_SCHEMAS", value_delimiter = ',')]
    pub db_schemas: Option<Vec<String>>,
    /// Sender of auth mail.
    #[arg(long, env = "SELFDB_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Directory of object files (storage). Defaults to `<data dir>/storage`;
    /// hosts behind one balancer must share it.
    #[arg(long, env = "SELFDB_STORAGE_DIR")]
    pub storage_dir: Option<PathBuf>,
    /// Keep object bytes in an S3 store instead of `--storage-dir`:
    /// `s3://bucket[/prefix]?endpoint=https://host:port&region=REGION`
    /// (without `endpoint`, AWS). Hosts sharing one database and this
    /// store serve the same objects. Metadata stays in the database.
    #[arg(long, env = "SELFDB_STORAGE_BACKEND")]
    pub storage_backend: Option<String>,
    #[command(flatten)]
    pub s3_keys: S3Keys,
    /// Age after which bytes no row references are deleted (default 10
    /// minutes; tests shorten it).
    #[arg(long, env = "SELFDB_STORAGE_ORPHAN_GRACE_MS", hide = true)]
    pub storage_orphan_grace_ms: Option<u64>,
    /// How long an upstream object's bytes outlive its row, for downloads
    /// already running (default 5 minutes; tests shorten it).
    #[arg(long, env = "SELFDB_STORAGE_RELEASE_GRACE_MS", hide = true)]
    pub storage_release_grace_ms: Option<u64>,
    /// Take a backup on this schedule (cron: 5 or 6 fields, UTC; e.g.
    /// `0 3 * * *`) into `--backup-to`. Every host runs it; one takes each
    /// backup.
    #[arg(long, env = "SELFDB_BACKUP_CRON", requires = "backup_to")]
    pub backup_cron: Option<String>,
    /// Folder or `s3://bucket/prefix?endpoint=...` scheduled backups are
    /// written into (as `selfdb backup --to`; S3 with the
    /// `--storage-s3-*` keys, else the usual AWS sources).
    #[arg(long, env = "SELFDB_BACKUP_TO")]
    pub backup_to: Option<String>,
    /// Scheduled backups kept: after each one, the newest N archives in
    /// `--backup-to` stay and older ones are deleted (default 7).
    #[arg(long, env = "SELFDB_BACKUP_KEEP")]
    pub backup_keep: Option<usize>,
    /// Port of the S3-compatible endpoint (default 9000; 0 picks a free one).
    #[arg(long, env = "SELFDB_S3_PORT")]
    pub s3_port: Option<u16>,
    /// Region the S3 endpoint names itself (default us-east-1): what
    /// GetBucketLocation answers and CreateBucket accepts as its location.
    #[arg(long, env = "SELFDB_S3_REGION")]
    pub s3_region: Option<String>,
    /// Largest object accepted by either storage API, in bytes, whatever a
    /// bucket allows (default 50 GiB).
    #[arg(long, env = "SELFDB_STORAGE_MAX_OBJECT_BYTES")]
    pub storage_max_object_bytes: Option<u64>,
    /// Where compiled components and the built JavaScript engine are kept
    /// (default `<data dir>/cache`); hosts on one machine may share it.
    #[arg(long, env = "SELFDB_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The JavaScript toolchain (`toolchain/js` with its npm packages, which
    /// `make run` installs) that builds TypeScript/JavaScript functions.
    /// Defaults to the one beside the binary's source tree when installed.
    #[arg(long, env = "SELFDB_JS_TOOLCHAIN")]
    pub js_toolchain: Option<PathBuf>,
    /// Build each JavaScript version's own pre-initialized component in the
    /// background (default true); without, JavaScript runs on the shared
    /// engine only, which evaluates the script on every request.
    #[arg(long, env = "SELFDB_JS_OWN_COMPONENTS")]
    pub js_own_components: Option<bool>,
    /// Key that encrypts functions' secrets in the database. Hosts serving
    /// one database need the same key; defaults to `<data dir>/secrets.key`,
    /// generated on first start.
    #[arg(long, env = "SELFDB_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// PEM certificate chain for HTTPS on the API and S3 ports (with
    /// `--tls-key`); both files are read again on SIGHUP.
    #[arg(long, env = "SELFDB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SELFDB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Origins a browser app may call the APIs from, comma-separated
    /// (`https://app.example.com,http://localhost:5173`), or `*` for any
    /// (the default, as Supabase's gateway).
    #[arg(long, env = "SELFDB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// `text` (default) or `json`: one JSON object per line, with one line
    /// per request carrying its request id.
    #[arg(long, env = "SELFDB_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Serve `/bench/native/hello` (used by `make bench`).
    #[arg(long, env = "SELFDB_BENCH_ROUTES", hide = true)]
    pub bench_routes: bool,
}

impl CommonArgs {
    fn file_config(&self) -> anyhow::Result<FileConfig> {
        let explicit = self.config.clone();
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from("selfdb.toml"));
        if explicit.is_some() || path.exists() {
            Ok(FileConfig::load(&path)?)
        } else {
            Ok(FileConfig::default())
        }
    }

    fn resolve(
        self,
        file: FileConfig,
        listen: SocketAddr,
        database: DatabaseSource,
    ) -> anyhow::Result<Settings> {
        let defaults = FunctionLimits::default();
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(".selfdb"));
        let data_dir = std::path::absolute(&data_dir)?;
        let functions_dir = self
            .functions_dir
            .or(file.functions_dir)
            .unwrap_or_else(|| data_dir.join("functions"));
        let settings = Settings {
            listen,
            database,
            redis_url: self.redis_url.or(file.redis_url),
            functions_dir: std::path::absolute(functions_dir)?,
            jwt_secret: self.jwt_secret.or(file.jwt_secret),
            jwt_expiry_seconds: self
                .jwt_expiry_seconds
                .or(file.jwt_expiry_seconds)
                .unwrap_or(3600),
            max_body_bytes: self
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(10 << 20),
            realtime_max_connections: self
                .realtime_max_connections
                .or(file.realtime_max_connections)
                .unwrap_or(50_000),
            realtime_max_channels: self
                .realtime_max_channels
                .or(file.realtime_max_channels)
                .unwrap_or(100),
            event_concurrency: self
                .event_concurrency
                .or(file.event_concurrency)
                .unwrap_or(16)
                .max(1),
            event_retry_base_ms: self
                .event_retry_base_ms
                .or(file.event_retry_base_ms)
                .unwrap_or(1000),
            project_schema_poll: std::time::Duration::from_millis(
                self.project_schema_poll_ms
                    .or(file.project_schema_poll_ms)
                    .unwrap_or(10_000)
                    .max(100),
            ),
            request_log: self.request_log.or(file.request_log).unwrap_or(true),
            request_log_retention_days: self
                .request_log_retention_days
                .or(file.request_log_retention_days)
                .unwrap_or(7)
                .max(1),
            logs_clickhouse_url: self.logs_clickhouse_url.or(file.logs_clickhouse_url),
            db_pool_size: self.db_pool_size.or(file.db_pool_size).unwrap_or(16),
            max_instances: self.max_instances.or(file.max_instances).unwrap_or(256),
            default_limits: FunctionLimits {
                memory_bytes: self
                    .function_memory_mb
                    .or(file.function_memory_mb)
                    .map(|mb| mb << 20)
                    .unwrap_or(defaults.memory_bytes),
                time_ms: self
                    .function_time_ms
                    .or(file.function_time_ms)
                    .unwrap_or(defaults.time_ms),
            },
            functions: file.functions,
            admin_email: self
                .admin_email
                .or(file.admin_email)
                .unwrap_or_else(|| "admin@localhost".to_owned()),
            admin_password: self.admin_password,
            bench_routes: self.bench_routes,
            auth_component: self.auth_component.or(file.auth_component),
            crud_component: self.crud_component.or(file.crud_component),
            jwt_signing_key: self.jwt_signing_key.or(file.jwt_signing_key),
            smtp_url: self.smtp_url.or(file.smtp_url),
            db_schemas: self
                .db_schemas
                .or(file.db_schemas)
                .unwrap_or_else(|| vec!["public".to_owned()]),
            smtp_from: self
                .smtp_from
                .or(file.smtp_from)
                .unwrap_or_else(|| "SelfDB <noreply@localhost>".to_owned()),
            auth: {
                let mut auth = file.auth;
                if let Some(v) = self.auth_autoconfirm {
                    auth.autoconfirm = v;
                }
                if let Some(v) = self.auth_password_min_length {
                    auth.password_min_length = v;
                }
                if let Some(v) = self.auth_disable_signup {
                    auth.disable_signup = v;
                }
                if let Some(v) = self.auth_failed_sign_ins_per_email {
                    auth.failed_sign_ins_per_email = v;
                }
                if self.site_url.is_some() {
                    auth.site_url = self.site_url;
                }
                auth
            },
            storage_dir: std::path::absolute(
                self.storage_dir
                    .or(file.storage_dir)
                    .unwrap_or_else(|| data_dir.join("storage")),
            )?,
            storage_upstream: match self.storage_backend.or(file.storage_backend) {
                None => None,
                Some(text) if text.trim().is_empty() || text.trim() == "local" => None,
                Some(text) => Some(storage_s3s::UpstreamConfig {
                    location: storage_s3s::S3Location::parse(&text)
                        .map_err(|why| anyhow::anyhow!("--storage-backend: {why}"))?,
                    access_key_id: self.s3_keys.storage_s3_access_key_id.clone(),
                    secret_access_key: self.s3_keys.storage_s3_secret_access_key.clone(),
                    release_grace: std::time::Duration::from_millis(
                        self.storage_release_grace_ms.unwrap_or(300_000),
                    ),
                    orphan_grace: std::time::Duration::from_millis(
                        self.storage_orphan_grace_ms.unwrap_or(600_000),
                    ),
                    // Read from the database when the store opens.
                    instance_id: String::new(),
                }),
            },
            backup_schedule: match (self.backup_cron, self.backup_to) {
                (Some(cron), Some(to)) => {
                    crate::events::declare::parse_cron(&cron)
                        .map_err(|err| anyhow::anyhow!("--backup-cron: {err}"))?;
                    Some(crate::backup::schedule::BackupSchedule {
                        cron,
                        to: crate::backup::Destination::parse(
                            &to,
                            self.s3_keys.storage_s3_access_key_id.clone(),
                            self.s3_keys.storage_s3_secret_access_key.clone(),
                        )
                        .map_err(|err| anyhow::anyhow!("--backup-to: {err:#}"))?,
                        keep: self.backup_keep.unwrap_or(7).max(1),
                    })
                }
                _ => None,
            },
            storage_orphan_grace: std::time::Duration::from_millis(
                self.storage_orphan_grace_ms.unwrap_or(600_000),
            ),
            s3_listen: SocketAddr::new(listen.ip(), self.s3_port.or(file.s3_port).unwrap_or(9000)),
            s3_region: self
                .s3_region
                .or(file.s3_region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
            storage_max_object_bytes: self
                .storage_max_object_bytes
                .or(file.storage_max_object_bytes)
                .unwrap_or(50 << 30),
            js_toolchain: self
                .js_toolchain
                .or(file.js_toolchain)
                .or_else(default_js_toolchain)
                .map(std::path::absolute)
                .transpose()?,
            secrets_key: self.secrets_key,
            tls: match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
            ) {
                (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                    cert: std::path::absolute(cert)?,
                    key: std::path::absolute(key)?,
                }),
                (None, None) => None,
                _ => anyhow::bail!("HTTPS needs both tls_cert and tls_key"),
            },
            cors: crate::cors::CorsPolicy::parse(
                &self.cors_origins.or(file.cors_origins).unwrap_or_default(),
            )?,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            js_own_components: self.js_own_components.unwrap_or(true),
            cache_dir: std::path::absolute(
                self.cache_dir.unwrap_or_else(|| data_dir.join("cache")),
            )?,
            data_dir,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// `toolchain/js` of the source tree the binary was built in
/// (`target/<profile>/selfdb` sits two levels below it), when present.
fn default_js_toolchain() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let root = exe.parent()?.parent()?.parent()?;
    let dir = root.join("toolchain").join("js");
    dir.join("build.mjs").is_file().then_some(dir)
}

fn settings_for(command: Command) -> anyhow::Result<Settings> {
    match command {
        Command::Functions(_) => anyhow::bail!("`selfdb functions` starts no host"),
        Command::Projects(_) => anyhow::bail!("`selfdb projects` starts no host"),
        Command::Backup(_) | Command::Restore(_) => {
            anyhow::bail!("`selfdb backup` and `selfdb restore` start no host")
        }
        Command::Dev(args) => {
            let file = args.common.file_config()?;
            let listen = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), args.port);
            args.common.resolve(file, listen, DatabaseSource::Embedded)
        }
        Command::Serve(args) => {
            let file = args.common.file_config()?;
            let url = args
                .database_url
                .or(file.database_url.clone())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "selfdb serve needs DATABASE_URL (flag, environment or selfdb.toml)"
                    )
                })?;
            let listen = match args.listen {
                Some(addr) => addr,
                None => match &file.listen {
                    Some(text) => text.parse()?,
                    None => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 8000),
                },
            };
            args.common
                .resolve(file, listen, DatabaseSource::External(url))
        }
    }
}

/// `selfdb backup`: the instance resolved from flags, environment and
/// `selfdb.toml` exactly as `dev` or `serve` would resolve it.
async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let file = args.common.file_config()?;
    let database = match args.database_url.or(file.database_url.clone()) {
        Some(url) => DatabaseSource::External(url),
        None => DatabaseSource::Embedded,
    };
    let listen = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 0);
    let to = crate::backup::Destination::parse(
        &args.to,
        args.common.s3_keys.storage_s3_access_key_id.clone(),
        args.common.s3_keys.storage_s3_secret_access_key.clone(),
    )?;
    let settings = args.common.resolve(file, listen, database)?;
    let path = crate::backup::backup(&settings, &to).await?;
    println!("{path}");
    Ok(())
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    use crate::backup::restore::Target;
    let access_key_id = args.s3_keys.storage_s3_access_key_id;
    let secret_access_key = args.s3_keys.storage_s3_secret_access_key;
    let target = match args.database_url {
        None => Target::NewCluster,
        Some(database_url) => Target::Server {
            database_url,
            storage: match &args.storage_backend {
                None => None,
                Some(text) => Some(Box::new(storage_s3s::UpstreamConfig::for_folder(
                    storage_s3s::S3Location::parse(text)
                        .map_err(|why| anyhow::anyhow!("--storage-backend: {why}"))?,
                    access_key_id.clone(),
                    secret_access_key.clone(),
                ))),
            },
        },
    };
    let serve_command = match &target {
        Target::NewCluster => None,
        Target::Server { storage, .. } => Some(format!(
            "selfdb serve --database-url <the same URL> --data-dir {}{}",
            args.data_dir.display(),
            match (storage, &args.storage_backend) {
                (Some(_), Some(text)) => format!(" --storage-backend '{text}' --storage-s3-access-key-id … --storage-s3-secret-access-key …"),
                _ => String::new(),
            }
        )),
    };
    let options = crate::backup::restore::RestoreOptions {
        archive: args.archive,
        access_key_id,
        secret_access_key,
        data_dir: args.data_dir,
        target,
        force: args.force,
        check_only: args.check,
    };
    let restored = crate::backup::restore::restore(&options).await?;
    let manifest = &restored.manifest;
    if options.check_only {
        println!(
            "{}: a good archive of {} object(s), {} bytes of objects, made {} by SelfDB {}",
            options.archive,
            manifest.storage.objects,
            manifest.storage.bytes,
            manifest.created_at,
            manifest.selfdb_version
        );
        return Ok(());
    }
    if let Some(aside) = &restored.moved_aside {
        println!(
            "moved the old {} to {}",
            options.data_dir.display(),
            aside.display()
        );
    }
    match serve_command {
        None => println!(
            "restored the backup of {} into {}: start it with `selfdb dev --data-dir {}`",
            manifest.created_at,
            options.data_dir.display(),
            options.data_dir.display()
        ),
        Some(command) => println!(
            "restored the backup of {} into the database and {}: start it with `{command}`",
            manifest.created_at,
            options.data_dir.display(),
        ),
    }
    Ok(())
}

/// Runs a client command on a small async runtime.
fn run_client(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("selfdb: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("selfdb: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// An empty variable of ours means "not set", as `.env` files and
/// compose's `${VAR:-}` write it; clap would take it for an empty value
/// (an empty SMTP URL, an empty path). Runs before any thread starts.
fn forget_empty_variables() {
    let empty: Vec<std::ffi::OsString> = std::env::vars_os()
        .filter(|(key, value)| {
            value.is_empty()
                && key.to_str().is_some_and(|k| {
                    k.starts_with("SELFDB_")
                        || matches!(k, "DATABASE_URL" | "REDIS_URL" | "RUST_LOG")
                })
        })
        .map(|(key, _)| key)
        .collect();
    for key in empty {
        std::env::remove_var(key);
    }
}

/// Logs go to standard error, filtered by `RUST_LOG` (default
/// `selfdb=info,warn`). As JSON, each line is one object with the fields of
/// the event and of the spans it happened in (a request's id among them).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "selfdb=info,warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
}

/// Entry point of the binary: parses flags, starts the runtime, maps errors
/// to an exit code.
pub fn main() -> ExitCode {
    forget_empty_variables();
    let cli = Cli::parse();
    if let Command::Projects(args) = cli.command {
        init_logging(LogFormat::Text);
        return run_client(projects::run(args));
    }
    if let Command::Functions(args) = cli.command {
        init_logging(LogFormat::Text);
        return run_client(functions::run(args));
    }
    if let Command::Backup(args) = cli.command {
        init_logging(LogFormat::Text);
        return run_client(backup(args));
    }
    if let Command::Restore(args) = cli.command {
        init_logging(LogFormat::Text);
        return run_client(restore(args));
    }
    let settings = match settings_for(cli.command) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("selfdb: {err:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("selfdb: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("selfdb: {err:#}");
            ExitCode::FAILURE
        }
    }
}
