//! The JavaScript toolchain: `node toolchain/js/build.mjs`, run as a child
//! process with a deadline, turns a TypeScript/JavaScript entry file into a
//! bundled script (type-checked by tsc, bundled by esbuild), a bundle into
//! the function's own component (ComponentizeJS), and builds the shared
//! engine that runs any bundle. Node and the npm packages stay out of the
//! host's process: a crash or a hang there refuses one deploy, nothing else.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Checking and bundling one entry: tsc and esbuild take well under this.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// ComponentizeJS runs Wizer over the engine: about 10-40 s on two cores.
const COMPONENTIZE_TIMEOUT: Duration = Duration::from_secs(600);

/// A position in the user's source that a build refused, as the user named
/// the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source has errors: the deploy is refused with their positions.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Diagnostic>),
    /// The toolchain itself failed (not installed, crashed, timed out).
    #[error("the JavaScript toolchain failed: {0}")]
    Tool(String),
}

#[derive(Deserialize)]
struct Outcome {
    ok: bool,
    #[serde(default)]
    errors: Vec<Diagnostic>,
}

/// Every `.wit` file below `dir`, sorted.
fn wit_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "wit") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Where the toolchain is.
#[derive(Debug, Clone)]
pub struct JsToolchain {
    node: PathBuf,
    dir: PathBuf,
    work: PathBuf,
}

impl JsToolchain {
    /// The toolchain in `dir` (with its npm packages installed), building
    /// in `work`; `None` when it is not installed there.
    pub fn locate(dir: &Path, work: PathBuf) -> Option<Self> {
        let installed = dir.join("build.mjs").is_file()
            && dir
                .join("node_modules")
                .join("@bytecodealliance")
                .join("componentize-js")
                .is_dir();
        installed.then(|| Self {
            node: PathBuf::from(std::env::var_os("SELFDB_NODE").unwrap_or_else(|| "node".into())),
            dir: dir.to_path_buf(),
            work,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names what the shared engine is built from (the build script, the
    /// locked npm packages, the SDK and the WIT): a cached engine built from
    /// anything else is not reused.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        let repo = self.dir.join("..").join("..");
        let mut files = vec![
            self.dir.join("build.mjs"),
            self.dir.join("package-lock.json"),
            repo.join("sdk").join("js").join("index.js"),
        ];
        files.extend(wit_files(&repo.join("wit")));
        files.extend(wit_files(&self.dir.join("wit")));
        for file in files {
            hash.update(file.file_name().unwrap_or_default().as_encoded_bytes());
            hash.update(std::fs::read(&file).unwrap_or_default());
        }
        hex::encode(&hash.finalize()[..12])
    }

    fn scratch(&self) -> Result<tempfile::TempDir, BuildError> {
        std::fs::create_dir_all(&self.work)
            .map_err(|e| BuildError::Tool(format!("create {}: {e}", self.work.display())))?;
        tempfile::Builder::new()
            .prefix("js-build-")
            .tempdir_in(&self.work)
            .map_err(|e| BuildError::Tool(format!("create a build directory: {e}")))
    }

    async fn run(&self, args: &[&Path], limit: Duration) -> Result<Outcome, BuildError> {
        let mut command = Command::new(&self.node);
        command
            .arg(self.dir.join("build.mjs"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| BuildError::Tool(format!("cannot run {}: {e}", self.node.display())))?;
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| BuildError::Tool(format!("gave up after {} s", limit.as_secs())))?
            .map_err(|e| BuildError::Tool(e.to_string()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.lines().rev().find(|l| l.starts_with('{'));
        match last.map(serde_json::from_str::<Outcome>) {
            Some(Ok(outcome)) if output.status.success() => Ok(outcome),
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: String = stderr
                    .lines()
                    .rev()
                    .take(12)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                Err(BuildError::Tool(format!("{}: {tail}", output.status)))
            }
        }
    }

    /// Type-checks (TypeScript) and bundles `source`, which the user calls
    /// `entry` (a file name such as `index.ts`), into one script.
    pub async fn bundle(&self, entry: &str, source: &[u8]) -> Result<String, BuildError> {
        let scratch = self.scratch()?;
        let entry_path = scratch.path().join(entry);
        let out = scratch.path().join("bundle.js");
        std::fs::write(&entry_path, source)
            .map_err(|e| BuildError::Tool(format!("write the source: {e}")))?;
        let outcome = self
            .run(
                &[Path::new("bundle"), entry_path.as_path(), out.as_path()],
                BUNDLE_TIMEOUT,
            )
            .await?;
        if !outcome.ok {
            let root = scratch.path().to_string_lossy().into_owned();
            let errors = outcome
                .errors
                .into_iter()
                .map(|mut d| {
                    // Positions name the user's file, not our scratch copy.
                    if let Some(rest) = d.file.strip_prefix(&root) {
                        d.file = rest.trim_start_matches('/').to_owned();
                    } else if d.file.contains("/sdk/js/") {
                        d.file = "selfdb (the SDK)".into();
                    }
                    d
                })
                .collect();
            return Err(BuildError::Refused(errors));
        }
        std::fs::read_to_string(&out).map_err(|e| BuildError::Tool(format!("read the bundle: {e}")))
    }

    /// The function's own component: the engine pre-initialized with
    /// `script` loaded.
    pub async fn componentize(&self, script: &str) -> Result<Vec<u8>, BuildError> {
        let scratch = self.scratch()?;
        let input = scratch.path().join("bundle.js");
        let out = scratch.path().join("function.wasm");
        std::fs::write(&input, script)
            .map_err(|e| BuildError::Tool(format!("write the bundle: {e}")))?;
        let outcome = self
            .run(
                &[Path::new("componentize"), input.as_path(), out.as_path()],
                COMPONENTIZE_TIMEOUT,
            )
            .await?;
        if !outcome.ok {
            return Err(BuildError::Refused(outcome.errors));
        }
        std::fs::read(&out).map_err(|e| BuildError::Tool(format!("read the component: {e}")))
    }

    /// The shared engine component.
    pub async fn engine(&self) -> Result<Vec<u8>, BuildError> {
        let scratch = self.scratch()?;
        let out = scratch.path().join("engine.wasm");
        let outcome = self
            .run(&[Path::new("loader"), out.as_path()], COMPONENTIZE_TIMEOUT)
            .await?;
        if !outcome.ok {
            return Err(BuildError::Tool(
                outcome
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
        std::fs::read(&out).map_err(|e| BuildError::Tool(format!("read the engine: {e}")))
    }
}
