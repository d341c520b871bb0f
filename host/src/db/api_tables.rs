//! SelfDB's table registry (`selfdb.api_tables`, migration 0017): the ids,
//! owners and `public` flags SelfDB's own API (`/tables`) gives PostgreSQL's
//! tables, and the DDL it runs for them. One store, two views: the table is
//! an ordinary table of an exposed schema, served by `/rest/v1` as well;
//! its name, columns, description (the table's comment) and `realtime`
//! (membership of the `supabase_realtime` publication) are read from
//! pg_catalog on every call, never copied.
//!
//! A table made through the API is *managed*: its rows are decided by two
//! policies written here, "selfdb owner" (the owner and SelfDB's ADMIN users
//! may do anything) and, while it is public, "selfdb public read". Tables
//! made otherwise (psql, `/rest/v1`'s admins) are registered when first
//! seen, with no owner, and keep their own policies.
//!
//! Everything runs on the owner pool; the HTTP layer decides who may ask.

use super::ddl::{check_types, DdlError};
use super::user_ddl::{self, ColumnSpec};
use super::{quote_ident, quote_literal};
use deadpool_postgres::{Pool, Transaction};
use serde_json::Value;

/// Who asks, as the registry's visibility rules see them.
pub struct Viewer<'a> {
    /// The service key, an admin's token, or one of SelfDB's ADMIN users.
    pub admin: bool,
    pub user_id: Option<&'a str>,
    /// The database role the caller's requests run as.
    pub role: &'static str,
}

const TIMESTAMP: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// A table as SelfDB's SDKs read it (`TableRead`, and the Swift SDK's
/// `table_schema`), over `a` (the registry), `c` (pg_class) and `n`
/// (pg_namespace).
fn table_json() -> String {
    let column = "json_build_object('name', at.attname, \
         'type', format_type(at.atttypid, at.atttypmod), \
         'nullable', not at.attnotnull, \
         'default', pg_get_expr(d.adbin, d.adrelid), \
         'primary_key', exists(select 1 from pg_constraint k where k.conrelid = c.oid \
             and k.contype = 'p' and at.attnum = any(k.conkey)), \
         'unique', exists(select 1 from pg_constraint k where k.conrelid = c.oid \
             and k.contype in ('u', 'p') and k.conkey = array[at.attnum]), \
         'position', at.attnum)";
    let columns_from = "from pg_attribute at \
         left join pg_attrdef d on d.adrelid = at.attrelid and d.adnum = at.attnum \
         where at.attrelid = c.oid and at.attnum > 0 and not at.attisdropped";
    format!(
        "json_build_object( \
           'id', a.id, 'name', c.relname, 'schema_name', n.nspname, \
           'owner_id', a.owner_id, 'public', a.public, \
           'description', obj_description(c.oid, 'pg_class'), \
           'metadata', a.metadata, \
           'realtime', {published}, 'realtime_enabled', {published}, \
           'row_count', greatest(c.reltuples, 0)::int8, \
           'columns', (select coalesce(json_agg({column} order by at.attnum), '[]') {columns_from}), \
           'table_schema', (select coalesce(json_object_agg(at.attname, {column} order by at.attnum), '{{}}') {columns_from}), \
           'created_at', to_char(a.created_at at time zone 'utc', {TIMESTAMP}), \
           'updated_at', to_char(a.updated_at at time zone 'utc', {TIMESTAMP}))",
        published = "exists(select 1 from pg_publication_tables p \
             where p.pubname = 'supabase_realtime' and p.schemaname = n.nspname \
               and p.tablename = c.relname)",
    )
}

/// `$1` exposed schemas, `$2` admin, `$3` user id, `$4` role.
const FROM_VISIBLE: &str = "from selfdb.api_tables a \
     join pg_class c on c.oid = a.relid \
     join pg_namespace n on n.oid = c.relnamespace \
     where n.nspname = any($1) \
       and ($2 or a.public \
            or (a.managed and a.owner_id = $3::text::uuid) \
            or (not a.managed and has_table_privilege($4::text::name, c.oid, 'select')))";

/// `$5`: a piece of the name or description, or null.
const SEARCH: &str = "and ($5::text is null \
     or strpos(lower(c.relname), lower($5)) > 0 \
     or strpos(lower(coalesce(obj_description(c.oid, 'pg_class'), '')), lower($5)) > 0)";

/// Brings the registry in line with pg_catalog (`selfdb.api_tables_sync`).
pub async fn sync(pool: &Pool, schemas: &[String]) -> Result<(), DdlError> {
    let client = pool.get().await?;
    client
        .execute("select selfdb.api_tables_sync($1)", &[&schemas])
        .await?;
    Ok(())
}

/// Whether `user_id` is one of SelfDB's ADMIN users (`/users` role).
pub async fn is_admin(pool: &Pool, user_id: &str) -> Result<bool, DdlError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "select coalesce(raw_app_meta_data ->> 'selfdb_role' = 'ADMIN', false) \
             from auth.users where id::text = $1",
            &[&user_id],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
}

pub enum SortBy {
    Name,
    CreatedAt,
    UpdatedAt,
}

pub struct ListQuery<'a> {
    pub search: Option<&'a str>,
    pub sort_by: SortBy,
    pub ascending: bool,
    pub skip: i64,
    pub limit: i64,
}

/// The tables `viewer` may see, as a JSON array.
pub async fn list(
    pool: &Pool,
    schemas: &[String],
    viewer: &Viewer<'_>,
    query: &ListQuery<'_>,
) -> Result<Value, DdlError> {
    let order = match query.sort_by {
        SortBy::Name => "c.relname",
        SortBy::CreatedAt => "a.created_at",
        SortBy::UpdatedAt => "a.updated_at",
    };
    let direction = if query.ascending { "asc" } else { "desc" };
    let sql = format!(
        "select coalesce(json_agg(t.j order by t.o), '[]') from ( \
           select {json} as j, row_number() over (order by {order} {direction}, a.id) as o \
           {FROM_VISIBLE} {SEARCH} \
           order by {order} {direction}, a.id offset $6 limit $7) t",
        json = table_json()
    );
    let client = pool.get().await?;
    let row = client
        .query_one(
            &sql,
            &[
                &schemas,
                &viewer.admin,
                &viewer.user_id,
                &viewer.role,
                &query.search,
                &query.skip,
                &query.limit,
            ],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn count(
    pool: &Pool,
    schemas: &[String],
    viewer: &Viewer<'_>,
    search: Option<&str>,
) -> Result<i64, DdlError> {
    let sql = format!("select count(*) {FROM_VISIBLE} {SEARCH}");
    let client = pool.get().await?;
    let row = client
        .query_one(
            &sql,
            &[
                &schemas,
                &viewer.admin,
                &viewer.user_id,
                &viewer.role,
                &search,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// A registered table of an exposed schema, and what `viewer` may do.
pub struct Found {
    pub json: Value,
    pub schema: String,
    pub name: String,
    pub managed: bool,
    pub public: bool,
    pub owner_id: Option<String>,
    /// `viewer` may see it (and read its rows, as its policies allow).
    pub visible: bool,
    /// `viewer` may change it: an admin, or the owner of a managed table.
    pub owned: bool,
}

impl Found {
    /// `"schema"."name"`.
    pub fn target(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// The table with registry id `id` (a uuid's text), if there is one.
/// With `brief`, `json` has only `id` and the columns' `name`, `type` and
/// `primary_key` (what serving rows needs): the whole table's JSON reads the
/// publication and more, a cost paid by every row request otherwise.
pub async fn find(
    pool: &Pool,
    schemas: &[String],
    viewer: &Viewer<'_>,
    id: &str,
    brief: bool,
) -> Result<Option<Found>, DdlError> {
    let json = if brief {
        "json_build_object('id', a.id, 'columns', \
           (select coalesce(json_agg(json_build_object('name', at.attname, \
               'type', format_type(at.atttypid, at.atttypmod), \
               'primary_key', exists(select 1 from pg_constraint k where k.conrelid = c.oid \
                   and k.contype = 'p' and at.attnum = any(k.conkey))) order by at.attnum), '[]') \
            from pg_attribute at \
            where at.attrelid = c.oid and at.attnum > 0 and not at.attisdropped))"
            .to_owned()
    } else {
        table_json()
    };
    let sql = format!(
        "select {json}, n.nspname, c.relname, a.managed, a.public, a.owner_id::text, \
           coalesce($2 or a.public \
            or (a.managed and a.owner_id = $3::text::uuid) \
            or (not a.managed and has_table_privilege($4::text::name, c.oid, 'select')), false) \
         from selfdb.api_tables a \
         join pg_class c on c.oid = a.relid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = any($1) and a.id = $5::text::uuid"
    );
    let client = pool.get().await?;
    let row = client
        .query_opt(
            &sql,
            &[&schemas, &viewer.admin, &viewer.user_id, &viewer.role, &id],
        )
        .await?;
    Ok(row.map(|row| {
        let managed: bool = row.get(3);
        let owner_id: Option<String> = row.get(5);
        let owned = viewer.admin
            || (managed && owner_id.is_some() && owner_id.as_deref() == viewer.user_id);
        Found {
            json: row.get(0),
            schema: row.get(1),
            name: row.get(2),
            managed,
            public: row.get(4),
            owner_id,
            visible: row.get(6),
            owned,
        }
    }))
}

/// A table to create through the API.
pub struct NewApiTable<'a> {
    pub schema: &'a str,
    pub name: &'a str,
    pub columns: &'a [ColumnSpec],
    pub description: Option<&'a str>,
    pub public: bool,
    pub realtime: bool,
    pub metadata: &'a Value,
    /// The signed-in user who made it; none for the service key.
    pub owner: Option<&'a str>,
}

const OWNER_POLICY: &str = "\"selfdb owner\"";
const PUBLIC_POLICY: &str = "\"selfdb public read\"";

/// The owner and SelfDB's ADMIN users may do anything with the rows.
fn owner_policy(target: &str, owner: Option<&str>) -> String {
    let check = match owner {
        Some(owner) => format!(
            "(select auth.uid()) = {}::uuid or (select selfdb.api_admin())",
            quote_literal(owner)
        ),
        None => "(select selfdb.api_admin())".to_owned(),
    };
    format!(
        "create policy {OWNER_POLICY} on {target} as permissive for all to authenticated \
         using ({check}) with check ({check})"
    )
}

/// Anyone with the key may read the rows.
fn public_policy(target: &str) -> String {
    format!(
        "create policy {PUBLIC_POLICY} on {target} as permissive for select \
         to anon, authenticated using (true)"
    )
}

async fn run_all(tx: &Transaction<'_>, statements: &[String]) -> Result<(), DdlError> {
    for statement in statements {
        tx.batch_execute(statement).await?;
    }
    Ok(())
}

/// Whether `target` is in the realtime publication.
async fn published(tx: &Transaction<'_>, schema: &str, name: &str) -> Result<bool, DdlError> {
    let row = tx
        .query_one(
            "select exists(select 1 from pg_publication_tables \
             where pubname = 'supabase_realtime' and schemaname = $1 and tablename = $2)",
            &[&schema, &name],
        )
        .await?;
    Ok(row.get(0))
}

/// Creates the table, its policies and its registry row in one
/// transaction; returns its id.
pub async fn create(pool: &Pool, table: &NewApiTable<'_>) -> Result<String, DdlError> {
    let target = format!("{}.{}", quote_ident(table.schema), quote_ident(table.name));
    let definitions: Vec<String> = table.columns.iter().map(ColumnSpec::definition).collect();
    let mut statements = vec![
        format!(
            "create table {target} (\n  {}\n)",
            definitions.join(",\n  ")
        ),
        format!("alter table {target} enable row level security"),
        owner_policy(&target, table.owner),
    ];
    if table.public {
        statements.push(public_policy(&target));
    }
    if let Some(description) = table.description {
        statements.push(format!(
            "comment on table {target} is {}",
            quote_literal(description)
        ));
    }
    if table.realtime {
        // Whole old rows in UPDATE and DELETE changes, as SelfDB's clients
        // read `old`.
        statements.push(format!("alter table {target} replica identity full"));
        statements.push(format!(
            "alter publication supabase_realtime add table {target}"
        ));
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let types: Vec<&str> = table.columns.iter().map(|c| c.type_sql.as_str()).collect();
    check_types(&tx, &types).await?;
    run_all(&tx, &statements).await?;
    let row = tx
        .query_one(
            "insert into selfdb.api_tables \
               (relid, schema_name, table_name, owner_id, public, managed, metadata) \
             values ($1::text::regclass::oid, $2, $3, $4::text::uuid, $5, true, $6) \
             on conflict (relid) do update set owner_id = excluded.owner_id, \
               public = excluded.public, managed = true, metadata = excluded.metadata \
             returning id::text",
            &[
                &target,
                &table.schema,
                &table.name,
                &table.owner,
                &table.public,
                table.metadata,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(row.get(0))
}

/// What `PATCH /tables/{id}` may change.
#[derive(Default)]
pub struct TableChange<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub public: Option<bool>,
    pub realtime: Option<bool>,
    pub metadata: Option<&'a Value>,
}

pub async fn update(pool: &Pool, found: &Found, change: &TableChange<'_>) -> Result<(), DdlError> {
    let target = found.target();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(description) = change.description {
        tx.batch_execute(&format!(
            "comment on table {target} is {}",
            quote_literal(description)
        ))
        .await?;
    }
    if let Some(public) = change.public {
        tx.batch_execute(&format!(
            "drop policy if exists {PUBLIC_POLICY} on {target}"
        ))
        .await?;
        if public {
            tx.batch_execute(&public_policy(&target)).await?;
        }
    }
    if let Some(realtime) = change.realtime {
        let now = published(&tx, &found.schema, &found.name).await?;
        if realtime && !now {
            run_all(
                &tx,
                &[
                    format!("alter table {target} replica identity full"),
                    format!("alter publication supabase_realtime add table {target}"),
                ],
            )
            .await?;
        } else if !realtime && now {
            tx.batch_execute(&format!(
                "alter publication supabase_realtime drop table {target}"
            ))
            .await?;
        }
    }
    if let Some(name) = change.name.filter(|n| *n != found.name) {
        tx.batch_execute(&format!(
            "alter table {target} rename to {}",
            quote_ident(name)
        ))
        .await?;
    }
    let id: Option<String> = found.json["id"].as_str().map(str::to_owned);
    tx.execute(
        "update selfdb.api_tables set \
           public = coalesce($2, public), metadata = coalesce($3, metadata), \
           table_name = coalesce($4, table_name), updated_at = now() \
         where id::text = $1",
        &[&id, &change.public, &change.metadata, &change.name],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Drops the table and forgets it.
pub async fn delete(pool: &Pool, found: &Found) -> Result<(), DdlError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("drop table {}", found.target()))
        .await?;
    let id: Option<String> = found.json["id"].as_str().map(str::to_owned);
    tx.execute("delete from selfdb.api_tables where id::text = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A change to one table's columns.
pub enum ColumnsChange<'a> {
    Add(&'a ColumnSpec),
    Alter(&'a str, &'a user_ddl::ColumnChange),
    Drop(&'a str),
}

pub async fn change_columns(
    pool: &Pool,
    found: &Found,
    change: ColumnsChange<'_>,
) -> Result<(), DdlError> {
    let target = found.target();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    match change {
        ColumnsChange::Add(column) => {
            check_types(&tx, &[column.type_sql.as_str()]).await?;
            tx.batch_execute(&format!(
                "alter table {target} add column {}",
                column.definition()
            ))
            .await?;
        }
        ColumnsChange::Alter(column, change) => {
            if let Some(type_sql) = &change.type_sql {
                check_types(&tx, &[type_sql.as_str()]).await?;
            }
            run_all(&tx, &user_ddl::alter_column(&target, column, change)).await?;
        }
        ColumnsChange::Drop(column) => {
            tx.batch_execute(&format!(
                "alter table {target} drop column {}",
                quote_ident(column)
            ))
            .await?;
        }
    }
    let id: Option<String> = found.json["id"].as_str().map(str::to_owned);
    tx.execute(
        "update selfdb.api_tables set updated_at = now() where id::text = $1",
        &[&id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
