//! `selfdb functions ...`: a client of `/api/v1/functions` on a running
//! instance (deploy, list, versions, rollback, delete, logs, secrets,
//! invoke) and `new`, which scaffolds a function locally.
//!
//! The instance is found, in this order: `--url`/`--key`, the environment
//! (`SELFDB_URL`, `SELFDB_SERVICE_KEY`: the lines `selfdb dev` prints), or
//! `.selfdb/selfdb.env` in the working directory.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct FunctionsArgs {
    #[command(subcommand)]
    pub command: FunctionsCommand,
    /// The instance's URL (default: SELFDB_URL, then .selfdb/selfdb.env).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The service key (default: SELFDB_SERVICE_KEY, then .selfdb/selfdb.env).
    #[arg(long, global = true)]
    pub key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// Scaffold a working function in `functions/NAME` with a test request.
    New {
        name: String,
        #[arg(long, value_enum, default_value_t = Lang::Ts)]
        lang: Lang,
        /// Where functions live (what `selfdb dev` watches).
        #[arg(long, default_value = "functions")]
        dir: PathBuf,
    },
    /// Deploy a `.ts`/`.js` entry file, a folder holding `index.ts` or
    /// `index.js`, a Rust crate, or a `.wasm` component. Returns once the new
    /// version answers requests, or with the error that refused it. Trigger
    /// flags replace what the function runs on; without any, it keeps its
    /// current triggers.
    Deploy {
        /// The function's name (for --spin: the app's, from spin.toml
        /// unless given).
        name: Option<String>,
        /// A .wasm component, a TypeScript/JavaScript entry file, or a
        /// directory holding index.ts, index.js or a Rust crate.
        path: Option<PathBuf>,
        /// Deploy the Spin app this spin.toml describes, unmodified.
        #[arg(long, value_name = "SPIN_TOML", conflicts_with = "path")]
        spin: Option<PathBuf>,
        #[command(flatten)]
        triggers: TriggerArgs,
    },
    /// Show what a function runs on, or replace it with trigger flags.
    Triggers {
        name: String,
        #[command(flatten)]
        triggers: TriggerArgs,
    },
    /// Events that used up their attempts: list them, or replay one.
    DeadLetters {
        name: String,
        /// Put dead letter ID back in the queue (same event id).
        #[arg(long, value_name = "ID")]
        replay: Option<i64>,
        /// Drop dead letter ID for good.
        #[arg(long, value_name = "ID", conflicts_with = "replay")]
        discard: Option<i64>,
    },
    /// List functions and their active versions.
    List,
    /// Show a function: settings, versions, secrets' names.
    Show { name: String },
    /// A function's versions.
    Versions { name: String },
    /// Activate VERSION, or without one the version active before this one.
    Rollback { name: String, version: Option<i32> },
    /// Delete a function with all its versions, secrets and settings.
    Delete { name: String },
    /// Read a function's logs.
    Logs {
        name: String,
        /// Keep printing new records as they arrive.
        #[arg(long, short)]
        follow: bool,
        /// Only records at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
    },
    /// Set, unset or list a function's secrets (values are never shown).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Change settings: environment, JWT verification, limits, outbound hosts.
    Config {
        name: String,
        /// KEY=VALUE environment variables (replaces the whole set).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        #[arg(long)]
        verify_jwt: Option<bool>,
        #[arg(long)]
        memory_mb: Option<i32>,
        #[arg(long)]
        time_ms: Option<i32>,
        #[arg(long)]
        concurrency: Option<i32>,
        /// Delivery attempts of one event before it goes to the dead letters.
        #[arg(long)]
        max_attempts: Option<i32>,
        /// Hosts `fetch` may reach (replaces the list).
        #[arg(long = "allow-host", value_name = "HOST")]
        allowed_hosts: Vec<String>,
    },
    /// Call a function and print its answer.
    Invoke {
        name: String,
        /// Request body; `@FILE` reads a file.
        #[arg(long, short)]
        data: Option<String>,
        #[arg(long, short = 'X', default_value = "POST")]
        method: String,
        /// Path and query below the function, e.g. `/items?limit=2`.
        #[arg(long, default_value = "")]
        path: String,
    },
}

/// What a function runs on besides HTTP requests.
#[derive(Debug, Default, clap::Args)]
pub struct TriggerArgs {
    /// Table changes: OPERATIONS:SCHEMA.TABLE, optionally with a filter in the
    /// data API's grammar after `?`, e.g. `insert,update:public.orders?status=eq.paid`
    /// (operations: insert, update, delete or *). Repeatable.
    #[arg(long = "on", value_name = "OPS:SCHEMA.TABLE[?FILTER]")]
    pub on: Vec<String>,
    /// A cron schedule: five fields, or six with seconds first. Repeatable.
    #[arg(long = "cron", value_name = "EXPRESSION")]
    pub cron: Vec<String>,
    /// The time zone of the --cron schedules (an IANA name).
    #[arg(long = "tz", value_name = "ZONE", default_value = "UTC")]
    pub tz: String,
    /// A custom event's name. Repeatable.
    #[arg(long = "event", value_name = "NAME")]
    pub event: Vec<String>,
    /// Run the handler once when a version is activated, before it serves.
    #[arg(long)]
    pub setup: bool,
    /// Run on nothing but HTTP requests.
    #[arg(long, conflicts_with_all = ["on", "cron", "event", "setup"])]
    pub no_triggers: bool,
}

impl TriggerArgs {
    /// The declarations as the API takes them; none when no flag was given.
    fn declarations(&self) -> Option<Value> {
        let mut list = Vec::new();
        for on in &self.on {
            match on.split_once('?') {
                Some((on, filter)) => list.push(json!({"on": on, "filter": filter})),
                None => list.push(json!({"on": on})),
            }
        }
        list.extend(
            self.cron
                .iter()
                .map(|c| json!({"cron": c, "time_zone": self.tz})),
        );
        list.extend(self.event.iter().map(|e| json!({"event": e})));
        if self.setup {
            list.push(json!({"setup": true}));
        }
        (self.no_triggers || !list.is_empty()).then_some(Value::Array(list))
    }
}

fn print_triggers(listed: &Value) {
    let triggers = listed["triggers"].as_array().cloned().unwrap_or_default();
    if triggers.is_empty() {
        println!("HTTP requests only");
    }
    for t in triggers {
        match t["kind"].as_str().unwrap_or("") {
            "database" => match t["filter"].as_str() {
                Some(filter) => println!("on {}?{filter}", t["on"].as_str().unwrap_or("")),
                None => println!("on {}", t["on"].as_str().unwrap_or("")),
            },
            "schedule" => println!(
                "cron {} ({})",
                t["cron"].as_str().unwrap_or(""),
                t["time_zone"].as_str().unwrap_or("")
            ),
            "custom" => println!("event {}", t["event"].as_str().unwrap_or("")),
            _ => println!("setup"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    Set {
        name: String,
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
    Unset {
        name: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    List {
        name: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    Ts,
    Js,
    Rust,
}

/// Where the instance is and the key to use.
pub(super) struct Target {
    url: String,
    key: String,
    client: reqwest::Client,
}

fn env_file_values(path: &Path) -> Option<(Option<String>, Option<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut url = None;
    let mut key = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("SELFDB_URL=") {
            url = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("SELFDB_SERVICE_KEY=") {
            key = Some(v.trim().to_owned());
        }
    }
    Some((url, key))
}

pub(super) fn target(url: Option<String>, key: Option<String>) -> anyhow::Result<Target> {
    let file = env_file_values(Path::new(".selfdb/selfdb.env")).unwrap_or((None, None));
    let url = url.or_else(|| std::env::var("SELFDB_URL").ok()).or(file.0);
    let key = key
        .or_else(|| std::env::var("SELFDB_SERVICE_KEY").ok())
        .or(file.1);
    let (Some(url), Some(key)) = (url, key) else {
        bail!(
            "no SelfDB instance to talk to: pass --url and --key, set SELFDB_URL and \
             SELFDB_SERVICE_KEY (the lines `selfdb dev` prints), or run where \
             .selfdb/selfdb.env is"
        );
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    Ok(Target {
        url: url.trim_end_matches('/').to_owned(),
        key,
        client,
    })
}

impl Target {
    pub(super) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.url))
            .header("apikey", &self.key)
            .header("authorization", format!("Bearer {}", self.key))
    }

    /// Sends and returns the JSON answer, or the API's error as the error.
    pub(super) async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        let mut message = format!(
            "{} ({}): {}",
            status,
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or(&value.to_string())
        );
        if let Some(errors) = error["details"]["errors"].as_array() {
            message = errors
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}: {}",
                        e["file"].as_str().unwrap_or("?"),
                        e["line"],
                        e["column"],
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
        Err(anyhow!(message))
    }
}

pub(super) fn print(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn pairs(items: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    items
        .iter()
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("{item:?} is not KEY=VALUE"))?;
            Ok((k.to_owned(), Value::String(v.to_owned())))
        })
        .collect()
}

pub async fn run(args: FunctionsArgs) -> anyhow::Result<()> {
    match args.command {
        FunctionsCommand::New { name, lang, dir } => scaffold(&name, lang, &dir),
        command => remote(target(args.url, args.key)?, command).await,
    }
}

async fn remote(target: Target, command: FunctionsCommand) -> anyhow::Result<()> {
    let base = "/api/v1/functions";
    match command {
        FunctionsCommand::New { name, lang, dir } => scaffold(&name, lang, &dir)?,
        FunctionsCommand::Deploy {
            name,
            spin: Some(manifest),
            triggers,
            ..
        } => {
            if triggers.declarations().is_some() {
                bail!("a Spin app runs on the HTTP routes in its spin.toml: trigger flags do not apply");
            }
            let app = super::spin_upload::read(&manifest, name)?;
            let request = target
                .request(Method::PUT, &format!("{base}/{}", app.name))
                .timeout(Duration::from_secs(600))
                .multipart(app.form);
            let deployed = target.json(request).await?;
            println!(
                "deployed Spin app {} version {}{}",
                app.name,
                deployed["version"],
                if deployed["created"] == false {
                    " (unchanged)"
                } else {
                    ""
                }
            );
            if let Some(warnings) = deployed["warnings"].as_array() {
                for warning in warnings.iter().filter_map(Value::as_str) {
                    eprintln!("warning: {warning}");
                }
            }
        }
        FunctionsCommand::Deploy {
            name,
            path,
            triggers,
            spin: None,
        } => {
            let (Some(name), Some(path)) = (name, path) else {
                bail!("deploy needs a NAME and a PATH (or --spin spin.toml)");
            };
            let (bytes, entry) = upload(&path)?;
            let mut request = target
                .request(Method::PUT, &format!("{base}/{name}"))
                .timeout(Duration::from_secs(600))
                .body(bytes);
            if let Some(declared) = triggers.declarations() {
                request = request.query(&[("triggers", declared.to_string())]);
            }
            request = match &entry {
                Some(entry) => request
                    .query(&[("entry", entry)])
                    .header("content-type", "text/plain"),
                None => request.header("content-type", "application/wasm"),
            };
            let deployed = target.json(request).await?;
            println!(
                "deployed {} version {}{}",
                name,
                deployed["version"],
                if deployed["created"] == false {
                    " (unchanged)"
                } else {
                    ""
                }
            );
        }
        FunctionsCommand::Triggers { name, triggers } => {
            let path = format!("{base}/{name}/triggers");
            let listed = match triggers.declarations() {
                Some(declared) => {
                    target
                        .json(
                            target
                                .request(Method::PUT, &path)
                                .json(&json!({ "triggers": declared })),
                        )
                        .await?
                }
                None => target.json(target.request(Method::GET, &path)).await?,
            };
            print_triggers(&listed);
        }
        FunctionsCommand::DeadLetters {
            name,
            replay,
            discard,
        } => {
            let path = format!("{base}/{name}/dead-letters");
            if let Some(id) = replay {
                target
                    .json(target.request(Method::POST, &format!("{path}/{id}/replay")))
                    .await?;
                println!("replaying dead letter {id}");
            } else if let Some(id) = discard {
                target
                    .json(target.request(Method::DELETE, &format!("{path}/{id}")))
                    .await?;
                println!("discarded dead letter {id}");
            } else {
                let listed = target.json(target.request(Method::GET, &path)).await?;
                for d in listed["dead_letters"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{} {}\tattempts {}\t{}",
                        d["id"],
                        d["failed_at"].as_str().unwrap_or(""),
                        d["kind"].as_str().unwrap_or(""),
                        d["name"].as_str().unwrap_or(""),
                        d["attempts"],
                        d["last_error"].as_str().unwrap_or("")
                    );
                }
            }
        }
        FunctionsCommand::List => {
            let listed = target.json(target.request(Method::GET, base)).await?;
            for f in listed["functions"].as_array().into_iter().flatten() {
                println!(
                    "{}\tversion {}\tverify_jwt={}",
                    f["name"].as_str().unwrap_or(""),
                    f["version"],
                    f["verify_jwt"]
                );
            }
        }
        FunctionsCommand::Show { name } => {
            print(
                &target
                    .json(target.request(Method::GET, &format!("{base}/{name}")))
                    .await?,
            );
        }
        FunctionsCommand::Versions { name } => {
            let versions = target
                .json(target.request(Method::GET, &format!("{base}/{name}/versions")))
                .await?;
            for v in versions["versions"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    v["version"],
                    v["kind"].as_str().unwrap_or(""),
                    v["created_at"].as_str().unwrap_or(""),
                    v["created_by"].as_str().unwrap_or(""),
                    v["sha256"].as_str().and_then(|h| h.get(..12)).unwrap_or("")
                );
            }
        }
        FunctionsCommand::Rollback { name, version } => {
            let body = match version {
                Some(v) => json!({ "version": v }),
                None => json!({}),
            };
            let done = target
                .json(
                    target
                        .request(Method::POST, &format!("{base}/{name}/rollback"))
                        .json(&body),
                )
                .await?;
            println!("{name} now runs version {}", done["version"]);
        }
        FunctionsCommand::Delete { name } => {
            target
                .json(target.request(Method::DELETE, &format!("{base}/{name}")))
                .await?;
            println!("deleted {name}");
        }
        FunctionsCommand::Logs {
            name,
            follow,
            since,
        } => logs(&target, &name, follow, since).await?,
        FunctionsCommand::Secrets(SecretsCommand::Set { name, pairs: items }) => {
            let set = pairs(&items)?;
            let names = target
                .json(
                    target
                        .request(Method::PUT, &format!("{base}/{name}/secrets"))
                        .json(&set),
                )
                .await?;
            print(&names["secrets"]);
        }
        FunctionsCommand::Secrets(SecretsCommand::Unset { name, keys }) => {
            let mut names = Value::Null;
            for key in keys {
                names = target
                    .json(target.request(Method::DELETE, &format!("{base}/{name}/secrets/{key}")))
                    .await?;
            }
            print(&names["secrets"]);
        }
        FunctionsCommand::Secrets(SecretsCommand::List { name }) => {
            let names = target
                .json(target.request(Method::GET, &format!("{base}/{name}/secrets")))
                .await?;
            for key in names["secrets"].as_array().into_iter().flatten() {
                println!("{}", key.as_str().unwrap_or(""));
            }
        }
        FunctionsCommand::Config {
            name,
            env,
            verify_jwt,
            memory_mb,
            time_ms,
            concurrency,
            max_attempts,
            allowed_hosts,
        } => {
            let mut patch = serde_json::Map::new();
            if let Some(v) = max_attempts {
                patch.insert("max_attempts".into(), json!(v));
            }
            if !env.is_empty() {
                patch.insert("env".into(), Value::Object(pairs(&env)?));
            }
            if let Some(v) = verify_jwt {
                patch.insert("verify_jwt".into(), json!(v));
            }
            if let Some(v) = memory_mb {
                patch.insert("memory_mb".into(), json!(v));
            }
            if let Some(v) = time_ms {
                patch.insert("time_ms".into(), json!(v));
            }
            if let Some(v) = concurrency {
                patch.insert("concurrency".into(), json!(v));
            }
            if !allowed_hosts.is_empty() {
                patch.insert("allowed_hosts".into(), json!(allowed_hosts));
            }
            print(
                &target
                    .json(
                        target
                            .request(Method::PATCH, &format!("{base}/{name}"))
                            .json(&patch),
                    )
                    .await?,
            );
        }
        FunctionsCommand::Invoke {
            name,
            data,
            method,
            path,
        } => {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .context("invalid method")?;
            let mut request = target.request(method, &format!("/functions/v1/{name}{path}"));
            if let Some(data) = data {
                let body = match data.strip_prefix('@') {
                    Some(file) => std::fs::read(file).with_context(|| format!("read {file}"))?,
                    None => data.into_bytes(),
                };
                request = request.body(body);
            }
            let response = request.send().await.context("cannot reach the instance")?;
            let status = response.status();
            let text = response.text().await?;
            println!("{text}");
            if !status.is_success() {
                bail!("the function answered {status}");
            }
        }
    }
    Ok(())
}

async fn logs(
    target: &Target,
    name: &str,
    follow: bool,
    since: Option<String>,
) -> anyhow::Result<()> {
    let mut after = 0i64;
    loop {
        let mut query = vec![("after", after.to_string())];
        if let Some(since) = &since {
            query.push(("since", since.clone()));
        }
        if follow {
            query.push(("wait", "25".into()));
        }
        let page = target
            .json(
                target
                    .request(Method::GET, &format!("/api/v1/functions/{name}/logs"))
                    .timeout(Duration::from_secs(60))
                    .query(&query),
            )
            .await?;
        let records = page["logs"].as_array().cloned().unwrap_or_default();
        for record in &records {
            if record["kind"] == "invocation" {
                println!(
                    "{} {} v{} {} {:.1} ms {} KiB",
                    record["at"].as_str().unwrap_or(""),
                    record["request_id"].as_str().unwrap_or(""),
                    record["version"],
                    record["status"],
                    record["duration_ms"].as_f64().unwrap_or(0.0),
                    record["memory_peak"].as_i64().unwrap_or(0) / 1024
                );
            } else {
                println!(
                    "{} {} {} {}",
                    record["at"].as_str().unwrap_or(""),
                    record["request_id"].as_str().unwrap_or(""),
                    record["level"].as_str().unwrap_or(""),
                    record["message"].as_str().unwrap_or("")
                );
            }
        }
        after = page["next"].as_i64().unwrap_or(after);
        if !follow && records.len() < 200 {
            return Ok(());
        }
    }
}

/// The bytes to upload and, for source, the entry file's name.
fn upload(path: &Path) -> anyhow::Result<(Vec<u8>, Option<String>)> {
    let read =
        |file: &Path| std::fs::read(file).with_context(|| format!("read {}", file.display()));
    if path.is_dir() {
        for entry in ["index.ts", "index.js", "index.mts", "index.mjs"] {
            let file = path.join(entry);
            if file.is_file() {
                return Ok((read(&file)?, Some(entry.to_owned())));
            }
        }
        if path.join("Cargo.toml").is_file() {
            return Ok((build_rust(path)?, None));
        }
        bail!(
            "{} holds no index.ts, index.js or Cargo.toml",
            path.display()
        );
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} is not a file name", path.display()))?;
    if name.ends_with(".wasm") {
        return Ok((read(path)?, None));
    }
    if [".ts", ".js", ".mts", ".mjs"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        return Ok((read(path)?, Some(name.to_owned())));
    }
    bail!("{} is not a .ts, .js or .wasm file", path.display())
}

/// Builds a Rust function crate for wasm32-wasip2 and returns its component.
fn build_rust(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .status()
        .context("run cargo")?;
    if !status.success() {
        bail!("cargo build failed in {}", dir.display());
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let package = manifest
        .parse::<toml::Table>()
        .context("read Cargo.toml")?
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| anyhow!("Cargo.toml has no package name"))?;
    let metadata = std::process::Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("run cargo metadata")?;
    let target_dir = serde_json::from_slice::<Value>(&metadata.stdout)
        .ok()
        .and_then(|m| m["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| dir.join("target"));
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{package}.wasm"));
    std::fs::read(&wasm).with_context(|| format!("read {}", wasm.display()))
}

const TS_TEMPLATE: &str = r#"import { serve, db, env, caller } from "selfdb";

// POST {"name": "Ada"} or GET ?name=Ada
serve(async (req: Request): Promise<Response> => {
  const url = new URL(req.url);
  let name = url.searchParams.get("name") ?? "world";
  if (req.method === "POST") {
    const body = (await req.json().catch(() => ({}))) as { name?: string };
    name = body.name ?? name;
  }
  // Runs as the caller, under row-level security.
  const [row] = db.query<{ greeting: string }>("select 'Hello, ' || $1 || '!' as greeting", [name]);
  return new Response(
    JSON.stringify({ greeting: row.greeting, role: caller().role, greeter: env.get("GREETER") ?? null }),
    { headers: { "content-type": "application/json" } },
  );
});
"#;

fn scaffold(name: &str, lang: Lang, dir: &Path) -> anyhow::Result<()> {
    if !crate::runtime::registry::valid_name(name) {
        bail!("function names are 1-64 of a-z, 0-9, '-' and '_'");
    }
    let folder = dir.join(name);
    if folder.exists() {
        bail!("{} exists already", folder.display());
    }
    std::fs::create_dir_all(&folder)?;
    match lang {
        Lang::Ts => std::fs::write(folder.join("index.ts"), TS_TEMPLATE)?,
        Lang::Js => {
            let js = TS_TEMPLATE
                .replace(
                    "async (req: Request): Promise<Response> =>",
                    "async (req) =>",
                )
                .replace(") as { name?: string };", ");")
                .replace("db.query<{ greeting: string }>(", "db.query(");
            std::fs::write(folder.join("index.js"), js)?;
        }
        Lang::Rust => scaffold_rust(name, &folder)?,
    }
    std::fs::write(folder.join("request.json"), "{\"name\": \"Ada\"}\n")?;
    let path = folder.display();
    println!("created {path}");
    println!("deploy:  selfdb functions deploy {name} {path}");
    println!("try it:  selfdb functions invoke {name} --data @{path}/request.json");
    Ok(())
}

fn scaffold_rust(name: &str, folder: &Path) -> anyhow::Result<()> {
    // The SDK of the source tree this binary was built from.
    let sdk = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("sdk").join("rust")))
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| anyhow!("cannot find sdk/rust beside this selfdb binary"))?;
    let cargo = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nselfdb-sdk = {{ path = {:?} }}\nserde_json = \"1\"\n\n[workspace]\n",
        sdk.display().to_string()
    );
    std::fs::create_dir_all(folder.join("src"))?;
    std::fs::write(folder.join("Cargo.toml"), cargo)?;
    std::fs::write(
        folder.join("src").join("lib.rs"),
        r#"//! A SelfDB function: `selfdb functions deploy NAME .` builds and deploys it.

use selfdb_sdk::db::{self, Value};
use selfdb_sdk::{Handler, Request, Response};

struct Function;

impl Handler for Function {
    fn handle(request: Request) -> Response {
        let name = request.query_param("name").unwrap_or_else(|| "world".into());
        match db::query("select 'Hello, ' || $1::text || '!'", &[Value::Text(name)]) {
            Ok(rows) => Response::json(
                200,
                &serde_json::json!({ "greeting": rows.rows.first().map(|r| selfdb_sdk::value_to_json(&r[0])) }),
            ),
            Err(err) => Response::error(500, "database", &err.message),
        }
    }
}

selfdb_sdk::http_component!(Function);
"#,
    )?;
    Ok(())
}
