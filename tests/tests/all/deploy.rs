//! Deploying components: the compiled-code cache across restarts, system
//! components on either export, privileged interfaces refused to user
//! functions, and hot swaps through the admin API (`/api/v1/functions`).

use reqwest::StatusCode;
use selfdb_tests::{Host, HostBuilder, RequestExt};
use serde_json::json;
use std::time::Duration;

/// How long a log line may take to appear after the event it reports.
const LOG_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let mut first = Host::serve().await.own_cache().start();
    let cache = first.data_dir.join("cache").join("components");
    let files = |dir: &std::path::Path| -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files(&cache);
    // events, hello, misbehave, privileged (compiled, then refused at
    // link) and the embedded auth and crud components.
    assert_eq!(before.len(), 6, "{before:?}");
    assert!(
        first.wait_for_log("cached=false", LOG_WAIT).await,
        "{}",
        first.stderr()
    );
    assert!(first.terminate());

    let database_url = first.database_url.clone().unwrap();
    let second = HostBuilder::for_restart(&first, &database_url)
        .own_cache()
        .start();
    assert_eq!(files(&cache), before, "the cache was rewritten");
    let reused = second
        .wait_for_log_where(LOG_WAIT, |log| log.matches("cached=true").count() >= 4)
        .await;
    assert!(reused, "{}", second.stderr());
}

#[tokio::test]
async fn a_system_component_exporting_only_wasi_http_is_still_served() {
    // `privileged.wasm` exports `wasi:http` alone; installed as the crud
    // component, the host calls it through that export.
    let fixture = selfdb_tests::functions_dir().join("privileged.wasm");
    let host = Host::serve()
        .await
        .arg("--crud-component")
        .arg(fixture.display().to_string())
        .start();
    let response = host
        .get("/rest/v1/anything")
        .apikey(host.anon_key())
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.text().await.unwrap();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let health = host.get("/health").fetch_json().await;
    assert_eq!(health["runtime"]["record_handlers"], json!(["auth"]));
}

#[tokio::test]
async fn a_user_function_cannot_link_the_privileged_interfaces() {
    let host = Host::serve().await.start();
    // `privileged.wasm` sits in the functions directory and imports
    // `selfdb:platform/tokens`: it must not be served.
    let code = host
        .get("/functions/v1/privileged")
        .apikey(host.service_key())
        .fetch_error(StatusCode::NOT_FOUND)
        .await;
    assert_eq!(code, "function_not_found");
    let logged = host
        .wait_for_log_where(LOG_WAIT, |log| {
            log.contains("cannot deploy component") && log.contains("selfdb:platform/tokens")
        })
        .await;
    assert!(logged, "{}", host.stderr());
}

#[tokio::test]
async fn functions_are_hot_swapped_through_the_admin_api() {
    let host = Host::serve().await.start();
    let dir = selfdb_tests::functions_dir();
    let hello = std::fs::read(dir.join("hello.wasm")).unwrap();
    let misbehave = std::fs::read(dir.join("misbehave.wasm")).unwrap();
    let deploy = "/api/v1/functions/greeter";
    let call = "/functions/v1/greeter?mode=whoami&name=swap";

    let refused = host
        .put(deploy)
        .apikey(host.anon_key())
        .body(hello.clone())
        .fetch_error(StatusCode::FORBIDDEN)
        .await;
    assert_eq!(refused, "forbidden");

    let garbage = host
        .put(deploy)
        .apikey(host.service_key())
        .body(b"\0asm not really".to_vec())
        .fetch_error(StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(garbage, "invalid_component");

    let first = host
        .put(deploy)
        .apikey(host.service_key())
        .body(hello)
        .fetch_json()
        .await;
    assert_eq!(first["name"], "greeter");
    let greeting = host.get(call).apikey(host.anon_key()).fetch_json().await;
    assert_eq!(greeting["greeting"], "Hello, swap!");

    let second = host
        .put(deploy)
        .apikey(host.service_key())
        .body(misbehave)
        .fetch_json()
        .await;
    assert_ne!(first["version"], second["version"]);
    let swapped = host.get(call).apikey(host.anon_key()).fetch_json().await;
    assert_eq!(swapped["role"], "anon", "{swapped}");

    let listed = host
        .get("/api/v1/functions")
        .apikey(host.service_key())
        .fetch_json()
        .await;
    assert!(listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "greeter" && f["version"] == second["version"]));
}
