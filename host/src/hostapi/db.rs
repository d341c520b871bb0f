use super::selfdb::platform::db::{Column, DbError, Host, RowSet, Value};
use crate::db::invocation::{InvocationTx, StatementError};
use crate::db::values::SqlValue;
use crate::runtime::state::InvocationState;

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

pub(super) fn to_wit(err: StatementError) -> DbError {
    DbError {
        code: err.code,
        message: err.message,
        details: err.details,
        hint: err.hint,
    }
}

pub(super) fn params(params: Vec<Value>) -> Result<Vec<SqlValue>, DbError> {
    if params.len() > MAX_PARAMS {
        return Err(to_wit(StatementError::refused(
            "selfdb.too_many_params",
            format!("at most {MAX_PARAMS} parameters"),
        )));
    }
    Ok(params.into_iter().map(to_sql).collect())
}

pub(super) fn rows_to_wit(rows: crate::db::invocation::Rows) -> RowSet {
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
pub(super) async fn query_on(
    tx: &mut InvocationTx,
    sql: &str,
    args: Vec<Value>,
) -> Result<RowSet, DbError> {
    let args = params(args)?;
    tx.query(sql, &args).await.map(rows_to_wit).map_err(to_wit)
}

/// `execute` of the `db` and `auth-db` interfaces, on the given transaction.
pub(super) async fn execute_on(
    tx: &mut InvocationTx,
    sql: &str,
    args: Vec<Value>,
) -> Result<u64, DbError> {
    let args = params(args)?;
    tx.execute(sql, &args).await.map_err(to_wit)
}

impl Host for InvocationState {
    async fn query(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, DbError>> {
        Ok(query_on(&mut self.tx, &sql, args).await)
    }

    async fn execute(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, DbError>> {
        Ok(execute_on(&mut self.tx, &sql, args).await)
    }

    async fn query_alone(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, DbError>> {
        let result = match params(args) {
            Ok(args) => self
                .tx
                .query_alone(&sql, &args)
                .await
                .map(rows_to_wit)
                .map_err(to_wit),
            Err(err) => Err(err),
        };
        Ok(result)
    }
}
