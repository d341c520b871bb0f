//! Admins (`selfdb.admins`) and their sessions, for the dashboard and the
//! admin API (`/api/v1`).
//!
//! An admin signs in with email and password (argon2id, as users do) and
//! gets two things:
//! - a short-lived access token, a JWT the host signs with the instance's
//!   secret, with `role: service_role` (so it works on the Supabase APIs
//!   as the service key does: the dashboard never needs the service key
//!   itself), no `sub` (so no user's rows are taken for the admin's), and
//!   `iss: selfdb-admin`, `admin_id`, `admin_email` and `sid` (not
//!   `email`: SQL sees every claim, and `auth.email()` must not take the
//!   admin for a user with that address);
//! - a refresh token, random, of which only the SHA-256 is kept. It rotates
//!   on every use; presenting a replaced one means it leaked, and ends the
//!   session.
//!
//! The admin API checks the session (`sid`) on every call, so signing out,
//! a changed password or a removed admin takes effect there at once; on
//! the Supabase APIs an access token stays valid until it expires
//! ([`ACCESS_SECONDS`]).

use super::{passwords, JwtKeys, TokenError};
use crate::db::{Database, DbError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `iss` of admin access tokens.
pub const ISSUER: &str = "selfdb-admin";
/// How long an admin access token is valid.
pub const ACCESS_SECONDS: i64 = 600;
/// A session ends this long after it was last refreshed...
pub const SESSION_IDLE_SECONDS: i64 = 7 * 24 * 3600;
/// ...and this long after it began, however often refreshed.
pub const SESSION_MAX_SECONDS: i64 = 30 * 24 * 3600;
/// A replaced refresh token presented this soon after its rotation is a
/// race (two tabs, a retried request), not a leak: refused without ending
/// the session.
const ROTATION_GRACE_SECONDS: f64 = 10.0;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("the refresh token is not valid (unknown, expired or signed out)")]
    InvalidRefresh,
    #[error("the refresh token was used already: the session is ended, sign in again")]
    RefreshReused,
    #[error("the refresh token was just replaced by another request: use the new one")]
    RefreshRaced,
    #[error("no admin has this id")]
    NotFound,
    #[error("an admin with this email exists already")]
    EmailTaken,
    #[error("the last admin cannot be removed")]
    LastAdmin,
    #[error("the password must have at least {0} characters")]
    WeakPassword(u32),
    #[error("the email must look like name@domain")]
    BadEmail,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("signing the access token: {0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Hash(String),
}

/// An admin, as the admin API lists them.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: Uuid,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl Admin {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "email": self.email,
            "created_at": self.created_at.to_rfc3339(),
            "last_sign_in_at": self.last_sign_in_at.map(|at| at.to_rfc3339()),
        })
    }
}

/// What a sign-in or a refresh hands out.
pub struct Issued {
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub refresh_token: String,
    pub admin_id: Uuid,
    pub email: String,
    pub session_id: Uuid,
}

/// An admin access token's identity, from its claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminClaims {
    pub admin_id: Uuid,
    pub email: String,
    pub session_id: Uuid,
}

impl AdminClaims {
    /// The admin identity of a verified token's claims; `None` for any
    /// other token (the service key, a user's).
    pub fn of(claims: &Value) -> Option<Self> {
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return None;
        }
        let uuid = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
        };
        Some(AdminClaims {
            admin_id: uuid("admin_id")?,
            email: claims.get("admin_email")?.as_str()?.to_owned(),
            session_id: uuid("sid")?,
        })
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn issue(
    keys: &JwtKeys,
    admin_id: Uuid,
    email: &str,
    session_id: Uuid,
    refresh_token: String,
) -> Result<Issued, SessionError> {
    let now = Utc::now().timestamp();
    let expires_at = now + ACCESS_SECONDS;
    let access_token = keys.sign(&json!({
        "iss": ISSUER,
        "role": "service_role",
        "admin_id": admin_id.to_string(),
        "admin_email": email,
        "sid": session_id.to_string(),
        "iat": now,
        "exp": expires_at,
    }))?;
    Ok(Issued {
        access_token,
        expires_at,
        refresh_token,
        admin_id,
        email: email.to_owned(),
        session_id,
    })
}

/// Signs an admin in: a new session, and its first tokens.
pub async fn sign_in(
    db: &Database,
    keys: &JwtKeys,
    email: &str,
    password: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<Issued, SessionError> {
    let found = {
        let client = db.owner().get().await.map_err(DbError::from)?;
        client
            .query_opt(
                "select id, email, password_hash from selfdb.admins where lower(email) = lower($1)",
                &[&email],
            )
            .await?
    };
    let stored: Option<String> = found.as_ref().map(|row| row.get(2));
    // Verified (against a decoy when there is no such admin) off the async
    // workers and without a database connection held: argon2id takes tens
    // of milliseconds of CPU and 19 MiB. At most one per core at a time, so
    // a flood of attempts queues instead of taking the machine's memory.
    static VERIFYING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = VERIFYING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let permit = permits
        .acquire()
        .await
        .map_err(|e| SessionError::Hash(e.to_string()))?;
    let candidate = password.to_owned();
    let checked = stored.clone();
    let matches =
        tokio::task::spawn_blocking(move || passwords::verify(&candidate, checked.as_deref()))
            .await
            .map_err(|e| SessionError::Hash(e.to_string()))?;
    drop(permit);
    let Some(row) = found.filter(|_| matches) else {
        return Err(SessionError::InvalidCredentials);
    };
    let admin_id: Uuid = row.get(0);
    let email: String = row.get(1);
    let refresh_token = crate::secrets::random_token(32);
    let client = db.owner().get().await.map_err(DbError::from)?;
    // Only while the password is still the one verified: a sign-in racing
    // a password change must not outlive the change's sign-out.
    let session = client
        .query_opt(
            "insert into selfdb.admin_sessions (admin_id, refresh_hash, expires_at, ip, user_agent) \
             select $1, $2, now() + make_interval(secs => $3), $4, $5 \
             where exists (select 1 from selfdb.admins where id = $1 and password_hash = $6) \
             returning id",
            &[
                &admin_id,
                &digest(&refresh_token),
                &(SESSION_IDLE_SECONDS as f64),
                &ip,
                &user_agent,
                &stored,
            ],
        )
        .await?;
    let Some(session) = session else {
        return Err(SessionError::InvalidCredentials);
    };
    let session_id: Uuid = session.get(0);
    client
        .execute(
            "update selfdb.admins set last_sign_in_at = now() where id = $1",
            &[&admin_id],
        )
        .await?;
    // Housekeeping: sessions that ended a month ago are of no more use.
    client
        .execute(
            "delete from selfdb.admin_sessions \
             where coalesce(revoked_at, expires_at) < now() - make_interval(secs => $1)",
            &[&(SESSION_MAX_SECONDS as f64)],
        )
        .await?;
    issue(keys, admin_id, &email, session_id, refresh_token)
}

/// Rotates a refresh token: new tokens for its session. A token that was
/// replaced already ends its session.
pub async fn refresh(
    db: &Database,
    keys: &JwtKeys,
    refresh_token: &str,
) -> Result<Issued, SessionError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    let presented = digest(refresh_token);
    let next = crate::secrets::random_token(32);
    let rotated = client
        .query_opt(
            "update selfdb.admin_sessions s \
             set previous_hash = s.refresh_hash, refresh_hash = $2, refreshed_at = now(), \
                 expires_at = now() + make_interval(secs => $3) \
             from selfdb.admins a \
             where s.refresh_hash = $1 and s.revoked_at is null and s.expires_at > now() \
               and s.created_at > now() - make_interval(secs => $4) \
               and a.id = s.admin_id \
             returning s.id, s.admin_id, a.email",
            &[
                &presented,
                &digest(&next),
                &(SESSION_IDLE_SECONDS as f64),
                &(SESSION_MAX_SECONDS as f64),
            ],
        )
        .await?;
    if let Some(row) = rotated {
        return issue(
            keys,
            row.get(1),
            row.get::<_, String>(2).as_str(),
            row.get(0),
            next,
        );
    }
    let raced = client
        .query_opt(
            "select 1 from selfdb.admin_sessions \
             where previous_hash = $1 and revoked_at is null \
               and refreshed_at > now() - make_interval(secs => $2)",
            &[&presented, &ROTATION_GRACE_SECONDS],
        )
        .await?
        .is_some();
    if raced {
        return Err(SessionError::RefreshRaced);
    }
    let reused = client
        .execute(
            "update selfdb.admin_sessions set revoked_at = now() \
             where previous_hash = $1 and revoked_at is null",
            &[&presented],
        )
        .await?;
    Err(if reused > 0 {
        SessionError::RefreshReused
    } else {
        SessionError::InvalidRefresh
    })
}

/// Ends the session a refresh token belongs to (signing out once the
/// access token has expired).
pub async fn revoke_by_refresh(db: &Database, refresh_token: &str) -> Result<(), SessionError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    client
        .execute(
            "update selfdb.admin_sessions set revoked_at = now() \
             where refresh_hash = $1 and revoked_at is null",
            &[&digest(refresh_token)],
        )
        .await?;
    Ok(())
}

/// Ends a session; its access tokens stop working on the admin API.
pub async fn revoke(db: &Database, session_id: Uuid) -> Result<(), SessionError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    client
        .execute(
            "update selfdb.admin_sessions set revoked_at = now() \
             where id = $1 and revoked_at is null",
            &[&session_id],
        )
        .await?;
    Ok(())
}

/// Whether a session is still signed in.
pub async fn is_active(db: &Database, session_id: Uuid) -> Result<bool, SessionError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    Ok(client
        .query_opt(
            "select 1 from selfdb.admin_sessions \
             where id = $1 and revoked_at is null and expires_at > now()",
            &[&session_id],
        )
        .await?
        .is_some())
}

fn admin_of(row: &tokio_postgres::Row) -> Admin {
    Admin {
        id: row.get(0),
        email: row.get(1),
        created_at: row.get(2),
        last_sign_in_at: row.get(3),
    }
}

pub async fn list(db: &Database) -> Result<Vec<Admin>, SessionError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    Ok(client
        .query(
            "select id, email, created_at, last_sign_in_at from selfdb.admins order by created_at, email",
            &[],
        )
        .await?
        .iter()
        .map(admin_of)
        .collect())
}

async fn hashed(password: &str, min_length: u32) -> Result<String, SessionError> {
    if (password.chars().count() as u32) < min_length {
        return Err(SessionError::WeakPassword(min_length));
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || passwords::hash(&password))
        .await
        .map_err(|e| SessionError::Hash(e.to_string()))?
        .map_err(|e| SessionError::Hash(e.to_string()))
}

/// Adds an admin, who signs in with this password (handed over by the one
/// who added them).
pub async fn create(
    db: &Database,
    email: &str,
    password: &str,
    min_length: u32,
) -> Result<Admin, SessionError> {
    let email = email.trim();
    let well_formed = email
        .split_once('@')
        .is_some_and(|(name, domain)| !name.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(SessionError::BadEmail);
    }
    let hash = hashed(password, min_length).await?;
    let client = db.owner().get().await.map_err(DbError::from)?;
    let row = client
        .query_opt(
            "insert into selfdb.admins (email, password_hash) values ($1, $2) \
             on conflict do nothing \
             returning id, email, created_at, last_sign_in_at",
            &[&email, &hash],
        )
        .await?;
    row.as_ref().map(admin_of).ok_or(SessionError::EmailTaken)
}

/// Removes an admin and their sessions; never the last one.
pub async fn remove(db: &Database, id: Uuid) -> Result<(), SessionError> {
    let mut client = db.owner().get().await.map_err(DbError::from)?;
    let tx = client.transaction().await?;
    // Locks every admin row, so two removals at once cannot both see
    // another admin left.
    let ids: Vec<Uuid> = tx
        .query("select id from selfdb.admins for update", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if !ids.contains(&id) {
        return Err(SessionError::NotFound);
    }
    if ids.len() == 1 {
        return Err(SessionError::LastAdmin);
    }
    tx.execute("delete from selfdb.admins where id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets an admin's password and ends their other sessions (all of them
/// unless `keep` is one of theirs).
pub async fn set_password(
    db: &Database,
    id: Uuid,
    password: &str,
    min_length: u32,
    keep: Option<Uuid>,
) -> Result<(), SessionError> {
    let hash = hashed(password, min_length).await?;
    let mut client = db.owner().get().await.map_err(DbError::from)?;
    let tx = client.transaction().await?;
    let updated = tx
        .execute(
            "update selfdb.admins set password_hash = $2 where id = $1",
            &[&id, &hash],
        )
        .await?;
    if updated == 0 {
        return Err(SessionError::NotFound);
    }
    tx.execute(
        "update selfdb.admin_sessions set revoked_at = now() \
         where admin_id = $1 and revoked_at is null and id is distinct from $2",
        &[&id, &keep],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_tokens_have_admin_claims() {
        let admin_id = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let claims = json!({
            "iss": ISSUER, "role": "service_role", "admin_id": admin_id.to_string(),
            "admin_email": "ops@example.com", "sid": sid.to_string(),
        });
        assert_eq!(
            AdminClaims::of(&claims),
            Some(AdminClaims {
                admin_id,
                email: "ops@example.com".into(),
                session_id: sid
            })
        );
        let mut service = claims.clone();
        service["iss"] = json!("selfdb");
        assert_eq!(AdminClaims::of(&service), None);
        let mut no_sid = claims;
        if let Some(map) = no_sid.as_object_mut() {
            map.remove("sid");
        }
        assert_eq!(AdminClaims::of(&no_sid), None);
    }
}
