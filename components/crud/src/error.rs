//! The catalogue of errors, as PostgREST's `Error.hs` keeps it: one
//! [`ErrorKind`] per failure the component reports itself, one table giving
//! each its HTTP status ([`ErrorKind::status`]) and one its code
//! ([`ErrorKind::code`]: PostgREST's `PGRSTxxx`, or the SQLSTATE PostgREST
//! answers with), and one constructor per message. Database errors keep the
//! code PostgreSQL gave ([`ApiError::from_db`]). The body is PostgREST's
//! (`code`, `message`, `details`, `hint`), with the statuses supabase-js
//! expects.

use selfdb_sdk::db::DbError;
use selfdb_sdk::Response;
use serde_json::json;

/// Every failure the component reports by itself (not the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database answered without the JSON array a read builds.
    NoJsonArray,
    /// No schema is exposed, so no request can name one.
    NoSchemaExposed,
    /// The query string (or an upsert's target) breaks PostgREST's grammar.
    Parse,
    /// `GET` on a volatile function.
    GetOnVolatile,
    /// The body is not the JSON the request needs.
    InvalidBody,
    /// A `Range` header that names no rows.
    RangeNotSatisfiable,
    /// `PUT` on a table without a primary key.
    PutWithoutPrimaryKey,
    /// `PUT` whose filters do not name the payload's primary key.
    PutMismatch,
    /// `Accept-Profile` / `Content-Profile` names a schema not exposed.
    SchemaNotExposed,
    /// `Accept: application/vnd.pgrst.object+json` with other than one row.
    NotSingleObject,
    /// A method the path does not serve.
    UnsupportedMethod,
    /// `...embed(...)` over a to-many relationship.
    SpreadToMany,
    /// A path that names no table, function or document.
    InvalidPath,
    /// An embedded resource no foreign key leads to.
    RelationshipNotFound,
    /// An embedded resource several foreign keys lead to.
    AmbiguousRelationship,
    /// No function (or no overload taking the arguments given).
    FunctionNotFound,
    /// Several overloads take the arguments given.
    AmbiguousFunction,
    /// A payload or `columns=` names a column the table lacks.
    ColumnNotFound,
    /// No table or view of that name in the schema.
    TableNotFound,
    /// A select list, filter or order names a column the table lacks.
    UndefinedColumn,
    /// `PATCH` or `DELETE` without a filter.
    MissingWhere,
}

impl ErrorKind {
    /// Every kind, in the order of the tables below.
    #[cfg(test)]
    pub const ALL: [ErrorKind; 21] = [
        Self::NoJsonArray,
        Self::NoSchemaExposed,
        Self::Parse,
        Self::GetOnVolatile,
        Self::InvalidBody,
        Self::RangeNotSatisfiable,
        Self::PutWithoutPrimaryKey,
        Self::PutMismatch,
        Self::SchemaNotExposed,
        Self::NotSingleObject,
        Self::UnsupportedMethod,
        Self::SpreadToMany,
        Self::InvalidPath,
        Self::RelationshipNotFound,
        Self::AmbiguousRelationship,
        Self::FunctionNotFound,
        Self::AmbiguousFunction,
        Self::ColumnNotFound,
        Self::TableNotFound,
        Self::UndefinedColumn,
        Self::MissingWhere,
    ];

    /// The HTTP status of each kind.
    pub const fn status(self) -> u16 {
        match self {
            Self::NoJsonArray => 500,
            Self::NoSchemaExposed => 500,
            Self::Parse => 400,
            Self::GetOnVolatile => 405,
            Self::InvalidBody => 400,
            Self::RangeNotSatisfiable => 416,
            Self::PutWithoutPrimaryKey => 405,
            Self::PutMismatch => 400,
            Self::SchemaNotExposed => 406,
            Self::NotSingleObject => 406,
            Self::UnsupportedMethod => 405,
            Self::SpreadToMany => 400,
            Self::InvalidPath => 404,
            Self::RelationshipNotFound => 400,
            Self::AmbiguousRelationship => 300,
            Self::FunctionNotFound => 404,
            Self::AmbiguousFunction => 300,
            Self::ColumnNotFound => 400,
            Self::TableNotFound => 404,
            Self::UndefinedColumn => 400,
            Self::MissingWhere => 400,
        }
    }

    /// The `code` of each kind's body.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NoJsonArray => "PGRST000",
            Self::NoSchemaExposed => "PGRST002",
            Self::Parse => "PGRST100",
            Self::GetOnVolatile => "PGRST101",
            Self::InvalidBody => "PGRST102",
            Self::RangeNotSatisfiable => "PGRST103",
            Self::PutWithoutPrimaryKey => "PGRST105",
            Self::PutMismatch => "PGRST105",
            Self::SchemaNotExposed => "PGRST106",
            Self::NotSingleObject => "PGRST116",
            Self::UnsupportedMethod => "PGRST117",
            Self::SpreadToMany => "PGRST119",
            Self::InvalidPath => "PGRST125",
            Self::RelationshipNotFound => "PGRST200",
            Self::AmbiguousRelationship => "PGRST201",
            Self::FunctionNotFound => "PGRST202",
            Self::AmbiguousFunction => "PGRST203",
            Self::ColumnNotFound => "PGRST204",
            Self::TableNotFound => "PGRST205",
            Self::UndefinedColumn => "42703",
            Self::MissingWhere => "21000",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl ApiError {
    /// An error of `kind`: its status and code from the tables above.
    fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: kind.status(),
            code: kind.code().to_owned(),
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn no_json_array() -> Self {
        Self::of(
            ErrorKind::NoJsonArray,
            "the database returned no JSON array",
        )
    }

    pub fn no_schema_exposed() -> Self {
        Self::of(ErrorKind::NoSchemaExposed, "no schema is exposed")
    }

    /// A request PostgREST's grammar cannot read.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::of(ErrorKind::Parse, message)
    }

    /// An upsert with neither `on_conflict` nor a primary key to go by.
    pub fn upsert_without_target() -> Self {
        Self::parse("upsert needs on_conflict or a primary key")
    }

    pub fn get_on_volatile() -> Self {
        Self::of(
            ErrorKind::GetOnVolatile,
            "Cannot use the GET method on a volatile function",
        )
    }

    pub fn invalid_json() -> Self {
        Self::of(ErrorKind::InvalidBody, "Empty or invalid json")
    }

    pub fn arguments_not_object() -> Self {
        Self::of(
            ErrorKind::InvalidBody,
            "the arguments must be a JSON object",
        )
    }

    pub fn keys_must_match() -> Self {
        Self::of(ErrorKind::InvalidBody, "All object keys must match")
    }

    pub fn range_not_satisfiable() -> Self {
        Self::of(
            ErrorKind::RangeNotSatisfiable,
            "Requested range not satisfiable",
        )
    }

    pub fn put_without_primary_key() -> Self {
        Self::of(
            ErrorKind::PutWithoutPrimaryKey,
            "PUT needs a table with a primary key",
        )
    }

    pub fn put_mismatch() -> Self {
        Self::of(
            ErrorKind::PutMismatch,
            "PUT requires eq filters on the whole primary key, matching the payload",
        )
    }

    pub fn schema_not_exposed(exposed: &[String], wanted: &str) -> Self {
        Self::of(
            ErrorKind::SchemaNotExposed,
            format!(
                "The schema must be one of the following: {}",
                exposed.join(", ")
            ),
        )
        .details(format!("{wanted} is not exposed"))
    }

    pub fn not_single_object(rows: usize) -> Self {
        Self::of(
            ErrorKind::NotSingleObject,
            "JSON object requested, multiple (or no) rows returned",
        )
        .details(format!("The result contains {rows} rows"))
    }

    pub fn unsupported_method() -> Self {
        Self::of(ErrorKind::UnsupportedMethod, "Unsupported HTTP method")
    }

    pub fn spread_to_many(target: &str) -> Self {
        Self::of(
            ErrorKind::SpreadToMany,
            format!("A spread operation on '{target}' is not possible"),
        )
        .details("only a to-one relationship can be spread")
    }

    pub fn invalid_path(path: &str) -> Self {
        Self::of(
            ErrorKind::InvalidPath,
            format!("Invalid path specified in request URL: {path}"),
        )
    }

    pub fn relationship_not_found(parent: &str, target: &str) -> Self {
        Self::of(
            ErrorKind::RelationshipNotFound,
            format!(
                "Could not find a relationship between '{parent}' and '{target}' in the schema cache"
            ),
        )
    }

    pub fn ambiguous_relationship(parent: &str, target: &str) -> Self {
        Self::of(
            ErrorKind::AmbiguousRelationship,
            format!(
                "Could not embed because more than one relationship was found for '{parent}' and '{target}'"
            ),
        )
        .details("name the foreign key with !hint, e.g. target!fk_name(*)")
    }

    pub fn function_not_found(schema: &str, name: &str) -> Self {
        Self::of(
            ErrorKind::FunctionNotFound,
            format!("Could not find the function {schema}.{name} in the schema cache"),
        )
    }

    /// The function exists, but no overload takes exactly `keys`.
    pub fn no_matching_overload(schema: &str, name: &str, keys: &[&str]) -> Self {
        Self::function_not_found(schema, name).details(format!(
            "no overload of {name} takes exactly the arguments given: {}",
            keys.join(", ")
        ))
    }

    /// The call leaves out `argument`, which has no default.
    pub fn missing_argument(schema: &str, name: &str, argument: &str) -> Self {
        Self::function_not_found(schema, name).details(format!("missing argument {argument}"))
    }

    pub fn ambiguous_function(schema: &str, name: &str) -> Self {
        Self::of(
            ErrorKind::AmbiguousFunction,
            format!(
                "Could not choose the best candidate function between overloads of {schema}.{name}"
            ),
        )
        .hint("name the arguments so that one overload matches")
    }

    pub fn column_not_found(table: &str, column: &str) -> Self {
        Self::of(
            ErrorKind::ColumnNotFound,
            format!("Could not find the '{column}' column of '{table}' in the schema cache"),
        )
    }

    pub fn table_not_found(schema: &str, name: &str) -> Self {
        Self::of(
            ErrorKind::TableNotFound,
            format!("Could not find the table '{schema}.{name}' in the schema cache"),
        )
    }

    pub fn unknown_column(table: &str, column: &str) -> Self {
        Self::of(
            ErrorKind::UndefinedColumn,
            format!("column {table}.{column} does not exist"),
        )
    }

    /// `verb` is `UPDATE` or `DELETE`.
    pub fn missing_where(verb: &str) -> Self {
        Self::of(
            ErrorKind::MissingWhere,
            format!("{verb} requires a WHERE clause"),
        )
        .details(format!(
            "add a filter; to {} every row, filter on a condition every row meets",
            verb.to_lowercase()
        ))
    }

    /// Maps a database error; `anon` decides between 401 and 403 for a
    /// privilege or row-level-security refusal.
    pub fn from_db(err: DbError, anon: bool) -> Self {
        let status = match err.code.as_str() {
            "23505" | "23503" => 409,
            "42501" => {
                if anon {
                    401
                } else {
                    403
                }
            }
            "42P01" | "42883" => 404,
            "57014" => 504,
            "selfdb.refused" | "selfdb.too_many_rows" => 400,
            code if code.starts_with("22") || code.starts_with("23") || code.starts_with("42") => {
                400
            }
            code if code.starts_with("P0") => 400,
            _ => 500,
        };
        Self {
            status,
            code: err.code,
            message: err.message,
            details: err.details,
            hint: err.hint,
        }
    }

    pub fn into_response(self) -> Response {
        Response::json(
            self.status,
            &json!({"code": self.code, "message": self.message, "details": self.details, "hint": self.hint}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiError, ErrorKind};

    /// The statuses and codes supabase-js and its tests go by: changing
    /// one is changing the API.
    #[test]
    fn each_kind_keeps_its_status_and_code() {
        let table: Vec<(u16, &str)> = ErrorKind::ALL
            .iter()
            .map(|k| (k.status(), k.code()))
            .collect();
        assert_eq!(
            table,
            [
                (500, "PGRST000"),
                (500, "PGRST002"),
                (400, "PGRST100"),
                (405, "PGRST101"),
                (400, "PGRST102"),
                (416, "PGRST103"),
                (405, "PGRST105"),
                (400, "PGRST105"),
                (406, "PGRST106"),
                (406, "PGRST116"),
                (405, "PGRST117"),
                (400, "PGRST119"),
                (404, "PGRST125"),
                (400, "PGRST200"),
                (300, "PGRST201"),
                (404, "PGRST202"),
                (300, "PGRST203"),
                (400, "PGRST204"),
                (404, "PGRST205"),
                (400, "42703"),
                (400, "21000"),
            ]
        );
    }

    #[test]
    fn the_body_is_postgrests() {
        let response = ApiError::not_single_object(2).into_response();
        assert_eq!(response.status, 406);
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            r#"{"code":"PGRST116","message":"JSON object requested, multiple (or no) rows returned","details":"The result contains 2 rows","hint":null}"#
        );
    }

    #[test]
    fn errors_carry_their_kind_and_message() {
        let err = ApiError::table_not_found("public", "nope");
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST205"));
        assert_eq!(
            err.message,
            "Could not find the table 'public.nope' in the schema cache"
        );
        let err = ApiError::missing_argument("public", "add", "b");
        assert_eq!((err.status, err.code.as_str()), (404, "PGRST202"));
        assert_eq!(err.details.as_deref(), Some("missing argument b"));
        let err = ApiError::ambiguous_function("public", "f");
        assert_eq!((err.status, err.code.as_str()), (300, "PGRST203"));
        assert_eq!(
            err.hint.as_deref(),
            Some("name the arguments so that one overload matches")
        );
        let err = ApiError::missing_where("DELETE");
        assert_eq!(
            (err.status, err.code.as_str(), err.message.as_str()),
            (400, "21000", "DELETE requires a WHERE clause")
        );
        assert_eq!(
            err.details.as_deref(),
            Some("add a filter; to delete every row, filter on a condition every row meets")
        );
    }
}
