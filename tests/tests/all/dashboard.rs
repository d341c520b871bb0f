//! The dashboard at `/_/`: how the host serves its files (security and
//! caching headers, gzip, the single-page app's paths, the size budget, no
//! key in any file), and the dashboard itself in a real browser
//! (`tests/js/dashboard.test.mjs`: Chromium through playwright-core).

use reqwest::StatusCode;
use selfdb_tests::{fresh_database, psql, workspace_root, Host, RequestExt};

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

/// `/_/assets/...` for every file `make dashboard` built (not the `.gz`
/// twins, which the host serves in their place).
fn built_assets() -> Vec<String> {
    let dir = workspace_root().join("dashboard/dist/assets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run make dashboard)", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".gz"))
        .map(|name| format!("/_/assets/{name}"))
        .collect();
    names.sort();
    names
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
    // no file holds a key (every key is a JWT: "eyJ"). Every built file,
    // also the pages loaded later (`import()`), which index.html does not
    // name.
    let mut built = built_assets();
    assert!(
        assets.iter().all(|a| built.contains(a)),
        "{assets:?} within {built:?}"
    );
    built.push("/_/".to_owned());
    let mut gzipped_total = 0;
    for asset in built.iter().map(String::as_str) {
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
    // Functions deployed from the editor run on the shared JavaScript
    // engine; building their own components would only load the machine.
    let host = Host::serve()
        .await
        .arg("--js-own-components")
        .arg("false")
        .start();
    let shots = workspace_root().join("target/test-output/dashboard");
    let email = host.env["SELFDB_ADMIN_EMAIL"].clone();
    let password = host.env["SELFDB_ADMIN_PASSWORD"].clone();
    // A second database for the Projects page to add by URL.
    let project_url = fresh_database().await;
    psql(&project_url)
        .await
        .batch_execute(
            "create table items (id serial primary key, name text not null);
             insert into items (name) values ('cheese'), ('bread');",
        )
        .await
        .expect("the project's table");
    tokio::task::spawn_blocking(move || {
        crate::supabase_js::run_node_suite_with(
            &host,
            "dashboard.test.mjs",
            &[
                ("SELFDB_ADMIN_EMAIL", &email),
                ("SELFDB_ADMIN_PASSWORD", &password),
                ("SCREENSHOT_DIR", &shots.display().to_string()),
                ("PROJECT_DATABASE_URL", &project_url),
            ],
        )
    })
    .await
    .unwrap();
}
