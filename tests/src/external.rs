//! Users' own databases, for projects: PostgreSQL clusters of their own,
//! which SelfDB never migrated, reached over TCP with passwords; one kind
//! accepts only TLS (a certificate from a CA made for the run), and
//! PgBouncer in transaction mode can stand in front of one.

use selfdb::embedded_pg::EmbeddedPg;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct ExternalCluster {
    pg: EmbeddedPg,
    dir: tempfile::TempDir,
    /// The root certificate the server's certificate chains to (TLS only).
    pub ca_pem: Option<String>,
}

impl ExternalCluster {
    /// Starts a cluster; with `tls`, only encrypted connections are let in
    /// over TCP. Blocking (initdb and pg_ctl).
    pub fn start(tls: bool) -> ExternalCluster {
        let dir = tempfile::Builder::new()
            .prefix("selfdb-test-extpg")
            .tempdir_in("/tmp")
            .expect("temp dir");
        crate::open_to_postgres_user(dir.path());
        let pg = EmbeddedPg::start(dir.path()).expect("start an external cluster");
        let mut cluster = ExternalCluster {
            pg,
            dir,
            ca_pem: None,
        };
        if tls {
            cluster.require_tls();
        }
        cluster
    }

    pub fn port(&self) -> u16 {
        self.pg.port()
    }

    /// A URL for `user` on `database`, with extra query `params` (`a=b&c=d`).
    pub fn url(&self, user: &str, password: &str, database: &str, params: &str) -> String {
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{params}")
        };
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{database}{query}",
            self.pg.port()
        )
    }

    /// The superuser's URL.
    pub fn superuser_url(&self, database: &str) -> String {
        self.pg.url(database)
    }

    /// A superuser session over the Unix socket (no TLS needed there).
    pub async fn superuser(&self, database: &str) -> tokio_postgres::Client {
        let config = self
            .pg
            .socket_config(database)
            .expect("a socket path short enough");
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the external cluster");
        tokio::spawn(connection);
        client
    }

    /// Makes a database owned by a new login role (not a superuser), as a
    /// user's application database is; returns nothing, the URL is
    /// `url(role, password, database, ..)`.
    pub async fn create_app_database(&self, database: &str, role: &str, password: &str) {
        let admin = self.superuser("postgres").await;
        admin
            .batch_execute(&format!(
                "create role {role} login password '{}'",
                password.replace('\'', "''")
            ))
            .await
            .expect("create the app role");
        // CREATE DATABASE refuses to run in a multi-statement batch.
        admin
            .batch_execute(&format!("create database {database} owner {role}"))
            .await
            .expect("create the app database");
    }

    /// A session as `role` (over the socket) to build the app's tables.
    pub async fn session(
        &self,
        database: &str,
        role: &str,
        password: &str,
    ) -> tokio_postgres::Client {
        let mut config = self
            .pg
            .socket_config(database)
            .expect("a socket path short enough");
        config.user(role).password(password);
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect as the app role");
        tokio::spawn(connection);
        client
    }

    fn data_dir(&self) -> &Path {
        self.pg.data_dir()
    }

    /// A CA and a server certificate it signs (for `localhost` and
    /// 127.0.0.1), `ssl = on`, and `pg_hba.conf` refusing plain TCP.
    fn require_tls(&mut self) {
        let ca = crate::tls::TestCa::create(&self.dir.path().join("tls"));
        let key = self.data_dir().join("server.key");
        let crt = self.data_dir().join("server.crt");
        ca.issue_to(&crt, &key);
        // The server (the `postgres` user when tests run as root) must own
        // its key, readable by it alone.
        let owner = std::fs::metadata(self.data_dir()).expect("stat pgdata");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        for file in [&key, &crt] {
            std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).expect("chown");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        let hba = self.data_dir().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl replication all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        std::os::unix::fs::chown(&hba, Some(owner.uid()), Some(owner.gid())).expect("chown");
        self.ca_pem = Some(ca.pem());
        let socket = self.pg.socket_config("postgres").expect("socket");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async {
                let (client, connection) = socket
                    .connect(tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                // ALTER SYSTEM refuses to run in a multi-statement batch.
                client
                    .batch_execute("alter system set ssl = on")
                    .await
                    .expect("turn TLS on");
                client
                    .batch_execute("select pg_reload_conf()")
                    .await
                    .expect("reload");
            });
        })
        .join()
        .expect("tls setup");
    }
}

/// PgBouncer in transaction mode in front of one database of a cluster,
/// on a free port; stopped on drop.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Serves `database` of `cluster` as `role` (password auth, plain).
    pub fn start(
        cluster: &ExternalCluster,
        database: &str,
        role: &str,
        password: &str,
    ) -> PgBouncer {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("pgbouncer is missing: run `make test` (it installs it)");
        let dir = tempfile::Builder::new()
            .prefix("selfdb-test-pgbouncer")
            .tempdir_in("/tmp")
            .expect("temp dir");
        crate::open_to_postgres_user(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            dir.path().join("users.txt"),
            format!("\"{role}\" \"{password}\"\n"),
        )
        .expect("write users");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{database} = host=127.0.0.1 port={} dbname={database}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = plain\nauth_file = {}\n\
                 pool_mode = transaction\nmax_client_conn = 100\ndefault_pool_size = 2\n\
                 ignore_startup_parameters = extra_float_digits,options,application_name\n\
                 logfile = {}\n",
                cluster.port(),
                dir.path().join("users.txt").display(),
                dir.path().join("pgbouncer.log").display()
            ),
        )
        .expect("write pgbouncer.ini");
        let owner = std::fs::metadata(cluster.data_dir()).expect("stat pgdata");
        use std::os::unix::fs::MetadataExt;
        // Its log file is created in the directory: the owner's too.
        let _ = std::os::unix::fs::chown(dir.path(), Some(owner.uid()), Some(owner.gid()));
        for entry in std::fs::read_dir(dir.path()).expect("list").flatten() {
            let _ = std::os::unix::fs::chown(entry.path(), Some(owner.uid()), Some(owner.gid()));
        }
        // PgBouncer refuses to run as root: as the cluster's owner.
        let mut cmd = Command::new(binary);
        cmd.arg(&ini).stdout(Stdio::null()).stderr(Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            cmd.uid(owner.uid()).gid(owner.gid());
        }
        let child = cmd.spawn().expect("start pgbouncer");
        let mut child = child;
        let ready = crate::wait_until(Duration::from_secs(30), || {
            // Exited (its port taken between our probe and its bind, say):
            // not ready, and the wait fails rather than meet another
            // listener.
            matches!(child.try_wait(), Ok(None))
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            ready && matches!(child.try_wait(), Ok(None)),
            "pgbouncer did not listen on {port}"
        );
        PgBouncer {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self, role: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ClickHouse server of the test's own (Debian's `clickhouse-server`),
/// reached over its HTTP interface as user `logs`.
pub struct ClickHouse {
    pub http_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Two distinct free ports (both held until both are read).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().expect("addr").port();
    (port(&a), port(&b))
}

impl ClickHouse {
    pub const PASSWORD: &'static str = "logs-secret";

    pub fn start() -> ClickHouse {
        let binary = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("clickhouse-server is missing: run `make test` (it installs it)");
        let dir = tempfile::Builder::new()
            .prefix("selfdb-test-clickhouse")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path().display().to_string();
        let (http_port, tcp_port) = free_ports();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                "<yandex>\n<logger><level>warning</level><log>{root}/server.log</log>\
                 <errorlog>{root}/error.log</errorlog></logger>\n\
                 <http_port>{http_port}</http_port><tcp_port>{tcp_port}</tcp_port>\n\
                 <listen_host>127.0.0.1</listen_host>\n\
                 <path>{root}/data/</path><tmp_path>{root}/tmp/</tmp_path>\n\
                 <user_files_path>{root}/user_files/</user_files_path>\n\
                 <format_schema_path>{root}/format_schemas/</format_schema_path>\n\
                 <users_config>users.xml</users_config>\n\
                 <default_profile>default</default_profile>\
                 <default_database>default</default_database>\n\
                 <mark_cache_size>268435456</mark_cache_size>\n</yandex>\n"
            ),
        )
        .expect("write config.xml");
        std::fs::write(
            dir.path().join("users.xml"),
            format!(
                "<yandex><profiles><default></default></profiles><users><logs>\
                 <password>{}</password><networks><ip>127.0.0.1</ip></networks>\
                 <profile>default</profile><quota>default</quota></logs></users>\
                 <quotas><default></default></quotas></yandex>\n",
                Self::PASSWORD
            ),
        )
        .expect("write users.xml");
        let mut child = Command::new(binary)
            .arg(format!("--config-file={root}/config.xml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        // Ready when a query answers (it listens before it has loaded).
        let ready = crate::wait_until(Duration::from_secs(60), || {
            matches!(child.try_wait(), Ok(None))
                && std::process::Command::new("curl")
                    .args(["-sf", "-u", &format!("logs:{}", Self::PASSWORD)])
                    .arg(format!("http://127.0.0.1:{http_port}/?query=select%201"))
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        assert!(
            ready,
            "clickhouse-server did not answer on {http_port}: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        ClickHouse {
            http_port,
            child,
            _dir: dir,
        }
    }

    /// The URL `--logs-clickhouse-url` takes.
    pub fn url(&self) -> String {
        format!(
            "http://logs:{}@127.0.0.1:{}/default",
            Self::PASSWORD,
            self.http_port
        )
    }

    /// A query's answer as text (TabSeparated).
    pub fn query(&self, sql: &str) -> String {
        let output = std::process::Command::new("curl")
            .args(["-sf", "-u", &format!("logs:{}", Self::PASSWORD)])
            .arg("--data-binary")
            .arg(sql)
            .arg(format!("http://127.0.0.1:{}/", self.http_port))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
