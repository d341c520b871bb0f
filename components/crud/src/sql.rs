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
    format!("\"{}\"", name.replace('"', "\"\""))
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
    format!("{}.{}", ident(schema), ident(name))
}

/// A PostgreSQL array literal of text elements, for `= any($n)`.
pub fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}
