//! What the database holds, read from `pg_catalog` for admins (the
//! dashboard's table editor and SQL editor): schemas, and tables with their
//! columns, keys, foreign keys, row security and policies.
//!
//! Unlike `db::schema` (the API's cache of exposed schemas, for building
//! queries), this reads any schema on demand, and what only an admin needs
//! (policies, comments, estimates). PostgreSQL builds the JSON: one round
//! trip per call, whatever the number of tables.

use deadpool_postgres::Pool;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

/// Schemas SelfDB keeps for itself: left out unless asked for.
pub const PLATFORM_SCHEMAS: &[&str] = &["auth", "realtime", "selfdb", "storage"];

/// `[{name, exposed, platform}]`: every schema but PostgreSQL's own, and
/// the platform's only when `all`. `exposed` means the REST API serves it.
pub async fn schemas(pool: &Pool, exposed: &[String], all: bool) -> Result<Value, CatalogError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "select coalesce(json_agg(json_build_object( \
                 'name', nspname, 'exposed', nspname = any($1), \
                 'platform', nspname = any($2)) order by nspname), '[]') \
             from pg_namespace \
             where nspname not like 'pg\\_%' and nspname <> 'information_schema' \
               and ($3 or nspname <> all($2))",
            &[&exposed, &PLATFORM_SCHEMAS, &all],
        )
        .await?;
    Ok(row.get(0))
}

/// A foreign key's action as SQL says it.
const ACTION: &str = "case {} when 'a' then 'NO ACTION' when 'r' then 'RESTRICT' \
    when 'c' then 'CASCADE' when 'n' then 'SET NULL' when 'd' then 'SET DEFAULT' end";

/// The names of constraint `con`'s columns `keys` of relation `rel`, in order.
fn column_names(rel: &str, keys: &str) -> String {
    format!(
        "(select coalesce(json_agg(a.attname order by k.ord), '[]') \
           from unnest({keys}) with ordinality k(num, ord) \
           join pg_attribute a on a.attrelid = {rel} and a.attnum = k.num)"
    )
}

/// The tables, views, materialized views and foreign tables of `schema`
/// (only `table` when given), in name order. With `brief`, only names,
/// kinds and columns' names and types (the SQL editor's side panel).
pub async fn tables(
    pool: &Pool,
    schema: &str,
    table: Option<&str>,
    brief: bool,
) -> Result<Value, CatalogError> {
    let on_delete = ACTION.replace("{}", "f.confdeltype");
    let on_update = ACTION.replace("{}", "f.confupdtype");
    let fk_columns = column_names("f.conrelid", "f.conkey");
    let fk_ref_columns = column_names("f.confrelid", "f.confkey");
    let pk_columns = column_names("c.oid", "pk.conkey");
    let column_detail = if brief {
        String::new()
    } else {
        "'nullable', not a.attnotnull, \
         'default', pg_get_expr(d.adbin, d.adrelid), \
         'is_identity', a.attidentity <> '', \
         'is_generated', a.attgenerated <> '', \
         'is_primary_key', coalesce(a.attnum = any(pk.conkey), false), \
         'is_unique', exists(select 1 from pg_constraint u where u.conrelid = c.oid \
             and u.contype = 'u' and u.conkey = array[a.attnum]), \
         'comment', col_description(c.oid, a.attnum),"
            .to_owned()
    };
    let table_detail = if brief {
        String::new()
    } else {
        format!(
            "'rls_enabled', c.relrowsecurity, 'rls_forced', c.relforcerowsecurity, \
             'realtime', exists(select 1 from pg_publication_tables p \
                 where p.pubname = 'supabase_realtime' and p.schemaname = n.nspname \
                   and p.tablename = c.relname), \
             'row_estimate', greatest(c.reltuples, 0)::int8, \
             'comment', obj_description(c.oid, 'pg_class'), \
             'primary_key', {pk_columns}, \
             'foreign_keys', (select coalesce(json_agg(json_build_object( \
                 'name', f.conname, 'columns', {fk_columns}, \
                 'ref_schema', rn.nspname, 'ref_table', rc.relname, \
                 'ref_columns', {fk_ref_columns}, \
                 'on_delete', {on_delete}, 'on_update', {on_update}) order by f.conname), '[]') \
               from pg_constraint f join pg_class rc on rc.oid = f.confrelid \
               join pg_namespace rn on rn.oid = rc.relnamespace \
               where f.conrelid = c.oid and f.contype = 'f'), \
             'referenced_by', (select coalesce(json_agg(json_build_object( \
                 'name', f.conname, 'schema', sn.nspname, 'table', sc.relname, \
                 'columns', {fk_columns}, 'ref_columns', {fk_ref_columns}) \
                 order by sn.nspname, sc.relname, f.conname), '[]') \
               from pg_constraint f join pg_class sc on sc.oid = f.conrelid \
               join pg_namespace sn on sn.oid = sc.relnamespace \
               where f.confrelid = c.oid and f.contype = 'f'), \
             'policies', (select coalesce(json_agg(json_build_object( \
                 'name', p.policyname, 'command', p.cmd, \
                 'permissive', p.permissive = 'PERMISSIVE', 'roles', p.roles, \
                 'using', p.qual, 'with_check', p.with_check) order by p.policyname), '[]') \
               from pg_policies p where p.schemaname = n.nspname and p.tablename = c.relname),"
        )
    };
    let sql = format!(
        "select coalesce(json_agg(json_build_object( \
             'schema', n.nspname, 'name', c.relname, \
             'kind', case c.relkind when 'r' then 'table' when 'p' then 'table' \
                 when 'v' then 'view' when 'm' then 'materialized_view' \
                 when 'f' then 'foreign_table' end, \
             {table_detail} \
             'columns', (select coalesce(json_agg(json_build_object( \
                 'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), \
                 {column_detail} \
                 'position', a.attnum) order by a.attnum), '[]') \
               from pg_attribute a \
               left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum \
               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) \
           ) order by c.relname), '[]') \
         from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         left join pg_constraint pk on pk.conrelid = c.oid and pk.contype = 'p' \
         where c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition \
           and n.nspname = $1 and ($2::text is null or c.relname = $2)"
    );
    let client = pool.get().await?;
    let row = client.query_one(&sql, &[&schema, &table]).await?;
    Ok(row.get(0))
}
