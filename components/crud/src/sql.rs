//! SQL text with bound parameters. Identifiers are quoted here and nowhere
//! else; every value becomes a `$n` parameter.

use selfdb_sdk::db::Value;

#[derive(Default, Debug)]
pub struct Sql {
    pub params: Vec<Value>,
}

impl Sql {
    /// Binds a value, returning its placeholder.
    pub fn bind(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    pub fn bind_text(&mut self, text: &str) -> String {
        self.bind(Value::Text(text.to_owned()))
    }
}

/// A quoted identifier. Callers pass only names found in the schema cache,
/// but quoting is what makes any name safe.
pub fn ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    push_ident(&mut quoted, name);
    quoted
}

/// Appends `name` quoted to `out` (what `ident` returns, without a
/// string of its own: this runs several times per request).
pub fn push_ident(out: &mut String, name: &str) {
    out.push('"');
    for part in name.split_inclusive('"') {
        out.push_str(part);
        if part.ends_with('"') {
            out.push('"');
        }
    }
    out.push('"');
}

/// `"a", "b", "c"`: a list of quoted identifiers.
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn qualified(schema: &str, name: &str) -> String {
    let mut out = String::with_capacity(schema.len() + name.len() + 5);
    push_ident(&mut out, schema);
    out.push('.');
    push_ident(&mut out, name);
    out
}

/// A PostgreSQL array literal of JSON values: strings as they are, other
/// scalars and objects as their JSON text, `null` as NULL, arrays nested.
pub fn json_array_literal(items: &[serde_json::Value]) -> String {
    use serde_json::Value as Json;
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let text = match item {
            Json::Null => {
                out.push_str("NULL");
                continue;
            }
            Json::Array(inner) => {
                out.push_str(&json_array_literal(inner));
                continue;
            }
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::{ident, json_array_literal, qualified};
    use serde_json::json;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(ident("items"), "\"items\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("\"\""), "\"\"\"\"\"\"");
        assert_eq!(ident(""), "\"\"");
        assert_eq!(
            qualified("public", "x\"; drop"),
            "\"public\".\"x\"\"; drop\""
        );
    }

    #[test]
    fn json_arrays_become_array_literals_with_quotes_escaped() {
        assert_eq!(
            json_array_literal(&[json!("a,b"), json!("say \"hi\""), json!("back\\slash")]),
            r#"{"a,b","say \"hi\"","back\\slash"}"#
        );
        assert_eq!(
            json_array_literal(&[
                json!(1),
                json!(null),
                json!(true),
                json!([2, 3]),
                json!({"k": 1})
            ]),
            r#"{"1",NULL,"true",{"2","3"},"{\"k\":1}"}"#
        );
        assert_eq!(json_array_literal(&[]), "{}");
    }
}
