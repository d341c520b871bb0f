//! TypeScript/JavaScript functions through `/api/v1/functions`: deployed as
//! source, checked and bundled by the toolchain, run on the shared engine
//! at once; settings, secrets, RLS as the caller, outbound fetch, logs,
//! refused builds, rollback, time limits, and a second host serving what
//! the first deployed.

use reqwest::StatusCode;
use selfdb_tests::{eventually, user_token, Host, HostBuilder, RequestExt};
use serde_json::{json, Value};
use std::time::Duration;

/// A first JavaScript deploy builds and compiles the shared engine (once per
/// test run): minutes on a busy two-core machine in a debug build.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(600);
const WAIT: Duration = Duration::from_secs(60);

const NOTES_V1: &str = r#"import { serve, db, env, caller, log } from "selfdb";

serve(async (req: Request): Promise<Response> => {
  const url = new URL(req.url);
  if (url.searchParams.get("mode") === "fetch") {
    const target = url.searchParams.get("target") ?? "";
    try {
      const res = await fetch(target);
      return new Response(JSON.stringify({ fetched: res.status }), { headers: { "content-type": "application/json" } });
    } catch (err) {
      return new Response(JSON.stringify({ refused: String(err) }), { status: 502, headers: { "content-type": "application/json" } });
    }
  }
  if (url.searchParams.get("mode") === "spin") {
    for (;;) {}
  }
  const notes = db.query<{ body: string }>("select body from notes order by id");
  console.log("listing notes for", caller().role);
  log.info("structured line");
  return new Response(
    JSON.stringify({
      version: 1,
      notes: notes.map((n) => n.body),
      role: caller().role,
      greeting: env.get("GREETING") ?? null,
      token: env.get("API_TOKEN") ?? null,
      path: url.pathname,
    }),
    { headers: { "content-type": "application/json" } },
  );
});
"#;

const NOTES_V2: &str = r#"import { serve } from "selfdb";
serve(() => new Response(JSON.stringify({ version: 2 }), { headers: { "content-type": "application/json" } }));
"#;

const TYPE_ERROR: &str = r#"import { serve } from "selfdb";
const n: number = "not a number";
serve(() => new Response(String(n)));
"#;

async fn deploy_ts(host: &Host, name: &str, source: &str) -> (StatusCode, Value) {
    host.put(&format!("/api/v1/functions/{name}?entry=index.ts"))
        .service_role(host)
        .header("content-type", "application/typescript")
        .timeout(DEPLOY_TIMEOUT)
        .body(source.to_owned())
        .fetch_status_json()
        .await
}

#[tokio::test]
async fn typescript_functions_deploy_run_as_the_caller_and_roll_back() {
    let host = Host::serve()
        .await
        .arg("--js-own-components")
        .arg("false")
        .start();
    let db = host.db().await;
    db.batch_execute(
        "create table notes (id serial primary key, owner uuid not null, body text not null);
         alter table notes enable row level security;
         create policy own on notes for select to authenticated using (owner = auth.uid());
         grant select on notes to authenticated;",
    )
    .await
    .unwrap();
    let ada = host.create_user("ada@example.com").await;
    let bob = host.create_user("bob@example.com").await;
    db.execute(
        "insert into notes (owner, body) values ($1::text::uuid, 'ada''s note'), ($2::text::uuid, 'bob''s note')",
        &[&ada, &bob],
    )
    .await
    .unwrap();

    let (status, first) = deploy_ts(&host, "notes", NOTES_V1).await;
    assert_eq!(status, StatusCode::OK, "{first}\n{}", host.stderr());
    assert_eq!(first["version"], 1);
    assert_eq!(first["kind"], "ts");
    // The source it was built from, for the dashboard's editor; the
    // service key deployed it.
    let source = host
        .get("/api/v1/functions/notes/versions/1/source")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(source, json!({"entry": "index.ts", "source": NOTES_V1}));
    let versions = host
        .get("/api/v1/functions/notes/versions")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(
        versions["versions"][0]["created_by"], "service_role",
        "{versions}"
    );
    for missing in ["2", "x"] {
        let status = host
            .get(&format!(
                "/api/v1/functions/notes/versions/{missing}/source"
            ))
            .service_role(&host)
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "version {missing}");
    }

    // Settings and secrets; the API shows secrets' names only.
    let (status, settings) = host
        .patch("/api/v1/functions/notes")
        .service_role(&host)
        .json(&json!({"env": {"GREETING": "hi"}, "time_ms": 1000, "allowed_hosts": ["127.0.0.1"]}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (status, secrets) = host
        .put("/api/v1/functions/notes/secrets")
        .service_role(&host)
        .json(&json!({"API_TOKEN": "s3cret-value"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{secrets}");
    let details = host
        .get("/api/v1/functions/notes")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(details["secrets"], json!(["API_TOKEN"]));
    assert!(!details.to_string().contains("s3cret-value"), "{details}");
    let stored: Vec<u8> = db
        .query_one("select ciphertext from selfdb.function_secrets", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!stored.windows(12).any(|w| w == b"s3cret-value"));

    // Ada's token sees Ada's note only: the query ran as her, under RLS.
    let as_ada = host
        .get("/functions/v1/notes/sub/path?x=1")
        .apikey(host.anon_key())
        .bearer_auth(user_token(&ada, 600))
        .fetch_json()
        .await;
    assert_eq!(as_ada["notes"], json!(["ada's note"]), "{as_ada}");
    assert_eq!(as_ada["role"], "authenticated");
    assert_eq!(as_ada["greeting"], "hi");
    assert_eq!(as_ada["token"], "s3cret-value");
    assert_eq!(as_ada["path"], "/functions/v1/notes/sub/path");

    // verify_jwt (default on): no credentials, no call.
    let status = host.get("/functions/v1/notes").fetch_status().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Outbound fetch: allowed to 127.0.0.1, refused elsewhere.
    let port = host.url.rsplit(':').next().unwrap().to_owned();
    let allowed = host
        .get(&format!(
            "/functions/v1/notes?mode=fetch&target=http://127.0.0.1:{port}/health"
        ))
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(allowed["fetched"], 200, "{allowed}");
    let (status, refused) = host
        .get(&format!(
            "/functions/v1/notes?mode=fetch&target=http://localhost:{port}/health"
        ))
        .apikey(host.anon_key())
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");

    // A runaway loop stops at the function's time limit.
    let (status, spun) = host
        .get("/functions/v1/notes?mode=spin")
        .apikey(host.anon_key())
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{spun}");
    assert_eq!(spun["error"]["code"], "function_time_limit");

    // A type error is refused with its position; version 1 keeps serving.
    let (status, refused) = deploy_ts(&host, "notes", TYPE_ERROR).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "build_failed");
    let error = &refused["error"]["details"]["errors"][0];
    assert_eq!(error["file"], "index.ts", "{refused}");
    assert_eq!(error["line"], 2, "{refused}");
    assert!(
        error["message"].as_str().unwrap().contains("TS2322"),
        "{refused}"
    );
    // A syntax error, from the bundler.
    let (status, refused) = deploy_ts(&host, "notes", "serve(() => {\n  return (;\n});\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        refused["error"]["details"]["errors"][0]["line"], 2,
        "{refused}"
    );
    let still = host
        .get("/functions/v1/notes")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(still["version"], 1, "{still}");

    // Version 2, then back to 1 without naming it.
    let (status, second) = deploy_ts(&host, "notes", NOTES_V2).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["version"], 2);
    let now = host
        .get("/functions/v1/notes")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(now["version"], 2);
    let (status, rolled) = host
        .post("/api/v1/functions/notes/rollback")
        .service_role(&host)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["version"], 1);
    let back = host
        .get("/functions/v1/notes")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(back["version"], 1);
    let versions = host
        .get("/api/v1/functions/notes/versions")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "{versions}"
    );

    // Logs: console.log, the log interface, and one record per invocation.
    let logged = {
        let host = &host;
        eventually(WAIT, || async move {
            let logs = host
                .get("/api/v1/functions/notes/logs")
                .service_role(host)
                .fetch_json()
                .await;
            let records = logs["logs"].as_array().cloned().unwrap_or_default();
            records
                .iter()
                .any(|r| r["message"] == "listing notes for authenticated")
                && records.iter().any(|r| r["message"] == "structured line")
                && records
                    .iter()
                    .any(|r| r["kind"] == "invocation" && r["status"] == 504)
        })
        .await
    };
    assert!(logged, "{}", host.stderr());

    // A second host on the same database serves the active version.
    let second_host = HostBuilder::alongside(&host)
        .arg("--js-own-components")
        .arg("false")
        .start();
    let served = {
        let (second_host, bob) = (&second_host, &bob);
        eventually(WAIT, || async move {
            let (status, body) = second_host
                .get("/functions/v1/notes")
                .apikey(second_host.anon_key())
                .bearer_auth(user_token(bob, 600))
                .fetch_status_json()
                .await;
            status == StatusCode::OK && body["notes"] == json!(["bob's note"])
        })
        .await
    };
    assert!(served, "{}", second_host.stderr());
    // ...and follows the first host's changes.
    let (status, _) = deploy_ts(&host, "notes", NOTES_V2).await;
    assert_eq!(status, StatusCode::OK);
    let followed = {
        let second_host = &second_host;
        eventually(WAIT, || async move {
            let body = second_host
                .get("/functions/v1/notes")
                .apikey(second_host.anon_key())
                .fetch_json()
                .await;
            body["version"] == 2
        })
        .await
    };
    assert!(followed, "{}", second_host.stderr());

    // Deleting removes it from both.
    let status = host
        .delete("/api/v1/functions/notes")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = {
        let second_host = &second_host;
        eventually(WAIT, || async move {
            second_host
                .get("/functions/v1/notes")
                .apikey(second_host.anon_key())
                .fetch_status()
                .await
                == StatusCode::NOT_FOUND
        })
        .await
    };
    assert!(gone, "{}", second_host.stderr());
}

#[tokio::test]
async fn a_javascript_version_gets_its_own_component_in_the_background() {
    let host = Host::serve().await.start();
    let source = r#"import { serve } from "selfdb";
const started = Date.now();
serve(() => new Response(JSON.stringify({ js: true }), { headers: { "content-type": "application/json" } }));
"#;
    let (status, deployed) = host
        .put("/api/v1/functions/own?entry=index.js")
        .service_role(&host)
        .timeout(DEPLOY_TIMEOUT)
        .body(source)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{deployed}\n{}", host.stderr());
    // Answers at once on the shared engine...
    let body = host
        .get("/functions/v1/own")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(body["js"], true);
    // ...and on its own component once that is built and swapped in.
    let built = host
        .wait_for_log(
            "built the function's own component; it serves now",
            Duration::from_secs(900),
        )
        .await;
    assert!(built, "{}", host.stderr());
    let versions = host
        .get("/api/v1/functions/own/versions")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(
        versions["versions"][0]["component_built"], true,
        "{versions}"
    );
    let body = host
        .get("/functions/v1/own")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(body["js"], true);
}

#[tokio::test]
async fn selfdb_dev_redeploys_a_function_when_its_file_changes() {
    let data = selfdb_tests::dev_data_dir();
    let functions = data.join("functions-src");
    std::fs::create_dir_all(functions.join("hot")).unwrap();
    let write = |version: &str| {
        std::fs::write(
            functions.join("hot").join("index.ts"),
            format!(
                "import {{ serve }} from \"selfdb\";\nserve(() => new Response(\"{version}\"));\n"
            ),
        )
        .unwrap();
    };
    write("one");
    let host = Host::dev(&data)
        .arg("--functions-dir")
        .arg(functions.display().to_string())
        .arg("--cache-dir")
        .arg(selfdb_tests::test_cache_dir().display().to_string())
        .arg("--js-own-components")
        .arg("false")
        .start();
    let answer = |host: &Host| {
        let request = host.get("/functions/v1/hot").apikey(host.anon_key());
        async move { request.fetch_bytes().await }
    };
    // Start-up does not wait for JavaScript builds: the function serves
    // once its first build is done.
    let first = {
        let host = &host;
        eventually(DEPLOY_TIMEOUT, || async move {
            answer(host).await == (StatusCode::OK, b"one".to_vec())
        })
        .await
    };
    assert!(first, "{}", host.stderr());

    write("two");
    let reloaded = {
        let host = &host;
        eventually(
            DEPLOY_TIMEOUT,
            || async move { answer(host).await.1 == b"two" },
        )
        .await
    };
    assert!(reloaded, "{}", host.stderr());

    // A broken edit is reported with its position; "two" keeps serving.
    std::fs::write(
        functions.join("hot").join("index.ts"),
        "import { serve } from \"selfdb\";\nconst n: number = \"x\";\nserve(() => new Response(String(n)));\n",
    )
    .unwrap();
    let reported = host
        .wait_for_log("index.ts:2:7", Duration::from_secs(120))
        .await;
    assert!(reported, "{}", host.stderr());
    assert_eq!(answer(&host).await.1, b"two");
}

/// Echoes each chunk of the request body as it arrives, as a line of the
/// response body.
const ECHO: &str = r#"import { serve } from "selfdb";
serve((req: Request) => {
  const reader = req.body!.getReader();
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) {
        controller.enqueue(encoder.encode("end\n"));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(`got ${value.length}\n`));
    },
  });
  return new Response(stream, { headers: { "content-type": "text/plain" } });
});
"#;

/// Both bodies stream: the client sends its second chunk only after it has
/// read the function's answer to the first, which a host that collected
/// either body before passing it on could never deliver.
#[tokio::test]
async fn request_and_response_bodies_stream_through_a_function() {
    use futures::{SinkExt, StreamExt};
    let host = Host::serve()
        .await
        .arg("--js-own-components")
        .arg("false")
        .start();
    let (status, deployed) = deploy_ts(&host, "echo", ECHO).await;
    assert_eq!(status, StatusCode::OK, "{deployed}\n{}", host.stderr());

    let (mut chunks, receiver) =
        futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    chunks.send(Ok(b"aaaa".to_vec())).await.unwrap();
    let response = tokio::time::timeout(
        WAIT,
        host.post("/functions/v1/echo")
            .apikey(host.anon_key())
            .body(reqwest::Body::wrap_stream(receiver))
            .send(),
    )
    .await
    .expect("the response head arrives while the request body is still open")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut read = String::new();
    let mut read_until = async |want: &str, read: &mut String| {
        tokio::time::timeout(WAIT, async {
            while !read.contains(want) {
                let chunk = body.next().await.expect("the body ended early").unwrap();
                read.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {want:?} in {read:?}"));
    };
    read_until("got 4\n", &mut read).await;
    chunks.send(Ok(b"bbbbbb".to_vec())).await.unwrap();
    read_until("got 6\n", &mut read).await;
    drop(chunks);
    read_until("end\n", &mut read).await;
    assert_eq!(read, "got 4\ngot 6\nend\n");
}
