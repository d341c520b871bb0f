//! Object files on disk: what a crash mid-upload leaves behind (the old
//! object whole, the temp file and unreferenced files and inline bytes
//! collected at the next start), and replaced or deleted objects giving
//! their disk space back.

use reqwest::StatusCode;
use selfdb_tests::{eventually, files_below, wait_until, Host, HostBuilder, RequestExt};
use std::time::Duration;

/// How long the host may take to collect a released or orphaned file.
const COLLECT_WAIT: Duration = Duration::from_secs(10);

/// SIGKILL while an overwrite streams in: after a restart the old object is
/// whole, and the half-written temp file is gone.
#[tokio::test]
async fn crash_mid_upload_leaves_the_old_object() {
    use tokio::io::AsyncWriteExt;
    let mut host = Host::serve().await.start();
    host.create_bucket("crash", false).await;
    let key_path = "/storage/v1/object/crash/doc.bin";
    let original = vec![7u8; 300_000];
    let put = host
        .post(key_path)
        .service_role(&host)
        .body(original.clone())
        .fetch_status()
        .await;
    assert_eq!(put, StatusCode::OK);

    // Declare 64 MiB, send 8 MiB, and kill the host while it waits for more.
    let addr = host.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {key_path} HTTP/1.1\r\nhost: {addr}\r\napikey: {k}\r\nauthorization: Bearer {k}\r\nx-upsert: true\r\ncontent-length: {}\r\n\r\n",
        64 << 20,
        k = host.service_key()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![1u8; 1 << 20];
    for _ in 0..8 {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.flush().await.unwrap();
    let tmp = host.data_dir.join("storage/tmp");
    let started = wait_until(COLLECT_WAIT, || {
        std::fs::read_dir(&tmp)
            .map(|shards| {
                shards.flatten().any(|shard| {
                    std::fs::read_dir(shard.path()).is_ok_and(|files| {
                        files
                            .flatten()
                            .any(|f| f.metadata().is_ok_and(|m| m.len() > 0))
                    })
                })
            })
            .unwrap_or(false)
    });
    assert!(started, "the upload never reached the temp dir");
    host.kill();
    drop(stream);

    // A file placed just before a crash, whose row never committed.
    let orphan_dir = host.data_dir.join("storage/objects/ab");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    let orphan = orphan_dir.join("ab0123456789abcdef0123456789abcd");
    std::fs::write(&orphan, b"never committed").unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();

    // Inline bytes whose row went without the release trigger.
    let database_url = host.database_url.clone().unwrap();
    let db = host.db().await;
    db.batch_execute("insert into storage.object_data values ('inline-orphan', 'lost')")
        .await
        .unwrap();

    let restarted = HostBuilder::for_restart(&host, &database_url).start();
    let collected = wait_until(COLLECT_WAIT, || !orphan.exists());
    assert!(collected, "an unreferenced file survives the restart");
    let inline_collected = eventually(COLLECT_WAIT, || async {
        let left: i64 = db
            .query_one("select count(*) from storage.object_data", &[])
            .await
            .unwrap()
            .get(0);
        left == 0
    })
    .await;
    assert!(
        inline_collected,
        "unreferenced inline bytes survive the restart"
    );
    assert!(
        wait_until(COLLECT_WAIT, || files_below(&tmp) == 0),
        "temp files of the interrupted upload are removed at start: {} left",
        files_below(&tmp)
    );
    let (status, bytes) = restarted
        .get(key_path)
        .service_role(&restarted)
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, original);
}

/// Replaced and deleted objects give their disk space back.
#[tokio::test]
async fn replaced_and_deleted_files_are_removed_from_disk() {
    let host = Host::serve().await.start();
    host.create_bucket("gc", false).await;
    let path = "/storage/v1/object/gc/file.bin";
    for round in 0..3u8 {
        let status = host
            .post(path)
            .service_role(&host)
            .header("x-upsert", "true")
            .body(vec![round; 10_000])
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let objects = host.data_dir.join("storage/objects");
    let count_files = || files_below(&objects);
    let one_left = wait_until(COLLECT_WAIT, || count_files() == 1);
    assert!(
        one_left,
        "replaced versions stay on disk: {} files",
        count_files()
    );
    let deleted = host.delete(path).service_role(&host).fetch_status().await;
    assert_eq!(deleted, StatusCode::OK);
    let none_left = wait_until(COLLECT_WAIT, || count_files() == 0);
    assert!(none_left, "a deleted object's file stays on disk");
}
