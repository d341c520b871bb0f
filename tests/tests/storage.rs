//! Object storage end to end: the S3 endpoint driven by unmodified clients
//! (boto3, aws-cli, s3cmd, rclone), the admin API for S3 keys, and what a
//! crash mid-upload leaves behind. storage-js is in `supabase_js.rs`.

use reqwest::StatusCode;
use selfdb_tests::{psql, workspace_root, Host, HostBuilder};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

fn service_headers(host: &Host) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    let key = host.service_key();
    headers.insert("apikey", key.parse().unwrap());
    headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
    headers
}

async fn create_user(host: &Host, email: &str) -> String {
    let response = client()
        .post(format!("{}/auth/v1/admin/users", host.url))
        .headers(service_headers(host))
        .json(&json!({"email": email, "password": "correct horse 1", "email_confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let user: Value = response.json().await.unwrap();
    user["id"].as_str().unwrap().to_owned()
}

async fn create_key(host: &Host, user_id: Option<&str>) -> (String, String) {
    let response = client()
        .post(format!("{}/api/v1/s3/keys", host.url))
        .headers(service_headers(host))
        .json(&json!({"user_id": user_id, "description": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let key: Value = response.json().await.unwrap();
    (
        key["access_key_id"].as_str().unwrap().to_owned(),
        key["secret_access_key"].as_str().unwrap().to_owned(),
    )
}

async fn create_bucket(host: &Host, id: &str, public: bool) {
    let response = client()
        .post(format!("{}/storage/v1/bucket", host.url))
        .headers(service_headers(host))
        .json(&json!({"id": id, "name": id, "public": public}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "create bucket {id}");
}

/// The Python that has boto3: the one on PATH, else Debian's.
fn python_with_boto3() -> String {
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

fn check(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn boto3_drives_every_s3_operation() {
    let host = Host::serve().await.start();
    let alice = create_user(&host, "alice-s3@example.com").await;
    let bob = create_user(&host, "bob-s3@example.com").await;
    let (alice_id, alice_secret) = create_key(&host, Some(&alice)).await;
    let (bob_id, bob_secret) = create_key(&host, Some(&bob)).await;
    let (revoked_id, revoked_secret) = create_key(&host, Some(&bob)).await;
    let revoke = client()
        .delete(format!("{}/api/v1/s3/keys/{revoked_id}", host.url))
        .headers(service_headers(&host))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    create_bucket(&host, "public-bucket", true).await;
    create_bucket(&host, "shared", false).await;
    let limited = client()
        .post(format!("{}/storage/v1/bucket", host.url))
        .headers(service_headers(&host))
        .json(&json!({"id": "limited", "name": "limited", "file_size_limit": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::OK);
    let db = psql(host.database_url.as_deref().unwrap()).await;
    db.batch_execute(
        "create policy own_read on storage.objects for select to authenticated \
             using (bucket_id = 'shared' and owner_id = auth.uid()::text); \
         create policy own_insert on storage.objects for insert to authenticated \
             with check (bucket_id = 'shared' and owner_id = auth.uid()::text); \
         create policy own_update on storage.objects for update to authenticated \
             using (bucket_id = 'shared' and owner_id = auth.uid()::text); \
         create policy own_delete on storage.objects for delete to authenticated \
             using (bucket_id = 'shared' and owner_id = auth.uid()::text);",
    )
    .await
    .unwrap();
    let suite = workspace_root().join("tests/s3/boto3_suite.py");
    let env = host.env.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python_with_boto3())
            .arg(suite)
            .env("S3_ENDPOINT", &env["S3_ENDPOINT"])
            .env("S3_ACCESS_KEY_ID", &env["S3_ACCESS_KEY_ID"])
            .env("S3_SECRET_ACCESS_KEY", &env["S3_SECRET_ACCESS_KEY"])
            .env("ALICE_KEY_ID", alice_id)
            .env("ALICE_SECRET", alice_secret)
            .env("BOB_KEY_ID", bob_id)
            .env("BOB_SECRET", bob_secret)
            .env("REVOKED_KEY_ID", revoked_id)
            .env("REVOKED_SECRET", revoked_secret)
            .env("PUBLIC_BUCKET", "public-bucket")
            .env("SHARED_BUCKET", "shared")
            .env("LIMITED_BUCKET", "limited")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "boto3 suite failed:\n{stderr}\nhost log:\n{}",
        host.stderr()
    );
}

#[tokio::test]
async fn s3_key_admin_needs_the_service_key() {
    let host = Host::serve().await.start();
    let anon = client()
        .get(format!("{}/api/v1/s3/keys", host.url))
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::FORBIDDEN);
    let body: Value = anon.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let unknown_user = client()
        .post(format!("{}/api/v1/s3/keys", host.url))
        .headers(service_headers(&host))
        .json(&json!({"user_id": "00000000-0000-0000-0000-000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_user.status(), StatusCode::NOT_FOUND);
    let bad_json = client()
        .post(format!("{}/api/v1/s3/keys", host.url))
        .headers(service_headers(&host))
        .body("{\"user_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    let (id, _) = create_key(&host, None).await;
    let listed: Value = client()
        .get(format!("{}/api/v1/s3/keys", host.url))
        .headers(service_headers(&host))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["access_key_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()));
    assert!(ids.contains(&host.env["S3_ACCESS_KEY_ID"].as_str()));
    assert!(
        listed["keys"][0].get("secret_access_key").is_none(),
        "secrets are shown once, at creation"
    );
    let missing = client()
        .delete(format!("{}/api/v1/s3/keys/NOSUCHKEY", host.url))
        .headers(service_headers(&host))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// aws-cli, s3cmd and rclone as installed from Debian, each against the
/// endpoint with the service-role key `selfdb` printed.
#[tokio::test]
async fn command_line_clients_work_unmodified() {
    let host = Host::serve().await.start();
    let env = host.env.clone();
    let work = host.data_dir.join("cli");
    tokio::task::spawn_blocking(move || run_cli_clients(&env, &work))
        .await
        .unwrap();
}

fn run_cli_clients(env: &std::collections::HashMap<String, String>, work: &Path) {
    let endpoint = &env["S3_ENDPOINT"];
    let key = &env["S3_ACCESS_KEY_ID"];
    let secret = &env["S3_SECRET_ACCESS_KEY"];
    let local = work.join("local");
    std::fs::create_dir_all(local.join("nested")).unwrap();
    std::fs::write(local.join("one.txt"), b"first file").unwrap();
    std::fs::write(local.join("nested/two.txt"), b"second file").unwrap();
    std::fs::write(local.join("space name.txt"), b"third file").unwrap();

    let aws = |args: &[&str]| {
        let output = Command::new("aws")
            .arg("--endpoint-url")
            .arg(endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("run aws");
        check(output, &format!("aws {args:?}"))
    };
    aws(&["s3", "mb", "s3://cli"]);
    aws(&[
        "s3",
        "cp",
        "--no-progress",
        local.join("one.txt").to_str().unwrap(),
        "s3://cli/single/one.txt",
    ]);
    aws(&[
        "s3",
        "sync",
        "--no-progress",
        local.to_str().unwrap(),
        "s3://cli/synced/",
    ]);
    let listing = aws(&["s3", "ls", "--recursive", "s3://cli/synced/"]);
    for name in [
        "synced/one.txt",
        "synced/nested/two.txt",
        "synced/space name.txt",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    let top = aws(&["s3", "ls", "s3://cli/synced/"]);
    assert!(top.contains("PRE nested/"), "{top}");
    // A second sync has nothing to do.
    let again = aws(&[
        "s3",
        "sync",
        "--no-progress",
        local.to_str().unwrap(),
        "s3://cli/synced/",
    ]);
    assert!(
        again.trim().is_empty(),
        "nothing should be copied again: {again}"
    );
    let back = work.join("back");
    aws(&[
        "s3",
        "sync",
        "--no-progress",
        "s3://cli/synced/",
        back.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(back.join("nested/two.txt")).unwrap(),
        b"second file"
    );
    assert_eq!(
        std::fs::read(back.join("space name.txt")).unwrap(),
        b"third file"
    );
    aws(&["s3", "rm", "s3://cli/single/one.txt"]);
    aws(&["s3", "rm", "--recursive", "s3://cli/synced/"]);
    assert!(aws(&["s3", "ls", "--recursive", "s3://cli/"])
        .trim()
        .is_empty());

    // s3cmd, with its configuration on the command line only.
    let host_port = endpoint.trim_start_matches("http://");
    let s3cmd = |args: &[&str]| {
        let output = Command::new("s3cmd")
            .args([
                "--config=/dev/null",
                "--no-ssl",
                "--host",
                host_port,
                "--host-bucket",
                host_port,
                "--access_key",
                key,
                "--secret_key",
                secret,
                "--region",
                "us-east-1",
            ])
            .args(args)
            .output()
            .expect("run s3cmd");
        check(output, &format!("s3cmd {args:?}"))
    };
    s3cmd(&["mb", "s3://viacmd"]);
    s3cmd(&[
        "put",
        local.join("one.txt").to_str().unwrap(),
        "s3://viacmd/dir/one.txt",
    ]);
    let listed = s3cmd(&["ls", "s3://viacmd/dir/"]);
    assert!(listed.contains("s3://viacmd/dir/one.txt"), "{listed}");
    let fetched = work.join("from-s3cmd.txt");
    s3cmd(&[
        "get",
        "--force",
        "s3://viacmd/dir/one.txt",
        fetched.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&fetched).unwrap(), b"first file");
    s3cmd(&["del", "s3://viacmd/dir/one.txt"]);
    s3cmd(&["rb", "s3://viacmd"]);

    // rclone, with an on-the-fly remote.
    let remote = format!(
        ":s3,provider=Other,endpoint='{endpoint}',access_key_id={key},secret_access_key={secret},region=us-east-1:"
    );
    let rclone = |args: &[String]| {
        let output = Command::new("rclone")
            .args(args)
            .env("RCLONE_CONFIG", "/dev/null")
            // The AWS SDK inside rclone refuses a custom CA bundle on a
            // plain-HTTP transport; some machines set one for all tools.
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("run rclone");
        check(output, &format!("rclone {args:?}"))
    };
    rclone(&["mkdir".into(), format!("{remote}viarclone")]);
    rclone(&[
        "copy".into(),
        local.to_str().unwrap().into(),
        format!("{remote}viarclone/tree"),
    ]);
    let files = rclone(&["lsf".into(), "-R".into(), format!("{remote}viarclone/tree")]);
    for name in ["one.txt", "nested/two.txt", "space name.txt"] {
        assert!(
            files.lines().any(|l| l == name),
            "{name} missing from:\n{files}"
        );
    }
    let cat = rclone(&[
        "cat".into(),
        format!("{remote}viarclone/tree/nested/two.txt"),
    ]);
    assert_eq!(cat, "second file");
    rclone(&[
        "check".into(),
        local.to_str().unwrap().into(),
        format!("{remote}viarclone/tree"),
    ]);
    rclone(&["purge".into(), format!("{remote}viarclone")]);
}

/// SIGKILL while an overwrite streams in: after a restart the old object is
/// whole, and the half-written temp file is gone.
#[tokio::test]
async fn crash_mid_upload_leaves_the_old_object() {
    use tokio::io::AsyncWriteExt;
    let mut host = Host::serve().await.start();
    create_bucket(&host, "crash", false).await;
    let key_url = format!("{}/storage/v1/object/crash/doc.bin", host.url);
    let original = vec![7u8; 300_000];
    let put = client()
        .post(&key_url)
        .headers(service_headers(&host))
        .body(original.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    // Declare 64 MiB, send 8 MiB, and kill the host while it waits for more.
    let addr = host.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /storage/v1/object/crash/doc.bin HTTP/1.1\r\nhost: {addr}\r\napikey: {k}\r\nauthorization: Bearer {k}\r\nx-upsert: true\r\ncontent-length: {}\r\n\r\n",
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
    let started = selfdb_tests::wait_until(std::time::Duration::from_secs(10), || {
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
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();

    // Inline bytes whose row went without the release trigger.
    let database_url = host.database_url.clone().unwrap();
    let db = psql(&database_url).await;
    db.batch_execute("insert into storage.object_data values ('inline-orphan', 'lost')")
        .await
        .unwrap();

    let restarted = HostBuilder::for_restart(&host, &database_url).start();
    let collected =
        selfdb_tests::wait_until(std::time::Duration::from_secs(10), || !orphan.exists());
    assert!(collected, "an unreferenced file survives the restart");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left: i64 = db
            .query_one("select count(*) from storage.object_data", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "unreferenced inline bytes survive the restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        walk(&tmp),
        0,
        "temp files of the interrupted upload are removed at start"
    );
    let got = client()
        .get(key_url.replace(&host.url, &restarted.url))
        .headers(service_headers(&restarted))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().to_vec(), original);
}

/// Replaced and deleted objects give their disk space back.
#[tokio::test]
async fn replaced_and_deleted_files_are_removed_from_disk() {
    let host = Host::serve().await.start();
    create_bucket(&host, "gc", false).await;
    let url = format!("{}/storage/v1/object/gc/file.bin", host.url);
    for round in 0..3u8 {
        let response = client()
            .post(&url)
            .headers(service_headers(&host))
            .header("x-upsert", "true")
            .body(vec![round; 10_000])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let objects = host.data_dir.join("storage/objects");
    let count_files = || walk(&objects);
    let one_left =
        selfdb_tests::wait_until(std::time::Duration::from_secs(10), || count_files() == 1);
    assert!(
        one_left,
        "replaced versions stay on disk: {} files",
        count_files()
    );
    let deleted = client()
        .delete(&url)
        .headers(service_headers(&host))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let none_left =
        selfdb_tests::wait_until(std::time::Duration::from_secs(10), || count_files() == 0);
    assert!(none_left, "a deleted object's file stays on disk");
}

fn walk(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                1
            }
        })
        .sum()
}

/// Objects up to 8 KiB live in `storage.object_data`, committed with their
/// row; larger ones are files. Reads, ranges, copies, moves, overwrites
/// and deletes work the same for both, and request roles cannot reach the
/// inline bytes directly.
#[tokio::test]
async fn small_objects_live_in_postgres_beside_their_row() {
    let host = Host::serve().await.start();
    create_bucket(&host, "tiny", false).await;
    let db = psql(host.database_url.as_deref().unwrap()).await;
    let object_url = |key: &str| format!("{}/storage/v1/object/tiny/{key}", host.url);
    let upload = |key: &str, bytes: Vec<u8>| {
        let request = client()
            .post(object_url(key))
            .headers(service_headers(&host))
            .header("x-upsert", "true")
            .body(bytes);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    let download = |key: &str, range: Option<&str>| {
        let mut request = client()
            .get(object_url(key))
            .headers(service_headers(&host));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.bytes().await.unwrap().to_vec())
        }
    };
    let inline_versions = || async {
        let rows = db
            .query(
                "select o.name from storage.objects o \
                 join storage.object_data d on d.version = o.version order by o.name",
                &[],
            )
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let stored: i64 = db
            .query_one("select count(*) from storage.object_data", &[])
            .await
            .unwrap()
            .get(0);
        (names, stored)
    };
    let objects_dir = host.data_dir.join("storage/objects");
    let pattern = |n: usize, seed: u8| -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    };

    let small = pattern(8192, 1);
    upload("small.bin", small.clone()).await;
    upload("large.bin", pattern(8193, 2)).await;
    assert_eq!(
        inline_versions().await,
        (vec!["small.bin".to_owned()], 1),
        "8 KiB is inline, one byte more is not"
    );
    assert_eq!(walk(&objects_dir), 1, "only the larger object has a file");

    assert_eq!(
        download("small.bin", None).await,
        (StatusCode::OK, small.clone())
    );
    assert_eq!(
        download("small.bin", Some("bytes=100-199")).await,
        (StatusCode::PARTIAL_CONTENT, small[100..200].to_vec())
    );
    assert_eq!(
        download("small.bin", Some("bytes=-5")).await,
        (StatusCode::PARTIAL_CONTENT, small[8187..].to_vec())
    );

    // Overwrite: the old bytes go in the same transaction.
    let replaced = pattern(5000, 3);
    upload("small.bin", replaced.clone()).await;
    assert_eq!(inline_versions().await, (vec!["small.bin".to_owned()], 1));
    assert_eq!(
        download("small.bin", None).await,
        (StatusCode::OK, replaced.clone())
    );

    // A copy gets bytes of its own; a move keeps them.
    let copied = client()
        .post(format!("{}/storage/v1/object/copy", host.url))
        .headers(service_headers(&host))
        .json(&json!({"bucketId": "tiny", "sourceKey": "small.bin", "destinationKey": "copy.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), StatusCode::OK);
    let moved = client()
        .post(format!("{}/storage/v1/object/move", host.url))
        .headers(service_headers(&host))
        .json(&json!({"bucketId": "tiny", "sourceKey": "copy.bin", "destinationKey": "moved.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    assert_eq!(
        inline_versions().await,
        (vec!["moved.bin".to_owned(), "small.bin".to_owned()], 2)
    );
    assert_eq!(
        download("moved.bin", None).await,
        (StatusCode::OK, replaced.clone())
    );
    assert_eq!(download("copy.bin", None).await.0, StatusCode::NOT_FOUND);

    // Growing past the threshold moves the object to a file, and back.
    upload("small.bin", pattern(20_000, 4)).await;
    assert_eq!(inline_versions().await, (vec!["moved.bin".to_owned()], 1));
    assert_eq!(
        download("small.bin", None).await,
        (StatusCode::OK, pattern(20_000, 4))
    );
    upload("large.bin", pattern(10, 5)).await;
    assert_eq!(
        download("large.bin", None).await,
        (StatusCode::OK, pattern(10, 5))
    );
    assert_eq!(
        inline_versions().await,
        (vec!["large.bin".to_owned(), "moved.bin".to_owned()], 2)
    );
    let one_file = selfdb_tests::wait_until(std::time::Duration::from_secs(10), || {
        walk(&objects_dir) == 1
    });
    assert!(
        one_file,
        "replaced files stay: {} files",
        walk(&objects_dir)
    );

    // Deleting an object deletes its inline bytes with it.
    let deleted = client()
        .delete(object_url("moved.bin"))
        .headers(service_headers(&host))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(inline_versions().await, (vec!["large.bin".to_owned()], 1));

    // A user's uploads store their bytes through the authenticator pool;
    // one that RLS refuses, or a create that meets an existing key, leaves
    // no bytes behind.
    db.batch_execute(
        "create policy tiny_insert on storage.objects for insert to authenticated \
             with check (bucket_id = 'tiny' and owner_id = auth.uid()::text and name like 'mine/%'); \
         create policy tiny_read on storage.objects for select to authenticated \
             using (bucket_id = 'tiny' and owner_id = auth.uid()::text);",
    )
    .await
    .unwrap();
    create_user(&host, "inline@example.com").await;
    let session: Value = client()
        .post(format!("{}/auth/v1/token?grant_type=password", host.url))
        .header("apikey", host.anon_key())
        .json(&json!({"email": "inline@example.com", "password": "correct horse 1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let user_upload = |key: &str, bytes: Vec<u8>| {
        let request = client()
            .post(object_url(key))
            .header("apikey", host.anon_key())
            .bearer_auth(&token)
            .body(bytes);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        user_upload("mine/a.bin", pattern(300, 6)).await,
        StatusCode::OK
    );
    assert_eq!(inline_versions().await.1, 2);
    let mine = client()
        .get(object_url("mine/a.bin"))
        .header("apikey", host.anon_key())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    assert_eq!(mine.bytes().await.unwrap().to_vec(), pattern(300, 6));
    assert_eq!(
        user_upload("mine/a.bin", pattern(300, 7)).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        user_upload("theirs/b.bin", pattern(300, 8)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(inline_versions().await.1, 2, "a refused upload left bytes");
    assert_eq!(download("mine/a.bin", None).await.1, pattern(300, 6));

    // Request roles hold no privilege on the inline bytes.
    for role in ["anon", "authenticated", "service_role"] {
        for statement in [
            "select count(*) from storage.object_data",
            "insert into storage.object_data values ('inline-x', '')",
            "delete from storage.object_data",
        ] {
            let err = db
                .batch_execute(&format!("begin; set local role {role}; {statement}"))
                .await
                .expect_err("a request role reached storage.object_data");
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role}: {statement}"
            );
            db.batch_execute("rollback").await.unwrap();
        }
    }

    // HEAD answers from the row: sizes and ranges as GET would send them,
    // without loading the bytes, so it answers even with them gone.
    let head = |key: &str, range: Option<&str>| {
        let mut request = client()
            .head(object_url(key))
            .headers(service_headers(&host));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        async move {
            let response = request.send().await.unwrap();
            let length = response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (response.status(), length)
        }
    };
    assert_eq!(head("large.bin", None).await, (StatusCode::OK, Some(10)));
    assert_eq!(
        head("small.bin", None).await,
        (StatusCode::OK, Some(20_000))
    );
    assert_eq!(
        head("small.bin", Some("bytes=100-199")).await,
        (StatusCode::PARTIAL_CONTENT, Some(100))
    );
    assert_eq!(head("nope.bin", None).await.0, StatusCode::NOT_FOUND);
    db.batch_execute(
        "delete from storage.object_data d using storage.objects o \
         where o.version = d.version and o.name = 'large.bin'",
    )
    .await
    .unwrap();
    assert_eq!(head("large.bin", None).await, (StatusCode::OK, Some(10)));
    assert_eq!(
        download("large.bin", None).await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "GET still needs the bytes"
    );
}

/// Request roles may write `storage.objects` rows (as on Supabase), which a
/// user function's SQL can do. A row of theirs must not take over a version
/// another row holds: it would serve that object's bytes, and deleting it
/// would release them.
#[tokio::test]
async fn a_row_cannot_take_over_another_objects_bytes() {
    let host = Host::serve().await.start();
    create_bucket(&host, "guarded", false).await;
    let mut db = psql(host.database_url.as_deref().unwrap()).await;
    let object_url = |key: &str| format!("{}/storage/v1/object/guarded/{key}", host.url);
    let small: Vec<u8> = (0..100u8).collect();
    let large: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    for (key, bytes) in [
        ("victim-small.bin", small.clone()),
        ("victim-large.bin", large.clone()),
        ("mine.bin", b"mine".to_vec()),
    ] {
        let response = client()
            .post(object_url(key))
            .headers(service_headers(&host))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "upload {key}");
    }
    db.batch_execute(
        "create policy guarded_mine on storage.objects for all to authenticated \
         using (bucket_id = 'guarded' and name like 'mine%') \
         with check (bucket_id = 'guarded' and name like 'mine%')",
    )
    .await
    .unwrap();
    let version_of = |name: &'static str| {
        let db = &db;
        async move {
            db.query_one(
                "select version from storage.objects where bucket_id = 'guarded' and name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    let victims = [
        version_of("victim-small.bin").await,
        version_of("victim-large.bin").await,
    ];
    assert!(victims[0].starts_with("inline-") && !victims[1].starts_with("inline-"));

    let attempts = [
        "update storage.objects set version = $1 where bucket_id = 'guarded' and name = 'mine.bin'",
        "insert into storage.objects (bucket_id, name, version) values ('guarded', 'mine-2.bin', $1)",
    ];
    for victim in &victims {
        for attempt in attempts {
            let tx = db.transaction().await.unwrap();
            tx.batch_execute("set local role authenticated")
                .await
                .unwrap();
            let err = tx
                .execute(attempt, &[victim])
                .await
                .expect_err("taking over another row's version is refused");
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
                "{attempt}: {err}"
            );
        }
    }
    // The policy does let the role write its own row: the refusal above
    // came from the version, not from row-level security.
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("set local role authenticated")
        .await
        .unwrap();
    let touched = tx
        .execute(
            "update storage.objects set user_metadata = '{\"a\": 1}' \
             where bucket_id = 'guarded' and name = 'mine.bin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(touched, 1);
    let deleted = tx
        .execute(
            "delete from storage.objects where bucket_id = 'guarded' and name = 'mine.bin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    tx.commit().await.unwrap();

    for (key, bytes) in [("victim-small.bin", small), ("victim-large.bin", large)] {
        let response = client()
            .get(object_url(key))
            .headers(service_headers(&host))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{key}");
        assert_eq!(response.bytes().await.unwrap().to_vec(), bytes, "{key}");
    }
}
