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

#[cfg(test)]
mod tests {
    use super::AuthError;
    use serde_json::{json, Value};

    fn header<'r>(response: &'r selfdb_sdk::Response, name: &str) -> Option<&'r [u8]> {
        response
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn errors_carry_both_gotrue_shapes() {
        let mut err = AuthError::new(429, "over_request_rate_limit", "Too many requests");
        err.retry_after = Some(30);
        err.extra = Some(("weak_password".into(), json!({"reasons": ["length"]})));
        let response = err.into_response();
        assert_eq!(response.status, 429);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(
            body,
            json!({
                "code": "over_request_rate_limit",
                "error_code": "over_request_rate_limit",
                "msg": "Too many requests",
                "message": "Too many requests",
                "weak_password": {"reasons": ["length"]},
            })
        );
        assert_eq!(
            header(&response, "x-supabase-api-version"),
            Some(&b"2024-01-01"[..])
        );
        assert_eq!(
            header(&response, "x-sb-error-code"),
            Some(&b"over_request_rate_limit"[..])
        );
        assert_eq!(header(&response, "retry-after"), Some(&b"30"[..]));
    }

    #[test]
    fn validation_and_unexpected_failures() {
        let err = AuthError::validation("bad");
        assert_eq!((err.status, err.code.as_str()), (400, "validation_failed"));
        let err = AuthError::unexpected("boom");
        assert_eq!((err.status, err.code.as_str()), (500, "unexpected_failure"));
    }
}
