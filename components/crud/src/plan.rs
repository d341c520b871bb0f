//! The plan of a request, as PostgREST's `Plan.hs` makes it: what the
//! request names, resolved against the schema cache before any SQL is built
//! (the schema it addresses, the table, the overload a call picks and the
//! table its rows have, and for each embedded resource the foreign key it
//! follows). This is the only module that asks the host's `schema`
//! interface anything, through [`Host`]; `query` then builds the SQL from
//! the plan in pure code.

use crate::error::ApiError;
use crate::parse::SelectItem;
use selfdb_sdk::schema::{self, ForeignKey, FunctionInfo, TableInfo};
use selfdb_sdk::Request;

/// What planning needs to know of the schema cache: [`Host`] asks the
/// host; unit tests hand literal tables and functions.
pub trait Catalog {
    fn table(&self, schema: &str, name: &str) -> Option<TableInfo>;
    /// Every overload of `schema.name`.
    fn function_overloads(&self, schema: &str, name: &str) -> Vec<FunctionInfo>;
}

/// The host's schema cache, through the WIT `schema` interface.
#[derive(Debug, Clone, Copy)]
pub struct Host;

impl Catalog for Host {
    fn table(&self, schema_name: &str, name: &str) -> Option<TableInfo> {
        schema::table(schema_name, name)
    }

    fn function_overloads(&self, schema_name: &str, name: &str) -> Vec<FunctionInfo> {
        schema::function_overloads(schema_name, name)
    }
}

impl Host {
    /// The exposed schemas, in search order.
    pub fn exposed_schemas(self) -> Vec<String> {
        schema::exposed_schemas()
    }

    /// Every table and view of the exposed schemas (for the OpenAPI
    /// document).
    pub fn tables(self) -> Vec<TableInfo> {
        schema::tables()
    }

    /// Every function of the exposed schemas (for the OpenAPI document).
    pub fn functions(self) -> Vec<FunctionInfo> {
        schema::functions()
    }
}

/// The schema a request addresses: `Accept-Profile` (reads) or
/// `Content-Profile` (writes), else the first exposed one.
pub fn profile(request: &Request) -> Result<String, ApiError> {
    let exposed = Host.exposed_schemas();
    let header = if matches!(request.method.as_str(), "GET" | "HEAD") {
        "accept-profile"
    } else {
        "content-profile"
    };
    choose_profile(exposed, request.header(header))
}

/// `wanted` if it is exposed; without one, the first exposed schema.
fn choose_profile(exposed: Vec<String>, wanted: Option<&str>) -> Result<String, ApiError> {
    match wanted {
        None => exposed
            .into_iter()
            .next()
            .ok_or_else(ApiError::no_schema_exposed),
        Some(wanted) if exposed.iter().any(|s| s == wanted) => Ok(wanted.to_owned()),
        Some(wanted) => Err(ApiError::schema_not_exposed(&exposed, wanted)),
    }
}

/// The table or view `schema.name`.
pub fn table(catalog: &impl Catalog, schema_name: &str, name: &str) -> Result<TableInfo, ApiError> {
    catalog
        .table(schema_name, name)
        .ok_or_else(|| ApiError::table_not_found(schema_name, name))
}

/// Every overload of the function `schema.name`; at least one.
pub fn overloads(
    catalog: &impl Catalog,
    schema_name: &str,
    name: &str,
) -> Result<Vec<FunctionInfo>, ApiError> {
    let overloads = catalog.function_overloads(schema_name, name);
    if overloads.is_empty() {
        return Err(ApiError::function_not_found(schema_name, name));
    }
    Ok(overloads)
}

/// The overload the request's argument names call, as PostgREST picks it:
/// every required parameter given and, when `exact`, every key a parameter.
/// Of several, the one that takes the most of the keys; a tie is ambiguous.
pub fn choose(
    schema_name: &str,
    name: &str,
    overloads: Vec<FunctionInfo>,
    keys: &[&str],
    exact: bool,
) -> Result<FunctionInfo, ApiError> {
    let mut best: Vec<(usize, FunctionInfo)> = Vec::new();
    for function in overloads {
        let takes = |key: &str| function.args.iter().any(|a| a.name == key);
        if exact && !keys.iter().all(|k| takes(k)) {
            continue;
        }
        let required_given = function
            .args
            .iter()
            .all(|a| a.has_default || keys.contains(&a.name.as_str()));
        if !required_given {
            continue;
        }
        let used = keys.iter().filter(|k| takes(k)).count();
        match best.first() {
            Some((top, _)) if used < *top => {}
            Some((top, _)) if used > *top => best = vec![(used, function)],
            _ => best.push((used, function)),
        }
    }
    match best.len() {
        1 => Ok(best.remove(0).1),
        0 => Err(ApiError::no_matching_overload(schema_name, name, keys)),
        _ => Err(ApiError::ambiguous_function(schema_name, name)),
    }
}

/// The table whose row type a set-returning function returns (`returns
/// setof posts`), so its result takes `select`, filters, `order` and
/// paging like the table itself, as on PostgREST.
pub fn result_table(catalog: &impl Catalog, function: &FunctionInfo) -> Option<TableInfo> {
    if !function.result_columns.is_empty() {
        // OUT or TABLE parameters: their columns, as a table without keys.
        return Some(TableInfo {
            schema: function.schema.clone(),
            name: function.name.clone(),
            kind: "function".into(),
            columns: function.result_columns.clone(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
        });
    }
    let name = function.return_type.trim_matches('"');
    let (schema_name, table) = match name.split_once('.') {
        Some((s, t)) => (s.trim_matches('"'), t.trim_matches('"')),
        None => (function.schema.as_str(), name),
    };
    catalog.table(schema_name, table)
}

/// A select list and, for each embedded resource in it, how it joins.
#[derive(Debug)]
pub struct Select<'a> {
    pub items: &'a [SelectItem],
    /// One per [`SelectItem::Embed`] of `items`, in their order. A
    /// relationship that could not be resolved is kept as its error, which
    /// `query` returns when it reaches that embed: a request with several
    /// mistakes reports the one met first in the select list, as it did
    /// before planning was a step of its own.
    pub embeds: Vec<Result<Embed<'a>, ApiError>>,
}

/// An embedded resource: the relationship and the select list inside it.
#[derive(Debug)]
pub struct Embed<'a> {
    pub relation: Relation,
    pub select: Select<'a>,
}

/// How an embedded table joins its parent.
#[derive(Debug)]
pub struct Relation {
    pub target: TableInfo,
    /// (target column, parent column) pairs.
    pub pairs: Vec<(String, String)>,
    pub to_many: bool,
}

/// Plans `items` over `table`: every embedded resource, at any depth, with
/// the relationship it follows. The items are borrowed, not copied.
pub fn select<'a>(
    catalog: &impl Catalog,
    table: &TableInfo,
    items: &'a [SelectItem],
) -> Select<'a> {
    let mut embeds = Vec::new();
    for item in items {
        if let SelectItem::Embed {
            name, hint, items, ..
        } = item
        {
            embeds.push(
                relation(catalog, table, name, hint.as_deref()).map(|relation| {
                    let select = select(catalog, &relation.target, items);
                    Embed { relation, select }
                }),
            );
        }
    }
    Select { items, embeds }
}

/// Finds how `target` relates to `parent` through foreign keys, either
/// way; `hint` (a key or column name) picks one of several.
fn relation(
    catalog: &impl Catalog,
    parent: &TableInfo,
    target: &str,
    hint: Option<&str>,
) -> Result<Relation, ApiError> {
    let matches_hint = |key: &ForeignKey| match hint {
        None => true,
        Some(h) => key.name == h || key.columns.iter().any(|c| c == h),
    };
    let mut found = Vec::new();
    for key in parent
        .foreign_keys
        .iter()
        .filter(|k| k.referenced_table == target && matches_hint(k))
    {
        if let Some(t) = catalog.table(&key.referenced_schema, &key.referenced_table) {
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
        if let Some(t) = catalog.table(&from.schema, &from.table) {
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
        0 => Err(ApiError::relationship_not_found(&parent.name, target)),
        _ => Err(ApiError::ambiguous_relationship(&parent.name, target)),
    }
}

/// Literal tables and functions standing in for the host's schema cache,
/// shared by the unit tests of planning and of SQL building.
#[cfg(test)]
pub mod fixtures {
    use super::Catalog;
    use selfdb_sdk::schema::{
        ColumnInfo, ForeignKey, ForeignKeyFrom, FunctionArg, FunctionInfo, TableInfo,
    };

    pub struct Fixtures {
        pub tables: Vec<TableInfo>,
        pub functions: Vec<FunctionInfo>,
    }

    impl Catalog for Fixtures {
        fn table(&self, schema: &str, name: &str) -> Option<TableInfo> {
            self.tables
                .iter()
                .find(|t| t.schema == schema && t.name == name)
                .cloned()
        }

        fn function_overloads(&self, schema: &str, name: &str) -> Vec<FunctionInfo> {
            self.functions
                .iter()
                .filter(|f| f.schema == schema && f.name == name)
                .cloned()
                .collect()
        }
    }

    pub fn column(name: &str, type_name: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            type_name: type_name.into(),
            nullable: true,
            has_default: false,
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    /// `posts.author_id` references `authors.id`.
    fn posts_author_key() -> ForeignKey {
        ForeignKey {
            name: "posts_author_id_fkey".into(),
            columns: strings(&["author_id"]),
            referenced_schema: "public".into(),
            referenced_table: "authors".into(),
            referenced_columns: strings(&["id"]),
        }
    }

    pub fn authors() -> TableInfo {
        TableInfo {
            schema: "public".into(),
            name: "authors".into(),
            kind: "table".into(),
            columns: vec![column("id", "integer"), column("name", "text")],
            primary_key: strings(&["id"]),
            foreign_keys: Vec::new(),
            referenced_by: vec![ForeignKeyFrom {
                key: posts_author_key(),
                schema: "public".into(),
                table: "posts".into(),
            }],
        }
    }

    pub fn posts() -> TableInfo {
        TableInfo {
            schema: "public".into(),
            name: "posts".into(),
            kind: "table".into(),
            columns: vec![
                column("id", "integer"),
                column("title", "text"),
                column("author_id", "integer"),
                column("data", "jsonb"),
            ],
            primary_key: strings(&["id"]),
            foreign_keys: vec![posts_author_key()],
            referenced_by: Vec::new(),
        }
    }

    pub fn function(name: &str, args: &[(&str, &str, bool)], return_type: &str) -> FunctionInfo {
        FunctionInfo {
            schema: "public".into(),
            name: name.into(),
            args: args
                .iter()
                .map(|(name, type_name, has_default)| FunctionArg {
                    name: (*name).into(),
                    type_name: (*type_name).into(),
                    has_default: *has_default,
                })
                .collect(),
            return_type: return_type.into(),
            returns_set: false,
            returns_rows: false,
            result_columns: Vec::new(),
            volatility: "volatile".into(),
            variadic: false,
        }
    }

    pub fn catalog() -> Fixtures {
        let mut posts_by_author = function("posts_by", &[("author", "integer", false)], "posts");
        posts_by_author.returns_set = true;
        posts_by_author.returns_rows = true;
        posts_by_author.volatility = "stable".into();
        Fixtures {
            tables: vec![authors(), posts()],
            functions: vec![
                function(
                    "add",
                    &[("a", "integer", false), ("b", "integer", false)],
                    "integer",
                ),
                function("greet", &[("name", "text", false)], "text"),
                function(
                    "greet",
                    &[("name", "text", false), ("title", "text", true)],
                    "text",
                ),
                function("greet", &[("first", "text", false)], "text"),
                posts_by_author,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{authors, catalog, posts};
    use super::*;
    use crate::parse::parse_select;

    #[test]
    fn a_profile_must_be_exposed() {
        let exposed = || vec!["public".to_owned(), "api".to_owned()];
        assert_eq!(choose_profile(exposed(), None).unwrap(), "public");
        assert_eq!(choose_profile(exposed(), Some("api")).unwrap(), "api");
        let err = choose_profile(exposed(), Some("secret")).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (406, "PGRST106"));
        assert_eq!(
            err.message,
            "The schema must be one of the following: public, api"
        );
        assert_eq!(err.details.as_deref(), Some("secret is not exposed"));
        let err = choose_profile(Vec::new(), None).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (500, "PGRST002"));
    }

    #[test]
    fn tables_and_functions_resolve_or_are_not_found() {
        let catalog = catalog();
        assert_eq!(table(&catalog, "public", "posts").unwrap().name, "posts");
        let err = table(&catalog, "public", "nope").unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST205"));
        assert_eq!(overloads(&catalog, "public", "greet").unwrap().len(), 3);
        let err = overloads(&catalog, "public", "nope").unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST202"));
    }

    #[test]
    fn overloads_are_told_apart_by_argument_names() {
        let catalog = catalog();
        let greet = || overloads(&catalog, "public", "greet").unwrap();
        let chosen = choose("public", "greet", greet(), &["name", "title"], true).unwrap();
        assert_eq!(chosen.args.len(), 2);
        let chosen = choose("public", "greet", greet(), &["first"], true).unwrap();
        assert_eq!(chosen.args[0].name, "first");
        // `name` alone fits both `greet(name)` and `greet(name, title default)`.
        let err = choose("public", "greet", greet(), &["name"], true).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (300, "PGRST203"));
        let err = choose("public", "greet", greet(), &["other"], true).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST202"));
        assert_eq!(
            err.details.as_deref(),
            Some("no overload of greet takes exactly the arguments given: other")
        );
        // A GET's filters are not arguments: they do not rule an overload out.
        let chosen = choose("public", "greet", greet(), &["first", "limit"], false).unwrap();
        assert_eq!(chosen.args[0].name, "first");
    }

    #[test]
    fn a_setof_function_reads_like_its_table() {
        let catalog = catalog();
        let function = overloads(&catalog, "public", "posts_by").unwrap().remove(0);
        assert_eq!(result_table(&catalog, &function).unwrap().name, "posts");
    }

    #[test]
    fn embeds_follow_foreign_keys_both_ways() {
        let catalog = catalog();
        let items = parse_select("title,authors(name)").unwrap();
        let plan = select(&catalog, &posts(), &items);
        let [Ok(embed)] = plan.embeds.as_slice() else {
            panic!("one resolved embed: {plan:?}");
        };
        assert_eq!(embed.relation.target.name, "authors");
        assert!(!embed.relation.to_many);
        assert_eq!(
            embed.relation.pairs,
            [("id".to_owned(), "author_id".to_owned())]
        );

        let items = parse_select("name,posts(title,authors(name))").unwrap();
        let plan = select(&catalog, &authors(), &items);
        let [Ok(embed)] = plan.embeds.as_slice() else {
            panic!("one resolved embed: {plan:?}");
        };
        assert!(embed.relation.to_many);
        assert_eq!(
            embed.relation.pairs,
            [("author_id".to_owned(), "id".to_owned())]
        );
        assert!(
            matches!(embed.select.embeds.as_slice(), [Ok(inner)] if inner.relation.target.name == "authors")
        );
    }

    #[test]
    fn an_unknown_relationship_is_kept_for_the_builder_to_report() {
        let catalog = catalog();
        let items = parse_select("title,comments(*),authors!nope(*)").unwrap();
        let plan = select(&catalog, &posts(), &items);
        let [Err(first), Err(second)] = plan.embeds.as_slice() else {
            panic!("two failed embeds: {plan:?}");
        };
        assert_eq!((first.status, first.code.as_str()), (400, "PGRST200"));
        assert_eq!(
            first.message,
            "Could not find a relationship between 'posts' and 'comments' in the schema cache"
        );
        assert_eq!(second.code, "PGRST200", "the hint matches no key");
    }
}
