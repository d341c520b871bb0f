//! Turns parsed requests into SQL over the schema cache: select lists with
//! embedded resources, conditions, order and paging. Identifiers come from
//! the schema cache and are quoted; every value is a bound parameter.

use crate::error::ApiError;
use crate::parse::{self, Cond, Field, Order, SelectItem};
use crate::sql::{array_literal, ident, push_ident, qualified, Sql};
use selfdb_sdk::schema::{self, TableInfo};
use std::collections::HashMap;

/// What the query string says about one level of the response: the top
/// (`""`) or an embedded resource (`"posts"`, `"posts.comments"`).
#[derive(Default, Debug)]
pub struct Scope {
    pub conds: Vec<Cond>,
    pub order: Vec<Order>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Query parameters that are not filters at the top level.
const RESERVED: &[&str] = &["select", "columns", "on_conflict"];

pub fn scopes(query: &[(String, String)]) -> Result<HashMap<String, Scope>, ApiError> {
    let mut scopes: HashMap<String, Scope> = HashMap::new();
    for (key, value) in query {
        if RESERVED.contains(&key.as_str()) {
            continue;
        }
        let (path, name) = match key.rfind('.') {
            // `not.or` / `not.and` are top-level keys, not a scope named "not".
            Some(_) if key == "not.or" || key == "not.and" => ("", key.as_str()),
            Some(i) => (&key[..i], &key[i + 1..]),
            None => ("", key.as_str()),
        };
        let scope = scopes.entry(path.to_owned()).or_default();
        match name {
            "order" => scope.order = parse::parse_order(value)?,
            "limit" => scope.limit = Some(parse_count(name, value)?),
            "offset" => scope.offset = Some(parse_count(name, value)?),
            "or" | "and" => scope
                .conds
                .push(parse::parse_group(name == "or", false, value)?),
            "not.or" | "not.and" => {
                scope
                    .conds
                    .push(parse::parse_group(name == "not.or", true, value)?)
            }
            column => scope
                .conds
                .push(parse::parse_leaf(parse::parse_field(column)?, value)?),
        }
    }
    Ok(scopes)
}

fn parse_count(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::parse(format!("\"{value}\" is not a valid {name}")))
}

pub fn table_or_404(schema_name: &str, name: &str) -> Result<TableInfo, ApiError> {
    schema::table(schema_name, name).ok_or_else(|| {
        ApiError::new(
            404,
            "PGRST205",
            format!("Could not find the table '{schema_name}.{name}' in the schema cache"),
        )
    })
}

pub fn check_column(table: &TableInfo, column: &str) -> Result<(), ApiError> {
    if table.columns.iter().any(|c| c.name == column) {
        Ok(())
    } else {
        Err(ApiError::unknown_column(&table.name, column))
    }
}

pub struct Builder<'a> {
    pub sql: Sql,
    pub scopes: &'a HashMap<String, Scope>,
    aliases: usize,
}

/// How an embedded table joins its parent.
struct Relation {
    target: TableInfo,
    /// (target column, parent column) pairs.
    pairs: Vec<(String, String)>,
    to_many: bool,
}

impl<'a> Builder<'a> {
    pub fn new(scopes: &'a HashMap<String, Scope>) -> Self {
        Self {
            sql: Sql::default(),
            scopes,
            aliases: 0,
        }
    }

    fn next_alias(&mut self) -> String {
        self.aliases += 1;
        format!("t{}", self.aliases)
    }

    pub fn field(
        &mut self,
        table: &TableInfo,
        alias: &str,
        field: &Field,
    ) -> Result<String, ApiError> {
        check_column(table, &field.column)?;
        let mut expr = String::with_capacity(alias.len() + field.column.len() + 3);
        expr.push_str(alias);
        expr.push('.');
        push_ident(&mut expr, &field.column);
        for (op, key) in &field.path {
            let p = self.sql.bind_text(key);
            let cast = if key.bytes().all(|b| b.is_ascii_digit()) {
                "int"
            } else {
                "text"
            };
            expr = format!("({expr}{op}({p}::{cast}))");
        }
        Ok(expr)
    }

    pub fn cond(
        &mut self,
        table: &TableInfo,
        alias: &str,
        cond: &Cond,
    ) -> Result<String, ApiError> {
        match cond {
            Cond::Group { or, negate, items } => {
                let parts = items
                    .iter()
                    .map(|c| self.cond(table, alias, c))
                    .collect::<Result<Vec<_>, _>>()?;
                let joined = if parts.is_empty() {
                    "true".to_owned()
                } else {
                    format!("({})", parts.join(if *or { " or " } else { " and " }))
                };
                Ok(if *negate {
                    format!("not {joined}")
                } else {
                    joined
                })
            }
            Cond::Leaf {
                field,
                negate,
                op,
                config,
                value,
            } => {
                let lhs = self.field(table, alias, field)?;
                let expr = self.leaf(&lhs, op, config.as_deref(), value)?;
                Ok(if *negate {
                    format!("not ({expr})")
                } else {
                    expr
                })
            }
        }
    }

    fn leaf(
        &mut self,
        lhs: &str,
        op: &str,
        config: Option<&str>,
        value: &str,
    ) -> Result<String, ApiError> {
        let binary = |sym: &str, this: &mut Self, v: &str| {
            let placeholder = this.sql.bind_text(v);
            let mut out = String::with_capacity(lhs.len() + sym.len() + placeholder.len() + 2);
            for part in [lhs, " ", sym, " ", &placeholder] {
                out.push_str(part);
            }
            out
        };
        Ok(match op {
            "eq" => binary("=", self, value),
            "neq" => binary("<>", self, value),
            "gt" => binary(">", self, value),
            "gte" => binary(">=", self, value),
            "lt" => binary("<", self, value),
            "lte" => binary("<=", self, value),
            "like" => binary("like", self, &value.replace('*', "%")),
            "ilike" => binary("ilike", self, &value.replace('*', "%")),
            "match" => binary("~", self, value),
            "imatch" => binary("~*", self, value),
            "is" => match value {
                "null" => format!("{lhs} is null"),
                "not_null" => format!("{lhs} is not null"),
                "true" => format!("{lhs} is true"),
                "false" => format!("{lhs} is false"),
                "unknown" => format!("{lhs} is unknown"),
                other => {
                    return Err(ApiError::parse(format!(
                        "\"{other}\" is not null, not_null, true, false or unknown"
                    )))
                }
            },
            "in" => {
                let inner = value
                    .strip_prefix('(')
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or_else(|| {
                        ApiError::parse(format!("in.{value}: the list must be in parentheses"))
                    })?;
                let items: Vec<String> = if inner.trim().is_empty() {
                    Vec::new()
                } else {
                    parse::split_top(inner, ',')
                        .iter()
                        .map(|i| parse::unquote(i))
                        .collect()
                };
                format!(
                    "{lhs} = any({})",
                    self.sql.bind_text(&array_literal(&items))
                )
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
                binary(sym, self, &v)
            }
            "fts" | "plfts" | "phfts" | "wfts" => {
                let function = match op {
                    "fts" => "to_tsquery",
                    "plfts" => "plainto_tsquery",
                    "phfts" => "phraseto_tsquery",
                    _ => "websearch_to_tsquery",
                };
                let query = self.sql.bind_text(value);
                match config {
                    Some(cfg) => {
                        let cfg = self.sql.bind_text(cfg);
                        format!("{lhs} @@ {function}({cfg}::regconfig, {query})")
                    }
                    None => format!("{lhs} @@ {function}({query})"),
                }
            }
            other => return Err(ApiError::parse(format!("unknown operator \"{other}\""))),
        })
    }

    /// `where` conditions of a scope, plus `exists` for `!inner` embeds.
    pub fn conditions(
        &mut self,
        table: &TableInfo,
        alias: &str,
        path: &str,
        extra: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        // The scopes outlive the builder: no need to copy them out of it.
        let scopes = self.scopes;
        let mut out = extra;
        for cond in scopes.get(path).map(|s| s.conds.as_slice()).unwrap_or(&[]) {
            out.push(self.cond(table, alias, cond)?);
        }
        Ok(out)
    }

    pub fn order(
        &mut self,
        table: &TableInfo,
        alias: &str,
        path: &str,
    ) -> Result<String, ApiError> {
        let scopes = self.scopes;
        let orders = scopes.get(path).map(|s| s.order.as_slice()).unwrap_or(&[]);
        if orders.is_empty() {
            return Ok(String::new());
        }
        let mut parts = Vec::new();
        for order in orders {
            let expr = self.field(table, alias, &order.field)?;
            let dir = if order.desc { " desc" } else { " asc" };
            let nulls = match order.nulls_first {
                Some(true) => " nulls first",
                Some(false) => " nulls last",
                None => "",
            };
            parts.push(format!("{expr}{dir}{nulls}"));
        }
        Ok(format!(" order by {}", parts.join(", ")))
    }

    pub fn paging(&self, path: &str) -> String {
        let scope = self.scopes.get(path);
        let mut out = String::new();
        if let Some(limit) = scope.and_then(|s| s.limit) {
            out.push_str(&format!(" limit {limit}"));
        }
        if let Some(offset) = scope.and_then(|s| s.offset) {
            out.push_str(&format!(" offset {offset}"));
        }
        out
    }

    /// The select list for `table` (aliased `alias`); returns it with the
    /// `exists` conditions that `!inner` embeds add to this level.
    pub fn select_list(
        &mut self,
        table: &TableInfo,
        alias: &str,
        items: &[SelectItem],
        path: &str,
    ) -> Result<(String, Vec<String>), ApiError> {
        let mut list = Vec::new();
        let mut inner = Vec::new();
        for item in items {
            match item {
                SelectItem::Star => list.push(format!("{alias}.*")),
                SelectItem::Column {
                    field,
                    alias: name,
                    cast,
                } => {
                    let mut expr = self.field(table, alias, field)?;
                    if let Some(cast) = cast {
                        expr = format!("({expr})::{cast}");
                    }
                    let output = name
                        .clone()
                        .unwrap_or_else(|| field.output_name().to_owned());
                    list.push(format!("{expr} as {}", ident(&output)));
                }
                SelectItem::Embed {
                    alias: name,
                    name: target,
                    hint,
                    inner: is_inner,
                    spread,
                    items,
                } => {
                    let output = name.clone().unwrap_or_else(|| target.clone());
                    let child_path = if path.is_empty() {
                        output.clone()
                    } else {
                        format!("{path}.{output}")
                    };
                    let relation = relation(table, target, hint.as_deref())?;
                    let child = self.next_alias();
                    let join: Vec<String> = relation
                        .pairs
                        .iter()
                        .map(|(t, p)| format!("{child}.{} = {alias}.{}", ident(t), ident(p)))
                        .collect();
                    let (child_list, child_inner) =
                        self.select_list(&relation.target, &child, items, &child_path)?;
                    let conds =
                        self.conditions(&relation.target, &child, &child_path, join.clone())?;
                    let mut conds = conds;
                    conds.extend(child_inner);
                    let from = qualified(&relation.target.schema, &relation.target.name);
                    let order = self.order(&relation.target, &child, &child_path)?;
                    let paging = self.paging(&child_path);
                    let expr = if relation.to_many {
                        format!(
                            "(select coalesce(json_agg(_e), '[]'::json) from (select {child_list} from {from} as {child} where {}{order}{paging}) _e)",
                            conds.join(" and ")
                        )
                    } else {
                        format!(
                            "(select row_to_json(_e) from (select {child_list} from {from} as {child} where {} limit 1) _e)",
                            conds.join(" and ")
                        )
                    };
                    if *is_inner {
                        let probe = self.next_alias();
                        let probe_join: Vec<String> = relation
                            .pairs
                            .iter()
                            .map(|(t, p)| format!("{probe}.{} = {alias}.{}", ident(t), ident(p)))
                            .collect();
                        let probe_conds =
                            self.conditions(&relation.target, &probe, &child_path, probe_join)?;
                        inner.push(format!(
                            "exists (select 1 from {from} as {probe} where {})",
                            probe_conds.join(" and ")
                        ));
                    }
                    if *spread {
                        if relation.to_many {
                            return Err(ApiError::new(
                                400,
                                "PGRST119",
                                format!("A spread operation on '{target}' is not possible"),
                            )
                            .details("only a to-one relationship can be spread"));
                        }
                        // The embedded row's fields, each as a column of
                        // this level (JSON-typed, so they keep their types
                        // in the response).
                        for name in output_names(&relation.target, items) {
                            let key = self.sql.bind_text(&name);
                            list.push(format!("({expr}) -> {key}::text as {}", ident(&name)));
                        }
                    } else {
                        list.push(format!("{expr} as {}", ident(&output)));
                    }
                }
            }
        }
        if list.is_empty() {
            list.push(format!("{alias}.*"));
        }
        Ok((list.join(", "), inner))
    }
}

/// The names the items of a select list produce, in order.
fn output_names(table: &TableInfo, items: &[SelectItem]) -> Vec<String> {
    let mut names = Vec::new();
    for item in items {
        match item {
            SelectItem::Star => names.extend(table.columns.iter().map(|c| c.name.clone())),
            SelectItem::Column { field, alias, .. } => names.push(
                alias
                    .clone()
                    .unwrap_or_else(|| field.output_name().to_owned()),
            ),
            SelectItem::Embed { alias, name, .. } => {
                names.push(alias.clone().unwrap_or_else(|| name.clone()))
            }
        }
    }
    names
}

/// Finds how `target` relates to `parent` through foreign keys, either
/// way; `hint` (a key or column name) picks one of several.
fn relation(parent: &TableInfo, target: &str, hint: Option<&str>) -> Result<Relation, ApiError> {
    let matches_hint = |key: &schema::ForeignKey| match hint {
        None => true,
        Some(h) => key.name == h || key.columns.iter().any(|c| c == h),
    };
    let mut found = Vec::new();
    for key in parent
        .foreign_keys
        .iter()
        .filter(|k| k.referenced_table == target && matches_hint(k))
    {
        if let Some(t) = schema::table(&key.referenced_schema, &key.referenced_table) {
            found.push(Relation {
                target: t,
                pairs: key
                    .referenced_columns
                    .iter()
                    .cloned()
                    .zip(key.columns.iter().cloned())
                    .collect(),
                to_many: false,
            });
        }
    }
    for from in parent
        .referenced_by
        .iter()
        .filter(|f| f.table == target && matches_hint(&f.key))
    {
        if let Some(t) = schema::table(&from.schema, &from.table) {
            found.push(Relation {
                target: t,
                pairs: from
                    .key
                    .columns
                    .iter()
                    .cloned()
                    .zip(from.key.referenced_columns.iter().cloned())
                    .collect(),
                to_many: true,
            });
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ApiError::new(
            400,
            "PGRST200",
            format!("Could not find a relationship between '{}' and '{target}' in the schema cache", parent.name),
        )),
        _ => Err(ApiError::new(
            300,
            "PGRST201",
            format!("Could not embed because more than one relationship was found for '{}' and '{target}'", parent.name),
        )
        .details("name the foreign key with !hint, e.g. target!fk_name(*)")),
    }
}
