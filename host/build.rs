//! Embeds the system components (built by `make components` into
//! `components/target/wasm32-wasip2/release/`) into the binary, so a host
//! ships its auth handler with it. A component not built yet is left out;
//! the host then answers its routes with 503 and says why at start-up.
//!
//! Embeds the dashboard the same way: every file `make dashboard` built
//! into `dashboard/dist/` (with the `.gz` twin `scripts/compress.mjs` wrote
//! beside each), its content type and an ETag of its bytes. Not built
//! yet: `/_/` answers 503 and says how to build it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

const SYSTEM_COMPONENTS: &[&str] = &["auth", "crud"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let built = manifest.join("../components/target/wasm32-wasip2/release");
    let mut code = String::from("/// (name, component bytes) of the embedded system components.\npub static SYSTEM_COMPONENTS: &[(&str, &[u8])] = &[\n");
    for name in SYSTEM_COMPONENTS {
        let path = built.join(format!("{name}.wasm"));
        println!("cargo:rerun-if-changed={}", path.display());
        if let Ok(path) = path.canonicalize() {
            code.push_str(&format!(
                "    ({name:?}, include_bytes!({:?})),\n",
                path.display().to_string()
            ));
        }
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"))
        .join("system_components.rs");
    std::fs::write(out, code).expect("write system_components.rs");
    dashboard(&manifest.join("../dashboard/dist"));
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn files_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_below(&path, out);
        } else if path.extension().and_then(|e| e.to_str()) != Some("gz") {
            out.push(path);
        }
    }
}

fn dashboard(dist: &Path) {
    // A directory: cargo rebuilds when anything under it changes.
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if let Ok(root) = dist.canonicalize() {
        files_below(&root, &mut files);
        files.sort();
        let mut code = String::from(
            "/// (path under `/_/`, bytes, gzipped bytes, content type, ETag) of the dashboard's files.\n\
             pub static DASHBOARD_ASSETS: &[AssetEntry] = &[\n",
        );
        for path in &files {
            let relative = path
                .strip_prefix(&root)
                .expect("below the root")
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(path).expect("read a dashboard file");
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut hasher);
            let gz = PathBuf::from(format!("{}.gz", path.display()));
            let gz = if gz.is_file() {
                format!("Some(include_bytes!({:?}))", gz.display().to_string())
            } else {
                "None".into()
            };
            code.push_str(&format!(
                "    ({relative:?}, include_bytes!({:?}), {gz}, {:?}, \"\\\"{:016x}\\\"\"),\n",
                path.display().to_string(),
                content_type(path),
                hasher.finish()
            ));
        }
        code.push_str("];\n");
        write_out("dashboard_assets.rs", &code);
    } else {
        write_out(
            "dashboard_assets.rs",
            "/// Empty: the dashboard was not built (`make dashboard`).\n\
             pub static DASHBOARD_ASSETS: &[AssetEntry] = &[];\n",
        );
    }
}

fn write_out(name: &str, code: &str) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join(name);
    std::fs::write(out, code).expect("write generated code");
}
