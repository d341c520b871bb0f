//! A `postgres_changes` filter (`column=op.value`, as realtime-js passes it)
//! parsed once at join and evaluated on every captured row.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    /// One value, or the list of `in.(a,b,c)`.
    pub values: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("filter {0:?} is not `column=op.value`")]
    Shape(String),
    #[error("filter operator {0:?} is not one of eq, neq, lt, lte, gt, gte, in")]
    Operator(String),
    #[error("an `in` filter needs a list: `column=in.(a,b)`")]
    List,
    #[error("the filter's list has more than 100 values")]
    TooMany,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let (column, rest) = text
            .split_once('=')
            .ok_or_else(|| FilterError::Shape(text.to_owned()))?;
        let (op, value) = rest
            .split_once('.')
            .ok_or_else(|| FilterError::Shape(text.to_owned()))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(FilterError::Shape(text.to_owned()));
        }
        let op = match op {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            other => return Err(FilterError::Operator(other.to_owned())),
        };
        let values = if op == Op::In {
            let list = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or(FilterError::List)?;
            let items: Vec<String> = list
                .split(',')
                .map(|v| unquote(v.trim()).to_owned())
                .collect();
            if items.len() > 100 {
                return Err(FilterError::TooMany);
            }
            items
        } else {
            vec![unquote(value).to_owned()]
        };
        Ok(Filter {
            column: column.to_owned(),
            op,
            values,
        })
    }

    /// Whether a row's value passes. A missing column (a delete whose old
    /// row holds only the key) passes, as Supabase leaves such deletes
    /// unfiltered.
    pub fn matches(&self, row: &serde_json::Map<String, Value>) -> bool {
        let Some(value) = row.get(&self.column) else {
            return true;
        };
        match self.op {
            Op::In => self
                .values
                .iter()
                .any(|v| compare(value, v) == Some(std::cmp::Ordering::Equal)),
            Op::Eq => compare(value, &self.values[0]) == Some(std::cmp::Ordering::Equal),
            Op::Neq => {
                matches!(compare(value, &self.values[0]), Some(o) if o != std::cmp::Ordering::Equal)
            }
            Op::Lt => compare(value, &self.values[0]) == Some(std::cmp::Ordering::Less),
            Op::Lte => {
                matches!(compare(value, &self.values[0]), Some(o) if o != std::cmp::Ordering::Greater)
            }
            Op::Gt => compare(value, &self.values[0]) == Some(std::cmp::Ordering::Greater),
            Op::Gte => {
                matches!(compare(value, &self.values[0]), Some(o) if o != std::cmp::Ordering::Less)
            }
        }
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Numbers compare as numbers, booleans as `true`/`false`, everything else
/// as text; NULL matches nothing, as in SQL.
fn compare(value: &Value, filter: &str) -> Option<std::cmp::Ordering> {
    match value {
        Value::Null => None,
        Value::Number(n) => {
            let left = n.as_f64()?;
            let right = filter.parse::<f64>().ok()?;
            left.partial_cmp(&right)
        }
        Value::Bool(b) => {
            let right = match filter {
                "true" | "t" => true,
                "false" | "f" => false,
                _ => return None,
            };
            Some(b.cmp(&right))
        }
        Value::String(s) => Some(s.as_str().cmp(filter)),
        other => Some(other.to_string().as_str().cmp(filter)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> serde_json::Map<String, Value> {
        json!({ "n": value })
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn filters_compare_numbers_as_numbers_and_text_as_text() {
        let gt = Filter::parse("n=gt.9").expect("gt");
        assert!(gt.matches(&row(json!(10))));
        assert!(!gt.matches(&row(json!(9))));
        assert!(!gt.matches(&row(Value::Null)));
        let eq = Filter::parse("n=eq.abc").expect("eq");
        assert!(eq.matches(&row(json!("abc"))));
        assert!(!eq.matches(&row(json!("abd"))));
        let within = Filter::parse("n=in.(1,2,3)").expect("in");
        assert!(within.matches(&row(json!(2))));
        assert!(!within.matches(&row(json!(4))));
        let neq = Filter::parse("n=neq.true").expect("neq");
        assert!(neq.matches(&row(json!(false))));
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        assert!(matches!(Filter::parse("n"), Err(FilterError::Shape(_))));
        assert!(matches!(
            Filter::parse("n=like.x"),
            Err(FilterError::Operator(_))
        ));
        assert_eq!(Filter::parse("n=in.1,2"), Err(FilterError::List));
    }
}
