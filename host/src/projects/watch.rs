//! Schema changes in projects' databases: detected, recorded, announced.
//!
//! Every host compares each open project's catalog digest every
//! `schema_poll` (and at once when the project's event trigger, if the user
//! allowed installing one, reports DDL). A host that sees a new digest
//! rebuilds its own schema cache; the one host whose update of the stored
//! digest wins records the change and tells the project's targets: an
//! email through the host's mailer and a webhook POST signed with the
//! project's secret (`X-SelfDB-Signature: t=<unix time>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">`, as Stripe signs).

use super::{diff, Project, Projects};
use crate::db::connect::PgTarget;
use crate::db::external::ExternalDb;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Schema checks one host runs at once.
const CONCURRENT_CHECKS: usize = 16;

type Taken = Arc<std::sync::Mutex<HashSet<i64>>>;

/// Project `id` marked as taken in a set (being checked, or listened to)
/// until dropped, also when the task holding it panics.
struct Claim {
    set: Taken,
    id: i64,
}

impl Claim {
    /// None when `id` is already taken.
    fn take(set: &Taken, id: i64) -> Option<Claim> {
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id)
            .then(|| Claim {
                set: set.clone(),
                id,
            })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// The channel the installed event trigger notifies.
pub const DDL_CHANNEL: &str = "selfdb_ddl";

/// Event trigger names of project `name`: event triggers belong to the
/// whole database, and two projects may serve one database (different
/// schemas), so each installs and removes its own. A digest keeps the
/// names within 63 bytes and free of quoting.
fn trigger_names(name: &str) -> (String, String) {
    let digest = hex::encode(&Sha256::digest(name.as_bytes())[..8]);
    (
        format!("selfdb_ddl_{digest}"),
        format!("selfdb_drop_{digest}"),
    )
}

fn install_sql(name: &str) -> String {
    let (ddl, drop) = trigger_names(name);
    format!(
        "create schema if not exists selfdb;
create or replace function selfdb.notify_ddl() returns event_trigger
language plpgsql as $$ begin perform pg_notify('{DDL_CHANNEL}', tg_tag); end $$;
drop event trigger if exists {ddl};
create event trigger {ddl} on ddl_command_end execute function selfdb.notify_ddl();
drop event trigger if exists {drop};
create event trigger {drop} on sql_drop execute function selfdb.notify_ddl();"
    )
}

/// Drops the project's triggers, and the shared function once no other
/// project's trigger uses it.
fn remove_sql(name: &str) -> String {
    let (ddl, drop) = trigger_names(name);
    format!(
        "drop event trigger if exists {ddl};
drop event trigger if exists {drop};
-- Names of the first release, which shared them between projects.
drop event trigger if exists selfdb_notify_ddl;
drop event trigger if exists selfdb_notify_drop;
do $$ begin
  if to_regprocedure('selfdb.notify_ddl()') is not null and not exists
     (select 1 from pg_event_trigger where evtfoid = to_regprocedure('selfdb.notify_ddl()')) then
    drop function selfdb.notify_ddl();
  end if;
end $$;"
    )
}

/// Whether the URL keeps sessions: a notification sent from the pool
/// reaches a listening session, which keeps one server backend
/// throughout. False (with why) behind a pooler in transaction mode, where
/// LISTEN cannot work and no prepared statement may outlive its
/// transaction.
pub async fn probe_sessions(target: &PgTarget, db: &ExternalDb) -> Result<(), String> {
    tokio::time::timeout(
        Duration::from_secs(15),
        notifications_reach_a_session(target, db),
    )
    .await
    .map_err(|_| "probing the database timed out".to_owned())?
}

/// Installs project `name`'s DDL event trigger (the user opted in, and
/// [`probe_sessions`] found that its notifications can be heard).
/// Creating event triggers needs a superuser: without one the error says
/// so and the project falls back to polling, with nothing installed.
pub async fn install_trigger(name: &str, db: &ExternalDb) -> Result<(), String> {
    let mut client = db.pool().get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.batch_execute(&install_sql(name)).await.map_err(|e| {
        format!(
            "the event trigger could not be installed ({}); schema changes are found by polling",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        )
    })?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// Whether a listening connection gets a notification sent from the pool
/// and keeps one server session throughout: false behind a pooler in
/// transaction mode, where LISTEN cannot work.
async fn notifications_reach_a_session(target: &PgTarget, db: &ExternalDb) -> Result<(), String> {
    const REFUSED: &str = "notifications do not reach a listening session on this URL \
        (a transaction pooler such as PgBouncer?)";
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut notes = crate::db::notifications(connection);
    let channel = format!("selfdb_probe_{}", crate::secrets::random_token(8));
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let before = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .map(pid)
        .map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!("listen {channel}"))
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut sender = db.pool().get().await.map_err(|e| e.to_string())?;
        let tx = sender.transaction().await.map_err(|e| e.to_string())?;
        tx.execute("select pg_notify($1, 'probe')", &[&channel])
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    let heard = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(note) = notes.recv().await {
            if note.channel() == channel {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let after = client
        .query_one("select pg_backend_pid()", &[])
        .await
        .map(pid);
    let _ = client.batch_execute(&format!("unlisten {channel}")).await;
    if heard && after.is_ok_and(|after| after == before) {
        Ok(())
    } else {
        Err(REFUSED.to_owned())
    }
}

pub async fn remove_trigger(name: &str, target: &PgTarget) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = target.config.connect(target.tls.clone()).await?;
    let task = tokio::spawn(connection);
    let result = client.batch_execute(&remove_sql(name)).await;
    drop(client);
    let _ = task.await;
    result
}

impl Projects {
    /// Starts following other hosts' changes and watching schemas.
    pub fn start(self: &Arc<Self>, platform: PgTarget) {
        tokio::spawn(self.clone().follow(platform));
        tokio::spawn(self.clone().poll_schemas());
    }

    /// Takes other hosts' changes to projects (`selfdb_projects`).
    async fn follow(self: Arc<Self>, platform: PgTarget) {
        loop {
            match platform.config.connect(platform.tls.clone()).await {
                Ok((client, connection)) => {
                    let mut changes = crate::db::notifications(connection);
                    if client
                        .batch_execute(&format!("listen {}", super::store::CHANNEL))
                        .await
                        .is_ok()
                    {
                        // Whatever changed while not listening.
                        if let Err(err) = self.load_all().await {
                            tracing::warn!(%err, "cannot read projects");
                        }
                        while let Some(n) = changes.recv().await {
                            if let Ok(id) = n.payload().parse::<i64>() {
                                if let Err(err) = self.refresh(id).await {
                                    tracing::warn!(%err, id, "cannot read a changed project");
                                }
                            }
                        }
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot listen for project changes"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Compares every project's digest on each tick; projects with an
    /// event trigger are also listened to. Each project is checked in its
    /// own task, so one unreachable database (a connect that waits for its
    /// timeout) delays nobody else; a project whose last check is still
    /// running is skipped this tick.
    async fn poll_schemas(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.schema_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let listening: Taken = Arc::default();
        let checking: Taken = Arc::default();
        // Checks at once (once a project's database is open), so a host
        // with many projects runs a bounded number of catalog queries in
        // one tick.
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_CHECKS));
        loop {
            // A project added or changed is looked at now, not a poll later
            // (its event trigger's listener starts here).
            tokio::select! {
                _ = tick.tick() => {}
                () = self.changed.notified() => {}
            }
            for project in self.all() {
                if project.row.paused {
                    continue;
                }
                let Some(claim) = Claim::take(&checking, project.row.id) else {
                    continue;
                };
                let this = self.clone();
                let listening = listening.clone();
                let permits = permits.clone();
                tokio::spawn(async move {
                    let _claim = claim;
                    this.check_project(&project, &listening, &permits).await;
                });
            }
        }
    }

    /// One project's turn: open it (projects nobody used on this host yet
    /// are opened too: someone must notice their changes), start its
    /// trigger listener if it has one, compare the digest.
    async fn check_project(
        self: &Arc<Self>,
        project: &Arc<Project>,
        listening: &Taken,
        permits: &tokio::sync::Semaphore,
    ) {
        // Opening takes no permit: an unreachable database (a connect that
        // waits for its timeout) holds none from the others.
        let db = match self.database(project).await {
            Ok(db) => db,
            Err(err) => {
                tracing::debug!(project = %project.row.name, %err, "schema check skipped");
                return;
            }
        };
        if project.row.install_triggers {
            if let Some(claim) = Claim::take(listening, project.row.id) {
                if let Ok(target) = self.target(&project.row) {
                    let this = self.clone();
                    let id = project.row.id;
                    tokio::spawn(async move {
                        let _claim = claim;
                        this.listen_ddl(id, target).await;
                    });
                }
            }
        }
        let Ok(_permit) = permits.acquire().await else {
            return;
        };
        self.check_schema(project, &db).await;
    }

    /// Holds a connection listening to the project's event trigger and
    /// checks at each notification, until the project goes away or the
    /// connection drops (the next tick starts another).
    async fn listen_ddl(self: Arc<Self>, id: i64, target: PgTarget) {
        let mut config = target.config.clone();
        config.application_name("selfdb");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        let Ok((client, connection)) = config.connect(target.tls.clone()).await else {
            return;
        };
        let mut notes = crate::db::notifications(connection);
        if client
            .batch_execute(&format!("listen {DDL_CHANNEL}"))
            .await
            .is_err()
        {
            return;
        }
        let mut alive = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                note = notes.recv() => {
                    if note.is_none() {
                        return;
                    }
                    // One check for a burst of DDL (a migration).
                    while notes.try_recv().is_ok() {}
                    let Some(project) = self.get(id) else { return };
                    let Some(db) = project.opened() else { return };
                    self.check_schema(&project, &db).await;
                }
                // A project deleted or paused lets its connection go.
                _ = alive.tick() => {
                    if !self.get(id).is_some_and(|p| !p.row.paused && p.row.install_triggers) {
                        return;
                    }
                }
            }
        }
    }

    /// Rebuilds the cache when the digest moved; records and announces the
    /// change when this host is the first to.
    pub async fn check_schema(&self, project: &Arc<Project>, db: &ExternalDb) {
        // One check at a time per database (the poll and the trigger's
        // listener may both start one): a second check must see the
        // first's baseline, or it would diff the new schema with itself.
        let _checking = db.checking().await;
        let digest = match db.fingerprint().await {
            Ok(digest) => digest,
            Err(err) => {
                tracing::debug!(project = %project.row.name, %err, "schema digest unavailable");
                return;
            }
        };
        // This host's baseline: the digest its cache was built at, or for a
        // pool just opened, the one recorded (its cache is already new).
        let known = db
            .last_digest()
            .or_else(|| project.row.schema_digest.clone());
        if known.as_deref() == Some(digest.as_str()) {
            db.set_last_digest(digest);
            return;
        }
        // Whether the cache about to be replaced is from before the change
        // (this host's baseline), or was read after it (a pool opened since).
        let own_baseline = db.last_digest().is_some();
        let (before, after) = match db.reload_schema().await {
            Ok(both) => both,
            Err(err) => {
                tracing::warn!(project = %project.row.name, %err, "schema cache rebuild failed");
                return;
            }
        };
        db.set_last_digest(digest.clone());
        // Statements stay prepared on a project's connections (unless it
        // is behind a transaction pooler); one prepared before the change
        // keeps its old parameter and result types and would fail.
        db.pool().manager().statement_caches.clear();
        let after = diff::Shape::of(&after);
        let before = if own_baseline {
            Some(diff::Shape::of(&before))
        } else {
            self.recorded_shape(project.row.id, known.as_deref()).await
        };
        let changes = match &before {
            Some(before) => diff::diff(before, &after),
            // No schema from before the change is known (a project
            // registered before shapes were stored): what changed cannot
            // be said, only that something did.
            None => {
                let mut changes = diff::diff(&after, &after);
                changes["baseline_unknown"] = serde_json::Value::Bool(true);
                changes
            }
        };
        let shape = serde_json::to_value(&after).unwrap_or(serde_json::Value::Null);
        match self
            .store
            .record_schema_change(project.row.id, known.as_deref(), &digest, &shape, &changes)
            .await
        {
            Ok(true) => {
                tracing::info!(project = %project.row.name, "schema change detected");
                self.announce(project, &changes).await;
            }
            // Another host recorded it (or a later one): nothing to say.
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(project = %project.row.name, %err, "cannot record a schema change")
            }
        }
    }

    /// The stored shape of the schema at digest `known`.
    async fn recorded_shape(&self, id: i64, known: Option<&str>) -> Option<diff::Shape> {
        match self.store.schema_shape(id).await {
            Ok(Some((digest, Some(shape)))) if digest.as_deref() == known => {
                serde_json::from_value(shape).ok()
            }
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(id, %err, "cannot read a project's recorded schema");
                None
            }
        }
    }

    async fn announce(&self, project: &Project, changes: &serde_json::Value) {
        // The row may have changed since the project was loaded (targets
        // set later): read them fresh.
        let row = match self.store.get(project.row.id).await {
            Ok(Some(row)) => row,
            _ => project.row.clone(),
        };
        let detected_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Some(to) = &row.notify_email {
            let lines = diff::describe(changes);
            let body = format!(
                "The schema of project {} (id {}) changed at {detected_at}:\n\n{}\n",
                row.name,
                row.id,
                lines
                    .iter()
                    .map(|l| format!("- {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let subject = format!("Schema change in project {}", row.name);
            if let Err(err) = self.mailer.send(to, &subject, &body, "schema_change").await {
                tracing::warn!(project = %row.name, %err, "cannot mail a schema change");
            }
        }
        if let (Some(url), Some(secret)) = (&row.webhook_url, self.webhook_secret(&row)) {
            let body = serde_json::json!({
                "type": "schema.changed",
                "project": {"id": row.id, "name": row.name},
                "detected_at": detected_at,
                "changes": changes,
            })
            .to_string();
            let timestamp = chrono::Utc::now().timestamp();
            let signature = sign(&secret, timestamp, &body);
            for attempt in 0..3u32 {
                let sent = self
                    .webhooks
                    .post(url)
                    .header("content-type", "application/json")
                    .header(
                        "x-selfdb-signature",
                        format!("t={timestamp},v1={signature}"),
                    )
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => break,
                    outcome => {
                        // The status or the error kind only: the URL may
                        // carry a token.
                        let why = match outcome {
                            Ok(response) => response.status().to_string(),
                            Err(err) => err.without_url().to_string(),
                        };
                        tracing::warn!(project = %row.name, attempt, %why, "schema-change webhook failed");
                        tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
                    }
                }
            }
        }
    }
}

/// Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
