//! The schema cache: tables, views, columns, keys and functions of the
//! exposed schemas, read from the catalog once and again whenever DDL
//! notifies `selfdb_schema` — never per request.

use super::{Database, DbError};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The notification channel the DDL event triggers use.
pub const CHANNEL: &str = "selfdb_schema";

#[derive(Debug, Clone, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub nullable: bool,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub referenced_schema: String,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub kind: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FunctionArg {
    pub name: String,
    pub type_name: String,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub args: Vec<FunctionArg>,
    pub return_type: String,
    pub returns_set: bool,
    pub returns_rows: bool,
    /// Columns from OUT or TABLE parameters, when they shape the rows.
    pub result_columns: Vec<Column>,
    pub volatility: String,
    /// The last argument is `VARIADIC`.
    pub variadic: bool,
}

#[derive(Debug, Default)]
pub struct SchemaCache {
    pub schemas: Vec<String>,
    pub tables: HashMap<(String, String), Table>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The overloads of each function, in creation order.
    pub functions: HashMap<(String, String), Vec<Function>>,
}

impl SchemaCache {
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.get(&(schema.to_owned(), name.to_owned()))
    }

    pub fn function(&self, schema: &str, name: &str) -> Option<&Function> {
        self.overloads(schema, name).first()
    }

    pub fn overloads(&self, schema: &str, name: &str) -> &[Function] {
        self.functions
            .get(&(schema.to_owned(), name.to_owned()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Keys from `schema.table` to other tables.
    pub fn keys_from<'a>(
        &'a self,
        schema: &'a str,
        table: &'a str,
    ) -> impl Iterator<Item = &'a ForeignKey> {
        self.foreign_keys
            .iter()
            .filter(move |k| k.schema == schema && k.table == table)
    }

    /// Keys from other tables to `schema.table`.
    pub fn keys_to<'a>(
        &'a self,
        schema: &'a str,
        table: &'a str,
    ) -> impl Iterator<Item = &'a ForeignKey> {
        self.foreign_keys
            .iter()
            .filter(move |k| k.referenced_schema == schema && k.referenced_table == table)
    }

    pub async fn load(db: &Database, schemas: &[String]) -> Result<Self, DbError> {
        let client = db.owner().get().await?;
        let client: &tokio_postgres::Client = &client;
        Self::load_with(client, schemas).await
    }

    /// Reads the cache through `client`: a connection, or a transaction
    /// (a user's database behind a transaction-mode pooler must see all
    /// three catalog reads on one server session).
    pub async fn load_with<C: tokio_postgres::GenericClient + Sync>(
        client: &C,
        schemas: &[String],
    ) -> Result<Self, DbError> {
        let mut cache = SchemaCache {
            schemas: schemas.to_vec(),
            ..Default::default()
        };
        let json =
            |text: String| -> Vec<String> { serde_json::from_str(&text).unwrap_or_default() };
        for row in client
            .query(
                "select n.nspname::text, c.relname::text,
                        case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                       when 'f' then 'foreign table' else 'table' end,
                        coalesce((select json_agg(json_build_object(
                                    'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                                    'nullable', not a.attnotnull,
                                    'has_default', a.atthasdef or a.attidentity <> '' or a.attgenerated <> '')
                                  order by a.attnum)
                                  from pg_attribute a
                                  where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]')::text,
                        coalesce((select json_agg(a.attname order by array_position(i.indkey::int2[], a.attnum))
                                  from pg_index i
                                  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                                  where i.indrelid = c.oid and i.indisprimary), '[]')::text
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = any($1) and c.relkind in ('r', 'v', 'm', 'f', 'p')",
                &[&schemas],
            )
            .await?
        {
            let table = Table {
                schema: row.get(0),
                name: row.get(1),
                kind: row.get(2),
                columns: serde_json::from_str(&row.get::<_, String>(3)).unwrap_or_default(),
                primary_key: json(row.get(4)),
            };
            cache
                .tables
                .insert((table.schema.clone(), table.name.clone()), table);
        }
        for row in client
            .query(
                "select con.conname::text, n1.nspname::text, c1.relname::text, n2.nspname::text, c2.relname::text,
                        (select json_agg(a.attname order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)
                         join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum)::text,
                        (select json_agg(a.attname order by k.ord) from unnest(con.confkey) with ordinality k(attnum, ord)
                         join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum)::text
                 from pg_constraint con
                 join pg_class c1 on c1.oid = con.conrelid join pg_namespace n1 on n1.oid = c1.relnamespace
                 join pg_class c2 on c2.oid = con.confrelid join pg_namespace n2 on n2.oid = c2.relnamespace
                 where con.contype = 'f' and n1.nspname = any($1) and n2.nspname = any($1)",
                &[&schemas],
            )
            .await?
        {
            cache.foreign_keys.push(ForeignKey {
                name: row.get(0),
                schema: row.get(1),
                table: row.get(2),
                referenced_schema: row.get(3),
                referenced_table: row.get(4),
                columns: json(row.get(5)),
                referenced_columns: json(row.get(6)),
            });
        }
        for row in client
            .query(
                "select n.nspname::text, p.proname::text,
                        coalesce((select json_agg(coalesce(p.proargnames[m.o], '') order by m.o)
                                  from unnest(p.proargmodes::text[]) with ordinality m(mode, o)
                                  where m.mode in ('i', 'b', 'v')),
                                 array_to_json(p.proargnames), '[]')::text,
                        coalesce((select json_agg(format_type(t, null) order by o)
                                  from unnest(p.proargtypes::oid[]) with ordinality u(t, o)), '[]')::text,
                        p.pronargdefaults::int, format_type(p.prorettype, null), p.proretset,
                        (t.typtype = 'c' or t.typrelid <> 0 or out.columns is not null),
                        case p.provolatile when 'i' then 'immutable' when 's' then 'stable' else 'volatile' end,
                        coalesce(out.columns, '[]')::text,
                        p.provariadic <> 0
                 from pg_proc p
                 join pg_namespace n on n.oid = p.pronamespace
                 join pg_type t on t.oid = p.prorettype
                 -- OUT, INOUT and TABLE parameters shape the rows only of a
                 -- function declared to return record.
                 left join lateral (
                     select json_agg(json_build_object(
                                'name', coalesce(p.proargnames[m.o], ''),
                                'type', format_type(p.proallargtypes[m.o], null),
                                'nullable', true, 'has_default', false) order by m.o) as columns
                     from unnest(p.proargmodes::text[]) with ordinality m(mode, o)
                     where m.mode in ('o', 'b', 't') and p.prorettype = 'record'::regtype
                 ) out on true
                 where n.nspname = any($1) and p.prokind = 'f'
                 order by p.oid",
                &[&schemas],
            )
            .await?
        {
            let names = json(row.get(2));
            let types = json(row.get(3));
            let defaults = row.get::<_, i32>(4).max(0) as usize;
            let count = types.len();
            let args = types
                .into_iter()
                .enumerate()
                .map(|(i, type_name)| FunctionArg {
                    name: names.get(i).cloned().unwrap_or_default(),
                    type_name,
                    has_default: i + defaults >= count,
                })
                .collect();
            let function = Function {
                schema: row.get(0),
                name: row.get(1),
                args,
                return_type: row.get(5),
                returns_set: row.get(6),
                returns_rows: row.get(7),
                result_columns: serde_json::from_str(&row.get::<_, String>(9)).unwrap_or_default(),
                volatility: row.get(8),
                variadic: row.get(10),
            };
            cache
                .functions
                .entry((function.schema.clone(), function.name.clone()))
                .or_default()
                .push(function);
        }
        Ok(cache)
    }
}

/// The current cache, swapped whole when it is rebuilt.
pub struct SharedSchema {
    current: RwLock<Arc<SchemaCache>>,
}

impl SharedSchema {
    pub fn new(cache: SchemaCache) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(cache)),
        })
    }

    pub fn get(&self) -> Arc<SchemaCache> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a rebuilt cache; requests already running keep theirs.
    pub fn replace(&self, cache: SchemaCache) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cache);
    }

    /// Listens for DDL notifications and rebuilds the cache after each burst;
    /// reconnects when the listening connection drops.
    pub fn spawn_refresher(self: &Arc<Self>, db: Database) {
        let shared = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(err) = shared.listen(&db).await {
                    tracing::warn!(%err, "schema listener stopped; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn listen(&self, db: &Database) -> Result<(), DbError> {
        let (client, connection) = db
            .owner_config()
            .connect(db.owner_target().tls.clone())
            .await?;
        let mut changes = super::notifications(connection);
        client.batch_execute(&format!("listen {CHANNEL}")).await?;
        // A change may have happened before LISTEN took effect.
        self.reload(db).await;
        while changes.recv().await.is_some() {
            // One rebuild for a burst of DDL (a migration, say).
            while changes.try_recv().is_ok() {}
            self.reload(db).await;
        }
        Ok(())
    }

    /// Rebuilds the cache now (after DDL this host ran, so its next
    /// request need not wait for the notification).
    pub async fn reload(&self, db: &Database) {
        let schemas = self.get().schemas.clone();
        match SchemaCache::load(db, &schemas).await {
            Ok(cache) => {
                tracing::info!(
                    tables = cache.tables.len(),
                    functions = cache.functions.len(),
                    "schema cache rebuilt"
                );
                self.replace(cache);
                db.clear_statement_caches();
            }
            Err(err) => {
                tracing::warn!(%err, "schema cache rebuild failed; keeping the previous one")
            }
        }
    }
}
