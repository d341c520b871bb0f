//! Embeds the system components (built by `make components` into
//! `components/target/wasm32-wasip2/release/`) into the binary, so a host
//! ships its auth handler with it. A component not built yet is left out;
//! the host then answers its routes with 503 and says why at start-up.

use std::path::PathBuf;

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
}
