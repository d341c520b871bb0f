//! On-disk cache of compiled components, keyed by the component's SHA-256
//! and the engine's compatibility hash, so a restart does not recompile and
//! an engine upgrade never loads stale code.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

/// Where a component came from this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    Cached,
    Compiled,
}

impl ComponentCache {
    /// `label` tells apart engines that share `dir`.
    pub fn new(engine: &Engine, dir: PathBuf, label: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir,
            engine_key: format!("{label}{:016x}", hasher.finish()),
        })
    }

    pub fn digest(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Whether the compiled form of `bytes` is in the cache.
    pub fn contains(&self, bytes: &[u8]) -> bool {
        self.path_for(&Self::digest(bytes)).exists()
    }

    /// The compiled form of `bytes`, from the cache when present.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, Loaded, String)> {
        let digest = Self::digest(bytes);
        let path = self.path_for(&digest);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash, into a directory only
            // the host writes; wasmtime re-checks the header on load.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Loaded::Cached, digest)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "ignoring unreadable compiled component");
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        crate::files::write_atomically(&path, &compiled)?;
        // Mapped from the file just written rather than copied from memory:
        // clean file pages are shared between hosts on one machine and the
        // kernel may drop them under pressure, where a copy is anonymous
        // memory held for the host's life.
        // SAFETY: the file holds what this engine produced just now.
        let component = match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => component,
            // SAFETY: `compiled` was produced by this engine just now.
            Err(_) => unsafe { Component::deserialize(engine, &compiled)? },
        };
        drop(compiled);
        crate::memory::release_freed();
        Ok((component, Loaded::Compiled, digest))
    }
}
