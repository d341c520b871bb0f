//! PostgREST's query grammar: `select`, filters with `not.` and nested
//! `or`/`and`, `order`, and their scoping to embedded resources.
//!
//! Parsing only: what a condition means in SQL is the caller's (the data
//! API binds values as parameters; the host's trigger filters render them
//! as literals in a trigger's `WHEN`). One grammar for both, so a filter
//! that works in `/rest/v1` works on a trigger.

use std::collections::HashMap;

/// Why a query string does not parse (PostgREST's `PGRST100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }
}

/// A column, optionally followed by a JSON path (`data->a->>b`).
#[derive(Debug, Clone)]
pub struct Field {
    pub column: String,
    /// (`->` or `->>`, key)
    pub path: Vec<(&'static str, String)>,
}

impl Field {
    /// The name PostgREST gives the output: the last JSON key, else the column.
    pub fn output_name(&self) -> &str {
        self.path
            .last()
            .map(|(_, k)| k.as_str())
            .unwrap_or(&self.column)
    }
}

#[derive(Debug, Clone)]
pub enum SelectItem {
    Star,
    Column {
        field: Field,
        alias: Option<String>,
        cast: Option<String>,
    },
    Embed {
        alias: Option<String>,
        name: String,
        hint: Option<String>,
        inner: bool,
        /// `...target(cols)`: the embedded row's fields join the parent's.
        spread: bool,
        items: Vec<SelectItem>,
    },
}

#[derive(Debug, Clone)]
pub enum Cond {
    Leaf {
        field: Field,
        negate: bool,
        op: String,
        /// `fts(english)`: the text-search configuration.
        config: Option<String>,
        value: String,
    },
    Group {
        or: bool,
        negate: bool,
        items: Vec<Cond>,
    },
}

#[derive(Debug, Clone)]
pub struct Order {
    pub field: Field,
    pub desc: bool,
    pub nulls_first: Option<bool>,
}

pub const OPERATORS: &[&str] = &[
    "eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "is", "in", "cs",
    "cd", "ov", "fts", "plfts", "phfts", "wfts", "sl", "sr", "nxr", "nxl", "adj",
];

/// Splits on `sep` outside parentheses and double quotes.
pub fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                continue;
            }
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && depth == 0 && !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// Removes surrounding double quotes and their escapes.
pub fn unquote(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        let inner = &t[1..t.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        t.to_owned()
    }
}

/// The first `->` outside double quotes (a quoted column may contain one).
fn find_arrow(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'-' if !quoted && bytes.get(i + 1) == Some(&b'>') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

pub fn parse_field(text: &str) -> Result<Field, ParseError> {
    let text = text.trim();
    let first = find_arrow(text).unwrap_or(text.len());
    let column = unquote(&text[..first]);
    if column.is_empty() {
        return Err(ParseError::new(format!("\"{text}\" is not a column")));
    }
    let mut path = Vec::new();
    let mut rest = &text[first..];
    while !rest.is_empty() {
        let (op, after) = if let Some(r) = rest.strip_prefix("->>") {
            ("->>", r)
        } else if let Some(r) = rest.strip_prefix("->") {
            ("->", r)
        } else {
            return Err(ParseError::new(format!("bad JSON path in \"{text}\"")));
        };
        let end = find_arrow(after).unwrap_or(after.len());
        let key = unquote(&after[..end]);
        if key.is_empty() {
            return Err(ParseError::new(format!("empty JSON key in \"{text}\"")));
        }
        path.push((op, key));
        rest = &after[end..];
    }
    Ok(Field { column, path })
}

/// Cast targets are spliced into SQL (types cannot be parameters), so only
/// plain type names pass: letters, digits, `_`, spaces and a trailing `[]`.
pub fn check_cast(cast: &str) -> Result<String, ParseError> {
    let body = cast.strip_suffix("[]").unwrap_or(cast);
    if cast.len() <= 64
        && !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
    {
        Ok(cast.to_owned())
    } else {
        Err(ParseError::new(format!("invalid cast \"{cast}\"")))
    }
}

/// The position of the `alias:` separator (a `:` not part of `::`), before
/// any embedded resource's parentheses, whose items have aliases of their own.
fn alias_colon(text: &str) -> Option<usize> {
    let head = text.find('(').map_or(text, |open| &text[..open]);
    let bytes = head.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b':' && bytes.get(i + 1) != Some(&b':') && (i == 0 || bytes[i - 1] != b':')
    })
}

pub fn parse_select(text: &str) -> Result<Vec<SelectItem>, ParseError> {
    let mut items = Vec::new();
    for raw in split_top(text, ',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        if raw == "*" {
            items.push(SelectItem::Star);
            continue;
        }
        let (spread, raw) = match raw.strip_prefix("...") {
            Some(rest) => (true, rest.trim()),
            None => (false, raw),
        };
        let (alias, body) = match alias_colon(raw) {
            Some(i) => (Some(raw[..i].trim().to_owned()), raw[i + 1..].trim()),
            None => (None, raw),
        };
        if body.starts_with("...") || (spread && (alias.is_some() || !body.ends_with(')'))) {
            return Err(ParseError::new(format!(
                "\"...\" spreads an embedded resource: \"...name(columns)\", without an alias, not {raw:?}"
            )));
        }
        if let (Some(open), true) = (body.find('('), body.ends_with(')')) {
            let head = &body[..open];
            let inner = &body[open + 1..body.len() - 1];
            let mut parts = head.split('!');
            let name = parts.next().unwrap_or_default().trim().to_owned();
            let mut hint = None;
            let mut inner_join = false;
            for modifier in parts {
                match modifier.trim() {
                    "inner" => inner_join = true,
                    "left" => {}
                    other => hint = Some(other.to_owned()),
                }
            }
            items.push(SelectItem::Embed {
                alias,
                name,
                hint,
                inner: inner_join,
                spread,
                items: parse_select(if inner.trim().is_empty() { "*" } else { inner })?,
            });
            continue;
        }
        let (expr, cast) = match body.find("::") {
            Some(i) => (&body[..i], Some(check_cast(body[i + 2..].trim())?)),
            None => (body, None),
        };
        items.push(SelectItem::Column {
            field: parse_field(expr)?,
            alias,
            cast,
        });
    }
    Ok(items)
}

/// `[not.]op[(config)].value` as the value of a `column=` parameter.
pub fn parse_leaf(field: Field, value: &str) -> Result<Cond, ParseError> {
    let (negate, rest) = match value.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, value),
    };
    let Some(dot) = rest.find('.') else {
        return Err(ParseError::new(format!("\"{value}\" lacks an operator")));
    };
    let (op_part, operand) = (&rest[..dot], &rest[dot + 1..]);
    let (op, config) = match op_part.find('(') {
        Some(i) if op_part.ends_with(')') => (
            &op_part[..i],
            Some(op_part[i + 1..op_part.len() - 1].to_owned()),
        ),
        _ => (op_part, None),
    };
    if !OPERATORS.contains(&op) {
        return Err(ParseError::new(format!("unknown operator \"{op}\"")));
    }
    if let Some(cfg) = &config {
        if !cfg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ParseError::new(format!(
                "invalid text search configuration \"{cfg}\""
            )));
        }
    }
    Ok(Cond::Leaf {
        field,
        negate,
        op: op.to_owned(),
        config,
        value: operand.to_owned(),
    })
}

/// `(a.eq.1,b.gt.2,and(c.eq.3,d.not.eq.4))`: the value of `or=`/`and=`.
pub fn parse_group(or: bool, negate: bool, value: &str) -> Result<Cond, ParseError> {
    let value = value.trim();
    let inner = value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| ParseError::new(format!("\"{value}\" must be wrapped in parentheses")))?;
    let mut items = Vec::new();
    for part in split_top(inner, ',') {
        let part = part.trim();
        let (neg, body) = match part.strip_prefix("not.") {
            Some(b) if b.starts_with("and(") || b.starts_with("or(") => (true, b),
            _ => (false, part),
        };
        if let Some(rest) = body.strip_prefix("and") {
            if rest.starts_with('(') {
                items.push(parse_group(false, neg, rest)?);
                continue;
            }
        }
        if let Some(rest) = body.strip_prefix("or") {
            if rest.starts_with('(') {
                items.push(parse_group(true, neg, rest)?);
                continue;
            }
        }
        let dot = part
            .find('.')
            .ok_or_else(|| ParseError::new(format!("\"{part}\" is not a filter")))?;
        let mut leaf = parse_leaf(parse_field(&part[..dot])?, &part[dot + 1..])?;
        // In a logic tree a value with reserved characters (`,`, `(`, `)`)
        // comes double-quoted, as PostgREST takes it; the quotes are not
        // part of the value.
        if let Cond::Leaf { value, .. } = &mut leaf {
            if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                *value = unquote(value);
            }
        }
        items.push(leaf);
    }
    Ok(Cond::Group { or, negate, items })
}

pub fn parse_order(text: &str) -> Result<Vec<Order>, ParseError> {
    let mut orders = Vec::new();
    for item in split_top(text, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut parts: Vec<&str> = item.split('.').collect();
        let mut desc = false;
        let mut nulls_first = None;
        while parts.len() > 1 {
            match *parts.last().unwrap_or(&"") {
                "asc" => desc = false,
                "desc" => desc = true,
                "nullsfirst" => nulls_first = Some(true),
                "nullslast" => nulls_first = Some(false),
                _ => break,
            }
            parts.pop();
        }
        orders.push(Order {
            field: parse_field(&parts.join("."))?,
            desc,
            nulls_first,
        });
    }
    Ok(orders)
}

/// What the query string says about one level of the response: the top
/// (`""`) or an embedded resource (`"posts"`, `"posts.comments"`).
#[derive(Default, Debug)]
pub struct Scope {
    pub conds: Vec<Cond>,
    pub order: Vec<Order>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The scopes of a request, by path.
pub type Scopes = HashMap<String, Scope>;

/// Query parameters that are not filters at the top level.
const RESERVED: &[&str] = &["select", "columns", "on_conflict"];

pub fn scopes(query: &[(String, String)]) -> Result<Scopes, ParseError> {
    let mut scopes: Scopes = HashMap::new();
    for (key, value) in query {
        if RESERVED.contains(&key.as_str()) {
            continue;
        }
        let (path, name) = match rfind_unquoted(key, b'.') {
            // `not.or` / `not.and` are top-level keys, not a scope named "not".
            Some(_) if key == "not.or" || key == "not.and" => ("", key.as_str()),
            Some(i) => (&key[..i], &key[i + 1..]),
            None => ("", key.as_str()),
        };
        let scope = scopes.entry(path.to_owned()).or_default();
        match name {
            "order" => scope.order = parse_order(value)?,
            "limit" => scope.limit = Some(parse_count(name, value)?),
            "offset" => scope.offset = Some(parse_count(name, value)?),
            "or" | "and" => scope.conds.push(parse_group(name == "or", false, value)?),
            "not.or" | "not.and" => scope
                .conds
                .push(parse_group(name == "not.or", true, value)?),
            column => scope.conds.push(parse_leaf(parse_field(column)?, value)?),
        }
    }
    Ok(scopes)
}

/// The last `byte` outside double quotes (a quoted column may contain
/// dots, which would otherwise name an embedded resource's scope).
fn rfind_unquoted(text: &str, byte: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quoted = false;
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b if b == byte && !quoted => found = Some(i),
            _ => {}
        }
        i += 1;
    }
    found
}

fn parse_count(name: &str, value: &str) -> Result<i64, ParseError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ParseError::new(format!("\"{value}\" is not a valid {name}")))
}

/// A PostgreSQL array literal of text items (`{"a","b,c"}`).
pub fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|item| format!("\"{}\"", item.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// One filter as SQL: `lhs` is the column expression, `value` the
/// operand as the query string gave it, and `value_sql` renders a text
/// value into the statement (a bound parameter for the data API, a quoted
/// literal in a trigger's `WHEN`). The operator mapping is PostgREST's.
pub fn leaf_sql(
    lhs: &str,
    op: &str,
    config: Option<&str>,
    value: &str,
    value_sql: &mut dyn FnMut(&str) -> String,
) -> Result<String, ParseError> {
    let mut binary = |sym: &str, v: &str| {
        let rendered = value_sql(v);
        let mut out = String::with_capacity(lhs.len() + sym.len() + rendered.len() + 2);
        for part in [lhs, " ", sym, " ", &rendered] {
            out.push_str(part);
        }
        out
    };
    Ok(match op {
        "eq" => binary("=", value),
        "neq" => binary("<>", value),
        "gt" => binary(">", value),
        "gte" => binary(">=", value),
        "lt" => binary("<", value),
        "lte" => binary("<=", value),
        "like" => binary("like", &value.replace('*', "%")),
        "ilike" => binary("ilike", &value.replace('*', "%")),
        "match" => binary("~", value),
        "imatch" => binary("~*", value),
        "is" => match value {
            "null" => format!("{lhs} is null"),
            "not_null" => format!("{lhs} is not null"),
            "true" => format!("{lhs} is true"),
            "false" => format!("{lhs} is false"),
            "unknown" => format!("{lhs} is unknown"),
            other => {
                return Err(ParseError::new(format!(
                    "\"{other}\" is not null, not_null, true, false or unknown"
                )))
            }
        },
        "in" => {
            let inner = value
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| {
                    ParseError::new(format!("in.{value}: the list must be in parentheses"))
                })?;
            let items: Vec<String> = if inner.trim().is_empty() {
                Vec::new()
            } else {
                split_top(inner, ',').iter().map(|i| unquote(i)).collect()
            };
            format!("{lhs} = any({})", value_sql(&array_literal(&items)))
        }
        "cs" | "cd" | "ov" | "sl" | "sr" | "nxr" | "nxl" | "adj" => {
            let sym = match op {
                "cs" => "@>",
                "cd" => "<@",
                "ov" => "&&",
                "sl" => "<<",
                "sr" => ">>",
                "nxr" => "&<",
                "nxl" => "&>",
                _ => "-|-",
            };
            // `ov.(1,2)` is accepted for arrays as `{1,2}`.
            let v = match (
                op,
                value.strip_prefix('(').and_then(|v| v.strip_suffix(')')),
            ) {
                ("ov" | "cs" | "cd", Some(items)) if !value.contains('[') => {
                    format!("{{{items}}}")
                }
                _ => value.to_owned(),
            };
            binary(sym, &v)
        }
        "fts" | "plfts" | "phfts" | "wfts" => {
            let function = match op {
                "fts" => "to_tsquery",
                "plfts" => "plainto_tsquery",
                "phfts" => "phraseto_tsquery",
                _ => "websearch_to_tsquery",
            };
            let query = value_sql(value);
            match config {
                Some(cfg) => {
                    let cfg = value_sql(cfg);
                    format!("{lhs} @@ {function}({cfg}::regconfig, {query})")
                }
                None => format!("{lhs} @@ {function}({query})"),
            }
        }
        other => return Err(ParseError::new(format!("unknown operator \"{other}\""))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_columns_may_hold_dots_and_reserved_words() {
        let query = vec![
            (r#""a.b""#.to_owned(), "eq.1".to_owned()),
            (r#""order""#.to_owned(), "eq.2".to_owned()),
        ];
        let scopes = scopes(&query).unwrap();
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[""].conds.len(), 2);
        assert!(scopes[""].order.is_empty());
    }

    #[test]
    fn quoted_columns_keep_arrows_and_quotes() {
        let field = parse_field(r#""a->b""#).unwrap();
        assert_eq!(field.column, "a->b");
        assert!(field.path.is_empty());
        let field = parse_field(r#""we\"ird->x"->>k"#).unwrap();
        assert_eq!(field.column, r#"we"ird->x"#);
        assert_eq!(field.path, vec![("->>", "k".to_owned())]);
    }

    #[test]
    fn select_items() {
        let items =
            parse_select("id,title:name,price::text,data->a->>b,author(*),posts!inner(id,title)")
                .unwrap();
        assert_eq!(items.len(), 6);
        assert!(matches!(&items[1], SelectItem::Column { alias: Some(a), .. } if a == "title"));
        assert!(matches!(&items[2], SelectItem::Column { cast: Some(c), .. } if c == "text"));
        assert!(
            matches!(&items[3], SelectItem::Column { field, .. } if field.output_name() == "b")
        );
        assert!(matches!(&items[5], SelectItem::Embed { inner: true, .. }));
        assert!(parse_select("id::text;drop").is_err());
        let spread = parse_select("title,...authors(name)").unwrap();
        assert!(matches!(&spread[1], SelectItem::Embed { spread: true, .. }));
        assert!(parse_select("x:...authors(name)").is_err());
        assert!(parse_select("...title").is_err());
        let nested = parse_select("author(writer:name)").unwrap();
        let SelectItem::Embed { alias, items, .. } = &nested[0] else {
            panic!("an embed: {nested:?}");
        };
        assert!(alias.is_none());
        assert!(matches!(&items[0], SelectItem::Column { alias: Some(a), .. } if a == "writer"));
    }

    #[test]
    fn nested_logic() {
        let cond = parse_group(
            true,
            false,
            "(a.eq.1,and(b.gt.2,c.not.is.null),d.in.(1,\"x,y\"))",
        )
        .unwrap();
        let Cond::Group { items, .. } = cond else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[1], Cond::Group { or: false, .. }));
        assert!(parse_group(true, false, "a.eq.1").is_err());
        let quoted = parse_group(true, false, r#"(t.ilike."*a,(b)\"c*",u.eq.x)"#).unwrap();
        let Cond::Group { items, .. } = quoted else {
            panic!()
        };
        assert!(matches!(&items[0], Cond::Leaf { value, .. } if value == "*a,(b)\"c*"));
        assert!(matches!(&items[1], Cond::Leaf { value, .. } if value == "x"));
    }
}
