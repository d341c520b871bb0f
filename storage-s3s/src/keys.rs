//! S3 access keys: issued and revoked by an admin, each acting as one user
//! or as the service role. SigV4 verification needs the secret itself, so
//! it is stored (in the owner-only `selfdb` schema) and cached briefly here.

use crate::access::{Access, Pools};
use crate::error::StorageResult;
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a key looked up stays cached: a key revoked through another
/// host stops working within this time (at once on the host that revoked
/// it).
const CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, serde::Serialize)]
pub struct AccessKey {
    pub access_key_id: String,
    /// Only returned when the key is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    pub user_id: Option<uuid::Uuid>,
    pub description: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
struct Cached {
    /// `None`: no such key (or revoked).
    found: Option<(String, Option<uuid::Uuid>)>,
    at: Instant,
}

pub struct KeyRegistry {
    pools: Pools,
    cache: Mutex<HashMap<String, Cached>>,
}

fn new_access_key_id() -> String {
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let tail: String = (0..16)
        .map(|_| UPPER[rng.random_range(0..UPPER.len())] as char)
        .collect();
    format!("SDBK{tail}")
}

impl KeyRegistry {
    pub fn new(pools: Pools) -> Self {
        Self {
            pools,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn create(
        &self,
        user_id: Option<uuid::Uuid>,
        description: &str,
    ) -> StorageResult<AccessKey> {
        let id = new_access_key_id();
        let secret = Alphanumeric.sample_string(&mut rand::rng(), 40);
        let client = self.pools.owner.get().await?;
        let row = client
            .query_one(
                "insert into selfdb.s3_access_keys (access_key_id, secret, user_id, description) \
                 values ($1, $2, $3, $4) returning created_at",
                &[&id, &secret, &user_id, &description],
            )
            .await?;
        Ok(AccessKey {
            access_key_id: id,
            secret_access_key: Some(secret),
            user_id,
            description: description.to_owned(),
            created_at: row.get(0),
        })
    }

    /// A key with exactly this id and secret, created when missing: how the
    /// host keeps the service-role key it prints stable across restarts.
    pub async fn ensure(&self, id: &str, secret: &str, description: &str) -> StorageResult<()> {
        let client = self.pools.owner.get().await?;
        client
            .execute(
                "insert into selfdb.s3_access_keys (access_key_id, secret, description) \
                 values ($1, $2, $3) on conflict (access_key_id) do nothing",
                &[&id, &secret, &description],
            )
            .await?;
        Ok(())
    }

    pub async fn list(&self) -> StorageResult<Vec<AccessKey>> {
        let client = self.pools.owner.get().await?;
        let rows = client
            .query(
                "select access_key_id, user_id, description, created_at from selfdb.s3_access_keys \
                 where revoked_at is null order by created_at",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AccessKey {
                access_key_id: r.get(0),
                secret_access_key: None,
                user_id: r.get(1),
                description: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    /// Revokes a key; false when there was no such active key.
    pub async fn revoke(&self, id: &str) -> StorageResult<bool> {
        let client = self.pools.owner.get().await?;
        let n = client
            .execute(
                "update selfdb.s3_access_keys set revoked_at = now() \
                 where access_key_id = $1 and revoked_at is null",
                &[&id],
            )
            .await?;
        self.forget(id);
        Ok(n > 0)
    }

    fn forget(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
    }

    /// The secret and the user of an active key.
    pub async fn lookup(&self, id: &str) -> StorageResult<Option<(String, Option<uuid::Uuid>)>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(hit) = cache.get(id) {
                if hit.at.elapsed() < CACHE_TTL {
                    return Ok(hit.found.clone());
                }
            }
        }
        let client = self.pools.owner.get().await?;
        let found = client
            .query_opt(
                "select secret, user_id from selfdb.s3_access_keys \
                 where access_key_id = $1 and revoked_at is null",
                &[&id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(
                id.to_owned(),
                Cached {
                    found: found.clone(),
                    at: Instant::now(),
                },
            );
        }
        Ok(found)
    }

    /// Who a verified key acts as.
    pub async fn access_for(&self, id: &str) -> StorageResult<Option<Access>> {
        Ok(self.lookup(id).await?.map(|(_, user)| match user {
            Some(user) => Access::user(&user.to_string()),
            None => Access::Service,
        }))
    }
}
