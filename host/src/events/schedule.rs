//! Cron schedules: every host looks for due schedules; the one that locks
//! a due row (`for update skip locked`) records the tick and enqueues the
//! run in one transaction, so each tick runs once across all hosts.

use super::declare::{next_tick, parse_cron, parse_zone};
use super::{Events, OUTBOX_CHANNEL};
use crate::functions::store::NewLog;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The longest the scheduler sleeps between looks (a schedule declared on
/// another host wakes it through a notification, a lost one by this).
const POLL: Duration = Duration::from_secs(1);

/// Missed ticks counted at most (a schedule of every second down for a
/// week is still one run).
const MISSED_CAP: usize = 10_000;

impl Events {
    pub(super) async fn schedule_loop(self: Arc<Self>) {
        loop {
            let woken = self.schedule_wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let mut wait = POLL;
            if self.alive.load(std::sync::atomic::Ordering::Acquire) {
                match self.run_due().await {
                    Ok(next) => {
                        if let Some(next) = next {
                            wait = wait.min(next);
                        }
                    }
                    Err(err) => tracing::warn!(%err, "cannot run schedules"),
                }
            }
            let _ = tokio::time::timeout(wait, woken).await;
        }
    }

    /// Runs what is due; returns how long until the next tick.
    async fn run_due(&self) -> Result<Option<Duration>, super::EventsError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "select id, function, cron, time_zone, next_run_at, last_tick, now() as db_now \
                 from selfdb.function_triggers \
                 where kind = 'schedule' and next_run_at <= now() \
                 order by next_run_at limit 100 for update skip locked",
                &[],
            )
            .await?;
        let mut enqueued = false;
        let mut skipped = Vec::new();
        for row in &rows {
            let id: i64 = row.get("id");
            let function: String = row.get("function");
            let cron_text: String = row.get("cron");
            let zone_text: String = row.get("time_zone");
            let due: DateTime<Utc> = row.get("next_run_at");
            let last: Option<DateTime<Utc>> = row.get("last_tick");
            let now: DateTime<Utc> = row.get("db_now");
            // The latest tick already due (ticks missed while no host was
            // running collapse into it), and the next one.
            let ticks = parse_cron(&cron_text).and_then(|cron| {
                let zone = parse_zone(&zone_text)?;
                let tick = cron
                    .find_previous_occurrence(&now.with_timezone(&zone), true)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| super::EventsError::Invalid(e.to_string()))?;
                let next = next_tick(&cron, zone, now)?;
                Ok((cron, zone, tick, next))
            });
            let (cron, zone, tick, next) = match ticks {
                Ok(ticks) => ticks,
                Err(err) => {
                    // Never due again rather than due forever.
                    tracing::error!(%function, schedule = %cron_text, %err, "schedule cannot run; parked");
                    tx.execute(
                        "update selfdb.function_triggers set next_run_at = null where id = $1",
                        &[&id],
                    )
                    .await?;
                    continue;
                }
            };
            if last.is_some_and(|last| last >= tick) {
                tx.execute(
                    "update selfdb.function_triggers set next_run_at = $2 where id = $1",
                    &[&id, &next],
                )
                .await?;
                continue;
            }
            let missed = cron
                .iter_after(due.with_timezone(&zone) - chrono::Duration::milliseconds(1))
                .map(|t| t.with_timezone(&Utc))
                .take_while(|t| *t < tick)
                .take(MISSED_CAP)
                .count();
            let busy: bool = tx
                .query_one(
                    "select exists (select 1 from selfdb.outbox where trigger_id = $1)",
                    &[&id],
                )
                .await?
                .get(0);
            if busy {
                skipped.push((function.clone(), tick));
            } else {
                let payload = json!({
                    "scheduled_at": tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "cron": cron_text,
                    "time_zone": zone_text,
                    "missed": missed,
                });
                // One event id per (schedule, tick): a handler can tell a
                // retry of this run from the next run.
                tx.execute(
                    "insert into selfdb.outbox (trigger_id, function, kind, name, event_id, payload) \
                     values ($1, $2, 'schedule', $3, md5($4)::uuid, $5) \
                     on conflict (trigger_id, event_id) do nothing",
                    &[
                        &id,
                        &function,
                        &cron_text,
                        &format!("{id}@{}", tick.to_rfc3339()),
                        &payload,
                    ],
                )
                .await?;
                enqueued = true;
            }
            tx.execute(
                "update selfdb.function_triggers set last_tick = $2, next_run_at = $3 where id = $1",
                &[&id, &tick, &next],
            )
            .await?;
        }
        if enqueued {
            tx.execute("select pg_notify($1, '')", &[&OUTBOX_CHANNEL])
                .await?;
        }
        tx.commit().await?;
        for (function, tick) in skipped {
            tracing::info!(%function, %tick, "schedule tick skipped: the previous run is still going");
            self.logs.record(NewLog {
                function,
                version: None,
                request_id: format!("schedule-{}", tick.timestamp_millis()),
                kind: "log",
                level: Some("warn"),
                message: Some(format!(
                    "schedule tick {} skipped: the previous run is still going",
                    tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )),
                status: None,
                duration_ms: None,
                memory_peak: None,
            });
        }
        // In the database's clock, which decides what is due.
        let wait: Option<f64> = client
            .query_one(
                "select extract(epoch from min(next_run_at) - now())::float8 \
                 from selfdb.function_triggers where kind = 'schedule'",
                &[],
            )
            .await?
            .get(0);
        Ok(wait.map(|secs| Duration::from_secs_f64(secs.clamp(0.01, 3600.0))))
    }
}
