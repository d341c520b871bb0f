//! The host's edge in production: HTTPS on both ports (HTTP/1.1 and
//! HTTP/2; supabase-js and boto3 over it; the certificate read again on
//! SIGHUP), browsers' preflights for every API (as Supabase's gateway
//! answers them), request ids in answers and in JSON logs, and `/metrics`
//! counting every API.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::{Method, StatusCode, Version};
use selfdb_tests::tls::{first_der, TestCa};
use selfdb_tests::{eventually, workspace_root, Host, HostBuilder, RequestExt};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A client that trusts `ca` and opens a new connection per request (so a
/// reloaded certificate is seen), with its TLS details in each response.
fn tls_client(ca: &TestCa, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server's certificate")
        .to_vec()
}

#[tokio::test]
async fn https_on_both_ports_for_real_clients_with_a_certificate_reloaded_on_sighup() {
    let dir = selfdb_tests::dev_data_dir();
    let ca = TestCa::create(&dir.join("ca"));
    let first = ca.issue("server");
    let host = Host::serve()
        .await
        .https(&first.cert, &first.key, ca.pem())
        .start();
    assert!(host.url.starts_with("https://"), "{}", host.url);
    let s3 = host.env["S3_ENDPOINT"].clone();
    assert!(s3.starts_with("https://"), "{s3}");

    // HTTP/2 by ALPN, and HTTP/1.1 for clients that speak only that, on
    // both ports.
    let h2 = tls_client(&ca, false);
    let h1 = tls_client(&ca, true);
    for base in [&host.url, &s3] {
        let answer = h2.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(answer.version(), Version::HTTP_2, "{base}");
        assert_eq!(peer_certificate(&answer), first_der(&first.cert));
        let answer = h1.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(answer.version(), Version::HTTP_11, "{base}");
    }
    assert_eq!(
        h2.get(host.url_of("/rest/v1/"))
            .header("apikey", host.anon_key())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Plain HTTP on an HTTPS port gets no answer, not a downgrade.
    let plain = host.url.replacen("https://", "http://", 1);
    assert!(reqwest::get(format!("{plain}/health")).await.is_err());

    // supabase-js (node trusts the CA through NODE_EXTRA_CA_CERTS).
    let (host, ca_path) = tokio::task::spawn_blocking({
        let ca_path = ca.cert.display().to_string();
        move || {
            crate::supabase_js::run_node_suite_with(
                &host,
                "https.test.mjs",
                &[("NODE_EXTRA_CA_CERTS", ca_path.as_str())],
            );
            (host, ca_path)
        }
    })
    .await
    .unwrap();

    // boto3, verifying with the CA.
    let env = host.env.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(crate::storage_s3::python_with_boto3())
            .arg(workspace_root().join("tests/s3/boto3_https.py"))
            .env("S3_ENDPOINT", &env["S3_ENDPOINT"])
            .env("S3_ACCESS_KEY_ID", &env["S3_ACCESS_KEY_ID"])
            .env("S3_SECRET_ACCESS_KEY", &env["S3_SECRET_ACCESS_KEY"])
            .env("AWS_CA_BUNDLE", &ca_path)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "boto3 over https failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // A renewed certificate in the same files takes effect on SIGHUP, on
    // both ports, without a restart.
    let original = first_der(&first.cert);
    let second = ca.issue_to(&first.cert, &first.key);
    let renewed = first_der(&second.cert);
    assert_ne!(renewed, original);
    // Until the signal, the certificate loaded at start is served.
    let before = tls_client(&ca, false)
        .get(host.url_of("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(peer_certificate(&before), original);
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGHUP).unwrap();
    for base in [host.url.clone(), s3.clone()] {
        let (ca, renewed) = (&ca, &renewed);
        // A new client each time: one that resumed its TLS session would
        // be shown the certificate of the session's first handshake.
        let seen = eventually(WAIT, || {
            let base = base.clone();
            async move {
                let client = tls_client(ca, false);
                match client.get(format!("{base}/health")).send().await {
                    Ok(answer) => peer_certificate(&answer) == *renewed,
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(
            seen,
            "{base} still serves the old certificate:\n{}",
            host.stderr()
        );
    }

    // A broken file is refused at reload: the certificate in use stays.
    std::fs::write(&first.cert, "not a certificate").unwrap();
    kill(Pid::from_raw(host.child.id() as i32), Signal::SIGHUP).unwrap();
    assert!(
        host.wait_for_log("TLS certificate not reloaded", WAIT)
            .await,
        "{}",
        host.stderr()
    );
    let answer = tls_client(&ca, true)
        .get(host.url_of("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(peer_certificate(&answer), renewed);
    // Stopped off the runtime, which the clients' connections need to see
    // the host close them.
    drop((h1, h2));
    tokio::task::spawn_blocking(move || drop(host))
        .await
        .unwrap();
}

/// A preflight as a browser sends it before a cross-origin request.
async fn preflight(
    client: &reqwest::Client,
    url: &str,
    origin: &str,
    method: &str,
) -> reqwest::Response {
    client
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization,apikey,content-type,x-client-info",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn browsers_preflights_are_answered_for_every_api_as_supabases_gateway_does() {
    let host = Host::serve().await.start();
    let s3 = host.env["S3_ENDPOINT"].clone();
    let client = host.http();
    let origin = "https://app.example";
    // One route of each API, with the method a browser app would use.
    let routes = [
        ("/rest/v1/todos", "POST"),
        ("/rest/v1/rpc/total", "POST"),
        ("/auth/v1/token?grant_type=password", "POST"),
        ("/auth/v1/user", "PUT"),
        ("/storage/v1/object/avatars/me.png", "POST"),
        ("/storage/v1/bucket", "GET"),
        ("/functions/v1/hello", "POST"),
        ("/realtime/v1/api/broadcast", "POST"),
        ("/api/v1/functions/hello", "PUT"),
        ("/projects/1/rest/v1/items", "GET"),
        ("/query", "POST"),
    ];
    for (path, method) in routes {
        let answer = preflight(&client, &host.url_of(path), origin, method).await;
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&answer, "access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        assert_eq!(
            header(&answer, "access-control-allow-methods"),
            Some("GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"),
            "{path}"
        );
        assert_eq!(
            header(&answer, "access-control-allow-headers"),
            Some("authorization,apikey,content-type,x-client-info"),
            "{path}"
        );
        assert!(answer.bytes().await.unwrap().is_empty(), "{path}");
    }
    let answer = preflight(&client, &format!("{s3}/bucket/key.png"), origin, "PUT").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));

    // The request itself: the origin allowed, and what the data API
    // exposes (supabase-js reads Content-Range for counts).
    let answer = client
        .get(host.url_of("/rest/v1/"))
        .header("origin", origin)
        .apikey(host.anon_key())
        .fetch()
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));
    assert!(header(&answer, "access-control-expose-headers")
        .is_some_and(|h| h.contains("Content-Range")));
    // Errors too: a browser must be able to read why it was refused.
    let answer = client
        .get(host.url_of("/rest/v1/todos"))
        .header("origin", origin)
        .fetch()
        .await;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));
    // An OPTIONS that is no preflight reaches the API.
    let answer = client
        .request(Method::OPTIONS, host.url_of("/rest/v1/"))
        .header("origin", origin)
        .fetch()
        .await;
    assert_ne!(answer.status(), StatusCode::OK);

    // With a list, a listed origin gets itself back and others nothing.
    let narrow = HostBuilder::alongside(&host)
        .arg("--cors-origins")
        .arg("https://app.example, http://localhost:5173")
        .start();
    let answer = preflight(&client, &narrow.url_of("/rest/v1/todos"), origin, "POST").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&answer, "vary"), Some("Origin"));
    let answer = preflight(
        &client,
        &narrow.url_of("/rest/v1/todos"),
        "https://elsewhere.example",
        "POST",
    )
    .await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let answer = client
        .get(narrow.url_of("/rest/v1/"))
        .header("origin", "https://elsewhere.example")
        .apikey(narrow.anon_key())
        .fetch()
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let narrow_s3 = narrow.env["S3_ENDPOINT"].clone();
    let answer = preflight(
        &client,
        &format!("{narrow_s3}/bucket/key"),
        "http://localhost:5173",
        "PUT",
    )
    .await;
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some("http://localhost:5173")
    );

    // A value that is no origin stops the host with a clear error.
    let refused = Command::new(selfdb_tests::selfdb_binary())
        .args(["serve", "--database-url", "postgres://unused/x"])
        .args(["--cors-origins", "app.example"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("invalid CORS origin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// The JSON objects the host logged (every line must be one).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn access_line<'a>(lines: &'a [Value], request_id: &str) -> Option<&'a Value> {
    lines
        .iter()
        .find(|l| l["target"] == "selfdb::access" && l["request_id"] == request_id)
}

#[tokio::test]
async fn requests_carry_their_id_into_json_logs_and_every_api_is_counted() {
    let host = Host::serve().await.arg("--log-format").arg("json").start();

    // A balancer's id is kept; without one the host makes one.
    let answer = host
        .get("/functions/v1/hello")
        .header("x-request-id", "lb-0001:abc")
        .apikey(host.anon_key())
        .fetch()
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "x-request-id"), Some("lb-0001:abc"));
    let answer = host.get("/rest/v1/").apikey(host.anon_key()).fetch().await;
    let made = header(&answer, "x-request-id").unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");

    // One JSON line per request, with its id, API, status and time.
    let logged = host
        .wait_for_log_where(WAIT, |log| {
            log.contains(&made) && log.contains("lb-0001:abc")
        })
        .await;
    assert!(logged, "{}", host.stderr());
    let lines = json_lines(&host.stderr());
    let line = access_line(&lines, "lb-0001:abc").expect("the function's request line");
    assert_eq!(line["api"], "functions");
    assert_eq!(line["path"], "/functions/v1/hello");
    assert_eq!(line["status"], 200);
    assert!(line["ms"].as_f64().is_some());
    let line = access_line(&lines, &made).expect("the data API's request line");
    assert_eq!(line["api"], "rest");
    assert_eq!(line["method"], "GET");

    // The function's log record names the same request.
    let recorded = eventually(WAIT, || async {
        let logs = host
            .get("/api/v1/functions/hello/logs")
            .service_role(&host)
            .fetch_json()
            .await;
        logs["logs"]
            .as_array()
            .is_some_and(|records| records.iter().any(|r| r["request_id"] == "lb-0001:abc"))
    })
    .await;
    assert!(recorded, "no log record of request lb-0001:abc");

    // Every API shows in /metrics: these requests, and the S3 port's.
    let sign_in = host
        .post("/auth/v1/token?grant_type=password")
        .apikey(host.anon_key())
        .json(&json!({"email": "nobody@example.com", "password": "wrong-password"}))
        .fetch()
        .await;
    assert_eq!(sign_in.status(), StatusCode::BAD_REQUEST);
    host.get("/storage/v1/bucket")
        .apikey(host.service_key())
        .fetch()
        .await;
    let s3 = host.env["S3_ENDPOINT"].clone();
    let anonymous = host.http().get(format!("{s3}/")).fetch().await;
    let s3_counted = format!(
        r#"selfdb_http_requests_total{{api="s3",method="GET",status="{}"}} 1"#,
        anonymous.status().as_u16()
    );
    let metrics = host.get("/metrics").fetch().await;
    assert!(header(&metrics, "content-type")
        .is_some_and(|t| t.starts_with("application/openmetrics-text")));
    let text = metrics.text().await.unwrap();
    for expected in [
        r#"selfdb_http_requests_total{api="functions",method="GET",status="200"} 1"#,
        r#"selfdb_http_requests_total{api="rest",method="GET",status="200"} 1"#,
        r#"selfdb_http_requests_total{api="auth",method="POST",status="400"} 1"#,
        r#"selfdb_http_requests_total{api="storage",method="GET",status="200"} 1"#,
        s3_counted.as_str(),
        r#"selfdb_http_request_duration_seconds_count{api="rest"} 1"#,
        r#"selfdb_http_requests_in_flight{api="metrics"} 1"#,
        "selfdb_invocations_total ",
        "selfdb_realtime_connections 0",
        r#"selfdb_db_pool_connections{pool="api"} "#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
    // The S3 request's line carries S3's own request id.
    let s3_id = header(&anonymous, "x-amz-request-id").unwrap().to_owned();
    let logged = host.wait_for_log(&s3_id, WAIT).await;
    assert!(logged, "{}", host.stderr());
    let lines = json_lines(&host.stderr());
    assert_eq!(
        access_line(&lines, &s3_id).expect("the S3 line")["api"],
        "s3"
    );
}
