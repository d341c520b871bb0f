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
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// The channel the installed event trigger notifies.
pub const DDL_CHANNEL: &str = "selfdb_ddl";

const INSTALL_SQL: &str = "\
create schema if not exists selfdb;
create or replace function selfdb.notify_ddl() returns event_trigger
language plpgsql as $$ begin perform pg_notify('selfdb_ddl', tg_tag); end $$;
drop event trigger if exists selfdb_notify_ddl;
create event trigger selfdb_notify_ddl on ddl_command_end execute function selfdb.notify_ddl();
drop event trigger if exists selfdb_notify_drop;
create event trigger selfdb_notify_drop on sql_drop execute function selfdb.notify_ddl();";

const REMOVE_SQL: &str = "\
drop event trigger if exists selfdb_notify_ddl;
drop event trigger if exists selfdb_notify_drop;
drop function if exists selfdb.notify_ddl();";

/// Installs the DDL event trigger (the user opted in); creating event
/// triggers needs a superuser, so the error says what happened and the
/// project falls back to polling.
pub async fn install_trigger(db: &ExternalDb) -> Result<(), String> {
    let mut client = db.pool().get().await.map_err(|e| e.to_string())?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.batch_execute(INSTALL_SQL).await.map_err(|e| {
        format!(
            "the event trigger could not be installed ({}); schema changes are found by polling",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        )
    })?;
    tx.commit().await.map_err(|e| e.to_string())
}

pub async fn remove_trigger(target: &PgTarget) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = target.config.connect(target.tls.clone()).await?;
    let task = tokio::spawn(connection);
    let result = client.batch_execute(REMOVE_SQL).await;
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

    /// Compares every open project's digest on each tick; projects with an
    /// event trigger are also listened to.
    async fn poll_schemas(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.schema_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let listening: Arc<std::sync::Mutex<std::collections::HashSet<i64>>> = Arc::default();
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
                // Projects nobody used on this host yet are opened too:
                // someone must notice their changes.
                let db = match self.database(&project).await {
                    Ok(db) => db,
                    Err(err) => {
                        tracing::debug!(project = %project.row.name, %err, "schema check skipped");
                        continue;
                    }
                };
                if project.row.install_triggers
                    && listening
                        .lock()
                        .map(|mut set| set.insert(project.row.id))
                        .unwrap_or(false)
                {
                    if let Ok(target) = self.target(&project.row) {
                        let this = self.clone();
                        let listening = listening.clone();
                        let id = project.row.id;
                        tokio::spawn(async move {
                            this.listen_ddl(id, target).await;
                            if let Ok(mut set) = listening.lock() {
                                set.remove(&id);
                            }
                        });
                    }
                }
                self.check_schema(&project, &db).await;
            }
        }
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
        let (before, after) = match db.reload_schema().await {
            Ok(both) => both,
            Err(err) => {
                tracing::warn!(project = %project.row.name, %err, "schema cache rebuild failed");
                return;
            }
        };
        db.set_last_digest(digest.clone());
        let changes = diff::diff(&before, &after);
        match self
            .store
            .record_schema_change(project.row.id, known.as_deref(), &digest, &changes)
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
