//! `selfdb.projects` and `selfdb.project_schema_changes`: the registry of
//! users' databases, in the platform database.

use crate::db::{Database, DbError};
use serde_json::Value;

/// Where hosts announce that a project was added, changed or removed (the
/// payload is its id).
pub const CHANNEL: &str = "selfdb_projects";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a project named {0:?} already exists")]
    NameTaken(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::Db(DbError::Postgres(err))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StoreError::Db(DbError::Pool(err))
    }
}

/// One row of `selfdb.projects`.
#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub url_nonce: Vec<u8>,
    pub url_ciphertext: Vec<u8>,
    pub url_display: String,
    pub ca_certificate: Option<String>,
    pub key_hash: Vec<u8>,
    pub key_prefix: String,
    pub paused: bool,
    pub schemas: Vec<String>,
    pub pool_size: i32,
    pub install_triggers: bool,
    /// Behind a transaction-mode pooler: nothing outlives a transaction.
    pub transaction_pooling: bool,
    pub notify_email: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_nonce: Option<Vec<u8>>,
    pub webhook_secret: Option<Vec<u8>>,
    pub schema_digest: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl ProjectRow {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            url_nonce: row.get("url_nonce"),
            url_ciphertext: row.get("url_ciphertext"),
            url_display: row.get("url_display"),
            ca_certificate: row.get("ca_certificate"),
            key_hash: row.get("key_hash"),
            key_prefix: row.get("key_prefix"),
            paused: row.get("paused"),
            schemas: row.get("schemas"),
            pool_size: row.get("pool_size"),
            install_triggers: row.get("install_triggers"),
            transaction_pooling: row.get("transaction_pooling"),
            notify_email: row.get("notify_email"),
            webhook_url: row.get("webhook_url"),
            webhook_nonce: row.get("webhook_nonce"),
            webhook_secret: row.get("webhook_secret"),
            schema_digest: row.get("schema_digest"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// What registering inserts.
pub struct NewProject<'a> {
    pub name: &'a str,
    pub url_nonce: &'a [u8],
    pub url_ciphertext: &'a [u8],
    pub url_display: &'a str,
    pub ca_certificate: Option<&'a str>,
    pub key_hash: &'a [u8],
    pub key_prefix: &'a str,
    pub schemas: &'a [String],
    pub pool_size: i32,
    pub install_triggers: bool,
    pub transaction_pooling: bool,
    pub notify_email: Option<&'a str>,
    pub webhook_url: Option<&'a str>,
    pub webhook_nonce: Option<&'a [u8]>,
    pub webhook_secret: Option<&'a [u8]>,
    pub schema_digest: &'a str,
    pub schema_shape: &'a Value,
}

/// One detected schema change.
#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub id: i64,
    pub detected_at: chrono::DateTime<chrono::Utc>,
    pub changes: Value,
}

#[derive(Clone)]
pub struct Store {
    db: Database,
}

const COLUMNS: &str = "id, name, url_nonce, url_ciphertext, url_display, ca_certificate, \
    key_hash, key_prefix, paused, schemas, pool_size, install_triggers, transaction_pooling, \
    notify_email, \
    webhook_url, webhook_nonce, webhook_secret, schema_digest, created_at, updated_at";

impl Store {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts and announces a project.
    pub async fn insert(&self, new: &NewProject<'_>) -> Result<ProjectRow, StoreError> {
        let mut client = self.db.owner().get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_one(
                &format!(
                    "insert into selfdb.projects (name, url_nonce, url_ciphertext, url_display, \
                       ca_certificate, key_hash, key_prefix, schemas, pool_size, install_triggers, \
                       notify_email, webhook_url, webhook_nonce, webhook_secret, schema_digest, \
                       schema_shape, transaction_pooling) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                       $16, $17) \
                     returning {COLUMNS}"
                ),
                &[
                    &new.name,
                    &new.url_nonce,
                    &new.url_ciphertext,
                    &new.url_display,
                    &new.ca_certificate,
                    &new.key_hash,
                    &new.key_prefix,
                    &new.schemas,
                    &new.pool_size,
                    &new.install_triggers,
                    &new.notify_email,
                    &new.webhook_url,
                    &new.webhook_nonce,
                    &new.webhook_secret,
                    &new.schema_digest,
                    new.schema_shape,
                    &new.transaction_pooling,
                ],
            )
            .await;
        let row = match inserted {
            Ok(row) => ProjectRow::from_row(&row),
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                return Err(StoreError::NameTaken(new.name.to_owned()));
            }
            Err(err) => return Err(err.into()),
        };
        announce(&tx, row.id).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn list(&self) -> Result<Vec<ProjectRow>, StoreError> {
        let client = self.db.owner().get().await?;
        let rows = client
            .query(
                &format!("select {COLUMNS} from selfdb.projects order by id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(ProjectRow::from_row).collect())
    }

    pub async fn get(&self, id: i64) -> Result<Option<ProjectRow>, StoreError> {
        let client = self.db.owner().get().await?;
        let row = client
            .query_opt(
                &format!("select {COLUMNS} from selfdb.projects where id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(ProjectRow::from_row))
    }

    pub async fn by_name(&self, name: &str) -> Result<Option<ProjectRow>, StoreError> {
        let client = self.db.owner().get().await?;
        let row = client
            .query_opt(
                &format!("select {COLUMNS} from selfdb.projects where name = $1"),
                &[&name],
            )
            .await?;
        Ok(row.as_ref().map(ProjectRow::from_row))
    }

    /// Replaces the key; the old one stops working on every host at the
    /// announcement.
    pub async fn set_key(
        &self,
        id: i64,
        key_hash: &[u8],
        key_prefix: &str,
    ) -> Result<bool, StoreError> {
        self.update(
            id,
            "key_hash = $2, key_prefix = $3",
            &[&id, &key_hash, &key_prefix],
        )
        .await
    }

    pub async fn set_paused(&self, id: i64, paused: bool) -> Result<bool, StoreError> {
        self.update(id, "paused = $2", &[&id, &paused]).await
    }

    async fn update(
        &self,
        id: i64,
        set: &str,
        params: &[&(dyn postgres_types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let mut client = self.db.owner().get().await?;
        let tx = client.transaction().await?;
        // `set` is one of this module's constant assignments.
        let n = tx
            .execute(
                &format!("update selfdb.projects set {set}, updated_at = now() where id = $1"),
                params,
            )
            .await?;
        if n > 0 {
            announce(&tx, id).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn delete(&self, id: i64) -> Result<bool, StoreError> {
        let mut client = self.db.owner().get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute("delete from selfdb.projects where id = $1", &[&id])
            .await?;
        if n > 0 {
            announce(&tx, id).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// The recorded digest and the shape of the schema at it, if stored.
    pub async fn schema_shape(
        &self,
        id: i64,
    ) -> Result<Option<(Option<String>, Option<Value>)>, StoreError> {
        let client = self.db.owner().get().await?;
        let row = client
            .query_opt(
                "select schema_digest, schema_shape from selfdb.projects where id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Records `digest` (and the schema's `shape` at it) as the project's
    /// schema in place of `known` (a compare-and-swap), with what changed:
    /// true for the one host (of all that noticed the change) whose record
    /// it is, which then notifies. A host that lost, or that had an older
    /// baseline, records nothing.
    pub async fn record_schema_change(
        &self,
        id: i64,
        known: Option<&str>,
        digest: &str,
        shape: &Value,
        changes: &Value,
    ) -> Result<bool, StoreError> {
        let mut client = self.db.owner().get().await?;
        let tx = client.transaction().await?;
        let won = tx
            .execute(
                "update selfdb.projects set schema_digest = $2, schema_shape = $4 \
                 where id = $1 and schema_digest is not distinct from $3 \
                   and schema_digest is distinct from $2",
                &[&id, &digest, &known, shape],
            )
            .await?
            > 0;
        if won {
            tx.execute(
                "insert into selfdb.project_schema_changes (project_id, changes) values ($1, $2)",
                &[&id, changes],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(won)
    }

    /// The newest changes first, `limit` at most, older than `before` (an
    /// id) when given.
    pub async fn schema_changes(
        &self,
        id: i64,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<SchemaChange>, StoreError> {
        let client = self.db.owner().get().await?;
        let rows = client
            .query(
                "select id, detected_at, changes from selfdb.project_schema_changes \
                 where project_id = $1 and ($3::bigint is null or id < $3) \
                 order by id desc limit $2",
                &[&id, &limit, &before],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SchemaChange {
                id: r.get(0),
                detected_at: r.get(1),
                changes: r.get(2),
            })
            .collect())
    }
}

async fn announce(tx: &tokio_postgres::Transaction<'_>, id: i64) -> Result<(), StoreError> {
    tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &id.to_string()])
        .await?;
    Ok(())
}
