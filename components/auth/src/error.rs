//! GoTrue's error bodies: the 2024-01-01 shape (`code` as a string) and the
//! older one (`error_code`, `msg`) at once, with the version header echoed,
//! so every auth-js release reads the code.

use selfdb_sdk::Response;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct AuthError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub extra: Option<(String, Value)>,
    pub retry_after: Option<u32>,
}

impl AuthError {
    pub fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
            extra: None,
            retry_after: None,
        }
    }

    pub fn validation(message: &str) -> Self {
        Self::new(400, "validation_failed", message)
    }

    pub fn unexpected(message: &str) -> Self {
        Self::new(500, "unexpected_failure", message)
    }

    pub fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.code,
            "error_code": self.code,
            "msg": self.message,
            "message": self.message,
        });
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut response = Response::json(self.status, &body)
            .with_header("x-supabase-api-version", "2024-01-01")
            .with_header("x-sb-error-code", &self.code);
        if let Some(seconds) = self.retry_after {
            response = response.with_header("retry-after", &seconds.to_string());
        }
        response
    }
}
