//! Runs the supabase-js suites in `tests/js` (node's test runner) against a
//! host this harness starts, so the real client, not our reading of its
//! protocol, decides whether SelfDB is compatible.

use selfdb_tests::{workspace_root, Host};
use std::process::Command;

fn run_node_suite(host: &Host, file: &str) {
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
        .env(
            "SELFDB_DATABASE_URL",
            host.database_url.as_deref().unwrap_or_default(),
        )
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

#[tokio::test]
async fn supabase_js_auth_flows() {
    let host = Host::serve()
        .await
        .arg("--auth-failed-sign-ins-per-email")
        .arg("3")
        .start();
    tokio::task::spawn_blocking(move || run_node_suite(&host, "auth.test.mjs"))
        .await
        .unwrap();
}

#[tokio::test]
async fn supabase_js_email_confirmation() {
    let host = Host::serve()
        .await
        .arg("--auth-autoconfirm")
        .arg("false")
        .start();
    tokio::task::spawn_blocking(move || run_node_suite(&host, "auth_confirm.test.mjs"))
        .await
        .unwrap();
}

#[tokio::test]
async fn supabase_js_data_api() {
    let host = Host::serve().await.start();
    tokio::task::spawn_blocking(move || run_node_suite(&host, "rest.test.mjs"))
        .await
        .unwrap();
}
