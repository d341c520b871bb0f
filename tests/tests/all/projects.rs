//! Projects: users' own PostgreSQL databases (clusters the tests start,
//! with tables made by SQL that SelfDB never migrated), registered by URL
//! and served through Dbify's `/query` and `/api/crud` and the data API.

use reqwest::StatusCode;
use selfdb_tests::{
    eventually, ClickHouse, ExternalCluster, Host, HostBuilder, PgBouncer, RequestExt, SmtpSink,
};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A user's shop database: an app role owning a few tables, one with
/// names chosen to break careless SQL.
async fn shop(cluster: &ExternalCluster, database: &str) -> String {
    cluster
        .create_app_database(database, "app", "app-pass'word")
        .await;
    let app = cluster.session(database, "app", "app-pass'word").await;
    app.batch_execute(
        r#"create table items (id serial primary key, name text not null unique,
                               price numeric, tags jsonb, data text);
           create table docs (id int primary key, body text not null,
                              tsv tsvector generated always as (to_tsvector('english', body)) stored);
           create table "we""ird table" ("a.b" int primary key, "select" text, "x->y" text);
           insert into items (name, price, tags) values ('apple', 1.5, '["fruit"]'), ('bread', 3, '[]');
           insert into docs values (1, 'the quick brown fox'), (2, 'lazy dogs sleep');
           insert into "we""ird table" values (1, 'one', 'arrow');"#,
    )
    .await
    .expect("the shop's tables");
    // The password has a quote in it: percent-encoded in the URL.
    cluster.url("app", "app-pass%27word", database, "sslmode=disable")
}

async fn register(host: &Host, body: Value) -> (StatusCode, Value) {
    host.post("/api/v1/projects")
        .service_role(host)
        .json(&body)
        .fetch_status_json()
        .await
}

async fn dbify(host: &Host, path: &str, body: Value) -> (StatusCode, Value) {
    host.post(path).json(&body).fetch_status_json().await
}

/// A project's schema-change history once it holds `count` changes.
async fn recorded_changes(host: &Host, url: &str, count: usize, what: &str) -> Value {
    let fetch = || async { host.get(url).service_role(host).fetch_json().await };
    assert!(
        eventually(WAIT, || async {
            fetch().await["changes"]
                .as_array()
                .is_some_and(|c| c.len() == count)
        })
        .await,
        "{what}"
    );
    fetch().await
}

/// Every record of a logs route, page by page: each record once.
async fn pages(host: &Host, url: &str) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut records = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page_url = match &before {
            Some(cursor) => format!("{url}&before={cursor}"),
            None => url.to_owned(),
        };
        let page = host.get(&page_url).service_role(host).fetch_json().await;
        for record in page["logs"].as_array().expect("a page of logs") {
            let id = record["id"].as_i64().expect("an id");
            assert!(seen.insert(id), "record {id} on two pages: {page}");
            records.push(record.clone());
        }
        match page["next_before"].as_str() {
            Some(cursor) => before = Some(cursor.to_owned()),
            None => return records,
        }
    }
}

fn start_cluster(tls: bool) -> ExternalCluster {
    // initdb and pg_ctl block.
    std::thread::spawn(move || ExternalCluster::start(tls))
        .join()
        .expect("cluster")
}

#[tokio::test]
async fn a_database_registered_by_url_is_served_through_dbify_and_the_data_api() {
    let cluster = start_cluster(false);
    let url = shop(&cluster, "shop").await;
    let host = Host::serve().await.start();

    // What cannot work is refused with its cause, and nothing is created.
    for (body, status, code) in [
        (
            json!({"name": "x", "database_url": "not a url"}),
            400,
            "invalid_database_url",
        ),
        (
            json!({"name": "x", "database_url": url.replace("sslmode=disable", "sslmode=sometimes")}),
            400,
            "invalid_database_url",
        ),
        (
            json!({"name": "x", "database_url": url.replace("app-pass%27word", "wrong")}),
            422,
            "database_login_failed",
        ),
        (
            json!({"name": "x", "database_url": url.replace("/shop?", "/nosuchdb?")}),
            422,
            "database_not_found",
        ),
        (
            json!({"name": "x", "database_url": format!("postgres://app:x@127.0.0.1:1/shop?sslmode=disable")}),
            422,
            "database_unreachable",
        ),
        (
            json!({"name": "Bad Name", "database_url": url}),
            400,
            "invalid",
        ),
        (json!({"name": "x"}), 400, "invalid_json"),
    ] {
        let (got, answer) = register(&host, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} -> {answer}");
    }
    let (status, listed) = host
        .get("/api/v1/projects")
        .service_role(&host)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["projects"], json!([]));
    // Registering needs the service key.
    let status = host
        .post("/api/v1/projects")
        .apikey(host.anon_key())
        .json(&json!({"name": "shop", "database_url": url}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, project) = register(&host, json!({"name": "shop", "database_url": url})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let id = project["projectId"].as_i64().expect("a numeric projectId");
    let key = project["apiKey"].as_str().expect("an API key").to_owned();
    assert_eq!(
        project["endpoints"]["rest"],
        format!("/projects/{id}/rest/v1")
    );
    assert_eq!(project["database"]["user"], "app");
    // A direct connection keeps sessions: statements stay prepared.
    assert_eq!(project["transaction_pooling"], false, "{project}");
    assert!(project["tables"]
        .as_array()
        .unwrap()
        .contains(&json!("public.items")));
    let (status, again) = register(&host, json!({"name": "shop", "database_url": url})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    // The CLI reads the URL from standard input (an argument would show the
    // password in the process list), then removes the project.
    let cli = |args: &[&str], stdin: &str| {
        let (url, key) = (host.url.clone(), host.service_key().to_owned());
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let stdin = stdin.to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = std::process::Command::new(selfdb_tests::selfdb_binary())
                    .arg("projects")
                    .args(&args)
                    .env("SELFDB_URL", url)
                    .env("SELFDB_SERVICE_KEY", key)
                    .env_remove("SELFDB_PROJECT_URL")
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run selfdb projects");
                if let Some(mut input) = child.stdin.take() {
                    input.write_all(stdin.as_bytes()).expect("write stdin");
                }
                let output = child.wait_with_output().expect("selfdb projects output");
                (
                    output.status.success(),
                    String::from_utf8_lossy(&output.stdout).into_owned()
                        + String::from_utf8_lossy(&output.stderr).as_ref(),
                )
            })
            .await
            .unwrap()
        }
    };
    let (ok, out) = cli(&["add", "cli-shop"], &format!("{url}\n")).await;
    assert!(
        ok && out.contains("projectId") && out.contains("sdbp_"),
        "{out}"
    );
    let (ok, out) = cli(&["remove", "cli-shop"], "").await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&["add", "cli-shop"], "").await;
    assert!(!ok && out.contains("no database URL"), "{out}");
    // No API returns the password.
    let shown = host
        .get(&format!("/api/v1/projects/{id}"))
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(!shown.to_string().contains("pass"), "{shown}");
    assert_eq!(
        shown["database_url"],
        format!(
            "postgres://app@127.0.0.1:{}/shop?sslmode=disable",
            cluster.port()
        )
    );
    assert!(!listed.to_string().contains("pass"));

    // Dbify's four operations, through both of its paths, with both
    // payload shapes its README and its server use.
    let call = |op: &str, table: &str, payload: Value| json!({"projectId": id, "apiKey": key, "operation": op, "tableName": table, "payload": payload});
    let (status, created) = dbify(
        &host,
        "/query",
        call("create", "items", json!({"name": "cheese", "price": 7})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["data"][0]["name"], "cheese");
    // `data` is also a column of items: a `{"data": ...}` row is a row.
    let (status, created) = dbify(
        &host,
        "/api/crud",
        call("create", "items", json!({"name": "wrapped", "data": "d"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["data"][0]["data"], "d");
    let (status, read) = dbify(
        &host,
        "/query",
        call("read", "items", json!({"name": "cheese"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["count"], 1);
    assert_eq!(read["data"][0]["price"], 7);
    let (_, all) = dbify(&host, "/api/crud", call("read", "items", json!({}))).await;
    assert_eq!(all["count"], 4, "{all}");
    let (status, updated) = dbify(
        &host,
        "/query",
        call(
            "update",
            "items",
            json!({"where": {"name": "cheese"}, "data": {"price": 8}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["updatedCount"], 1);
    assert_eq!(updated["data"][0]["price"], 8);
    let (status, deleted) = dbify(
        &host,
        "/query",
        call("delete", "items", json!({"where": {"name": "wrapped"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deletedCount"], 1);
    let (status, deleted) = dbify(
        &host,
        "/api/crud",
        call("delete", "items", json!({"name": "cheese"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deletedCount"], 1);
    // projectId as a string, as Dbify's `Number()` takes it.
    let mut as_string = call("read", "items", json!({"id": 1}));
    as_string["projectId"] = json!(id.to_string());
    let (status, read) = dbify(&host, "/query", as_string).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"][0]["name"], "apple");

    // Hostile names are names, not SQL or grammar.
    let (status, read) = dbify(
        &host,
        "/query",
        call(
            "read",
            "we\"ird table",
            json!({"a.b": 1, "select": "one", "x->y": "arrow"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["count"], 1, "{read}");
    let (status, created) = dbify(
        &host,
        "/query",
        call(
            "create",
            "we\"ird table",
            json!({"a.b": 2, "select": "it's; drop table items"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["data"][0]["select"], "it's; drop table items");

    // Failures: Dbify's structured shape with the status that fits.
    for (body, status, code) in [
        (
            call("create", "items", json!({"name": "apple"})),
            409,
            "CONFLICT",
        ),
        (call("read", "nope", json!({})), 404, "TABLE_NOT_FOUND"),
        (
            call("read", "items", json!({"nope": 1})),
            400,
            "INVALID_REQUEST",
        ),
        (call("drop", "items", json!({})), 400, "INVALID_REQUEST"),
        (call("delete", "items", json!({})), 400, "INVALID_REQUEST"),
        (
            call(
                "update",
                "items",
                json!({"where": {}, "data": {"price": 0}}),
            ),
            400,
            "INVALID_REQUEST",
        ),
        (
            call(
                "create",
                "items",
                json!({"price": "not a number", "name": "z"}),
            ),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"projectId": id, "operation": "read", "tableName": "items"}),
            401,
            "AUTH_ERROR",
        ),
        (
            json!({"projectId": id, "apiKey": "sdbp_wrong", "operation": "read", "tableName": "items"}),
            401,
            "AUTH_ERROR",
        ),
        (
            json!({"projectId": 999_999, "apiKey": key, "operation": "read", "tableName": "items"}),
            404,
            "PROJECT_NOT_FOUND",
        ),
        (
            json!({"apiKey": key, "operation": "read", "tableName": "items"}),
            400,
            "INVALID_REQUEST",
        ),
    ] {
        let (got, answer) = dbify(&host, "/query", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} -> {answer}");
        assert_eq!(answer["errorCode"], code, "{body} -> {answer}");
        assert_eq!(answer["success"], false);
        assert!(answer["message"].is_string());
    }
    let response = host
        .post("/query")
        .header("content-type", "application/json")
        .body("{not json")
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // A second project on the same database: its key is not this one's.
    let (status, other) = register(&host, json!({"name": "shop-two", "database_url": url})).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_key = other["apiKey"].as_str().unwrap().to_owned();
    let (status, answer) = dbify(
        &host,
        "/query",
        json!({"projectId": id, "apiKey": other_key, "operation": "read", "tableName": "items"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

    // The data API over the project's database, with PostgREST's grammar
    // (full-text search included).
    let rest = |path: &str| format!("/projects/{id}/rest/v1/{path}");
    let (status, rows) = host
        .get(&rest("items?select=name&price=gt.2&order=name"))
        .apikey(&key)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows, json!([{"name": "bread"}]));
    let (status, rows) = host
        .get(&rest("docs?select=id&tsv=fts(english).fox"))
        .apikey(&key)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows, json!([{"id": 1}]));
    let (status, rows) = host
        .get(&rest("docs?select=id&body=wfts(english).sleeping%20dog"))
        .apikey(&key)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows, json!([{"id": 2}]));
    let status = host.get(&rest("items")).fetch_status().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let status = host
        .get(&rest("items"))
        .apikey(&other_key)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let status = host
        .get(&rest("items"))
        .apikey(host.service_key())
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Every call was logged off the request path, with its project, table
    // and operation; analytics sum them up.
    let logs_url = format!("/api/v1/projects/{id}/logs?limit=1000");
    assert!(
        eventually(WAIT, || async {
            let logs = host.get(&logs_url).service_role(&host).fetch_json().await;
            logs["logs"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|r| r["endpoint"] == "/rest/v1/{table}" && r["table"] == "docs")
                    && l.iter()
                        .any(|r| r["status"] == 409 && r["operation"] == "create")
            })
        })
        .await,
        "the project's requests are logged"
    );
    let logs = host.get(&logs_url).service_role(&host).fetch_json().await;
    let created = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["endpoint"] == "/query"
                && r["operation"] == "create"
                && r["status"] == 200
                && r["table"] == "items"
        })
        .cloned()
        .expect("a logged create");
    assert_eq!(created["project_id"], id);
    assert!(created["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(created["bytes_out"].as_i64().unwrap() > 0);
    let all = logs["logs"].as_array().unwrap().len();
    let paged = pages(&host, &format!("/api/v1/projects/{id}/logs?limit=3")).await;
    // Requests logged since the first read may add to the pages' count.
    assert!(
        paged.len() >= all,
        "{} pages' records of {all}",
        paged.len()
    );
    let errors = host
        .get(&format!(
            "/api/v1/projects/{id}/logs?errors=true&limit=1000"
        ))
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(errors["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"].as_i64().unwrap() >= 400));
    // The writer flushes every 250 ms: the last requests' records may
    // still be on their way when the logs above were read.
    let analytics_url = format!("/api/v1/projects/{id}/analytics?bucket=hour");
    assert!(
        eventually(WAIT, || async {
            let analytics = host
                .get(&analytics_url)
                .service_role(&host)
                .fetch_json()
                .await;
            analytics["totals"]["requests"]
                .as_i64()
                .is_some_and(|n| n >= 20)
        })
        .await,
        "every request reaches the analytics"
    );
    let analytics = host
        .get(&analytics_url)
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(
        analytics["totals"]["error_rate"].as_f64().unwrap() > 0.0,
        "{analytics}"
    );
    assert!(
        analytics["totals"]["p95_latency_ms"].as_f64().unwrap() > 0.0,
        "{analytics}"
    );
    assert!(analytics["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["endpoint"] == "/query" && e["table"] == "items"));
    // One bucket, or two when the test straddles an hour.
    assert!(
        analytics["series"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{analytics}"
    );
    let status = host
        .get(&format!("/api/v1/projects/{id}/analytics?bucket=week"))
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The main instance's own requests are logged apart.
    let mine = host
        .get("/api/v1/requests/logs?endpoint=/api/v1/projects")
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(
        mine["logs"].as_array().is_some_and(|l| !l.is_empty()),
        "{mine}"
    );
    assert!(mine["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["project_id"].is_null()));
    methods_filter(&host).await;

    // Rotation: the old key is refused at once, the new one works.
    let rotated = host
        .post(&format!("/api/v1/projects/{id}/rotate-key"))
        .service_role(&host)
        .fetch_json()
        .await;
    let new_key = rotated["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    let (status, _) = dbify(&host, "/query", call("read", "items", json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let status = host.get(&rest("items")).apikey(&key).fetch_status().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let status = host
        .get(&rest("items"))
        .apikey(&new_key)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);

    // Paused projects answer nothing until resumed.
    let status = host
        .post(&format!("/api/v1/projects/{id}/pause"))
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = dbify(&host, "/query", json!({"projectId": id, "apiKey": new_key, "operation": "read", "tableName": "items", "payload": {}})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["errorCode"], "PROJECT_PAUSED");
    host.post(&format!("/api/v1/projects/{id}/resume"))
        .service_role(&host)
        .fetch_json()
        .await;
    let status = host
        .get(&rest("items"))
        .apikey(&new_key)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);

    // A second host of the same instance knows the project and its key.
    let second = HostBuilder::alongside(&host).start();
    let status = second
        .get(&rest("items"))
        .apikey(&new_key)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);

    // Nothing was written to the user's database but the rows.
    let admin = cluster.superuser("shop").await;
    let schemas: i64 = admin
        .query_one(
            "select count(*) from pg_namespace where nspname = 'selfdb'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0);

    // Deleting forgets the project everywhere.
    let status = host
        .delete(&format!("/api/v1/projects/{id}"))
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = dbify(
        &host,
        "/query",
        json!({"projectId": id, "apiKey": new_key, "operation": "read", "tableName": "items"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        eventually(WAIT, || async {
            second
                .get(&rest("items"))
                .apikey(&new_key)
                .fetch_status()
                .await
                == StatusCode::NOT_FOUND
        })
        .await,
        "the other host forgot the project"
    );
}

#[tokio::test]
async fn tls_databases_are_reached_as_their_sslmode_says() {
    let cluster = start_cluster(true);
    cluster.create_app_database("vault", "app", "secret").await;
    let app = cluster.session("vault", "app", "secret").await;
    app.batch_execute(
        "create table notes (id int primary key, body text); insert into notes values (1, 'hi')",
    )
    .await
    .unwrap();
    let ca = cluster.ca_pem.clone().expect("a CA");
    let host = Host::serve().await.start();
    let url = |params: &str| {
        cluster
            .url("app", "secret", "vault", params)
            .replace("127.0.0.1", "localhost")
    };
    // Plain TCP is refused by the server; an unknown CA by us.
    let (status, answer) = register(
        &host,
        json!({"name": "plain", "database_url": url("sslmode=disable")}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "database_login_failed", "{answer}");
    let (status, answer) = register(
        &host,
        json!({"name": "untrusted", "database_url": url("sslmode=verify-full")}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "database_tls", "{answer}");
    // A name the certificate does not hold (reached through `hostaddr`):
    // refused by verify-full, accepted by verify-ca, which checks the chain.
    let wrong_name = |mode: &str| {
        cluster
            .url(
                "app",
                "secret",
                "vault",
                &format!("hostaddr=127.0.0.1&sslmode={mode}"),
            )
            .replace("@127.0.0.1:", "@db.wrong.example:")
    };
    let (status, answer) = register(
        &host,
        json!({"name": "wrong-name", "database_url": wrong_name("verify-full"), "ca_certificate": ca}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "database_tls", "{answer}");

    for (name, database_url, with_ca) in [
        ("required", url("sslmode=require"), false),
        ("preferred", url(""), false),
        ("verified", url("sslmode=verify-full"), true),
        ("chain-only", wrong_name("verify-ca"), true),
    ] {
        let mut body = json!({"name": name, "database_url": database_url});
        if with_ca {
            body["ca_certificate"] = json!(ca);
        }
        let (status, project) = register(&host, body).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {project}");
        assert_eq!(project["database"]["tls"], true, "{name}: {project}");
        let (status, read) = dbify(
            &host,
            "/query",
            json!({"projectId": project["projectId"], "apiKey": project["apiKey"], "operation": "read", "tableName": "notes", "payload": {"id": 1}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {read}");
        assert_eq!(read["data"][0]["body"], "hi");
    }

    // The platform's own database over TLS (`selfdb serve`): migrated,
    // served, with the CA given as `sslrootcert`.
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca).unwrap();
    let admin = cluster.superuser("postgres").await;
    admin
        .batch_execute("create database platform")
        .await
        .unwrap();
    let platform = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        cluster
            .superuser_url("platform")
            .replace("127.0.0.1", "localhost"),
        ca_file.path().display()
    );
    let served = Host::serve_at(&platform).start();
    let health = served.get("/health").fetch_json().await;
    assert_eq!(health["database"]["reachable"], true, "{health}");
    let ssl: i64 = admin
        .query_one(
            "select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) \
             where s.ssl and a.datname = 'platform'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl > 0, "the host's connections are encrypted");
}

/// One HTTP request received, its headers and body.
fn webhook_sink() -> (String, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = writer.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (url, rx)
}

#[tokio::test]
async fn schema_changes_are_detected_recorded_mailed_and_signed() {
    let cluster = start_cluster(false);
    let url = shop(&cluster, "shop").await;
    let sink = SmtpSink::start();
    let (hook, hooks) = webhook_sink();
    let mut host = Host::serve()
        .await
        .arg("--project-schema-poll-ms")
        .arg("200")
        .arg("--smtp-url")
        .arg(format!("smtp://127.0.0.1:{}", sink.port))
        .arg("--smtp-from")
        .arg("selfdb@example.com")
        .start();
    let (status, project) = register(
        &host,
        json!({"name": "shop", "database_url": url, "notify_email": "owner@example.com", "webhook_url": hook}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let id = project["projectId"].as_i64().unwrap();
    let key = project["apiKey"].as_str().unwrap().to_owned();
    let secret = project["webhookSecret"]
        .as_str()
        .expect("a webhook secret")
        .to_owned();
    assert_eq!(project["schema_detection"], "polling");

    let app = cluster.session("shop", "app", "app-pass'word").await;
    app.batch_execute(
        "alter table items add column color text; create table orders (id int primary key)",
    )
    .await
    .unwrap();
    let changes_url = format!("/api/v1/projects/{id}/schema-changes");
    let changes = recorded_changes(&host, &changes_url, 1, "the change is recorded").await;
    let recorded = &changes["changes"][0]["changes"];
    assert_eq!(
        recorded["tables_added"],
        json!(["public.orders"]),
        "{changes}"
    );
    assert_eq!(recorded["columns_added"][0]["column"], "color", "{changes}");
    // The new column is served at once.
    let (status, created) = dbify(
        &host,
        "/query",
        json!({"projectId": id, "apiKey": key, "operation": "create", "tableName": "items", "payload": {"name": "plum", "color": "purple"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (status, _) = dbify(
        &host,
        "/query",
        json!({"projectId": id, "apiKey": key, "operation": "read", "tableName": "orders", "payload": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let mail = tokio::task::spawn_blocking(move || sink.next(WAIT))
        .await
        .unwrap()
        .expect("a schema-change email");
    assert!(mail.contains("owner@example.com"), "{mail}");
    assert!(mail.contains("column added: public.items.color"), "{mail}");
    let (head, body) = tokio::task::spawn_blocking(move || hooks.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("a webhook");
    let signature = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-selfdb-signature:")
                .map(|v| v.trim().to_owned())
        })
        .expect("a signature header");
    let (t, v1) = signature
        .split_once(",v1=")
        .map(|(t, v)| {
            (
                t.trim_start_matches("t=").parse::<i64>().unwrap(),
                v.to_owned(),
            )
        })
        .unwrap();
    assert_eq!(
        v1,
        selfdb::projects::watch::sign(&secret, t, &body),
        "the signature verifies"
    );
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "schema.changed");
    assert_eq!(event["project"]["id"], id);

    // A change made while no host watched is found by the next one, which
    // has no cache from before it: it compares with the recorded schema.
    let database_url = host.database_url.clone().unwrap();
    assert!(host.terminate());
    app.batch_execute("alter table items add column size int; drop table orders")
        .await
        .unwrap();
    let host = HostBuilder::for_restart(&host, &database_url)
        .arg("--project-schema-poll-ms")
        .arg("200")
        .start();
    let changes = recorded_changes(
        &host,
        &changes_url,
        2,
        "the change made while no host ran is recorded",
    )
    .await;
    let recorded = &changes["changes"][0]["changes"];
    assert_eq!(recorded["columns_added"][0]["column"], "size", "{changes}");
    assert_eq!(
        recorded["tables_dropped"],
        json!(["public.orders"]),
        "{changes}"
    );
    assert!(recorded.get("baseline_unknown").is_none(), "{changes}");

    // With the event trigger the user allowed (a superuser's URL), DDL is
    // seen without waiting for a poll: this host polls every ten minutes.
    let instant = Host::serve()
        .await
        .arg("--project-schema-poll-ms")
        .arg("600000")
        .start();
    let with_trigger = |name: &'static str| {
        let body = json!({"name": name, "database_url": cluster.superuser_url("shop"), "install_triggers": true});
        let instant = &instant;
        async move {
            let (status, project) = register(instant, body).await;
            assert_eq!(status, StatusCode::CREATED, "{project}");
            assert_eq!(project["schema_detection"], "trigger", "{project}");
            project
        }
    };
    let id = with_trigger("shop-admin").await["projectId"]
        .as_i64()
        .unwrap();
    // The first tick opens the listener (at start-up and each ten minutes):
    // wait until it holds a connection to the database.
    let admin = cluster.superuser("shop").await;
    assert!(
        eventually(WAIT, || async {
            let n: i64 = admin
                .query_one(
                    "select count(*) from pg_stat_activity where datname = 'shop' \
                     and application_name = 'selfdb' and query like 'listen%'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n > 0
        })
        .await,
        "the host listens for the trigger"
    );
    // A second project on the same database installs its own triggers:
    // deleting it leaves the first one's in place.
    let other = with_trigger("shop-admin-2").await;
    instant
        .delete(&format!("/api/v1/projects/{}", other["projectId"]))
        .service_role(&instant)
        .fetch_json()
        .await;
    app.batch_execute("alter table docs add column title text")
        .await
        .unwrap();
    let changes_url = format!("/api/v1/projects/{id}/schema-changes");
    assert!(
        eventually(WAIT, || async {
            let changes = instant
                .get(&changes_url)
                .service_role(&instant)
                .fetch_json()
                .await;
            changes.to_string().contains("title")
        })
        .await,
        "the trigger's change is recorded"
    );
    // Deleting the project removes what it installed.
    instant
        .delete(&format!("/api/v1/projects/{id}"))
        .service_role(&instant)
        .fetch_json()
        .await;
    let triggers: i64 = admin
        .query_one(
            "select count(*) from pg_event_trigger where evtname like 'selfdb%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 0);
    let function: bool = admin
        .query_one("select to_regprocedure('selfdb.notify_ddl()') is null", &[])
        .await
        .unwrap()
        .get(0);
    assert!(function, "the last project's removal drops the function");
}

#[tokio::test]
async fn projects_work_behind_pgbouncer_in_transaction_mode() {
    let cluster = start_cluster(false);
    shop(&cluster, "shop").await;
    // An enum: a type tokio-postgres looks up with statements of its own.
    let app = cluster.session("shop", "app", "app-pass'word").await;
    app.batch_execute(
        "create type mood as enum ('happy', 'sad'); \
         alter table items add column mood mood not null default 'happy'",
    )
    .await
    .unwrap();
    let bouncer = PgBouncer::start(&cluster, "shop", "app", "app-pass'word");
    let host = Host::serve()
        .await
        .arg("--project-schema-poll-ms")
        .arg("200")
        .start();
    let (status, project) = register(
        &host,
        json!({"name": "bounced", "database_url": bouncer.url("app", "app-pass%27word", "shop"), "pool_size": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    // Found by the registration's probe: nothing may outlive a transaction.
    assert_eq!(project["transaction_pooling"], true, "{project}");
    let id = project["projectId"].as_i64().unwrap();
    let key = project["apiKey"].as_str().unwrap().to_owned();
    // Many requests at once over PgBouncer's two server connections: each
    // transaction may land on either, so nothing may rely on the session.
    let mut calls = Vec::new();
    for n in 0..40 {
        let host_url = host.url.clone();
        let key = key.clone();
        calls.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let body = match n % 4 {
                0 => json!({"projectId": id, "apiKey": key, "operation": "create", "tableName": "items", "payload": {"name": format!("item-{n}"), "price": n}}),
                2 => json!({"projectId": id, "apiKey": key, "operation": "create", "tableName": "items", "payload": {"name": format!("item-{n}"), "mood": "sad"}}),
                1 => json!({"projectId": id, "apiKey": key, "operation": "read", "tableName": "items", "payload": {"mood": "sad"}}),
                _ => json!({"projectId": id, "apiKey": key, "operation": "read", "tableName": "items", "payload": {"name": "apple"}}),
            };
            let response = client.post(format!("{host_url}/query")).json(&body).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    for call in calls {
        let (status, answer) = call.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let rows = host
        .get(&format!(
            "/projects/{id}/rest/v1/items?select=id&name=like.item-*"
        ))
        .apikey(&key)
        .fetch_json()
        .await;
    assert_eq!(rows.as_array().map(Vec::len), Some(20), "{rows}");
    let sad = host
        .get(&format!(
            "/projects/{id}/rest/v1/items?select=name&mood=eq.sad"
        ))
        .apikey(&key)
        .fetch_json()
        .await;
    assert_eq!(sad.as_array().map(Vec::len), Some(10), "{sad}");
    // LISTEN needs a session, which a transaction pooler does not keep: an
    // event trigger is refused (with the reason) and polling is used.
    let (status, triggered) = register(
        &host,
        json!({"name": "bounced-2", "database_url": bouncer.url("app", "app-pass%27word", "shop"), "install_triggers": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{triggered}");
    assert_eq!(triggered["schema_detection"], "polling", "{triggered}");
    assert!(
        triggered["warnings"].to_string().contains("pooler"),
        "{triggered}"
    );
    // Schema polling runs through the pooler too.
    app.batch_execute("alter table items add column stock int")
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            host.get(&format!("/api/v1/projects/{id}/schema-changes"))
                .service_role(&host)
                .fetch_json()
                .await
                .to_string()
                .contains("stock")
        })
        .await,
        "the change is seen through PgBouncer"
    );
}

#[tokio::test]
async fn request_logs_can_be_written_to_and_read_from_clickhouse() {
    let clickhouse = tokio::task::spawn_blocking(ClickHouse::start)
        .await
        .unwrap();
    let cluster = start_cluster(false);
    let url = shop(&cluster, "shop").await;
    let host = Host::serve()
        .await
        .arg("--logs-clickhouse-url")
        .arg(clickhouse.url())
        .start();
    let (status, project) = register(&host, json!({"name": "shop", "database_url": url})).await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let id = project["projectId"].as_i64().unwrap();
    let key = project["apiKey"].as_str().unwrap().to_owned();
    // 24 reads, a quarter of them of a table that does not exist (404).
    for n in 0..24 {
        let table = if n % 4 == 0 { "nope" } else { "items" };
        let (status, _) = dbify(
            &host,
            "/query",
            json!({"projectId": id, "apiKey": key, "operation": "read", "tableName": table, "payload": {}}),
        )
        .await;
        assert_eq!(status.is_success(), n % 4 != 0, "{n}");
    }
    let logs_url = format!("/api/v1/projects/{id}/logs?limit=1000");
    assert!(
        eventually(WAIT, || async {
            let logs = host.get(&logs_url).service_role(&host).fetch_json().await;
            logs["logs"].as_array().is_some_and(|l| l.len() == 24)
        })
        .await,
        "the requests are logged in ClickHouse"
    );
    let stored = clickhouse.query(&format!(
        "select count() from request_logs where project = {id}"
    ));
    assert_eq!(stored.trim(), "24");
    // Pages of five hold every record once, newest first.
    let paged = pages(&host, &format!("/api/v1/projects/{id}/logs?limit=5")).await;
    assert_eq!(paged.len(), 24);
    assert!(paged
        .windows(2)
        .all(|w| w[0]["at"].as_str() >= w[1]["at"].as_str()));
    let read = &paged[0];
    assert_eq!(read["project_id"], id);
    assert_eq!(read["endpoint"], "/query");
    assert_eq!(read["operation"], "read");
    assert!(read["latency_ms"].as_f64().unwrap() > 0.0, "{read}");
    let errors = host
        .get(&format!("/api/v1/projects/{id}/logs?errors=true&limit=100"))
        .service_role(&host)
        .fetch_json()
        .await;
    let errors = errors["logs"].as_array().unwrap();
    assert_eq!(errors.len(), 6);
    assert!(errors
        .iter()
        .all(|r| r["status"] == 404 && r["table"] == "nope"));
    let analytics = host
        .get(&format!("/api/v1/projects/{id}/analytics?bucket=day"))
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(analytics["totals"]["requests"], 24, "{analytics}");
    assert_eq!(analytics["totals"]["error_rate"], 0.25, "{analytics}");
    assert!(
        analytics["totals"]["p95_latency_ms"].as_f64().unwrap() > 0.0,
        "{analytics}"
    );
    assert!(
        analytics["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["endpoint"] == "/query" && e["table"] == "items" && e["requests"] == 18),
        "{analytics}"
    );
    // One day, or two when the test straddles midnight (UTC).
    assert!(
        analytics["series"]
            .as_array()
            .is_some_and(|s| (1..=2).contains(&s.len())),
        "{analytics}"
    );
    // The main instance's requests are there too, apart.
    let mine = host
        .get("/api/v1/requests/logs?endpoint=/api/v1/projects")
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(
        mine["logs"]
            .as_array()
            .is_some_and(|l| !l.is_empty() && l.iter().all(|r| r["project_id"].is_null())),
        "{mine}"
    );
    methods_filter(&host).await;
}

/// `method=` narrows the instance's logs, in any case: projects are
/// created with POST and listed with GET (here, at least; the record is
/// flushed within 250 ms, hence the wait).
async fn methods_filter(host: &Host) {
    let listed = host
        .get("/api/v1/projects")
        .service_role(host)
        .fetch_status()
        .await;
    assert_eq!(listed, StatusCode::OK);
    for (asked, logged) in [("post", "POST"), ("GET", "GET")] {
        let url = format!("/api/v1/requests/logs?endpoint=/api/v1/projects&method={asked}");
        assert!(
            eventually(WAIT, || async {
                let page = host.get(&url).service_role(host).fetch_json().await;
                page["logs"]
                    .as_array()
                    .is_some_and(|l| !l.is_empty() && l.iter().all(|r| r["method"] == logged))
            })
            .await,
            "{url} lists {logged} records only"
        );
    }
}
