//! The `db` and `events` interfaces on the invocation's transaction.

use super::convert::{self, execute_on, query_on};
use super::DbState;
use crate::capabilities::bindings::db::{DbError, Host, RowSet, Value};

impl Host for DbState {
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
        let result = match convert::params(args) {
            Ok(args) => self
                .tx
                .query_alone(&sql, &args)
                .await
                .map(convert::rows)
                .map_err(convert::error),
            Err(err) => Err(err),
        };
        Ok(result)
    }
}

/// `events.publish`: `selfdb.publish` in the invocation's transaction, as
/// its caller (row-level security on `selfdb.published_events` decides for
/// a user; event handlers run as the service role). The event is delivered
/// only if the invocation commits.
impl crate::capabilities::bindings::events::Host for DbState {
    async fn publish(
        &mut self,
        name: String,
        payload: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let result = execute_on(
            &mut self.tx,
            "select selfdb.publish($1, $2::jsonb)",
            vec![Value::Text(name), Value::Text(payload)],
        )
        .await;
        Ok(result.map(drop).map_err(|e| match e.details {
            Some(details) => format!("{} ({details})", e.message),
            None => e.message,
        }))
    }
}
