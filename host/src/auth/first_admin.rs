//! The platform's first admin, created on first start.

use crate::db::{Database, DbError};

/// What start-up did about the first admin.
pub enum FirstAdmin {
    /// An admin existed already.
    Existing,
    /// Created with the operator's password.
    Created { email: String },
    /// Created with a generated password, which is shown once.
    Generated { email: String, password: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("password hashing: {0}")]
    Hash(String),
}

pub fn hash_password(password: &str) -> Result<String, AdminError> {
    super::passwords::hash(password).map_err(|e| AdminError::Hash(e.to_string()))
}

pub async fn ensure_first_admin(
    db: &Database,
    email: &str,
    password: Option<&str>,
) -> Result<FirstAdmin, AdminError> {
    let client = db.owner().get().await.map_err(DbError::from)?;
    let count: i64 = client
        .query_one("select count(*) from selfdb.admins", &[])
        .await?
        .get(0);
    if count > 0 {
        return Ok(FirstAdmin::Existing);
    }
    let (password, generated) = match password {
        Some(p) => (p.to_owned(), false),
        None => (crate::secrets::random_token(12), true),
    };
    let hash = hash_password(&password)?;
    let inserted = client
        .execute(
            "insert into selfdb.admins (email, password_hash) values ($1, $2) on conflict do nothing",
            &[&email, &hash],
        )
        .await?;
    if inserted == 0 {
        return Ok(FirstAdmin::Existing);
    }
    Ok(if generated {
        FirstAdmin::Generated {
            email: email.to_owned(),
            password,
        }
    } else {
        FirstAdmin::Created {
            email: email.to_owned(),
        }
    })
}
