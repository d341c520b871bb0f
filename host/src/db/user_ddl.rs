//! Table and column definitions as SelfDB's own API takes them (issue 25):
//! from ordinary signed-in users, not admins, so nothing they send reaches
//! SQL as SQL. Unlike `db::ddl` (admins, who may run any SQL anyway):
//! - names are lower-case identifiers (`^[a-z_][a-z0-9_]*$`, 1 to 63 bytes),
//!   and quoted all the same;
//! - a type is one of SelfDB's aliases or a type name of a strict grammar
//!   (letters, digits, spaces, an optional `(n)` or `(p, s)`, an optional
//!   `[]`), which `to_regtype` then checks;
//! - a default is a number, `true`/`false`/`null`, one of a few functions
//!   (`now()`, `gen_random_uuid()`, `auth.uid()`, ...), or else a literal,
//!   quoted here, that PostgreSQL casts to the column's type.
//!
//! `http::selfdb_api::tables` checks each type with `to_regtype` and runs
//! the SQL built here (`db::api_tables`).

use super::{quote_ident, quote_literal};
use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InputError(pub String);

fn invalid(message: impl Into<String>) -> InputError {
    InputError(message.into())
}

/// A table or column name: returned as given, after the check.
pub fn name(what: &str, text: &str) -> Result<String, InputError> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(invalid(format!(
            "{what} {text:?}: use lower-case letters, digits and _, starting with a letter or _ (at most 63)"
        )))
    }
}

/// SelfDB's type aliases (as its server mapped them), else the text when
/// it is a type name of the strict grammar. The answer is SQL to be checked
/// with `to_regtype` before use.
pub fn column_type(text: &str) -> Result<String, InputError> {
    let trimmed = text.trim();
    let alias = match trimmed.to_ascii_uppercase().as_str() {
        "TEXT" => Some("text"),
        "STRING" | "VARCHAR" => Some("varchar(255)"),
        "INTEGER" | "INT" => Some("integer"),
        "BIGINT" => Some("bigint"),
        "DECIMAL" => Some("decimal(10,2)"),
        "FLOAT" => Some("double precision"),
        "BOOLEAN" | "BOOL" => Some("boolean"),
        "DATE" => Some("date"),
        "TIMESTAMP" | "DATETIME" => Some("timestamptz"),
        "JSON" | "JSONB" => Some("jsonb"),
        "UUID" => Some("uuid"),
        _ => None,
    };
    if let Some(alias) = alias {
        return Ok(alias.to_owned());
    }
    if type_grammar(trimmed) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(invalid(format!("type {text:?} is not a type name")))
    }
}

/// `^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$`, by hand.
fn type_grammar(text: &str) -> bool {
    let (body, _array) = match text.strip_suffix("[]") {
        Some(body) => (body, true),
        None => (text, false),
    };
    let (base, modifiers) = match body.find('(') {
        Some(open) => {
            let Some(inner) = body[open + 1..].strip_suffix(')') else {
                return false;
            };
            (&body[..open], Some(inner))
        }
        None => (body, None),
    };
    let base_ok = base.len() <= 63
        && base.starts_with(|c: char| c.is_ascii_alphabetic())
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ');
    let modifiers_ok = modifiers.is_none_or(|inner| {
        let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
        (1..=2).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
    });
    base_ok && modifiers_ok
}

/// Functions a default may call, as written here (lower case).
const DEFAULT_FUNCTIONS: &[&str] = &[
    "now()",
    "current_timestamp",
    "current_date",
    "current_time",
    "gen_random_uuid()",
    "auth.uid()",
];

/// A default as SQL that is safe to paste: see the module's rules. `None`
/// for no default.
pub fn default_sql(value: &Value) -> Result<Option<String>, InputError> {
    Ok(match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(text) => {
            let trimmed = text.trim();
            let lower = trimmed.to_ascii_lowercase();
            if DEFAULT_FUNCTIONS.contains(&lower.as_str())
                || matches!(lower.as_str(), "true" | "false" | "null")
            {
                Some(lower)
            } else if is_number(trimmed) {
                Some(trimmed.to_owned())
            } else if let Some(inner) = quoted(trimmed) {
                Some(quote_literal(&inner))
            } else {
                Some(quote_literal(text))
            }
        }
        other => {
            return Err(invalid(format!(
                "default {other}: give a number, true, false, a text or a function such as now()"
            )))
        }
    })
}

fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// The text of a single-quoted SQL literal (`'it''s'` → `it's`), if that is
/// all `text` is.
fn quoted(text: &str) -> Option<String> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Only a doubled quote may stand inside.
            if chars.next() != Some('\'') {
                return None;
            }
        }
        out.push(c);
    }
    Some(out)
}

/// One column of a new table, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    /// SQL, still to be checked with `to_regtype`.
    pub type_sql: String,
    pub nullable: bool,
    pub default_sql: Option<String>,
    pub primary_key: bool,
    pub unique: bool,
}

fn column(name_text: &str, spec: &Value) -> Result<ColumnSpec, InputError> {
    let Some(object) = spec.as_object() else {
        return Err(invalid(format!(
            "column {name_text:?}: give {{\"type\", \"nullable\"?, \"default\"?, \"primary_key\"?, \"unique\"?}}"
        )));
    };
    let type_text = object
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("column {name_text:?} needs a type")))?;
    let flag =
        |key: &str, default: bool| object.get(key).and_then(Value::as_bool).unwrap_or(default);
    Ok(ColumnSpec {
        name: name("column", name_text)?,
        type_sql: column_type(type_text)?,
        nullable: flag("nullable", true),
        default_sql: default_sql(object.get("default").unwrap_or(&Value::Null))?,
        primary_key: flag("primary_key", false),
        unique: flag("unique", false),
    })
}

impl ColumnSpec {
    /// The column as `create table` and `add column` take it.
    pub fn definition(&self) -> String {
        let mut sql = format!("{} {}", quote_ident(&self.name), self.type_sql);
        if !self.nullable {
            sql.push_str(" not null");
        }
        if let Some(default) = &self.default_sql {
            sql.push_str(" default ");
            sql.push_str(default);
        }
        if self.primary_key {
            sql.push_str(" primary key");
        } else if self.unique {
            sql.push_str(" unique");
        }
        sql
    }
}

/// One column as `POST /tables/{id}/columns` takes it (the SDK's
/// `ColumnDefinition`: `{name, type, nullable, default, primary_key, unique}`).
pub fn column_definition(spec: &Value) -> Result<ColumnSpec, InputError> {
    let column_name = spec
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a column needs a name"))?;
    column(column_name, spec)
}

/// A change to a column, as `PATCH /tables/{id}/columns/{name}` takes it
/// (the SDK's `ColumnUpdate`), checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ColumnChange {
    pub new_name: Option<String>,
    pub type_sql: Option<String>,
    pub nullable: Option<bool>,
    pub default_sql: Option<String>,
}

pub fn column_change(value: &Value) -> Result<ColumnChange, InputError> {
    let Some(object) = value.as_object() else {
        return Err(invalid(
            "give {\"new_name\"?, \"type\"?, \"nullable\"?, \"default\"?}",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "new_name" | "type" | "nullable" | "default"))
    {
        return Err(invalid(format!(
            "{unknown:?}: a column change has new_name, type, nullable and default"
        )));
    }
    let text = |key: &str| -> Result<Option<&str>, InputError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(format!("{key} is a string"))),
        }
    };
    let change = ColumnChange {
        new_name: text("new_name")?.map(|n| name("column", n)).transpose()?,
        type_sql: text("type")?.map(column_type).transpose()?,
        nullable: match object.get("nullable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("nullable is true or false")),
        },
        default_sql: default_sql(object.get("default").unwrap_or(&Value::Null))?,
    };
    if change == ColumnChange::default() {
        return Err(invalid(
            "nothing to change: give new_name, type, nullable or default",
        ));
    }
    Ok(change)
}

/// The statements that make `change` to `column` of `target` (a quoted,
/// qualified table name); the rename comes last, so the others name the
/// column as it was. Existing values are cast to a new type.
pub fn alter_column(target: &str, column: &str, change: &ColumnChange) -> Vec<String> {
    let quoted = quote_ident(column);
    let prefix = format!("alter table {target} alter column {quoted}");
    let mut statements = Vec::new();
    if let Some(type_sql) = &change.type_sql {
        statements.push(format!(
            "{prefix} type {type_sql} using {quoted}::{type_sql}"
        ));
    }
    if let Some(nullable) = change.nullable {
        statements.push(format!(
            "{prefix} {} not null",
            if nullable { "drop" } else { "set" }
        ));
    }
    if let Some(default) = &change.default_sql {
        statements.push(format!("{prefix} set default {default}"));
    }
    if let Some(new_name) = &change.new_name {
        statements.push(format!(
            "alter table {target} rename column {quoted} to {}",
            quote_ident(new_name)
        ));
    }
    statements
}

/// `table_schema` in either form the SDK's users send: a map of column
/// name to `{type, nullable, default, primary_key, unique}`, or
/// `{"columns": [{name, type, ...}]}` (a list under `columns`; a map whose
/// `columns` is no list is the first form). Without a primary key, an `id
/// uuid` one is added (or an `id` column given becomes it).
pub fn table_schema(value: &Value) -> Result<Vec<ColumnSpec>, InputError> {
    let mut columns = match value.get("columns").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|spec| {
                let column_name = spec
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("every column in `columns` needs a name"))?;
                column(column_name, spec)
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => value
            .as_object()
            .ok_or_else(|| invalid("table_schema is a map of columns, or {\"columns\": [...]}"))?
            .iter()
            .map(|(column_name, spec)| column(column_name, spec))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if columns.is_empty() {
        return Err(invalid("a table needs at least one column"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.name.clone())) {
        return Err(invalid(format!("column {:?} is given twice", dup.name)));
    }
    if !columns.iter().any(|c| c.primary_key) {
        match columns.iter_mut().find(|c| c.name == "id") {
            Some(id) => {
                id.primary_key = true;
                id.nullable = false;
                if id.type_sql == "uuid" && id.default_sql.is_none() {
                    id.default_sql = Some("gen_random_uuid()".into());
                }
            }
            None => columns.insert(
                0,
                ColumnSpec {
                    name: "id".into(),
                    type_sql: "uuid".into(),
                    nullable: false,
                    default_sql: Some("gen_random_uuid()".into()),
                    primary_key: true,
                    unique: false,
                },
            ),
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_plain_lower_case_identifiers() {
        for ok in ["users", "_x", "a1_b2", &"a".repeat(63)] {
            assert_eq!(name("table", ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in [
            "",
            "Users",
            "1a",
            "a-b",
            "a b",
            "a\"b",
            "drop table x;",
            &"a".repeat(64),
        ] {
            assert!(name("table", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn types_are_aliases_or_type_names() {
        assert_eq!(column_type("STRING").unwrap(), "varchar(255)");
        assert_eq!(column_type("datetime").unwrap(), "timestamptz");
        assert_eq!(column_type("numeric(8, 2)").unwrap(), "numeric(8, 2)");
        assert_eq!(column_type("double precision").unwrap(), "double precision");
        assert_eq!(column_type("text[]").unwrap(), "text[]");
        // Words alone pass the grammar (they cannot break out of a type's
        // place); `to_regtype` then refuses what names no type.
        assert_eq!(column_type("int4 default 1").unwrap(), "int4 default 1");
        for bad in [
            "text); drop table x; --",
            "numeric(1,2,3)",
            "varchar(",
            "x'y",
            "",
            "text[][]x",
        ] {
            assert!(column_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_never_reach_sql_as_sql() {
        let d = |v: Value| default_sql(&v).unwrap();
        assert_eq!(d(json!(null)), None);
        assert_eq!(d(json!(42)), Some("42".into()));
        assert_eq!(d(json!(true)), Some("true".into()));
        assert_eq!(d(json!("NOW()")), Some("now()".into()));
        assert_eq!(
            d(json!("gen_random_uuid()")),
            Some("gen_random_uuid()".into())
        );
        assert_eq!(d(json!("-1.5")), Some("-1.5".into()));
        assert_eq!(d(json!("'it''s'")), Some("'it''s'".into()));
        assert_eq!(d(json!("hello")), Some("'hello'".into()));
        // Anything else is a text literal, whatever it looks like.
        assert_eq!(
            d(json!("now()); drop table x; --")),
            Some("'now()); drop table x; --'".into())
        );
        assert_eq!(d(json!("'a' || 'b'")), Some("'''a'' || ''b'''".into()));
        assert!(default_sql(&json!([1])).is_err());
    }

    #[test]
    fn definitions_and_changes_are_quoted_sql() {
        let spec = column_definition(&json!({
            "name": "title", "type": "STRING", "nullable": false,
            "default": "it's", "unique": true, "primary_key": false
        }))
        .unwrap();
        assert_eq!(
            spec.definition(),
            "\"title\" varchar(255) not null default 'it''s' unique"
        );
        let change =
            column_change(&json!({"new_name": "n2", "type": "BIGINT", "nullable": true})).unwrap();
        assert_eq!(
            alter_column("\"public\".\"t\"", "n", &change),
            [
                "alter table \"public\".\"t\" alter column \"n\" type bigint using \"n\"::bigint",
                "alter table \"public\".\"t\" alter column \"n\" drop not null",
                "alter table \"public\".\"t\" rename column \"n\" to \"n2\"",
            ]
        );
        for bad in [
            json!({}),
            json!({"new_name": "Bad"}),
            json!({"type": "int; drop"}),
            json!({"rename": "x"}),
            json!({"nullable": "yes"}),
        ] {
            assert!(column_change(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn table_schemas_come_in_two_forms_and_get_a_key() {
        let map = table_schema(&json!({
            "title": {"type": "TEXT", "nullable": false},
            "score": {"type": "INTEGER", "default": 0}
        }))
        .unwrap();
        assert_eq!(map[0].name, "id");
        assert_eq!(map[0].default_sql.as_deref(), Some("gen_random_uuid()"));
        assert!(map[0].primary_key);
        let names: Vec<&str> = map.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "score", "title"]);
        let list = table_schema(&json!({"columns": [
            {"name": "id", "type": "UUID"},
            {"name": "body", "type": "TEXT", "unique": true}
        ]}))
        .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].primary_key && !list[0].nullable);
        assert_eq!(list[0].default_sql.as_deref(), Some("gen_random_uuid()"));
        assert!(list[1].unique);
        // A column named `columns` is the map form.
        let odd = table_schema(&json!({"columns": {"type": "TEXT"}})).unwrap();
        assert_eq!(odd[1].name, "columns");
        for bad in [
            json!({}),
            json!({"columns": []}),
            json!({"Bad Name": {"type": "TEXT"}}),
            json!({"x": {"nullable": true}}),
            json!({"columns": [{"name": "a", "type": "TEXT"}, {"name": "a", "type": "TEXT"}]}),
            json!([1, 2]),
        ] {
            assert!(table_schema(&bad).is_err(), "{bad}");
        }
    }
}
