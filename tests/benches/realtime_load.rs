//! `make bench` (bench/realtime.sh): a load generator for `/realtime/v1`,
//! speaking realtime-js's protocol (vsn 2.0.0, binary broadcasts) over
//! tokio-tungstenite.
//!
//! `realtime_load broadcast N`: N subscribers on one topic, one sender;
//! latency from send to receipt, over every delivery.
//! `realtime_load changes N RATE`: N subscribers, each a distinct user,
//! on a table whose RLS policy lets members of a room see its rows; rows
//! inserted at RATE per second; messages delivered per second and
//! commit-to-receipt latency.
//! `realtime_load idle N`: N joined, idle connections; the host's RSS per
//! connection.
//!
//! Environment: SELFDB_URL, SELFDB_ANON_KEY, SELFDB_SERVICE_KEY,
//! BENCH_JWT_SECRET, DATABASE_URL, HOST_PID, BENCH_SECONDS (default 10).

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

async fn connect(key: &str) -> anyhow::Result<Socket> {
    let url = format!(
        "{}/realtime/v1/websocket?apikey={key}&vsn=2.0.0",
        env("SELFDB_URL").replacen("http", "ws", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(socket)
}

async fn join(socket: &mut Socket, topic: &str, payload: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Text(
            json!(["1", "1", topic, "phx_join", payload])
                .to_string()
                .into(),
        ))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(message) = tokio::time::timeout(Duration::from_secs(60), socket.next()).await?
        else {
            anyhow::bail!("socket closed during join");
        };
        if let Message::Text(text) = message? {
            let frame: Value = serde_json::from_str(text.as_str())?;
            if frame[3] == "phx_reply" && frame[2] == topic {
                anyhow::ensure!(frame[4]["status"] == "ok", "join refused: {frame}");
                return Ok(());
            }
        }
    }
    anyhow::bail!("no join reply")
}

/// Opens `n` joined sockets, 100 at a time.
async fn open_many(n: usize, make: impl Fn(usize) -> (String, String, Value)) -> Vec<Socket> {
    let make = Arc::new(make);
    let mut sockets = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let opened = futures::future::join_all(chunk.iter().map(|&i| {
            let make = make.clone();
            async move {
                let (key, topic, payload) = make(i);
                let mut socket = connect(&key).await?;
                join(&mut socket, &topic, payload).await?;
                anyhow::Ok(socket)
            }
        }))
        .await;
        for socket in opened {
            sockets.push(socket.expect("open a subscriber"));
        }
    }
    sockets
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// A kind-4 frame's JSON payload (the bytes after the header, topic, event
/// and metadata).
fn kind4_payload(data: &[u8]) -> Option<Value> {
    if data.first() != Some(&4) || data.len() < 5 {
        return None;
    }
    let skip = 5 + usize::from(data[1]) + usize::from(data[2]) + usize::from(data[3]);
    serde_json::from_slice(data.get(skip..)?).ok()
}

fn kind3(topic: &str, event: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![3u8, 1, 1, topic.len() as u8, event.len() as u8, 0, 1];
    frame.extend_from_slice(b"1");
    frame.extend_from_slice(b"2");
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(event.as_bytes());
    frame.extend_from_slice(payload);
    frame
}

async fn broadcast(n: usize) -> anyhow::Result<()> {
    let anon = env("SELFDB_ANON_KEY");
    let topic = "realtime:bench-broadcast";
    let opening = Instant::now();
    let subscribers = open_many(n, |_| {
        (anon.clone(), topic.to_owned(), json!({ "config": {} }))
    })
    .await;
    eprintln!(
        "{n} subscribers joined in {:.1} s",
        opening.elapsed().as_secs_f64()
    );
    // Broadcasts per second (BENCH_BROADCAST_RATE, default 10).
    let rate = std::env::var("BENCH_BROADCAST_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64)
        .max(1);
    let count = (seconds() * rate) as usize;
    let start = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for mut socket in subscribers {
        let sent = sent.clone();
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            while latencies.len() < count {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(15), socket.next()).await
                else {
                    break;
                };
                let now = start.elapsed().as_micros() as u64;
                if let Message::Binary(data) = message {
                    if let Some(seq) = kind4_payload(&data).and_then(|p| p["seq"].as_u64()) {
                        let at = sent[seq as usize].load(Ordering::Acquire);
                        latencies.push(now.saturating_sub(at));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut sender = connect(&anon).await?;
    join(&mut sender, topic, json!({ "config": {} })).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
    for seq in 0..count {
        tick.tick().await;
        let payload = json!({ "seq": seq }).to_string();
        sent[seq].store(start.elapsed().as_micros() as u64, Ordering::Release);
        sender
            .send(Message::Binary(
                kind3(topic, "tick", payload.as_bytes()).into(),
            ))
            .await?;
    }
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await?);
    }
    all.sort_unstable();
    let expected = n * count;
    println!(
        "realtime broadcast subscribers={n} rate={rate}/s messages={count} delivered={}/{expected} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
    Ok(())
}

fn sign(secret: &str, sub: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600 }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn user(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

async fn changes(n: usize, rate: u64) -> anyhow::Result<()> {
    let (db, connection) =
        tokio_postgres::connect(&env("DATABASE_URL"), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let table = format!("bench_changes_{n}_{rate}");
    db.batch_execute(&format!(
        "create table if not exists bench_members (user_id uuid, room int, primary key (user_id, room));
         create table {table} (id bigserial primary key, room int not null, body text not null);
         alter table {table} enable row level security;
         create policy members_read on {table} for select to authenticated
           using (exists (select 1 from bench_members m where m.user_id = auth.uid() and m.room = {table}.room));
         alter publication supabase_realtime add table {table};"
    ))
    .await?;
    for i in 0..n {
        db.execute(
            "insert into bench_members values ($1::text::uuid, 1) on conflict do nothing",
            &[&user(i)],
        )
        .await?;
    }
    let anon = env("SELFDB_ANON_KEY");
    let secret = env("BENCH_JWT_SECRET");
    let topic = format!("realtime:{table}");
    let subscribers = open_many(n, |i| {
        (
            anon.clone(),
            topic.clone(),
            json!({
                "config": { "postgres_changes": [{ "event": "INSERT", "schema": "public", "table": table }] },
                "access_token": sign(&secret, &user(i)),
            }),
        )
    })
    .await;
    let count = (seconds() * rate) as usize;
    let start = Instant::now();
    let committed: Arc<Vec<AtomicU64>> = Arc::new((0..=count).map(|_| AtomicU64::new(0)).collect());
    let last_receipt = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for mut socket in subscribers {
        let committed = committed.clone();
        let last_receipt = last_receipt.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            while latencies.len() < count {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_secs(20), socket.next()).await
                else {
                    break;
                };
                if let Message::Text(text) = message {
                    let now = start.elapsed().as_micros() as u64;
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if frame[3] != "postgres_changes" {
                        continue;
                    }
                    let id = frame[4]["data"]["record"]["id"].as_u64().unwrap_or(0) as usize;
                    if let Some(at) = committed.get(id) {
                        latencies.push(now.saturating_sub(at.load(Ordering::Acquire)));
                        last_receipt.fetch_max(now, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let insert = db
        .prepare(&format!(
            "insert into {table} (room, body) values (1, 'x') returning id"
        ))
        .await?;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let writes_started = start.elapsed().as_micros() as u64;
    for _ in 0..count {
        tick.tick().await;
        let row = db.query_one(&insert, &[]).await?;
        let id: i64 = row.get(0);
        if let Some(slot) = committed.get(id as usize) {
            slot.store(start.elapsed().as_micros() as u64, Ordering::Release);
        }
    }
    let writes_ended = start.elapsed().as_micros() as u64;
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await?);
    }
    all.sort_unstable();
    let window =
        (last_receipt.load(Ordering::Relaxed).max(writes_ended) - writes_started) as f64 / 1e6;
    println!(
        "realtime postgres_changes+RLS subscribers={n} changes={count} changes_per_s={:.0} delivered={}/{} messages_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        count as f64 / ((writes_ended - writes_started) as f64 / 1e6),
        all.len(),
        n * count,
        all.len() as f64 / window,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
    Ok(())
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn idle(n: usize) -> anyhow::Result<()> {
    let pid = env("HOST_PID");
    let anon = env("SELFDB_ANON_KEY");
    // Warm the host's allocator and runtime first with a few connections.
    let warm = open_many(50, |i| {
        (
            anon.clone(),
            format!("realtime:warm{i}"),
            json!({ "config": {} }),
        )
    })
    .await;
    drop(warm);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(&pid);
    let sockets = open_many(n, |i| {
        (
            anon.clone(),
            format!("realtime:idle{}", i % 100),
            json!({ "config": {} }),
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(&pid);
    println!(
        "realtime idle connections={n} host_rss_before_kib={before} after_kib={after} per_connection_kib={:.1}",
        after.saturating_sub(before) as f64 / n as f64
    );
    drop(sockets);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n = |i: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(100);
    match args.first().map(String::as_str) {
        Some("broadcast") => broadcast(n(1)).await,
        Some("changes") => changes(n(1), n(2) as u64).await,
        Some("idle") => idle(n(1)).await,
        _ => anyhow::bail!("usage: realtime_load broadcast N | changes N RATE | idle N"),
    }
}
