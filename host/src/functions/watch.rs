//! `selfdb dev`'s hot reload: watches the functions directory and deploys a
//! function again when its file changes, printing why a build was refused.
//!
//! It polls modification times (every half second) instead of subscribing
//! to inotify: polling sees changes on every filesystem a developer may keep
//! sources on (bind mounts and network filesystems deliver no inotify
//! events), and a directory of a few functions costs nothing to scan.

use super::{scan_dir, Functions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const POLL: Duration = Duration::from_millis(500);

/// Modification time and size of every file that makes up a function.
fn stamp(path: &Path) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut files = vec![path.to_path_buf()];
    if path.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|f| {
            let meta = std::fs::metadata(&f).ok()?;
            Some((f, meta.modified().ok(), meta.len()))
        })
        .collect()
}

fn stamps(dir: &Path) -> HashMap<PathBuf, Vec<(PathBuf, Option<SystemTime>, u64)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

/// Redeploys what changes in `dir` until the process ends.
pub async fn watch(functions: Arc<Functions>, dir: PathBuf) {
    let mut seen = stamps(&dir);
    loop {
        tokio::time::sleep(POLL).await;
        let now = stamps(&dir);
        let changed: Vec<PathBuf> = now
            .iter()
            .filter(|(path, stamp)| seen.get(*path) != Some(*stamp))
            .map(|(path, _)| path.clone())
            .collect();
        seen = now;
        if changed.is_empty() {
            continue;
        }
        for (name, path, upload) in scan_dir(&dir) {
            let top = if path.parent() == Some(dir.as_path()) {
                path.clone()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            if !changed.contains(&top) {
                continue;
            }
            match functions.deploy(&name, upload, "hot reload").await {
                Ok(deployed) if deployed.created => {
                    eprintln!("selfdb: {name}: version {} serves", deployed.version);
                }
                Ok(_) => {}
                Err(err) => {
                    eprintln!("selfdb: {name}: not deployed ({}):\n{err}", path.display());
                    tracing::warn!(function = %name, %err, "hot reload refused");
                }
            }
        }
    }
}
