//! The function platform: users' functions as versioned deploys kept in
//! the database, with settings, encrypted secrets and logs, served by every
//! host of that database.
//!
//! - A deploy (a `.wasm` component, or a TypeScript/JavaScript entry file)
//!   is validated first, then stored as a new immutable version and made
//!   active in one transaction; a refused deploy leaves the active version
//!   serving.
//! - Every change is announced on `selfdb_functions` (LISTEN/NOTIFY); each
//!   host reloads that function from the database, so a second host serves
//!   what the first deployed.
//! - JavaScript runs at once on the shared engine (one component compiled
//!   once, evaluating the version's bundled script per request), while the
//!   version's own pre-initialized component is built in the background;
//!   it is swapped in when ready, stored with the version, and compiled
//!   from the on-disk cache after a restart.
//! - `selfdb dev` redeploys a function whose file changes (`watch`).

pub mod js;
mod logs;
pub mod sealed;
pub mod spin;
pub mod store;
pub mod watch;

use crate::config::Settings;
use crate::events::{Declaration, Events, EventsError};
use crate::runtime::registry::{valid_name, Deployed, Entry};
use crate::runtime::{Runtime, RuntimeError};
use js::{BuildError, JsToolchain};
pub use logs::LogSink;
use sealed::SecretBox;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{FunctionRow, NewVersion, SettingsPatch, Store, VersionRow};
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("no function named {0:?}")]
    NotFound(String),
    #[error("function {0:?} has no version {1}")]
    VersionNotFound(String, i32),
    #[error("function {0:?} has no earlier version to roll back to")]
    NoPrevious(String),
    #[error("invalid function name {0:?}: use 1-64 of a-z, 0-9, '-' and '_'")]
    InvalidName(String),
    #[error("{0}")]
    Invalid(String),
    /// The component does not compile or link (a missing import is named).
    #[error("{0}")]
    Component(RuntimeError),
    /// The source has errors, or the toolchain failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("TypeScript and JavaScript functions need the JavaScript toolchain (`make run` installs it in toolchain/js)")]
    NoToolchain,
    #[error(transparent)]
    Secret(#[from] sealed::OpenError),
    #[error(transparent)]
    Events(#[from] EventsError),
    /// The name belongs to another kind of function (a Spin app and a
    /// function cannot share one).
    #[error("{0}")]
    Conflict(String),
    /// The new version's setup handler failed: it was not activated.
    #[error("the setup of version {version} failed, so it was not activated: {message}")]
    Setup { version: i32, message: String },
}

/// What a deploy uploads.
pub enum Upload {
    /// A WebAssembly component.
    Component(Vec<u8>),
    /// A TypeScript or JavaScript entry file, named as the user named it.
    Source { entry: String, source: Vec<u8> },
    /// A Spin app: `spin.toml` and its components.
    Spin(spin::SpinUpload),
}

impl Upload {
    fn kind(&self) -> &'static str {
        match self {
            Upload::Component(_) => "wasm",
            Upload::Source { entry, .. } if is_typescript(entry) => "ts",
            Upload::Source { .. } => "js",
            Upload::Spin(_) => "spin",
        }
    }

    fn sha256(&self) -> String {
        match self {
            Upload::Component(bytes) => hex::encode(Sha256::digest(bytes)),
            Upload::Source { source, .. } => hex::encode(Sha256::digest(source)),
            Upload::Spin(app) => app.sha256(),
        }
    }
}

fn is_typescript(entry: &str) -> bool {
    entry.ends_with(".ts") || entry.ends_with(".mts")
}

/// A TypeScript/JavaScript entry's file name: plain, with a known extension.
pub fn valid_entry(entry: &str) -> bool {
    (1..=128).contains(&entry.len())
        && !entry.starts_with('.')
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && [".ts", ".mts", ".js", ".mjs"]
            .iter()
            .any(|ext| entry.ends_with(ext))
}

/// A deploy's outcome.
#[derive(Debug, serde::Serialize)]
pub struct Deployment {
    pub name: String,
    pub version: i32,
    pub kind: String,
    /// False when the same upload was already the active version.
    pub created: bool,
    /// What the deploy did not act on, or what still needs doing (a Spin
    /// manifest's ignored keys, required variables without a value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A function with its versions and its secrets' names.
#[derive(Debug, serde::Serialize)]
pub struct FunctionDetails {
    #[serde(flatten)]
    pub function: FunctionRow,
    pub versions: Vec<VersionRow>,
    pub secrets: Vec<String>,
}

pub struct Functions {
    store: Store,
    runtime: Arc<Runtime>,
    settings: Arc<Settings>,
    js: Option<JsToolchain>,
    /// The shared JavaScript engine, built and compiled on first need.
    engine: OnceCell<Entry>,
    sealed: SecretBox,
    /// Versions whose component is being built or compiled here, so a
    /// reload does not start the same work twice.
    pending: std::sync::Mutex<std::collections::HashSet<(String, i32)>>,
    pub logs: LogSink,
    /// Database triggers, schedules, custom events and setup.
    pub events: Arc<Events>,
}

impl Functions {
    pub fn new(
        pool: deadpool_postgres::Pool,
        runtime: Arc<Runtime>,
        settings: Arc<Settings>,
        secrets_key: &str,
    ) -> Arc<Self> {
        let js = settings
            .js_toolchain
            .as_deref()
            .and_then(|dir| JsToolchain::locate(dir, settings.data_dir.join("tmp").join("js")));
        match &js {
            Some(js) => tracing::info!(dir = %js.dir().display(), "JavaScript toolchain found"),
            None => tracing::info!(
                "no JavaScript toolchain installed: TypeScript/JavaScript deploys are refused"
            ),
        }
        let store = Store::new(pool.clone());
        let logs = LogSink::start(Store::new(pool.clone()));
        let events = Events::new(
            pool,
            runtime.clone(),
            logs.clone(),
            crate::events::EventSettings {
                concurrency: settings.event_concurrency,
                retry_base: std::time::Duration::from_millis(settings.event_retry_base_ms),
                ..Default::default()
            },
        );
        Arc::new(Self {
            logs,
            events,
            store,
            runtime,
            settings,
            js,
            engine: OnceCell::new(),
            sealed: SecretBox::new(secrets_key),
            pending: Default::default(),
        })
    }

    pub fn has_js(&self) -> bool {
        self.js.is_some()
    }

    /// Validates, stores and activates a new version. The active version
    /// keeps serving when anything here fails.
    pub async fn deploy(
        self: &Arc<Self>,
        name: &str,
        upload: Upload,
        created_by: &str,
    ) -> Result<Deployment, FunctionError> {
        self.deploy_with(name, upload, created_by, None).await
    }

    /// As [`Functions::deploy`], replacing what the function runs on when
    /// `triggers` is given (kept as it is otherwise). A function declared
    /// with `setup` runs its setup handler on the new version before it is
    /// activated; if that fails, the previous version keeps serving.
    pub async fn deploy_with(
        self: &Arc<Self>,
        name: &str,
        upload: Upload,
        created_by: &str,
        triggers: Option<Vec<Declaration>>,
    ) -> Result<Deployment, FunctionError> {
        if !valid_name(name) {
            return Err(FunctionError::InvalidName(name.to_owned()));
        }
        if self.runtime.registry.get(name).is_some_and(|f| f.system) {
            return Err(FunctionError::Invalid(format!(
                "{name:?} is the name of a system component"
            )));
        }
        let upload = match upload {
            Upload::Spin(app) => return self.deploy_spin(name, app, created_by).await,
            other => other,
        };
        if self.store.active_kind(name).await?.as_deref() == Some("spin") {
            return Err(FunctionError::Conflict(format!(
                "{name:?} is a Spin app: deploy it with `selfdb functions deploy --spin spin.toml`, or delete it first"
            )));
        }
        let sha256 = upload.sha256();
        let kind = upload.kind();
        if let Some(version) = self.store.active_with_sha(name, &sha256).await? {
            // Make sure this host serves it (a restart of a host that has
            // not loaded it yet).
            if self.runtime.registry.get(name).is_none() {
                self.reload(name).await?;
            }
            if let Some(triggers) = &triggers {
                self.store.set_triggers(name, triggers).await?;
            }
            return Ok(Deployment {
                name: name.to_owned(),
                version,
                kind: kind.to_owned(),
                created: false,
                warnings: Vec::new(),
            });
        }
        let version = match &upload {
            Upload::Component(bytes) => {
                // Compile and link before storing: a component that
                // imports what the platform does not provide is refused
                // with that import's name.
                let runtime = self.runtime.clone();
                let (check_name, bytes_owned) = (name.to_owned(), bytes.clone());
                tokio::task::spawn_blocking(move || {
                    runtime.compile(&check_name, &bytes_owned, false)
                })
                .await
                .map_err(|e| FunctionError::Invalid(e.to_string()))?
                .map_err(FunctionError::Component)?;
                self.store
                    .add_version(
                        name,
                        NewVersion {
                            kind,
                            entry: "component.wasm",
                            source: None,
                            script: None,
                            component: Some(bytes.as_slice()),
                            sha256: &sha256,
                            created_by,
                            spin: None,
                        },
                    )
                    .await?
            }
            Upload::Spin(_) => unreachable!("deployed by deploy_spin above"),
            Upload::Source { entry, source } => {
                if !valid_entry(entry) {
                    return Err(FunctionError::Invalid(format!(
                        "the entry file {entry:?} must be a plain file name ending in .ts, .mts, .js or .mjs"
                    )));
                }
                let js = self.js.as_ref().ok_or(FunctionError::NoToolchain)?;
                let script = js.bundle(entry, source).await?;
                // The engine must be ready before the version is active,
                // so the first request does not wait for it.
                self.engine().await?;
                self.store
                    .add_version(
                        name,
                        NewVersion {
                            kind,
                            entry,
                            source: Some(source.as_slice()),
                            script: Some(script.as_bytes()),
                            component: None,
                            sha256: &sha256,
                            created_by,
                            spin: None,
                        },
                    )
                    .await?
            }
        };
        self.activate(name, version, triggers.as_deref()).await?;
        if let Upload::Source { .. } = upload {
            self.build_later(name, version);
        }
        tracing::info!(function = name, version, kind, "deployed function version");
        Ok(Deployment {
            name: name.to_owned(),
            version,
            kind: kind.to_owned(),
            created: true,
            warnings: Vec::new(),
        })
    }

    /// The shared JavaScript engine: built by the toolchain once per
    /// toolchain fingerprint (kept in the data directory), compiled once
    /// (kept in the component cache).
    async fn engine(&self) -> Result<Entry, FunctionError> {
        let js = self.js.as_ref().ok_or(FunctionError::NoToolchain)?;
        self.engine
            .get_or_try_init(|| async {
                let path = self
                    .settings
                    .cache_dir
                    .join("js")
                    .join(format!("engine-{}.wasm", js.fingerprint()));
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(_) => {
                        tracing::info!(
                            "building the shared JavaScript engine (once per toolchain)"
                        );
                        let bytes = js.engine().await?;
                        if let Some(parent) = path.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        if let Err(err) = crate::files::write_atomically(&path, &bytes) {
                            tracing::warn!(%err, "cannot cache the JavaScript engine");
                        }
                        bytes
                    }
                };
                let runtime = self.runtime.clone();
                let compiled = tokio::task::spawn_blocking(move || {
                    runtime.compile("js-engine", &bytes, false)
                })
                .await
                .map_err(|e| FunctionError::Invalid(e.to_string()))?
                .map_err(FunctionError::Component)?;
                Ok(compiled.entry)
            })
            .await
            .cloned()
    }

    /// Builds the JavaScript engine ahead of the first deploy, when the
    /// toolchain is installed.
    pub fn warm_up(self: &Arc<Self>) {
        if self.js.is_none() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(err) = this.engine().await {
                tracing::warn!(%err, "the JavaScript engine is not ready");
            }
        });
    }

    /// Deploys what the functions directory holds, each through [`deploy`]
    /// (an unchanged file is no new version): `NAME.wasm` components now,
    /// and `NAME.ts`/`NAME.js` or `NAME/index.ts`/`NAME/index.js` entry files
    /// in the background, so start-up does not wait for the first build of
    /// the JavaScript engine. A file that fails is reported and skipped: one
    /// bad file must not keep the others from serving.
    ///
    /// [`deploy`]: Functions::deploy
    pub async fn deploy_dir(self: &Arc<Self>, dir: &std::path::Path) -> Vec<String> {
        let mut deployed = Vec::new();
        let mut sources = Vec::new();
        for (name, path, upload) in scan_dir(dir) {
            if let Upload::Source { .. } = upload {
                sources.push((name, path, upload));
                continue;
            }
            match self.deploy(&name, upload, "functions directory").await {
                Ok(_) => deployed.push(name),
                Err(err) => {
                    tracing::error!(path = %path.display(), %err, "cannot deploy component")
                }
            }
        }
        if !sources.is_empty() {
            let this = self.clone();
            tokio::spawn(async move {
                for (name, path, upload) in sources {
                    match this.deploy(&name, upload, "functions directory").await {
                        Ok(d) => {
                            tracing::info!(function = %name, version = d.version, "deployed from the functions directory")
                        }
                        Err(err) => {
                            eprintln!("selfdb: {name}: not deployed ({}):\n{err}", path.display());
                            tracing::error!(path = %path.display(), %err, "cannot deploy function");
                        }
                    }
                }
            });
        }
        deployed
    }

    /// Serves every function's active version (start-up).
    pub async fn load_all(self: &Arc<Self>) -> Result<usize, FunctionError> {
        let functions = self.store.list().await?;
        let mut loaded = 0;
        for function in functions {
            match self.reload(&function.name).await {
                Ok(()) => {
                    loaded += 1;
                    // A build a stopped host did not finish.
                    if let Some(version) = function.active_version {
                        if self
                            .runtime
                            .registry
                            .get(&function.name)
                            .is_some_and(|f| f.script.is_some())
                        {
                            self.build_later(&function.name, version);
                        }
                    }
                }
                // One broken function must not keep the others from serving.
                Err(err) => {
                    tracing::error!(function = %function.name, %err, "cannot serve function")
                }
            }
        }
        Ok(loaded)
    }

    /// Makes this host serve what the database says about `name`.
    pub async fn reload(self: &Arc<Self>, name: &str) -> Result<(), FunctionError> {
        let Some(function) = self.store.get(name).await? else {
            if self.runtime.registry.get(name).is_some_and(|f| !f.system) {
                self.runtime.registry.remove(name);
                tracing::info!(function = name, "function removed");
                spin::forget_app(&self.settings.data_dir, name);
            }
            return Ok(());
        };
        let Some(version) = function.active_version else {
            return Ok(());
        };
        if self.runtime.registry.get(name).is_some_and(|f| f.system) {
            tracing::warn!(
                function = name,
                "a function has a system component's name; not serving it"
            );
            return Ok(());
        }
        // Unchanged code with changed settings keeps its compiled entry.
        let current = self.runtime.registry.get(name);
        let deployed = self
            .deployed_version(&function, version, current.as_deref())
            .await?;
        self.runtime.registry.insert(Arc::new(deployed));
        Ok(())
    }

    /// A version ready to run, not registered: `current` is what this host
    /// serves now, whose compiled entry is kept when the code is the same.
    async fn deployed_version(
        self: &Arc<Self>,
        function: &FunctionRow,
        version: i32,
        current: Option<&Deployed>,
    ) -> Result<Deployed, FunctionError> {
        let name = function.name.as_str();
        let code = self
            .store
            .code(name, version)
            .await?
            .ok_or_else(|| FunctionError::VersionNotFound(name.to_owned(), version))?;
        let config = self.config_of(function).await?;
        if code.meta.kind == "spin" {
            let manifest = code.source.as_deref().unwrap_or_default();
            let entry = self
                .load_spin(name, version, &code.meta.sha256, manifest, &config)
                .await?;
            return Ok(self.deployed(
                function,
                version,
                entry,
                code.meta.sha256.clone(),
                config,
                None,
            ));
        }
        let script: Option<Arc<str>> = code
            .script
            .as_deref()
            .map(|s| String::from_utf8_lossy(s).into());
        let (entry, digest, script) = match (&code.component, current) {
            (Some(_), Some(current))
                if current.version == Some(version) && current.script.is_none() =>
            {
                (current.entry.clone(), current.digest.clone(), None)
            }
            (Some(bytes), _) if code.meta.kind == "wasm" || self.runtime.is_compiled(bytes) => {
                let compiled = self.compile(name, bytes.clone()).await?;
                (compiled.entry, compiled.digest, None)
            }
            (Some(bytes), _) => {
                // A JavaScript version built elsewhere: serve it on the
                // shared engine while this host compiles its component.
                self.compile_later(name, version, bytes.clone());
                (self.engine().await?, code.meta.sha256.clone(), script)
            }
            // A JavaScript version whose own component is not built (yet):
            // the host that took the deploy builds it.
            (None, _) => (self.engine().await?, code.meta.sha256.clone(), script),
        };
        Ok(self.deployed(function, version, entry, digest, config, script))
    }

    async fn compile(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<crate::runtime::Compiled, FunctionError> {
        let runtime = self.runtime.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || runtime.compile(&name, &bytes, false))
            .await
            .map_err(|e| FunctionError::Invalid(e.to_string()))?
            .map_err(FunctionError::Component)
    }

    /// Marks `(name, version)` as being worked on; false when it already is.
    fn claim(&self, name: &str, version: i32) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((name.to_owned(), version))
    }

    fn release(&self, name: &str, version: i32) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(name.to_owned(), version));
    }

    /// Builds a JavaScript version's own component in the background,
    /// stores it with the version and swaps it in (every host reloads).
    fn build_later(self: &Arc<Self>, name: &str, version: i32) {
        let Some(js) = self.js.clone() else {
            return;
        };
        if !self.settings.js_own_components {
            return;
        }
        if !self.claim(name, version) {
            return;
        }
        let this = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            this.build(&js, &name, version).await;
            this.release(&name, version);
        });
    }

    async fn build(self: &Arc<Self>, js: &JsToolchain, name: &str, version: i32) {
        let script = match self.store.code(name, version).await {
            Ok(Some(code)) if code.component.is_none() => code.script,
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(function = %name, version, %err, "cannot read the version to build");
                return;
            }
        };
        let Some(script) = script else { return };
        let started = std::time::Instant::now();
        let bytes = match js.componentize(&String::from_utf8_lossy(&script)).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(function = %name, version, %err, "cannot build the function's own component; it stays on the shared engine");
                return;
            }
        };
        let built = started.elapsed();
        // Compile here first, so the swap that follows is instant.
        if let Err(err) = self.compile(name, bytes.clone()).await {
            tracing::warn!(function = %name, version, %err, "the function's own component does not compile");
            return;
        }
        let compiled = started.elapsed() - built;
        if let Err(err) = self.store.set_component(name, version, &bytes).await {
            tracing::warn!(function = %name, version, %err, "cannot store the function's own component");
            return;
        }
        if let Err(err) = self.reload(name).await {
            tracing::warn!(function = %name, %err, "cannot swap in the function's own component");
            return;
        }
        tracing::info!(
            function = %name,
            version,
            built_ms = built.as_millis(),
            compiled_ms = compiled.as_millis(),
            bytes = bytes.len(),
            "built the function's own component; it serves now"
        );
    }

    /// Compiles a stored component in the background, then serves it.
    fn compile_later(self: &Arc<Self>, name: &str, version: i32, bytes: Vec<u8>) {
        if !self.claim(name, version) {
            return;
        }
        let this = self.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let compiled = this.compile(&name, bytes).await;
            this.release(&name, version);
            match compiled {
                Ok(_) => {
                    if let Err(err) = this.reload(&name).await {
                        tracing::warn!(function = %name, %err, "cannot swap in the function's component");
                    }
                }
                Err(err) => {
                    tracing::warn!(function = %name, version, %err, "cannot compile the function's component")
                }
            }
        });
    }

    fn deployed(
        &self,
        function: &FunctionRow,
        version: i32,
        entry: Entry,
        digest: String,
        config: BTreeMap<String, String>,
        script: Option<Arc<str>>,
    ) -> Deployed {
        let own = self.settings.functions.get(&function.name);
        let mut limits = self.settings.limits_for(&function.name);
        if let Some(mb) = function.memory_mb.and_then(|m| u64::try_from(m).ok()) {
            limits.memory_bytes = (mb << 20).min(self.settings.max_memory_bytes());
        }
        if let Some(ms) = function.time_ms.and_then(|t| u64::try_from(t).ok()) {
            limits.time_ms = ms;
        }
        let mut allowed_hosts = own.map(|f| f.allowed_hosts.clone()).unwrap_or_default();
        allowed_hosts.extend(function.allowed_hosts.iter().cloned());
        Deployed {
            name: function.name.as_str().into(),
            digest,
            version: Some(version),
            entry,
            limits,
            config: Arc::new(config),
            allowed_hosts: Arc::new(allowed_hosts),
            system: false,
            script,
            verify_jwt: function.verify_jwt,
            slots: function
                .concurrency
                .and_then(|c| usize::try_from(c).ok())
                .map(|c| Arc::new(tokio::sync::Semaphore::new(c))),
        }
    }

    /// What `config.get` answers: `selfdb.toml`'s values, then the
    /// function's environment, then its secrets.
    async fn config_of(
        &self,
        function: &FunctionRow,
    ) -> Result<BTreeMap<String, String>, FunctionError> {
        let mut config = self
            .settings
            .functions
            .get(&function.name)
            .map(|f| f.config.clone())
            .unwrap_or_default();
        config.extend(function.env.clone());
        for (key, nonce, ciphertext) in self.store.sealed_secrets(&function.name).await? {
            let value = self
                .sealed
                .open(&function.name, &key, &nonce, &ciphertext)?;
            config.insert(key, value);
        }
        Ok(config)
    }

    pub async fn list(&self) -> Result<Vec<FunctionRow>, FunctionError> {
        self.store.list().await
    }

    /// A TypeScript or JavaScript version's entry file name and source.
    pub async fn source(
        &self,
        name: &str,
        version: i32,
    ) -> Result<(String, Vec<u8>), FunctionError> {
        self.store
            .source(name, version)
            .await?
            .ok_or(FunctionError::VersionNotFound(name.to_owned(), version))
    }

    pub async fn details(&self, name: &str) -> Result<FunctionDetails, FunctionError> {
        let function = self
            .store
            .get(name)
            .await?
            .ok_or_else(|| FunctionError::NotFound(name.to_owned()))?;
        Ok(FunctionDetails {
            versions: self.store.versions(name).await?,
            secrets: self.store.secret_names(name).await?,
            function,
        })
    }

    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRow>, FunctionError> {
        self.require(name).await?;
        self.store.versions(name).await
    }

    async fn require(&self, name: &str) -> Result<FunctionRow, FunctionError> {
        self.store
            .get(name)
            .await?
            .ok_or_else(|| FunctionError::NotFound(name.to_owned()))
    }

    /// Activates `version`, or without one the version that was active
    /// before the current one.
    pub async fn rollback(
        self: &Arc<Self>,
        name: &str,
        version: Option<i32>,
    ) -> Result<i32, FunctionError> {
        let function = self.require(name).await?;
        let target = match version.or(function.previous_version) {
            Some(v) => v,
            None => return Err(FunctionError::NoPrevious(name.to_owned())),
        };
        self.activate(name, target, None).await?;
        Ok(target)
    }

    pub async fn delete(self: &Arc<Self>, name: &str) -> Result<bool, FunctionError> {
        // The row triggers on users' tables go first (the cascade would
        // leave them firing into nothing).
        self.store.set_triggers(name, &[]).await?;
        let deleted = self.store.delete(name).await?;
        self.reload(name).await?;
        Ok(deleted)
    }

    /// Makes `version` the active one, replacing the declarations when
    /// given; runs the setup handler first when the function has one.
    async fn activate(
        self: &Arc<Self>,
        name: &str,
        version: i32,
        triggers: Option<&[Declaration]>,
    ) -> Result<(), FunctionError> {
        let setup = match triggers {
            Some(t) => t.contains(&Declaration::Setup),
            None => self
                .store
                .triggers(name)
                .await?
                .iter()
                .any(|(_, d)| *d == Declaration::Setup),
        };
        if setup {
            if let Some(triggers) = triggers {
                self.store.check_triggers(name, triggers).await?;
            }
            let function = self.require(name).await?;
            let deployed = Arc::new(self.deployed_version(&function, version, None).await?);
            if let Err(message) = self.events.run_setup(deployed).await {
                return Err(FunctionError::Setup { version, message });
            }
        }
        self.store.activate(name, version, triggers).await?;
        self.reload(name).await
    }

    /// What the function runs on.
    pub async fn triggers(&self, name: &str) -> Result<Vec<Declaration>, FunctionError> {
        self.require(name).await?;
        Ok(self
            .store
            .triggers(name)
            .await?
            .into_iter()
            .map(|(_, d)| d)
            .collect())
    }

    /// Replaces what the function runs on.
    pub async fn set_triggers(
        &self,
        name: &str,
        triggers: &[Declaration],
    ) -> Result<Vec<Declaration>, FunctionError> {
        self.require(name).await?;
        self.store.set_triggers(name, triggers).await?;
        self.triggers(name).await
    }

    pub async fn set_settings(
        self: &Arc<Self>,
        name: &str,
        patch: SettingsPatch,
    ) -> Result<FunctionRow, FunctionError> {
        if let Some(env) = &patch.env {
            for key in env.keys() {
                check_key(key)?;
            }
        }
        if patch.max_attempts.is_some_and(|n| !(1..=100).contains(&n)) {
            return Err(FunctionError::Invalid(
                "max_attempts is between 1 and 100".into(),
            ));
        }
        let function = self
            .store
            .set_settings(name, &patch)
            .await?
            .ok_or_else(|| FunctionError::NotFound(name.to_owned()))?;
        self.reload(name).await?;
        Ok(function)
    }

    pub async fn secret_names(&self, name: &str) -> Result<Vec<String>, FunctionError> {
        self.require(name).await?;
        self.store.secret_names(name).await
    }

    /// Sets and removes secrets; returns the names now set.
    pub async fn change_secrets(
        self: &Arc<Self>,
        name: &str,
        set: BTreeMap<String, String>,
        unset: Vec<String>,
    ) -> Result<Vec<String>, FunctionError> {
        for key in set.keys().chain(unset.iter()) {
            check_key(key)?;
        }
        let sealed: Vec<(String, Vec<u8>, Vec<u8>)> = set
            .iter()
            .map(|(key, value)| {
                let (nonce, ciphertext) = self.sealed.seal(name, key, value);
                (key.clone(), nonce, ciphertext)
            })
            .collect();
        if !self.store.change_secrets(name, &sealed, &unset).await? {
            return Err(FunctionError::NotFound(name.to_owned()));
        }
        self.reload(name).await?;
        self.store.secret_names(name).await
    }

    pub async fn logs(
        &self,
        name: &str,
        after_id: i64,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<store::LogRow>, FunctionError> {
        self.require(name).await?;
        self.store.logs(name, after_id, since, limit).await
    }
}

/// The functions in a directory: (name, file, upload).
pub fn scan_dir(dir: &std::path::Path) -> Vec<(String, std::path::PathBuf, Upload)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (name, file) = if path.is_dir() {
            match ["index.ts", "index.js", "index.mts", "index.mjs"]
                .iter()
                .map(|f| path.join(f))
                .find(|f| f.is_file())
            {
                Some(file) => (
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("")
                        .to_owned(),
                    file,
                ),
                None => continue,
            }
        } else if matches!(ext, "wasm" | "ts" | "js" | "mts" | "mjs") {
            (stem, path.clone())
        } else {
            continue;
        };
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(path = %file.display(), %err, "cannot read function");
                continue;
            }
        };
        let upload = if file.extension().and_then(|e| e.to_str()) == Some("wasm") {
            Upload::Component(bytes)
        } else {
            let entry = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("index.js")
                .to_owned();
            Upload::Source {
                entry,
                source: bytes,
            }
        };
        found.push((name, file, upload));
    }
    found
}

/// Environment variable and secret names: as a shell would accept them.
fn check_key(key: &str) -> Result<(), FunctionError> {
    let ok = (1..=128).contains(&key.len())
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FunctionError::Invalid(format!(
            "{key:?} is not a valid variable name: use letters, digits and '_', not starting with a digit"
        )))
    }
}

/// Keeps every host in step: reloads a function whenever any host
/// announces a change on `selfdb_functions`.
pub async fn follow_changes(functions: Arc<Functions>, target: crate::db::connect::PgTarget) {
    loop {
        match target.config.connect(target.tls.clone()).await {
            Ok((client, connection)) => {
                let mut rx = crate::db::notifications(connection);
                if let Err(err) = client
                    .batch_execute(&format!("listen {}", store::CHANNEL))
                    .await
                {
                    tracing::warn!(%err, "cannot listen for function changes");
                } else {
                    // Changes made while this host was not listening.
                    if let Err(err) = functions.load_all().await {
                        tracing::warn!(%err, "cannot reload functions");
                    }
                    while let Some(notification) = rx.recv().await {
                        let name = notification.payload();
                        if let Err(err) = functions.reload(name).await {
                            tracing::warn!(function = %name, %err, "cannot reload function");
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "cannot connect to listen for function changes"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
