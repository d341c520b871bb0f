//! What changed between two schemas, as recorded in a project's
//! schema-change log and sent to its notification targets.
//!
//! A schema is compared as its [`Shape`]: what a schema change can be
//! about (tables, columns, keys, functions), small enough to store with the
//! project. The stored shape is the "before" of a host that has no cache
//! of its own from before the change (it opened the pool after it, or
//! restarted).

use crate::db::schema::SchemaCache;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The parts of a schema cache a change is reported in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// `schema.name` → its columns and primary key.
    tables: BTreeMap<String, TableShape>,
    /// `schema.table.constraint`.
    foreign_keys: BTreeSet<String>,
    /// `schema.name(argument types)`.
    functions: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TableShape {
    columns: Vec<ColumnShape>,
    primary_key: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ColumnShape {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    nullable: bool,
    has_default: bool,
}

impl Shape {
    pub fn of(cache: &SchemaCache) -> Shape {
        let tables = cache
            .tables
            .iter()
            .map(|((schema, name), table)| {
                let columns = table
                    .columns
                    .iter()
                    .map(|c| ColumnShape {
                        name: c.name.clone(),
                        type_name: c.type_name.clone(),
                        nullable: c.nullable,
                        has_default: c.has_default,
                    })
                    .collect();
                let shape = TableShape {
                    columns,
                    primary_key: table.primary_key.clone(),
                };
                (qualified(schema, name), shape)
            })
            .collect();
        let foreign_keys = cache
            .foreign_keys
            .iter()
            .map(|k| format!("{}.{}.{}", k.schema, k.table, k.name))
            .collect();
        let functions = cache
            .functions
            .values()
            .flatten()
            .map(|f| {
                let args: Vec<&str> = f.args.iter().map(|a| a.type_name.as_str()).collect();
                format!("{}.{}({})", f.schema, f.name, args.join(", "))
            })
            .collect();
        Shape {
            tables,
            foreign_keys,
            functions,
        }
    }
}

/// `schema.name`, with a part quoted when it holds `.` or `"` (so that
/// `"a.b".c` and `a."b.c"` stay two tables).
fn qualified(schema: &str, name: &str) -> String {
    let part = |s: &str| {
        if s.contains(['.', '"']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    format!("{}.{}", part(schema), part(name))
}

/// `{"tables_added", "tables_dropped", "columns_added", "columns_dropped",
/// "columns_altered", "keys_changed", "foreign_keys_added",
/// "foreign_keys_dropped", "functions_added", "functions_dropped"}`;
/// tables are `schema.name`.
pub fn diff(before: &Shape, after: &Shape) -> Value {
    let old: BTreeSet<&String> = before.tables.keys().collect();
    let new: BTreeSet<&String> = after.tables.keys().collect();
    let tables_added: Vec<&String> = new.difference(&old).copied().collect();
    let tables_dropped: Vec<&String> = old.difference(&new).copied().collect();
    let mut columns_added = Vec::new();
    let mut columns_dropped = Vec::new();
    let mut columns_altered = Vec::new();
    let mut keys_changed = Vec::new();
    for table in old.intersection(&new) {
        let (Some(was), Some(is)) = (before.tables.get(*table), after.tables.get(*table)) else {
            continue;
        };
        for column in &is.columns {
            match was.columns.iter().find(|c| c.name == column.name) {
                None => columns_added.push(json!({
                    "table": table, "column": column.name, "type": column.type_name,
                    "nullable": column.nullable,
                })),
                Some(old) if old != column => {
                    let mut altered = json!({"table": table, "column": column.name});
                    if old.type_name != column.type_name {
                        altered["type"] = json!({"from": old.type_name, "to": column.type_name});
                    }
                    if old.nullable != column.nullable {
                        altered["nullable"] = json!({"from": old.nullable, "to": column.nullable});
                    }
                    if old.has_default != column.has_default {
                        altered["has_default"] =
                            json!({"from": old.has_default, "to": column.has_default});
                    }
                    columns_altered.push(altered);
                }
                Some(_) => {}
            }
        }
        for column in &was.columns {
            if !is.columns.iter().any(|c| c.name == column.name) {
                columns_dropped.push(json!({"table": table, "column": column.name}));
            }
        }
        if was.primary_key != is.primary_key {
            keys_changed.push(json!({
                "table": table, "primary_key": {"from": was.primary_key, "to": is.primary_key},
            }));
        }
    }
    json!({
        "tables_added": tables_added,
        "tables_dropped": tables_dropped,
        "columns_added": columns_added,
        "columns_dropped": columns_dropped,
        "columns_altered": columns_altered,
        "keys_changed": keys_changed,
        "foreign_keys_added": after.foreign_keys.difference(&before.foreign_keys).collect::<Vec<_>>(),
        "foreign_keys_dropped": before.foreign_keys.difference(&after.foreign_keys).collect::<Vec<_>>(),
        "functions_added": after.functions.difference(&before.functions).collect::<Vec<_>>(),
        "functions_dropped": before.functions.difference(&after.functions).collect::<Vec<_>>(),
    })
}

/// One line per change, for an email.
pub fn describe(changes: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    let list = |key: &str| changes[key].as_array().cloned().unwrap_or_default();
    for t in list("tables_added") {
        lines.push(format!("table added: {}", t.as_str().unwrap_or_default()));
    }
    for t in list("tables_dropped") {
        lines.push(format!("table dropped: {}", t.as_str().unwrap_or_default()));
    }
    for c in list("columns_added") {
        lines.push(format!(
            "column added: {}.{} ({})",
            c["table"].as_str().unwrap_or_default(),
            c["column"].as_str().unwrap_or_default(),
            c["type"].as_str().unwrap_or_default()
        ));
    }
    for c in list("columns_dropped") {
        lines.push(format!(
            "column dropped: {}.{}",
            c["table"].as_str().unwrap_or_default(),
            c["column"].as_str().unwrap_or_default()
        ));
    }
    for c in list("columns_altered") {
        lines.push(format!(
            "column altered: {}.{} {}",
            c["table"].as_str().unwrap_or_default(),
            c["column"].as_str().unwrap_or_default(),
            c.get("type")
                .map(|t| format!("type {} -> {}", t["from"], t["to"]))
                .unwrap_or_default()
        ));
    }
    for k in list("keys_changed") {
        lines.push(format!(
            "primary key changed: {}",
            k["table"].as_str().unwrap_or_default()
        ));
    }
    for (key, what) in [
        ("foreign_keys_added", "foreign key added"),
        ("foreign_keys_dropped", "foreign key dropped"),
        ("functions_added", "function added"),
        ("functions_dropped", "function dropped"),
    ] {
        for f in list(key) {
            lines.push(format!("{what}: {}", f.as_str().unwrap_or_default()));
        }
    }
    if changes["baseline_unknown"] == Value::Bool(true) {
        lines.push(
            "the schema changed while no host was watching it; what changed is not known".into(),
        );
    } else if lines.is_empty() {
        lines.push("definitions changed (constraints or function bodies)".into());
    }
    lines
}
