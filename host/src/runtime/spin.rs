//! Spin components in the runtime: how one is compiled and linked (WASI
//! 0.2 for spin-sdk 5.x, WASI 0.3 for 7.x), and a loaded app: its router
//! and its components, ready to instantiate.

use super::engine::{Runtime, RuntimeError};
use crate::capabilities::spin::SpinState;
use crate::spin::manifest::Manifest;
use crate::spin::routes::Router;
use crate::spin::ComponentSpec;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// A Spin component's HTTP export.
#[derive(Clone)]
pub enum SpinHttp {
    /// `wasi:http/incoming-handler@0.2.x` (spin-sdk 5.x and earlier 2.x+).
    P2(ProxyPre<SpinState>),
    /// `wasi:http/handler@0.3.0` (spin-sdk 7.x).
    P3(ServicePre<SpinState>),
}

/// One component, ready to run.
pub struct SpinComponent {
    pub spec: Arc<ComponentSpec>,
    pub http: SpinHttp,
    /// Where its `files` are, mounted read-only at `/`.
    pub files: Option<PathBuf>,
}

/// A loaded app version.
pub struct SpinApp {
    pub manifest: Manifest,
    pub router: Router,
    /// In the manifest's component order (the router's indices).
    pub components: Vec<SpinComponent>,
}

/// Exports of HTTP interfaces SelfDB cannot serve, and what to say.
fn refused_export(name: &str) -> Option<String> {
    if let Some(rc) = name.strip_prefix("wasi:http/handler@0.3.0-rc-") {
        let sdk = match rc {
            "2026-03-15" => "spin-sdk 6.x",
            "2026-01-06" => "spin-sdk 5.x with its wasip3-unstable feature",
            _ => "a WASI 0.3 release candidate SDK",
        };
        return Some(format!(
            "it was built with {sdk}: it exports {name}, a WASI 0.3 release candidate this host does not run; \
             SelfDB runs spin-sdk 5.x (WASI 0.2) and 7.x (WASI 0.3.0) components: rebuild with spin-sdk 7"
        ));
    }
    if name.starts_with("fermyon:spin/inbound-http") {
        return Some(format!(
            "it exports {name}, Spin 1's HTTP interface: rebuild with spin-sdk 5 or later"
        ));
    }
    if name.starts_with("wasi:http/incoming-handler@0.2.0-rc-") {
        return Some(format!(
            "it exports {name}, a WASI 0.2 release candidate: rebuild with spin-sdk 5 or later"
        ));
    }
    None
}

impl Runtime {
    /// Compiles (or loads from cache) and links one component of app
    /// `app`, refusing what it cannot serve with a message that says why.
    pub fn compile_spin(
        &self,
        app: &str,
        id: &str,
        bytes: &[u8],
    ) -> Result<SpinHttp, RuntimeError> {
        let name = format!("{app}/{id}");
        let (component, _, _) = self.spin_cache.load(&self.spin_engine, bytes)?;
        let link = |message: String| RuntimeError::Link {
            name: name.clone(),
            message,
        };
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.spin_engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        if let Some(why) = exports.iter().find_map(|e| refused_export(e)) {
            return Err(link(why));
        }
        let pre = self
            .spin_linker
            .instantiate_pre(&component)
            .map_err(|e| link(missing_import(&format!("{e:#}"))))?;
        if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/handler@0.3"))
        {
            let service = ServicePre::new(pre).map_err(|e| link(format!("{e:#}")))?;
            return Ok(SpinHttp::P3(service));
        }
        if exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2"))
        {
            let proxy = ProxyPre::new(pre).map_err(|e| link(format!("{e:#}")))?;
            return Ok(SpinHttp::P2(proxy));
        }
        Err(link(format!(
            "it exports neither wasi:http/incoming-handler@0.2 nor wasi:http/handler@0.3.0 (it exports: {})",
            exports.join(", ")
        )))
    }
}

/// wasmtime's "component imports instance `x`, but a matching
/// implementation was not found in the linker", said as what it means.
fn missing_import(message: &str) -> String {
    if message.contains("matching implementation was not found") {
        if let Some(name) = message.split('`').nth(1) {
            return format!(
                "it imports {name}, which SelfDB does not provide to Spin apps ({message})"
            );
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_candidate_exports_are_refused_with_the_sdk_named() {
        let why = refused_export("wasi:http/handler@0.3.0-rc-2026-03-15").unwrap();
        assert!(
            why.contains("spin-sdk 6.x") && why.contains("rebuild with spin-sdk 7"),
            "{why}"
        );
        assert!(refused_export("wasi:http/handler@0.3.0").is_none());
        assert!(refused_export("wasi:http/incoming-handler@0.2.0").is_none());
        assert!(refused_export("fermyon:spin/inbound-http").is_some());
        let said = missing_import(
            "component imports instance `spin:foo/bar@1.0.0`, but a matching implementation was not found in the linker",
        );
        assert!(said.starts_with("it imports spin:foo/bar@1.0.0, which SelfDB does not provide"));
    }
}
