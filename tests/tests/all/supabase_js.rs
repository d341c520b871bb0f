//! supabase-js compatibility: runs the suites in `tests/js` (node's test
//! runner) against a host this harness starts, so the real client, not our
//! reading of its protocol, decides whether SelfDB is compatible.

use selfdb_tests::{signing_key, workspace_root, Host, HostBuilder, Redis};
use std::process::Command;

fn run_node_suite(host: &Host, file: &str) {
    run_node_suite_with(host, file, &[]);
}

pub(crate) fn run_node_suite_with(host: &Host, file: &str, extra: &[(&str, &str)]) {
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

/// A project: a user's own database (a cluster of its own, tables made by
/// SQL), served at `/projects/{id}` to supabase-js with the project key.
#[tokio::test]
async fn supabase_js_on_a_project_database() {
    let cluster = std::thread::spawn(|| selfdb_tests::ExternalCluster::start(false))
        .join()
        .expect("cluster");
    cluster
        .create_app_database("library", "librarian", "books")
        .await;
    let app = cluster.session("library", "librarian", "books").await;
    app.batch_execute(
        "create table authors (id int primary key, name text not null);
         create table books (id int primary key, title text not null, pages int,
                             author_id int references authors (id), blurb text,
                             search tsvector generated always as (to_tsvector('english', coalesce(blurb, ''))) stored);
         insert into authors values (1, 'Austen'), (2, 'Herbert');
         insert into books (id, title, pages, author_id, blurb) values
           (1, 'Emma', 474, 1, 'a matchmaker in a country house'),
           (2, 'Dune', 412, 2, 'spice and sand in the desert'),
           (3, 'Sanditon', 26, 1, 'an unfinished seaside story');
         create function page_total() returns bigint language sql stable as 'select sum(pages) from books';",
    )
    .await
    .expect("the library's tables");
    let host = Host::serve().await.start();
    let project = host
        .post("/api/v1/projects")
        .header("apikey", host.service_key())
        .header("authorization", format!("Bearer {}", host.service_key()))
        .json(&serde_json::json!({
            "name": "library",
            "database_url": cluster.url("librarian", "books", "library", "sslmode=disable"),
        }))
        .send()
        .await
        .expect("register")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let id = project["projectId"].to_string();
    let key = project["apiKey"].as_str().expect("a key").to_owned();
    tokio::task::spawn_blocking(move || {
        run_node_suite_with(
            &host,
            "projects.test.mjs",
            &[("SELFDB_PROJECT_ID", &id), ("SELFDB_PROJECT_KEY", &key)],
        )
    })
    .await
    .unwrap();
}
