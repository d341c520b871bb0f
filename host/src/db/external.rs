//! A user's own PostgreSQL database (a project's): a pool that acts as the
//! user its URL names, and that database's schema cache.
//!
//! Nothing is written to it and nothing is assumed of it: no `selfdb`
//! schema, no `anon`/`authenticated` roles, no event triggers. It may sit
//! behind PgBouncer in transaction mode, so every use here keeps to one
//! transaction: no session settings. Requests' transactions keep prepared
//! statements on their connections only where the project's URL keeps
//! sessions (`transaction_pooling` false, see [`InvocationTx::external`]).
//!
//! [`InvocationTx::external`]: super::invocation::InvocationTx::external

use super::connect::PgTarget;
use super::schema::{SchemaCache, SharedSchema};
use super::DbError;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;

/// What a user's server said about itself when first reached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerInfo {
    pub server_version: String,
    pub user: String,
    pub database: String,
    /// Whether the connection is encrypted.
    pub tls: bool,
}

pub struct ExternalDb {
    pool: Pool,
    schema: Arc<SharedSchema>,
    schemas: Vec<String>,
    /// The schema digest this host's cache was built at, once known.
    digest: std::sync::Mutex<Option<String>>,
    /// Held by a schema check (see `projects::watch`).
    checking: tokio::sync::Mutex<()>,
    /// Whether the URL reaches a transaction-mode pooler.
    transaction_pooling: std::sync::atomic::AtomicBool,
}

impl ExternalDb {
    /// A pool of at most `pool_size` connections (made on demand) and the
    /// schema cache of `schemas`, read now: an unreachable database or a
    /// refused login fails here.
    pub async fn open(
        target: &PgTarget,
        pool_size: usize,
        schemas: Vec<String>,
    ) -> Result<Self, DbError> {
        let mut config = target.config.clone();
        config.application_name("selfdb");
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let pool = super::pool_builder(config, target.tls.clone(), pool_size.max(1)).build()?;
        let cache = load_schema(&pool, &schemas).await?;
        Ok(Self {
            pool,
            schema: SharedSchema::new(cache),
            schemas,
            digest: std::sync::Mutex::new(None),
            checking: tokio::sync::Mutex::new(()),
            transaction_pooling: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether nothing may outlive a transaction (a pooler in transaction
    /// mode); true until said otherwise.
    pub fn transaction_pooling(&self) -> bool {
        self.transaction_pooling
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_transaction_pooling(&self, on: bool) {
        self.transaction_pooling
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn schema(&self) -> &Arc<SharedSchema> {
        &self.schema
    }

    pub fn schemas(&self) -> &[String] {
        &self.schemas
    }

    /// The exposed tables and views as `schema.name`, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .schema
            .get()
            .tables
            .keys()
            .map(|(schema, name)| format!("{schema}.{name}"))
            .collect();
        names.sort();
        names
    }

    /// Reads the schema again; the cache is replaced only when that works.
    /// Returns the previous cache and the new one.
    pub async fn reload_schema(&self) -> Result<(Arc<SchemaCache>, Arc<SchemaCache>), DbError> {
        let cache = load_schema(&self.pool, &self.schemas).await?;
        let previous = self.schema.get();
        self.schema.replace(cache);
        Ok((previous, self.schema.get()))
    }

    /// Waits for the schema check in progress, if any, and holds off the
    /// next until dropped.
    pub async fn checking(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.checking.lock().await
    }

    pub fn last_digest(&self) -> Option<String> {
        self.digest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_last_digest(&self, digest: String) {
        *self.digest.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }

    /// A digest of the exposed schemas' definitions, cheap enough to poll:
    /// it changes whenever a table, view, column, key or function does.
    pub async fn fingerprint(&self) -> Result<String, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let digest: String = tx
            .query_one(FINGERPRINT_SQL, &[&self.schemas])
            .await?
            .get(0);
        tx.commit().await?;
        Ok(digest)
    }

    /// Who and where the pool connects as, with the server's version.
    pub async fn server_info(&self) -> Result<ServerInfo, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "select current_setting('server_version'), current_user::text, \
                        current_database()::text, \
                        coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)",
                &[],
            )
            .await?;
        let info = ServerInfo {
            server_version: row.get(0),
            user: row.get(1),
            database: row.get(2),
            tls: row.get(3),
        };
        tx.commit().await?;
        Ok(info)
    }
}

async fn load_schema(pool: &Pool, schemas: &[String]) -> Result<SchemaCache, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let inner: &tokio_postgres::Transaction<'_> = &tx;
    let cache = SchemaCache::load_with(inner, schemas).await?;
    tx.commit().await?;
    Ok(cache)
}

/// Relations with their columns, constraints, and functions with their
/// signatures, of the exposed schemas, as one digest.
const FINGERPRINT_SQL: &str = "\
select md5(coalesce(string_agg(item, E'\\n' order by item), '')) from (
  select format('%s.%s %s %s', n.nspname, c.relname, c.relkind,
           (select string_agg(format('%s:%s:%s:%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                     a.attnotnull, a.atthasdef), ',' order by a.attnum)
              from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped)) as item
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = any($1) and c.relkind in ('r', 'v', 'm', 'f', 'p')
  union all
  select format('constraint %s.%s %s %s', n.nspname, co.conname, co.contype, pg_get_constraintdef(co.oid))
    from pg_constraint co join pg_namespace n on n.oid = co.connamespace
   where n.nspname = any($1)
  union all
  select format('function %s.%s(%s) %s %s', n.nspname, p.proname,
                pg_get_function_identity_arguments(p.oid), format_type(p.prorettype, null), p.provolatile)
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = any($1) and p.prokind = 'f'
) items";
