//! A captured value, from PostgreSQL's text format to the JSON the data API
//! would return for it: numbers as numbers, booleans, JSON as JSON, arrays
//! as arrays, timestamps in ISO 8601 with a `T`, everything else as text.
//!
//! The replication connection pins `DateStyle=ISO` and `TimeZone=UTC`, so
//! the text forms read here are the ISO ones.

use serde_json::{Number, Value};

/// Built-in types by OID (`pg_type.dat`); user-defined types reach the
/// capture through pgoutput's type messages instead.
pub fn builtin_type_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        26 => "oid",
        114 => "json",
        142 => "xml",
        650 => "cidr",
        700 => "float4",
        701 => "float8",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1266 => "timetz",
        1560 => "bit",
        1562 => "varbit",
        1700 => "numeric",
        2950 => "uuid",
        3614 => "tsvector",
        3802 => "jsonb",
        199 => "_json",
        1000 => "_bool",
        1001 => "_bytea",
        1005 => "_int2",
        1007 => "_int4",
        1009 => "_text",
        1014 => "_bpchar",
        1015 => "_varchar",
        1016 => "_int8",
        1021 => "_float4",
        1022 => "_float8",
        1115 => "_timestamp",
        1182 => "_date",
        1183 => "_time",
        1185 => "_timestamptz",
        1231 => "_numeric",
        2951 => "_uuid",
        3807 => "_jsonb",
        _ => return None,
    })
}

/// The JSON value of `text`, a value of the type named `type_name`.
pub fn to_json(type_name: &str, text: &str) -> Value {
    if let Some(element) = type_name.strip_prefix('_') {
        return match parse_array(text) {
            Some(items) => Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        Some(text) => scalar(element, &text),
                        None => Value::Null,
                    })
                    .collect(),
            ),
            None => Value::String(text.to_owned()),
        };
    }
    scalar(type_name, text)
}

fn scalar(type_name: &str, text: &str) -> Value {
    match type_name {
        "bool" => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        "int2" | "int4" | "int8" | "oid" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        "float4" | "float8" | "numeric" => number(text),
        "json" | "jsonb" => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        "timestamp" | "timestamptz" => Value::String(iso_timestamp(text)),
        _ => Value::String(text.to_owned()),
    }
}

/// As PostgREST's `to_json` does: a finite number is a number (keeping
/// numeric's digits), NaN and infinities stay text.
fn number(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        _ => Value::String(text.to_owned()),
    }
}

/// `2024-05-01 12:00:00.5+00` -> `2024-05-01T12:00:00.5+00:00`, the form
/// `to_json` gives; `infinity` and BC dates pass unchanged.
fn iso_timestamp(text: &str) -> String {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[10] != b' ' || text.ends_with(" BC") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str(&text[..10]);
    out.push('T');
    out.push_str(&text[11..]);
    // A zone offset of whole hours prints as `+HH`.
    let tail = &out[19..];
    if let Some(pos) = tail.rfind(['+', '-']) {
        if tail.len() - pos == 3 {
            out.push_str(":00");
        }
    }
    out
}

/// Parses a one-dimensional array literal (`{1,2,NULL,"a b"}`); `None` for
/// anything else (multi-dimensional arrays, explicit bounds), which is then
/// passed on as text.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        if chars.peek() == Some(&'{') {
            return None;
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            items.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            if item == "NULL" {
                items.push(None);
            } else {
                items.push(Some(item));
            }
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_as_the_data_api_returns_them() {
        assert_eq!(to_json("int4", "42"), json!(42));
        assert_eq!(
            to_json("int8", "9007199254740993"),
            json!(9007199254740993_i64)
        );
        assert_eq!(to_json("bool", "t"), json!(true));
        assert_eq!(to_json("numeric", "1.50"), json!(1.5));
        assert_eq!(to_json("float8", "NaN"), json!("NaN"));
        assert_eq!(to_json("jsonb", r#"{"a": [1]}"#), json!({"a": [1]}));
        assert_eq!(to_json("text", "42"), json!("42"));
        assert_eq!(
            to_json("timestamptz", "2024-05-01 12:00:00.5+00"),
            json!("2024-05-01T12:00:00.5+00:00")
        );
        assert_eq!(
            to_json("timestamp", "2024-05-01 12:00:00"),
            json!("2024-05-01T12:00:00")
        );
        assert_eq!(
            to_json("timestamptz", "2024-05-01 12:00:00+05:30"),
            json!("2024-05-01T12:00:00+05:30")
        );
        assert_eq!(to_json("timestamptz", "infinity"), json!("infinity"));
    }

    #[test]
    fn arrays_become_json_arrays() {
        assert_eq!(to_json("_int4", "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(
            to_json("_text", r#"{a,"b c","d\"e",NULL}"#),
            json!(["a", "b c", "d\"e", null])
        );
        assert_eq!(to_json("_text", "{}"), json!([]));
        assert_eq!(to_json("_int4", "{{1,2},{3,4}}"), json!("{{1,2},{3,4}}"));
    }
}
