//! The production deployment files, tested without Docker (it cannot run
//! here): `docker-compose.yml` and `.env.example` are read, the `selfdb`
//! service's command line and environment are interpolated from
//! `.env.example` as compose would, and that exact `selfdb serve` starts
//! against a local PostgreSQL and Redis in place of the compose services
//! (only addresses and paths are swapped for local ones). The test also
//! fails when the files name a flag or a variable the binary does not
//! know, or when a setting of the binary is missing from them.

use reqwest::StatusCode;
use selfdb_tests::{fresh_database, workspace_root, HostBuilder, Redis, RequestExt};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

/// `.env.example`: every variable it lists (set, or commented out as
/// `# NAME=`), and the values of those it sets.
struct EnvExample {
    listed: BTreeSet<String>,
    values: BTreeMap<String, String>,
}

fn read_env_example() -> EnvExample {
    let text = std::fs::read_to_string(workspace_root().join(".env.example")).unwrap();
    let mut listed = BTreeSet::new();
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let (commented, line) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line.trim()),
        };
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let is_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !is_name {
            continue;
        }
        listed.insert(name.to_owned());
        if !commented {
            values.insert(name.to_owned(), value.to_owned());
        }
    }
    EnvExample { listed, values }
}

/// Compose's interpolation: `${NAME}`, `${NAME:-default}` (the default
/// when unset or empty), `${NAME-default}` (when unset), `$$` for `$`.
fn interpolate(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .expect("an unclosed ${ in docker-compose.yml");
            let expression = &inner[..end];
            let value = if let Some((name, default)) = expression.split_once(":-") {
                values
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_owned())
            } else if let Some((name, default)) = expression.split_once('-') {
                values
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| default.to_owned())
            } else {
                values.get(expression).cloned().unwrap_or_default()
            };
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            panic!("a bare $ in docker-compose.yml: {text}");
        }
    }
    out.push_str(rest);
    out
}

fn scalar(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Null => String::new(),
        other => panic!("not a scalar in docker-compose.yml: {other:?}"),
    }
}

/// What `selfdb serve --help` names: its flags and its variables.
fn serve_help() -> (BTreeSet<String>, BTreeSet<String>) {
    let output = Command::new(selfdb_tests::selfdb_binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let mut flags = BTreeSet::new();
    let mut variables = BTreeSet::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == ']' || c == '=') {
        if let Some(flag) = word.strip_prefix("--") {
            if !flag.is_empty() {
                flags.insert(format!("--{flag}"));
            }
        }
    }
    for part in help.split("[env: ").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        variables.insert(name);
    }
    assert!(variables.contains("DATABASE_URL"), "{help}");
    (flags, variables)
}

#[tokio::test]
async fn the_compose_service_serves_with_its_own_command_line_and_environment() {
    let compose_text =
        std::fs::read_to_string(workspace_root().join("docker-compose.yml")).unwrap();
    let compose = YamlLoader::load_from_str(&compose_text).unwrap().remove(0);
    let example = read_env_example();
    let service = &compose["services"]["selfdb"];
    assert!(!service.is_badvalue(), "no selfdb service");
    for dependency in ["postgres", "redis"] {
        assert_eq!(
            service["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy"),
            "selfdb waits for {dependency}"
        );
        assert!(!compose["services"][dependency]["healthcheck"].is_badvalue());
    }
    assert!(!service["healthcheck"].is_badvalue());

    let command: Vec<String> = service["command"]
        .as_vec()
        .expect("command as a list")
        .iter()
        .map(|part| interpolate(&scalar(part), &example.values))
        .collect();
    let environment: BTreeMap<String, String> = service["environment"]
        .as_hash()
        .expect("environment as a map")
        .iter()
        .map(|(k, v)| (scalar(k), interpolate(&scalar(v), &example.values)))
        .collect();

    // Nothing the binary does not know; nothing it knows left out.
    let (flags, variables) = serve_help();
    assert_eq!(command[0], "serve");
    for word in &command[1..] {
        if word.starts_with("--") {
            assert!(
                flags.contains(word),
                "docker-compose.yml passes {word}, which selfdb serve does not know"
            );
        }
    }
    for name in environment.keys() {
        assert!(
            variables.contains(name) || name == "RUST_LOG",
            "docker-compose.yml sets {name}, which selfdb serve does not read"
        );
    }
    for name in &variables {
        let as_flag = format!(
            "--{}",
            name.trim_start_matches("SELFDB_")
                .to_lowercase()
                .replace('_', "-")
        );
        assert!(
            environment.contains_key(name) || command.contains(&as_flag),
            "selfdb serve reads {name}, but docker-compose.yml does not set it"
        );
    }
    for name in &example.listed {
        assert!(
            compose_text.contains(&format!("${{{name}")),
            ".env.example lists {name}, which docker-compose.yml never uses"
        );
    }
    for name in environment.keys() {
        let fixed = !compose_text.contains(&format!("${{{name}"));
        assert!(
            fixed || example.listed.contains(name),
            "docker-compose.yml reads {name} from .env, but .env.example does not list it"
        );
    }

    // The same command line and environment, on this machine: the
    // services' addresses and the container's paths become local ones.
    let redis = Redis::start();
    let database_url = fresh_database().await;
    let data_dir = tempfile::Builder::new()
        .prefix("selfdb-test-compose")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    let mut args = command.clone();
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = "127.0.0.1:0".into();
    }
    let mut envs = environment.clone();
    assert!(envs["DATABASE_URL"].starts_with("postgres://selfdb:selfdb@postgres:5432/selfdb"));
    assert_eq!(envs["REDIS_URL"], "redis://redis:6379");
    envs.insert("DATABASE_URL".into(), database_url);
    envs.insert("REDIS_URL".into(), redis.url.clone());
    envs.insert("SELFDB_S3_PORT".into(), "0".into());
    envs.insert("SELFDB_DATA_DIR".into(), data_dir.display().to_string());
    envs.insert(
        "SELFDB_CACHE_DIR".into(),
        selfdb_tests::test_cache_dir().display().to_string(),
    );
    envs.insert(
        "SELFDB_JS_TOOLCHAIN".into(),
        workspace_root().join("toolchain/js").display().to_string(),
    );
    // Empty values stay empty, as compose passes them: selfdb must take
    // them for "not set".
    assert_eq!(envs["SELFDB_SMTP_URL"], "");
    let host = HostBuilder::command(args, envs.into_iter().collect(), data_dir.clone()).start();

    // It serves: the database reachable, the first admin made with a
    // generated password, JSON logs, a user signed up and signed in.
    let health = host.get("/health").fetch_json().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(host.env.contains_key("SELFDB_ADMIN_PASSWORD"));
    let (status, _) = host
        .post("/auth/v1/signup")
        .apikey(host.anon_key())
        .json(&json!({"email": "compose@example.com", "password": "composed-1"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, token) = host
        .post("/auth/v1/token?grant_type=password")
        .apikey(host.anon_key())
        .json(&json!({"email": "compose@example.com", "password": "composed-1"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let logged = host
        .wait_for_log_where(std::time::Duration::from_secs(30), |log| {
            log.contains(r#""target":"selfdb::access""#)
                && log.contains(r#""path":"/auth/v1/token""#)
        })
        .await;
    assert!(logged, "{}", host.stderr());
    for line in host.stderr().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
    }
}
