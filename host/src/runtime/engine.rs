//! The process's wasmtime engines, their linkers and the epoch ticker.
//!
//! Two engines: functions (Rust, JavaScript, system components) run on one
//! without wasmtime's concurrency support, and Spin apps on one with it.
//! spin-sdk 7 components need it (WASI 0.3: component-model async, and
//! Spin's async interfaces, which cannot even be linked without it), but
//! turned on for every store it cost functions about a fifth of their
//! throughput (`make bench`, functions part, same run: Rust trivial 16.0k
//! vs 20.5k req/s). spin-sdk 5 components run on the Spin engine too: the
//! interfaces they import are defined next to their async forms.

use super::cache::{ComponentCache, Loaded};
use super::registry::{valid_name, Deployed, Entry, Registry};
use crate::capabilities::bindings::listener::ListenerPre;
use crate::capabilities::bindings::RecordHandlerPre;
use crate::capabilities::spin::SpinState;
use crate::capabilities::{self, Capabilities, Platform, Privileged, SystemState, UserState};
use crate::config::Settings;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Memory of a finished instance kept mapped for the next one, per slot.
const KEEP_RESIDENT_BYTES: usize = 8 << 20;

/// How often the epoch advances: the granularity of the time cap.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("wasmtime: {0}")]
    Wasmtime(#[from] wasmtime::Error),
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("invalid function name {0:?}: use 1-64 of a-z, 0-9, '-' and '_'")]
    InvalidName(String),
    #[error("component {name}: {message}")]
    Link { name: String, message: String },
}

/// Counters shown on `/metrics` and `/health`.
#[derive(Default)]
pub struct RuntimeMetrics {
    pub invocations: AtomicU64,
    pub failures: AtomicU64,
    pub instantiations: AtomicU64,
    pub instantiate_nanos: AtomicU64,
    pub active: AtomicU64,
}

pub struct Runtime {
    /// Functions' engine, without concurrency support.
    pub engine: Engine,
    /// Spin apps' engine, with concurrency support (see the module docs).
    pub(super) spin_engine: Engine,
    user_linker: Linker<UserState>,
    system_linker: Linker<SystemState>,
    /// Spin apps' components: WASI 0.2 and 0.3, and Spin's interfaces.
    pub(super) spin_linker: Linker<SpinState>,
    /// What components can ask of the host, per process.
    pub(super) capabilities: Capabilities,
    pub(super) cache: ComponentCache,
    /// The Spin engine's compiled components (its own key: code compiled
    /// by one engine never loads into the other).
    pub(super) spin_cache: ComponentCache,
    pub registry: Registry,
    pub metrics: RuntimeMetrics,
    settings: Arc<Settings>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(
        settings: Arc<Settings>,
        capabilities: Capabilities,
    ) -> Result<Arc<Self>, RuntimeError> {
        let engine = Engine::new(&engine_config(&settings, false))?;
        let spin_engine = Engine::new(&engine_config(&settings, true))?;

        let mut user_linker = Linker::new(&engine);
        capabilities::wasi::link(&mut user_linker)?;
        Platform::link(&mut user_linker)?;
        let mut system_linker = Linker::new(&engine);
        capabilities::wasi::link(&mut system_linker)?;
        Platform::link(&mut system_linker)?;
        Privileged::link(&mut system_linker)?;
        let mut spin_linker = Linker::new(&spin_engine);
        capabilities::wasi::link(&mut spin_linker)?;
        capabilities::wasi::link_p3(&mut spin_linker)?;
        Platform::link(&mut spin_linker)?;
        capabilities::spin::link(&mut spin_linker)?;

        let cache_error = |source| RuntimeError::Io {
            action: "create the component cache".into(),
            source,
        };
        let dir = settings.cache_dir.join("components");
        let cache = ComponentCache::new(&engine, dir.clone(), "").map_err(cache_error)?;
        let spin_cache = ComponentCache::new(&spin_engine, dir, "spin-").map_err(cache_error)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(
            vec![engine.clone(), spin_engine.clone()],
            ticker_stop.clone(),
        );
        Ok(Arc::new(Runtime {
            engine,
            spin_engine,
            user_linker,
            system_linker,
            spin_linker,
            capabilities,
            cache,
            spin_cache,
            registry: Registry::default(),
            metrics: RuntimeMetrics::default(),
            settings,
            ticker_stop,
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Compiles (or loads from cache), links and registers a user function;
    /// a previous version of the same name is replaced.
    pub fn deploy(
        &self,
        name: &str,
        bytes: &[u8],
        system: bool,
    ) -> Result<Arc<Deployed>, RuntimeError> {
        let own = self.settings.functions.get(name);
        let config = own.map(|f| f.config.clone()).unwrap_or_default();
        self.deploy_with_config(name, bytes, system, config)
    }

    /// As [`Runtime::deploy`], with the configuration the component sees
    /// through `config.get` given explicitly (system components get theirs
    /// from the host's settings).
    pub fn deploy_with_config(
        &self,
        name: &str,
        bytes: &[u8],
        system: bool,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<Deployed>, RuntimeError> {
        let compiled = self.compile(name, bytes, system)?;
        let own = self.settings.functions.get(name);
        let deployed = Arc::new(Deployed {
            name: name.into(),
            digest: compiled.digest,
            version: None,
            entry: compiled.entry,
            limits: self.settings.limits_for(name),
            config: Arc::new(config),
            allowed_hosts: Arc::new(own.map(|f| f.allowed_hosts.clone()).unwrap_or_default()),
            system,
            script: None,
            verify_jwt: true,
            slots: None,
        });
        self.registry.insert(deployed.clone());
        Ok(deployed)
    }

    /// Compiles (or loads from cache) and links a component, without
    /// registering it.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        system: bool,
    ) -> Result<Compiled, RuntimeError> {
        if !valid_name(name) {
            return Err(RuntimeError::InvalidName(name.to_owned()));
        }
        let (component, loaded, digest) = self.cache.load(&self.engine, bytes)?;
        let link_error = |err: wasmtime::Error| RuntimeError::Link {
            name: name.to_owned(),
            message: format!("{err:#}"),
        };
        // A system component that exports `handler` is called through it;
        // only system components may use it, so a user function keeps the
        // standard shape whatever else it exports.
        let entry = if system {
            let pre = self
                .system_linker
                .instantiate_pre(&component)
                .map_err(link_error)?;
            match RecordHandlerPre::new(pre.clone()) {
                Ok(record) => Entry::Record(record),
                Err(_) => Entry::SystemHttp(ProxyPre::new(pre).map_err(link_error)?),
            }
        } else {
            let pre = self
                .user_linker
                .instantiate_pre(&component)
                .map_err(link_error)?;
            // Requests, events or both: whichever it exports.
            let http = ProxyPre::new(pre.clone());
            let listener = ListenerPre::new(pre).ok();
            match (http, listener) {
                (Ok(http), listener) => Entry::User {
                    http: Some(http),
                    listener,
                },
                (Err(_), Some(listener)) => Entry::User {
                    http: None,
                    listener: Some(listener),
                },
                (Err(err), None) => {
                    return Err(RuntimeError::Link {
                        name: name.to_owned(),
                        message: format!(
                            "it exports neither wasi:http/incoming-handler nor \
                             selfdb:platform/listener ({err:#})"
                        ),
                    })
                }
            }
        };
        tracing::info!(
            function = name,
            version = &digest[..12],
            cached = loaded == Loaded::Cached,
            system,
            record_handler = matches!(entry, Entry::Record(_)),
            listener = matches!(
                entry,
                Entry::User {
                    listener: Some(_),
                    ..
                }
            ),
            "compiled component"
        );
        Ok(Compiled {
            entry,
            digest,
            cached: loaded == Loaded::Cached,
        })
    }

    /// Whether `bytes` are compiled in the on-disk cache already (loading
    /// them is then a matter of milliseconds).
    pub fn is_compiled(&self, bytes: &[u8]) -> bool {
        self.cache.contains(bytes)
    }
}

/// A compiled, linked component.
pub struct Compiled {
    pub entry: Entry,
    /// SHA-256 of the component's bytes.
    pub digest: String,
    /// Loaded from the on-disk cache rather than compiled now.
    pub cached: bool,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// One engine's configuration: component model, epoch interruption, and
/// the pooling allocator sized by the host's settings; `concurrency` turns
/// on wasmtime's concurrency support (see the module docs).
fn engine_config(settings: &Settings, concurrency: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(concurrency);
    let instances = settings.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(8))
        .total_stacks(instances)
        .max_memory_size(usize::try_from(settings.max_memory_bytes()).unwrap_or(usize::MAX))
        // Reset a used slot by rewriting only its dirty pages (PAGEMAP_SCAN,
        // Linux 6.7+) instead of madvise: with an instance per request, the
        // TLB shootdowns of madvise on every exit dominate the cost.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(64 << 10)
        .decommit_batch_size(32);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn spawn_epoch_ticker(engines: Vec<Engine>, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("selfdb-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                for engine in &engines {
                    engine.increment_epoch();
                }
            }
        })
        .ok();
}
