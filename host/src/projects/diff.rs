//! What changed between two schema caches, as recorded in a project's
//! schema-change log and sent to its notification targets.

use crate::db::schema::SchemaCache;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// `{"tables_added", "tables_dropped", "columns_added", "columns_dropped",
/// "columns_altered", "keys_changed", "functions_added",
/// "functions_dropped"}`; tables are `schema.name`.
pub fn diff(before: &SchemaCache, after: &SchemaCache) -> Value {
    let name = |(schema, table): &(String, String)| format!("{schema}.{table}");
    let old: BTreeSet<_> = before.tables.keys().collect();
    let new: BTreeSet<_> = after.tables.keys().collect();
    let tables_added: Vec<String> = new.difference(&old).map(|k| name(k)).collect();
    let tables_dropped: Vec<String> = old.difference(&new).map(|k| name(k)).collect();
    let mut columns_added = Vec::new();
    let mut columns_dropped = Vec::new();
    let mut columns_altered = Vec::new();
    let mut keys_changed = Vec::new();
    for key in old.intersection(&new) {
        let (Some(was), Some(is)) = (before.tables.get(*key), after.tables.get(*key)) else {
            continue;
        };
        let table = name(key);
        for column in &is.columns {
            match was.columns.iter().find(|c| c.name == column.name) {
                None => columns_added.push(json!({
                    "table": table, "column": column.name, "type": column.type_name,
                    "nullable": column.nullable,
                })),
                Some(old)
                    if old.type_name != column.type_name
                        || old.nullable != column.nullable
                        || old.has_default != column.has_default =>
                {
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
    let signatures = |cache: &SchemaCache| -> BTreeSet<String> {
        cache
            .functions
            .values()
            .flatten()
            .map(|f| {
                let args: Vec<&str> = f.args.iter().map(|a| a.type_name.as_str()).collect();
                format!("{}.{}({})", f.schema, f.name, args.join(", "))
            })
            .collect()
    };
    let (old_functions, new_functions) = (signatures(before), signatures(after));
    let foreign = |cache: &SchemaCache| -> BTreeSet<String> {
        cache
            .foreign_keys
            .iter()
            .map(|k| format!("{}.{}.{}", k.schema, k.table, k.name))
            .collect()
    };
    let (old_foreign, new_foreign) = (foreign(before), foreign(after));
    json!({
        "tables_added": tables_added,
        "tables_dropped": tables_dropped,
        "columns_added": columns_added,
        "columns_dropped": columns_dropped,
        "columns_altered": columns_altered,
        "keys_changed": keys_changed,
        "foreign_keys_added": new_foreign.difference(&old_foreign).collect::<Vec<_>>(),
        "foreign_keys_dropped": old_foreign.difference(&new_foreign).collect::<Vec<_>>(),
        "functions_added": new_functions.difference(&old_functions).collect::<Vec<_>>(),
        "functions_dropped": old_functions.difference(&new_functions).collect::<Vec<_>>(),
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
    if lines.is_empty() {
        lines.push("definitions changed (constraints or function bodies)".into());
    }
    lines
}
