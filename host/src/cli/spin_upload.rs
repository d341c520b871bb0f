//! `selfdb functions deploy --spin spin.toml`: reads a Spin app from disk
//! as `spin up` would (components' `source` and `files` relative to the
//! manifest's directory) and sends it as one multipart upload.

use crate::spin::manifest::{FileMount, Manifest};
use anyhow::{anyhow, bail, Context};
use std::path::{Path, PathBuf};

/// The app to upload: its name (from the manifest unless given) and the
/// multipart form.
pub struct SpinApp {
    pub name: String,
    pub form: reqwest::multipart::Form,
    /// What the manifest says that SelfDB does not use.
    pub ignored: Vec<String>,
}

pub fn read(manifest_path: &Path, name: Option<String>) -> anyhow::Result<SpinApp> {
    let text = std::fs::read_to_string(manifest_path)
        .with_context(|| format!("read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&text)?;
    let dir = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = match name {
        Some(name) => name,
        None => app_name(&manifest.name)?,
    };
    // Part names carry ids and paths as they are (the server reads them
    // raw; percent-encoded `name*=` parameters would need decoding there).
    let mut form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .text("manifest", text.clone());
    for (id, component) in &manifest.components {
        let path = dir.join(&component.source);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "read component {id:?} from {} (build the app first, e.g. `spin build`)",
                path.display()
            )
        })?;
        form = form.part(
            format!("component:{id}"),
            reqwest::multipart::Part::bytes(bytes).file_name(format!("{id}.wasm")),
        );
        for (mount, file) in files(&dir, &component.files, &component.exclude_files)? {
            if mount.contains(['"', '\r', '\n']) {
                bail!(
                    "file {} cannot be mounted: its path holds a quote or line break",
                    file.display()
                );
            }
            let content =
                std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            form = form.part(
                format!("file:{id}:{mount}"),
                reqwest::multipart::Part::bytes(content).file_name("file"),
            );
        }
    }
    Ok(SpinApp {
        name,
        form,
        ignored: manifest.ignored,
    })
}

/// The function name an app is served under: its name, lower-cased, with
/// anything but `[a-z0-9_-]` as `-`.
fn app_name(name: &str) -> anyhow::Result<String> {
    let plain: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if plain.is_empty() || plain.len() > 64 {
        bail!("the app's name {name:?} cannot be a function name: give one after the manifest");
    }
    Ok(plain)
}

/// Every file a component mounts: (absolute path in the component, file on
/// disk). Patterns are globs relative to the manifest's directory, mounted
/// at the same relative path; a `{ source, destination }` mounts a file, or
/// a directory's whole tree, at `destination`.
fn files(
    dir: &Path,
    mounts: &[FileMount],
    exclude: &[String],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let excluded: Vec<glob::Pattern> = exclude
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("exclude_files pattern {p:?}")))
        .collect::<Result<_, _>>()?;
    let is_excluded = |relative: &Path| excluded.iter().any(|p| p.matches_path(relative));
    let mut out = Vec::new();
    for mount in mounts {
        match mount {
            FileMount::Pattern(pattern) => {
                let full = dir.join(pattern);
                let full = full
                    .to_str()
                    .ok_or_else(|| anyhow!("files pattern {pattern:?} is not UTF-8"))?;
                for entry in
                    glob::glob(full).with_context(|| format!("files pattern {pattern:?}"))?
                {
                    let path = entry?;
                    if !path.is_file() {
                        continue;
                    }
                    let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    if is_excluded(&relative) {
                        continue;
                    }
                    out.push((format!("/{}", slashes(&relative)), path));
                }
            }
            FileMount::Placement {
                source,
                destination,
            } => {
                let source_path = dir.join(source);
                let destination = destination.trim_end_matches('/');
                if source_path.is_file() {
                    out.push((destination.to_owned(), source_path));
                    continue;
                }
                if !source_path.is_dir() {
                    bail!("files source {source:?} is neither a file nor a directory");
                }
                let pattern = source_path.join("**").join("*");
                let pattern = pattern
                    .to_str()
                    .ok_or_else(|| anyhow!("files source {source:?} is not UTF-8"))?;
                for entry in glob::glob(pattern)? {
                    let path = entry?;
                    if !path.is_file() {
                        continue;
                    }
                    let inner = path.strip_prefix(&source_path).unwrap_or(&path);
                    let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    if is_excluded(&relative) {
                        continue;
                    }
                    out.push((format!("{destination}/{}", slashes(inner)), path));
                }
            }
        }
    }
    Ok(out)
}

fn slashes(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_become_function_names() {
        assert_eq!(app_name("My App").unwrap(), "my-app");
        assert_eq!(app_name("hello_world").unwrap(), "hello_world");
        assert!(app_name("").is_err());
    }

    #[test]
    fn files_are_found_by_pattern_and_placement() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("static/css")).unwrap();
        std::fs::write(dir.path().join("static/index.html"), "i").unwrap();
        std::fs::write(dir.path().join("static/css/a.css"), "a").unwrap();
        std::fs::write(dir.path().join("static/skip.tmp"), "s").unwrap();
        let found = files(
            dir.path(),
            &[
                FileMount::Pattern("static/*.html".into()),
                FileMount::Placement {
                    source: "static".into(),
                    destination: "/assets".into(),
                },
            ],
            &["static/*.tmp".into()],
        )
        .unwrap();
        let mut mounts: Vec<&str> = found.iter().map(|(m, _)| m.as_str()).collect();
        mounts.sort();
        assert_eq!(
            mounts,
            [
                "/assets/css/a.css",
                "/assets/index.html",
                "/static/index.html"
            ]
        );
    }
}
