//! SQL from a plan, as PostgREST's `Query/QueryBuilder.hs` builds it: select
//! lists with embedded resources, conditions, order and paging, and the
//! statements of a read, a write and a function call. Pure code: the plan
//! already holds what the schema cache said, so nothing here calls the host,
//! and unit tests drive it natively. Identifiers come from the schema cache
//! and are quoted; every value is a bound parameter.

use crate::error::ApiError;
use crate::parse::{self, Cond, Field, Scopes, SelectItem};
use crate::plan::Select;
use crate::sql::{column_list, ident, json_array_literal, push_ident, qualified, Sql};
use selfdb_sdk::db::Value;
use selfdb_sdk::schema::{FunctionInfo, TableInfo};
use serde_json::{Map, Value as Json};

pub fn check_column(table: &TableInfo, column: &str) -> Result<(), ApiError> {
    if table.columns.iter().any(|c| c.name == column) {
        Ok(())
    } else {
        Err(ApiError::unknown_column(&table.name, column))
    }
}

#[derive(Debug)]
pub struct Builder<'a> {
    pub sql: Sql,
    pub scopes: &'a Scopes,
    aliases: usize,
}

impl<'a> Builder<'a> {
    pub fn new(scopes: &'a Scopes) -> Self {
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
        let sql = &mut self.sql;
        Ok(parse::leaf_sql(lhs, op, config, value, &mut |v| {
            sql.bind_text(v)
        })?)
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
        select: &Select,
        path: &str,
    ) -> Result<(String, Vec<String>), ApiError> {
        let mut list = Vec::new();
        let mut inner = Vec::new();
        let mut embeds = select.embeds.iter();
        for item in select.items {
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
                    inner: is_inner,
                    spread,
                    items,
                    ..
                } => {
                    let output = name.clone().unwrap_or_else(|| target.clone());
                    let child_path = if path.is_empty() {
                        output.clone()
                    } else {
                        format!("{path}.{output}")
                    };
                    // The plan has one entry per embed, in order.
                    let embed = match embeds.next() {
                        Some(Ok(embed)) => embed,
                        Some(Err(err)) => return Err(err.clone()),
                        None => return Err(ApiError::relationship_not_found(&table.name, target)),
                    };
                    let relation = &embed.relation;
                    let child = self.next_alias();
                    let join: Vec<String> = relation
                        .pairs
                        .iter()
                        .map(|(t, p)| format!("{child}.{} = {alias}.{}", ident(t), ident(p)))
                        .collect();
                    let (child_list, child_inner) =
                        self.select_list(&relation.target, &child, &embed.select, &child_path)?;
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
                            return Err(ApiError::spread_to_many(target));
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

/// SQL text and the values its `$n` placeholders bind.
#[derive(Debug)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Value>,
}

/// A read: its statement, and what counting its rows needs.
#[derive(Debug)]
pub struct ReadQuery {
    pub sql: String,
    pub params: Vec<Value>,
    list: String,
    from: String,
    filter: String,
}

impl ReadQuery {
    /// How many rows the filters keep, before paging. It binds `params`
    /// too, so it keeps the select list: its parameters (a JSON path's keys)
    /// come first, and Postgres refuses a statement that leaves a bound
    /// parameter unused ("could not determine data type of parameter $1").
    /// The planner drops the list's unused columns, so they cost nothing.
    /// Built only when a count is asked for, as most reads do not.
    pub fn count_sql(&self) -> String {
        format!(
            "select count(*) from (select {} from {} as t0{}) _c",
            self.list, self.from, self.filter
        )
    }
}

/// The rows `select` reads from `from` (a table, or a function's invocation
/// already bound into `builder`), filtered, ordered and paged by the top
/// scope, as one JSON array text; `with_count` adds how many there are as a
/// second column.
pub fn read(
    mut builder: Builder,
    table: &TableInfo,
    from: String,
    select: &Select,
    with_count: bool,
) -> Result<ReadQuery, ApiError> {
    let (list, inner) = builder.select_list(table, "t0", select, "")?;
    let conds = builder.conditions(table, "t0", "", inner)?;
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" where {}", conds.join(" and "))
    };
    let order = builder.order(table, "t0", "")?;
    let paging = builder.paging("");
    let head = if with_count {
        "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from (select "
    } else {
        "select coalesce(json_agg(_r), '[]'::json)::text from (select "
    };
    let mut sql = String::with_capacity(128 + list.len() + filter.len());
    for part in [
        head, &list, " from ", &from, " as t0", &filter, &order, &paging, ") _r",
    ] {
        sql.push_str(part);
    }
    Ok(ReadQuery {
        sql,
        params: builder.sql.params,
        list,
        from,
        filter,
    })
}

/// A data-modifying statement and the builder holding its parameters: a
/// `returning` select list binds after them, and sees the request's
/// scopes through it.
#[derive(Debug)]
pub struct Write<'a> {
    pub builder: Builder<'a>,
    pub statement: String,
}

/// `on conflict` of an upsert: the conflict target, and whether a
/// duplicate is skipped (`resolution=ignore-duplicates`) or merged.
#[derive(Debug, Clone, Copy)]
pub struct Upsert<'c> {
    pub columns: &'c [String],
    pub ignore_duplicates: bool,
}

/// The inserts of `groups` of rows, each group with the columns its rows
/// carry: one statement per group, or per row when a group carries none
/// (`default values`).
pub fn insert<'a>(
    table: &TableInfo,
    groups: Vec<(Vec<String>, Vec<Json>)>,
    upsert: Option<Upsert>,
    scopes: &'a Scopes,
) -> Vec<Write<'a>> {
    let target = qualified(&table.schema, &table.name);
    let mut writes = Vec::new();
    for (columns, rows) in groups {
        let on_conflict = upsert.map(|upsert| {
            let target_cols = column_list(upsert.columns);
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !upsert.columns.contains(c))
                .map(|c| format!("{} = excluded.{}", ident(c), ident(c)))
                .collect();
            if upsert.ignore_duplicates || updates.is_empty() {
                format!(" on conflict ({target_cols}) do nothing")
            } else {
                format!(
                    " on conflict ({target_cols}) do update set {}",
                    updates.join(", ")
                )
            }
        });
        let on_conflict = on_conflict.unwrap_or_default();
        if columns.is_empty() {
            for _ in &rows {
                writes.push(Write {
                    builder: Builder::new(scopes),
                    statement: format!("insert into {target} as t0 default values{on_conflict}"),
                });
            }
            continue;
        }
        let mut builder = Builder::new(scopes);
        let cols = column_list(&columns);
        let payload = builder.sql.bind(Value::Text(Json::Array(rows).to_string()));
        writes.push(Write {
            builder,
            statement: format!(
                "insert into {target} as t0 ({cols}) select {cols} from json_populate_recordset(null::{target}, {payload}::json){on_conflict}"
            ),
        });
    }
    writes
}

/// `update` of the rows the top scope's filters keep, setting `columns`
/// from the JSON object `body`.
pub fn update<'a>(
    table: &TableInfo,
    columns: &[String],
    body: &Json,
    scopes: &'a Scopes,
) -> Result<Write<'a>, ApiError> {
    let mut builder = Builder::new(scopes);
    let target = qualified(&table.schema, &table.name);
    let cols = column_list(columns);
    let payload = builder.sql.bind(Value::Text(body.to_string()));
    let conds = builder.conditions(table, "t0", "", Vec::new())?;
    let statement = format!(
        "update {target} as t0 set ({cols}) = (select {cols} from json_populate_record(null::{target}, {payload}::json)) where {}",
        conds.join(" and ")
    );
    Ok(Write { builder, statement })
}

/// `delete` of the rows the top scope's filters keep.
pub fn delete<'a>(table: &TableInfo, scopes: &'a Scopes) -> Result<Write<'a>, ApiError> {
    let mut builder = Builder::new(scopes);
    let conds = builder.conditions(table, "t0", "", Vec::new())?;
    let statement = format!(
        "delete from {} as t0 where {}",
        qualified(&table.schema, &table.name),
        conds.join(" and ")
    );
    Ok(Write { builder, statement })
}

/// The rows `write` touched, shaped by `select`, as one JSON array text.
pub fn returning(write: Write, table: &TableInfo, select: &Select) -> Result<Statement, ApiError> {
    let Write {
        mut builder,
        statement,
    } = write;
    let (list, _) = builder.select_list(table, "t0", select, "")?;
    let sql = format!(
        "with _w as ({statement} returning *) select coalesce(json_agg(_r), '[]'::json)::text from (select {list} from _w as t0) _r"
    );
    Ok(Statement {
        sql,
        params: builder.sql.params,
    })
}

/// The primary keys of the rows an insert wrote, as one JSON array text
/// of objects.
pub fn inserted_keys(write: Write, table: &TableInfo) -> Statement {
    let Write {
        mut builder,
        statement,
    } = write;
    let pairs: Vec<String> = table
        .primary_key
        .iter()
        .map(|c| format!("{}::text, _w.{}", builder.sql.bind_text(c), ident(c)))
        .collect();
    let sql = format!(
        "with _w as ({statement} returning *) select coalesce(json_agg(json_build_object({})), '[]'::json)::text from _w",
        pairs.join(", ")
    );
    Statement {
        sql,
        params: builder.sql.params,
    }
}

/// Whether the argument at `index` is the function's `variadic` one.
pub fn is_variadic(function: &FunctionInfo, index: usize) -> bool {
    function.variadic && index + 1 == function.args.len()
}

/// `schema.function(arg => $n, ...)`, binding the arguments into `sql`.
/// `schema_name` is the schema the request addressed, for the error.
pub fn invocation(
    schema_name: &str,
    function: &FunctionInfo,
    args: &Map<String, Json>,
    sql: &mut Sql,
) -> Result<String, ApiError> {
    let mut named = Vec::new();
    for (index, arg) in function.args.iter().enumerate() {
        let variadic = is_variadic(function, index);
        let array = variadic || arg.type_name.ends_with("[]");
        match args.get(&arg.name) {
            Some(value) => {
                let bound = match value {
                    Json::Null => Value::Null,
                    // An array argument binds as an array literal; a variadic
                    // one given a single value takes it as its one element.
                    Json::Array(items) if array => Value::Text(json_array_literal(items)),
                    Json::String(s) => match variadic {
                        true if !(s.starts_with('{') && s.ends_with('}')) => {
                            Value::Text(json_array_literal(std::slice::from_ref(value)))
                        }
                        _ => Value::Text(s.clone()),
                    },
                    other if variadic => {
                        Value::Text(json_array_literal(std::slice::from_ref(other)))
                    }
                    other => Value::Text(other.to_string()),
                };
                let keyword = if variadic { "variadic " } else { "" };
                named.push(format!(
                    "{keyword}{} => {}",
                    ident(&arg.name),
                    sql.bind(bound)
                ));
            }
            None if arg.has_default => {}
            None => {
                return Err(ApiError::missing_argument(
                    schema_name,
                    &function.name,
                    &arg.name,
                ));
            }
        }
    }
    Ok(format!(
        "{}({})",
        qualified(&function.schema, &function.name),
        named.join(", ")
    ))
}

/// A call of `function` whose result is not read like a table: nothing
/// (`void`), a set as one JSON array text, one row or one value as JSON
/// text.
pub fn call(
    schema_name: &str,
    function: &FunctionInfo,
    args: &Map<String, Json>,
) -> Result<Statement, ApiError> {
    let mut sql = Sql::default();
    let invocation = invocation(schema_name, function, args, &mut sql)?;
    let text = if function.return_type == "void" {
        format!("select {invocation}")
    } else if function.returns_set {
        format!("select coalesce(json_agg(_r), '[]'::json)::text from {invocation} as _r")
    } else if function.returns_rows {
        format!("select row_to_json(_r)::text from {invocation} as _r")
    } else {
        format!("select to_json({invocation})::text")
    };
    Ok(Statement {
        sql: text,
        params: sql.params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_select, scopes};
    use crate::plan::fixtures::{authors, catalog, function, posts};
    use crate::plan::{self, Catalog};
    use serde_json::json;

    /// The query string of a request, as `Request::query_pairs` gives it.
    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The parameters, each of which must be text.
    fn texts(params: &[Value]) -> Vec<&str> {
        params
            .iter()
            .map(|p| match p {
                Value::Text(t) => t.as_str(),
                _ => panic!("a text parameter"),
            })
            .collect()
    }

    /// The read `GET /rest/v1/{table}?{pairs}` makes, planned over the
    /// fixtures.
    fn read_of(table: &TableInfo, pairs: &[(&str, &str)]) -> Result<ReadQuery, ApiError> {
        let pairs = query(pairs);
        let scopes = scopes(&pairs)?;
        let select = pairs
            .iter()
            .find(|(k, _)| k == "select")
            .map_or("*", |(_, v)| v.as_str());
        let items = parse_select(select)?;
        let plan = plan::select(&catalog(), table, &items);
        let from = qualified(&table.schema, &table.name);
        read(Builder::new(&scopes), table, from, &plan, true)
    }

    #[test]
    fn a_read_with_filters_order_and_paging() {
        let read = read_of(
            &posts(),
            &[
                ("select", "id,title,data->tags->>0"),
                ("id", "gt.10"),
                ("title", "like.*rust*"),
                ("or", "(author_id.is.null,id.in.(1,2))"),
                ("order", "id.desc.nullslast,title"),
                ("limit", "5"),
                ("offset", "10"),
            ],
        )
        .unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from (select \
             t0.\"id\" as \"id\", t0.\"title\" as \"title\", \
             ((t0.\"data\"->($1::text))->>($2::int)) as \"0\" \
             from \"public\".\"posts\" as t0 \
             where t0.\"id\" > $3 and t0.\"title\" like $4 \
             and (t0.\"author_id\" is null or t0.\"id\" = any($5)) \
             order by t0.\"id\" desc nulls last, t0.\"title\" asc limit 5 offset 10) _r"
        );
        assert_eq!(
            texts(&read.params),
            ["tags", "0", "10", "%rust%", "{\"1\",\"2\"}"]
        );
        assert_eq!(
            read.count_sql(),
            "select count(*) from (select \
             t0.\"id\" as \"id\", t0.\"title\" as \"title\", \
             ((t0.\"data\"->($1::text))->>($2::int)) as \"0\" \
             from \"public\".\"posts\" as t0 \
             where t0.\"id\" > $3 and t0.\"title\" like $4 \
             and (t0.\"author_id\" is null or t0.\"id\" = any($5))) _c"
        );
    }

    #[test]
    fn a_read_of_every_column_without_filters() {
        let read = read_of(&posts(), &[]).unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from \
             (select t0.* from \"public\".\"posts\" as t0) _r"
        );
        assert!(read.params.is_empty());
        assert_eq!(
            read.count_sql(),
            "select count(*) from (select t0.* from \"public\".\"posts\" as t0) _c"
        );
    }

    #[test]
    fn an_embed_through_a_foreign_key_to_one() {
        let read = read_of(&posts(), &[("select", "title,author:authors(name)")]).unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from (select \
             t0.\"title\" as \"title\", \
             (select row_to_json(_e) from (select t1.\"name\" as \"name\" \
             from \"public\".\"authors\" as t1 where t1.\"id\" = t0.\"author_id\" limit 1) _e) \
             as \"author\" \
             from \"public\".\"posts\" as t0) _r"
        );
        assert!(read.params.is_empty());
    }

    #[test]
    fn an_embed_through_a_foreign_key_to_many_with_its_own_scope() {
        let read = read_of(
            &authors(),
            &[
                ("select", "name,posts!inner(title)"),
                ("posts.title", "ilike.*db*"),
                ("posts.order", "id.desc"),
                ("posts.limit", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from (select \
             t0.\"name\" as \"name\", \
             (select coalesce(json_agg(_e), '[]'::json) from (select t1.\"title\" as \"title\" \
             from \"public\".\"posts\" as t1 \
             where t1.\"author_id\" = t0.\"id\" and t1.\"title\" ilike $1 \
             order by t1.\"id\" desc limit 2) _e) as \"posts\" \
             from \"public\".\"authors\" as t0 \
             where exists (select 1 from \"public\".\"posts\" as t2 \
             where t2.\"author_id\" = t0.\"id\" and t2.\"title\" ilike $2)) _r"
        );
        assert_eq!(texts(&read.params), ["%db%", "%db%"]);
    }

    #[test]
    fn a_spread_embed_joins_the_parents_columns() {
        let read = read_of(&posts(), &[("select", "title,...authors(name)")]).unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text, count(*) from (select \
             t0.\"title\" as \"title\", \
             ((select row_to_json(_e) from (select t1.\"name\" as \"name\" \
             from \"public\".\"authors\" as t1 where t1.\"id\" = t0.\"author_id\" limit 1) _e)) \
             -> $1::text as \"name\" \
             from \"public\".\"posts\" as t0) _r"
        );
        assert_eq!(texts(&read.params), ["name"]);
        let err = read_of(&authors(), &[("select", "...posts(title)")]).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "PGRST119"));
    }

    #[test]
    fn the_first_mistake_in_the_select_list_is_the_one_reported() {
        let err = read_of(&posts(), &[("select", "nope,comments(*)")]).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "42703"));
        assert_eq!(err.message, "column posts.nope does not exist");
        let err = read_of(&posts(), &[("select", "comments(*),nope")]).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "PGRST200"));
        let err = read_of(&posts(), &[("select", "authors(nope),comments(*)")]).unwrap_err();
        assert_eq!(err.message, "column authors.nope does not exist");
        let err = read_of(&posts(), &[("id", "is.maybe")]).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "PGRST100"));
    }

    #[test]
    fn an_insert_and_an_upsert() {
        let table = posts();
        let empty = Scopes::new();
        let columns = vec!["id".to_owned(), "title".to_owned()];
        let rows = vec![
            json!({"id": 1, "title": "a"}),
            json!({"id": 2, "title": "b"}),
        ];
        let mut writes = insert(&table, vec![(columns.clone(), rows.clone())], None, &empty);
        assert_eq!(writes.len(), 1);
        let write = writes.remove(0);
        assert_eq!(
            write.statement,
            "insert into \"public\".\"posts\" as t0 (\"id\", \"title\") \
             select \"id\", \"title\" from json_populate_recordset(null::\"public\".\"posts\", $1::json)"
        );
        assert_eq!(
            texts(&write.builder.sql.params),
            [r#"[{"id":1,"title":"a"},{"id":2,"title":"b"}]"#]
        );

        let items = parse_select("id,title").unwrap();
        let select = plan::select(&catalog(), &table, &items);
        let returning = returning(write, &table, &select).unwrap();
        assert_eq!(
            returning.sql,
            "with _w as (insert into \"public\".\"posts\" as t0 (\"id\", \"title\") \
             select \"id\", \"title\" from json_populate_recordset(null::\"public\".\"posts\", $1::json) \
             returning *) select coalesce(json_agg(_r), '[]'::json)::text from \
             (select t0.\"id\" as \"id\", t0.\"title\" as \"title\" from _w as t0) _r"
        );
        assert_eq!(returning.params.len(), 1);

        let conflict = vec!["id".to_owned()];
        let merge = Upsert {
            columns: &conflict,
            ignore_duplicates: false,
        };
        let write = insert(
            &table,
            vec![(columns.clone(), rows.clone())],
            Some(merge),
            &empty,
        )
        .remove(0);
        assert!(write.statement.ends_with(
            "$1::json) on conflict (\"id\") do update set \"title\" = excluded.\"title\""
        ));
        let keys = inserted_keys(write, &table);
        assert!(keys.sql.ends_with(
            "returning *) select coalesce(json_agg(json_build_object($2::text, _w.\"id\")), '[]'::json)::text from _w"
        ));
        assert_eq!(texts(&keys.params)[1], "id");

        let ignore = Upsert {
            columns: &conflict,
            ignore_duplicates: true,
        };
        let write = insert(&table, vec![(columns, rows)], Some(ignore), &empty).remove(0);
        assert!(write
            .statement
            .ends_with("$1::json) on conflict (\"id\") do nothing"));
    }

    #[test]
    fn rows_without_columns_insert_their_defaults_one_by_one() {
        let empty = Scopes::new();
        let writes = insert(
            &posts(),
            vec![(Vec::new(), vec![json!({}), json!({})])],
            None,
            &empty,
        );
        assert_eq!(writes.len(), 2);
        for write in writes {
            assert_eq!(
                write.statement,
                "insert into \"public\".\"posts\" as t0 default values"
            );
            assert!(write.builder.sql.params.is_empty());
        }
    }

    #[test]
    fn an_update_and_a_delete_with_a_filter() {
        let table = posts();
        let pairs = query(&[("id", "eq.1"), ("title", "neq.x")]);
        let scopes = scopes(&pairs).unwrap();
        let columns = vec!["title".to_owned()];
        let write = update(&table, &columns, &json!({"title": "b"}), &scopes).unwrap();
        assert_eq!(
            write.statement,
            "update \"public\".\"posts\" as t0 set (\"title\") = \
             (select \"title\" from json_populate_record(null::\"public\".\"posts\", $1::json)) \
             where t0.\"id\" = $2 and t0.\"title\" <> $3"
        );
        assert_eq!(
            texts(&write.builder.sql.params),
            [r#"{"title":"b"}"#, "1", "x"]
        );

        let write = delete(&table, &scopes).unwrap();
        assert_eq!(
            write.statement,
            "delete from \"public\".\"posts\" as t0 where t0.\"id\" = $1 and t0.\"title\" <> $2"
        );
        assert_eq!(texts(&write.builder.sql.params), ["1", "x"]);

        let pairs = query(&[("nope", "eq.1")]);
        let scopes = crate::parse::scopes(&pairs).unwrap();
        let err = delete(&table, &scopes).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (400, "42703"));
    }

    #[test]
    fn an_rpc_call() {
        let catalog = catalog();
        let add = catalog.function_overloads("public", "add").remove(0);
        let args = json!({"b": 2, "a": 1});
        let Json::Object(args) = args else {
            unreachable!()
        };
        let statement = call("public", &add, &args).unwrap();
        assert_eq!(
            statement.sql,
            "select to_json(\"public\".\"add\"(\"a\" => $1, \"b\" => $2))::text"
        );
        assert_eq!(texts(&statement.params), ["1", "2"]);

        let mut only_a = args.clone();
        only_a.remove("b");
        let err = call("public", &add, &only_a).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST202"));
        assert_eq!(err.details.as_deref(), Some("missing argument b"));

        let mut void = function("touch", &[], "void");
        assert_eq!(
            call("public", &void, &Map::new()).unwrap().sql,
            "select \"public\".\"touch\"()"
        );
        void.return_type = "record".into();
        void.returns_rows = true;
        assert_eq!(
            call("public", &void, &Map::new()).unwrap().sql,
            "select row_to_json(_r)::text from \"public\".\"touch\"() as _r"
        );
        void.returns_set = true;
        assert_eq!(
            call("public", &void, &Map::new()).unwrap().sql,
            "select coalesce(json_agg(_r), '[]'::json)::text from \"public\".\"touch\"() as _r"
        );
    }

    #[test]
    fn variadic_and_array_arguments_bind_array_literals() {
        let mut sum = function("sum_all", &[("vals", "integer[]", false)], "integer");
        sum.variadic = true;
        let Json::Object(args) = json!({"vals": [1, 2]}) else {
            unreachable!()
        };
        let statement = call("public", &sum, &args).unwrap();
        assert_eq!(
            statement.sql,
            "select to_json(\"public\".\"sum_all\"(variadic \"vals\" => $1))::text"
        );
        assert_eq!(texts(&statement.params), ["{\"1\",\"2\"}"]);
        let Json::Object(args) = json!({"vals": "7"}) else {
            unreachable!()
        };
        let statement = call("public", &sum, &args).unwrap();
        assert_eq!(texts(&statement.params), ["{\"7\"}"]);
    }

    #[test]
    fn a_set_returning_function_reads_like_its_table() {
        let catalog = catalog();
        let function = catalog.function_overloads("public", "posts_by").remove(0);
        let table = plan::result_table(&catalog, &function).unwrap();
        let pairs = query(&[("id", "gt.3"), ("order", "id")]);
        let scopes = scopes(&pairs).unwrap();
        let items = parse_select("title").unwrap();
        let select = plan::select(&catalog, &table, &items);
        let Json::Object(args) = json!({"author": 1}) else {
            unreachable!()
        };
        let mut builder = Builder::new(&scopes);
        let from = invocation("public", &function, &args, &mut builder.sql).unwrap();
        let read = read(builder, &table, from, &select, false).unwrap();
        assert_eq!(
            read.sql,
            "select coalesce(json_agg(_r), '[]'::json)::text from (select \
             t0.\"title\" as \"title\" from \"public\".\"posts_by\"(\"author\" => $1) as t0 \
             where t0.\"id\" > $2 order by t0.\"id\" asc) _r"
        );
        assert_eq!(texts(&read.params), ["1", "3"]);
    }
}
