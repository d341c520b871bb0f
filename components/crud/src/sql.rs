//! SQL text with bound parameters. Identifiers are quoted here and nowhere
//! else; every value becomes a `$n` parameter.

use selfdb_sdk::db::Value;

#[derive(Default)]
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

/// A PostgreSQL array literal of text elements, for `= any($n)`.
pub fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::{ident, qualified};

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
}
