//! PostgREST's error body (`code`, `message`, `details`, `hint`) and the
//! statuses supabase-js expects for each kind of failure.

use selfdb_sdk::db::DbError;
use selfdb_sdk::Response;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A request PostgREST's grammar cannot read.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(400, "PGRST100", message)
    }

    pub fn unknown_column(table: &str, column: &str) -> Self {
        Self::new(
            400,
            "42703",
            format!("column {table}.{column} does not exist"),
        )
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
