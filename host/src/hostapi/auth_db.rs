use super::db::{execute_on, query_on};
use super::selfdb::platform::auth_db::Host;
use super::{DbError, RowSet, Value};
use crate::runtime::state::InvocationState;

fn unavailable() -> DbError {
    DbError {
        code: "selfdb.forbidden".into(),
        message: "this component may not use auth-db".into(),
        details: None,
        hint: None,
    }
}

impl Host for InvocationState {
    async fn query(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, DbError>> {
        Ok(match self.privileged.as_mut() {
            Some(p) => query_on(&mut p.auth_tx, &sql, args).await,
            None => Err(unavailable()),
        })
    }

    async fn execute(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, DbError>> {
        Ok(match self.privileged.as_mut() {
            Some(p) => execute_on(&mut p.auth_tx, &sql, args).await,
            None => Err(unavailable()),
        })
    }
}
