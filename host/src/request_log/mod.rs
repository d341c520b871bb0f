//! Every API request, logged off the request path: a request only queues a
//! small record; one background task writes them in batches to the sink,
//! and drops the days past the retention. The sink is PostgreSQL's
//! `selfdb.request_logs`, a table partitioned by day, or with
//! `--logs-clickhouse-url` a ClickHouse table (`clickhouse`).
//!
//! What a record holds: time, project (none for the main instance),
//! endpoint, table, operation, status, latency and bytes in and out. The
//! HTTP layer's middleware (`http::request_log`) makes them; handlers that
//! know more than the path says (Dbify's `/query` names its project and
//! table in the body) attach a [`Tags`] to their response.

pub mod clickhouse;
pub mod read;

use crate::db::Database;
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records queued beyond this are dropped (and counted) rather than held.
const QUEUE: usize = 65_536;
/// Largest batch written in one statement.
const BATCH: usize = 8_192;
/// How long the writer lets records gather after the first of a batch:
/// few large statements cost the database far less than many small ones
/// (each a commit), and that database usually serves the requests too.
const LINGER: Duration = Duration::from_millis(250);

/// What a handler knows about its request that its path does not say.
#[derive(Debug, Clone, Default)]
pub struct Tags {
    pub project_id: Option<i64>,
    pub table: Option<String>,
    pub operation: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub at: DateTime<Utc>,
    pub project_id: Option<i64>,
    pub method: &'static str,
    pub endpoint: String,
    pub table: Option<String>,
    pub operation: Option<&'static str>,
    pub status: u16,
    pub latency_ms: f32,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// Where records are written and read.
#[derive(Clone)]
pub enum Sink {
    Postgres(Database),
    ClickHouse(Arc<clickhouse::ClickHouseLogs>),
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::ClickHouseError),
}

#[derive(Clone)]
pub struct RequestLog {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
    sink: Sink,
    /// Tells the writer to write what is queued and end.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    writer: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl RequestLog {
    /// Starts the writer; `retention_days` of logs are kept.
    pub fn start(sink: Sink, retention_days: u32) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let writer = tokio::spawn(write_batches(
            sink.clone(),
            rx,
            stopped,
            dropped.clone(),
            retention_days.max(1),
        ));
        Self {
            tx,
            dropped,
            sink,
            stop: Arc::new(stop),
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
        }
    }

    /// Writes what is queued (the records of the requests a graceful
    /// shutdown let finish) and stops the writer, waiting at most `limit`.
    pub async fn stop(&self, limit: Duration) {
        let _ = self.stop.send(true);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            if tokio::time::timeout(limit, writer).await.is_err() {
                tracing::warn!("request logs still queued at shutdown were not written in time");
            }
        }
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn sink(&self) -> &Sink {
        &self.sink
    }
}

async fn write_batches(
    sink: Sink,
    mut rx: mpsc::Receiver<Record>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
    retention_days: u32,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ids = Ids::new();
    // Partitions (or ClickHouse's table) known to exist, and when old
    // days were last dropped.
    let mut ready: Option<NaiveDate> = None;
    // A failed attempt is retried a minute later, not with every batch.
    let mut tried: Option<std::time::Instant> = None;
    let mut pruned: Option<NaiveDate> = None;
    let mut prune_tried: Option<std::time::Instant> = None;
    // ClickHouse's table is made now, not with the first batch: the logs
    // routes read it before anything was written.
    if let Sink::ClickHouse(ch) = &sink {
        if let Err(err) = ch.prepare().await {
            tracing::warn!(%err, "cannot prepare the request log");
        }
    }
    // Once stopping, the queue is written out without waiting, then the
    // task ends.
    let mut stopping = false;
    loop {
        if !stopping {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => stopping = n == 0,
                _ = stopped.changed() => stopping = true,
            }
            if !stopping && batch.len() < BATCH {
                tokio::select! {
                    () = tokio::time::sleep(LINGER) => {}
                    _ = stopped.changed() => stopping = true,
                }
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let today = Utc::now().date_naive();
        if ready != Some(today) && tried.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            tried = Some(std::time::Instant::now());
            let prepared = match &sink {
                Sink::Postgres(db) => ensure_partitions(db, today).await.map_err(LogError::from),
                Sink::ClickHouse(ch) => ch.prepare().await.map_err(LogError::from),
            };
            match prepared {
                Ok(()) => ready = Some(today),
                Err(err) => tracing::warn!(%err, "cannot prepare the request log"),
            }
        }
        if pruned != Some(today)
            && prune_tried.is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            prune_tried = Some(std::time::Instant::now());
            let oldest = today - Days::days(i64::from(retention_days));
            let done = match &sink {
                Sink::Postgres(db) => prune(db, oldest).await.map_err(LogError::from),
                Sink::ClickHouse(ch) => ch.prune(oldest).await.map_err(LogError::from),
            };
            match done {
                Ok(()) => pruned = Some(today),
                Err(err) => tracing::warn!(%err, "cannot drop old request logs"),
            }
        }
        let batch_ids: Vec<i64> = batch.iter().map(|_| ids.next()).collect();
        for attempt in 1..=3u64 {
            let written = match &sink {
                Sink::Postgres(db) => append(db, &batch, &batch_ids).await.map_err(LogError::from),
                Sink::ClickHouse(ch) => ch.append(&batch, &batch_ids).await.map_err(LogError::from),
            };
            match written {
                Ok(()) => break,
                Err(err) if attempt < 3 => {
                    tracing::warn!(%err, attempt, "cannot write request logs; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(err) => tracing::error!(%err, records = batch.len(), "request logs lost"),
            }
        }
        batch.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(records = lost, "request logs dropped: the queue was full");
        }
    }
}

fn partition_name(day: NaiveDate) -> String {
    format!("request_logs_{}", day.format("%Y%m%d"))
}

/// Today's and tomorrow's partitions (rows land in the default partition
/// if a day's is missing, so nothing is lost either way).
async fn ensure_partitions(db: &Database, today: NaiveDate) -> Result<(), crate::db::DbError> {
    let client = db.owner().get().await?;
    for day in [today, today + Days::days(1)] {
        let next = day + Days::days(1);
        // The name and bounds are dates formatted here, not input. A day's
        // partition is only appended to, read through its index and dropped
        // whole within days: autovacuum's insert-triggered passes (to
        // set visibility bits and statistics nobody uses) would only take
        // CPU from the database serving the requests while it fills.
        // Vacuums against wraparound still run.
        let sql = format!(
            "set lock_timeout = '2s'; \
             create table if not exists selfdb.{} partition of selfdb.request_logs \
             for values from ('{day} 00:00+00') to ('{next} 00:00+00') \
             with (autovacuum_enabled = false); \
             reset lock_timeout",
            partition_name(day)
        );
        if let Err(err) = client.batch_execute(&sql).await {
            let _ = client.batch_execute("reset lock_timeout").await;
            // Rows of that day may already sit in the default partition
            // (the host was down over midnight): they stay there. Tried
            // again with the next batch.
            tracing::debug!(%err, %day, "request log partition not created");
            return Err(err.into());
        }
    }
    Ok(())
}

/// Drops the day partitions older than `oldest` and the default
/// partition's rows before it.
async fn prune(db: &Database, oldest: NaiveDate) -> Result<(), crate::db::DbError> {
    let client = db.owner().get().await?;
    let rows = client
        .query(
            "select c.relname::text from pg_inherits i \
             join pg_class c on c.oid = i.inhrelid \
             join pg_class p on p.oid = i.inhparent \
             join pg_namespace n on n.oid = p.relnamespace \
             where n.nspname = 'selfdb' and p.relname = 'request_logs' \
               and c.relname ~ '^request_logs_[0-9]{8}$'",
            &[],
        )
        .await?;
    let cutoff = partition_name(oldest);
    for row in rows {
        let name: String = row.get(0);
        // Names compare as dates: request_logs_YYYYMMDD.
        if name < cutoff {
            client
                .batch_execute(&format!(
                    "set lock_timeout = '2s'; drop table if exists selfdb.{name}; reset lock_timeout"
                ))
                .await?;
        }
    }
    client
        .execute(
            "delete from selfdb.request_logs_default where at < $1::date",
            &[&oldest],
        )
        .await?;
    Ok(())
}

/// Ids for records: a random tag per host in the high bits, a counter in
/// the low 40, so hosts need no shared sequence (and a ClickHouse sink has
/// none).
struct Ids {
    tag: i64,
    next: i64,
}

impl Ids {
    fn new() -> Self {
        Self {
            tag: i64::from(rand::random::<u32>() & 0x7f_ffff) << 40,
            next: 0,
        }
    }

    fn next(&mut self) -> i64 {
        self.next = (self.next + 1) & ((1 << 40) - 1);
        self.tag | self.next
    }
}

async fn append(db: &Database, batch: &[Record], id: &[i64]) -> Result<(), crate::db::DbError> {
    let mut client = db.owner().get().await?;
    // A log batch need not wait for its WAL flush: a crash loses at most
    // the last fraction of a second of logs, never consistency.
    let tx = client.transaction().await?;
    tx.batch_execute("set local synchronous_commit = off")
        .await?;
    let mut at = Vec::with_capacity(batch.len());
    let mut project = Vec::with_capacity(batch.len());
    let mut method = Vec::with_capacity(batch.len());
    let mut endpoint = Vec::with_capacity(batch.len());
    let mut table = Vec::with_capacity(batch.len());
    let mut operation = Vec::with_capacity(batch.len());
    let mut status = Vec::with_capacity(batch.len());
    let mut latency = Vec::with_capacity(batch.len());
    let mut bytes_in = Vec::with_capacity(batch.len());
    let mut bytes_out = Vec::with_capacity(batch.len());
    for r in batch {
        at.push(r.at);
        project.push(r.project_id);
        method.push(r.method);
        endpoint.push(r.endpoint.as_str());
        table.push(r.table.as_deref());
        operation.push(r.operation);
        status.push(i16::try_from(r.status).unwrap_or(i16::MAX));
        latency.push(r.latency_ms);
        bytes_in.push(r.bytes_in);
        bytes_out.push(r.bytes_out);
    }
    tx.execute(
        "insert into selfdb.request_logs (at, project_id, method, endpoint, table_name, \
               operation, status, latency_ms, bytes_in, bytes_out, id) \
             select * from unnest($1::timestamptz[], $2::bigint[], $3::text[], $4::text[], \
               $5::text[], $6::text[], $7::smallint[], $8::real[], $9::bigint[], $10::bigint[], \
               $11::bigint[])",
        &[
            &at, &project, &method, &endpoint, &table, &operation, &status, &latency, &bytes_in,
            &bytes_out, &id,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
