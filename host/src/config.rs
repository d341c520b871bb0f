//! Settings, resolved from (highest first) command-line flags, environment
//! variables, `selfdb.toml`, and defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Resource limits of one component invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionLimits {
    /// Cap on the component's linear memory, in bytes.
    pub memory_bytes: u64,
    /// Cap on the time an invocation may run, in milliseconds (enforced by
    /// epoch interruption while wasm runs, and by the statement timeout and a
    /// wall-clock deadline while the host works for it).
    pub time_ms: u64,
}

impl Default for FunctionLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            time_ms: 5_000,
        }
    }
}

/// What the operator set for one function in `selfdb.toml`:
/// ```toml
/// [functions.hello]
/// memory_mb = 32
/// time_ms = 1000
/// [functions.hello.config]
/// GREETING = "Hi"
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSettings {
    pub memory_mb: Option<u64>,
    pub time_ms: Option<u64>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Hosts this function may reach with outbound HTTP; empty denies all.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Supabase Auth settings (`[auth]` in `selfdb.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Sign users in at sign-up without an email confirmation.
    pub autoconfirm: bool,
    pub password_min_length: u32,
    pub disable_signup: bool,
    /// Where mail links send users after verification.
    pub site_url: Option<String>,
    /// Failed sign-ins allowed per email and per IP in `rate_window_seconds`.
    pub failed_sign_ins_per_email: u32,
    pub failed_sign_ins_per_ip: u32,
    pub rate_window_seconds: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            autoconfirm: true,
            password_min_length: 6,
            disable_signup: false,
            site_url: None,
            failed_sign_ins_per_email: 5,
            failed_sign_ins_per_ip: 30,
            rate_window_seconds: 300,
        }
    }
}

/// The `selfdb.toml` file: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub functions_dir: Option<PathBuf>,
    pub jwt_secret: Option<String>,
    pub jwt_expiry_seconds: Option<u64>,
    pub max_body_bytes: Option<usize>,
    pub realtime_max_connections: Option<usize>,
    pub realtime_max_channels: Option<usize>,
    pub event_concurrency: Option<usize>,
    pub event_retry_base_ms: Option<u64>,
    pub project_schema_poll_ms: Option<u64>,
    pub request_log: Option<bool>,
    pub request_log_retention_days: Option<u32>,
    pub logs_clickhouse_url: Option<String>,
    pub db_pool_size: Option<usize>,
    pub max_instances: Option<u32>,
    pub function_memory_mb: Option<u64>,
    pub function_time_ms: Option<u64>,
    pub admin_email: Option<String>,
    pub auth_component: Option<PathBuf>,
    pub crud_component: Option<PathBuf>,
    pub jwt_signing_key: Option<PathBuf>,
    #[serde(default)]
    pub auth: AuthSettings,
    pub smtp_url: Option<String>,
    pub smtp_from: Option<String>,
    pub db_schemas: Option<Vec<String>>,
    pub storage_dir: Option<PathBuf>,
    pub storage_backend: Option<String>,
    pub s3_port: Option<u16>,
    pub s3_region: Option<String>,
    pub storage_max_object_bytes: Option<u64>,
    pub js_toolchain: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub cors_origins: Option<Vec<String>>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub functions: BTreeMap<String, FunctionSettings>,
}

/// How the host writes its log (standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people; requests are logged at `debug` only.
    #[default]
    Text,
    /// One JSON object per line, one line per request, for log shippers.
    Json,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

/// Where the platform database comes from.
#[derive(Debug, Clone)]
pub enum DatabaseSource {
    /// A private cluster the host starts in `<data dir>/pg`.
    Embedded,
    /// An existing server (`selfdb serve`).
    External(String),
}

/// Fully resolved settings the host runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseSource,
    pub redis_url: Option<String>,
    pub functions_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub jwt_expiry_seconds: u64,
    pub max_body_bytes: usize,
    pub realtime_max_connections: usize,
    pub realtime_max_channels: usize,
    /// Event deliveries running at once on this host.
    pub event_concurrency: usize,
    /// The first retry's delay of a failed delivery (it doubles each time).
    pub event_retry_base_ms: u64,
    /// How often each project's schema digest is compared.
    pub project_schema_poll: std::time::Duration,
    /// Whether every API request is logged (`selfdb.request_logs`).
    pub request_log: bool,
    /// Days of request logs kept.
    pub request_log_retention_days: u32,
    /// Where request logs go instead of PostgreSQL (ClickHouse's HTTP
    /// interface, with credentials and database).
    pub logs_clickhouse_url: Option<String>,
    pub db_pool_size: usize,
    pub max_instances: u32,
    pub default_limits: FunctionLimits,
    pub functions: BTreeMap<String, FunctionSettings>,
    pub admin_email: String,
    pub admin_password: Option<String>,
    /// Serves `/bench/native/hello`, the native twin of the hello component,
    /// so `make bench` can compare both paths inside one binary.
    pub bench_routes: bool,
    /// PEM private key (PKCS#8 P-256, or RSA) that signs users' access
    /// tokens; without it they are HS256 with the instance secret.
    pub jwt_signing_key: Option<PathBuf>,
    /// A replacement for the embedded auth component.
    pub auth_component: Option<PathBuf>,
    /// A replacement for the embedded CRUD component.
    pub crud_component: Option<PathBuf>,
    pub auth: AuthSettings,
    /// SMTP server for auth mail; without it mail goes to the dev outbox.
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Schemas `/rest/v1` serves, in search order.
    pub db_schemas: Vec<String>,
    /// Where object files live.
    pub storage_dir: PathBuf,
    /// An upstream S3 store that holds object bytes instead of
    /// `storage_dir`.
    pub storage_upstream: Option<storage_s3s::UpstreamConfig>,
    /// Backups taken on a schedule by the hosts of this instance.
    pub backup_schedule: Option<crate::backup::schedule::BackupSchedule>,
    /// How long bytes that no row references are left before they count as
    /// orphans (uploads other hosts are committing must outlive it).
    pub storage_orphan_grace: std::time::Duration,
    /// Where the S3 endpoint listens.
    pub s3_listen: SocketAddr,
    /// The S3 endpoint's region.
    pub s3_region: String,
    pub storage_max_object_bytes: u64,
    /// Compiled components and the built JavaScript engine; hosts of one
    /// machine may share it.
    pub cache_dir: PathBuf,
    /// Where the JavaScript toolchain is (`toolchain/js`).
    pub js_toolchain: Option<PathBuf>,
    /// Whether JavaScript versions get their own component built.
    pub js_own_components: bool,
    /// Encrypts functions' secrets; `<data dir>/secrets.key` when unset.
    pub secrets_key: Option<String>,
    /// HTTPS on both ports when set.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Who may call the APIs from a browser.
    pub cors: crate::cors::CorsPolicy,
    pub log_format: LogFormat,
}

impl Settings {
    /// The limits for one function: its own settings over the defaults.
    pub fn limits_for(&self, function: &str) -> FunctionLimits {
        let own = self.functions.get(function);
        FunctionLimits {
            memory_bytes: own
                .and_then(|f| f.memory_mb)
                .map(|mb| mb << 20)
                .unwrap_or(self.default_limits.memory_bytes),
            time_ms: own
                .and_then(|f| f.time_ms)
                .unwrap_or(self.default_limits.time_ms),
        }
    }

    /// The largest memory cap of any function, which sizes the instance pool.
    pub fn max_memory_bytes(&self) -> u64 {
        self.functions
            .keys()
            .map(|name| self.limits_for(name).memory_bytes)
            .chain(std::iter::once(self.default_limits.memory_bytes))
            .max()
            .unwrap_or(self.default_limits.memory_bytes)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("max_body_bytes must be > 0".into()));
        }
        if self.db_pool_size == 0 {
            return Err(ConfigError::Invalid("db_pool_size must be > 0".into()));
        }
        if self.max_instances == 0 {
            return Err(ConfigError::Invalid("max_instances must be > 0".into()));
        }
        for (name, limits) in std::iter::once(("(default)", self.default_limits)).chain(
            self.functions
                .keys()
                .map(|n| (n.as_str(), self.limits_for(n))),
        ) {
            if limits.memory_bytes < (1 << 20) || limits.time_ms == 0 {
                return Err(ConfigError::Invalid(format!(
                    "function {name}: memory must be at least 1 MiB and time above 0 ms"
                )));
            }
        }
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 32 {
                return Err(ConfigError::Invalid(
                    "jwt_secret must be at least 32 characters".into(),
                ));
            }
        }
        Ok(())
    }
}
