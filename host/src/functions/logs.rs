//! Functions' log lines and invocation records, written to
//! `selfdb.function_logs` in batches by one background task, off the
//! request path: a request only queues its records.

use super::store::{NewLog, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Records queued beyond this are dropped (and counted) rather than
/// letting a flood of logging hold memory or slow requests.
const QUEUE: usize = 50_000;
/// Largest batch written in one statement.
const BATCH: usize = 1_000;

#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<NewLog>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, rx, dropped.clone()));
        Self { tx, dropped }
    }

    /// Queues what one invocation left: its lines, then one record of the
    /// invocation itself (`kind` is `invocation` for a request, `event` for
    /// a delivery).
    pub fn report(
        &self,
        function: &crate::runtime::Deployed,
        request_id: &str,
        kind: &'static str,
        message: Option<String>,
        status: u16,
        report: crate::runtime::Report,
    ) {
        for (level, line) in report.lines {
            self.record(NewLog {
                function: function.name.to_string(),
                version: function.version,
                request_id: request_id.to_owned(),
                kind: "log",
                level: Some(level),
                message: Some(line),
                status: None,
                duration_ms: None,
                memory_peak: None,
            });
        }
        self.record(NewLog {
            function: function.name.to_string(),
            version: function.version,
            request_id: request_id.to_owned(),
            kind,
            level: None,
            message,
            status: Some(i32::from(status)),
            duration_ms: Some(report.duration.as_secs_f64() * 1000.0),
            memory_peak: i64::try_from(report.memory_peak).ok(),
        });
    }

    /// Queues one record; never waits.
    pub fn record(&self, log: NewLog) {
        if self.tx.try_send(log).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<NewLog>, dropped: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0;
        loop {
            match store.append_logs(&batch).await {
                Ok(()) => break,
                Err(err) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(%err, attempt, "cannot write function logs; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(err) => {
                    tracing::error!(%err, records = batch.len(), "function logs lost");
                    break;
                }
            }
        }
        batch.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(records = lost, "function logs dropped: the queue was full");
        }
    }
}
