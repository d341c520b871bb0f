//! Spin apps as functions: a deploy checks the manifest and compiles every
//! component before anything is stored, then stores the app as one
//! version (manifest, components, files); loading a version builds its
//! router and each component's run-time spec (see `crate::spin`).

use super::{Deployment, FunctionError, Functions};
use crate::runtime::registry::Entry;
use crate::runtime::spin::{SpinApp, SpinComponent};
use crate::spin::allowed_hosts::AllowedHosts;
use crate::spin::manifest::Manifest;
use crate::spin::routes::Router;
use crate::spin::{unresolved_variables, ComponentSpec};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

/// A Spin app as uploaded: `spin.toml`, each component's `.wasm` by id,
/// and the files components mount.
#[derive(Debug, Default)]
pub struct SpinUpload {
    pub manifest: String,
    pub components: BTreeMap<String, Vec<u8>>,
    pub files: Vec<SpinFile>,
}

#[derive(Debug)]
pub struct SpinFile {
    pub component: String,
    /// Absolute, as the component sees it (`/static/index.html`).
    pub path: String,
    pub content: Vec<u8>,
}

/// Files of one component, in bytes, at most.
const MAX_FILES_BYTES: usize = 64 << 20;

impl SpinUpload {
    /// What identifies the upload: the same app deployed again is the same
    /// version.
    pub fn sha256(&self) -> String {
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        };
        part(self.manifest.as_bytes());
        for (id, wasm) in &self.components {
            part(id.as_bytes());
            part(wasm);
        }
        let mut files: Vec<&SpinFile> = self.files.iter().collect();
        files.sort_by(|a, b| (&a.component, &a.path).cmp(&(&b.component, &b.path)));
        for file in files {
            part(file.component.as_bytes());
            part(file.path.as_bytes());
            part(&file.content);
        }
        hex::encode(hash.finalize())
    }

    /// The manifest, checked against what was uploaded with it.
    fn check(&self) -> Result<Manifest, FunctionError> {
        let manifest =
            Manifest::parse(&self.manifest).map_err(|e| FunctionError::Invalid(e.to_string()))?;
        for id in manifest.component_ids() {
            if !self.components.contains_key(id) {
                return Err(FunctionError::Invalid(format!(
                    "component {id:?} ({}) was not uploaded",
                    manifest.components[id].source
                )));
            }
        }
        for id in self.components.keys() {
            if !manifest.components.contains_key(id) {
                return Err(FunctionError::Invalid(format!(
                    "a component {id:?} was uploaded that spin.toml does not declare"
                )));
            }
        }
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        for file in &self.files {
            if !manifest.components.contains_key(&file.component) {
                return Err(FunctionError::Invalid(format!(
                    "a file {:?} was uploaded for {:?}, which spin.toml does not declare",
                    file.path, file.component
                )));
            }
            if !valid_file_path(&file.path) {
                return Err(FunctionError::Invalid(format!(
                    "file path {:?}: an absolute path without `..`",
                    file.path
                )));
            }
            let size = sizes.entry(&file.component).or_default();
            *size += file.content.len();
            if *size > MAX_FILES_BYTES {
                return Err(FunctionError::Invalid(format!(
                    "component {:?} mounts more than {MAX_FILES_BYTES} bytes of files",
                    file.component
                )));
            }
        }
        Ok(manifest)
    }
}

/// What would otherwise fail only when the version is loaded, after it
/// became the active one: the routes, and allow-list entries that name no
/// variable (those that do are checked with the variables' values at load).
fn check_before_storing(manifest: &Manifest) -> Result<(), FunctionError> {
    let index: HashMap<&str, usize> = manifest
        .component_ids()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    Router::build(manifest, &index).map_err(|e| FunctionError::Invalid(e.to_string()))?;
    for (id, component) in &manifest.components {
        for entry in &component.allowed_outbound_hosts {
            if entry.references().next().is_some() {
                continue;
            }
            let text = entry
                .render(|_| Err::<String, ()>(()))
                .map_err(|()| FunctionError::Invalid(format!("component {id}: a template")))?;
            AllowedHosts::parse(&[text])
                .map_err(|e| FunctionError::Invalid(format!("component {id}: {e}")))?;
        }
    }
    Ok(())
}

/// Removes what a deleted app kept on this host's disk (its SQLite
/// databases); its key-value rows go with its function row.
pub(super) fn forget_app(data_dir: &std::path::Path, name: &str) {
    let dir = data_dir.join("spin").join("sqlite").join(name);
    if dir.is_dir() {
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(app = name, %err, "cannot remove a deleted Spin app's SQLite databases");
        }
    }
}

/// An absolute path of plain segments: no `.`, `..` or empty ones.
fn valid_file_path(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some(rest) => rest
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != ".."),
        None => false,
    }
}

impl Functions {
    /// Deploys a Spin app as a new version of function `name`. The name of
    /// a function that is not a Spin app is refused.
    pub(super) async fn deploy_spin(
        self: &Arc<Self>,
        name: &str,
        upload: SpinUpload,
        created_by: &str,
    ) -> Result<Deployment, FunctionError> {
        let manifest = upload.check()?;
        match self.store.active_kind(name).await? {
            Some(kind) if kind != "spin" => {
                return Err(FunctionError::Conflict(format!(
                    "{name:?} is a function, not a Spin app: deploy the app under another name, or delete the function first"
                )))
            }
            _ => {}
        }
        check_before_storing(&manifest)?;
        let mut warnings = manifest.ignored.clone();
        let sha256 = upload.sha256();
        if let Some(version) = self.store.active_with_sha(name, &sha256).await? {
            if self.runtime.registry.get(name).is_none() {
                self.reload(name).await?;
            }
            return Ok(Deployment {
                name: name.to_owned(),
                version,
                kind: "spin".into(),
                created: false,
                warnings,
            });
        }
        // Every component must compile and link before anything is stored.
        for (id, wasm) in &upload.components {
            let runtime = self.runtime.clone();
            let (app, id, wasm) = (name.to_owned(), id.clone(), wasm.clone());
            tokio::task::spawn_blocking(move || runtime.compile_spin(&app, &id, &wasm))
                .await
                .map_err(|e| FunctionError::Invalid(e.to_string()))?
                .map_err(FunctionError::Component)?;
        }
        let version = self
            .store
            .add_version(
                name,
                super::NewVersion {
                    kind: "spin",
                    entry: "spin.toml",
                    source: Some(upload.manifest.as_bytes()),
                    script: None,
                    component: None,
                    sha256: &sha256,
                    created_by,
                    spin: Some(&upload),
                },
            )
            .await?;
        self.activate(name, version, None).await?;
        let function = self.require(name).await?;
        let config = self.config_of(&function).await?;
        for variable in unresolved_variables(&manifest, &config) {
            warnings.push(format!(
                "variable {variable:?} is required and has no value yet: set it with `selfdb functions secrets set {name} {variable}=VALUE`"
            ));
        }
        tracing::info!(
            function = name,
            version,
            components = upload.components.len(),
            "deployed Spin app"
        );
        Ok(Deployment {
            name: name.to_owned(),
            version,
            kind: "spin".into(),
            created: true,
            warnings,
        })
    }

    /// A Spin version, ready to serve: its components compiled (from the
    /// on-disk cache after the first time), its files in place, its
    /// variables resolved from `config`.
    pub(super) async fn load_spin(
        &self,
        name: &str,
        version: i32,
        digest: &str,
        manifest_text: &[u8],
        config: &BTreeMap<String, String>,
    ) -> Result<Entry, FunctionError> {
        let manifest = Manifest::parse(&String::from_utf8_lossy(manifest_text))
            .map_err(|e| FunctionError::Invalid(format!("stored spin.toml: {e}")))?;
        let stored: HashMap<String, Vec<u8>> = self
            .store
            .spin_components(name, version)
            .await?
            .into_iter()
            .collect();
        let mut files: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
        for (component, path, content) in self.store.spin_files(name, version).await? {
            files.entry(component).or_default().push((path, content));
        }
        let mut components = Vec::new();
        let mut index = HashMap::new();
        for (i, (id, component)) in manifest.components.iter().enumerate() {
            let wasm = stored.get(id).ok_or_else(|| {
                FunctionError::Invalid(format!("component {id:?} of version {version} is missing"))
            })?;
            let runtime = self.runtime.clone();
            let (app, cid, bytes) = (name.to_owned(), id.clone(), wasm.clone());
            let http =
                tokio::task::spawn_blocking(move || runtime.compile_spin(&app, &cid, &bytes))
                    .await
                    .map_err(|e| FunctionError::Invalid(e.to_string()))?
                    .map_err(FunctionError::Component)?;
            let spec = ComponentSpec::build(name, id, component, &manifest, config)
                .map_err(FunctionError::Invalid)?;
            let files_dir = match files.remove(id.as_str()) {
                Some(files) => Some(self.place_files(name, digest, id, files)?),
                None => None,
            };
            index.insert(id.as_str(), i);
            components.push(SpinComponent {
                spec: Arc::new(spec),
                http,
                files: files_dir,
            });
        }
        let router =
            Router::build(&manifest, &index).map_err(|e| FunctionError::Invalid(e.to_string()))?;
        Ok(Entry::Spin(Arc::new(SpinApp {
            manifest,
            router,
            components,
        })))
    }

    /// Writes a component's files under the cache directory (once per app
    /// digest: the cache may be shared by hosts of other databases), for
    /// WASI to mount read-only.
    fn place_files(
        &self,
        name: &str,
        digest: &str,
        component: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<PathBuf, FunctionError> {
        let io = |action: &str, err: std::io::Error| {
            FunctionError::Invalid(format!("{action} for {name}/{component}: {err}"))
        };
        let root = self.settings.cache_dir.join("spin-files");
        let key = digest.get(..32).unwrap_or(digest);
        let dir = root.join(format!("{key}-{component}"));
        if dir.is_dir() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&root).map_err(|e| io("create the files directory", e))?;
        // A directory of its own for each attempt: two loads of one version
        // in this process must not share one.
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&root)
            .map_err(|e| io("create a staging directory", e))?;
        for (path, content) in files {
            if !valid_file_path(&path) {
                continue;
            }
            let target = staging.path().join(path.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("create a files directory", e))?;
            }
            std::fs::write(&target, content).map_err(|e| io("write a file", e))?;
        }
        let staging = staging.keep();
        match std::fs::rename(&staging, &dir) {
            Ok(()) => Ok(dir),
            // Another load placed them first.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(io("place the files", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_are_absolute_and_stay_inside() {
        assert!(valid_file_path("/index.html"));
        assert!(valid_file_path("/a/b.txt"));
        for bad in ["", "/", "a.txt", "/a/../b", "/./a"] {
            assert!(!valid_file_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_digest_covers_every_part() {
        let mut a = SpinUpload {
            manifest: "m".into(),
            ..Default::default()
        };
        a.components.insert("c".into(), b"wasm".to_vec());
        let first = a.sha256();
        a.files.push(SpinFile {
            component: "c".into(),
            path: "/x".into(),
            content: b"1".to_vec(),
        });
        assert_ne!(first, a.sha256());
    }
}
