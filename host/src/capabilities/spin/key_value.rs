//! Spin's key-value stores (`fermyon:spin/key-value@2.0.0`,
//! `spin:key-value/key-value@3.0.0`), kept in PostgreSQL so every host of
//! the database sees the same data. A store is the app's: every component
//! that lists its label in `key_value_stores` shares it; a label it does
//! not list is `access-denied`. Writes commit at once, outside the
//! invocation's transaction: Spin's stores are not transactional, and a
//! value set before a 500 stays set.

use super::bindings::spin::key_value::key_value as v3;
use super::bindings::v2::key_value as v2;
use super::handles::HandleTable;
use crate::spin::ComponentSpec;
use deadpool_postgres::Pool;
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

/// Stores open at once in one invocation, as Spin's default table.
const MAX_OPEN_STORES: usize = 256;

/// Largest `get-keys` answer, in bytes of keys (Spin buffers up to 128 MiB;
/// an invocation's memory is far smaller).
const MAX_KEYS_BYTES: usize = 16 << 20;

/// Per invocation: the stores it opened (their labels, by handle).
pub struct KeyValueState {
    spec: Arc<ComponentSpec>,
    pool: Pool,
    open: HandleTable<String>,
}

/// Errors common to both versions, converted to each one's variant.
enum KvError {
    TableFull,
    AccessDenied,
    Other(String),
}

impl From<KvError> for v2::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::TableFull => v2::Error::StoreTableFull,
            KvError::AccessDenied => v2::Error::AccessDenied,
            KvError::Other(m) => v2::Error::Other(m),
        }
    }
}

impl From<KvError> for v3::Error {
    fn from(e: KvError) -> Self {
        match e {
            KvError::TableFull => v3::Error::StoreTableFull,
            KvError::AccessDenied => v3::Error::AccessDenied,
            KvError::Other(m) => v3::Error::Other(m),
        }
    }
}

fn other(err: impl std::fmt::Display) -> KvError {
    KvError::Other(format!("key-value store: {err}"))
}

impl KeyValueState {
    pub fn new(spec: Arc<ComponentSpec>, pool: Pool) -> Self {
        Self {
            spec,
            pool,
            open: HandleTable::new(MAX_OPEN_STORES),
        }
    }

    fn open(&mut self, label: String) -> Result<u32, KvError> {
        if !self.spec.key_value_stores.contains(&label) {
            return Err(KvError::AccessDenied);
        }
        self.open.insert(label).ok_or(KvError::TableFull)
    }

    /// What an operation on handle `rep` needs: the pool and the store's
    /// key. A handle this state never gave out is the host's error (a trap).
    fn store(&self, rep: u32) -> wasmtime::Result<Store> {
        let label = self
            .open
            .get(rep)
            .ok_or_else(|| wasmtime::format_err!("unknown key-value store handle"))?;
        Ok(Store {
            pool: self.pool.clone(),
            app: self.spec.app.clone(),
            label: label.clone(),
        })
    }

    fn close(&mut self, rep: u32) {
        self.open.release(rep);
    }
}

/// One open store: the operations, shared by both versions.
struct Store {
    pool: Pool,
    app: Arc<str>,
    label: String,
}

impl Store {
    async fn client(&self) -> Result<deadpool_postgres::Object, KvError> {
        self.pool.get().await.map_err(other)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select value from selfdb.spin_key_value where app = $1 and store = $2 and key = $3",
                &[&&*self.app, &self.label, &key],
            )
            .await
            .map_err(other)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let client = self.client().await?;
        client
            .execute(
                "insert into selfdb.spin_key_value (app, store, key, value) values ($1, $2, $3, $4) \
                 on conflict (app, store, key) do update set value = excluded.value, updated_at = now()",
                &[&&*self.app, &self.label, &key, &value],
            )
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        let client = self.client().await?;
        client
            .execute(
                "delete from selfdb.spin_key_value where app = $1 and store = $2 and key = $3",
                &[&&*self.app, &self.label, &key],
            )
            .await
            .map_err(other)?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "select exists (select 1 from selfdb.spin_key_value where app = $1 and store = $2 and key = $3)",
                &[&&*self.app, &self.label, &key],
            )
            .await
            .map_err(other)?;
        Ok(row.get(0))
    }

    async fn keys(&self) -> Result<Vec<String>, KvError> {
        use futures::TryStreamExt;
        let client = self.client().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&&*self.app, &self.label];
        // Read row by row, so a store with too many keys stops at the cap
        // instead of being held whole first.
        let stream = client
            .query_raw(
                "select key from selfdb.spin_key_value where app = $1 and store = $2 order by key",
                params,
            )
            .await
            .map_err(other)?;
        futures::pin_mut!(stream);
        let mut total = 0;
        let mut keys = Vec::new();
        while let Some(row) = stream.try_next().await.map_err(other)? {
            let key: String = row.try_get(0).map_err(other)?;
            total += key.len();
            if total > MAX_KEYS_BYTES {
                return Err(KvError::Other(format!(
                    "the store's keys are more than {MAX_KEYS_BYTES} bytes"
                )));
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

impl v2::Host for KeyValueState {}

impl v2::HostStore for KeyValueState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<v2::Store>, v2::Error>> {
        Ok(self.open(label).map(Resource::new_own).map_err(Into::into))
    }

    async fn get(
        &mut self,
        store: Resource<v2::Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        let store = self.store(store.rep())?;
        Ok(store.get(&key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        store: Resource<v2::Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let store = self.store(store.rep())?;
        Ok(store.set(&key, &value).await.map_err(Into::into))
    }

    async fn delete(
        &mut self,
        store: Resource<v2::Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let store = self.store(store.rep())?;
        Ok(store.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        &mut self,
        store: Resource<v2::Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, v2::Error>> {
        let store = self.store(store.rep())?;
        Ok(store.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(
        &mut self,
        store: Resource<v2::Store>,
    ) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        let store = self.store(store.rep())?;
        Ok(store.keys().await.map_err(Into::into))
    }

    async fn drop(&mut self, store: Resource<v2::Store>) -> wasmtime::Result<()> {
        self.close(store.rep());
        Ok(())
    }
}

/// The 3.0 interface's functions are async: they reach their state
/// through an [`Accessor`], and must not hold it across an await.
pub struct KeyValueV3;

impl HasData for KeyValueV3 {
    type Data<'a> = &'a mut KeyValueState;
}

impl v3::Host for KeyValueState {}

impl v3::HostStore for KeyValueState {
    async fn drop(&mut self, store: Resource<v3::Store>) -> wasmtime::Result<()> {
        self.close(store.rep());
        Ok(())
    }
}

impl<T: Send> v3::HostStoreWithStore<T> for KeyValueV3 {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<v3::Store>, v3::Error>> {
        Ok(accessor.with(|mut access| {
            access
                .get()
                .open(label)
                .map(Resource::new_own)
                .map_err(Into::into)
        }))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<v3::Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v3::Error>> {
        let store = accessor.with(|mut access| access.get().store(store.rep()))?;
        Ok(store.get(&key).await.map_err(Into::into))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<v3::Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let store = accessor.with(|mut access| access.get().store(store.rep()))?;
        Ok(store.set(&key, &value).await.map_err(Into::into))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<v3::Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        let store = accessor.with(|mut access| access.get().store(store.rep()))?;
        Ok(store.delete(&key).await.map_err(Into::into))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<v3::Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, v3::Error>> {
        let store = accessor.with(|mut access| access.get().store(store.rep()))?;
        Ok(store.exists(&key).await.map_err(Into::into))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<v3::Store>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), v3::Error>>)> {
        let store = accessor.with(|mut access| access.get().store(store.rep()))?;
        // Read whole (bounded), then streamed to the guest: the outcome
        // goes in the future, as the interface has it.
        let (keys, outcome) = match store.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(err) => (Vec::new(), Err(v3::Error::from(err))),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let outcome =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )?;
            Ok((keys, outcome))
        })
    }
}

/// Links both versions; `get` finds the state in the store.
pub fn link<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut KeyValueState,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, wasmtime::component::HasSelf<KeyValueState>>(linker, get)?;
    v3::add_to_linker::<T, KeyValueV3>(linker, get)
}
