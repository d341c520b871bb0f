//! Delivery: claim ready outbox rows, run the handlers, record outcomes;
//! and the listener connection that wakes it and proves this host alive.

use super::{Events, OUTBOX_CHANNEL, SCHEDULE_CHANNEL};
use crate::auth::{Principal, Role};
use crate::capabilities::bindings::listener::{Event, EventKind};
use crate::runtime::{EventError, Invocation, InvokeError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a host delivers.
#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    /// Deliveries running at once on this host.
    pub concurrency: usize,
    /// The first retry's delay; each further one doubles, up to `retry_cap`,
    /// times a random factor in [0.5, 1).
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(3600),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct EventMetrics {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub dead: AtomicU64,
}

/// How long a claim holds before another host may take the row back from
/// a host that is alive but stuck: past the longest time limit a function
/// may have (900 s), plus a margin.
const LEASE: &str = "930 seconds";

/// The longest a dispatcher waits without a wake-up before looking again
/// (a lost notification, a retry coming due).
const POLL: Duration = Duration::from_millis(500);

/// How often the listener connection is asked whether it is still there.
const PING: Duration = Duration::from_secs(5);

/// A claimed row.
struct Claimed {
    id: i64,
    function: String,
    kind: String,
    name: String,
    event_id: uuid::Uuid,
    payload: serde_json::Value,
    attempts: i32,
    committed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The SQL naming a host's liveness lock from its id.
const HOST_LOCK_KEY: &str = "('x' || left(replace($1::uuid::text, '-', ''), 16))::bit(64)::bigint";

impl Events {
    /// Listens for new rows and schedule changes, holding this host's
    /// liveness lock on the same connection; reconnects when it drops.
    pub(super) async fn listen(self: Arc<Self>, target: crate::db::connect::PgTarget) {
        let mut config = target.config.clone();
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        loop {
            match config.connect(target.tls.clone()).await {
                Ok((client, connection)) => {
                    let mut notifications = crate::db::notifications(connection);
                    let setup = async {
                        client
                            .batch_execute(&format!(
                                "listen {OUTBOX_CHANNEL}; listen {SCHEDULE_CHANNEL}"
                            ))
                            .await?;
                        client
                            .execute(
                                &format!("select pg_advisory_lock({HOST_LOCK_KEY})"),
                                &[&self.host_id],
                            )
                            .await?;
                        let on: String = client
                            .query_one("select current_setting('track_commit_timestamp')", &[])
                            .await?
                            .get(0);
                        Ok::<_, tokio_postgres::Error>(on == "on")
                    };
                    match setup.await {
                        Ok(commit_timestamps) => {
                            self.commit_timestamps
                                .store(commit_timestamps, Ordering::Relaxed);
                            self.alive.store(true, Ordering::Release);
                            self.outbox_wake.notify_one();
                            self.schedule_wake.notify_one();
                            // A connection dropped silently (a NAT, a
                            // firewall) would leave this host claiming
                            // while others see its lock free: ask now and
                            // then, and stop at the first silence.
                            let mut ping = tokio::time::interval(PING);
                            loop {
                                tokio::select! {
                                    n = notifications.recv() => match n {
                                        Some(n) if n.channel() == SCHEDULE_CHANNEL => {
                                            self.schedule_wake.notify_one()
                                        }
                                        Some(_) => self.outbox_wake.notify_one(),
                                        None => break,
                                    },
                                    _ = ping.tick() => {
                                        let answered = tokio::time::timeout(
                                            PING,
                                            client.simple_query("select 1"),
                                        )
                                        .await;
                                        if !matches!(answered, Ok(Ok(_))) {
                                            tracing::warn!("the events listener stopped answering; reconnecting");
                                            break;
                                        }
                                    }
                                }
                            }
                        }
                        Err(err) => tracing::warn!(%err, "cannot listen for events"),
                    }
                    // Without the lock, other hosts may take our rows back:
                    // stop claiming until it is held again.
                    self.alive.store(false, Ordering::Release);
                }
                Err(err) => tracing::warn!(%err, "cannot connect to listen for events"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub(super) async fn dispatch_loop(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.concurrency));
        let mut last_rescue = tokio::time::Instant::now() - Duration::from_secs(60);
        loop {
            // Registered before looking, so a wake-up during the claim is
            // not lost.
            let woken = self.outbox_wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let mut full = false;
            if self.alive.load(Ordering::Acquire) {
                if last_rescue.elapsed() >= Duration::from_secs(1) {
                    last_rescue = tokio::time::Instant::now();
                    if let Err(err) = self.rescue().await {
                        tracing::warn!(%err, "cannot check for abandoned deliveries");
                    }
                }
                let free = slots.available_permits();
                if free > 0 {
                    match self.claim(free.min(100) as i64).await {
                        Ok(rows) => {
                            full = rows.len() == free.min(100);
                            for row in rows {
                                let Ok(permit) = slots.clone().try_acquire_owned() else {
                                    break;
                                };
                                let this = self.clone();
                                tokio::spawn(async move {
                                    this.deliver(row).await;
                                    drop(permit);
                                    this.outbox_wake.notify_one();
                                });
                            }
                        }
                        Err(err) => tracing::warn!(%err, "cannot claim events"),
                    }
                }
            }
            if full && slots.available_permits() > 0 {
                continue;
            }
            let _ = tokio::time::timeout(POLL, woken).await;
        }
    }

    /// Claims up to `limit` ready rows: the oldest of each row's changes
    /// only, so one row's changes go out one at a time in commit order.
    async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, super::EventsError> {
        let client = self.pool.get().await?;
        let committed = if self.commit_timestamps.load(Ordering::Relaxed) {
            "coalesce(o.committed_at, pg_xact_commit_timestamp(o.xmin), o.created_at)"
        } else {
            "coalesce(o.committed_at, o.created_at)"
        };
        let sql = format!(
            "with ready as ( \
               select o.id from selfdb.outbox o \
               where o.state = 'pending' and o.next_attempt_at <= now() \
                 and (o.ordering_key is null or not exists ( \
                   select 1 from selfdb.outbox p \
                   where p.trigger_id = o.trigger_id and p.ordering_key = o.ordering_key \
                     and p.id < o.id)) \
               order by o.next_attempt_at, o.id \
               limit $1 \
               for update skip locked) \
             update selfdb.outbox o \
                set state = 'running', attempts = o.attempts + 1, claimed_by = $2, \
                    lease_until = now() + interval '{LEASE}', committed_at = {committed} \
               from ready where o.id = ready.id \
             returning o.id, o.function, o.kind, o.name, o.event_id, o.payload, o.attempts, \
                       o.committed_at"
        );
        let rows = client.query(&sql, &[&limit, &self.host_id]).await?;
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(|r| Claimed {
                id: r.get("id"),
                function: r.get("function"),
                kind: r.get("kind"),
                name: r.get("name"),
                event_id: r.get("event_id"),
                payload: r.get("payload"),
                attempts: r.get("attempts"),
                committed_at: r.get("committed_at"),
            })
            .collect();
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Puts back rows whose host is gone (its liveness lock is free) or
    /// whose lease ran out; rows that already used every attempt go to the
    /// dead letters instead.
    async fn rescue(&self) -> Result<(), super::EventsError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let abandoned = format!(
            "o.state = 'running' and (o.lease_until < now() or (o.claimed_by <> $1 and \
             pg_try_advisory_xact_lock({})))",
            HOST_LOCK_KEY.replace("$1", "o.claimed_by")
        );
        let dead = tx
            .execute(
                &format!(
                    "with gone as ( \
                       delete from selfdb.outbox o using selfdb.functions f \
                       where f.name = o.function and o.attempts >= f.max_attempts and {abandoned} \
                       returning o.*) \
                     insert into selfdb.dead_letters (id, trigger_id, function, kind, name, \
                       event_id, ordering_key, payload, attempts, last_error, created_at, \
                       committed_at) \
                     select id, trigger_id, function, kind, name, event_id, ordering_key, payload, \
                       attempts, 'the host delivering it stopped', created_at, committed_at \
                     from gone"
                ),
                &[&self.host_id],
            )
            .await?;
        let back = tx
            .execute(
                &format!(
                    "update selfdb.outbox o set state = 'pending', claimed_by = null, \
                       lease_until = null, next_attempt_at = now(), \
                       last_error = 'the host delivering it stopped' \
                     where {abandoned}"
                ),
                &[&self.host_id],
            )
            .await?;
        tx.commit().await?;
        if back + dead > 0 {
            tracing::warn!(
                requeued = back,
                dead_lettered = dead,
                "took back deliveries of a host that stopped"
            );
            self.metrics.dead.fetch_add(dead, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn deliver(&self, row: Claimed) {
        let request_id: Arc<str> = format!("event-{}-{}", row.event_id, row.attempts).into();
        let kind = match row.kind.as_str() {
            "database" => EventKind::Database,
            "schedule" => EventKind::Schedule,
            "setup" => EventKind::Setup,
            _ => EventKind::Custom,
        };
        let mut payload = row.payload.clone();
        if let (EventKind::Database, serde_json::Value::Object(map)) = (kind, &mut payload) {
            map.insert(
                "commit_timestamp".into(),
                row.committed_at
                    .map(|t| {
                        serde_json::Value::String(
                            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        )
                    })
                    .unwrap_or(serde_json::Value::Null),
            );
            map.insert(
                "event_id".into(),
                serde_json::Value::String(row.event_id.to_string()),
            );
        }
        let event = Event {
            id: row.event_id.to_string(),
            kind,
            name: row.name.clone(),
            payload: payload.to_string(),
            attempt: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        };
        let function = match self.runtime.registry.get(&row.function) {
            Some(function) => function,
            // Not loaded here yet (a start-up, a deploy other hosts are
            // still reloading): not an attempt.
            _ => {
                tracing::debug!(function = %row.function, "event waits: the function is not loaded on this host yet");
                self.release(&row, Duration::from_secs(1)).await;
                return;
            }
        };
        // The function's own concurrency cap holds for events too; a row
        // that cannot start goes back to the table rather than waiting here
        // holding a delivery slot (and its claim's lease).
        let _slot = match &function.slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.release(&row, Duration::from_millis(200)).await;
                    return;
                }
            },
            None => None,
        };
        let label = format!("{} {} attempt {}", row.kind, row.name, row.attempts);
        let outcome = match self
            .invoke_logged(&function, &request_id, &event, &label)
            .await
        {
            // No instance slot was free: the host is saturated, the
            // handler did not run.
            Err(Attempt::NotRun) => {
                self.release(&row, Duration::from_millis(200)).await;
                return;
            }
            Err(Attempt::Failed(error)) => Err(error),
            Ok(()) => Ok(()),
        };
        let recorded = match &outcome {
            Ok(()) => self.acknowledge(&row).await,
            Err(error) => self.fail(&row, error).await,
        };
        match (&outcome, recorded) {
            (_, Err(err)) => {
                // The claim's lease or the liveness check puts it back.
                tracing::warn!(%err, event = %row.event_id, "cannot record an event's outcome");
            }
            (Ok(()), Ok(())) => {
                self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
            }
            (Err(_), Ok(())) => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Puts a claimed row back untouched, as if it had not been claimed:
    /// its attempt does not count.
    async fn release(&self, row: &Claimed, after: Duration) {
        let released = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "update selfdb.outbox set state = 'pending', claimed_by = null, \
                       lease_until = null, attempts = attempts - 1, \
                       next_attempt_at = now() + make_interval(secs => $4) \
                     where id = $1 and claimed_by = $2 and attempts = $3",
                    &[&row.id, &self.host_id, &row.attempts, &after.as_secs_f64()],
                )
                .await?;
            Ok::<_, super::EventsError>(())
        };
        if let Err(err) = released.await {
            // The liveness check or the lease puts it back instead.
            tracing::warn!(%err, event = %row.event_id, "cannot put an event back");
        }
    }

    async fn acknowledge(&self, row: &Claimed) -> Result<(), super::EventsError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "delete from selfdb.outbox where id = $1 and claimed_by = $2 and attempts = $3",
                &[&row.id, &self.host_id, &row.attempts],
            )
            .await?;
        Ok(())
    }

    /// A failed attempt: retried later, or dead once its attempts are spent.
    async fn fail(&self, row: &Claimed, error: &str) -> Result<(), super::EventsError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let max: Option<i32> = tx
            .query_opt(
                "select f.max_attempts from selfdb.outbox o \
                 join selfdb.functions f on f.name = o.function \
                 where o.id = $1 and o.claimed_by = $2 and o.attempts = $3 for update of o",
                &[&row.id, &self.host_id, &row.attempts],
            )
            .await?
            .map(|r| r.get(0));
        let Some(max) = max else {
            // Taken back by another host meanwhile: theirs now.
            return Ok(());
        };
        if row.attempts >= max {
            tx.execute(
                "with gone as (delete from selfdb.outbox where id = $1 returning *) \
                 insert into selfdb.dead_letters (id, trigger_id, function, kind, name, event_id, \
                   ordering_key, payload, attempts, last_error, created_at, committed_at) \
                 select id, trigger_id, function, kind, name, event_id, ordering_key, payload, \
                   attempts, $2, created_at, committed_at from gone",
                &[&row.id, &error],
            )
            .await?;
            self.metrics.dead.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(function = %row.function, event = %row.event_id, attempts = row.attempts, %error, "event moved to the dead letters");
        } else {
            let exponent = (row.attempts - 1).clamp(0, 30);
            let delay = self
                .settings
                .retry_base
                .saturating_mul(1u32 << exponent)
                .min(self.settings.retry_cap);
            let jittered = delay.mul_f64(0.5 + rand::random::<f64>() / 2.0);
            tx.execute(
                "update selfdb.outbox set state = 'pending', claimed_by = null, lease_until = null, \
                   last_error = $2, next_attempt_at = now() + make_interval(secs => $3) \
                 where id = $1",
                &[&row.id, &error, &jittered.as_secs_f64()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Events {
    /// Delivers `event` as the service role (as Supabase's webhooks call
    /// with the service key) and records the outcome in the function's
    /// logs as `LABEL: ok` or `LABEL: <error>`.
    pub(super) async fn invoke_logged(
        &self,
        function: &Arc<crate::runtime::Deployed>,
        request_id: &Arc<str>,
        event: &Event,
        label: &str,
    ) -> Result<(), Attempt> {
        let invocation = Invocation {
            function: function.clone(),
            principal: service_principal(),
            request_id: request_id.clone(),
            client_ip: None,
            spin_component: None,
            external: None,
        };
        let (outcome, report) = self.runtime.invoke_event(&invocation, event).await;
        if let Err(EventError::Invoke(InvokeError::Busy(_))) = &outcome {
            return Err(Attempt::NotRun);
        }
        let outcome = outcome.map_err(|e| e.to_string());
        let (message, status) = match &outcome {
            Ok(()) => (format!("{label}: ok"), 200),
            Err(e) => (format!("{label} failed: {e}"), 500),
        };
        self.logs
            .report(function, request_id, "event", Some(message), status, report);
        outcome.map_err(Attempt::Failed)
    }
}

/// Why a delivery did not succeed.
pub(super) enum Attempt {
    /// The handler did not run (no instance slot): not an attempt.
    NotRun,
    /// It ran and failed: the message.
    Failed(String),
}

/// The service role, with the claims a service key carries.
pub(crate) fn service_principal() -> Arc<Principal> {
    let mut claims = serde_json::Map::new();
    claims.insert(
        "role".into(),
        serde_json::Value::String("service_role".into()),
    );
    Arc::new(Principal::from_claims(Role::ServiceRole, claims))
}
