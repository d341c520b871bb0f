//! The `db` interface on the invocation's transaction.

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
