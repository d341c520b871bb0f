//! What a function runs on, as declared at deploy or through the API, and
//! how a declaration becomes database state: a `selfdb.function_triggers`
//! row, plus Postgres row triggers for a table binding. A function's set is
//! replaced as a whole, in the caller's transaction; declarations that did
//! not change keep their row, so their queued events and their schedule's
//! last tick survive a redeploy.

use super::filter;
use super::EventsError;
use crate::db::{quote_ident, quote_literal};
use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One thing a function runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// Changes of a table: `operations` are `INSERT`, `UPDATE`, `DELETE`
    /// in that order.
    Database {
        schema: String,
        table: String,
        operations: Vec<String>,
        filter: Option<String>,
    },
    Schedule {
        cron: String,
        time_zone: String,
    },
    Custom {
        name: String,
    },
    Setup,
}

/// A declaration as JSON: `{"on": "insert,update:public.orders", "filter":
/// "status=eq.paid"}`, `{"cron": "*/5 * * * *", "time_zone": "UTC"}`,
/// `{"event": "order.paid"}`, `{"setup": true}`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeclarationJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<bool>,
}

fn invalid(message: impl Into<String>) -> EventsError {
    EventsError::Invalid(message.into())
}

/// The cron grammar: five fields (minute first) or six (seconds first).
pub fn parse_cron(expression: &str) -> Result<Cron, EventsError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| invalid(format!("invalid cron expression {expression:?}: {e}")))
}

pub fn parse_zone(zone: &str) -> Result<chrono_tz::Tz, EventsError> {
    zone.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(format!(
            "unknown time zone {zone:?} (use an IANA name such as Europe/Paris)"
        ))
    })
}

/// The first tick strictly after `now`.
pub fn next_tick(
    cron: &Cron,
    zone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, EventsError> {
    cron.find_next_occurrence(&now.with_timezone(&zone), false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid(format!("the schedule never runs: {e}")))
}

fn event_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl Declaration {
    /// Checks one declaration's own syntax (the table's existence and the
    /// filter's columns are checked when it is applied).
    pub fn from_json(json: DeclarationJson) -> Result<Self, EventsError> {
        let given = [
            json.on.is_some(),
            json.cron.is_some(),
            json.event.is_some(),
            json.setup.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(invalid(
                "each trigger is exactly one of {\"on\": \"insert:public.orders\"}, {\"cron\": \"*/5 * * * *\"}, {\"event\": \"name\"} or {\"setup\": true}",
            ));
        }
        if json.filter.is_some() && json.on.is_none() {
            return Err(invalid("\"filter\" goes with \"on\""));
        }
        if json.time_zone.is_some() && json.cron.is_none() {
            return Err(invalid("\"time_zone\" goes with \"cron\""));
        }
        if let Some(on) = json.on {
            let (ops, table) = on.split_once(':').ok_or_else(|| {
                invalid(format!(
                    "{on:?}: use OPERATIONS:SCHEMA.TABLE, e.g. insert,update:public.orders"
                ))
            })?;
            let mut operations = Vec::new();
            for op in ops.split(',').map(|o| o.trim().to_ascii_uppercase()) {
                match op.as_str() {
                    "*" | "ALL" => {
                        operations.extend(["INSERT", "UPDATE", "DELETE"].map(String::from))
                    }
                    "INSERT" | "UPDATE" | "DELETE" => operations.push(op),
                    _ => {
                        return Err(invalid(format!(
                            "{op:?} is not insert, update, delete or *"
                        )))
                    }
                }
            }
            let order = |o: &String| ["INSERT", "UPDATE", "DELETE"].iter().position(|x| x == o);
            operations.sort_by_key(order);
            operations.dedup();
            let (schema, table) = match table.split_once('.') {
                Some((s, t)) => (s.to_owned(), t.to_owned()),
                None => ("public".to_owned(), table.to_owned()),
            };
            if schema.is_empty() || table.is_empty() || schema.len() > 63 || table.len() > 63 {
                return Err(invalid(format!("{on:?} does not name a table")));
            }
            if schema == "selfdb" {
                return Err(invalid("tables of the selfdb schema cannot have triggers"));
            }
            let filter = json
                .filter
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty());
            if let Some(f) = &filter {
                // Syntax now; columns and types when the trigger is made.
                filter::compile(f, "NEW").map_err(|e| invalid(e.to_string()))?;
            }
            return Ok(Declaration::Database {
                schema,
                table,
                operations,
                filter,
            });
        }
        if let Some(cron) = json.cron {
            let cron = cron.trim().to_owned();
            let time_zone = json.time_zone.unwrap_or_else(|| "UTC".to_owned());
            let parsed = parse_cron(&cron)?;
            let zone = parse_zone(&time_zone)?;
            next_tick(&parsed, zone, Utc::now())?;
            return Ok(Declaration::Schedule { cron, time_zone });
        }
        if let Some(name) = json.event {
            if !event_name_ok(&name) {
                return Err(invalid(format!(
                    "{name:?} is not an event name: use 1-128 of letters, digits, '_', '.', ':' and '-'"
                )));
            }
            return Ok(Declaration::Custom { name });
        }
        match json.setup {
            Some(true) => Ok(Declaration::Setup),
            _ => Err(invalid("\"setup\" is true or absent")),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Declaration::Database {
                schema,
                table,
                operations,
                filter,
            } => json!({
                "kind": "database",
                "on": format!("{}:{schema}.{table}", operations.join(",").to_ascii_lowercase()),
                "schema": schema,
                "table": table,
                "operations": operations,
                "filter": filter,
            }),
            Declaration::Schedule { cron, time_zone } => json!({
                "kind": "schedule", "cron": cron, "time_zone": time_zone,
            }),
            Declaration::Custom { name } => json!({"kind": "custom", "event": name}),
            Declaration::Setup => json!({"kind": "setup", "setup": true}),
        }
    }

    fn from_row(row: &tokio_postgres::Row) -> Option<Self> {
        let kind: String = row.get("kind");
        Some(match kind.as_str() {
            "database" => Declaration::Database {
                schema: row.get("schema_name"),
                table: row.get("table_name"),
                operations: row.get("operations"),
                filter: row.get("filter"),
            },
            "schedule" => Declaration::Schedule {
                cron: row.get("cron"),
                time_zone: row.get("time_zone"),
            },
            "custom" => Declaration::Custom {
                name: row.get("event_name"),
            },
            "setup" => Declaration::Setup,
            _ => return None,
        })
    }
}

/// Parses a list of declarations, refusing duplicates.
pub fn parse_all(list: Vec<DeclarationJson>) -> Result<Vec<Declaration>, EventsError> {
    let mut out: Vec<Declaration> = Vec::new();
    for json in list {
        let declaration = Declaration::from_json(json)?;
        if !out.contains(&declaration) {
            out.push(declaration);
        }
    }
    Ok(out)
}

/// A function's declarations as stored.
pub async fn load(
    client: &impl tokio_postgres::GenericClient,
    function: &str,
) -> Result<Vec<(i64, Declaration)>, EventsError> {
    let rows = client
        .query(
            "select id, kind, schema_name, table_name, operations, filter, cron, time_zone, \
                    event_name \
             from selfdb.function_triggers where function = $1 order by id",
            &[&function],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Declaration::from_row(r).map(|d| (r.get::<_, i64>("id"), d)))
        .collect())
}

/// Makes `function`'s declarations exactly `wanted`, inside `tx`. A
/// binding replaced by one on the same table (other operations, another
/// filter), or a custom event by one of the same name, hands its queued
/// events and dead letters to the new one instead of dropping them.
pub async fn apply(
    tx: &deadpool_postgres::Transaction<'_>,
    function: &str,
    wanted: &[Declaration],
) -> Result<(), EventsError> {
    let existing = load(&**tx, function).await?;
    let mut added = Vec::new();
    let mut schedules = false;
    for declaration in wanted {
        if existing.iter().any(|(_, d)| d == declaration) {
            continue;
        }
        added.push((insert(tx, function, declaration).await?, declaration));
        schedules |= matches!(declaration, Declaration::Schedule { .. });
    }
    for (id, declaration) in &existing {
        if wanted.contains(declaration) {
            continue;
        }
        let heir = added
            .iter()
            .find(|(_, new)| same_source(declaration, new))
            .map(|(new_id, _)| *new_id);
        if let Some(heir) = heir {
            tx.execute(
                "update selfdb.outbox set trigger_id = $2 where trigger_id = $1",
                &[id, &heir],
            )
            .await?;
            tx.execute(
                "update selfdb.dead_letters set trigger_id = $2 where trigger_id = $1",
                &[id, &heir],
            )
            .await?;
        }
        drop_row(tx, *id).await?;
    }
    if schedules {
        tx.execute("select pg_notify('selfdb_schedules', '')", &[])
            .await?;
    }
    Ok(())
}

/// Whether `new` takes over from `old`: the same table, or the same event.
fn same_source(old: &Declaration, new: &Declaration) -> bool {
    match (old, new) {
        (
            Declaration::Database { schema, table, .. },
            Declaration::Database {
                schema: s,
                table: t,
                ..
            },
        ) => schema == s && table == t,
        (Declaration::Custom { name }, Declaration::Custom { name: n }) => name == n,
        _ => false,
    }
}

async fn drop_row(tx: &deadpool_postgres::Transaction<'_>, id: i64) -> Result<(), EventsError> {
    // Found by name wherever the table is now (renamed or moved since).
    let made = tx
        .query(
            "select tg.tgname::text, tg.tgrelid::regclass::text from pg_trigger tg \
             where tg.tgname = any((select pg_triggers from selfdb.function_triggers \
                                    where id = $1)::name[])",
            &[&id],
        )
        .await?;
    for row in made {
        let name: String = row.get(0);
        let table: String = row.get(1);
        tx.batch_execute(&format!(
            "drop trigger if exists {} on {table}",
            quote_ident(&name)
        ))
        .await?;
    }
    tx.execute("delete from selfdb.function_triggers where id = $1", &[&id])
        .await?;
    Ok(())
}

/// Stores one declaration (making its row triggers); returns its id.
async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    function: &str,
    declaration: &Declaration,
) -> Result<i64, EventsError> {
    let id = match declaration {
        Declaration::Database {
            schema,
            table,
            operations,
            filter,
        } => {
            let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
            let kind: Option<i8> = tx
                .query_opt(
                    "select c.relkind::\"char\" as kind from pg_class c \
                     where c.oid = to_regclass($1)",
                    &[&qualified],
                )
                .await?
                .map(|r| r.get::<_, i8>(0));
            match kind.map(|k| k as u8) {
                Some(b'r') | Some(b'p') => {}
                Some(_) => return Err(invalid(format!("{schema}.{table} is not a table"))),
                None => return Err(EventsError::NoTable(format!("{schema}.{table}"))),
            }
            let id: i64 = tx
                .query_one(
                    "insert into selfdb.function_triggers \
                       (function, kind, schema_name, table_name, operations, filter) \
                     values ($1, 'database', $2, $3, $4, $5) returning id",
                    &[&function, schema, table, operations, filter],
                )
                .await?
                .get(0);
            // The primary key orders the changes of one row.
            let keys: Vec<String> = tx
                .query(
                    "select a.attname::text from pg_index i \
                     join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
                     where i.indrelid = to_regclass($1) and i.indisprimary \
                     order by array_position(i.indkey::int2[], a.attnum)",
                    &[&qualified],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut args = vec![quote_literal(&id.to_string()), quote_literal(function)];
            args.extend(keys.iter().map(|k| quote_literal(k)));
            let args = args.join(", ");
            // Without a filter, one trigger for every operation; with one,
            // a trigger per operation, since INSERT has no OLD row and
            // DELETE no NEW one.
            let mut made = Vec::new();
            let groups: Vec<(String, Vec<&String>, Option<String>)> = match filter {
                None => vec![(format!("selfdb_fn_{id}"), operations.iter().collect(), None)],
                Some(f) => operations
                    .iter()
                    .map(|op| {
                        let row = if op == "DELETE" { "OLD" } else { "NEW" };
                        filter::compile(f, row).map(|when| {
                            (
                                format!("selfdb_fn_{id}_{}", op.to_ascii_lowercase()),
                                vec![op],
                                Some(when),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| invalid(e.to_string()))?,
            };
            for (name, ops, when) in groups {
                let events: Vec<&str> = ops.iter().map(|o| o.as_str()).collect();
                let when = when.map(|w| format!(" when ({w})")).unwrap_or_default();
                let ddl = format!(
                    "create trigger {} after {} on {qualified} for each row{when} \
                     execute function selfdb.enqueue_change({args})",
                    quote_ident(&name),
                    events.join(" or "),
                );
                tx.batch_execute(&ddl).await.map_err(|e| {
                    let message = e
                        .as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_else(|| e.to_string());
                    invalid(format!("cannot bind to {schema}.{table}: {message}"))
                })?;
                made.push(name);
            }
            tx.execute(
                "update selfdb.function_triggers set pg_triggers = $2 where id = $1",
                &[&id, &made],
            )
            .await?;
            id
        }
        Declaration::Schedule { cron, time_zone } => {
            let now: DateTime<Utc> = tx.query_one("select now()", &[]).await?.get(0);
            let next = next_tick(&parse_cron(cron)?, parse_zone(time_zone)?, now)?;
            tx.query_one(
                "insert into selfdb.function_triggers (function, kind, cron, time_zone, next_run_at) \
                 values ($1, 'schedule', $2, $3, $4) returning id",
                &[&function, cron, time_zone, &next],
            )
            .await?
            .get(0)
        }
        Declaration::Custom { name } => tx
            .query_one(
                "insert into selfdb.function_triggers (function, kind, event_name) \
                 values ($1, 'custom', $2) returning id",
                &[&function, name],
            )
            .await?
            .get(0),
        Declaration::Setup => tx
            .query_one(
                "insert into selfdb.function_triggers (function, kind) values ($1, 'setup') \
                 returning id",
                &[&function],
            )
            .await?
            .get(0),
    };
    Ok(id)
}
