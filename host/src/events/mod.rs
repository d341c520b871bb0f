//! Functions that run on their own: on database changes, on cron
//! schedules, on custom events, and once when a version is activated
//! (setup). Delivered at least once, without loss.
//!
//! - Every event is a row of `selfdb.outbox`, written by the transaction
//!   that caused it: a row trigger on the bound table (`declare`), the
//!   fan-out of `selfdb.publish`, or a schedule's claimed tick
//!   (`schedule`). A rolled-back change leaves nothing; a committed one is
//!   in the WAL with the change, whatever happens to the hosts after.
//! - Every host delivers (`dispatch`): it claims ready rows with `for
//!   update skip locked`, at most `--event-concurrency` at once (the rest
//!   wait in the table, not in memory), calls the function's `listener`
//!   export under its usual limits, deletes the row on success, and on
//!   failure schedules a retry with exponential backoff and jitter, or
//!   after the function's `max_attempts` moves it to
//!   `selfdb.dead_letters`, which the API lists and replays.
//! - Changes of one row are delivered one at a time in commit order: only
//!   the oldest row of a `(subscription, primary key)` is claimable.
//! - A host holds a session advisory lock named by its id while it
//!   delivers; another host that can take that lock knows the first one is
//!   gone and puts its claimed rows back at once (a lease covers a host
//!   that is alive but stuck).
//! - Schedules are claimed the same way (`for update skip locked` on the
//!   due row, then the tick recorded in the same transaction), so each tick
//!   runs once across all hosts; ticks missed while every host was down
//!   collapse into one run, and a tick whose previous run is still queued
//!   or running is skipped and logged.

pub mod declare;
mod dispatch;
pub mod filter;
mod schedule;

pub use declare::{Declaration, DeclarationJson};
pub use dispatch::EventSettings;

use crate::capabilities::bindings::listener::{Event, EventKind};
use crate::functions::LogSink;
use crate::runtime::{Deployed, Runtime};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("database: {}", db_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Invalid(String),
    #[error("no table {0}")]
    NoTable(String),
    #[error("no dead letter {0}")]
    NoDeadLetter(i64),
    #[error(
        "the subscription of dead letter {0} no longer exists (the function's triggers changed)"
    )]
    Orphaned(i64),
}

/// A database error with Postgres's own message, when it sent one.
fn db_message(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

/// The channel a new outbox row is announced on.
pub const OUTBOX_CHANNEL: &str = "selfdb_outbox";
/// The channel a schedule change is announced on.
pub const SCHEDULE_CHANNEL: &str = "selfdb_schedules";

/// One event that ran out of attempts.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub function: String,
    pub kind: String,
    pub name: String,
    pub event_id: uuid::Uuid,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// The event machinery of one host.
pub struct Events {
    pool: deadpool_postgres::Pool,
    runtime: Arc<Runtime>,
    logs: LogSink,
    settings: EventSettings,
    /// This host, as `claimed_by` and its liveness lock name it.
    host_id: uuid::Uuid,
    /// Rung when rows may be ready: a notification, a finished delivery.
    outbox_wake: Notify,
    schedule_wake: Notify,
    /// Whether this host holds its liveness lock (it claims only then).
    alive: std::sync::atomic::AtomicBool,
    commit_timestamps: std::sync::atomic::AtomicBool,
    pub metrics: dispatch::EventMetrics,
}

impl Events {
    pub fn new(
        pool: deadpool_postgres::Pool,
        runtime: Arc<Runtime>,
        logs: LogSink,
        settings: EventSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            runtime,
            logs,
            settings,
            host_id: uuid::Uuid::new_v4(),
            outbox_wake: Notify::new(),
            schedule_wake: Notify::new(),
            alive: Default::default(),
            commit_timestamps: Default::default(),
            metrics: Default::default(),
        })
    }

    /// Starts delivering: the listener (and liveness lock), the
    /// dispatcher and the scheduler.
    pub fn start(self: &Arc<Self>, target: crate::db::connect::PgTarget) {
        tokio::spawn(self.clone().listen(target));
        tokio::spawn(self.clone().dispatch_loop());
        tokio::spawn(self.clone().schedule_loop());
    }

    /// Runs `version`'s setup handler (before it is activated): the error
    /// is what refuses the activation, and it is in the function's logs.
    pub async fn run_setup(&self, function: Arc<Deployed>) -> Result<(), String> {
        let id = uuid::Uuid::new_v4().to_string();
        let request_id: Arc<str> = format!("setup-{id}").into();
        let event = Event {
            id,
            kind: EventKind::Setup,
            name: "setup".into(),
            payload: serde_json::json!({ "version": function.version }).to_string(),
            attempt: 1,
        };
        let label = format!("setup of version {}", function.version.unwrap_or(0));
        self.invoke_logged(&function, &request_id, &event, &label)
            .await
            .map_err(|attempt| match attempt {
                dispatch::Attempt::NotRun => {
                    "no instance slot was free to run it; try again".to_owned()
                }
                dispatch::Attempt::Failed(message) => message,
            })
    }

    /// The dead letters of `function`, newest first.
    pub async fn dead_letters(
        &self,
        function: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, EventsError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "select id, function, kind, name, event_id, payload, attempts, last_error, \
                        created_at, failed_at \
                 from selfdb.dead_letters where function = $1 order by id desc limit $2",
                &[&function, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                id: r.get("id"),
                function: r.get("function"),
                kind: r.get("kind"),
                name: r.get("name"),
                event_id: r.get("event_id"),
                payload: r.get("payload"),
                attempts: r.get("attempts"),
                last_error: r.get("last_error"),
                created_at: r.get("created_at"),
                failed_at: r.get("failed_at"),
            })
            .collect())
    }

    /// Puts a dead letter back in the outbox: the same event id, its
    /// attempts counted afresh.
    pub async fn replay(&self, function: &str, id: i64) -> Result<(), EventsError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let live: bool = tx
            .query_opt(
                "select exists (select 1 from selfdb.function_triggers t where t.id = d.trigger_id) \
                 from selfdb.dead_letters d where d.id = $1 and d.function = $2 for update",
                &[&id, &function],
            )
            .await?
            .ok_or(EventsError::NoDeadLetter(id))?
            .get(0);
        if !live {
            return Err(EventsError::Orphaned(id));
        }
        // Back under its own id, so it keeps its place in its row's order.
        let moved = tx
            .execute(
                "with gone as (delete from selfdb.dead_letters where id = $1 and function = $2 \
                               returning *) \
                 insert into selfdb.outbox (id, trigger_id, function, kind, name, event_id, \
                                            ordering_key, payload, created_at, committed_at) \
                 overriding system value \
                 select id, trigger_id, function, kind, name, event_id, ordering_key, payload, \
                        created_at, committed_at from gone",
                &[&id, &function],
            )
            .await?;
        if moved == 0 {
            return Err(EventsError::NoDeadLetter(id));
        }
        tx.execute("select pg_notify($1, '')", &[&OUTBOX_CHANNEL])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops a dead letter for good.
    pub async fn discard(&self, function: &str, id: i64) -> Result<(), EventsError> {
        let client = self.pool.get().await?;
        let deleted = client
            .execute(
                "delete from selfdb.dead_letters where id = $1 and function = $2",
                &[&id, &function],
            )
            .await?;
        if deleted == 0 {
            return Err(EventsError::NoDeadLetter(id));
        }
        Ok(())
    }
}
