//! `make bench` (bench/storage.sh): one S3 client for every server, so the
//! numbers compare servers and not clients. Requests are SigV4 presigned
//! (query-string auth, which every S3 server verifies like header auth).
//!
//! Environment: S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY,
//! BENCH_LABEL, BENCH_SECONDS (default 10), BENCH_CONNECTIONS (32),
//! BENCH_SMALL_KIB (4: the size of the many-objects runs; SelfDB keeps
//! objects up to 8 KiB inline, so 64 measures its object bytes path),
//! BENCH_BIG_MIB (64), BENCH_BIG_ROUNDS (4), BENCH_BIG_READS (8: reads of
//! each big object), BENCH_HUGE_GIB (0: skip).
//! Prints one line per measurement.

use bytes::Bytes;
use futures::StreamExt;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LINK_LIFETIME: Duration = Duration::from_secs(3600);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl Target {
    async fn put(&self, key: &str, body: reqwest::Body) -> anyhow::Result<()> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(LINK_LIFETIME);
        let response = self.http.put(url).body(body).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "PUT {key}: {}",
            response.status()
        );
        Ok(())
    }

    /// Reads the whole object, discarding it; returns its size.
    async fn get(&self, key: &str) -> anyhow::Result<u64> {
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(LINK_LIFETIME);
        let response = self.http.get(url).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {key}: {}",
            response.status()
        );
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            size += chunk?.len() as u64;
        }
        Ok(size)
    }
}

/// Runs `op(worker, n)` on `connections` workers for `seconds`; returns
/// (ops/s, p50 ms, p99 ms).
async fn closed_loop<F, Fut>(
    connections: u64,
    seconds: u64,
    op: F,
) -> anyhow::Result<(f64, f64, f64)>
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let op = op.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                op(worker, n).await?;
                latencies.push(t.elapsed());
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Ok((
        done.load(Ordering::Relaxed) as f64 / elapsed,
        pct(0.5),
        pct(0.99),
    ))
}

/// A body of `total` bytes made on the fly, so the client holds only one
/// chunk however large the object.
fn generated_body(total: u64) -> reqwest::Body {
    let chunk = Bytes::from(vec![0x5au8; 1 << 20]);
    let chunks = total.div_ceil(1 << 20);
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let remaining = total - i * (1 << 20);
        Ok::<_, std::io::Error>(chunk.slice(..(remaining.min(1 << 20) as usize)))
    }));
    reqwest::Body::wrap_stream(stream)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint: url::Url = std::env::var("S3_ENDPOINT")?.parse()?;
    let label = std::env::var("BENCH_LABEL").unwrap_or_else(|_| "server".into());
    let seconds = env_or("BENCH_SECONDS", 10);
    let connections = env_or("BENCH_CONNECTIONS", 32);
    let big_mib = env_or("BENCH_BIG_MIB", 64);
    let big_rounds = env_or("BENCH_BIG_ROUNDS", 4);
    let big_reads = env_or("BENCH_BIG_READS", 8);
    let huge_gib = env_or("BENCH_HUGE_GIB", 0);
    let credentials = Credentials::new(
        std::env::var("S3_ACCESS_KEY_ID")?,
        std::env::var("S3_SECRET_ACCESS_KEY")?,
    );
    let name = format!("bench-{}", std::process::id());
    let bucket = Bucket::new(endpoint, UrlStyle::Path, name, "us-east-1")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize)
        .build()?;
    let create = bucket.create_bucket(&credentials).sign(LINK_LIFETIME);
    let response = http.put(create).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "create bucket: {}",
        response.status()
    );
    let target = Arc::new(Target {
        bucket,
        credentials,
        http,
    });

    // A server may accept connections before it can store anything
    // (SeaweedFS allocates volumes on first write): wait until a write and
    // a read succeed, so that start-up is not measured.
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            target
                .put("warmup", Bytes::from_static(b"warm").into())
                .await?;
            target.get("warmup").await
        };
        match attempt.await {
            Ok(_) => break,
            Err(err) if Instant::now() > ready_by => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }

    let small_kib = env_or("BENCH_SMALL_KIB", 4);
    let small_bytes = small_kib * 1024;
    let small = Bytes::from(vec![0x42u8; small_bytes as usize]);
    let t = target.clone();
    let body = small.clone();
    let (put_ops, put_p50, put_p99) = closed_loop(connections, seconds, move |w, n| {
        let t = t.clone();
        let body = body.clone();
        async move { t.put(&format!("small/{w}/{n}"), body.into()).await }
    })
    .await?;
    let small_name = format!("{small_kib}KiB");
    println!("{label} put-{small_name:<5} {put_ops:10.0} ops/s  p50 {put_p50:7.2} ms  p99 {put_p99:7.2} ms");
    let t = target.clone();
    let (get_ops, get_p50, get_p99) = closed_loop(connections, seconds, move |w, n| {
        let t = t.clone();
        // Every worker wrote keys 0.. (far more than 16): read those back.
        async move {
            let size = t.get(&format!("small/{w}/{}", n % 16)).await?;
            anyhow::ensure!(size == small_bytes, "read {size} bytes");
            Ok(())
        }
    })
    .await?;
    println!("{label} get-{small_name:<5} {get_ops:10.0} ops/s  p50 {get_p50:7.2} ms  p99 {get_p99:7.2} ms");

    // BENCH_BIG_ROUNDS=0 runs the many-objects part only.
    if big_rounds > 0 {
        let big = Bytes::from(vec![0x17u8; (big_mib << 20) as usize]);
        let started = Instant::now();
        for round in 0..big_rounds {
            target
                .put(&format!("big/{round}"), big.clone().into())
                .await?;
        }
        let put_mib_s = (big_mib * big_rounds) as f64 / started.elapsed().as_secs_f64();
        println!("{label} put-{big_mib}MiB {put_mib_s:10.1} MiB/s");
        // Reads are several times faster than writes: each object is read
        // `big_reads` times, so the measurement lasts long enough to mean
        // something (four reads took about 0.2 s and varied by 1.5x).
        let started = Instant::now();
        for _ in 0..big_reads {
            for round in 0..big_rounds {
                let size = target.get(&format!("big/{round}")).await?;
                anyhow::ensure!(size == big_mib << 20, "read {size} bytes");
            }
        }
        let get_mib_s = (big_mib * big_rounds * big_reads) as f64 / started.elapsed().as_secs_f64();
        println!("{label} get-{big_mib}MiB {get_mib_s:10.1} MiB/s");
    }

    if huge_gib > 0 {
        let total = huge_gib << 30;
        let started = Instant::now();
        target.put("huge", generated_body(total)).await?;
        let put = (total >> 20) as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let size = target.get("huge").await?;
        anyhow::ensure!(size == total, "read {size} bytes");
        let get = (total >> 20) as f64 / started.elapsed().as_secs_f64();
        println!("{label} huge-{huge_gib}GiB put {put:.1} MiB/s, get {get:.1} MiB/s");
    }
    Ok(())
}
