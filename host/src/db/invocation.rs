//! The one transaction an invocation's statements run in.
//!
//! Opened lazily on the first statement (a component that never touches the
//! database costs no connection), as the caller's role with its claims, and
//! ended by [`InvocationTx::finish`]: commit when the invocation succeeded,
//! rollback otherwise. A transaction that is dropped unfinished — the
//! invocation was cancelled or timed out mid-statement — takes its
//! connection out of the pool, so no later request inherits its state.

use super::values::{column_value, SqlValue};
use super::{guard, Database};
use crate::auth::Principal;
use deadpool_postgres::{Object, Pool};
use std::sync::Arc;
use tokio_postgres::error::SqlState;

/// Upper bound on prepared statements kept per connection; past it the
/// cache is cleared, so components issuing endless distinct SQL cannot grow
/// the host's memory.
const STATEMENT_CACHE_LIMIT: usize = 256;

/// Upper bound on rows one `query` call may return to a component.
pub const MAX_ROWS: usize = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct StatementError {
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl StatementError {
    pub fn refused(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            details: None,
            hint: None,
        }
    }

    fn from_pg(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => Self {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                details: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
            },
            None => Self::refused("selfdb.connection", format!("database connection: {err}")),
        }
    }
}

pub struct Rows {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<SqlValue>>,
}

enum State {
    NotStarted,
    Open(Box<Object>),
    /// `finish` ran, or opening failed.
    Closed,
}

pub struct InvocationTx {
    /// A pool whose login role may switch to `role`.
    pool: Pool,
    role: &'static str,
    /// `request.jwt.claims`, as JSON text.
    claims: String,
    statement_timeout_ms: u64,
    state: State,
    /// A statement failed, so PostgreSQL will turn COMMIT into ROLLBACK.
    aborted: bool,
}

/// The role that owns the `auth` schema; only system components reach it.
pub const AUTH_ADMIN_ROLE: &str = "supabase_auth_admin";

impl InvocationTx {
    /// A transaction as the caller: its role and its claims.
    pub fn new(db: Database, principal: Arc<Principal>, statement_timeout_ms: u64) -> Self {
        let pool = if principal.role == crate::auth::Role::ServiceRole {
            db.owner().clone()
        } else {
            db.api().clone()
        };
        Self::with_role(
            pool,
            principal.role.as_str(),
            principal.claims.to_string(),
            statement_timeout_ms,
        )
    }

    /// A transaction as `supabase_auth_admin`, for the auth component.
    pub fn auth_admin(db: &Database, statement_timeout_ms: u64) -> Self {
        Self::with_role(
            db.owner().clone(),
            AUTH_ADMIN_ROLE,
            "{}".into(),
            statement_timeout_ms,
        )
    }

    fn with_role(
        pool: Pool,
        role: &'static str,
        claims: String,
        statement_timeout_ms: u64,
    ) -> Self {
        Self {
            pool,
            role,
            claims,
            statement_timeout_ms,
            state: State::NotStarted,
            aborted: false,
        }
    }

    async fn client(&mut self) -> Result<&Object, StatementError> {
        if matches!(self.state, State::NotStarted) {
            let client = self.pool.get().await.map_err(|e| {
                StatementError::refused("selfdb.pool", format!("no database connection: {e}"))
            })?;
            // Owned by `self` before anything is sent: if this future is
            // dropped half-way (the client went away), `Drop` discards the
            // connection instead of pooling one with a transaction open.
            self.state = State::Open(Box::new(client));
            let begun = match &self.state {
                State::Open(client) => {
                    begin(client, self.role, &self.claims, self.statement_timeout_ms).await
                }
                _ => Ok(()),
            };
            if let Err(err) = begun {
                if let State::Open(client) = std::mem::replace(&mut self.state, State::Closed) {
                    let _ = Object::take(*client);
                }
                return Err(StatementError::from_pg(err));
            }
        }
        match &self.state {
            State::Open(client) => Ok(client),
            _ => Err(StatementError::refused(
                "selfdb.closed",
                "the invocation's transaction is closed",
            )),
        }
    }

    async fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement, StatementError> {
        guard::check(sql).map_err(|e| StatementError::refused("selfdb.refused", e.0))?;
        let client = self.client().await?;
        if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        let prepared = client.prepare_cached(sql).await;
        self.note_failure(prepared)
    }

    pub async fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, StatementError> {
        let statement = self.prepare(sql).await?;
        check_arity(&statement, params)?;
        let client = self.client().await?;
        let refs: Vec<&(dyn postgres_types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let rows = client.query(&statement, &refs).await;
        let rows = self.note_failure(rows)?;
        if rows.len() > MAX_ROWS {
            return Err(StatementError::refused(
                "selfdb.too_many_rows",
                format!("the query returned more than {MAX_ROWS} rows; add a LIMIT"),
            ));
        }
        let columns = statement
            .columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_().name().to_owned()))
            .collect();
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| column_value(row, i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StatementError::refused("selfdb.unsupported_type", e.to_string()))?;
        Ok(Rows { columns, rows })
    }

    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StatementError> {
        let statement = self.prepare(sql).await?;
        check_arity(&statement, params)?;
        let client = self.client().await?;
        let refs: Vec<&(dyn postgres_types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let result = client.execute(&statement, &refs).await;
        self.note_failure(result)
    }

    fn note_failure<T>(
        &mut self,
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<T, StatementError> {
        result.map_err(|err| {
            self.aborted = true;
            StatementError::from_pg(err)
        })
    }

    /// Ends the transaction: commit if `success`, else roll back. Returns
    /// whether the transaction's work is now durable (false on rollback,
    /// or when the commit itself failed, e.g. a deferred constraint).
    pub async fn finish(&mut self, success: bool) -> Result<bool, StatementError> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Open(client) = state else {
            return Ok(success);
        };
        let verb = if success { "commit" } else { "rollback" };
        match client.batch_execute(verb).await {
            // COMMIT of a transaction in which a statement failed succeeds
            // as a ROLLBACK.
            Ok(()) => Ok(success && !self.aborted),
            Err(err) => {
                let _ = Object::take(*client);
                Err(StatementError::from_pg(err))
            }
        }
    }
}

/// `begin`, then the caller's claims, statement timeout and role, as
/// `SET LOCAL` would set them; pipelined into one round trip.
async fn begin(
    client: &Object,
    role: &str,
    claims: &str,
    statement_timeout_ms: u64,
) -> Result<(), tokio_postgres::Error> {
    let setup = client
        .prepare_cached(
            "select set_config('request.jwt.claims', $1, true), \
                    set_config('statement_timeout', $2, true), \
                    set_config('role', $3, true)",
        )
        .await?;
    let timeout = statement_timeout_ms.to_string();
    let params: [&(dyn postgres_types::ToSql + Sync); 3] = [&claims, &timeout, &role];
    let (begin, set) = tokio::join!(
        client.batch_execute("begin"),
        client.execute(&setup, &params)
    );
    begin.and(set).map(|_| ())
}

fn check_arity(
    statement: &tokio_postgres::Statement,
    params: &[SqlValue],
) -> Result<(), StatementError> {
    let expected = statement.params().len();
    if expected != params.len() {
        return Err(StatementError::refused(
            SqlState::PROTOCOL_VIOLATION.code(),
            format!(
                "the statement takes {expected} parameters but {} were given",
                params.len()
            ),
        ));
    }
    Ok(())
}

impl Drop for InvocationTx {
    fn drop(&mut self) {
        if let State::Open(client) = std::mem::replace(&mut self.state, State::Closed) {
            // Mid-transaction: never hand this connection to another request.
            let _ = Object::take(*client);
        }
    }
}
