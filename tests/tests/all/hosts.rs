//! Several hosts acting as one: two `selfdb serve` hosts on one PostgreSQL,
//! one Redis and one upstream S3 store (SeaweedFS), as behind a balancer.
//! What one host does, the other serves (auth sessions, rows, objects over
//! REST and S3, deployed functions, realtime changes); and when one host is
//! killed with SIGKILL in the middle of writes through both, every write it
//! acknowledged is there, the other keeps serving, and nothing the dead host
//! was uploading stays behind upstream.

use crate::realtime::{connect, join, try_next_where, Socket};
use crate::storage_upstream::{start_large_upload, upstream_matches_rows, BUCKET};
use reqwest::StatusCode;
use rusty_s3::actions::CreateMultipartUpload;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use selfdb_tests::{eventually, Host, HostBuilder, Redis, RequestExt, SeaweedFs};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a host may take to see what the other did (a schema reload, a
/// deployed function, a realtime change).
const WAIT: Duration = Duration::from_secs(60);
/// A deploy bundles and compiles TypeScript; a fresh machine also builds the
/// shared JavaScript engine first.
const DEPLOY_WAIT: Duration = Duration::from_secs(600);
/// How long a presigned S3 request stays valid.
const LINK_LIFETIME: Duration = Duration::from_secs(600);

/// The two hosts and what they share. Fields drop in reverse order: the
/// hosts stop before Redis and SeaweedFS do.
struct Pair {
    a: Arc<Host>,
    b: Arc<Host>,
    seaweed: SeaweedFs,
    _redis: Redis,
    prefix: &'static str,
}

/// Both hosts with the same Redis, upstream prefix and settings (`Host`'s
/// builders already share the database, JWT secret and `--secrets-key`).
/// Orphans are collected after 5 s instead of 10 min, so that the test can
/// watch a survivor clean up after a dead host.
async fn two_hosts(prefix: &'static str) -> Pair {
    let seaweed = SeaweedFs::start(BUCKET).await;
    let redis = Redis::start();
    let shared = |mut builder: HostBuilder| {
        let args = seaweed.host_args(BUCKET, prefix).into_iter().chain(
            [
                "--redis-url",
                &redis.url,
                "--storage-release-grace-ms",
                "300",
                "--storage-orphan-grace-ms",
                "5000",
                // Functions run on the shared JavaScript engine: no
                // per-function component build competes for the CPU.
                "--js-own-components",
                "false",
            ]
            .map(str::to_owned),
        );
        for arg in args {
            builder = builder.arg(arg);
        }
        builder
    };
    let a = shared(Host::serve().await).start();
    let b = shared(HostBuilder::alongside(&a)).start();
    Pair {
        a: Arc::new(a),
        b: Arc::new(b),
        seaweed,
        _redis: redis,
        prefix,
    }
}

/// The S3 service key a host printed (stored in the database, so every
/// host has the same one) and `host`'s S3 endpoint.
fn s3_bucket(host: &Host, bucket: &str) -> (Bucket, Credentials) {
    let endpoint = host.env["S3_ENDPOINT"].parse().expect("S3 endpoint");
    let bucket =
        Bucket::new(endpoint, UrlStyle::Path, bucket.to_owned(), "us-east-1").expect("bucket");
    let credentials = Credentials::new(
        host.env["S3_ACCESS_KEY_ID"].clone(),
        host.env["S3_SECRET_ACCESS_KEY"].clone(),
    );
    (bucket, credentials)
}

fn object_bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

/// Joins `table`'s inserts on `socket`.
async fn subscribe_inserts(socket: &mut Socket, table: &str) {
    let reply = join(
        socket,
        &format!("realtime:{table}"),
        json!({ "postgres_changes": [{ "event": "INSERT", "schema": "public", "table": table }] }),
    )
    .await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");
}

/// Calls `insert(n)` for n = 0, 1, ... until `socket` delivers an insert
/// into `table` that one of them made, and returns its record. The first
/// changes may pass before the capture (on whichever host holds it) and the
/// Redis subscription of the subscriber's host are running; later ones must
/// arrive.
async fn insert_until_seen<F, Fut>(socket: &mut Socket, table: &str, mut insert: F) -> Value
where
    F: FnMut(i32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + WAIT;
    for n in 0.. {
        insert(n).await;
        let frame = try_next_where(socket, Duration::from_secs(1), |f| {
            f[3] == "postgres_changes" && f[4]["data"]["table"] == table
        })
        .await;
        if let Some(frame) = frame {
            return frame[4]["data"]["record"].clone();
        }
        assert!(Instant::now() < deadline, "no change on {table} arrived");
    }
    unreachable!("the loop above returns or fails")
}

#[tokio::test]
async fn what_one_host_does_the_other_serves() {
    let pair = two_hosts("parity").await;
    let (a, b) = (&*pair.a, &*pair.b);

    // Auth: signed up on A; signed in on B; the refresh token B issued is
    // rotated on A, and A's replacement on B again.
    let email = "two-hosts@example.com";
    let status = a
        .post("/auth/v1/signup")
        .apikey(a.anon_key())
        .json(&json!({"email": email, "password": "a-good-password"}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, session) = b
        .post("/auth/v1/token?grant_type=password")
        .apikey(b.anon_key())
        .json(&json!({"email": email, "password": "a-good-password"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let mut refresh = session["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let mut access = String::new();
    for host in [a, b] {
        let (status, session) = host
            .post("/auth/v1/token?grant_type=refresh_token")
            .apikey(host.anon_key())
            .json(&json!({"refresh_token": refresh}))
            .fetch_status_json()
            .await;
        assert_eq!(status, StatusCode::OK, "refresh on {}: {session}", host.url);
        refresh = session["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        access = session["access_token"].as_str().expect("access").to_owned();
    }
    let (status, user) = a
        .get("/auth/v1/user")
        .apikey(a.anon_key())
        .bearer_auth(&access)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], email);

    // Rows: written through A as the user, read through B under the same
    // row rule.
    a.db()
        .await
        .batch_execute(
            "create table notes (id int primary key, owner uuid not null default auth.uid(), body text not null);
             alter table notes enable row level security;
             create policy own on notes for all to authenticated
                 using (owner = auth.uid()) with check (owner = auth.uid());
             grant select, insert on notes to authenticated;
             alter publication supabase_realtime add table notes;",
        )
        .await
        .unwrap();
    for host in [a, b] {
        let reloaded = eventually(WAIT, || async {
            host.get("/rest/v1/notes")
                .apikey(host.anon_key())
                .bearer_auth(&access)
                .fetch_status()
                .await
                == StatusCode::OK
        })
        .await;
        assert!(reloaded, "{} never saw the new table", host.url);
    }
    let status = a
        .post("/rest/v1/notes")
        .apikey(a.anon_key())
        .bearer_auth(&access)
        .json(&json!({"id": 1, "body": "written through A"}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let read = b
        .get("/rest/v1/notes?select=id,body")
        .apikey(b.anon_key())
        .bearer_auth(&access)
        .fetch_json()
        .await;
    assert_eq!(read, json!([{"id": 1, "body": "written through A"}]));
    let anonymous = b
        .get("/rest/v1/notes")
        .apikey(b.anon_key())
        .fetch_json()
        .await;
    assert_eq!(anonymous, json!([]), "the row rule holds on B");

    // Realtime: a subscriber on B sees inserts made through A.
    let mut socket = connect(b, b.service_key()).await;
    subscribe_inserts(&mut socket, "notes").await;
    let record = insert_until_seen(&mut socket, "notes", |n| {
        let (a, access) = (a, &access);
        async move {
            let status = a
                .post("/rest/v1/notes")
                .apikey(a.anon_key())
                .bearer_auth(access)
                .json(&json!({"id": 100 + n, "body": "realtime through A"}))
                .fetch_status()
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    })
    .await;
    assert_eq!(record["body"], "realtime through A", "{record}");

    // Objects: uploaded to A over REST, downloaded from B over REST and
    // over B's S3 port with the S3 key A printed; and the other way round.
    a.create_bucket("media", false).await;
    let photo = object_bytes(7, 300_000);
    let status = a
        .post("/storage/v1/object/media/photo.bin")
        .service_role(a)
        .body(photo.clone())
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, got) = b
        .get("/storage/v1/object/media/photo.bin")
        .service_role(b)
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == photo, "B's REST download differs from A's upload");
    let (s3_on_b, key_of_a) = {
        let (bucket, _) = s3_bucket(b, "media");
        let (_, credentials) = s3_bucket(a, "media");
        (bucket, credentials)
    };
    let url = s3_on_b
        .get_object(Some(&key_of_a), "photo.bin")
        .sign(LINK_LIFETIME);
    let response = b.http().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.bytes().await.unwrap() == photo,
        "B's S3 download differs from A's upload"
    );
    let scan = object_bytes(8, 200_000);
    let url = s3_on_b
        .put_object(Some(&key_of_a), "scan.bin")
        .sign(LINK_LIFETIME);
    let response = b.http().put(url).body(scan.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, got) = a
        .get("/storage/v1/object/media/scan.bin")
        .service_role(a)
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == scan, "A's download differs from B's S3 upload");

    // A multipart upload spread over both: created on A, part 1 sent to B,
    // part 2 to A, completed on B.
    let (s3_on_a, _) = s3_bucket(a, "media");
    let url = s3_on_a
        .create_multipart_upload(Some(&key_of_a), "parts.bin")
        .sign(LINK_LIFETIME);
    let response = a.http().post(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let created = CreateMultipartUpload::parse_response(response.bytes().await.unwrap())
        .expect("CreateMultipartUpload's answer");
    let upload_id = created.upload_id();
    let parts = [object_bytes(9, 5 << 20), object_bytes(10, 100_000)];
    let mut etags = Vec::new();
    for (number, (bucket, bytes)) in [(&s3_on_b, &parts[0]), (&s3_on_a, &parts[1])]
        .into_iter()
        .enumerate()
    {
        let url = bucket
            .upload_part(Some(&key_of_a), "parts.bin", number as u16 + 1, upload_id)
            .sign(LINK_LIFETIME);
        let response = a.http().put(url).body(bytes.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "part {}", number + 1);
        let etag = response.headers()["etag"]
            .to_str()
            .expect("ETag")
            .to_owned();
        etags.push(etag);
    }
    let complete = s3_on_b.complete_multipart_upload(
        Some(&key_of_a),
        "parts.bin",
        upload_id,
        etags.iter().map(String::as_str),
    );
    let url = complete.sign(LINK_LIFETIME);
    let response = b
        .http()
        .post(url)
        .body(complete.body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, got) = a
        .get("/storage/v1/object/media/parts.bin")
        .service_role(a)
        .fetch_bytes()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(got == parts.concat(), "the assembled object differs");

    // Functions: deployed through A's admin API, served by B.
    let (status, deployed) = a
        .put("/api/v1/functions/where?entry=index.ts")
        .service_role(a)
        .header("content-type", "application/typescript")
        .timeout(DEPLOY_WAIT)
        .body(
            r#"import { serve } from "selfdb";
serve((req: Request) => new Response(JSON.stringify({ deployed: "through A", path: new URL(req.url).pathname }), { headers: { "content-type": "application/json" } }));
"#,
        )
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{deployed}\n{}", a.stderr());
    let served = eventually(DEPLOY_WAIT, || async {
        let (status, body) = b
            .get("/functions/v1/where")
            .apikey(b.anon_key())
            .fetch_status_json()
            .await;
        status == StatusCode::OK && body["deployed"] == "through A"
    })
    .await;
    assert!(served, "B never served the function:\n{}", b.stderr());
}

/// What a host's writers got acknowledged, and how each writer stopped.
#[derive(Default)]
struct Acks {
    rows: Vec<i64>,
    objects: Vec<(String, u32)>,
    /// (when, what) of each failed write; a writer stops at its first.
    failures: Vec<(Instant, String)>,
}

type Shared = Arc<Mutex<Acks>>;

/// Whether a write was acknowledged with `ok`; else what came instead.
fn acknowledged(sent: reqwest::Result<reqwest::Response>, ok: StatusCode) -> Result<(), String> {
    match sent {
        Ok(response) if response.status() == ok => Ok(()),
        Ok(response) => Err(response.status().to_string()),
        Err(err) => Err(err.to_string()),
    }
}

/// Inserts `ledger` rows with ids `writer * 1_000_000 + n` through `host`
/// until `stop`, recording each the host acknowledged (201).
async fn rest_writer(host: Arc<Host>, writer: i64, acks: Shared, stop: Arc<AtomicBool>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = writer * 1_000_000 + n;
        n += 1;
        let sent = host
            .post("/rest/v1/ledger")
            .service_role(&host)
            .header("prefer", "return=minimal")
            .timeout(Duration::from_secs(60))
            .json(&json!({"id": id}))
            .send()
            .await;
        let mut acks = acks.lock().unwrap();
        match acknowledged(sent, StatusCode::CREATED) {
            Ok(()) => acks.rows.push(id),
            Err(why) => {
                return acks
                    .failures
                    .push((Instant::now(), format!("insert {id}: {why}")))
            }
        }
    }
}

/// PUTs 64 KiB objects `<label>-<n>.bin` into bucket `load` through
/// `host`'s S3 port until `stop`, recording each acknowledged (200).
async fn s3_writer(host: Arc<Host>, label: &'static str, acks: Shared, stop: Arc<AtomicBool>) {
    let (bucket, credentials) = s3_bucket(&host, "load");
    let seed_base = if label == "a" { 0 } else { 1_000_000 };
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{label}-{n}.bin");
        let seed = seed_base + n;
        n += 1;
        let url = bucket
            .put_object(Some(&credentials), &key)
            .sign(LINK_LIFETIME);
        let sent = host
            .http()
            .put(url)
            .timeout(Duration::from_secs(60))
            .body(object_bytes(seed, 65_536))
            .send()
            .await;
        let mut acks = acks.lock().unwrap();
        match acknowledged(sent, StatusCode::OK) {
            Ok(()) => acks.objects.push((key, seed)),
            Err(why) => {
                return acks
                    .failures
                    .push((Instant::now(), format!("put {key}: {why}")))
            }
        }
    }
}

fn counts(acks: &Shared) -> (usize, usize) {
    let acks = acks.lock().unwrap();
    (acks.rows.len(), acks.objects.len())
}

#[tokio::test]
async fn a_host_killed_under_write_load_loses_no_acknowledged_write() {
    let pair = two_hosts("killed").await;
    let (a, b) = (&pair.a, &pair.b);
    let db = b.db().await;
    db.batch_execute(
        "create table ledger (id bigint primary key);
         grant insert, select on ledger to service_role;
         create table pings (id int primary key, note text);
         grant insert, select on pings to service_role;
         alter publication supabase_realtime add table pings;",
    )
    .await
    .unwrap();
    a.create_bucket("load", false).await;
    for host in [a, b] {
        let reloaded = eventually(WAIT, || async {
            host.get("/rest/v1/ledger?limit=1")
                .service_role(host)
                .fetch_status()
                .await
                == StatusCode::OK
        })
        .await;
        assert!(reloaded, "{} never saw the new table", host.url);
    }
    // A subscriber on B, the host that survives.
    let mut socket = connect(b, b.service_key()).await;
    subscribe_inserts(&mut socket, "pings").await;

    // Four REST writers and one S3 writer per host.
    let a_pid = nix::unistd::Pid::from_raw(a.child.id() as i32);
    let stop = Arc::new(AtomicBool::new(false));
    let (on_a, on_b): (Shared, Shared) = Default::default();
    let mut writers = Vec::new();
    for (host, acks, first, label) in [(a, &on_a, 0, "a"), (b, &on_b, 4, "b")] {
        for writer in first..first + 4 {
            writers.push(tokio::spawn(rest_writer(
                host.clone(),
                writer,
                acks.clone(),
                stop.clone(),
            )));
        }
        writers.push(tokio::spawn(s3_writer(
            host.clone(),
            label,
            acks.clone(),
            stop.clone(),
        )));
    }

    // Both hosts are taking writes; then A dies mid-request.
    let going = eventually(WAIT, || async {
        let ((rows_a, objects_a), (rows_b, objects_b)) = (counts(&on_a), counts(&on_b));
        rows_a >= 100 && objects_a >= 5 && rows_b >= 100 && objects_b >= 5
    })
    .await;
    assert!(
        going,
        "the writers did not get going: A {:?}, B {:?}",
        counts(&on_a),
        counts(&on_b)
    );
    // A large upload to A is half sent: its first parts are upstream, in a
    // multipart upload only A knows how to finish.
    let half_sent = start_large_upload(a, "/storage/v1/object/load/large.bin").await;
    let killed_at = Instant::now();
    nix::sys::signal::kill(a_pid, nix::sys::signal::Signal::SIGKILL).expect("kill host A");
    let open = pair.seaweed.inventory(BUCKET, pair.prefix).await;
    assert!(
        !open.uploads.is_empty(),
        "A's multipart upload should be left open: {open:?}"
    );
    drop(half_sent);
    // B keeps taking writes afterwards.
    let (rows_then, objects_then) = counts(&on_b);
    let continued = eventually(WAIT, || async {
        let (rows, objects) = counts(&on_b);
        rows >= rows_then + 100 && objects >= objects_then + 5
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let on_a = std::mem::take(&mut *on_a.lock().unwrap());
    let on_b = std::mem::take(&mut *on_b.lock().unwrap());
    assert!(
        on_b.failures.is_empty(),
        "B failed writes: {:?}\nB's log:\n{}",
        on_b.failures,
        b.stderr()
    );
    assert!(
        continued,
        "B stopped taking writes after A died: {} rows, {} objects\nB's log:\n{}",
        on_b.rows.len(),
        on_b.objects.len(),
        b.stderr()
    );
    // Every writer of A was cut off by the kill, and none before it.
    assert_eq!(on_a.failures.len(), 5, "{:?}", on_a.failures);
    assert!(
        on_a.failures.iter().all(|(at, _)| *at >= killed_at),
        "A failed a write before it was killed: {:?}",
        on_a.failures
    );

    // Every acknowledged row is there...
    let acknowledged: Vec<i64> = on_a.rows.iter().chain(&on_b.rows).copied().collect();
    let present: i64 = db
        .query_one(
            "select count(*) from ledger where id = any($1)",
            &[&acknowledged],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        present,
        acknowledged.len() as i64,
        "acknowledged rows are missing"
    );
    // ...and every acknowledged object downloads from B as written.
    for (key, seed) in on_a.objects.iter().chain(&on_b.objects) {
        let (status, got) = b
            .get(&format!("/storage/v1/object/load/{key}"))
            .service_role(b)
            .fetch_bytes()
            .await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert!(
            got == object_bytes(*seed, 65_536),
            "{key} came back different"
        );
    }

    // B still answers, and delivers changes now that it captures them
    // itself if A did.
    let health = b.get("/health").fetch_json().await;
    assert_eq!(health["status"], "ok", "{health}");
    let record = insert_until_seen(&mut socket, "pings", |n| {
        let b = &**b;
        async move {
            let status = b
                .post("/rest/v1/pings")
                .service_role(b)
                .json(&json!({"id": n, "note": "after the kill"}))
                .fetch_status()
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    })
    .await;
    assert_eq!(record["note"], "after the kill", "{record}");

    // Whatever A was uploading when it died is collected by B: upstream
    // holds exactly the bytes rows reference, with no upload left open.
    upstream_matches_rows(b, &pair.seaweed, pair.prefix).await;
    println!(
        "acknowledged: A {} rows, {} objects; B {} rows, {} objects",
        on_a.rows.len(),
        on_a.objects.len(),
        on_b.rows.len(),
        on_b.objects.len()
    );
}
