//! `make bench` (bench/events.sh): functions that run on their own, timed
//! from the writer's commit to the handler's commit.
//!
//! The handler (Rust: components/testing/event-sink; JavaScript: the same
//! in a few lines of `onEvent`) runs `pg_notify('event_sink', id)` in its
//! transaction, and this program LISTENs: a notification arrives exactly
//! when a delivery's work has committed.
//!
//! `events_load latency trigger|event rust|js N`: N changes (an insert into
//! a bound table) or custom events (`selfdb.publish` in SQL), one at a
//! time; commit-to-handler latency p50/p99.
//! `events_load throughput rust|js ROWS`: ROWS inserted in one statement;
//! deliveries per second until every one was handled, and the host's peak
//! RSS meanwhile.
//! `events_load deploy rust|js`: only deploys the sink (so the script can
//! wait for a JavaScript version's own component before measuring).
//! `events_load floor N`: Postgres's bare NOTIFY from a commit to a
//! listener, the least any push delivery out of Postgres can take.
//!
//! Environment: SELFDB_URL, SELFDB_SERVICE_KEY, DATABASE_URL, HOST_PID,
//! BENCH_SINK_WASM (the Rust handler's component).

use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

const JS_SINK: &str = r#"import { onEvent, db } from "selfdb";
onEvent((event) => {
  db.query("select pg_notify('event_sink', $1)", [event.id]);
});
"#;

async fn connect() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&env("DATABASE_URL"), tokio_postgres::NoTls)
        .await
        .expect("connect to the database");
    tokio::spawn(connection);
    client
}

/// A connection LISTENing on `channel`; notifications arrive on the
/// receiver with the instant they were read.
async fn listen(
    channel: &str,
) -> (
    tokio_postgres::Client,
    mpsc::UnboundedReceiver<(Instant, String)>,
) {
    let (client, mut connection) =
        tokio_postgres::connect(&env("DATABASE_URL"), tokio_postgres::NoTls)
            .await
            .expect("connect to the database");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                if tx.send((Instant::now(), n.payload().to_owned())).is_err() {
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("listen {channel}"))
        .await
        .expect("listen");
    (client, rx)
}

/// Deploys the sink in `lang` as `bench-sink-LANG`, bound to the bench
/// table and event; returns the function's name.
async fn deploy(lang: &str) -> String {
    let name = format!("bench-sink-{lang}");
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/functions/{name}", env("SELFDB_URL"));
    let triggers =
        json!([{"on": "insert:public.bench_items"}, {"event": "bench.ping"}]).to_string();
    let request = http
        .put(&url)
        .header("apikey", env("SELFDB_SERVICE_KEY"))
        .bearer_auth(env("SELFDB_SERVICE_KEY"))
        .timeout(Duration::from_secs(900));
    let request = match lang {
        "rust" => request
            .query(&[("triggers", triggers.as_str())])
            .header("content-type", "application/wasm")
            .body(std::fs::read(env("BENCH_SINK_WASM")).expect("the sink component")),
        _ => request
            .query(&[("triggers", triggers.as_str()), ("entry", "index.ts")])
            .header("content-type", "application/typescript")
            .body(JS_SINK),
    };
    let response = request.send().await.expect("deploy the sink");
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "deploy {name}: {status} {body}");
    name
}

/// Removes the sink's triggers (another language's run follows).
async fn unbind(name: &str) {
    let response = reqwest::Client::new()
        .put(format!(
            "{}/api/v1/functions/{name}/triggers",
            env("SELFDB_URL")
        ))
        .header("apikey", env("SELFDB_SERVICE_KEY"))
        .bearer_auth(env("SELFDB_SERVICE_KEY"))
        .json(&json!({"triggers": []}))
        .send()
        .await
        .expect("unbind");
    assert!(response.status().is_success());
}

async fn prepare(db: &tokio_postgres::Client) {
    db.batch_execute(
        "create table if not exists public.bench_items (id bigint generated always as identity primary key, n int)",
    )
    .await
    .expect("bench table");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse().ok()))
        })
        .unwrap_or(0)
}

async fn latency(kind: &str, lang: &str, n: usize) {
    let db = connect().await;
    prepare(&db).await;
    let name = deploy(lang).await;
    let (_listener, mut heard) = listen("event_sink").await;
    let statement = match kind {
        "trigger" => "insert into public.bench_items (n) values (1)",
        _ => "select selfdb.publish('bench.ping', '{\"n\": 1}')",
    };
    // Warm-up: the first deliveries compile and fill pools.
    for _ in 0..20 {
        db.batch_execute(statement).await.expect("write");
        tokio::time::timeout(Duration::from_secs(60), heard.recv())
            .await
            .expect("a warm-up delivery");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        db.batch_execute(statement).await.expect("write");
        let committed = Instant::now();
        let (at, _) = tokio::time::timeout(Duration::from_secs(60), heard.recv())
            .await
            .expect("a delivery within a minute")
            .expect("listener open");
        samples.push(at.saturating_duration_since(committed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report(
        &format!("{kind} -> {lang} handler, commit to handler committed"),
        samples,
    );
    unbind(&name).await;
}

async fn throughput(lang: &str, rows: usize) {
    let db = connect().await;
    prepare(&db).await;
    let name = deploy(lang).await;
    let (_listener, mut heard) = listen("event_sink").await;
    let pid = env("HOST_PID");
    let before = rss_kib(&pid);
    let started = Instant::now();
    db.execute(
        "insert into public.bench_items (n) select g from generate_series(1, $1::int) g",
        &[&(rows as i32)],
    )
    .await
    .expect("burst");
    let committed = started.elapsed();
    let mut peak = before;
    let mut got = 0;
    let mut last_sample = Instant::now();
    while got < rows {
        match tokio::time::timeout(Duration::from_secs(120), heard.recv()).await {
            Ok(Some(_)) => got += 1,
            _ => panic!("only {got} of {rows} deliveries"),
        }
        if last_sample.elapsed() > Duration::from_millis(100) {
            peak = peak.max(rss_kib(&pid));
            last_sample = Instant::now();
        }
    }
    let elapsed = started.elapsed() - committed;
    println!(
        "throughput {lang}: {rows} deliveries in {:.2} s = {:.0}/s (insert committed in {:.2} s); host RSS {} -> peak {} MiB",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        committed.as_secs_f64(),
        before / 1024,
        peak / 1024,
    );
    unbind(&name).await;
}

async fn floor(n: usize) {
    let db = connect().await;
    let (_listener, mut heard) = listen("bench_floor").await;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        db.batch_execute("notify bench_floor, 'x'")
            .await
            .expect("notify");
        let committed = Instant::now();
        let (at, _) = heard.recv().await.expect("listener open");
        samples.push(at.saturating_duration_since(committed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report("floor: bare NOTIFY, commit to listener", samples);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let number = |i: usize, default: usize| arg(i).parse().unwrap_or(default);
    match arg(0) {
        "latency" => latency(arg(1), arg(2), number(3, 200)).await,
        "throughput" => throughput(arg(1), number(2, 20_000)).await,
        "floor" => floor(number(1, 200)).await,
        "deploy" => {
            deploy(arg(1)).await;
        }
        // `cargo test --benches` runs every bench target without arguments.
        _ => eprintln!("usage: events_load latency trigger|event rust|js N | throughput rust|js ROWS | floor N"),
    }
}
