//! Spin's PostgreSQL (`fermyon:spin/postgres@2.0.0`,
//! `spin:postgres/postgres@3.0.0`, `spin:postgres/postgres@4.2.0`, which
//! also serves 4.0.0 and 4.1.0).
//!
//! - An address naming SelfDB's own database (its host, port and database
//!   name; user and password are ignored) runs in a transaction as the
//!   caller, with their role and claims, as the `db` interface does: row
//!   level security decides every row, and the transaction commits with
//!   the invocation (rolled back on a 5xx or a trap).
//! - Any other address must be allowed by the component's
//!   `allowed_outbound_hosts` (`postgres://host:port`), and is a plain
//!   connection of its own (no TLS).
//!
//! Parameters travel as PostgreSQL text and columns are read with the
//! data API's decoder; each version's values are converted from those.

use super::bindings::spin::postgres3_0_0::postgres as v3;
use super::bindings::spin::postgres4_2_0::postgres as v4;
use super::bindings::v2::{postgres as v2, rdbms_types as r2};
use super::handles::HandleTable;
use crate::auth::Principal;
use crate::db::invocation::{InvocationTx, StatementError, MAX_ROWS};
use crate::db::values::{column_value, SqlValue};
use crate::db::Database;
use crate::spin::ComponentSpec;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_postgres::config::Host;
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, StreamReader,
};

/// Connections open at once in one invocation.
const MAX_CONNECTIONS: usize = 16;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per invocation: the caller's transaction on SelfDB's own database
/// (opened on first use) and the connections the component opened.
pub struct PostgresState {
    spec: Arc<ComponentSpec>,
    own: tokio_postgres::Config,
    tx: Arc<Mutex<InvocationTx>>,
    open: HandleTable<Conn>,
    builders: HandleTable<Builder>,
}

#[derive(Clone)]
enum Conn {
    /// SelfDB's database, in the invocation's transaction.
    Own(Arc<Mutex<InvocationTx>>),
    External(Arc<tokio_postgres::Client>),
}

/// A failure, before it is said in a version's terms.
enum PgError {
    ConnectionFailed(String),
    BadParameter(String),
    Query(StatementError),
    Other(String),
}

/// A result set: columns (name, PostgreSQL type name) and rows.
struct Rows {
    columns: Vec<(String, String)>,
    rows: Vec<Vec<SqlValue>>,
}

impl PostgresState {
    pub fn new(
        spec: Arc<ComponentSpec>,
        db: &Database,
        principal: Arc<Principal>,
        time_ms: u64,
    ) -> Self {
        Self {
            spec,
            own: db.owner_config().clone(),
            tx: Arc::new(Mutex::new(InvocationTx::new(
                db.clone(),
                principal,
                time_ms,
            ))),
            open: HandleTable::new(MAX_CONNECTIONS),
            builders: HandleTable::new(MAX_CONNECTIONS),
        }
    }

    fn builder_address(&self, rep: u32) -> wasmtime::Result<String> {
        self.builders
            .get(rep)
            .map(|b| b.address.clone())
            .ok_or_else(|| wasmtime::format_err!("unknown PostgreSQL connection builder handle"))
    }

    /// Ends the caller's transaction with the invocation. A statement a
    /// WASI 0.3 guest left running past the invocation's end still holds
    /// the transaction: it is not waited for, and is rolled back when the
    /// store drops it (its connection is discarded, not pooled).
    pub async fn finish(&mut self, success: bool) -> Result<(), String> {
        match self.tx.try_lock() {
            Ok(mut tx) => tx.finish(success).await.map(drop).map_err(|e| e.message),
            Err(_) if success => Err(
                "a PostgreSQL statement was still running when the invocation ended; its transaction was rolled back".into(),
            ),
            Err(_) => Ok(()),
        }
    }

    /// What `open(address)` connects to, checked against the allow-list;
    /// the connection itself is made outside the store.
    fn target(&self, address: &str) -> Result<Target, PgError> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| PgError::ConnectionFailed(format!("invalid address: {e}")))?;
        // `hostaddr` would connect somewhere other than the host checked
        // below.
        if !config.get_hostaddrs().is_empty() {
            return Err(PgError::ConnectionFailed(
                "addresses with hostaddr are not permitted: name the host".into(),
            ));
        }
        if is_same_database(&config, &self.own) {
            return Ok(Target::Own(self.tx.clone()));
        }
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let Host::Tcp(name) = host else {
                return Err(PgError::ConnectionFailed(
                    "unix socket addresses are not permitted".into(),
                ));
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let allowed = ["postgres", "postgresql"]
                .iter()
                .any(|scheme| self.spec.allowed_hosts.allows(scheme, name, port));
            if !allowed {
                return Err(PgError::ConnectionFailed(format!(
                    "address postgres://{name}:{port} is not permitted (allowed_outbound_hosts)"
                )));
            }
        }
        if config.get_hosts().is_empty() {
            return Err(PgError::ConnectionFailed(
                "the address names no host".into(),
            ));
        }
        Ok(Target::External(Box::new(config)))
    }

    /// Checks an open and reserves its handle; the connection is made
    /// outside the store, then the table's `settle` keeps it.
    fn begin_open(&mut self, address: &str) -> Result<(Target, u32), PgError> {
        let target = self.target(address)?;
        let handle = self
            .open
            .reserve()
            .ok_or_else(|| PgError::ConnectionFailed("too many connections opened".into()))?;
        Ok((target, handle))
    }

    fn conn(&self, rep: u32) -> wasmtime::Result<Conn> {
        self.open
            .get(rep)
            .cloned()
            .ok_or_else(|| wasmtime::format_err!("unknown PostgreSQL connection handle"))
    }

    fn close(&mut self, rep: u32) {
        self.open.release(rep);
    }

    async fn open_address(&mut self, address: &str) -> Result<u32, PgError> {
        let (target, handle) = self.begin_open(address)?;
        let conn = connect(target).await;
        self.open.settle(handle, conn)
    }
}

enum Target {
    Own(Arc<Mutex<InvocationTx>>),
    External(Box<tokio_postgres::Config>),
}

async fn connect(target: Target) -> Result<Conn, PgError> {
    match target {
        Target::Own(tx) => Ok(Conn::Own(tx)),
        Target::External(mut config) => {
            let config = &mut *config;
            config.connect_timeout(CONNECT_TIMEOUT);
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| PgError::ConnectionFailed(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(%err, "a Spin app's PostgreSQL connection ended");
                }
            });
            Ok(Conn::External(Arc::new(client)))
        }
    }
}

/// Whether `address` names the database `own` connects to: the same host
/// (loopback names are one), port and database.
fn is_same_database(address: &tokio_postgres::Config, own: &tokio_postgres::Config) -> bool {
    let loopback = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "::1");
    let name = |h: &Host| match h {
        Host::Tcp(name) => Some(
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
        Host::Unix(_) => None,
    };
    let port = |c: &tokio_postgres::Config| c.get_ports().first().copied().unwrap_or(5432);
    let dbname = |c: &tokio_postgres::Config| {
        c.get_dbname()
            .or(c.get_user())
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let same_host = address.get_hosts().iter().filter_map(name).any(|a| {
        own.get_hosts()
            .iter()
            .filter_map(name)
            .any(|o| a == o || (loopback(&a) && loopback(&o)))
    });
    same_host && port(address) == port(own) && dbname(address) == dbname(own)
}

fn statement_error(err: tokio_postgres::Error) -> PgError {
    match err.as_db_error() {
        Some(db) => PgError::Query(StatementError {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            details: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
        }),
        None => PgError::Other(err.to_string()),
    }
}

async fn query(conn: Conn, sql: String, params: Vec<SqlValue>) -> Result<Rows, PgError> {
    match conn {
        Conn::Own(tx) => {
            let rows = tx
                .lock()
                .await
                .query(&sql, &params)
                .await
                .map_err(PgError::Query)?;
            Ok(Rows {
                columns: rows.columns,
                rows: rows.rows,
            })
        }
        Conn::External(client) => {
            use futures::TryStreamExt;
            let statement = client.prepare(&sql).await.map_err(statement_error)?;
            let columns = statement
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_().name().to_owned()))
                .collect();
            // Read row by row, so a huge result stops at the cap instead
            // of being held whole first.
            let stream = client
                .query_raw(&statement, params.iter())
                .await
                .map_err(statement_error)?;
            futures::pin_mut!(stream);
            let mut rows = Vec::new();
            while let Some(row) = stream.try_next().await.map_err(statement_error)? {
                if rows.len() >= MAX_ROWS {
                    return Err(PgError::Other(format!(
                        "the query returned more than {MAX_ROWS} rows; add a LIMIT"
                    )));
                }
                let mut values = Vec::with_capacity(row.len());
                for i in 0..row.len() {
                    values.push(column_value(&row, i).map_err(|e| PgError::Other(e.to_string()))?);
                }
                rows.push(values);
            }
            Ok(Rows { columns, rows })
        }
    }
}

async fn execute(conn: Conn, sql: String, params: Vec<SqlValue>) -> Result<u64, PgError> {
    match conn {
        Conn::Own(tx) => tx
            .lock()
            .await
            .execute(&sql, &params)
            .await
            .map_err(PgError::Query),
        Conn::External(client) => {
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p as _).collect();
            client.execute(&sql, &refs).await.map_err(statement_error)
        }
    }
}

fn query_failed_text(err: &StatementError) -> String {
    match &err.details {
        Some(details) => format!("{} ({}): {details}", err.message, err.code),
        None => format!("{} ({})", err.message, err.code),
    }
}

// Values shared by the versions: dates and times as PostgreSQL text.

fn date_text((y, m, d): (i32, u8, u8)) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_text((h, mi, s, ns): (u8, u8, u8, u32)) -> String {
    format!("{h:02}:{mi:02}:{s:02}.{ns:09}")
}

fn datetime_text((y, m, d, h, mi, s, ns): (i32, u8, u8, u8, u8, u8, u32)) -> String {
    format!("{} {}", date_text((y, m, d)), time_text((h, mi, s, ns)))
}

fn timestamp_text(seconds: i64) -> Result<String, PgError> {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339())
        .ok_or_else(|| PgError::BadParameter(format!("timestamp {seconds} is out of range")))
}

fn parse_date(text: &str) -> Option<(i32, u8, u8)> {
    let d = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    use chrono::Datelike;
    Some((d.year(), d.month() as u8, d.day() as u8))
}

fn parse_time(text: &str) -> Option<(u8, u8, u8, u32)> {
    let t = chrono::NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?;
    use chrono::Timelike;
    Some((
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    ))
}

fn parse_datetime(text: &str) -> Option<(i32, u8, u8, u8, u8, u8, u32)> {
    // `timestamp` reads as `YYYY-MM-DDTHH:MM:SS.f`; `timestamptz` as RFC
    // 3339, taken in UTC.
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.naive_utc())
        })?;
    use chrono::{Datelike, Timelike};
    Some((
        t.year(),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    ))
}

/// A column's value as text, for types the versions carry as strings.
fn text_of(value: &SqlValue) -> String {
    match value {
        SqlValue::Text(t) | SqlValue::Json(t) => t.clone(),
        other => other.to_json().to_string(),
    }
}

// --- 4.2 ---------------------------------------------------------------

fn v4_param(p: v4::ParameterValue) -> Result<SqlValue, PgError> {
    use v4::ParameterValue as P;
    let range = |lo: Option<(String, v4::RangeBoundKind)>,
                 hi: Option<(String, v4::RangeBoundKind)>| {
        let open = match &lo {
            Some((_, v4::RangeBoundKind::Inclusive)) => '[',
            _ => '(',
        };
        let close = match &hi {
            Some((_, v4::RangeBoundKind::Inclusive)) => ']',
            _ => ')',
        };
        format!(
            "{open}{},{}{close}",
            lo.map(|(v, _)| v).unwrap_or_default(),
            hi.map(|(v, _)| v).unwrap_or_default()
        )
    };
    let array = |items: Vec<Option<String>>, quote: bool| {
        let items: Vec<String> = items
            .into_iter()
            .map(|i| match i {
                None => "NULL".to_owned(),
                Some(v) if quote => format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")),
                Some(v) => v,
            })
            .collect();
        format!("{{{}}}", items.join(","))
    };
    Ok(match p {
        P::Boolean(b) => SqlValue::Bool(b),
        P::Int8(i) => SqlValue::Int(i.into()),
        P::Int16(i) => SqlValue::Int(i.into()),
        P::Int32(i) => SqlValue::Int(i.into()),
        P::Int64(i) => SqlValue::Int(i),
        P::Floating32(f) => SqlValue::Float(f.into()),
        P::Floating64(f) => SqlValue::Float(f),
        P::Str(s) | P::Uuid(s) | P::Decimal(s) => SqlValue::Text(s),
        P::Binary(b) => SqlValue::Bytes(b),
        P::Jsonb(b) => SqlValue::Json(
            String::from_utf8(b).map_err(|_| PgError::BadParameter("jsonb is not UTF-8".into()))?,
        ),
        P::Date(d) => SqlValue::Text(date_text(d)),
        P::Time(t) => SqlValue::Text(time_text(t)),
        P::Datetime(t) => SqlValue::Text(datetime_text(t)),
        P::Timestamp(s) => SqlValue::Text(timestamp_text(s)?),
        P::RangeInt32((lo, hi)) => SqlValue::Text(range(
            lo.map(|(v, k)| (v.to_string(), k)),
            hi.map(|(v, k)| (v.to_string(), k)),
        )),
        P::RangeInt64((lo, hi)) => SqlValue::Text(range(
            lo.map(|(v, k)| (v.to_string(), k)),
            hi.map(|(v, k)| (v.to_string(), k)),
        )),
        P::RangeDecimal((lo, hi)) => SqlValue::Text(range(lo, hi)),
        P::ArrayInt32(items) => SqlValue::Text(array(
            items
                .into_iter()
                .map(|i| i.map(|v| v.to_string()))
                .collect(),
            false,
        )),
        P::ArrayInt64(items) => SqlValue::Text(array(
            items
                .into_iter()
                .map(|i| i.map(|v| v.to_string()))
                .collect(),
            false,
        )),
        P::ArrayDecimal(items) => SqlValue::Text(array(items, false)),
        P::ArrayStr(items) => SqlValue::Text(array(items, true)),
        P::Interval(i) => SqlValue::Text(format!(
            "{} months {} days {} microseconds",
            i.months, i.days, i.micros
        )),
        P::DbNull => SqlValue::Null,
    })
}

fn v4_type(name: &str) -> v4::DbDataType {
    use v4::DbDataType as D;
    match name {
        "bool" => D::Boolean,
        "char" => D::Int8,
        "int2" => D::Int16,
        "int4" => D::Int32,
        "int8" => D::Int64,
        "float4" => D::Floating32,
        "float8" => D::Floating64,
        "text" | "varchar" | "bpchar" | "name" => D::Str,
        "bytea" => D::Binary,
        "date" => D::Date,
        "time" => D::Time,
        "timestamp" | "timestamptz" => D::Datetime,
        "uuid" => D::Uuid,
        "json" | "jsonb" => D::Jsonb,
        "numeric" => D::Decimal,
        "_int4" => D::ArrayInt32,
        "_int8" => D::ArrayInt64,
        "_numeric" => D::ArrayDecimal,
        "_text" | "_varchar" => D::ArrayStr,
        other => D::Other(other.to_owned()),
    }
}

fn v4_value(ty: &str, value: SqlValue) -> v4::DbValue {
    use v4::DbValue as V;
    let unsupported = |v: &SqlValue| V::Unsupported(text_of(v).into_bytes());
    let json_items = |v: &SqlValue| -> Option<Vec<serde_json::Value>> {
        match v {
            SqlValue::Json(t) => serde_json::from_str::<Vec<serde_json::Value>>(t).ok(),
            _ => None,
        }
    };
    match (v4_type(ty), value) {
        (_, SqlValue::Null) => V::DbNull,
        (v4::DbDataType::Boolean, SqlValue::Bool(b)) => V::Boolean(b),
        (v4::DbDataType::Int8, SqlValue::Int(i)) => V::Int8(i as i8),
        (v4::DbDataType::Int16, SqlValue::Int(i)) => V::Int16(i as i16),
        (v4::DbDataType::Int32, SqlValue::Int(i)) => V::Int32(i as i32),
        (v4::DbDataType::Int64, SqlValue::Int(i)) => V::Int64(i),
        (v4::DbDataType::Floating32, SqlValue::Float(f)) => V::Floating32(f as f32),
        (v4::DbDataType::Floating64, SqlValue::Float(f)) => V::Floating64(f),
        (v4::DbDataType::Str, SqlValue::Text(t)) => V::Str(t),
        (v4::DbDataType::Binary, SqlValue::Bytes(b)) => V::Binary(b),
        (v4::DbDataType::Uuid, SqlValue::Text(t)) => V::Uuid(t),
        (v4::DbDataType::Decimal, SqlValue::Text(t)) => V::Decimal(t),
        (v4::DbDataType::Jsonb, SqlValue::Json(t)) => V::Jsonb(t.into_bytes()),
        (v4::DbDataType::Date, ref v @ SqlValue::Text(ref t)) => {
            parse_date(t).map(V::Date).unwrap_or_else(|| unsupported(v))
        }
        (v4::DbDataType::Time, ref v @ SqlValue::Text(ref t)) => {
            parse_time(t).map(V::Time).unwrap_or_else(|| unsupported(v))
        }
        (v4::DbDataType::Datetime, ref v @ SqlValue::Text(ref t)) => parse_datetime(t)
            .map(V::Datetime)
            .unwrap_or_else(|| unsupported(v)),
        (v4::DbDataType::ArrayInt32, ref v) => match json_items(v) {
            Some(items) => {
                V::ArrayInt32(items.iter().map(|i| i.as_i64().map(|n| n as i32)).collect())
            }
            None => unsupported(v),
        },
        (v4::DbDataType::ArrayInt64, ref v) => match json_items(v) {
            Some(items) => V::ArrayInt64(items.iter().map(|i| i.as_i64()).collect()),
            None => unsupported(v),
        },
        (v4::DbDataType::ArrayDecimal | v4::DbDataType::ArrayStr, ref v) => match json_items(v) {
            Some(items) => {
                let items = items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::Null => None,
                        serde_json::Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                    .collect();
                if matches!(v4_type(ty), v4::DbDataType::ArrayDecimal) {
                    V::ArrayDecimal(items)
                } else {
                    V::ArrayStr(items)
                }
            }
            None => unsupported(v),
        },
        (_, v) => unsupported(&v),
    }
}

fn v4_error(e: PgError) -> v4::Error {
    match e {
        PgError::ConnectionFailed(m) => v4::Error::ConnectionFailed(m),
        PgError::BadParameter(m) => v4::Error::BadParameter(m),
        PgError::Query(err) => v4::Error::QueryFailed(v4::QueryError::DbError(v4::DbError {
            as_text: query_failed_text(&err),
            severity: "ERROR".into(),
            code: err.code,
            message: err.message,
            detail: err.details,
            extras: err
                .hint
                .map(|h| vec![("hint".to_owned(), h)])
                .unwrap_or_default(),
        })),
        PgError::Other(m) => v4::Error::Other(m),
    }
}

fn v4_params(params: Vec<v4::ParameterValue>) -> Result<Vec<SqlValue>, PgError> {
    params.into_iter().map(v4_param).collect()
}

fn v4_rows(rows: Rows) -> v4::RowSet {
    let types: Vec<String> = rows.columns.iter().map(|(_, t)| t.clone()).collect();
    v4::RowSet {
        columns: rows
            .columns
            .into_iter()
            .map(|(name, ty)| v4::Column {
                name,
                data_type: v4_type(&ty),
            })
            .collect(),
        rows: rows
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&types)
                    .map(|(value, ty)| v4_value(ty, value))
                    .collect()
            })
            .collect(),
    }
}

// --- 3.0 and 2.0: the smaller type sets ---------------------------------

macro_rules! small_version {
    ($param:ident, $value:ident, $rows:ident, $m:ident, $with_dates:tt) => {
        fn $param(p: $m::ParameterValue) -> Result<SqlValue, PgError> {
            use $m::ParameterValue as P;
            small_version!(@param p, P, $with_dates)
        }

        fn $value(ty: &str, value: SqlValue) -> ($m::DbDataType, $m::DbValue) {
            use $m::{DbDataType as D, DbValue as V};
            let (d, v) = match (ty, value) {
                (_, SqlValue::Null) => (small_version!(@type ty, $m, $with_dates), V::DbNull),
                ("bool", SqlValue::Bool(b)) => (D::Boolean, V::Boolean(b)),
                ("char", SqlValue::Int(i)) => (D::Int8, V::Int8(i as i8)),
                ("int2", SqlValue::Int(i)) => (D::Int16, V::Int16(i as i16)),
                ("int4", SqlValue::Int(i)) => (D::Int32, V::Int32(i as i32)),
                ("int8", SqlValue::Int(i)) => (D::Int64, V::Int64(i)),
                ("float4", SqlValue::Float(f)) => (D::Floating32, V::Floating32(f as f32)),
                ("float8", SqlValue::Float(f)) => (D::Floating64, V::Floating64(f)),
                ("text" | "varchar" | "bpchar" | "name", SqlValue::Text(t)) => (D::Str, V::Str(t)),
                ("bytea", SqlValue::Bytes(b)) => (D::Binary, V::Binary(b)),
                (ty, v) => small_version!(@other ty, v, D, V, $with_dates),
            };
            (d, v)
        }

        fn $rows(rows: Rows) -> $m::RowSet {
            let mut types = Vec::new();
            let mut columns = Vec::new();
            for (name, ty) in rows.columns {
                columns.push($m::Column {
                    name,
                    data_type: small_version!(@type ty.as_str(), $m, $with_dates),
                });
                types.push(ty);
            }
            $m::RowSet {
                columns,
                rows: rows
                    .rows
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .zip(&types)
                            .map(|(value, ty)| $value(ty, value).1)
                            .collect()
                    })
                    .collect(),
            }
        }
    };
    (@param $p:ident, $P:ident, dates) => {
        Ok(match $p {
            $P::Date(d) => SqlValue::Text(date_text(d)),
            $P::Time(t) => SqlValue::Text(time_text(t)),
            $P::Datetime(t) => SqlValue::Text(datetime_text(t)),
            $P::Timestamp(s) => SqlValue::Text(timestamp_text(s)?),
            other => small_version!(@common other, $P, {}),
        })
    };
    (@param $p:ident, $P:ident, unsigned) => {
        Ok(match $p {
            $P::Uint8(i) => SqlValue::Int(i.into()),
            $P::Uint16(i) => SqlValue::Int(i.into()),
            $P::Uint32(i) => SqlValue::Int(i.into()),
            $P::Uint64(i) => SqlValue::Int(i64::try_from(i).map_err(|_| {
                PgError::BadParameter(format!("{i} does not fit PostgreSQL's int8"))
            })?),
            other => small_version!(@common other, $P, {}),
        })
    };
    (@common $p:ident, $P:ident, {}) => {
        match $p {
            $P::Boolean(b) => SqlValue::Bool(b),
            $P::Int8(i) => SqlValue::Int(i.into()),
            $P::Int16(i) => SqlValue::Int(i.into()),
            $P::Int32(i) => SqlValue::Int(i.into()),
            $P::Int64(i) => SqlValue::Int(i),
            $P::Floating32(f) => SqlValue::Float(f.into()),
            $P::Floating64(f) => SqlValue::Float(f),
            $P::Str(s) => SqlValue::Text(s),
            $P::Binary(b) => SqlValue::Bytes(b),
            $P::DbNull => SqlValue::Null,
            #[allow(unreachable_patterns)]
            _ => unreachable!("handled by the version's own arms"),
        }
    };
    (@type $ty:expr, $m:ident, dates) => {{
        use $m::DbDataType as D;
        match $ty {
            "bool" => D::Boolean,
            "char" => D::Int8,
            "int2" => D::Int16,
            "int4" => D::Int32,
            "int8" => D::Int64,
            "float4" => D::Floating32,
            "float8" => D::Floating64,
            "text" | "varchar" | "bpchar" | "name" => D::Str,
            "bytea" => D::Binary,
            "date" => D::Date,
            "time" => D::Time,
            "timestamp" | "timestamptz" => D::Datetime,
            _ => D::Other,
        }
    }};
    (@type $ty:expr, $m:ident, unsigned) => {{
        use $m::DbDataType as D;
        match $ty {
            "bool" => D::Boolean,
            "char" => D::Int8,
            "int2" => D::Int16,
            "int4" => D::Int32,
            "int8" => D::Int64,
            "float4" => D::Floating32,
            "float8" => D::Floating64,
            "text" | "varchar" | "bpchar" | "name" => D::Str,
            "bytea" => D::Binary,
            _ => D::Other,
        }
    }};
    (@other $ty:ident, $v:ident, $D:ident, $V:ident, dates) => {
        match ($ty, $v) {
            ("date", SqlValue::Text(t)) => match parse_date(&t) {
                Some(d) => ($D::Date, $V::Date(d)),
                None => ($D::Date, $V::Unsupported),
            },
            ("time", SqlValue::Text(t)) => match parse_time(&t) {
                Some(d) => ($D::Time, $V::Time(d)),
                None => ($D::Time, $V::Unsupported),
            },
            ("timestamp" | "timestamptz", SqlValue::Text(t)) => match parse_datetime(&t) {
                Some(d) => ($D::Datetime, $V::Datetime(d)),
                None => ($D::Datetime, $V::Unsupported),
            },
            _ => ($D::Other, $V::Unsupported),
        }
    };
    (@other $ty:ident, $v:ident, $D:ident, $V:ident, unsigned) => {{
        let _ = ($ty, $v);
        ($D::Other, $V::Unsupported)
    }};
}

small_version!(v3_param, v3_value, v3_rows, v3, dates);
small_version!(v2_param, v2_value, v2_rows, r2, unsigned);

fn v3_error(e: PgError) -> v3::Error {
    match e {
        PgError::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        PgError::BadParameter(m) => v3::Error::BadParameter(m),
        PgError::Query(err) => v3::Error::QueryFailed(query_failed_text(&err)),
        PgError::Other(m) => v3::Error::Other(m),
    }
}

fn v2_error(e: PgError) -> r2::Error {
    match e {
        PgError::ConnectionFailed(m) => r2::Error::ConnectionFailed(m),
        PgError::BadParameter(m) => r2::Error::BadParameter(m),
        PgError::Query(err) => r2::Error::QueryFailed(query_failed_text(&err)),
        PgError::Other(m) => r2::Error::Other(m),
    }
}

// --- host implementations ----------------------------------------------

/// `connection` as 2.0, 3.0 and 4.x's synchronous form declare it: the
/// same operations, each version's types and error conversion.
macro_rules! sync_connection {
    ($version:ident, $types:ident, $params:ident, $rows:ident, $error:ident) => {
        impl $version::Host for PostgresState {}

        impl $version::HostConnection for PostgresState {
            async fn open(
                &mut self,
                address: String,
            ) -> wasmtime::Result<Result<Resource<$version::Connection>, $types::Error>> {
                Ok(self
                    .open_address(&address)
                    .await
                    .map(Resource::new_own)
                    .map_err($error))
            }

            async fn query(
                &mut self,
                connection: Resource<$version::Connection>,
                statement: String,
                params: Vec<$types::ParameterValue>,
            ) -> wasmtime::Result<Result<$types::RowSet, $types::Error>> {
                let conn = self.conn(connection.rep())?;
                let params = match $params(params) {
                    Ok(params) => params,
                    Err(err) => return Ok(Err($error(err))),
                };
                Ok(query(conn, statement, params)
                    .await
                    .map($rows)
                    .map_err($error))
            }

            async fn execute(
                &mut self,
                connection: Resource<$version::Connection>,
                statement: String,
                params: Vec<$types::ParameterValue>,
            ) -> wasmtime::Result<Result<u64, $types::Error>> {
                let conn = self.conn(connection.rep())?;
                let params = match $params(params) {
                    Ok(params) => params,
                    Err(err) => return Ok(Err($error(err))),
                };
                Ok(execute(conn, statement, params).await.map_err($error))
            }

            async fn drop(
                &mut self,
                connection: Resource<$version::Connection>,
            ) -> wasmtime::Result<()> {
                self.close(connection.rep());
                Ok(())
            }
        }
    };
}

fn v2_params(params: Vec<r2::ParameterValue>) -> Result<Vec<SqlValue>, PgError> {
    params.into_iter().map(v2_param).collect()
}

fn v3_params(params: Vec<v3::ParameterValue>) -> Result<Vec<SqlValue>, PgError> {
    params.into_iter().map(v3_param).collect()
}

sync_connection!(v2, r2, v2_params, v2_rows, v2_error);
sync_connection!(v3, v3, v3_params, v3_rows, v3_error);
sync_connection!(v4, v4, v4_params, v4_rows, v4_error);

/// `connection-builder` (4.1): an address, optionally a CA root (no TLS
/// here, so a CA root is refused), then `build`.
pub struct Builder {
    address: String,
}

impl v4::HostConnectionBuilder for PostgresState {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<v4::ConnectionBuilder>> {
        match self.builders.insert(Builder { address }) {
            Some(handle) => Ok(Resource::new_own(handle)),
            None => wasmtime::bail!("too many PostgreSQL connection builders"),
        }
    }

    async fn set_ca_root(
        &mut self,
        _builder: Resource<v4::ConnectionBuilder>,
        _certificate: String,
    ) -> wasmtime::Result<Result<(), v4::Error>> {
        Ok(Err(v4::Error::Other(
            "TLS to PostgreSQL is not supported by SelfDB yet".into(),
        )))
    }

    async fn build(
        &mut self,
        builder: Resource<v4::ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<v4::Connection>, v4::Error>> {
        let address = self.builder_address(builder.rep())?;
        Ok(self
            .open_address(&address)
            .await
            .map(Resource::new_own)
            .map_err(v4_error))
    }

    async fn drop(&mut self, builder: Resource<v4::ConnectionBuilder>) -> wasmtime::Result<()> {
        self.builders.release(builder.rep());
        Ok(())
    }
}

/// 4.2's async functions reach the state through an [`Accessor`].
pub struct PostgresV4;

impl HasData for PostgresV4 {
    type Data<'a> = &'a mut PostgresState;
}

async fn open_with<T: Send>(
    accessor: &Accessor<T, PostgresV4>,
    address: String,
) -> wasmtime::Result<Result<Resource<v4::Connection>, v4::Error>> {
    let (target, handle) = match accessor.with(|mut access| access.get().begin_open(&address)) {
        Ok(begun) => begun,
        Err(err) => return Ok(Err(v4_error(err))),
    };
    let conn = connect(target).await;
    Ok(accessor
        .with(|mut access| access.get().open.settle(handle, conn))
        .map(Resource::new_own)
        .map_err(v4_error))
}

impl<T: Send> v4::HostConnectionBuilderWithStore<T> for PostgresV4 {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<v4::ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<v4::Connection>, v4::Error>> {
        let address = accessor.with(|mut access| access.get().builder_address(builder.rep()))?;
        open_with(accessor, address).await
    }
}

impl<T: Send> v4::HostConnectionWithStore<T> for PostgresV4 {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<v4::Connection>, v4::Error>> {
        open_with(accessor, address).await
    }

    #[allow(clippy::type_complexity)]
    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<v4::Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<v4::Column>,
                StreamReader<v4::Row>,
                FutureReader<Result<(), v4::Error>>,
            ),
            v4::Error,
        >,
    > {
        let conn = accessor.with(|mut access| access.get().conn(connection.rep()))?;
        let params = match v4_params(params) {
            Ok(params) => params,
            Err(err) => return Ok(Err(v4_error(err))),
        };
        let rows = match query(conn, statement, params).await {
            Ok(rows) => v4_rows(rows),
            Err(err) => return Ok(Err(v4_error(err))),
        };
        // Read whole (bounded by the data API's row cap), then streamed.
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, rows.rows)?;
            let done = FutureReader::new(&mut access, async {
                Ok::<_, wasmtime::Error>(Ok::<(), v4::Error>(()))
            })?;
            Ok(Ok((rows.columns, stream, done)))
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<v4::Connection>,
        statement: String,
        params: Vec<v4::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v4::Error>> {
        let conn = accessor.with(|mut access| access.get().conn(connection.rep()))?;
        let params = match v4_params(params) {
            Ok(params) => params,
            Err(err) => return Ok(Err(v4_error(err))),
        };
        Ok(execute(conn, statement, params).await.map_err(v4_error))
    }
}

pub fn link<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PostgresState,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, HasSelf<PostgresState>>(linker, get)?;
    v3::add_to_linker::<T, HasSelf<PostgresState>>(linker, get)?;
    v4::add_to_linker::<T, PostgresV4>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_database_is_recognised_by_host_port_and_name() {
        let own: tokio_postgres::Config = "postgres://owner@127.0.0.1:5433/app".parse().unwrap();
        let same = |a: &str| is_same_database(&a.parse().unwrap(), &own);
        assert!(same("postgres://anyone:pw@localhost:5433/app"));
        assert!(same("host=127.0.0.1 port=5433 dbname=app user=x"));
        assert!(!same("postgres://owner@127.0.0.1:5433/other"));
        assert!(!same("postgres://owner@127.0.0.1:5432/app"));
        assert!(!same("postgres://owner@db.example.com:5433/app"));
    }

    #[test]
    fn parameters_become_postgres_text() {
        assert_eq!(date_text((2024, 2, 9)), "2024-02-09");
        assert_eq!(time_text((1, 2, 3, 4)), "01:02:03.000000004");
        assert_eq!(parse_date("2024-02-09"), Some((2024, 2, 9)));
        assert_eq!(parse_time("01:02:03.5"), Some((1, 2, 3, 500_000_000)));
        assert_eq!(
            parse_datetime("2024-02-09T01:02:03"),
            Some((2024, 2, 9, 1, 2, 3, 0))
        );
        assert_eq!(
            parse_datetime("2024-02-09T01:02:03+01:00"),
            Some((2024, 2, 9, 0, 2, 3, 0))
        );
        let SqlValue::Text(range) = v4_param(v4::ParameterValue::RangeInt32((
            Some((1, v4::RangeBoundKind::Inclusive)),
            None,
        )))
        .ok()
        .unwrap() else {
            panic!("a range is text")
        };
        assert_eq!(range, "[1,)");
        let SqlValue::Text(array) = v4_param(v4::ParameterValue::ArrayStr(vec![
            Some("a\"b".into()),
            None,
        ]))
        .ok()
        .unwrap() else {
            panic!("an array is text")
        };
        assert_eq!(array, "{\"a\\\"b\",NULL}");
    }
}
