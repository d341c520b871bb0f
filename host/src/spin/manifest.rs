//! `spin.toml`, manifest version 2: what SelfDB reads of it, and a report
//! of everything it does not use (never dropped silently).
//!
//! The structs keep unknown keys (`#[serde(flatten)]`) instead of refusing
//! them as Spin's own parser does: a manifest written for a newer Spin
//! still deploys, and each key SelfDB does not act on is named in
//! [`Manifest::ignored`].

use super::template::{valid_variable_name, Template};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("spin.toml is not valid TOML: {0}")]
    Toml(String),
    #[error("spin.toml: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(message.into())
}

/// A manifest as SelfDB serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    /// `[variables]`, by name.
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.http]]`, in declaration order.
    pub routes: Vec<HttpRoute>,
    /// `[component.<id>]`, by id.
    pub components: BTreeMap<String, Component>,
    /// What the manifest says that SelfDB does not act on, one line each
    /// (`trigger.redis: only HTTP triggers are served`).
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    /// Only marks the value as sensitive: never shown or logged.
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    /// The route as written (`/api/...`), or `None` for a private one.
    pub route: Option<String>,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    Component(String),
    Static(StaticResponse),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Component {
    /// The `.wasm` path, relative to the manifest's directory.
    pub source: String,
    /// `[component.x.variables]`: templates over the app's variables.
    pub variables: BTreeMap<String, Template>,
    pub environment: BTreeMap<String, String>,
    /// Spin's allow-list entries (`https://api.example.com`,
    /// `postgres://db:5432`, `*://*:*`); templates allowed.
    pub allowed_outbound_hosts: Vec<Template>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub ai_models: Vec<String>,
    pub files: Vec<FileMount>,
    pub exclude_files: Vec<String>,
}

/// One `files` entry: a glob relative to the manifest (mounted at the same
/// path), or a source directory or file mounted at a destination.
#[derive(Debug, Clone, PartialEq)]
pub enum FileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    application: Option<RawApplication>,
    #[serde(default)]
    variables: BTreeMap<String, toml::Value>,
    #[serde(default)]
    trigger: BTreeMap<String, toml::Value>,
    #[serde(default)]
    component: BTreeMap<String, toml::Value>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    #[serde(default)]
    route: Option<toml::Value>,
    #[serde(default)]
    component: Option<toml::Value>,
    #[serde(default)]
    static_response: Option<StaticResponse>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawComponent {
    source: Option<toml::Value>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default, alias = "key-value-stores")]
    key_value_stores: Vec<String>,
    #[serde(default, alias = "sqlite-databases")]
    sqlite_databases: Vec<String>,
    #[serde(default, alias = "ai-models")]
    ai_models: Vec<String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

/// Metadata keys that change nothing at run time and need no report.
const METADATA: &[&str] = &["description", "authors"];

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::Toml(e.to_string()))?;
        match raw.spin_manifest_version {
            Some(toml::Value::Integer(2)) => {}
            Some(toml::Value::Integer(1)) | Some(toml::Value::String(_)) => {
                return Err(invalid(
                    "manifest version 1 is not supported: run `spin doctor` to upgrade it to spin_manifest_version = 2",
                ))
            }
            Some(other) => {
                return Err(invalid(format!(
                    "spin_manifest_version = {other} is not supported (2 is)"
                )))
            }
            None => return Err(invalid("spin_manifest_version = 2 is missing")),
        }
        let mut ignored = Vec::new();
        for key in raw.other.keys() {
            ignored.push(format!("{key}: not a key of manifest version 2"));
        }
        let application = raw
            .application
            .ok_or_else(|| invalid("the [application] table is missing"))?;
        let name = application
            .name
            .ok_or_else(|| invalid("application.name is missing"))?;
        for key in application.other.keys() {
            if METADATA.contains(&key.as_str()) {
                continue;
            }
            ignored.push(match key.as_str() {
                "trigger" => "application.trigger: trigger-wide settings (base paths, executors) are not used; routes are served under /functions/v1/{app}/".to_owned(),
                "tool" => "application.tool: settings for other tools".to_owned(),
                other => format!("application.{other}: not used by SelfDB"),
            });
        }

        let mut variables = BTreeMap::new();
        for (key, value) in raw.variables {
            if !valid_variable_name(&key) {
                return Err(invalid(format!(
                    "variable {key:?}: names are lower-case letters, digits and single underscores, starting with a letter"
                )));
            }
            let variable: Variable = value
                .try_into()
                .map_err(|e| invalid(format!("variables.{key}: {e}")))?;
            if variable.required && variable.default.is_some() {
                return Err(invalid(format!(
                    "variables.{key}: a required variable cannot have a default"
                )));
            }
            variables.insert(key, variable);
        }

        let mut components = BTreeMap::new();
        for (id, value) in raw.component {
            check_component_id(&id)?;
            let component = parse_component(&id, value, &variables, &mut ignored)?;
            components.insert(id, component);
        }

        let mut routes = Vec::new();
        for (kind, triggers) in raw.trigger {
            if kind != "http" {
                ignored.push(format!(
                    "trigger.{kind}: only HTTP triggers are served (use SelfDB's own triggers and schedules for the rest)"
                ));
                continue;
            }
            let toml::Value::Array(triggers) = triggers else {
                return Err(invalid(
                    "trigger.http must be an array of tables ([[trigger.http]])",
                ));
            };
            for (index, trigger) in triggers.into_iter().enumerate() {
                let trigger: RawHttpTrigger = trigger
                    .try_into()
                    .map_err(|e| invalid(format!("trigger.http[{index}]: {e}")))?;
                routes.push(parse_trigger(
                    index,
                    trigger,
                    &variables,
                    &mut components,
                    &mut ignored,
                )?);
            }
        }
        if routes.is_empty() {
            return Err(invalid(
                "no [[trigger.http]]: an app needs at least one HTTP route",
            ));
        }
        Ok(Manifest {
            name,
            version: application.version,
            description: application.description,
            variables,
            routes,
            components,
            ignored,
        })
    }

    /// The components requests can reach, in a stable order.
    pub fn component_ids(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }
}

/// Component ids: Spin's kebab-case (`[a-z0-9]` words joined by `-`),
/// with `_` accepted too.
fn check_component_id(id: &str) -> Result<(), ManifestError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "component id {id:?}: use lower-case letters, digits and '-' (at most 64)"
        )))
    }
}

fn parse_component(
    id: &str,
    value: toml::Value,
    app_variables: &BTreeMap<String, Variable>,
    ignored: &mut Vec<String>,
) -> Result<Component, ManifestError> {
    let raw: RawComponent = value
        .try_into()
        .map_err(|e| invalid(format!("component.{id}: {e}")))?;
    let source = match raw.source {
        Some(toml::Value::String(path)) => path,
        Some(toml::Value::Table(table)) => {
            let what = if table.contains_key("url") {
                "a URL"
            } else {
                "a registry package"
            };
            return Err(invalid(format!(
                "component.{id}.source is {what}: SelfDB deploys local files; download or build the .wasm and name its path"
            )));
        }
        Some(_) => return Err(invalid(format!("component.{id}.source must be a path"))),
        None => return Err(invalid(format!("component.{id}.source is missing"))),
    };
    let mut variables = BTreeMap::new();
    for (key, text) in raw.variables {
        if !valid_variable_name(&key) {
            return Err(invalid(format!(
                "component.{id}.variables: {key:?} is not a valid variable name"
            )));
        }
        let template = Template::parse(&text)
            .map_err(|e| invalid(format!("component.{id}.variables.{key}: {e}")))?;
        check_references(&template, app_variables)
            .map_err(|e| invalid(format!("component.{id}.variables.{key}: {e}")))?;
        variables.insert(key, template);
    }
    let mut allowed_outbound_hosts = Vec::new();
    for entry in &raw.allowed_outbound_hosts {
        let template = Template::parse(entry)
            .map_err(|e| invalid(format!("component.{id}.allowed_outbound_hosts: {e}")))?;
        check_references(&template, app_variables)
            .map_err(|e| invalid(format!("component.{id}.allowed_outbound_hosts: {e}")))?;
        allowed_outbound_hosts.push(template);
    }
    if !raw.allowed_http_hosts.is_empty() {
        // Spin 1's key, read as Spin 2 does: each host over HTTP and
        // HTTPS, `insecure:allow-all` as any HTTP(S) host (nothing else).
        for host in &raw.allowed_http_hosts {
            let entries = if host == "insecure:allow-all" {
                vec!["http://*:*".to_owned(), "https://*:*".to_owned()]
            } else if host.contains("://") {
                vec![host.clone()]
            } else {
                vec![format!("http://{host}"), format!("https://{host}")]
            };
            allowed_outbound_hosts.extend(entries.into_iter().map(Template::literal));
        }
    }
    let mut files = Vec::new();
    for file in raw.files {
        files.push(match file {
            toml::Value::String(pattern) => FileMount::Pattern(pattern),
            toml::Value::Table(table) => {
                let field = |name: &str| {
                    table
                        .get(name)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            invalid(format!("component.{id}.files: a table needs {name:?}"))
                        })
                };
                let destination = field("destination")?;
                if !destination.starts_with('/') {
                    return Err(invalid(format!(
                        "component.{id}.files: destination {destination:?} must be absolute"
                    )));
                }
                FileMount::Placement {
                    source: field("source")?,
                    destination,
                }
            }
            _ => {
                return Err(invalid(format!(
                    "component.{id}.files: each entry is a pattern or {{ source, destination }}"
                )))
            }
        });
    }
    for key in raw.other.keys() {
        if METADATA.contains(&key.as_str()) {
            continue;
        }
        ignored.push(match key.as_str() {
            "build" => format!("component.{id}.build: SelfDB deploys built components (run `spin build` first)"),
            "dependencies" => {
                return Err(invalid(format!(
                    "component.{id}.dependencies: component composition is not supported; compose the component before deploying"
                )))
            }
            other => format!("component.{id}.{other}: not used by SelfDB"),
        });
    }
    if !raw.ai_models.is_empty() {
        ignored.push(format!(
            "component.{id}.ai_models: SelfDB serves no models (llm calls answer model-not-supported)"
        ));
    }
    Ok(Component {
        source,
        variables,
        environment: raw.environment,
        allowed_outbound_hosts,
        key_value_stores: raw.key_value_stores,
        sqlite_databases: raw.sqlite_databases,
        ai_models: raw.ai_models,
        files,
        exclude_files: raw.exclude_files,
    })
}

fn check_references(
    template: &Template,
    app_variables: &BTreeMap<String, Variable>,
) -> Result<(), String> {
    for name in template.references() {
        if !app_variables.contains_key(name) {
            return Err(format!(
                "unknown variable {name:?} (declare it under [variables])"
            ));
        }
    }
    Ok(())
}

fn parse_trigger(
    index: usize,
    trigger: RawHttpTrigger,
    variables: &BTreeMap<String, Variable>,
    components: &mut BTreeMap<String, Component>,
    ignored: &mut Vec<String>,
) -> Result<HttpRoute, ManifestError> {
    let at = |what: &str| format!("trigger.http[{index}]{what}");
    let route = match trigger.route {
        Some(toml::Value::String(route)) => Some(route),
        Some(toml::Value::Table(table)) => match table.get("private") {
            Some(toml::Value::Boolean(true)) if table.len() == 1 => None,
            _ => {
                return Err(invalid(format!(
                    "{}: a table route must be {{ private = true }}",
                    at(".route")
                )))
            }
        },
        Some(_) => return Err(invalid(format!("{} must be a string", at(".route")))),
        None => return Err(invalid(format!("{} is missing", at(".route")))),
    };
    if let Some(route) = &route {
        if route.contains('?') || route.contains('#') {
            return Err(invalid(format!(
                "{}: {route:?} must be a path (no query or fragment)",
                at(".route")
            )));
        }
    }
    for key in trigger.other.keys() {
        match key.as_str() {
            "executor" => ignored.push(format!(
                "{}: components are run as WASI HTTP handlers",
                at(".executor")
            )),
            "id" => {}
            "components" | "dependencies" => {
                return Err(invalid(format!(
                    "{}: component composition is not supported",
                    at(&format!(".{key}"))
                )))
            }
            other => ignored.push(format!("{}: not used by SelfDB", at(&format!(".{other}")))),
        }
    }
    let target = match (trigger.component, trigger.static_response) {
        (Some(toml::Value::String(id)), None) => {
            if !components.contains_key(&id) {
                return Err(invalid(format!(
                    "{}: no [component.{id}] in the manifest",
                    at(".component")
                )));
            }
            RouteTarget::Component(id)
        }
        (Some(toml::Value::Table(table)), None) => {
            // An inline component: named after its trigger, as Spin does.
            let id = format!("inline-component-{index}");
            let component = parse_component(&id, toml::Value::Table(table), variables, ignored)?;
            components.insert(id.clone(), component);
            RouteTarget::Component(id)
        }
        (None, Some(response)) => RouteTarget::Static(response),
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "{}: give a component or a static_response, not both",
                at("")
            )))
        }
        (Some(_), None) => {
            return Err(invalid(format!(
                "{} must be a component id or table",
                at(".component")
            )))
        }
        (None, None) => {
            return Err(invalid(format!(
                "{}: needs a component or a static_response",
                at("")
            )))
        }
    };
    Ok(HttpRoute { route, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
spin_manifest_version = 2

[application]
name = "shop"
version = "1.0.0"
authors = ["a"]
targets = ["spin-up:3.3"]

[application.trigger.http]
base = "/"

[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = { private = true }
component = "worker"

[[trigger.http]]
route = "/static"
static_response = { status_code = 200, body = "hi", headers = { "content-type" = "text/plain" } }

[[trigger.cron]]
component = "api"
cron_expression = "* * * * *"

[component.api]
source = "target/wasm32-wasip2/release/api.wasm"
allowed_outbound_hosts = ["https://example.com", "{{ api_host }}"]
key_value_stores = ["default"]
files = ["static/**/*", { source = "assets", destination = "/assets" }]
[component.api.variables]
message = "{{ greeting }}, world"
[component.api.build]
command = "cargo build --target wasm32-wasip2 --release"

[component.worker]
source = "worker.wasm"
"#;

    #[test]
    fn a_manifest_is_read_and_what_is_not_used_is_named() {
        let text = APP.replace("\"{{ api_host }}\"", "\"{{ greeting }}\"");
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.name, "shop");
        assert_eq!(m.routes.len(), 3);
        assert_eq!(m.routes[0].route.as_deref(), Some("/api/..."));
        assert_eq!(m.routes[1].route, None);
        assert!(matches!(m.routes[2].target, RouteTarget::Static(_)));
        let api = &m.components["api"];
        assert_eq!(api.key_value_stores, ["default"]);
        assert_eq!(api.files.len(), 2);
        assert!(m.variables["api_key"].secret);
        let ignored = m.ignored.join("\n");
        for expected in [
            "application.targets",
            "application.trigger",
            "trigger.cron",
            "component.api.build",
        ] {
            assert!(ignored.contains(expected), "{expected} in {ignored}");
        }
        assert!(!ignored.contains("authors"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = |text: &str| Manifest::parse(text).unwrap_err().to_string();
        assert!(err(APP).contains("unknown variable \"api_host\""));
        assert!(err("spin_manifest_version = \"1\"\n").contains("version 1"));
        assert!(err("[application]\nname = \"x\"\n").contains("spin_manifest_version"));
        let no_component = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n";
        assert!(err(no_component).contains("no [component.nope]"));
        let url = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = { url = \"https://x/a.wasm\", digest = \"sha256:0\" }\n";
        assert!(err(url).contains("a URL"));
        let public_false = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = { private = false }\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n";
        assert!(err(public_false).contains("private = true"));
        let bad_var = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[variables]\nBad = { default = \"1\" }\n";
        assert!(err(bad_var).contains("\"Bad\""));
        assert!(err("not toml [").contains("not valid TOML"));
    }

    #[test]
    fn an_inline_component_is_named_after_its_trigger() {
        let text = "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = { source = \"a.wasm\" }\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(
            m.routes[0].target,
            RouteTarget::Component("inline-component-0".into())
        );
        assert_eq!(m.components["inline-component-0"].source, "a.wasm");
    }
}
