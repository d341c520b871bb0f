//! Who a storage operation runs as. Metadata statements run in a
//! transaction under the caller's role and claims, so the RLS policies on
//! `storage.objects` and `storage.buckets` decide, as on Supabase.

use deadpool_postgres::{Object, Pool};

#[derive(Debug, Clone)]
pub enum Access {
    /// The service key or a service-role S3 key: bypasses RLS.
    Service,
    /// The store itself, for what a signed URL already authorised: the
    /// owner role, which RLS does not apply to.
    System,
    /// No user: the `anon` role.
    Anon { claims: String },
    /// A signed-in user (`authenticated`), or an S3 key issued to a user.
    User { user_id: String, claims: String },
}

impl Access {
    pub fn anonymous() -> Self {
        Access::Anon {
            claims: r#"{"role":"anon"}"#.into(),
        }
    }

    /// An S3 access key issued to `user_id`: the claims a user's access
    /// token would carry for RLS.
    pub fn user(user_id: &str) -> Self {
        let claims = serde_json::json!({ "sub": user_id, "role": "authenticated" });
        Access::User {
            user_id: user_id.to_owned(),
            claims: claims.to_string(),
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Access::Service | Access::System => "service_role",
            Access::Anon { .. } => "anon",
            Access::User { .. } => "authenticated",
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Access::User { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    fn claims(&self) -> &str {
        match self {
            Access::Service | Access::System => r#"{"role":"service_role"}"#,
            Access::Anon { claims } | Access::User { claims, .. } => claims,
        }
    }
}

/// The two pools the host owns: `owner` for the store's own bookkeeping and
/// service-role work, `api` (a login role that can only become `anon` or
/// `authenticated`) for everyone else.
#[derive(Clone)]
pub struct Pools {
    pub owner: Pool,
    pub api: Pool,
}

/// A transaction; dropped unfinished, its connection is discarded rather
/// than returned to the pool with the transaction open.
pub struct Tx {
    client: Option<Object>,
}

impl Pools {
    /// A transaction as `access`.
    pub async fn begin(&self, access: &Access) -> Result<Tx, crate::StorageError> {
        let pool = match access {
            Access::System => return self.begin_system().await,
            Access::Service => &self.owner,
            _ => &self.api,
        };
        let client = pool.get().await?;
        let tx = Tx {
            client: Some(client),
        };
        let c = tx.client();
        c.batch_execute("begin").await?;
        c.execute(
            "select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)",
            &[&access.claims(), &access.role()],
        )
        .await?;
        Ok(tx)
    }

    /// A transaction as the platform owner, for the store's bookkeeping.
    pub async fn begin_system(&self) -> Result<Tx, crate::StorageError> {
        let client = self.owner.get().await?;
        let tx = Tx {
            client: Some(client),
        };
        tx.client().batch_execute("begin").await?;
        Ok(tx)
    }
}

impl Tx {
    pub fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a finished transaction is never used again")
    }

    pub async fn commit(mut self) -> Result<(), crate::StorageError> {
        if let Some(client) = self.client.take() {
            if let Err(err) = client.batch_execute("commit").await {
                let _ = Object::take(client);
                return Err(err.into());
            }
        }
        Ok(())
    }
}

impl Tx {
    pub async fn rollback(mut self) -> Result<(), crate::StorageError> {
        if let Some(client) = self.client.take() {
            if let Err(err) = client.batch_execute("rollback").await {
                let _ = Object::take(client);
                return Err(err.into());
            }
        }
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = Object::take(client);
        }
    }
}
