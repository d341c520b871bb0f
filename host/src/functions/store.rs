//! The functions' tables (`selfdb.functions`, `function_versions`,
//! `function_secrets`, `function_logs`): every statement the platform runs
//! on them, typed. Activation and rollback are one transaction each, and
//! each change is announced on `selfdb_functions` so every host reloads.

use super::FunctionError;
use crate::events::{declare, Declaration};
use deadpool_postgres::Pool;
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use tokio_postgres::Row;

/// The channel every host listens on; the payload is the function's name.
pub const CHANNEL: &str = "selfdb_functions";

/// A function's settings, as stored.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionRow {
    pub name: String,
    pub active_version: Option<i32>,
    pub previous_version: Option<i32>,
    pub verify_jwt: bool,
    pub memory_mb: Option<i32>,
    pub time_ms: Option<i32>,
    pub concurrency: Option<i32>,
    pub allowed_hosts: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    /// Delivery attempts of one event before it goes to the dead letters.
    pub max_attempts: i32,
}

const FUNCTION_COLUMNS: &str = "name, active_version, previous_version, verify_jwt, memory_mb, \
     time_ms, concurrency, allowed_hosts, env::text, \
     to_char(created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
     to_char(updated_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), max_attempts";

impl FunctionRow {
    fn from_row(row: &Row) -> Self {
        let env: String = row.get(8);
        Self {
            name: row.get(0),
            active_version: row.get(1),
            previous_version: row.get(2),
            verify_jwt: row.get(3),
            memory_mb: row.get(4),
            time_ms: row.get(5),
            concurrency: row.get(6),
            allowed_hosts: row.get(7),
            // Written only by `set_settings` from a string map.
            env: serde_json::from_str(&env).unwrap_or_default(),
            created_at: row.get(9),
            updated_at: row.get(10),
            max_attempts: row.get(11),
        }
    }
}

/// One version's metadata (without its bytes).
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    pub version: i32,
    pub kind: String,
    pub entry: String,
    pub sha256: String,
    pub created_by: String,
    pub created_at: String,
    /// For JavaScript: whether its own pre-initialized component is built.
    pub component_built: bool,
}

const VERSION_COLUMNS: &str = "version, kind, entry, sha256, created_by, \
     to_char(created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
     component is not null";

impl VersionRow {
    fn from_row(row: &Row) -> Self {
        Self {
            version: row.get(0),
            kind: row.get(1),
            entry: row.get(2),
            sha256: row.get(3),
            created_by: row.get(4),
            created_at: row.get(5),
            component_built: row.get(6),
        }
    }
}

/// What a version runs: its script and component, if any.
pub struct VersionCode {
    pub meta: VersionRow,
    /// A Spin version's manifest (TS/JS sources are not read here).
    pub source: Option<Vec<u8>>,
    pub script: Option<Vec<u8>>,
    pub component: Option<Vec<u8>>,
}

/// A new version to store.
pub struct NewVersion<'a> {
    pub kind: &'a str,
    pub entry: &'a str,
    pub source: Option<&'a [u8]>,
    pub script: Option<&'a [u8]>,
    pub component: Option<&'a [u8]>,
    pub sha256: &'a str,
    pub created_by: &'a str,
    /// A Spin app's components and files, stored with the version.
    pub spin: Option<&'a crate::functions::spin::SpinUpload>,
}

/// Settings to change; `None` leaves one as it is.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub verify_jwt: Option<bool>,
    #[serde(default, with = "double_option")]
    pub memory_mb: Option<Option<i32>>,
    #[serde(default, with = "double_option")]
    pub time_ms: Option<Option<i32>>,
    #[serde(default, with = "double_option")]
    pub concurrency: Option<Option<i32>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub max_attempts: Option<i32>,
}

/// `null` clears a limit, absence keeps it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

/// One log record, as `logs` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    pub id: i64,
    pub at: String,
    pub version: Option<i32>,
    pub request_id: Option<String>,
    pub kind: String,
    pub level: Option<String>,
    pub message: Option<String>,
    pub status: Option<i32>,
    pub duration_ms: Option<f64>,
    pub memory_peak: Option<i64>,
}

/// A record to append to the logs.
#[derive(Debug, Clone)]
pub struct NewLog {
    pub function: String,
    pub version: Option<i32>,
    pub request_id: String,
    pub kind: &'static str,
    pub level: Option<&'static str>,
    pub message: Option<String>,
    pub status: Option<i32>,
    pub duration_ms: Option<f64>,
    pub memory_peak: Option<i64>,
}

pub struct Store {
    pool: Pool,
}

impl Store {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, FunctionError> {
        Ok(self.pool.get().await?)
    }

    pub async fn list(&self) -> Result<Vec<FunctionRow>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("select {FUNCTION_COLUMNS} from selfdb.functions order by name"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(FunctionRow::from_row).collect())
    }

    pub async fn get(&self, name: &str) -> Result<Option<FunctionRow>, FunctionError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("select {FUNCTION_COLUMNS} from selfdb.functions where name = $1"),
                &[&name],
            )
            .await?;
        Ok(row.as_ref().map(FunctionRow::from_row))
    }

    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRow>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "select {VERSION_COLUMNS} from selfdb.function_versions \
                     where function = $1 order by version"
                ),
                &[&name],
            )
            .await?;
        Ok(rows.iter().map(VersionRow::from_row).collect())
    }

    /// The source a TypeScript or JavaScript version was built from (the
    /// dashboard's editor opens it): its entry file's name and text; `None`
    /// for a component or Spin upload, or no such version.
    pub async fn source(
        &self,
        name: &str,
        version: i32,
    ) -> Result<Option<(String, Vec<u8>)>, FunctionError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select entry, source from selfdb.function_versions \
                 where function = $1 and version = $2 and kind in ('ts', 'js') \
                   and source is not null",
                &[&name, &version],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// The code of one version.
    pub async fn code(
        &self,
        name: &str,
        version: i32,
    ) -> Result<Option<VersionCode>, FunctionError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "select {VERSION_COLUMNS}, script, component, \
                       case when kind = 'spin' then source end from selfdb.function_versions \
                     where function = $1 and version = $2"
                ),
                &[&name, &version],
            )
            .await?;
        Ok(row.map(|row| VersionCode {
            meta: VersionRow::from_row(&row),
            script: row.get(7),
            component: row.get(8),
            source: row.get(9),
        }))
    }

    /// The active version with the same upload, if the user deploys the
    /// same bytes again.
    pub async fn active_with_sha(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<i32>, FunctionError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select v.version from selfdb.functions f \
                 join selfdb.function_versions v \
                   on v.function = f.name and v.version = f.active_version \
                 where f.name = $1 and v.sha256 = $2",
                &[&name, &sha256],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Stores a new version; [`Store::activate`] makes it the active one.
    pub async fn add_version(&self, name: &str, new: NewVersion<'_>) -> Result<i32, FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "insert into selfdb.functions (name) values ($1) on conflict (name) do nothing",
            &[&name],
        )
        .await?;
        // The row lock orders concurrent deploys of one function.
        tx.execute(
            "select 1 from selfdb.functions where name = $1 for update",
            &[&name],
        )
        .await?;
        let version: i32 = tx
            .query_one(
                "insert into selfdb.function_versions \
                   (function, version, kind, entry, source, script, component, sha256, created_by) \
                 select $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, $6, $7, $8 \
                 from selfdb.function_versions where function = $1 \
                 returning version",
                &[
                    &name,
                    &new.kind,
                    &new.entry,
                    &new.source,
                    &new.script,
                    &new.component,
                    &new.sha256,
                    &new.created_by,
                ],
            )
            .await?
            .get(0);
        if let Some(spin) = new.spin {
            for (component, wasm) in &spin.components {
                let sha = hex::encode(sha2::Sha256::digest(wasm));
                tx.execute(
                    "insert into selfdb.spin_components (function, version, component, wasm, sha256) \
                     values ($1, $2, $3, $4, $5)",
                    &[&name, &version, component, wasm, &sha],
                )
                .await?;
            }
            for file in &spin.files {
                tx.execute(
                    "insert into selfdb.spin_files (function, version, component, path, content) \
                     values ($1, $2, $3, $4, $5)",
                    &[&name, &version, &file.component, &file.path, &file.content],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(version)
    }

    /// A Spin version's components: (id, bytes).
    pub async fn spin_components(
        &self,
        name: &str,
        version: i32,
    ) -> Result<Vec<(String, Vec<u8>)>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select component, wasm from selfdb.spin_components \
                 where function = $1 and version = $2 order by component",
                &[&name, &version],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// A Spin version's files: (component, path, content).
    pub async fn spin_files(
        &self,
        name: &str,
        version: i32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select component, path, content from selfdb.spin_files \
                 where function = $1 and version = $2 order by component, path",
                &[&name, &version],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// The kind of the function's active version (`wasm`, `ts`, `js`,
    /// `spin`), if it has one.
    pub async fn active_kind(&self, name: &str) -> Result<Option<String>, FunctionError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select v.kind from selfdb.functions f join selfdb.function_versions v \
                   on v.function = f.name and v.version = f.active_version where f.name = $1",
                &[&name],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Makes `version` active (the current one becomes the previous one)
    /// and, when given, replaces what the function runs on, in one
    /// transaction.
    pub async fn activate(
        &self,
        name: &str,
        version: i32,
        triggers: Option<&[Declaration]>,
    ) -> Result<(), FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "select 1 from selfdb.function_versions where function = $1 and version = $2",
                &[&name, &version],
            )
            .await?
            .is_some();
        if !exists {
            return Err(FunctionError::VersionNotFound(name.to_owned(), version));
        }
        activate_in(&tx, name, version).await?;
        if let Some(triggers) = triggers {
            declare::apply(&tx, name, triggers).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What the function runs on, with each declaration's row id.
    pub async fn triggers(&self, name: &str) -> Result<Vec<(i64, Declaration)>, FunctionError> {
        let client = self.client().await?;
        Ok(declare::load(&**client, name).await?)
    }

    /// Whether `triggers` would apply (tables exist, filters type-check),
    /// without keeping anything: checked before a setup handler runs, so a
    /// bad declaration does not leave setup's effects behind.
    pub async fn check_triggers(
        &self,
        name: &str,
        triggers: &[Declaration],
    ) -> Result<(), FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        declare::apply(&tx, name, triggers).await?;
        tx.rollback().await?;
        Ok(())
    }

    /// Replaces what the function runs on.
    pub async fn set_triggers(
        &self,
        name: &str,
        triggers: &[Declaration],
    ) -> Result<(), FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The row lock orders this with deploys of the same function.
        tx.execute(
            "select 1 from selfdb.functions where name = $1 for update",
            &[&name],
        )
        .await?;
        declare::apply(&tx, name, triggers).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the pre-initialized component built for a JavaScript version.
    pub async fn set_component(
        &self,
        name: &str,
        version: i32,
        component: &[u8],
    ) -> Result<(), FunctionError> {
        let client = self.client().await?;
        client
            .execute(
                "update selfdb.function_versions set component = $3 \
                 where function = $1 and version = $2 and component is null",
                &[&name, &version, &component],
            )
            .await?;
        client
            .execute("select pg_notify($1, $2)", &[&CHANNEL, &name])
            .await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> Result<bool, FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute("delete from selfdb.functions where name = $1", &[&name])
            .await?;
        tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &name])
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Applies `patch`; returns the function as it now is.
    pub async fn set_settings(
        &self,
        name: &str,
        patch: &SettingsPatch,
    ) -> Result<Option<FunctionRow>, FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let env = patch
            .env
            .as_ref()
            .map(|env| serde_json::to_string(env).unwrap_or_else(|_| "{}".into()));
        let row = tx
            .query_opt(
                &format!(
                    "update selfdb.functions set \
                       verify_jwt = coalesce($2, verify_jwt), \
                       memory_mb = case when $3 then $4 else memory_mb end, \
                       time_ms = case when $5 then $6 else time_ms end, \
                       concurrency = case when $7 then $8 else concurrency end, \
                       allowed_hosts = coalesce($9, allowed_hosts), \
                       env = coalesce($10::text::jsonb, env), \
                       max_attempts = coalesce($11, max_attempts), \
                       updated_at = now() \
                     where name = $1 returning {FUNCTION_COLUMNS}"
                ),
                &[
                    &name,
                    &patch.verify_jwt,
                    &patch.memory_mb.is_some(),
                    &patch.memory_mb.flatten(),
                    &patch.time_ms.is_some(),
                    &patch.time_ms.flatten(),
                    &patch.concurrency.is_some(),
                    &patch.concurrency.flatten(),
                    &patch.allowed_hosts,
                    &env,
                    &patch.max_attempts,
                ],
            )
            .await?;
        if row.is_some() {
            tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &name])
                .await?;
        }
        tx.commit().await?;
        Ok(row.as_ref().map(FunctionRow::from_row))
    }

    /// Every secret of a function, still sealed: (key, nonce, ciphertext).
    pub async fn sealed_secrets(
        &self,
        name: &str,
    ) -> Result<Vec<(String, Vec<u8>, Vec<u8>)>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select key, nonce, ciphertext from selfdb.function_secrets \
                 where function = $1 order by key",
                &[&name],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub async fn secret_names(&self, name: &str) -> Result<Vec<String>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select key from selfdb.function_secrets where function = $1 order by key",
                &[&name],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Stores sealed secrets (key, nonce, ciphertext) and removes `unset`;
    /// false when the function does not exist.
    pub async fn change_secrets(
        &self,
        name: &str,
        set: &[(String, Vec<u8>, Vec<u8>)],
        unset: &[String],
    ) -> Result<bool, FunctionError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "select 1 from selfdb.functions where name = $1 for update",
                &[&name],
            )
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        for (key, nonce, ciphertext) in set {
            tx.execute(
                "insert into selfdb.function_secrets (function, key, nonce, ciphertext) \
                 values ($1, $2, $3, $4) on conflict (function, key) do update \
                 set nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = now()",
                &[&name, key, nonce, ciphertext],
            )
            .await?;
        }
        for key in unset {
            tx.execute(
                "delete from selfdb.function_secrets where function = $1 and key = $2",
                &[&name, key],
            )
            .await?;
        }
        tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &name])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends log records in one statement.
    pub async fn append_logs(&self, logs: &[NewLog]) -> Result<(), FunctionError> {
        if logs.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let functions: Vec<&str> = logs.iter().map(|l| l.function.as_str()).collect();
        let versions: Vec<Option<i32>> = logs.iter().map(|l| l.version).collect();
        let request_ids: Vec<&str> = logs.iter().map(|l| l.request_id.as_str()).collect();
        let kinds: Vec<&str> = logs.iter().map(|l| l.kind).collect();
        let levels: Vec<Option<&str>> = logs.iter().map(|l| l.level).collect();
        let messages: Vec<Option<&str>> = logs.iter().map(|l| l.message.as_deref()).collect();
        let statuses: Vec<Option<i32>> = logs.iter().map(|l| l.status).collect();
        let durations: Vec<Option<f64>> = logs.iter().map(|l| l.duration_ms).collect();
        let peaks: Vec<Option<i64>> = logs.iter().map(|l| l.memory_peak).collect();
        client
            .execute(
                "insert into selfdb.function_logs \
                   (function, version, request_id, kind, level, message, status, duration_ms, memory_peak) \
                 select * from unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], \
                                      $6::text[], $7::int[], $8::float8[], $9::int8[])",
                &[
                    &functions,
                    &versions,
                    &request_ids,
                    &kinds,
                    &levels,
                    &messages,
                    &statuses,
                    &durations,
                    &peaks,
                ],
            )
            .await?;
        Ok(())
    }

    /// Log records of a function after `after_id`, oldest first.
    pub async fn logs(
        &self,
        name: &str,
        after_id: i64,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LogRow>, FunctionError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select id, to_char(at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                        version, request_id, kind, level, message, status, duration_ms, memory_peak \
                 from selfdb.function_logs \
                 where function = $1 and id > $2 and ($3::text is null or at >= $3::timestamptz) \
                 order by id limit $4",
                &[&name, &after_id, &since, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LogRow {
                id: r.get(0),
                at: r.get(1),
                version: r.get(2),
                request_id: r.get(3),
                kind: r.get(4),
                level: r.get(5),
                message: r.get(6),
                status: r.get(7),
                duration_ms: r.get(8),
                memory_peak: r.get(9),
            })
            .collect())
    }
}

/// Points the function at `version`, keeps the one it replaces for
/// `rollback`, and tells every host.
async fn activate_in(
    tx: &deadpool_postgres::Transaction<'_>,
    name: &str,
    version: i32,
) -> Result<(), FunctionError> {
    tx.execute(
        "update selfdb.functions set \
           previous_version = case when active_version is distinct from $2 \
                                   then active_version else previous_version end, \
           active_version = $2, updated_at = now() \
         where name = $1",
        &[&name, &version],
    )
    .await?;
    tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &name])
        .await?;
    Ok(())
}
