//! Spin apps on SelfDB (issue 20): a `spin.toml` and its components,
//! deployed as they are, served under `/functions/v1/{app}/`.
//!
//! An app is one function of the functions platform whose versions are
//! whole apps (the manifest and every component of it): a deploy, a
//! rollback or a delete moves all components at once, as `spin deploy`
//! does, and the platform's logs, limits, secrets and `verify_jwt` apply
//! to the app.
//!
//! - [`manifest`]: what SelfDB reads of `spin.toml`, and what it reports as
//!   ignored;
//! - [`routes`]: Spin's route matching and the `spin-*` request headers;
//! - [`template`]: variable templates and names;
//! - [`allowed_hosts`]: the `allowed_outbound_hosts` matcher;
//! - [`ComponentSpec`]: what one component's capabilities see at run time
//!   (resolved variables, stores, hosts), built when a version is loaded.
//!
//! The host side of Spin's interfaces lives with the other capabilities,
//! in `capabilities::spin`; the WIT is in `wit-spin/`.

pub mod allowed_hosts;
pub mod manifest;
pub mod routes;
pub mod template;

use allowed_hosts::AllowedHosts;
use manifest::{Component, Manifest, Variable};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One component as its capabilities see it.
#[derive(Debug)]
pub struct ComponentSpec {
    /// The app (its function's name): key-value and SQLite data are the
    /// app's, shared by its components.
    pub app: Arc<str>,
    pub id: String,
    /// `variables.get(name)`: the component's variables, rendered, or why
    /// one cannot be.
    pub variables: BTreeMap<String, Result<String, String>>,
    /// The component's WASI environment.
    pub environment: Vec<(String, String)>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
}

/// Where an app variable's value comes from, first match wins: the app's
/// secrets and configuration (`selfdb functions secrets set APP name=…`,
/// either as `name` or as `SPIN_VARIABLE_NAME`), then the host process's
/// `SPIN_VARIABLE_NAME`, then the manifest's default.
pub fn resolve_app_variable(
    name: &str,
    variable: &Variable,
    config: &BTreeMap<String, String>,
) -> Result<String, String> {
    let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
    if let Some(value) = config.get(name).or_else(|| config.get(&env_name)) {
        return Ok(value.clone());
    }
    if let Ok(value) = std::env::var(&env_name) {
        return Ok(value);
    }
    match &variable.default {
        Some(value) => Ok(value.clone()),
        None => Err(format!(
            "the required variable {name:?} has no value: set it with `selfdb functions secrets set APP {name}=VALUE`"
        )),
    }
}

/// Required app variables with no value yet (a deploy reports them).
pub fn unresolved_variables(manifest: &Manifest, config: &BTreeMap<String, String>) -> Vec<String> {
    manifest
        .variables
        .iter()
        .filter(|(name, v)| resolve_app_variable(name, v, config).is_err())
        .map(|(name, _)| name.clone())
        .collect()
}

impl ComponentSpec {
    /// The component `id` of `manifest`, with variables resolved from
    /// `config` (the app function's configuration and secrets).
    pub fn build(
        app: &str,
        id: &str,
        component: &Component,
        manifest: &Manifest,
        config: &BTreeMap<String, String>,
    ) -> Result<ComponentSpec, String> {
        let app_value = |name: &str| match manifest.variables.get(name) {
            Some(variable) => resolve_app_variable(name, variable, config),
            None => Err(format!("no variable {name:?}")),
        };
        let variables = component
            .variables
            .iter()
            .map(|(name, template)| (name.clone(), template.render(app_value)))
            .collect();
        let mut hosts = Vec::new();
        for entry in &component.allowed_outbound_hosts {
            hosts.push(
                entry
                    .render(app_value)
                    .map_err(|e| format!("component {id}: allowed_outbound_hosts: {e}"))?,
            );
        }
        let allowed_hosts =
            AllowedHosts::parse(&hosts).map_err(|e| format!("component {id}: {e}"))?;
        Ok(ComponentSpec {
            app: app.into(),
            id: id.to_owned(),
            variables,
            environment: component
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            allowed_hosts: Arc::new(allowed_hosts),
            key_value_stores: component.key_value_stores.clone(),
            sqlite_databases: component.sqlite_databases.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_secrets_then_environment_then_defaults() {
        let text = r#"
spin_manifest_version = 2
[application]
name = "v"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = ["https://{{ greeting }}.example.com"]
[component.c.variables]
message = "{{ greeting }}, world"
token = "{{ token }}"
"#;
        let manifest = Manifest::parse(text).unwrap();
        let c = &manifest.components["c"];
        let empty = BTreeMap::new();
        let spec = ComponentSpec::build("v", "c", c, &manifest, &empty).unwrap();
        assert_eq!(spec.variables["message"], Ok("hello, world".into()));
        assert!(spec.variables["token"]
            .as_ref()
            .unwrap_err()
            .contains("token"));
        assert!(spec.allowed_hosts.allows("https", "hello.example.com", 443));
        assert_eq!(unresolved_variables(&manifest, &empty), ["token"]);

        let config = BTreeMap::from([
            ("token".to_owned(), "s3cret".to_owned()),
            ("SPIN_VARIABLE_GREETING".to_owned(), "hi".to_owned()),
        ]);
        let spec = ComponentSpec::build("v", "c", c, &manifest, &config).unwrap();
        assert_eq!(spec.variables["message"], Ok("hi, world".into()));
        assert_eq!(spec.variables["token"], Ok("s3cret".into()));
        assert!(unresolved_variables(&manifest, &config).is_empty());
    }
}
