//! Spin's SQLite (`fermyon:spin/sqlite@2.0.0`, `spin:sqlite/sqlite@3.1.0`,
//! which also serves 3.0.0): a database per app and label, a file under
//! the host's data directory (`spin/sqlite/{app}/{label}.db`), opened with
//! rusqlite. A label the component does not list in `sqlite_databases` is
//! `access-denied`; a listed one is created on first use.
//!
//! Unlike everything else SelfDB keeps, these files live on one host's
//! disk: hosts behind one balancer each have their own. Apps that need
//! shared data use the key-value stores or PostgreSQL.

use super::bindings::spin::sqlite::sqlite as v3;
use super::bindings::v2::sqlite as v2;
use super::handles::HandleTable;
use crate::spin::ComponentSpec;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, StreamReader,
};

/// Connections open at once in one invocation.
const MAX_CONNECTIONS: usize = 16;

/// Rows one statement may return to a component.
const MAX_ROWS: usize = 100_000;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

type Db = Arc<Mutex<rusqlite::Connection>>;

/// Per invocation: the connections it opened.
pub struct SqliteState {
    spec: Arc<ComponentSpec>,
    /// This app's directory of databases.
    dir: PathBuf,
    open: HandleTable<Db>,
    /// When the invocation's time is up: a statement still running then
    /// is interrupted (a blocking thread cannot be cancelled otherwise).
    deadline: Instant,
}

/// Errors both versions share, converted to each one's variant.
enum SqlError {
    AccessDenied,
    Io(String),
}

impl From<SqlError> for v2::Error {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::AccessDenied => v2::Error::AccessDenied,
            SqlError::Io(m) => v2::Error::Io(m),
        }
    }
}

impl From<SqlError> for v3::Error {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::AccessDenied => v3::Error::AccessDenied,
            SqlError::Io(m) => v3::Error::Io(m),
        }
    }
}

/// A value of either version.
enum Cell {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

struct Executed {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl SqliteState {
    pub fn new(spec: Arc<ComponentSpec>, root: PathBuf, time_ms: u64) -> Self {
        let dir = root.join(&*spec.app);
        Self {
            spec,
            dir,
            open: HandleTable::new(MAX_CONNECTIONS),
            deadline: Instant::now() + Duration::from_millis(time_ms),
        }
    }

    /// The database file for `label`, if the component may open it.
    fn path(&self, label: &str) -> Result<PathBuf, SqlError> {
        if !self.spec.sqlite_databases.iter().any(|l| l == label) {
            return Err(SqlError::AccessDenied);
        }
        // Labels are the manifest's, but still a file name: keep it plain.
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SqlError::Io(format!(
                "{label:?} is not a usable database name"
            )));
        }
        Ok(self.dir.join(format!("{label}.db")))
    }

    /// Checks an open and reserves its handle; the file is opened outside
    /// the store, then the table's `settle` keeps it.
    fn begin_open(&mut self, label: &str) -> Result<(PathBuf, Instant, u32), SqlError> {
        let path = self.path(label)?;
        let handle = self
            .open
            .reserve()
            .ok_or_else(|| SqlError::Io("too many connections opened".into()))?;
        Ok((path, self.deadline, handle))
    }

    fn db(&self, rep: u32) -> wasmtime::Result<Db> {
        self.open
            .get(rep)
            .cloned()
            .ok_or_else(|| wasmtime::format_err!("unknown SQLite connection handle"))
    }

    fn close(&mut self, rep: u32) {
        self.open.release(rep);
    }

    async fn open_label(&mut self, label: &str) -> Result<u32, SqlError> {
        let (path, deadline, handle) = self.begin_open(label)?;
        let db = open(path, deadline).await;
        self.open.settle(handle, db)
    }
}

fn io(err: impl std::fmt::Display) -> SqlError {
    SqlError::Io(err.to_string())
}

/// Opens a database file, confined to itself: no `ATTACH` (which would
/// reach other apps' files, or write anywhere with `VACUUM INTO`), the
/// defensive mode against corrupting the file, and statements interrupted
/// at the invocation's deadline.
async fn open(path: PathBuf, deadline: Instant) -> Result<Db, SqlError> {
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut conn = rusqlite::Connection::open(&path).map_err(io)?;
        conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(io)?;
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(io)?;
        conn.progress_handler(1000, Some(move || Instant::now() >= deadline))
            .map_err(io)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(io)?;
        // Readers do not wait for a writer, nor a writer for readers.
        conn.query_row("pragma journal_mode = wal", [], |_| Ok(()))
            .map_err(io)?;
        Ok(Arc::new(Mutex::new(conn)))
    })
    .await
    .map_err(io)?
}

async fn execute(db: Db, statement: String, params: Vec<Cell>) -> Result<Executed, SqlError> {
    tokio::task::spawn_blocking(move || {
        let conn = db.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn.prepare(&statement).map_err(io)?;
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let values: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                Cell::Integer(i) => rusqlite::types::Value::Integer(i),
                Cell::Real(f) => rusqlite::types::Value::Real(f),
                Cell::Text(t) => rusqlite::types::Value::Text(t),
                Cell::Blob(b) => rusqlite::types::Value::Blob(b),
                Cell::Null => rusqlite::types::Value::Null,
            })
            .collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(io)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(io)? {
            if out.len() >= MAX_ROWS {
                return Err(SqlError::Io(format!(
                    "the statement returned more than {MAX_ROWS} rows"
                )));
            }
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                use rusqlite::types::ValueRef;
                cells.push(match row.get_ref(i).map_err(io)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Integer(v),
                    ValueRef::Real(v) => Cell::Real(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                });
            }
            out.push(cells);
        }
        Ok(Executed { columns, rows: out })
    })
    .await
    .map_err(io)?
}

/// Off the async workers: a statement of another task of the same guest
/// may hold the connection.
async fn last_insert_rowid(db: Db) -> wasmtime::Result<i64> {
    Ok(tokio::task::spawn_blocking(move || {
        db.lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_insert_rowid()
    })
    .await?)
}

async fn changes(db: Db) -> wasmtime::Result<u64> {
    Ok(
        tokio::task::spawn_blocking(move || db.lock().unwrap_or_else(|p| p.into_inner()).changes())
            .await?,
    )
}

macro_rules! value_conversions {
    ($version:ident) => {
        impl From<$version::Value> for Cell {
            fn from(v: $version::Value) -> Self {
                match v {
                    $version::Value::Integer(i) => Cell::Integer(i),
                    $version::Value::Real(f) => Cell::Real(f),
                    $version::Value::Text(t) => Cell::Text(t),
                    $version::Value::Blob(b) => Cell::Blob(b),
                    $version::Value::Null => Cell::Null,
                }
            }
        }

        impl From<Cell> for $version::Value {
            fn from(c: Cell) -> Self {
                match c {
                    Cell::Integer(i) => $version::Value::Integer(i),
                    Cell::Real(f) => $version::Value::Real(f),
                    Cell::Text(t) => $version::Value::Text(t),
                    Cell::Blob(b) => $version::Value::Blob(b),
                    Cell::Null => $version::Value::Null,
                }
            }
        }

        impl From<Executed> for $version::QueryResult {
            fn from(e: Executed) -> Self {
                $version::QueryResult {
                    columns: e.columns,
                    rows: e
                        .rows
                        .into_iter()
                        .map(|cells| $version::RowResult {
                            values: cells.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }
    };
}

value_conversions!(v2);
value_conversions!(v3);

/// `connection` as 2.0 and 3.x's synchronous form declare it, plus what
/// only a version has.
macro_rules! sync_connection {
    ($version:ident { $($extra:tt)* }) => {
        impl $version::Host for SqliteState {}

        impl $version::HostConnection for SqliteState {
            async fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<$version::Connection>, $version::Error>> {
                Ok(self
                    .open_label(&database)
                    .await
                    .map(Resource::new_own)
                    .map_err(Into::into))
            }

            async fn execute(
                &mut self,
                connection: Resource<$version::Connection>,
                statement: String,
                parameters: Vec<$version::Value>,
            ) -> wasmtime::Result<Result<$version::QueryResult, $version::Error>> {
                let db = self.db(connection.rep())?;
                let params = parameters.into_iter().map(Into::into).collect();
                Ok(execute(db, statement, params)
                    .await
                    .map(Into::into)
                    .map_err(Into::into))
            }

            async fn drop(
                &mut self,
                connection: Resource<$version::Connection>,
            ) -> wasmtime::Result<()> {
                self.close(connection.rep());
                Ok(())
            }

            $($extra)*
        }
    };
}

sync_connection!(v2 {});
sync_connection!(v3 {
    async fn last_insert_rowid(
        &mut self,
        connection: Resource<v3::Connection>,
    ) -> wasmtime::Result<i64> {
        last_insert_rowid(self.db(connection.rep())?).await
    }

    async fn changes(&mut self, connection: Resource<v3::Connection>) -> wasmtime::Result<u64> {
        changes(self.db(connection.rep())?).await
    }
});

/// 3.1's async functions reach the state through an [`Accessor`].
pub struct SqliteV3;

impl HasData for SqliteV3 {
    type Data<'a> = &'a mut SqliteState;
}

impl<T: Send> v3::HostConnectionWithStore<T> for SqliteV3 {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<v3::Connection>, v3::Error>> {
        let begun = accessor.with(|mut access| access.get().begin_open(&database));
        let (path, deadline, handle) = match begun {
            Ok(begun) => begun,
            Err(err) => return Ok(Err(err.into())),
        };
        let db = open(path, deadline).await;
        Ok(accessor
            .with(|mut access| access.get().open.settle(handle, db))
            .map(Resource::new_own)
            .map_err(Into::into))
    }

    #[allow(clippy::type_complexity)]
    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<v3::Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<String>,
                StreamReader<v3::RowResult>,
                FutureReader<Result<(), v3::Error>>,
            ),
            v3::Error,
        >,
    > {
        let db = accessor.with(|mut access| access.get().db(connection.rep()))?;
        let params = parameters.into_iter().map(Into::into).collect();
        let executed = match execute(db, statement, params).await {
            Ok(executed) => executed,
            Err(err) => return Ok(Err(err.into())),
        };
        // Read whole (bounded by MAX_ROWS), then streamed to the guest.
        let result: v3::QueryResult = executed.into();
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, result.rows)?;
            let done = FutureReader::new(&mut access, async {
                Ok::<_, wasmtime::Error>(Ok::<(), v3::Error>(()))
            })?;
            Ok(Ok((result.columns, rows, done)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<v3::Connection>,
    ) -> wasmtime::Result<i64> {
        let db = accessor.with(|mut access| access.get().db(connection.rep()))?;
        last_insert_rowid(db).await
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<v3::Connection>,
    ) -> wasmtime::Result<u64> {
        let db = accessor.with(|mut access| access.get().db(connection.rep()))?;
        changes(db).await
    }
}

pub fn link<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SqliteState,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, HasSelf<SqliteState>>(linker, get)?;
    v3::add_to_linker::<T, SqliteV3>(linker, get)
}
