//! The dashboard at `/_/`: how the host serves its files (security and
//! caching headers, gzip, the single-page app's paths, the size budget, no
//! key in any file), and the dashboard itself in a real browser
//! (`tests/js/dashboard.test.mjs`: Chromium through playwright-core).

use reqwest::StatusCode;
use selfdb_tests::{workspace_root, Host, RequestExt};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; font-src 'self'; connect-src 'self' ws: wss:; \
    worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The `src`/`href` of every `/_/assets/` file `index.html` names.
fn assets_of(index: &str) -> Vec<String> {
    index
        .split(['"', '\''])
        .filter(|part| part.starts_with("/_/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_dashboard_is_served_with_strict_headers_and_within_budget() {
    let host = Host::serve().await.start();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .build()
        .unwrap();
    let response = plain.get(host.url_of("/_")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/_/");

    let response = plain.get(host.url_of("/_/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], CSP);
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let index = response.text().await.unwrap();
    assert!(!index.contains("<script>"), "no inline script: {index}");
    let assets = assets_of(&index);
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "index.html names its script: {index}"
    );

    // Unchanged: 304 with no body.
    let response = plain
        .get(host.url_of("/_/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    // A page of the app is index.html; a missing file is 404.
    let page = plain
        .get(host.url_of("/_/tables/public"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.text().await.unwrap(), index);
    let missing = host.get("/_/assets/nothing-here.js").fetch_status().await;
    assert_eq!(missing, StatusCode::NOT_FOUND);

    // Hashed assets are immutable; everything goes gzipped to a client
    // that takes it; together well under the budget of 1 MiB gzipped; and
    // no file holds a key (every key is a JWT: "eyJ").
    let mut gzipped_total = 0;
    for asset in assets.iter().map(String::as_str).chain(["/_/"]) {
        let response = plain
            .get(host.url_of(asset))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{asset}");
        if asset != "/_/" {
            assert_eq!(
                response.headers()["cache-control"],
                "public, max-age=31536000, immutable",
                "{asset}"
            );
        }
        gzipped_total += response.bytes().await.unwrap().len();
        let body = host.get(asset).fetch_bytes().await.1;
        assert!(
            !String::from_utf8_lossy(&body).contains("eyJ"),
            "{asset} holds something like a key"
        );
    }
    println!("the dashboard's files: {gzipped_total} bytes gzipped");
    assert!(gzipped_total < 1 << 20, "{gzipped_total} bytes gzipped");
}

#[tokio::test]
async fn the_dashboard_works_in_a_browser() {
    let host = Host::serve().await.start();
    let shots = workspace_root().join("target/test-output/dashboard");
    let email = host.env["SELFDB_ADMIN_EMAIL"].clone();
    let password = host.env["SELFDB_ADMIN_PASSWORD"].clone();
    tokio::task::spawn_blocking(move || {
        crate::supabase_js::run_node_suite_with(
            &host,
            "dashboard.test.mjs",
            &[
                ("SELFDB_ADMIN_EMAIL", &email),
                ("SELFDB_ADMIN_PASSWORD", &password),
                ("SCREENSHOT_DIR", &shots.display().to_string()),
            ],
        )
    })
    .await
    .unwrap();
}
