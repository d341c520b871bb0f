//! supabase-js compatibility: runs the suites in `tests/js` (node's test
//! runner) against a host this harness starts, so the real client, not our
//! reading of its protocol, decides whether SelfDB is compatible.

use selfdb_tests::{signing_key, workspace_root, Host, HostBuilder, Redis};
use std::process::Command;

fn run_node_suite(host: &Host, file: &str) {
    run_node_suite_with(host, file, &[]);
}

fn run_node_suite_with(host: &Host, file: &str, extra: &[(&str, &str)]) {
    let js = workspace_root().join("tests").join("js");
    assert!(
        js.join("node_modules")
            .join("@supabase")
            .join("supabase-js")
            .exists(),
        "tests/js/node_modules is missing: run `make test` (it runs npm ci)"
    );
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(file)
        .current_dir(&js)
        .env("SELFDB_URL", &host.url)
        .env("SELFDB_ANON_KEY", host.anon_key())
        .env("SELFDB_SERVICE_KEY", host.service_key())
        .env("SELFDB_JWT_SECRET", selfdb_tests::JWT_SECRET)
        .env(
            "SELFDB_DATABASE_URL",
            host.database_url.as_deref().unwrap_or_default(),
        )
        .env("S3_ENDPOINT", &host.env["S3_ENDPOINT"])
        .env("S3_ACCESS_KEY_ID", &host.env["S3_ACCESS_KEY_ID"])
        .env("S3_SECRET_ACCESS_KEY", &host.env["S3_SECRET_ACCESS_KEY"])
        .envs(extra.iter().copied())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "{file} failed:\n{stdout}\n{stderr}\nhost log:\n{}",
        host.stderr()
    );
}

/// Runs a node suite off the async runtime; the host lives until it ends.
async fn run_suite(host: Host, file: &'static str) {
    tokio::task::spawn_blocking(move || run_node_suite(&host, file))
        .await
        .unwrap();
}

#[tokio::test]
async fn supabase_js_auth_flows() {
    let host = Host::serve()
        .await
        .arg("--auth-failed-sign-ins-per-email")
        .arg("3")
        .start();
    run_suite(host, "auth.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_email_confirmation() {
    let host = Host::serve()
        .await
        .arg("--auth-autoconfirm")
        .arg("false")
        .start();
    run_suite(host, "auth_confirm.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_functions() {
    let host = Host::serve()
        .await
        .arg("--js-own-components")
        .arg("false")
        .start();
    run_suite(host, "functions.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_data_api() {
    let host = Host::serve().await.start();
    run_suite(host, "rest.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_es256_tokens() {
    let dir = selfdb_tests::dev_data_dir();
    let key = signing_key(&dir, "ec");
    let host = Host::serve()
        .await
        .arg("--jwt-signing-key")
        .arg(key.display().to_string())
        .start();
    run_suite(host, "auth_asymmetric.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_storage() {
    let host = Host::serve().await.start();
    run_suite(host, "storage.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_realtime() {
    let host = Host::serve().await.start();
    run_suite(host, "realtime.test.mjs").await;
}

#[tokio::test]
async fn supabase_js_realtime_across_two_hosts() {
    let redis = Redis::start();
    let a = Host::serve()
        .await
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    let b = HostBuilder::alongside(&a)
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    tokio::task::spawn_blocking(move || {
        run_node_suite_with(
            &a,
            "realtime_hosts.test.mjs",
            &[("SELFDB_URL_B", b.url.as_str())],
        );
        drop(b);
        drop(redis);
    })
    .await
    .unwrap();
}
