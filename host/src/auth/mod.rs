//! Credentials: the instance's JWT keys, the verified principal of a
//! request, and the platform's admins.

pub mod admin;
pub mod keys;
pub mod principal;

pub use keys::{JwtKeys, TokenError};
pub use principal::{Principal, Role};
