//! A database trigger's filter (`status=eq.paid&amount=gt.100`, the data
//! API's grammar) compiled into the Postgres trigger's `WHEN` condition.
//! Postgres then evaluates it with the column's own type and collation,
//! before anything is written: a change the filter rejects costs no outbox
//! row, and `CREATE TRIGGER` refuses an unknown column or a value of the
//! wrong type at deploy time.

use crate::db::{quote_ident, quote_literal};
use postgrest_grammar::{leaf_sql, scopes, Cond, Field};

#[derive(Debug, thiserror::Error)]
#[error("invalid filter {filter:?}: {message}")]
pub struct FilterError {
    pub filter: String,
    pub message: String,
}

/// The `WHEN (...)` condition for `filter` on the row `row` (`NEW` for
/// inserts and updates, `OLD` for deletes).
pub fn compile(filter: &str, row: &str) -> Result<String, FilterError> {
    let fail = |message: String| FilterError {
        filter: filter.to_owned(),
        message,
    };
    let pairs: Vec<(String, String)> = filter
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
            None => Err(fail(format!("{part:?} is not column=operator.value"))),
        })
        .collect::<Result<_, _>>()?;
    if pairs.is_empty() {
        return Err(fail("it is empty".into()));
    }
    let scopes = scopes(&pairs).map_err(|e| fail(e.0))?;
    let mut parts = Vec::new();
    for (path, scope) in &scopes {
        if !path.is_empty()
            || !scope.order.is_empty()
            || scope.limit.is_some()
            || scope.offset.is_some()
        {
            return Err(fail(
                "only filters on the table's columns are allowed (no order, limit, offset or embedded resources)".into(),
            ));
        }
        for cond in &scope.conds {
            parts.push(render(cond, row).map_err(|e| fail(e.0))?);
        }
    }
    Ok(parts.join(" and "))
}

fn render(cond: &Cond, row: &str) -> Result<String, postgrest_grammar::ParseError> {
    match cond {
        Cond::Leaf {
            field,
            negate,
            op,
            config,
            value,
        } => {
            let lhs = column(field, row);
            let expr = leaf_sql(&lhs, op, config.as_deref(), value, &mut |v| {
                quote_literal(v)
            })?;
            Ok(if *negate {
                format!("not ({expr})")
            } else {
                format!("({expr})")
            })
        }
        Cond::Group { or, negate, items } => {
            let joined = items
                .iter()
                .map(|c| render(c, row))
                .collect::<Result<Vec<_>, _>>()?
                .join(if *or { " or " } else { " and " });
            Ok(if *negate {
                format!("not ({joined})")
            } else {
                format!("({joined})")
            })
        }
    }
}

/// `NEW."data"->'a'->>'b'`
fn column(field: &Field, row: &str) -> String {
    let mut out = format!("{row}.{}", quote_ident(&field.column));
    for (arrow, key) in &field.path {
        out.push_str(arrow);
        out.push_str(&quote_literal(key));
    }
    if !field.path.is_empty() {
        out = format!("({out})");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn filters_become_when_conditions_with_quoted_literals() {
        assert_eq!(
            compile("status=eq.paid", "NEW").unwrap(),
            r#"(NEW."status" = 'paid')"#
        );
        assert_eq!(
            compile("name=eq.o'brien", "OLD").unwrap(),
            r#"(OLD."name" = 'o''brien')"#
        );
        assert_eq!(
            compile("id=in.(1,2,3)", "NEW").unwrap(),
            r#"(NEW."id" = any('{"1","2","3"}'))"#
        );
        assert_eq!(
            compile("data->>kind=neq.x", "NEW").unwrap(),
            r#"((NEW."data"->>'kind') <> 'x')"#
        );
        let both = compile("or=(a.gt.1,b.is.null)", "NEW").unwrap();
        assert_eq!(both, r#"((NEW."a" > '1') or (NEW."b" is null))"#);
        assert!(compile("a=not.eq.1", "NEW").unwrap().starts_with("not ("));
    }

    #[test]
    fn what_a_trigger_cannot_use_is_refused() {
        assert!(compile("", "NEW").is_err());
        assert!(compile("status", "NEW").is_err());
        assert!(compile("status=bogus.1", "NEW").is_err());
        assert!(compile("order=id.desc", "NEW").is_err());
        assert!(compile("limit=1", "NEW").is_err());
        assert!(compile("posts.id=eq.1", "NEW").is_err());
        // A column name cannot break out of its quotes.
        let sneaky = compile("a\"b=eq.1", "NEW").unwrap();
        assert_eq!(sneaky, r#"(NEW."a""b" = '1')"#);
    }
}
