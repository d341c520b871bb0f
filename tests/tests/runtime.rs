//! The component runtime through the real binary: the hello example, the
//! limits, the transaction rules and the request checks.

use reqwest::StatusCode;
use selfdb_tests::{psql, user_token, Host, JWT_SECRET};
use serde_json::{json, Value};
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Asserts SelfDB's error shape and returns the code.
async fn error_code(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("JSON error body");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error.get("details").is_some(), "{body}");
    error["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn hello_runs_a_parameterised_query_as_the_callers_role() {
    let host = Host::serve().await.start();
    let http = client();
    let url = format!("{}/functions/v1/hello", host.url);

    let anon: Value = http
        .get(&url)
        .query(&[("name", "Ada'; drop table x; --")])
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        anon,
        json!({"greeting": "Hello, Ada'; drop table x; --!", "role": "anon"})
    );

    let service: Value = http
        .get(&url)
        .header("apikey", host.service_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        service,
        json!({"greeting": "Hello, world!", "role": "service_role"})
    );

    let user: Value = http
        .post(&url)
        .header("apikey", host.anon_key())
        .bearer_auth(user_token("5f0e7b3c-0000-4000-8000-000000000001", 60))
        .json(&json!({"name": "Grace"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        user,
        json!({"greeting": "Hello, Grace!", "role": "authenticated"})
    );

    let bad_json = http
        .post(&url)
        .header("apikey", host.anon_key())
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(bad_json, StatusCode::BAD_REQUEST).await,
        "invalid_json"
    );
}

#[tokio::test]
async fn credentials_are_checked_before_any_component_runs() {
    let host = Host::serve().await.start();
    let http = client();
    let url = format!("{}/functions/v1/hello", host.url);

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(
        error_code(missing, StatusCode::UNAUTHORIZED).await,
        "missing_apikey"
    );

    let garbage = http
        .get(&url)
        .header("apikey", "not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(garbage, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    let expired = http
        .get(&url)
        .header("apikey", host.anon_key())
        .bearer_auth(user_token("u1", -120))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(expired, StatusCode::UNAUTHORIZED).await,
        "token_expired"
    );

    let now = chrono::Utc::now().timestamp();
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": "service_role", "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    let forged = http
        .get(&url)
        .header("apikey", &wrong_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(forged, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    // alg=none with a service_role claim.
    use base64_url as b64;
    let unsigned = format!(
        "{}.{}.",
        b64::encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64::encode(&format!(r#"{{"role":"service_role","exp":{}}}"#, now + 60))
    );
    let none = http
        .get(&url)
        .header("apikey", &unsigned)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(none, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    let wrong_audience = selfdb_tests::sign(json!({
        "sub": "u1", "role": "authenticated", "aud": "someone-else", "exp": now + 60
    }));
    let aud = http
        .get(&url)
        .header("apikey", host.anon_key())
        .bearer_auth(wrong_audience)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(aud, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    let malformed = http
        .get(&url)
        .header("apikey", host.anon_key())
        .header("authorization", "Token abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(malformed, StatusCode::UNAUTHORIZED).await,
        "invalid_token"
    );

    let _ = JWT_SECRET;
}

mod base64_url {
    pub fn encode(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn unknown_routes_functions_and_oversize_bodies_get_structured_errors() {
    let host = Host::serve()
        .await
        .arg("--max-body-bytes")
        .arg("1024")
        .start();
    let http = client();

    let unknown_fn = http
        .get(format!("{}/functions/v1/nope", host.url))
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unknown_fn, StatusCode::NOT_FOUND).await,
        "function_not_found"
    );

    let unknown_route = http
        .get(format!("{}/no/such/route", host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(unknown_route, StatusCode::NOT_FOUND).await,
        "not_found"
    );

    let url = format!("{}/functions/v1/hello", host.url);
    let declared = http
        .post(&url)
        .header("apikey", host.anon_key())
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(declared, StatusCode::PAYLOAD_TOO_LARGE).await,
        "body_too_large"
    );

    // Chunked, so no Content-Length warns the host in advance.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let streamed = http
        .post(&url)
        .header("apikey", host.anon_key())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(streamed, StatusCode::PAYLOAD_TOO_LARGE).await,
        "body_too_large"
    );

    // Still serving.
    let ok = http
        .get(&url)
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn misbehave(host: &Host, http: &reqwest::Client, mode: &str) -> reqwest::Response {
    http.get(format!("{}/functions/v1/misbehave", host.url))
        .query(&[("mode", mode), ("value", mode)])
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_looping_component_hits_its_time_limit_while_others_are_served() {
    // One worker thread: the loop holds it for its whole time limit unless
    // the host makes the guest yield, and then nothing below is served.
    let host = Host::serve()
        .await
        .arg("--function-time-ms")
        .arg("3000")
        .env("TOKIO_WORKER_THREADS", "1")
        .start();
    let http = client();
    let looping = {
        let http = http.clone();
        let url = format!("{}/functions/v1/misbehave?mode=loop", host.url);
        let key = host.anon_key().to_owned();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let response = http.get(url).header("apikey", key).send().await.unwrap();
            (response, started.elapsed())
        })
    };
    // Wait until the loop is really running inside the host.
    let metrics_url = format!("{}/metrics", host.url);
    let mut running = false;
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < give_up && !looping.is_finished() {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("selfdb_active_invocations 1") {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(running, "the looping invocation never became active");

    // Each is served between the loop's ticks: about 70 ms apiece here.
    for i in 0..10 {
        let response = http
            .get(format!("{}/functions/v1/hello?name=n{i}", host.url))
            .header("apikey", host.anon_key())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        !looping.is_finished(),
        "the loop ended before the other requests were served"
    );

    let (response, elapsed) = looping.await.unwrap();
    assert_eq!(
        error_code(response, StatusCode::GATEWAY_TIMEOUT).await,
        "function_time_limit"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "the limit took {elapsed:?}"
    );
    assert!(
        host.stderr().contains("function_time_limit"),
        "no log line for the timeout"
    );
}

#[tokio::test]
async fn traps_and_memory_hogs_get_5xx_and_the_host_keeps_serving() {
    let host = Host::serve()
        .await
        .arg("--function-memory-mb")
        .arg("16")
        .start();
    let http = client();

    let trap = misbehave(&host, &http, "trap").await;
    assert_eq!(
        error_code(trap, StatusCode::INTERNAL_SERVER_ERROR).await,
        "function_trapped"
    );

    let oom = misbehave(&host, &http, "oom").await;
    assert_eq!(
        error_code(oom, StatusCode::INTERNAL_SERVER_ERROR).await,
        "function_memory_limit"
    );

    let ok = http
        .get(format!("{}/functions/v1/hello", host.url))
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let log = host.stderr();
    assert!(
        log.contains("function_trapped") && log.contains("function_memory_limit"),
        "{log}"
    );
}

#[tokio::test]
async fn a_failed_invocation_rolls_its_writes_back() {
    let host = Host::serve().await.start();
    let db = psql(host.database_url.as_deref().unwrap()).await;
    db.batch_execute("create table public.probe (id serial primary key, value text not null)")
        .await
        .unwrap();
    let http = client();

    assert_eq!(
        misbehave(&host, &http, "write").await.status(),
        StatusCode::OK
    );
    let trapped = misbehave(&host, &http, "write-then-trap").await;
    assert_eq!(trapped.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let failed = misbehave(&host, &http, "write-then-500").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let values: Vec<String> = db
        .query("select value from public.probe order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, vec!["write".to_owned()]);
}

async fn run_sql(
    host: &Host,
    http: &reqwest::Client,
    key: &str,
    bearer: Option<&str>,
    sql: &str,
    params: Value,
) -> Value {
    run_sql_body(
        host,
        http,
        key,
        bearer,
        json!({"sql": sql, "params": params}),
    )
    .await
}

/// The misbehave fixture's `sql` mode: `{"sql", "params", "alone", "before"}`.
async fn run_sql_body(
    host: &Host,
    http: &reqwest::Client,
    key: &str,
    bearer: Option<&str>,
    body: Value,
) -> Value {
    let mut request = http
        .post(format!("{}/functions/v1/misbehave?mode=sql", host.url))
        .header("apikey", key)
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn components_cannot_leave_their_role_or_claims() {
    let host = Host::serve().await.start();
    let http = client();
    let anon = host.anon_key().to_owned();

    let who = run_sql(
        &host,
        &http,
        &anon,
        None,
        "select current_user::text as u, auth.role() as r",
        json!([]),
    )
    .await;
    assert_eq!(who["rows"], json!([{"u": "anon", "r": "anon"}]));

    for (sql, code) in [
        ("set role service_role", "selfdb.refused"),
        ("reset role", "selfdb.refused"),
        ("commit", "selfdb.refused"),
        ("do $$ begin perform 1; end $$", "selfdb.refused"),
        ("select set_config('role', 'service_role', true)", "selfdb.refused"),
        ("select 1; set role service_role", "selfdb.refused"),
        // Dynamic SQL hides the name from the guard; the privilege stops it.
        ("select query_to_xml('select set_config(''role'', ''service_role'', true)', true, true, '')", "42501"),
        ("create function pg_temp.f() returns int language sql as 'select 1'", "42501"),
        ("select * from selfdb.settings", "42501"),
        // State that would outlive the request on its pooled connection.
        ("select pg_advisory_lock(7)", "selfdb.refused"),
        ("select query_to_xml('select pg_try_advisory_lock(7)', true, true, '')", "42501"),
        ("declare held cursor with hold for select 1", "selfdb.refused"),
    ] {
        let out = run_sql(&host, &http, &anon, None, sql, json!([])).await;
        assert_eq!(out["error"]["code"], code, "{sql}: {out}");
    }
    // Locks that end with the transaction stay available.
    let xact_lock = run_sql(
        &host,
        &http,
        &anon,
        None,
        "select 1 as one from (select pg_advisory_xact_lock(7)) locked",
        json!([]),
    )
    .await;
    assert_eq!(xact_lock["rows"], json!([{"one": 1}]), "{xact_lock}");
}

/// `currval` and `lastval` are session state: the next request on the
/// pooled connection, anyone's, must not read the values this one drew.
#[tokio::test]
async fn sequence_values_do_not_outlive_the_request() {
    let host = Host::serve().await.start();
    let db = psql(host.database_url.as_deref().unwrap()).await;
    db.batch_execute(
        "create sequence public.counter;
         grant usage, select on sequence public.counter to anon, authenticated;",
    )
    .await
    .unwrap();
    let http = client();
    let anon = host.anon_key().to_owned();
    let alice = user_token("a0000000-0000-4000-8000-00000000000a", 60);
    let backend = |bearer: Option<String>| {
        let (host, http, anon) = (&host, &http, &anon);
        async move {
            let out = run_sql(
                host,
                http,
                anon,
                bearer.as_deref(),
                "select pg_backend_pid() as pid",
                json!([]),
            )
            .await;
            out["rows"][0]["pid"].clone()
        }
    };

    let drawn = run_sql(
        &host,
        &http,
        &anon,
        Some(&alice),
        "select nextval('public.counter') as v, currval('public.counter') as c, pg_backend_pid() as pid",
        json!([]),
    )
    .await;
    assert_eq!(drawn["rows"][0]["v"], 1, "{drawn}");
    assert_eq!(drawn["rows"][0]["c"], 1, "{drawn}");
    let pid = drawn["rows"][0]["pid"].clone();
    // Requests one after another share one pooled connection: the checks
    // below run on the backend that drew the value.
    assert_eq!(backend(None).await, pid);
    for sql in [
        "select currval('public.counter') as v",
        "select lastval() as v",
    ] {
        let out = run_sql(&host, &http, &anon, None, sql, json!([])).await;
        assert_eq!(out["error"]["code"], "55000", "{sql}: {out}");
        assert_eq!(backend(None).await, pid, "{sql} ran on another connection");
    }
}

#[tokio::test]
async fn row_level_security_sees_the_callers_claims() {
    let host = Host::serve().await.start();
    let db = psql(host.database_url.as_deref().unwrap()).await;
    db.batch_execute(
        "create table public.notes (id serial primary key, owner_id uuid not null default auth.uid(), body text);
         alter table public.notes enable row level security;
         create policy own_notes on public.notes for all to authenticated
             using (auth.uid() = owner_id) with check (auth.uid() = owner_id);",
    )
    .await
    .unwrap();
    let http = client();
    let anon = host.anon_key().to_owned();
    let alice = user_token("a0000000-0000-4000-8000-00000000000a", 60);
    let bob = user_token("b0000000-0000-4000-8000-00000000000b", 60);

    for (token, body) in [(&alice, "alice's"), (&bob, "bob's")] {
        let out = run_sql(
            &host,
            &http,
            &anon,
            Some(token),
            "insert into public.notes (body) values ($1) returning body",
            json!([body]),
        )
        .await;
        assert_eq!(out["rows"], json!([{"body": body}]), "{out}");
    }
    let seen = run_sql(
        &host,
        &http,
        &anon,
        Some(&alice),
        "select body from public.notes order by id",
        json!([]),
    )
    .await;
    assert_eq!(seen["rows"], json!([{"body": "alice's"}]));
    let stolen = run_sql(
        &host,
        &http,
        &anon,
        Some(&alice),
        "update public.notes set body = 'mine' where owner_id = $1::uuid returning id",
        json!(["b0000000-0000-4000-8000-00000000000b"]),
    )
    .await;
    assert_eq!(stolen["rows"], json!([]));
    let forged = run_sql(
        &host,
        &http,
        &anon,
        Some(&alice),
        "insert into public.notes (owner_id, body) values ($1::uuid, 'forged')",
        json!(["b0000000-0000-4000-8000-00000000000b"]),
    )
    .await;
    assert_eq!(forged["error"]["code"], "42501", "{forged}");
    let as_anon = run_sql(
        &host,
        &http,
        &anon,
        None,
        "select count(*) as n from public.notes",
        json!([]),
    )
    .await;
    assert_eq!(as_anon["rows"], json!([{"n": 0}]));
}

/// `db.query-alone`: anonymous reads run on connections that stay in the
/// anon role, everyone else's in a read-only transaction; either way as the
/// caller, read-only, and no way out of the role.
#[tokio::test]
async fn query_alone_reads_as_the_caller_and_writes_nothing() {
    let host = Host::serve().await.start();
    let db = psql(host.database_url.as_deref().unwrap()).await;
    db.batch_execute(
        "create table public.probe (id serial primary key, value text not null); \
         grant all on public.probe to anon, authenticated; \
         grant usage on sequence public.probe_id_seq to anon, authenticated;",
    )
    .await
    .unwrap();
    let http = client();
    let anon = host.anon_key().to_owned();
    let service = host.service_key().to_owned();
    let user = "c0000000-0000-4000-8000-00000000000c";
    let alice = user_token(user, 60);
    // An anon token with claims of its own: not the anon key's, so it takes
    // the transaction path, and its claims must still be the ones seen.
    let marked = selfdb_tests::sign(json!({
        "role": "anon", "marker": "m1",
        "exp": chrono::Utc::now().timestamp() + 60,
    }));
    let alone = |sql: &str| json!({"sql": sql, "params": [], "alone": true});
    let who = "select current_user::text as u, auth.role() as r, \
               coalesce(auth.jwt()->>'marker', auth.jwt()->>'sub', '') as c, \
               current_setting('transaction_read_only') as ro";

    // Twice each: the second anon read reuses a pooled anon connection.
    for _ in 0..2 {
        for (key, bearer, expected) in [
            (
                &anon,
                None,
                json!({"u": "anon", "r": "anon", "c": "", "ro": "on"}),
            ),
            (
                &anon,
                Some(&marked),
                json!({"u": "anon", "r": "anon", "c": "m1", "ro": "on"}),
            ),
            (
                &anon,
                Some(&alice),
                json!({"u": "authenticated", "r": "authenticated", "c": user, "ro": "on"}),
            ),
            (
                &service,
                None,
                json!({"u": "service_role", "r": "service_role", "c": "", "ro": "on"}),
            ),
        ] {
            let out = run_sql_body(&host, &http, key, bearer.map(String::as_str), alone(who)).await;
            assert_eq!(out["rows"], json!([expected]), "{out}");
            let write = run_sql_body(
                &host,
                &http,
                key,
                bearer.map(String::as_str),
                alone("insert into public.probe (value) values ('x') returning id"),
            )
            .await;
            assert_eq!(write["error"]["code"], "25006", "{write}");
        }
    }
    // A normal request after anonymous alone-reads is still in its own
    // transaction, with its own role.
    let normal = run_sql(&host, &http, &anon, Some(&alice), who, json!([])).await;
    assert_eq!(normal["rows"][0]["ro"], "off", "{normal}");
    assert_eq!(normal["rows"][0]["u"], "authenticated", "{normal}");

    for (sql, code) in [
        ("set role service_role", "selfdb.refused"),
        ("reset role", "selfdb.refused"),
        ("select set_config('role', 'service_role', false)", "selfdb.refused"),
        ("select query_to_xml('select set_config(''role'', ''service_role'', false)', true, true, '')", "42501"),
        ("select * from selfdb.settings", "42501"),
    ] {
        let out = run_sql_body(&host, &http, &anon, None, alone(sql)).await;
        assert_eq!(out["error"]["code"], code, "{sql}: {out}");
    }
    let still_anon = run_sql_body(&host, &http, &anon, None, alone(who)).await;
    assert_eq!(still_anon["rows"][0]["u"], "anon", "{still_anon}");

    let late = run_sql_body(
        &host,
        &http,
        &anon,
        None,
        json!({"sql": "select 1 as one", "params": [], "alone": true, "before": "select 2"}),
    )
    .await;
    assert_eq!(late["error"]["code"], "selfdb.in_transaction", "{late}");

    let rows: i64 = db
        .query_one("select count(*) from public.probe", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn functions_see_their_principal_and_config() {
    let data = selfdb_tests::dev_data_dir();
    std::fs::write(
        data.join("selfdb.toml"),
        "[functions.misbehave.config]\nGREETING = \"hi from config\"\n",
    )
    .unwrap();
    let host = Host::serve()
        .await
        .arg("--config")
        .arg(data.join("selfdb.toml").display().to_string())
        .start();
    let http = client();
    let who: Value = http
        .get(format!("{}/functions/v1/misbehave?mode=whoami", host.url))
        .header("apikey", host.anon_key())
        .bearer_auth(user_token("c0000000-0000-4000-8000-00000000000c", 60))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        who,
        json!({"role": "authenticated", "user_id": "c0000000-0000-4000-8000-00000000000c", "greeting": "hi from config"})
    );
}

async fn health(host: &Host) -> Value {
    client()
        .get(format!("{}/health", host.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_reports_version_database_and_runtime() {
    let host = Host::serve().await.start();
    let health = health(&host).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["database"]["reachable"], true);
    assert_eq!(health["runtime"]["status"], "ok");
    assert_eq!(
        health["runtime"]["functions"],
        json!(["hello", "misbehave"])
    );
    assert_eq!(
        health["runtime"]["system_components"],
        json!(["auth", "crud"])
    );
    // The system components are called through the record export, not
    // through `wasi:http`; user functions never are.
    assert_eq!(
        health["runtime"]["record_handlers"],
        json!(["auth", "crud"])
    );
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let mut first = Host::serve().await.start();
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
    // hello, misbehave, privileged (compiled, then refused at link) and
    // the embedded auth and crud components.
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(first.stderr().contains("cached=false"));
    assert!(first.terminate());

    let database_url = first.database_url.clone().unwrap();
    let second = selfdb_tests::HostBuilder::for_restart(&first, &database_url).start();
    assert_eq!(files(&cache), before, "the cache was rewritten");
    let log = second.stderr();
    assert!(log.matches("cached=true").count() >= 4, "{log}");
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
    let response = client()
        .get(format!("{}/rest/v1/anything", host.url))
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.text().await.unwrap();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let health = health(&host).await;
    assert_eq!(health["runtime"]["record_handlers"], json!(["auth"]));
}

#[tokio::test]
async fn a_user_function_cannot_link_the_privileged_interfaces() {
    let host = Host::serve().await.start();
    // `privileged.wasm` sits in the functions directory and imports
    // `selfdb:platform/tokens`: it must not be served.
    let response = client()
        .get(format!("{}/functions/v1/privileged", host.url))
        .header("apikey", host.service_key())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response, StatusCode::NOT_FOUND).await,
        "function_not_found"
    );
    let log = host.stderr();
    assert!(
        log.contains("cannot deploy component") && log.contains("selfdb:platform/tokens"),
        "{log}"
    );
}

#[tokio::test]
async fn functions_are_hot_swapped_through_the_admin_api() {
    let host = Host::serve().await.start();
    let http = client();
    let dir = selfdb_tests::functions_dir();
    let hello = std::fs::read(dir.join("hello.wasm")).unwrap();
    let misbehave = std::fs::read(dir.join("misbehave.wasm")).unwrap();
    let deploy_url = format!("{}/api/v1/functions/greeter", host.url);
    let call_url = format!("{}/functions/v1/greeter?mode=whoami&name=swap", host.url);

    let refused = http
        .put(&deploy_url)
        .header("apikey", host.anon_key())
        .body(hello.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(refused, StatusCode::FORBIDDEN).await,
        "forbidden"
    );

    let garbage = http
        .put(&deploy_url)
        .header("apikey", host.service_key())
        .body(b"\0asm not really".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(garbage, StatusCode::BAD_REQUEST).await,
        "invalid_component"
    );

    let first: Value = http
        .put(&deploy_url)
        .header("apikey", host.service_key())
        .body(hello)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["name"], "greeter");
    let greeting: Value = http
        .get(&call_url)
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(greeting["greeting"], "Hello, swap!");

    let second: Value = http
        .put(&deploy_url)
        .header("apikey", host.service_key())
        .body(misbehave)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(first["version"], second["version"]);
    let swapped: Value = http
        .get(&call_url)
        .header("apikey", host.anon_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(swapped["role"], "anon", "{swapped}");

    let listed: Value = http
        .get(format!("{}/api/v1/functions", host.url))
        .header("apikey", host.service_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "greeter" && f["version"] == second["version"]));
}
