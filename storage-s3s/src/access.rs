//! Who a storage operation runs as. Metadata statements run in a
//! transaction under the caller's role and claims, so the RLS policies on
//! `storage.objects` and `storage.buckets` decide, as on Supabase.

use deadpool_postgres::{Object, Pool};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Sets the caller's claims and role for the rest of the transaction, as
/// `SET LOCAL` would.
const SETUP_SQL: &str =
    "select set_config('request.jwt.claims', $1, true), set_config('role', $2, true)";

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
    fn pool_for(&self, access: &Access) -> &Pool {
        match access {
            Access::System | Access::Service => &self.owner,
            _ => &self.api,
        }
    }

    /// A transaction as `access`. `begin` and the role switch travel in one
    /// round trip.
    pub async fn begin(&self, access: &Access) -> Result<Tx, crate::StorageError> {
        self.begin_storing(access, None).await
    }

    /// As [`Pools::begin`], with an inline object's bytes stored first by
    /// the pool's login role (as [`Pools::once_storing`] does): a
    /// transaction that rolls back takes the bytes with it.
    pub async fn begin_storing(
        &self,
        access: &Access,
        inline: Option<(&str, &[u8])>,
    ) -> Result<Tx, crate::StorageError> {
        if matches!(access, Access::System) && inline.is_none() {
            return self.begin_system().await;
        }
        let client = self.pool_for(access).get().await?;
        let tx = Tx {
            client: Some(client),
        };
        let c = tx.client();
        let store = match inline {
            Some(_) => Some(c.prepare_cached(crate::inline::STORE_SQL).await?),
            None => None,
        };
        let setup = c.prepare_cached(SETUP_SQL).await?;
        let claims = access.claims();
        let role = access.role();
        let setup_params: [&(dyn ToSql + Sync); 2] = [&claims, &role];
        let as_caller = !matches!(access, Access::System);
        let (begun, stored, set) = futures::join!(
            c.batch_execute("begin"),
            async {
                match (&store, inline) {
                    (Some(store), Some((version, bytes))) => {
                        c.execute(store, &[&version, &bytes]).await
                    }
                    _ => Ok(0),
                }
            },
            async {
                match as_caller {
                    true => c.execute(&setup, &setup_params).await,
                    false => Ok(0),
                }
            }
        );
        begun?;
        stored?;
        set?;
        Ok(tx)
    }

    /// One statement in a transaction of its own as `access` (the outer
    /// error is the connection's, the inner the statement's): `begin`, the
    /// role switch, the statement and `commit` go out together, so it costs
    /// one round trip once the statement is prepared on the connection.
    /// PostgreSQL runs pipelined messages in order, and a `commit` after a
    /// failed statement rolls back.
    pub async fn once(
        &self,
        access: &Access,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>, crate::StorageError> {
        self.pipelined(access, None, sql, params).await
    }

    /// As [`Pools::once`], with an inline object's bytes stored first, in
    /// the same transaction and round trip, by the pool's login role
    /// (before the role switch): the bytes commit with the row or not at
    /// all, and request roles hold no privilege on where they are kept.
    pub async fn once_storing(
        &self,
        access: &Access,
        inline: (&str, &[u8]),
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>, crate::StorageError> {
        self.pipelined(access, Some(inline), sql, params).await
    }

    async fn pipelined(
        &self,
        access: &Access,
        inline: Option<(&str, &[u8])>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>, crate::StorageError> {
        let client = self.pool_for(access).get().await?;
        let statement = match client.prepare_cached(sql).await {
            Ok(statement) => statement,
            Err(err) => return Ok(Err(err)),
        };
        let as_caller = !matches!(access, Access::System);
        if !as_caller && inline.is_none() {
            return Ok(client.query(&statement, params).await);
        }
        let store = match inline {
            Some(_) => Some(client.prepare_cached(crate::inline::STORE_SQL).await?),
            None => None,
        };
        let setup = client.prepare_cached(SETUP_SQL).await?;
        let claims = access.claims();
        let role = access.role();
        let setup_params: [&(dyn ToSql + Sync); 2] = [&claims, &role];
        let (begun, stored, set, rows, committed) = futures::join!(
            client.batch_execute("begin"),
            async {
                match (&store, inline) {
                    (Some(store), Some((version, bytes))) => {
                        client.execute(store, &[&version, &bytes]).await
                    }
                    _ => Ok(0),
                }
            },
            async {
                match as_caller {
                    true => client.execute(&setup, &setup_params).await,
                    false => Ok(0),
                }
            },
            client.query(&statement, params),
            client.batch_execute("commit"),
        );
        if let Err(err) = begun.and(stored).and(set) {
            // What the transaction did is unknown: never pool this connection.
            let _ = Object::take(client);
            return Err(err.into());
        }
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => return Ok(Err(err)),
        };
        committed?;
        Ok(Ok(rows))
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
