//! Delivers captured transactions to this host's subscribers: broadcasts
//! written by `realtime.send`, and `postgres_changes` frames for the rows
//! each subscriber may SELECT.
//!
//! Transactions queued together are delivered together, so that one
//! visibility query per table and batch answers for every subscriber:
//! under load batches grow, and the cost per row falls.

use super::capture::{Captured, Change, Kind};
use super::protocol::{self, UserBroadcast, Vsn};
use super::{Binding, Format, Realtime, TopicKey};
use crate::auth::Role;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Transactions taken into one delivery at most.
const MAX_BATCH: usize = 512;

pub(super) async fn run(realtime: Arc<Realtime>, mut rx: mpsc::Receiver<Captured>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut fresh = Vec::with_capacity(batch.len());
        for captured in batch.drain(..) {
            // A capture that took over re-sends what may not have been
            // confirmed: drop what was delivered already.
            let seen = realtime.delivered_lsn.load(Ordering::Acquire);
            if captured.lsn > seen {
                realtime
                    .delivered_lsn
                    .store(captured.lsn, Ordering::Release);
                fresh.push(captured);
            }
        }
        broadcast_messages(&realtime, &fresh);
        if let Err(err) = deliver_changes(&realtime, &fresh).await {
            tracing::warn!(error = %format!("{err:#}"), "realtime: delivering database changes failed");
        }
    }
}

fn broadcast_messages(realtime: &Realtime, batch: &[Captured]) {
    for message in batch.iter().flat_map(|c| &c.messages) {
        let topic = format!("realtime:{}", message.topic);
        let key = TopicKey {
            private: message.private,
            topic: topic.clone(),
        };
        let broadcast = UserBroadcast {
            event: message.event.clone(),
            json: true,
            payload: message.payload.to_string().into(),
        };
        let meta = message.payload.get("id").map(|id| json!({ "id": id }));
        realtime.fan_out_local(&key, None, |vsn| {
            protocol::encode_user_broadcast(vsn, &topic, &broadcast, meta.as_ref())
        });
    }
}

/// A subscriber group for the visibility query: one role and its claims.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Viewer {
    role: Role,
    claims: String,
}

/// A table's rows (indexes into the batch) and the viewers to ask about.
type TableAsk = (Vec<usize>, Vec<Viewer>);

struct Candidate {
    change: usize,
    binding: Arc<Binding>,
    viewer: Viewer,
}

/// What one viewer may see of one table's rows in this batch.
#[derive(Default, Clone)]
struct Sight {
    /// Row indexes (into the batch's changes) it may see.
    rows: std::collections::HashSet<usize>,
    allowed: bool,
}

async fn deliver_changes(realtime: &Realtime, batch: &[Captured]) -> anyhow::Result<()> {
    let changes: Vec<(&Captured, &Change)> = batch
        .iter()
        .flat_map(|c| c.changes.iter().map(move |change| (c, change)))
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let candidates = match_bindings(realtime, &changes);
    if candidates.is_empty() {
        return Ok(());
    }

    // Per table: the viewers that need an answer, and which rows.
    let mut tables: HashMap<(&str, &str), TableAsk> = HashMap::new();
    for candidate in &candidates {
        if candidate.viewer.role == Role::ServiceRole {
            continue;
        }
        let change = changes[candidate.change].1;
        let entry = tables
            .entry((change.schema.as_str(), change.table.as_str()))
            .or_default();
        if !entry.0.contains(&candidate.change) {
            entry.0.push(candidate.change);
        }
        if !entry.1.contains(&candidate.viewer) {
            entry.1.push(candidate.viewer.clone());
        }
    }
    let mut sights: HashMap<(usize, Viewer), bool> = HashMap::new();
    let mut rls_tables: HashMap<(String, String), bool> = HashMap::new();
    for ((schema, table), (rows, mut viewers)) in tables {
        // Viewers of one role together: a role switch re-plans the query.
        viewers.sort_by_key(|v| v.role.as_str());
        let (rls, per_viewer) =
            visibility(realtime, schema, table, &changes, &rows, &viewers).await?;
        rls_tables.insert((schema.to_owned(), table.to_owned()), rls);
        for (viewer, sight) in viewers.iter().zip(per_viewer) {
            for &row in &rows {
                let kind = changes[row].1.kind;
                let sees = sight.allowed && (kind == Kind::Delete || sight.rows.contains(&row));
                sights.insert((row, viewer.clone()), sees);
            }
        }
    }

    // One frame per (channel, change), carrying the ids of every binding of
    // that channel the change matched; frames in commit order.
    let mut by_change: Vec<Vec<(Arc<Binding>, Vec<u32>)>> = vec![Vec::new(); changes.len()];
    for candidate in candidates {
        let sees = candidate.viewer.role == Role::ServiceRole
            || sights
                .get(&(candidate.change, candidate.viewer.clone()))
                .copied()
                .unwrap_or(false);
        if !sees {
            continue;
        }
        let list = &mut by_change[candidate.change];
        match list.iter_mut().find(|(b, _)| {
            b.conn == candidate.binding.conn && b.join_ref == candidate.binding.join_ref
        }) {
            Some((_, ids)) => {
                if !ids.contains(&candidate.binding.id) {
                    ids.push(candidate.binding.id);
                }
            }
            None => {
                let id = candidate.binding.id;
                list.push((candidate.binding, vec![id]));
            }
        }
    }
    for (index, channels) in by_change.into_iter().enumerate() {
        if channels.is_empty() {
            continue;
        }
        let (captured, change) = changes[index];
        let rls = rls_tables
            .get(&(change.schema.clone(), change.table.clone()))
            .copied()
            .unwrap_or(false);
        let data = change_data(captured, change, rls);
        let mut frames: HashMap<(Arc<str>, Vec<u32>, Vsn, Format), protocol::Outgoing> =
            HashMap::new();
        for (binding, mut ids) in channels {
            ids.sort_unstable();
            let frame = frames
                .entry((
                    binding.topic.clone(),
                    ids.clone(),
                    binding.vsn,
                    binding.format,
                ))
                .or_insert_with(|| match binding.format {
                    Format::Supabase => protocol::encode(
                        binding.vsn,
                        None,
                        None,
                        &binding.topic,
                        "postgres_changes",
                        &json!({ "ids": ids, "data": data }),
                    ),
                    Format::SelfDb => protocol::encode(
                        binding.vsn,
                        None,
                        None,
                        &binding.topic,
                        change.kind.as_str(),
                        &selfdb_payload(&data, change.kind),
                    ),
                })
                .clone();
            binding.outbox.send(frame);
        }
    }
    Ok(())
}

fn match_bindings(realtime: &Realtime, changes: &[(&Captured, &Change)]) -> Vec<Candidate> {
    let map = realtime.bindings.read().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::new();
    for (index, (_, change)) in changes.iter().enumerate() {
        let exact = map.get(&(change.schema.clone(), change.table.clone()));
        let wildcard = map.get(&(change.schema.clone(), "*".to_owned()));
        for binding in exact.into_iter().chain(wildcard).flatten() {
            if binding.event.is_some_and(|e| e != change.kind) {
                continue;
            }
            if let Some(filter) = &binding.filter {
                let row = if change.kind == Kind::Delete {
                    &change.old
                } else {
                    &change.new
                };
                if !filter.matches(row) {
                    continue;
                }
            }
            let principal = binding
                .principal
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            out.push(Candidate {
                change: index,
                binding: binding.clone(),
                viewer: Viewer {
                    role: principal.role,
                    claims: principal.claims_text.clone(),
                },
            });
        }
    }
    out
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Asks the database which of `rows` (all of one table) each viewer may
/// select now; returns whether the table has RLS on, and per viewer (in
/// order) what it sees.
async fn visibility(
    realtime: &Realtime,
    schema: &str,
    table: &str,
    changes: &[(&Captured, &Change)],
    rows: &[usize],
    viewers: &[Viewer],
) -> anyhow::Result<(bool, Vec<Sight>)> {
    let key_columns: Vec<String> = changes[rows[0]].1.key.as_ref().clone();
    let keys: Vec<Value> = rows
        .iter()
        .map(|&row| {
            let change = changes[row].1;
            let source = if change.kind == Kind::Delete {
                &change.old
            } else {
                &change.new
            };
            Value::Array(
                key_columns
                    .iter()
                    .map(|k| match source.get(k) {
                        Some(Value::String(s)) => Value::String(s.clone()),
                        Some(Value::Null) | None => Value::Null,
                        Some(other) => Value::String(other.to_string()),
                    })
                    .collect(),
            )
        })
        .collect();
    let roles: Vec<&str> = viewers.iter().map(|v| v.role.as_str()).collect();
    let claims: Vec<&str> = viewers.iter().map(|v| v.claims.as_str()).collect();
    let relation = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let keys = Value::Array(keys);
    let mut client = realtime.db.owner().get().await?;
    let mut answer = None;
    if !key_columns.is_empty() {
        let name = function_name(changes[rows[0]].1, &key_columns);
        match ask_table_function(
            realtime,
            &mut client,
            &name,
            &relation,
            &key_columns,
            &keys,
            &roles,
            &claims,
        )
        .await
        {
            Ok(rows) => answer = Some(rows),
            Err(err) => {
                forget(realtime, &name);
                tracing::warn!(error = %err, "realtime: the per-table visibility function failed; asking the general one");
            }
        }
    }
    let rows_out = match answer {
        Some(rows) => rows,
        None => {
            let tx = client.build_transaction().read_only(true).start().await?;
            let result = tx
                .query(
                    "select subscriber, visible, rls, allowed \
                       from selfdb.realtime_visible($1::text::regclass, $2, $3, $4, $5)",
                    &[&relation, &key_columns, &keys, &roles, &claims],
                )
                .await;
            tx.rollback().await?;
            result?
        }
    };
    let mut rls = false;
    let mut sights = vec![Sight::default(); viewers.len()];
    for row in rows_out {
        let subscriber: i32 = row.get(0);
        let visible: Vec<i32> = row.get(1);
        rls = row.get(2);
        let allowed: bool = row.get(3);
        let Some(sight) = usize::try_from(subscriber - 1)
            .ok()
            .and_then(|i| sights.get_mut(i))
        else {
            continue;
        };
        sight.allowed = allowed;
        sight.rows = visible
            .into_iter()
            .filter_map(|i| {
                usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| rows.get(i).copied())
            })
            .collect();
    }
    Ok((rls, sights))
}

/// `realtime_visible_<oid>_<hash of name and key>`: a new table name or
/// key makes a new function.
fn function_name(change: &Change, key_columns: &[String]) -> String {
    let hash = super::stable_hash(&format!(
        "{}.{}:{}",
        change.schema,
        change.table,
        key_columns.join(",")
    ));
    format!("realtime_visible_{}_{hash:08x}", change.relation)
}

fn forget(realtime: &Realtime, name: &str) {
    realtime
        .visibility_functions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
}

/// Asks the table's own visibility function, defining it on first use.
#[allow(clippy::too_many_arguments)]
async fn ask_table_function(
    realtime: &Realtime,
    client: &mut deadpool_postgres::Object,
    name: &str,
    relation: &str,
    key_columns: &[String],
    keys: &Value,
    roles: &[&str],
    claims: &[&str],
) -> anyhow::Result<Vec<tokio_postgres::Row>> {
    let defined = realtime
        .visibility_functions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(name);
    if !defined {
        client
            .execute(
                "select selfdb.realtime_visible_define($1::text::regclass, $2, $3)",
                &[&relation, &key_columns, &name],
            )
            .await?;
        realtime
            .visibility_functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned());
    }
    // `name` is built by `function_name` from [a-z0-9_] only.
    let tx = client.build_transaction().read_only(true).start().await?;
    let result = tx
        .query(
            &format!("select subscriber, visible, rls, allowed from selfdb.{name}($1, $2, $3)"),
            &[keys, &roles, &claims],
        )
        .await;
    tx.rollback().await?;
    Ok(result?)
}

/// A change as SelfDB's clients read it (`payload.event`, `.table`,
/// `.new`, `.old`), from Supabase's `data`.
fn selfdb_payload(data: &Value, kind: Kind) -> Value {
    json!({
        "event": kind.as_str(),
        "table": data["table"],
        "schema": data["schema"],
        "new": data.get("record").cloned().unwrap_or(Value::Null),
        "old": data.get("old_record").cloned().unwrap_or(Value::Null),
        "commit_timestamp": data["commit_timestamp"],
    })
}

/// The `data` of a `postgres_changes` frame, as Supabase's server sends it
/// (realtime-js renames `type`, `record` and `old_record`).
fn change_data(captured: &Captured, change: &Change, rls: bool) -> Value {
    let mut data = Map::new();
    data.insert("schema".into(), Value::String(change.schema.clone()));
    data.insert("table".into(), Value::String(change.table.clone()));
    data.insert(
        "commit_timestamp".into(),
        Value::String(captured.commit_timestamp.clone()),
    );
    data.insert(
        "type".into(),
        Value::String(change.kind.as_str().to_owned()),
    );
    data.insert(
        "columns".into(),
        serde_json::to_value(change.columns.as_ref()).unwrap_or(Value::Null),
    );
    if change.kind != Kind::Delete {
        data.insert("record".into(), Value::Object(change.new.clone()));
    }
    if change.kind != Kind::Insert {
        // The key only, unless the table's identity is full; a delete from
        // an RLS table, never checked row by row, shows only its key.
        let key_only = !change.full_identity || (rls && change.kind == Kind::Delete);
        let old = if key_only {
            change
                .key
                .iter()
                .filter_map(|k| change.old.get(k).map(|v| (k.clone(), v.clone())))
                .collect()
        } else {
            change.old.clone()
        };
        data.insert("old_record".into(), Value::Object(old));
    }
    data.insert("errors".into(), Value::Null);
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selfdb_frames_carry_the_event_and_both_rows() {
        let data = json!({
            "schema": "public", "table": "notes", "commit_timestamp": "2026-12-07T08:00:00Z",
            "type": "UPDATE", "record": {"id": 1, "n": 2}, "old_record": {"id": 1, "n": 1},
            "columns": [], "errors": null,
        });
        assert_eq!(
            selfdb_payload(&data, Kind::Update),
            json!({
                "event": "UPDATE", "table": "notes", "schema": "public",
                "new": {"id": 1, "n": 2}, "old": {"id": 1, "n": 1},
                "commit_timestamp": "2026-12-07T08:00:00Z",
            })
        );
        let insert = json!({"schema": "public", "table": "notes", "record": {"id": 3}});
        let payload = selfdb_payload(&insert, Kind::Insert);
        assert_eq!(payload["old"], Value::Null);
        assert_eq!(payload["event"], "INSERT");
    }
}
