//! Captures the database's changes once, on whichever host holds the
//! capture lock, and hands each committed transaction to the bus.
//!
//! One logical replication slot per database (its name kept in
//! `selfdb.settings`), decoded by the built-in `pgoutput` plugin over the
//! replication protocol: rows of the tables in the `supabase_realtime`
//! publication, and the rows `realtime.send` inserts into
//! `realtime.messages` (publication `selfdb_realtime_messages`). A session
//! advisory lock elects the capturing host; when its session ends (the host
//! died or lost the database), the next host blocked on the lock takes over
//! from the slot's confirmed position. The position advances only after a
//! transaction was published, so a takeover re-reads what may not have
//! reached the bus, and receivers drop what they already delivered by its
//! commit LSN.

use super::pgoutput::{self, Cell, Message};
use super::values;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::Host;

/// Arbitrary constant naming the capture lock.
const CAPTURE_LOCK: i64 = 0x5e1f_db00_0002;
/// The publication users add their tables to, as on Supabase.
pub const PUBLICATION: &str = "supabase_realtime";
/// The host's own publication of `realtime.messages`.
const MESSAGES_PUBLICATION: &str = "selfdb_realtime_messages";

/// One column of a changed table: what realtime-js reads as `columns`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnType {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Kind {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Insert => "INSERT",
            Kind::Update => "UPDATE",
            Kind::Delete => "DELETE",
        }
    }
}

/// A changed row of a published table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The table's OID (names a per-table visibility function).
    pub relation: u32,
    pub schema: String,
    pub table: String,
    pub kind: Kind,
    pub columns: Arc<Vec<ColumnType>>,
    /// The replica identity's columns (the primary key, unless the table's
    /// identity is an index or `full`).
    pub key: Arc<Vec<String>>,
    /// Under `replica identity full` the old row is whole.
    pub full_identity: bool,
    pub new: Map<String, Value>,
    pub old: Map<String, Value>,
}

/// A row `realtime.send` wrote: a broadcast from the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DbMessage {
    pub topic: String,
    pub event: String,
    pub payload: Value,
    pub private: bool,
}

/// One committed transaction's captured rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Captured {
    /// The commit's end LSN: increasing, so receivers can drop repeats.
    pub lsn: u64,
    /// ISO 8601, as realtime-js reads `commit_timestamp`.
    pub commit_timestamp: String,
    pub changes: Vec<Change>,
    pub messages: Vec<DbMessage>,
}

/// Where captured transactions go: the bus, which fans them out to every
/// host (this one included).
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    async fn publish(&self, captured: Captured) -> anyhow::Result<()>;
}

#[derive(Clone)]
pub struct CaptureConfig {
    pub database: crate::db::connect::PgTarget,
    pub slot: String,
}

/// Why capture cannot run on this database at all (not a passing failure).
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "the database runs with wal_level={0}; realtime postgres_changes and realtime.send \
         need wal_level=logical (set it in postgresql.conf and restart PostgreSQL)"
    )]
    WalLevel(String),
    #[error(
        "the database role {0:?} may not use logical replication; realtime postgres_changes \
         and realtime.send need a role with REPLICATION (alter role ... replication)"
    )]
    Replication(String),
}

/// Runs for the host's life: waits for the capture lock, captures while it
/// holds it, and starts over after any failure.
pub async fn run(config: CaptureConfig, sink: Arc<dyn Sink>, status: Arc<super::Status>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match lead(&config, sink.as_ref(), &status).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(err) => {
                if let Some(unavailable) = err.downcast_ref::<Unavailable>() {
                    tracing::error!(%unavailable, "realtime capture disabled");
                    status.set_unavailable(unavailable.to_string());
                    return;
                }
                tracing::warn!(error = %format!("{err:#}"), "realtime capture stopped; retrying");
            }
        }
        status.set_capturing(false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn lead(
    config: &CaptureConfig,
    sink: &dyn Sink,
    status: &super::Status,
) -> anyhow::Result<()> {
    let (client, connection) = config
        .database
        .config
        .connect(config.database.tls.clone())
        .await?;
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = connection.await;
        let _ = closed_tx.send(result);
    });
    let level: String = client.query_one("show wal_level", &[]).await?.get(0);
    if level != "logical" {
        return Err(Unavailable::WalLevel(level).into());
    }
    let row = client
        .query_one(
            "select current_user::text, rolreplication or rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(1) {
        return Err(Unavailable::Replication(row.get(0)).into());
    }
    // Blocks until no other host captures this database.
    client
        .execute("select pg_advisory_lock($1)", &[&CAPTURE_LOCK])
        .await?;
    let exists = client
        .query_opt(
            "select 1 from pg_replication_slots where slot_name = $1",
            &[&config.slot],
        )
        .await?
        .is_some();
    if !exists {
        client
            .execute(
                "select pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&config.slot],
            )
            .await?;
        tracing::info!(slot = %config.slot, "created the realtime replication slot");
    }
    let mut replication = ReplicationClient::connect(replication_config(config)?).await?;
    tracing::info!(slot = %config.slot, "capturing database changes for realtime");
    status.set_capturing(true);
    let mut decoder = Decoder::new(&client);
    // `realtime.messages` rows were delivered at their commit; the
    // capturing host prunes them after a day.
    let mut prune = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = prune.tick() => {
                if let Err(err) = client
                    .execute("delete from realtime.messages where inserted_at < now() - interval '1 day'", &[])
                    .await
                {
                    tracing::warn!(%err, "realtime: pruning realtime.messages failed");
                }
            }
            ended = &mut closed => {
                anyhow::bail!("the capture lock's session ended: {:?}", ended.ok().and_then(|r| r.err()));
            }
            event = replication.recv() => {
                let Some(event) = event? else {
                    anyhow::bail!("the replication stream ended");
                };
                // Between transactions, everything before the server's WAL
                // end was published (or touched no published table): say
                // so, or the slot would hold back WAL that other tables
                // and databases write.
                if let ReplicationEvent::KeepAlive { wal_end, .. } = &event {
                    if decoder.pending.is_none() {
                        replication.update_applied_lsn(*wal_end);
                    }
                }
                if let Some(captured) = decoder.event(event).await? {
                    let lsn = captured.lsn;
                    sink.publish(captured).await?;
                    replication.update_applied_lsn(Lsn(lsn));
                }
            }
        }
    }
}

/// The replication connection's TLS, as the URL's `sslmode` asks.
fn replication_tls(target: &crate::db::connect::PgTarget) -> TlsConfig {
    use crate::db::connect::SslMode as Ours;
    use pgwire_replication::SslMode as Theirs;
    let mode = match target.ssl_mode {
        Ours::Disable => Theirs::Disable,
        Ours::Allow | Ours::Prefer => Theirs::Prefer,
        Ours::Require => Theirs::Require,
        Ours::VerifyCa => Theirs::VerifyCa,
        Ours::VerifyFull => Theirs::VerifyFull,
    };
    TlsConfig {
        mode,
        ca_pem_path: target.root_cert_path.clone(),
        ..TlsConfig::default()
    }
}

fn replication_config(config: &CaptureConfig) -> anyhow::Result<ReplicationConfig> {
    let db = &config.database.config;
    let host = match db.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = db.get_ports().first().copied().unwrap_or(5432);
    let password = db
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let mut repl = ReplicationConfig::new(
        host,
        db.get_user().unwrap_or("postgres"),
        password,
        db.get_dbname().unwrap_or("postgres"),
        config.slot.clone(),
        vec![PUBLICATION.to_owned(), MESSAGES_PUBLICATION.to_owned()],
    )
    .with_port(port)
    .with_tls(replication_tls(&config.database))
    // Values are decoded as ISO text in UTC (see `values`).
    .with_options("-c datestyle=ISO -c timezone=UTC -c extra_float_digits=1")
    .with_application_name("selfdb-realtime")
    .with_status_interval(Duration::from_secs(1))
    .with_start_lsn(Lsn::ZERO);
    repl.buffer_events = 4096;
    Ok(repl)
}

struct RelationInfo {
    oid: u32,
    schema: String,
    table: String,
    names: Vec<String>,
    columns: Arc<Vec<ColumnType>>,
    key: Arc<Vec<String>>,
    full_identity: bool,
    is_messages: bool,
}

/// Turns the stream's events into committed transactions.
struct Decoder<'a> {
    client: &'a tokio_postgres::Client,
    relations: HashMap<u32, Arc<RelationInfo>>,
    types: HashMap<u32, String>,
    pending: Option<Captured>,
}

impl<'a> Decoder<'a> {
    fn new(client: &'a tokio_postgres::Client) -> Self {
        Decoder {
            client,
            relations: HashMap::new(),
            types: HashMap::new(),
            pending: None,
        }
    }

    async fn event(&mut self, event: ReplicationEvent) -> anyhow::Result<Option<Captured>> {
        match event {
            ReplicationEvent::Begin {
                commit_time_micros, ..
            } => {
                self.pending = Some(Captured {
                    lsn: 0,
                    commit_timestamp: commit_timestamp(commit_time_micros),
                    changes: Vec::new(),
                    messages: Vec::new(),
                });
                Ok(None)
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                let Some(mut captured) = self.pending.take() else {
                    return Ok(None);
                };
                captured.lsn = end_lsn.as_u64();
                if captured.changes.is_empty() && captured.messages.is_empty() {
                    return Ok(None);
                }
                Ok(Some(captured))
            }
            ReplicationEvent::XLogData { data, .. } => {
                self.row(pgoutput::decode(data)?).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn type_name(&mut self, oid: u32) -> anyhow::Result<String> {
        if let Some(name) = values::builtin_type_name(oid) {
            return Ok(name.to_owned());
        }
        if let Some(name) = self.types.get(&oid) {
            return Ok(name.clone());
        }
        let row = self
            .client
            .query_opt("select typname::text from pg_type where oid = $1", &[&oid])
            .await?;
        let name = row
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_else(|| "text".to_owned());
        self.types.insert(oid, name.clone());
        Ok(name)
    }

    async fn row(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::Type { oid, name, .. } => {
                self.types.insert(oid, name);
            }
            Message::Relation(relation) => {
                let mut columns = Vec::with_capacity(relation.columns.len());
                for column in &relation.columns {
                    columns.push(ColumnType {
                        name: column.name.clone(),
                        type_name: self.type_name(column.type_oid).await?,
                    });
                }
                let full_identity = relation.replica_identity == b'f';
                let key = relation
                    .columns
                    .iter()
                    .filter(|c| c.key)
                    .map(|c| c.name.clone())
                    .collect();
                let is_messages = relation.schema == "realtime" && relation.table == "messages";
                self.relations.insert(
                    relation.oid,
                    Arc::new(RelationInfo {
                        oid: relation.oid,
                        names: relation.columns.iter().map(|c| c.name.clone()).collect(),
                        schema: relation.schema,
                        table: relation.table,
                        columns: Arc::new(columns),
                        key: Arc::new(key),
                        full_identity,
                        is_messages,
                    }),
                );
            }
            Message::Insert { relation, new } => {
                let info = self.relation(relation)?;
                let new = record(&info, &new);
                if info.is_messages {
                    self.message(new);
                } else {
                    self.push(&info, Kind::Insert, new, Map::new());
                }
            }
            Message::Update { relation, old, new } => {
                let info = self.relation(relation)?;
                if info.is_messages {
                    return Ok(());
                }
                let mut new_record = record(&info, &new);
                let old_record = match &old {
                    Some(old) => record(&info, old),
                    // The key did not change: the old key is the new one.
                    None => info
                        .key
                        .iter()
                        .filter_map(|k| new_record.get(k).map(|v| (k.clone(), v.clone())))
                        .collect(),
                };
                // An unchanged TOASTed value is not sent; the old row has
                // it under full identity.
                for (i, cell) in new.iter().enumerate() {
                    if matches!(cell, Cell::Unchanged) {
                        if let Some(name) = info.names.get(i) {
                            match old_record.get(name) {
                                Some(value) => {
                                    new_record.insert(name.clone(), value.clone());
                                }
                                None => {
                                    new_record.remove(name);
                                }
                            }
                        }
                    }
                }
                self.push(&info, Kind::Update, new_record, old_record);
            }
            Message::Delete { relation, old } => {
                let info = self.relation(relation)?;
                if info.is_messages {
                    return Ok(());
                }
                let old = record(&info, &old);
                self.push(&info, Kind::Delete, Map::new(), old);
            }
            Message::Truncate { .. } | Message::Other => {}
        }
        Ok(())
    }

    fn relation(&self, oid: u32) -> anyhow::Result<Arc<RelationInfo>> {
        self.relations.get(&oid).cloned().ok_or_else(|| {
            anyhow::anyhow!("pgoutput sent a row of relation {oid} before describing it")
        })
    }

    fn push(
        &mut self,
        info: &RelationInfo,
        kind: Kind,
        new: Map<String, Value>,
        old: Map<String, Value>,
    ) {
        if let Some(pending) = &mut self.pending {
            pending.changes.push(Change {
                relation: info.oid,
                schema: info.schema.clone(),
                table: info.table.clone(),
                kind,
                columns: info.columns.clone(),
                key: info.key.clone(),
                full_identity: info.full_identity,
                new,
                old,
            });
        }
    }

    fn message(&mut self, row: Map<String, Value>) {
        let text = |name: &str| {
            row.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        // Rows of other extensions (presence) are not broadcasts.
        let extension = text("extension");
        if !extension.is_empty() && extension != "broadcast" {
            return;
        }
        let message = DbMessage {
            topic: text("topic"),
            event: text("event"),
            payload: row.get("payload").cloned().unwrap_or(Value::Null),
            private: row.get("private").and_then(Value::as_bool).unwrap_or(false),
        };
        if let Some(pending) = &mut self.pending {
            pending.messages.push(message);
        }
    }
}

/// A tuple as a JSON object, skipping values pgoutput did not send.
fn record(info: &RelationInfo, cells: &[Cell]) -> Map<String, Value> {
    let mut map = Map::new();
    for (i, cell) in cells.iter().enumerate() {
        let (Some(name), Some(column)) = (info.names.get(i), info.columns.get(i)) else {
            continue;
        };
        match cell {
            Cell::Null => {
                map.insert(name.clone(), Value::Null);
            }
            Cell::Text(text) => {
                map.insert(name.clone(), values::to_json(&column.type_name, text));
            }
            Cell::Unchanged => {}
        }
    }
    map
}

/// PostgreSQL's epoch is 2000-01-01; realtime-js expects ISO 8601 in UTC.
fn commit_timestamp(micros_since_2000: i64) -> String {
    const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    let micros = micros_since_2000.saturating_add(UNIX_TO_PG_EPOCH_MICROS);
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}
