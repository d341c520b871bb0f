//! Private channels: RLS policies on `realtime.messages` decide who may
//! join (read) and send (write), with `realtime.topic()` naming the
//! channel, as on Supabase. Each check runs in a transaction that is
//! rolled back, so its probe rows never exist for anyone else (nor reach
//! the capture: rolled-back rows are not decoded).

use super::Realtime;
use crate::auth::{Principal, Role};
use crate::db::quote_literal;
use tokio_postgres::error::SqlState;

/// The session settings a policy sees: the caller's role (a fixed name
/// from `Role`), claims and topic, quoted as literals: `SET` takes no
/// parameters, and `set_config` is not the request roles' to call.
fn context(principal: &Principal, topic: &str) -> String {
    format!(
        "set local role {}; set local request.jwt.claims = {}; set local realtime.topic = {};",
        principal.role.as_str(),
        quote_literal(&principal.claims_text),
        quote_literal(topic)
    )
}

/// Whether the principal may read (join) the private channel `topic`.
pub async fn can_read(
    realtime: &Realtime,
    principal: &Principal,
    topic: &str,
) -> anyhow::Result<bool> {
    if principal.role == Role::ServiceRole {
        return Ok(true);
    }
    let mut client = realtime.db.owner().get().await?;
    let tx = client.transaction().await?;
    let id = uuid::Uuid::new_v4();
    tx.execute(
        "insert into realtime.messages (id, topic, extension) values ($1, $2, 'broadcast')",
        &[&id, &topic],
    )
    .await?;
    tx.batch_execute(&context(principal, topic)).await?;
    let seen = tx
        .query_opt("select 1 from realtime.messages where id = $1", &[&id])
        .await;
    tx.rollback().await?;
    Ok(seen?.is_some())
}

/// Whether the principal may send on the private channel `topic`: an
/// insert its policies refuse (42501) means no.
pub async fn can_write(
    realtime: &Realtime,
    principal: &Principal,
    topic: &str,
) -> anyhow::Result<bool> {
    if principal.role == Role::ServiceRole {
        return Ok(true);
    }
    let mut client = realtime.db.owner().get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&context(principal, topic)).await?;
    let inserted = tx
        .execute(
            "insert into realtime.messages (topic, extension, event, private) \
             values ($1, 'broadcast', 'probe', true)",
            &[&topic],
        )
        .await;
    tx.rollback().await?;
    match inserted {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Ok(false),
        Err(err) => Err(err.into()),
    }
}
