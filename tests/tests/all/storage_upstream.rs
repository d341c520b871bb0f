//! Object bytes in an upstream S3 store (`--storage-backend s3://...`),
//! here SeaweedFS: every S3 operation through boto3 as on local disk, REST
//! uploads inline, single-PUT and multipart upstream, ranges, bytes of
//! replaced objects deleted after the release grace, and a host killed
//! mid-upload leaving nothing upstream once a host runs again.

use reqwest::StatusCode;
use selfdb_tests::{
    eventually, fresh_database, selfdb_binary, Host, HostBuilder, Inventory, RequestExt, SeaweedFs,
};
use std::collections::BTreeSet;
use std::time::Duration;

pub(crate) const BUCKET: &str = "selfdb-objects";
/// How long the host may take to delete released or orphaned bytes.
const COLLECT_WAIT: Duration = Duration::from_secs(60);

/// Test-sized timings: released bytes kept 300 ms, orphans after 2 s.
fn quick_collection() -> [String; 4] {
    [
        "--storage-release-grace-ms".into(),
        "300".into(),
        "--storage-orphan-grace-ms".into(),
        "2000".into(),
    ]
}

fn with_args(mut builder: HostBuilder, args: impl IntoIterator<Item = String>) -> HostBuilder {
    for arg in args {
        builder = builder.arg(arg);
    }
    builder
}

/// Versions whose bytes rows reference (objects and uploaded parts).
async fn referenced_versions(host: &Host) -> BTreeSet<String> {
    host.db()
        .await
        .query(
            "select version from storage.objects \
             where version is not null and version not like 'inline-%' \
             union select version from storage.s3_multipart_uploads_parts",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn versions_upstream(inventory: &Inventory, prefix: &str) -> BTreeSet<String> {
    inventory
        .keys
        .keys()
        .filter_map(|key| {
            key.strip_prefix(&format!("{prefix}/objects/"))
                .and_then(|rest| rest.split('/').nth(1))
                .map(str::to_owned)
        })
        .collect()
}

/// Waits until the upstream prefix holds exactly the bytes rows reference,
/// with no multipart upload left open.
pub(crate) async fn upstream_matches_rows(host: &Host, seaweed: &SeaweedFs, prefix: &str) {
    let deadline = std::time::Instant::now() + COLLECT_WAIT;
    loop {
        let inventory = seaweed.inventory(BUCKET, prefix).await;
        let rows = referenced_versions(host).await;
        let upstream = versions_upstream(&inventory, prefix);
        let stray: Vec<&String> = inventory
            .keys
            .keys()
            .filter(|k| {
                !k.starts_with(&format!("{prefix}/objects/"))
                    && **k != format!("{prefix}/selfdb-instance")
            })
            .collect();
        if rows == upstream && inventory.uploads.is_empty() && stray.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "upstream does not match the rows:\nrows {rows:?}\nupstream {upstream:?}\n\
             other keys {stray:?}\nopen uploads {:?}\nhost log:\n{}",
            inventory.uploads,
            host.stderr()
        );
        // A poll interval: the deadline above decides.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a REST upload (an upsert) to `path` on `host` declaring 64 MiB
/// and sends 24 MiB of it; returns the connection, left open, once the
/// upload is recorded as pending (its first 8 MiB parts are going upstream
/// in a multipart upload).
pub(crate) async fn start_large_upload(host: &Host, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = host.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\napikey: {k}\r\nauthorization: Bearer {k}\r\n\
         x-upsert: true\r\ncontent-length: {}\r\n\r\n",
        64 << 20,
        k = host.service_key()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![1u8; 1 << 20];
    for _ in 0..24 {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.flush().await.unwrap();
    let db = host.db().await;
    let pending = eventually(COLLECT_WAIT, || async {
        db.query_one("select count(*) from storage.pending_blobs", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            > 0
    })
    .await;
    assert!(pending, "the upload to {path} never started upstream");
    stream
}

/// The whole boto3 suite (every S3 operation, multipart with 5 MiB parts,
/// copies, ranges, conditions, ACLs) on a host whose bytes are upstream;
/// afterwards the upstream bucket holds exactly what the rows reference.
#[tokio::test]
async fn boto3_suite_passes_with_bytes_upstream() {
    let seaweed = SeaweedFs::start(BUCKET).await;
    let prefix = "suite";
    let host = with_args(
        Host::serve().await,
        seaweed
            .host_args(BUCKET, prefix)
            .into_iter()
            .chain(quick_collection()),
    )
    .start();
    let health = host.get("/health").fetch_json().await;
    assert_eq!(
        health["storage"]["backend"],
        format!("s3://{BUCKET}/{prefix} at {}", seaweed.endpoint),
        "{health}"
    );
    crate::storage_s3::run_boto3_suite(&host).await;
    upstream_matches_rows(&host, &seaweed, prefix).await;
}

/// REST uploads of each size class, ranged downloads, copies, overwrites
/// and deletes; then a host killed mid-upload, a stray key, and a restart
/// that leaves upstream exactly what the rows reference.
#[tokio::test]
async fn rest_objects_and_a_crash_mid_upload() {
    let seaweed = SeaweedFs::start(BUCKET).await;
    let prefix = "rest";
    let upstream_args = || {
        seaweed
            .host_args(BUCKET, prefix)
            .into_iter()
            .chain(quick_collection())
    };
    let mut host = with_args(Host::serve().await, upstream_args()).start();
    host.create_bucket("media", false).await;
    let small = vec![3u8; 4096];
    let medium: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 249) as u8).collect();
    for (name, bytes) in [
        ("small.bin", &small),
        ("medium.bin", &medium),
        ("large.bin", &large),
    ] {
        let status = host
            .post(&format!("/storage/v1/object/media/{name}"))
            .service_role(&host)
            .body(bytes.clone())
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK, "upload {name}");
        let (status, got) = host
            .get(&format!("/storage/v1/object/media/{name}"))
            .service_role(&host)
            .fetch_bytes()
            .await;
        assert_eq!(status, StatusCode::OK, "download {name}");
        assert!(got == *bytes, "{name} came back different");
    }
    // The small object is inline; the other two are one key each, the
    // large one assembled from three multipart parts.
    let inventory = seaweed
        .inventory(BUCKET, &format!("{prefix}/objects/"))
        .await;
    let mut sizes: Vec<u64> = inventory.keys.values().copied().collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![300_000, 20 << 20], "{inventory:?}");
    assert!(inventory.uploads.is_empty(), "{inventory:?}");

    let (status, part) = host
        .get("/storage/v1/object/media/large.bin")
        .service_role(&host)
        .header("range", "bytes=8388600-8388615")
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, large[8_388_600..8_388_616]);

    let copied = host
        .post("/storage/v1/object/copy")
        .service_role(&host)
        .json(&serde_json::json!({"bucketId": "media", "sourceKey": "medium.bin", "destinationKey": "copy.bin"}))
        .fetch_status()
        .await;
    assert_eq!(copied, StatusCode::OK);
    let (_, got) = host
        .get("/storage/v1/object/media/copy.bin")
        .service_role(&host)
        .fetch_bytes()
        .await;
    assert!(got == medium, "the copy came back different");

    // Overwrite and delete: the old bytes go once the release grace passes.
    let replaced = host
        .put("/storage/v1/object/media/medium.bin")
        .service_role(&host)
        .body(vec![9u8; 100_000])
        .fetch_status()
        .await;
    assert_eq!(replaced, StatusCode::OK);
    let deleted = host
        .delete("/storage/v1/object/media/copy.bin")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(deleted, StatusCode::OK);
    upstream_matches_rows(&host, &seaweed, prefix).await;

    // Declare 64 MiB, send 24 MiB (two parts go upstream), and kill the host
    // while it waits for the rest.
    let stream = start_large_upload(&host, "/storage/v1/object/media/large.bin").await;
    let db = host.db().await;
    host.kill();
    drop(stream);
    let open = seaweed.inventory(BUCKET, prefix).await;
    assert!(
        !open.uploads.is_empty(),
        "a multipart upload should be left open: {open:?}"
    );
    // Something else wrote a key where only SelfDB's versions belong.
    seaweed
        .put(
            BUCKET,
            &format!("{prefix}/objects/ab/ab0123456789abcdef0123456789abcd"),
            "never committed",
        )
        .await;

    let host = with_args(
        HostBuilder::for_restart(&host, host.database_url.as_deref().unwrap()),
        upstream_args(),
    )
    .start();
    upstream_matches_rows(&host, &seaweed, prefix).await;
    let left = db
        .query_one("select count(*) from storage.pending_blobs", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(left, 0, "pending uploads are forgotten once aborted");
    let (status, got) = host
        .get("/storage/v1/object/media/large.bin")
        .service_role(&host)
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == large, "the object the crash was overwriting changed");

    // Another instance (another database) on the same prefix would take
    // this one's objects for orphans: it refuses to start.
    let other = fresh_database().await;
    let mut command = std::process::Command::new(selfdb_binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--s3-port", "0"])
        .args(["--database-url", &other])
        .args(seaweed.host_args(BUCKET, prefix))
        .arg("--data-dir")
        .arg(host.data_dir.join("other-instance"))
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("the second instance should exit")
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("belongs to another SelfDB instance"),
        "{stderr}"
    );
}
