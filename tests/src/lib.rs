//! Harness for the end-to-end tests: starts the real `selfdb` binary against
//! real PostgreSQL and talks to it over real HTTP.
//!
//! One throwaway cluster per test binary (started with the host's own
//! `embedded_pg`, stopped by its watchdog when the binary exits) holds a
//! migrated template database; each test gets a fresh database cloned from
//! it and its own `selfdb serve` process.
//!
//! Anything that happens after an event (a log line, a file appearing or
//! going, a process exiting) is waited for with a deadline: `wait_until`,
//! `eventually`, `Host::wait_for_log`, `wait_for_exit`. A test never
//! sleeps for a guessed time.

mod api;
mod external;
mod seaweedfs;
pub mod tls;

pub use api::{error_code, misbehave, run_sql, run_sql_body, RequestExt};
pub use external::{ClickHouse, ExternalCluster, PgBouncer};
pub use seaweedfs::{Inventory, SeaweedFs};

use selfdb::embedded_pg::EmbeddedPg;
use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The JWT secret the test hosts use, so tests can mint their own tokens.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// How long a host may take from spawn to its `KEY=value` lines: generous,
/// since a first start compiles the system components, on a debug build,
/// possibly beside two busy processes.
const START_TIMEOUT: Duration = Duration::from_secs(180);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn selfdb_binary() -> PathBuf {
    let path = std::env::var_os("SELFDB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("selfdb"));
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it builds the binary and the components first)",
        path.display()
    );
    path
}

/// The components the tests deploy (copied there by `make test`).
/// Compiled components and the JavaScript engine, shared by every host a
/// test run starts: each compiles the system components and builds the
/// engine once, not once per host.
pub fn test_cache_dir() -> PathBuf {
    workspace_root().join("target").join("test-cache")
}

pub fn functions_dir() -> PathBuf {
    let dir = target_dir().join("test-functions");
    assert!(
        ["hello", "misbehave", "privileged", "events"]
            .iter()
            .all(|name| dir.join(format!("{name}.wasm")).exists()),
        "{} lacks the test components: run `make test`",
        dir.display()
    );
    dir
}

struct SharedCluster {
    pg: EmbeddedPg,
    _dir: tempfile::TempDir,
}

const TEMPLATE: &str = "selfdb_template";

/// Removes shared clusters earlier runs left in /tmp: the cluster is a
/// static, which is never dropped, so its directory (over a gigabyte)
/// outlives the run. Only directories no live postmaster owns and older
/// than ten minutes go, so another test binary starting one is spared.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("selfdb-test-pg"));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        let running = postmaster_pid(&path.join("pg")).is_some_and(process_alive);
        if ours && old && !running {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn shared_cluster() -> &'static SharedCluster {
    static CLUSTER: OnceLock<SharedCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        remove_stale_clusters();
        let dir = tempfile::Builder::new()
            .prefix("selfdb-test-pg")
            .tempdir_in("/tmp")
            .expect("temp dir");
        open_to_postgres_user(dir.path());
        let pg = EmbeddedPg::start(dir.path()).expect("start the test cluster");
        let url = pg.url("postgres");
        let template_url = pg.url(TEMPLATE);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect to the test cluster");
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("create database {TEMPLATE}"))
                    .await
                    .expect("create the template database");
                // Migrating the template once makes every test database
                // start migrated (the cluster-wide roles too).
                selfdb::db::Database::connect(&template_url, 1)
                    .await
                    .expect("migrate the template");
            });
        })
        .join()
        .expect("template setup");
        SharedCluster { pg, _dir: dir }
    })
}

/// A fresh, migrated database in the shared cluster; returns its URL.
pub async fn fresh_database() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let cluster = shared_cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let (client, conn) =
        tokio_postgres::connect(&cluster.pg.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(conn);
    // Cloning a template needs it to be free of other sessions: retry
    // briefly when two tests clone at the same moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .batch_execute(&format!("create database {name} template {TEMPLATE}"))
            .await
        {
            Ok(()) => break,
            Err(err) if Instant::now() < deadline && err.to_string().contains("being accessed") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("create database {name}: {err}"),
        }
    }
    cluster.pg.url(&name)
}

pub async fn psql(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// A running `selfdb` process and what it printed at start-up.
pub struct Host {
    pub child: Child,
    pub env: HashMap<String, String>,
    pub url: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    stderr_log: PathBuf,
    http: reqwest::Client,
}

pub struct HostBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    /// The CA (PEM) the host's client trusts, for a host serving HTTPS.
    trusted_ca: Option<String>,
}

impl HostBuilder {
    fn serve_with(database_url: &str, data_dir: PathBuf) -> HostBuilder {
        // Each host gets its own copy: the admin API writes deployed
        // functions there, and other tests must not see them.
        let functions = data_dir.join("functions");
        std::fs::create_dir_all(&functions).expect("functions dir");
        for entry in std::fs::read_dir(functions_dir())
            .expect("fixtures")
            .flatten()
        {
            let target = functions.join(entry.file_name());
            if !target.exists() {
                std::fs::copy(entry.path(), target).expect("copy fixture");
            }
        }
        HostBuilder {
            args: vec![
                "serve".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--database-url".into(),
                database_url.to_owned(),
                "--functions-dir".into(),
                functions.display().to_string(),
                "--cache-dir".into(),
                test_cache_dir().display().to_string(),
                "--jwt-secret".into(),
                JWT_SECRET.into(),
                // One key for every host of a database, as operators must.
                "--secrets-key".into(),
                "test secrets key of the selfdb test suite".into(),
                "--s3-port".into(),
                "0".into(),
            ],
            envs: Vec::new(),
            data_dir: Some(data_dir),
            database_url: Some(database_url.to_owned()),
            trusted_ca: None,
        }
    }

    /// `selfdb` with exactly `args` and `envs` (then `--data-dir`), as a
    /// deployment file would start it.
    pub fn command(args: Vec<String>, envs: Vec<(String, String)>, data_dir: PathBuf) -> Self {
        HostBuilder {
            args,
            envs,
            data_dir: Some(data_dir),
            database_url: None,
            trusted_ca: None,
        }
    }

    /// A second `selfdb serve` on the same database as `other`, with its own
    /// data dir: another node behind the same balancer.
    pub fn alongside(other: &Host) -> HostBuilder {
        let data_dir = tempfile::Builder::new()
            .prefix("selfdb-test-host")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        Self::serve_with(
            other.database_url.as_deref().expect("a serve host"),
            data_dir,
        )
    }

    /// `selfdb serve` again on a stopped host's data dir and database.
    pub fn for_restart(previous: &Host, database_url: &str) -> HostBuilder {
        Self::serve_with(database_url, previous.data_dir.clone())
    }

    /// Gives the host no JavaScript toolchain, so it prepares no JavaScript
    /// engine in the background: for measurements a compile would disturb
    /// (on a fresh machine the engine is compiled by whichever hosts start
    /// first, taking a couple of hundred megabytes while it runs).
    pub fn without_javascript(mut self) -> Self {
        self.args.push("--js-toolchain".into());
        self.args.push("/nonexistent/toolchain".into());
        self
    }

    /// Keeps compiled components in the host's own data dir instead of the
    /// run's shared cache, and builds no JavaScript engine there, for tests
    /// of the cache itself.
    pub fn own_cache(mut self) -> Self {
        if let Some(i) = self.args.iter().position(|a| a == "--cache-dir") {
            self.args.drain(i..i + 2);
        }
        self.without_javascript()
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Serves HTTPS with `cert` and `key`; the host's client trusts
    /// `ca_pem`.
    pub fn https(mut self, cert: &Path, key: &Path, ca_pem: String) -> Self {
        self.args.push("--tls-cert".into());
        self.args.push(cert.display().to_string());
        self.args.push("--tls-key".into());
        self.args.push(key.display().to_string());
        self.trusted_ca = Some(ca_pem);
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    pub fn start(self) -> Host {
        let data_dir = self.data_dir.expect("data dir");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let stderr_log = data_dir.join("host.stderr.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_log)
            .expect("stderr log");
        let mut cmd = Command::new(selfdb_binary());
        cmd.args(&self.args)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "selfdb=info,warn")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("spawn selfdb");
        let stdout = child.stdout.take().expect("stdout");
        // The `KEY=value` lines arrive on a thread that keeps draining stdout
        // afterwards (so the host never blocks on a full pipe); start-up is
        // waited for with a deadline, so a host stuck in a phase fails the
        // test with its log instead of hanging it.
        let (lines, announced) = std::sync::mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(n) if n > 0 => {
                        let _ = lines.send(Some(line.trim_end().to_owned()));
                    }
                    _ => {
                        let _ = lines.send(None);
                        return;
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut env = HashMap::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match announced.recv_timeout(left) {
                Ok(Some(line)) => {
                    if let Some((key, value)) = line.split_once('=') {
                        env.insert(key.to_owned(), value.to_owned());
                        if key == "SELFDB_ENV_FILE" {
                            break;
                        }
                    }
                }
                Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                    panic!("selfdb exited before it was ready; stderr:\n{log}");
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                    panic!("selfdb was not ready within {START_TIMEOUT:?}; stderr:\n{log}");
                }
            }
        }
        // Later lines (none are expected) are drained by the thread.
        drop(announced);
        let url = env["SELFDB_URL"].clone();
        Host {
            child,
            env,
            url,
            data_dir,
            database_url: self.database_url,
            stderr_log,
            http: api::client(self.trusted_ca.as_deref()),
        }
    }
}

impl Host {
    /// `selfdb serve` against a fresh database, deploying the test
    /// components, with the test JWT secret.
    pub async fn serve() -> HostBuilder {
        let database_url = fresh_database().await;
        let data_dir = tempfile::Builder::new()
            .prefix("selfdb-test-host")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        HostBuilder::serve_with(&database_url, data_dir)
    }

    /// `selfdb serve` on a database of the caller's (an external cluster's
    /// URL, with its `sslmode`).
    pub fn serve_at(database_url: &str) -> HostBuilder {
        let data_dir = tempfile::Builder::new()
            .prefix("selfdb-test-host")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        HostBuilder::serve_with(database_url, data_dir)
    }

    /// `selfdb dev` with its own embedded cluster in `data_dir`.
    pub fn dev(data_dir: &Path) -> HostBuilder {
        HostBuilder {
            args: vec![
                "dev".into(),
                "--port".into(),
                "0".into(),
                "--s3-port".into(),
                "0".into(),
            ],
            envs: Vec::new(),
            data_dir: Some(data_dir.to_owned()),
            database_url: None,
            trusted_ca: None,
        }
    }

    pub fn anon_key(&self) -> &str {
        &self.env["SELFDB_ANON_KEY"]
    }

    pub fn service_key(&self) -> &str {
        &self.env["SELFDB_SERVICE_KEY"]
    }

    /// Everything the host has logged so far. A line the host writes
    /// after an event may land after the test sees the event: to assert
    /// on one, use `wait_for_log`.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Polls the host's log until it holds `needle` or `timeout` passes;
    /// returns whether it did.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_where(timeout, |log| log.contains(needle))
            .await
    }

    /// Polls the host's log until `check` holds for it or `timeout` passes;
    /// returns whether it did.
    pub async fn wait_for_log_where(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&str) -> bool,
    ) -> bool {
        eventually(timeout, || {
            let held = check(&self.stderr());
            async move { held }
        })
        .await
    }

    /// SIGTERM, then wait for the exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// Signs claims with the test hosts' secret.
pub fn sign(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

/// An access token for user `sub`, as the auth service would issue it.
pub fn user_token(sub: &str, lifetime_seconds: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    sign(serde_json::json!({
        "sub": sub,
        "role": "authenticated",
        "aud": "authenticated",
        "iat": now,
        "exp": now + lifetime_seconds,
    }))
}

/// Polls `check` until it holds or `timeout` passes; returns whether it
/// held. Blocks the thread: in async code, `eventually` lets the runtime's
/// other tasks run meanwhile.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// Polls the async `check` until it holds or `timeout` passes; returns
/// whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

/// Waits up to `timeout` for process `pid` to be gone (or a zombie);
/// returns whether it went.
pub fn wait_for_exit(pid: i32, timeout: Duration) -> bool {
    wait_until(timeout, || !process_alive(pid))
}

/// The number of files below `dir`, recursively (0 when it is missing).
pub fn files_below(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_below(&path)
            } else {
                1
            }
        })
        .sum()
}

/// A private key made by openssl in `dir`: `ec` (P-256, PKCS#8) or `rsa`.
pub fn signing_key(dir: &Path, kind: &str) -> PathBuf {
    let path = dir.join(format!("{kind}.pem"));
    let options: &[&str] = match kind {
        "ec" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    };
    let status = Command::new("openssl")
        .arg("genpkey")
        .args(options)
        .arg("-out")
        .arg(&path)
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl genpkey failed");
    path
}

pub fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// The postmaster pid recorded in a cluster's data directory.
pub fn postmaster_pid(pgdata: &Path) -> Option<i32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Temp dirs are created 0700; the cluster runs as the `postgres` user when
/// the tests run as root, and must reach its data directory.
pub fn open_to_postgres_user(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A fresh data directory for `selfdb dev`.
pub fn dev_data_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("selfdb-test-dev")
        .tempdir_in("/tmp")
        .expect("temp dir")
        .keep();
    open_to_postgres_user(&dir);
    dir
}

/// A minimal SMTP server that accepts every message and keeps it, so tests
/// can see what the host sent through a real SMTP conversation.
pub struct SmtpSink {
    pub port: u16,
    messages: std::sync::mpsc::Receiver<String>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind SMTP sink");
        let port = listener.local_addr().expect("addr").port();
        let (sender, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().expect("clone stream");
                    let mut reader = BufReader::new(stream);
                    let _ = writer.write_all(b"220 sink ESMTP\r\n");
                    let mut line = String::new();
                    let mut data: Option<String> = None;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(body) = data.as_mut() {
                            if line == ".\r\n" {
                                let _ = sender.send(std::mem::take(body));
                                data = None;
                                let _ = writer.write_all(b"250 queued\r\n");
                            } else {
                                body.push_str(&line);
                            }
                            continue;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = writer.write_all(b"221 bye\r\n");
                                return;
                            }
                            _ => b"250 ok\r\n",
                        };
                        let _ = writer.write_all(reply);
                    }
                });
            }
        });
        SmtpSink { port, messages }
    }

    /// The next message received, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.messages.recv_timeout(timeout).ok()
    }
}

/// A throwaway `redis-server` on a free port, stopped on drop.
pub struct Redis {
    pub url: String,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (make test installs it)");
        let ready = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(ready, "redis-server did not start");
        Redis {
            url: format!("redis://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has boto3: the one on PATH, else Debian's.
pub fn python_with_boto3() -> String {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", "import boto3"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python.to_owned();
        }
    }
    panic!("no python3 with boto3: run `make test` (scripts/bootstrap.sh installs python3-boto3)");
}
