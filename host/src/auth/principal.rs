//! Who is calling, as the host verified it.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Anon,
    Authenticated,
    ServiceRole,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "anon" => Some(Role::Anon),
            "authenticated" => Some(Role::Authenticated),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Principal {
    pub role: Role,
    /// The `sub` claim of a signed-in user.
    pub user_id: Option<String>,
    /// Every verified claim, as `request.jwt.claims` exposes them to SQL.
    pub claims: Value,
    /// `claims` as JSON text, which every request hands to PostgreSQL and
    /// to the component: serialised once, with the verified token.
    pub claims_text: String,
}

impl Principal {
    pub fn from_claims(role: Role, claims: Map<String, Value>) -> Self {
        let user_id = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        let claims = Value::Object(claims);
        Principal {
            role,
            user_id,
            claims_text: claims.to_string(),
            claims,
        }
    }
}
