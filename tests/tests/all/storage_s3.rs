//! The S3 endpoint driven by unmodified clients: boto3 through every S3
//! operation (`tests/s3/boto3_suite.py`, with users' keys under storage
//! policies), and aws-cli, s3cmd and rclone as installed from Debian.
//! storage-js is in `supabase_js.rs`.

use reqwest::StatusCode;
use selfdb_tests::{workspace_root, Host, RequestExt};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

pub(crate) use selfdb_tests::python_with_boto3;

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
    run_boto3_suite(&host).await;
}

/// `tests/s3/boto3_suite.py` against `host`, with the users, keys, buckets
/// and policies it expects.
pub(crate) async fn run_boto3_suite(host: &Host) {
    let alice = host.create_user("alice-s3@example.com").await;
    let bob = host.create_user("bob-s3@example.com").await;
    let (alice_id, alice_secret) = host.create_s3_key(Some(&alice)).await;
    let (bob_id, bob_secret) = host.create_s3_key(Some(&bob)).await;
    let (revoked_id, revoked_secret) = host.create_s3_key(Some(&bob)).await;
    let revoke = host
        .delete(&format!("/api/v1/s3/keys/{revoked_id}"))
        .service_role(host)
        .fetch_status()
        .await;
    assert_eq!(revoke, StatusCode::NO_CONTENT);
    host.create_bucket("public-bucket", true).await;
    host.create_bucket("shared", false).await;
    let limited = host
        .post("/storage/v1/bucket")
        .service_role(host)
        .json(&json!({"id": "limited", "name": "limited", "file_size_limit": 1000}))
        .fetch_status()
        .await;
    assert_eq!(limited, StatusCode::OK);
    host.db()
        .await
        .batch_execute(
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
    let api_url = host.url_of("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python_with_boto3())
            .arg(suite)
            .env("S3_ENDPOINT", &env["S3_ENDPOINT"])
            .env("API_URL", &api_url)
            .env("S3_ACCESS_KEY_ID", &env["S3_ACCESS_KEY_ID"])
            .env("S3_SECRET_ACCESS_KEY", &env["S3_SECRET_ACCESS_KEY"])
            .env("ALICE_KEY_ID", alice_id)
            .env("ALICE_SECRET", alice_secret)
            .env("BOB_USER_ID", &bob)
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
