//! The private PostgreSQL cluster of `selfdb dev`, kept in `<data dir>/pg`.
//!
//! Started with Debian's PostgreSQL binaries, as the `postgres` user when we
//! are root (PostgreSQL refuses to run as root), listening on 127.0.0.1 on a
//! port remembered across restarts, with its socket inside the data
//! directory. Password authentication (SCRAM) everywhere; the superuser
//! password lives in `<data dir>/pg.password` (mode 0600).
//!
//! Crash safety: a watchdog process (`sh`, blocked reading a pipe whose write
//! end only this process holds) stops the cluster when the host dies in any
//! way, including SIGKILL. If even the watchdog was killed, the next start
//! finds the old postmaster through `postmaster.pid`, stops it cleanly and
//! starts again; PostgreSQL's WAL keeps every committed transaction.

use crate::files::write_private;
use crate::secrets::read_or_create_secret;
use nix::unistd::{Gid, Uid, User};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL server binaries not found (looked in $SELFDB_PG_BIN, /usr/lib/postgresql/*/bin and PATH); install Debian's postgresql package")]
    BinariesNotFound,
    #[error("{0}: install postgresql-client (of the server's major version) or set SELFDB_PG_BIN")]
    ClientNotFound(String),
    #[error("running as root but the `postgres` user does not exist; install Debian's postgresql package")]
    NoPostgresUser,
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("{command} failed ({status}); its output:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("the postgres user cannot reach {0}: give its parent directories search permission (o+x) or choose another --data-dir")]
    Unreachable(PathBuf),
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
    let action = action.into();
    move |source| PgError::Io { action, source }
}

/// A running embedded cluster. `stop` shuts it down; dropping the value
/// without `stop` leaves the watchdog to do it.
pub struct EmbeddedPg {
    root: PathBuf,
    pgdata: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<(Uid, Gid)>,
    watchdog: Option<Child>,
}

/// The database `selfdb dev` keeps in its cluster (restore makes the same).
pub const EMBEDDED_DATABASE: &str = "selfdb";

/// Room for a socket path in `sockaddr_un.sun_path` (108 bytes on Linux,
/// with its terminating NUL).
const SUN_PATH_MAX: usize = 107;

impl EmbeddedPg {
    /// Initialises the cluster on first use, takes over whatever a crashed
    /// run left behind, and starts it. Blocking: call it from
    /// `spawn_blocking` inside an async runtime.
    pub fn start(root: &Path) -> Result<Self, PgError> {
        let bin_dir = find_bin_dir()?;
        let run_as = postgres_user_if_root()?;
        fs::create_dir_all(root).map_err(io(format!("create {}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(io(format!("resolve {}", root.display())))?;
        let pgdata = root.join("pg");
        let password_file = root.join("pg.password");
        let password = read_or_create_secret(&password_file)
            .map_err(io(format!("write {}", password_file.display())))?;
        let mut pg = EmbeddedPg {
            port: 0,
            root,
            pgdata,
            bin_dir,
            password,
            run_as,
            watchdog: None,
        };
        if !pg.pgdata.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        pg.take_over_leftover()?;
        pg.port = pg.choose_port()?;
        pg.start_server()?;
        pg.watchdog = Some(pg.spawn_watchdog()?);
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.pgdata
    }

    /// Where this cluster's PostgreSQL programs are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Connection string for `database` as the cluster's superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{}",
            self.password, self.port, database
        )
    }

    /// Settings for `database` over the cluster's Unix socket, which the
    /// host's own pools use: a round trip over loopback TCP costs both
    /// processes the whole TCP stack (acks, softirqs, wake-ups), a socket
    /// does not. `None` when the socket path is too long for `sun_path`.
    pub fn socket_config(&self, database: &str) -> Option<tokio_postgres::Config> {
        let socket = self.pgdata.join(format!(".s.PGSQL.{}", self.port));
        if socket.as_os_str().len() >= SUN_PATH_MAX {
            return None;
        }
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.pgdata)
            .port(self.port)
            .user("postgres")
            .password(self.password.as_str())
            .dbname(database);
        Some(config)
    }

    /// Stops the cluster (fast shutdown: open transactions roll back,
    /// committed data is on disk) and the watchdog.
    pub fn stop(&mut self) -> Result<(), PgError> {
        let result = self.pg_ctl_stop();
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
        result
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
            cmd.env("HOME", &self.root);
        }
        // A terminal's Ctrl-C must reach only us: we shut PostgreSQL down
        // after the HTTP server has drained.
        cmd.process_group(0);
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        cmd
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), PgError> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(io(format!("run {what}")))?;
        if out.status.success() {
            return Ok(());
        }
        Err(PgError::Command {
            command: what.to_owned(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    fn chown_to_postgres(&self, path: &Path) -> Result<(), PgError> {
        if let Some((uid, gid)) = self.run_as {
            nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|e| PgError::Io {
                action: format!("chown {}", path.display()),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), PgError> {
        if self.run_as.is_some() {
            check_reachable_by_others(&self.root)?;
        }
        if self.pgdata.exists() {
            // A half-done initdb from an interrupted first start.
            fs::remove_dir_all(&self.pgdata)
                .map_err(io(format!("remove {}", self.pgdata.display())))?;
        }
        fs::create_dir_all(&self.pgdata).map_err(io("create the cluster directory"))?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(io("restrict the cluster directory"))?;
        self.chown_to_postgres(&self.pgdata)?;
        let pwfile = self.root.join(".initdb-password");
        write_private(&pwfile, self.password.as_bytes())
            .map_err(io(format!("write {}", pwfile.display())))?;
        self.chown_to_postgres(&pwfile)?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale"])
            .args(["--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = self.run(cmd, "initdb");
        let _ = fs::remove_file(&pwfile);
        result
    }

    /// A previous host that died without stopping its cluster leaves a
    /// `postmaster.pid`. A live postmaster is stopped cleanly (it may be
    /// holding our port and data dir); a stale file is removed.
    fn take_over_leftover(&self) -> Result<(), PgError> {
        let pidfile = self.pgdata.join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pidfile) else {
            return Ok(());
        };
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok());
        let alive = pid.is_some_and(is_postgres_process);
        if alive {
            tracing::warn!(
                pid,
                "found a running PostgreSQL left by an earlier run; stopping it"
            );
            self.pg_ctl_stop()?;
        } else {
            tracing::warn!("removing a stale postmaster.pid");
            let _ = fs::remove_file(&pidfile);
        }
        Ok(())
    }

    /// The port of the last run when it is still free, so `DATABASE_URL`
    /// stays the same across restarts; otherwise a free one.
    fn choose_port(&self) -> Result<u16, PgError> {
        let remembered = fs::read_to_string(self.root.join("pg.port"))
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok());
        if let Some(port) = remembered {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io("find a free port"))?;
        let port = listener
            .local_addr()
            .map_err(io("find a free port"))?
            .port();
        fs::write(self.root.join("pg.port"), port.to_string()).map_err(io("remember the port"))?;
        Ok(port)
    }

    fn start_server(&self) -> Result<(), PgError> {
        // wal_level=logical: realtime captures changes through logical
        // replication, one slot per database (hence the slot count); the cap
        // on WAL a slot may hold back keeps an abandoned slot (a database
        // whose hosts are gone) from filling the disk. Commit timestamps
        // give event handlers the time a change committed.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
             -c wal_level=logical -c max_replication_slots=200 -c max_wal_senders=200 \
             -c max_slot_wal_keep_size=1024 -c track_commit_timestamp=on",
            self.port,
            self.pgdata.display()
        );
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(self.pgdata.join("server.log"))
            .arg("-o")
            .arg(options)
            .stdout(Stdio::null());
        batch_scheduling(&mut cmd);
        self.run(cmd, "pg_ctl start").map_err(|err| match err {
            PgError::Command {
                command,
                status,
                output,
            } => {
                let log = fs::read_to_string(self.pgdata.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                PgError::Command {
                    command,
                    status,
                    output: format!("{output}\nserver.log:\n{}", tail.join("\n")),
                }
            }
            other => other,
        })
    }

    fn pg_ctl_stop(&self) -> Result<(), PgError> {
        if !self.pgdata.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut cmd = self.command("pg_ctl");
        cmd.arg("stop")
            .arg("-w")
            .args(["-t", "60", "-m", "fast"])
            .arg("-D")
            .arg(&self.pgdata);
        self.run(cmd, "pg_ctl stop")
    }

    fn spawn_watchdog(&self) -> Result<Child, PgError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(r#"cat >/dev/null; exec "$0" stop -w -m fast -D "$1" >/dev/null 2>&1"#)
            .arg(&pg_ctl)
            .arg(&self.pgdata)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let child = cmd.spawn().map_err(io("start the cluster watchdog"))?;
        fs::write(self.root.join("pg.watchdog.pid"), child.id().to_string())
            .map_err(io("record the watchdog pid"))?;
        Ok(child)
    }
}

impl Drop for EmbeddedPg {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            let _ = self.stop();
        }
    }
}

/// A cluster a live host is serving from `root` (`<data dir>`).
pub struct RunningCluster {
    pub port: u16,
    pub password: String,
}

/// The cluster in `root/pg` when a postmaster is running it, with what a
/// client needs to connect (its port from `postmaster.pid`, the superuser
/// password from `pg.password`); `None` when it is stopped.
pub fn running_cluster(root: &Path) -> Result<Option<RunningCluster>, PgError> {
    let Ok(text) = fs::read_to_string(root.join("pg").join("postmaster.pid")) else {
        return Ok(None);
    };
    let mut lines = text.lines();
    let pid = lines.next().and_then(|l| l.trim().parse::<i32>().ok());
    // Line 4 of postmaster.pid is the port.
    let port = lines.nth(2).and_then(|l| l.trim().parse::<u16>().ok());
    let (Some(pid), Some(port)) = (pid, port) else {
        return Ok(None);
    };
    if !is_postgres_process(pid) {
        return Ok(None);
    }
    let password_file = root.join("pg.password");
    let password = fs::read_to_string(&password_file)
        .map_err(io(format!("read {}", password_file.display())))?
        .trim()
        .to_owned();
    Ok(Some(RunningCluster { port, password }))
}

/// Where `pg_dump` and `pg_restore` are: `$SELFDB_PG_BIN` when set (it
/// must hold them), else the newest `/usr/lib/postgresql/*/bin` with them
/// (a server's or a `postgresql-client-N` package's), else PATH.
pub fn find_client_dir() -> Result<PathBuf, PgError> {
    let has_tools = |dir: &Path| dir.join("pg_dump").exists() && dir.join("pg_restore").exists();
    if let Some(dir) = std::env::var_os("SELFDB_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_tools(&dir) {
            return Ok(dir);
        }
        return Err(PgError::ClientNotFound(format!(
            "SELFDB_PG_BIN={} holds no pg_dump and pg_restore",
            dir.display()
        )));
    }
    newest_with(has_tools).ok_or_else(|| {
        PgError::ClientNotFound(
            "no pg_dump and pg_restore in /usr/lib/postgresql/*/bin or PATH".into(),
        )
    })
}

/// The newest `/usr/lib/postgresql/<major>/bin` for which `has` holds,
/// else the first directory of PATH for which it does.
fn newest_with(has: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .find(|dir| has(dir))
}

fn find_bin_dir() -> Result<PathBuf, PgError> {
    let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Some(dir) = std::env::var_os("SELFDB_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    newest_with(has_server).ok_or(PgError::BinariesNotFound)
}

fn postgres_user_if_root() -> Result<Option<(Uid, Gid)>, PgError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => Err(PgError::NoPostgresUser),
    }
}

fn check_reachable_by_others(dir: &Path) -> Result<(), PgError> {
    for ancestor in dir.ancestors() {
        if let Ok(meta) = fs::metadata(ancestor) {
            if meta.permissions().mode() & 0o001 == 0 {
                return Err(PgError::Unreachable(ancestor.to_owned()));
            }
        }
    }
    Ok(())
}

fn is_postgres_process(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| matches!(comm.trim(), "postgres" | "postmaster"))
        .unwrap_or(false)
}

/// Starts `cmd`, and so the postmaster and every backend it forks, under
/// `SCHED_BATCH`. The cluster shares the machine's cores with the host,
/// which wakes a backend for every statement: with the default policy the
/// woken backend preempts the host thread that woke it, a context switch
/// per round trip once the cores are busy; a batch task instead runs when
/// that thread waits or its slice ends. Under load this is +17-30% req/s on
/// the data API's one-row GET and +23% on a list (issue 3's note), for 1-2
/// ms more at p99 (about 4 ms to 5-6 ms at 32 connections on two cores); on
/// an idle core it changes nothing.
fn batch_scheduling(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one system call, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // Best effort: where it is refused (a seccomp profile), the
            // cluster runs under the default policy.
            let _ = libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
            Ok(())
        });
    }
}
