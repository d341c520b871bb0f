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
        .env("S3_ENDPOINT", &host.env["S3_ENDPOINT"])
        .env("S3_ACCESS_KEY_ID", &host.env["S3_ACCESS_KEY_ID"])
        .env("S3_SECRET_ACCESS_KEY", &host.env["S3_SECRET_ACCESS_KEY"])
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
async fn supabase_js_data_api() {
    let host = Host::serve().await.start();
    run_suite(host, "rest.test.mjs").await;
}

/// A private key made by openssl in `dir`: `ec` (P-256, PKCS#8) or `rsa`.
fn signing_key(dir: &std::path::Path, kind: &str) -> std::path::PathBuf {
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
async fn rs256_tokens_are_issued_published_and_accepted() {
    let dir = selfdb_tests::dev_data_dir();
    let key = signing_key(&dir, "rsa");
    let host = Host::serve()
        .await
        .arg("--jwt-signing-key")
        .arg(key.display().to_string())
        .start();
    let http = reqwest::Client::new();
    let session: serde_json::Value = http
        .post(format!("{}/auth/v1/signup", host.url))
        .header("apikey", host.anon_key())
        .json(&serde_json::json!({"email": "rs256@example.com", "password": "rs256-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().expect("a session");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwks: serde_json::Value = http
        .get(format!("{}/auth/v1/.well-known/jwks.json", host.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["kid"].as_str(), header.kid.as_deref());
    // Verify with the published key only, as a third party would.
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["authenticated"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation).unwrap();
    assert_eq!(claims.claims["email"], "rs256@example.com");
    let user = http
        .get(format!("{}/auth/v1/user", host.url))
        .header("apikey", host.anon_key())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 200);
}

#[tokio::test]
async fn supabase_js_storage() {
    let host = Host::serve().await.start();
    run_suite(host, "storage.test.mjs").await;
}
