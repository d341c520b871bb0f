//! Conversions between the `db` interface's values and the host's SQL
//! values, shared by `db` and `auth-db`.

use super::super::bindings::db::{Column, DbError, RowSet, Value};
use crate::db::invocation::{InvocationTx, Rows, StatementError};
use crate::db::values::SqlValue;

/// Cap on parameters of one statement (PostgreSQL's own limit).
const MAX_PARAMS: usize = 65_535;

fn to_sql(value: Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Boolean(b) => SqlValue::Bool(b),
        Value::Int(i) => SqlValue::Int(i),
        Value::Float(f) => SqlValue::Float(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Json(s) => SqlValue::Json(s),
        Value::Bytes(b) => SqlValue::Bytes(b),
    }
}

fn from_sql(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Bool(b) => Value::Boolean(b),
        SqlValue::Int(i) => Value::Int(i),
        SqlValue::Float(f) => Value::Float(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Json(s) => Value::Json(s),
        SqlValue::Bytes(b) => Value::Bytes(b),
    }
}

pub fn error(err: StatementError) -> DbError {
    DbError {
        code: err.code,
        message: err.message,
        details: err.details,
        hint: err.hint,
    }
}

pub fn params(params: Vec<Value>) -> Result<Vec<SqlValue>, DbError> {
    if params.len() > MAX_PARAMS {
        return Err(error(StatementError::refused(
            "selfdb.too_many_params",
            format!("at most {MAX_PARAMS} parameters"),
        )));
    }
    Ok(params.into_iter().map(to_sql).collect())
}

pub fn rows(rows: Rows) -> RowSet {
    RowSet {
        columns: rows
            .columns
            .into_iter()
            .map(|(name, type_name)| Column { name, type_name })
            .collect(),
        rows: rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(from_sql).collect())
            .collect(),
    }
}

/// `query` of the `db` and `auth-db` interfaces, on the given transaction.
pub async fn query_on(
    tx: &mut InvocationTx,
    sql: &str,
    args: Vec<Value>,
) -> Result<RowSet, DbError> {
    let args = params(args)?;
    tx.query(sql, &args).await.map(rows).map_err(error)
}

/// `execute` of the `db` and `auth-db` interfaces, on the given transaction.
pub async fn execute_on(
    tx: &mut InvocationTx,
    sql: &str,
    args: Vec<Value>,
) -> Result<u64, DbError> {
    let args = params(args)?;
    tx.execute(sql, &args).await.map_err(error)
}
