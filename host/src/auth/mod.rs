//! Credentials: the instance's JWT keys, the verified principal of a
//! request, and the platform's admins.

pub mod admin_sessions;
pub mod first_admin;
pub mod keys;
pub mod mailer;
pub mod passwords;
pub mod principal;
pub mod rate_limit;
pub mod signing;

pub use keys::{JwtKeys, TokenError};
pub use principal::{Principal, Role};
