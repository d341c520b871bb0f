//! SelfDB's realtime topics (`/realtime/socket`, SelfDB's SDKs): which
//! table a `table:<name>` join means, and whether its user may have it.
//! The connection itself is `socket`'s, in its SelfDB dialect; changes go
//! out from the same capture and row level security checks as
//! `/realtime/v1`'s, as SelfDB's frames (`deliver`).

use super::Realtime;
use crate::auth::{Principal, Role};

/// The `(schema, table)` of `topic` (`table:<name>`, or
/// `table:<schema>.<name>` for a table of another exposed schema), if
/// `principal` may follow it: any table of the exposed schemas, except a
/// table made through SelfDB's `/tables` that is private to another user
/// (the owner, the service role and SelfDB's ADMIN users may).
pub async fn resolve(
    realtime: &Realtime,
    schemas: &[String],
    principal: &Principal,
    topic: &str,
) -> Result<(String, String), String> {
    let Some(name) = topic.strip_prefix("table:").filter(|n| !n.is_empty()) else {
        return Err(format!(
            "{topic:?}: SelfDB's topics are table:<name> (or table:<schema>.<name>)"
        ));
    };
    let (schema, table) = match name.split_once('.') {
        Some((schema, table)) if schemas.iter().any(|s| s == schema) => (Some(schema), table),
        _ => (None, name),
    };
    let user = match principal.role {
        Role::Authenticated => principal.user_id.clone(),
        _ => None,
    };
    let failed = |err: &dyn std::fmt::Display| {
        tracing::warn!(%err, "realtime: resolving a SelfDB topic failed");
        "the table could not be looked up".to_owned()
    };
    // The service role, or one of SelfDB's ADMIN users (as `/tables` asks).
    let admin = match &user {
        _ if principal.role == Role::ServiceRole => true,
        Some(user) => crate::db::api_tables::is_admin(realtime.db.owner(), user)
            .await
            .map_err(|e| failed(&e))?,
        None => false,
    };
    let client = realtime.db.owner().get().await.map_err(|e| failed(&e))?;
    // The first exposed schema that has it, unless one was named.
    let row = client
        .query_opt(
            "select n.nspname::text, c.relname::text, \
               $4 or not coalesce(a.managed, false) or a.public \
               or a.owner_id::text = $5 \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             left join selfdb.api_tables a on a.relid = c.oid \
             where c.relkind in ('r', 'p') and c.relname = $1 \
               and n.nspname::text = any($2::text[]) and ($3::text is null or n.nspname = $3) \
             order by array_position($2::text[], n.nspname::text) limit 1",
            &[&table, &schemas, &schema, &admin, &user],
        )
        .await
        .map_err(|e| failed(&e))?;
    match row {
        None => Err(format!("table {name:?} not found")),
        Some(row) if !row.get::<_, Option<bool>>(2).unwrap_or(false) => {
            Err("You do not have access to this table".to_owned())
        }
        Some(row) => Ok((row.get(0), row.get(1))),
    }
}
