//! The `auth-db` interface on the `supabase_auth_admin` transaction.

use super::AuthDbState;
use crate::capabilities::bindings::auth_db::Host;
use crate::capabilities::bindings::db::{DbError, RowSet, Value};
use crate::capabilities::db::convert::{execute_on, query_on};

impl Host for AuthDbState {
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
}
