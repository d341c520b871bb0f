use super::db::{params, rows_to_wit, to_wit};
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
        let args = match params(args) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let Some(tx) = self.privileged.as_mut().map(|p| &mut p.auth_tx) else {
            return Ok(Err(unavailable()));
        };
        Ok(tx.query(&sql, &args).await.map(rows_to_wit).map_err(to_wit))
    }

    async fn execute(
        &mut self,
        sql: String,
        args: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, DbError>> {
        let args = match params(args) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let Some(tx) = self.privileged.as_mut().map(|p| &mut p.auth_tx) else {
            return Ok(Err(unavailable()));
        };
        Ok(tx.execute(&sql, &args).await.map_err(to_wit))
    }
}
