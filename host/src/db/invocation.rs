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
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use tokio_postgres::Statement;

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
    /// For an anonymous caller: where [`InvocationTx::query_alone`] finds
    /// connections that are already in the `anon` role.
    anon_db: Option<Database>,
    role: &'static str,
    /// `request.jwt.claims`, as JSON text.
    claims: String,
    statement_timeout_ms: u64,
    state: State,
    /// `begin` and the role switch have been sent on the connection.
    begun: bool,
    /// A statement failed, so PostgreSQL will turn COMMIT into ROLLBACK.
    aborted: bool,
    /// The transaction opens with `begin read only`.
    read_only: bool,
    /// Prepared statements are closed before the transaction ends and
    /// nothing is left in the session (a user's own database, which may be
    /// behind PgBouncer in transaction mode: the next transaction on this
    /// connection may reach another server session).
    transaction_pooling: bool,
    /// Under `transaction_pooling`: tokio-postgres prepared statements of
    /// its own on this session (it looks types it does not know up with
    /// named statements it caches per connection, an enum's say), or a
    /// statement failed half-prepared. Those must not outlive the
    /// transaction: the session is cleared and the connection dropped.
    session_dirty: bool,
}

/// The "role" of a transaction that keeps its session's role.
const KEEP_ROLE: &str = "";

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
        let mut tx = Self::with_role(
            pool,
            principal.role.as_str(),
            principal.claims_text.clone(),
            statement_timeout_ms,
        );
        if principal.role == crate::auth::Role::Anon {
            tx.anon_db = Some(db);
        }
        tx
    }

    /// A transaction on a user's own database (a project's), as the user
    /// its URL names, in the session's own role (no role switch: a default
    /// role set with `ALTER ROLE … SET role` stays; `role none` would drop
    /// it), with empty claims. With
    /// `transaction_pooling` (a pooler in transaction mode) it is safe
    /// behind the pooler: `begin` goes first as a simple query, and
    /// statements are prepared inside the transaction and closed before it
    /// ends: two more round trips than otherwise, where the first
    /// statement travels with `begin` and stays prepared.
    pub fn external(pool: Pool, transaction_pooling: bool, statement_timeout_ms: u64) -> Self {
        let mut tx = Self::with_role(pool, KEEP_ROLE, "{}".into(), statement_timeout_ms);
        tx.transaction_pooling = transaction_pooling;
        tx
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
            anon_db: None,
            role,
            claims,
            statement_timeout_ms,
            state: State::NotStarted,
            begun: false,
            aborted: false,
            read_only: false,
            transaction_pooling: false,
            session_dirty: false,
        }
    }

    /// The invocation's connection, taken from the pool on first use. Owned
    /// by `self` before anything is sent: if the invocation is dropped
    /// half-way (the client went away), `Drop` discards the connection
    /// instead of pooling one with a transaction open.
    async fn connect(&mut self) -> Result<(), StatementError> {
        if matches!(self.state, State::NotStarted) {
            let client = self.pool.get().await.map_err(|e| {
                StatementError::refused("selfdb.pool", format!("no database connection: {e}"))
            })?;
            self.state = State::Open(Box::new(client));
        }
        Ok(())
    }

    /// Runs one statement. The first of an invocation travels in the same
    /// round trip as `begin` and the role switch when its prepared form is
    /// cached on the connection; PostgreSQL runs pipelined messages in the
    /// order they were sent, so it still runs inside the transaction, as the
    /// caller.
    async fn run(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        kind: Kind,
    ) -> Result<(Statement, Outcome), StatementError> {
        guard::check(sql).map_err(|e| StatementError::refused("selfdb.refused", e.0))?;
        self.connect().await?;
        let State::Open(client) = &self.state else {
            return Err(StatementError::refused(
                "selfdb.closed",
                "the invocation's transaction is closed",
            ));
        };
        if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        let refs: Vec<&(dyn postgres_types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        if !self.begun && self.transaction_pooling {
            // Behind a transaction-mode pooler a statement prepared before
            // `begin` may sit on another server session than the one the
            // transaction gets: `begin` (with the timeout, as a simple
            // query: nothing prepared) goes first, on its own round trip.
            let begin = format!(
                "begin{}; select set_config('statement_timeout', '{}', true)",
                if self.read_only { " read only" } else { "" },
                self.statement_timeout_ms
            );
            if let Err(err) = client.batch_execute(&begin).await {
                if let State::Open(client) = std::mem::replace(&mut self.state, State::Closed) {
                    let _ = Object::take(*client);
                }
                return Err(StatementError::from_pg(err));
            }
            self.begun = true;
        }
        if self.begun {
            let result = async {
                let statement = client
                    .prepare_cached(sql)
                    .await
                    .map_err(StatementError::from_pg)?;
                let outcome = execute(client, &statement, &refs, kind).await?;
                Ok((statement, outcome))
            }
            .await;
            if result.is_err() {
                self.aborted = true;
            }
            if self.transaction_pooling {
                match &result {
                    Ok((statement, _)) if builtin_types_only(statement) => {}
                    _ => self.session_dirty = true,
                }
            }
            return result;
        }
        let begin = Begin {
            read_only: self.read_only,
            role: self.role,
            claims: &self.claims,
            statement_timeout_ms: self.statement_timeout_ms,
        };
        match first_statement(client, &begin, sql, &refs, kind).await {
            Ok(done) => {
                self.begun = true;
                Ok(done)
            }
            Err(FirstError::Begin(err)) => {
                if let State::Open(client) = std::mem::replace(&mut self.state, State::Closed) {
                    let _ = Object::take(*client);
                }
                Err(StatementError::from_pg(err))
            }
            Err(FirstError::Statement(err)) => {
                self.begun = true;
                self.aborted = true;
                Err(err)
            }
        }
    }

    pub async fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Rows, StatementError> {
        let (statement, outcome) = self.run(sql, params, Kind::Query).await?;
        rows(&statement, outcome)
    }

    /// Runs `sql` as a read that is the invocation's only work so far, in a
    /// read-only transaction of its own that ends with it; a later
    /// statement opens a new transaction. An anonymous caller whose claims
    /// are the anon key's runs it on an [`AnonReaders`] connection: one
    /// message, no `begin`, role switch or `commit`. Anyone else runs it
    /// through `begin read only`, the role switch and `commit`.
    ///
    /// [`AnonReaders`]: super::Database::anon_readers
    pub async fn query_alone(
        &mut self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Rows, StatementError> {
        if !matches!(self.state, State::NotStarted) {
            return Err(StatementError::refused(
                "selfdb.in_transaction",
                "query-alone must come before any other statement of the invocation",
            ));
        }
        let readers = self
            .anon_db
            .as_ref()
            .and_then(|db| db.anon_readers(&self.claims, self.statement_timeout_ms));
        let result = match readers {
            Some(readers) => {
                let client = readers.get().await.map_err(|e| {
                    StatementError::refused("selfdb.pool", format!("no database connection: {e}"))
                })?;
                // Already in the caller's role and claims, and every statement
                // is a read-only transaction of its own: nothing to begin.
                // Held in `state`, so an invocation dropped half-way discards
                // the connection rather than pool it busy.
                self.state = State::Open(Box::new(client));
                self.begun = true;
                self.query(sql, params).await
            }
            None => {
                self.read_only = true;
                let result = self.query(sql, params).await;
                let finished = self.finish(result.is_ok()).await;
                result.and_then(|rows| finished.map(|_| rows))
            }
        };
        // Nothing is left open on the connection: it goes back to its pool.
        self.reopen();
        result
    }

    /// Back to the state before the first statement.
    fn reopen(&mut self) {
        self.session_dirty = false;
        self.state = State::NotStarted;
        self.begun = false;
        self.aborted = false;
        self.read_only = false;
    }

    pub async fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StatementError> {
        match self.run(sql, params, Kind::Execute).await?.1 {
            Outcome::Count(n) => Ok(n),
            Outcome::Rows(rows) => Ok(rows.len() as u64),
        }
    }

    /// Ends the transaction: commit if `success`, else roll back. Returns
    /// whether the transaction's work is now durable (false on rollback,
    /// or when the commit itself failed, e.g. a deferred constraint).
    pub async fn finish(&mut self, success: bool) -> Result<bool, StatementError> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Open(client) = state else {
            return Ok(success);
        };
        // `currval` and `lastval` outlive the transaction: without the
        // discard, whichever request gets this connection next, anyone's,
        // could read the sequence values this one drew. A read-only
        // transaction cannot draw any.
        let verb = match (success, self.read_only || self.transaction_pooling) {
            (true, true) => "commit",
            (false, true) => "rollback",
            (true, false) => "commit; discard sequences",
            (false, false) => "rollback; discard sequences",
        };
        if self.transaction_pooling {
            // Dropping them sends their `Close` ahead of the commit, on the
            // server session that prepared them.
            client.statement_cache.clear();
        }
        // One simple query is one message, which a pooler sends to one
        // server session: the one this transaction ran on.
        let verb = if self.session_dirty {
            if success {
                "commit; deallocate all"
            } else {
                "rollback; deallocate all"
            }
        } else {
            verb
        };
        match client.batch_execute(verb).await {
            // COMMIT of a transaction in which a statement failed succeeds
            // as a ROLLBACK.
            Ok(()) => {
                if self.session_dirty {
                    // Its client still caches the statements just dropped.
                    let _ = Object::take(*client);
                }
                Ok(success && !self.aborted)
            }
            Err(err) => {
                let _ = Object::take(*client);
                Err(StatementError::from_pg(err))
            }
        }
    }
}

/// Whether every parameter and column type of `statement` is one
/// tokio-postgres knows without asking the server.
fn builtin_types_only(statement: &Statement) -> bool {
    statement
        .params()
        .iter()
        .chain(statement.columns().iter().map(|c| c.type_()))
        .all(|t| postgres_types::Type::from_oid(t.oid()).is_some())
}

#[derive(Clone, Copy)]
enum Kind {
    Query,
    Execute,
}

enum Outcome {
    Rows(Vec<tokio_postgres::Row>),
    Count(u64),
}

/// What `begin` sets: the caller's claims, statement timeout and role, as
/// `SET LOCAL` would.
struct Begin<'a> {
    read_only: bool,
    role: &'a str,
    claims: &'a str,
    statement_timeout_ms: u64,
}

const SETUP_SQL: &str = "select set_config('request.jwt.claims', $1, true), \
                                set_config('statement_timeout', $2, true), \
                                set_config('role', $3, true)";

/// [`SETUP_SQL`] without the role switch, for [`KEEP_ROLE`].
const SETUP_KEEP_ROLE_SQL: &str = "select set_config('request.jwt.claims', $1, true), \
                                          set_config('statement_timeout', $2, true)";

enum FirstError {
    /// The transaction could not be opened: the connection is unusable.
    Begin(tokio_postgres::Error),
    /// The statement itself failed, inside the open transaction.
    Statement(StatementError),
}

async fn execute(
    client: &Object,
    statement: &Statement,
    params: &[&(dyn postgres_types::ToSql + Sync)],
    kind: Kind,
) -> Result<Outcome, StatementError> {
    check_arity(statement, params.len())?;
    match kind {
        Kind::Query => client.query(statement, params).await.map(Outcome::Rows),
        Kind::Execute => client.execute(statement, params).await.map(Outcome::Count),
    }
    .map_err(StatementError::from_pg)
}

/// Polls a future once: its output if ready. Requests of tokio-postgres
/// are sent on their first poll, so this fixes the order they go out in.
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

async fn finish<F: Future>(early: Option<F::Output>, future: Pin<&mut F>) -> F::Output {
    match early {
        Some(out) => out,
        None => future.await,
    }
}

/// `begin`, the role switch, then the statement: one round trip when the
/// statement is already prepared on this connection, two otherwise (its
/// `Parse` then follows the role switch, so names resolve as the caller).
async fn first_statement(
    client: &Object,
    begin: &Begin<'_>,
    sql: &str,
    params: &[&(dyn postgres_types::ToSql + Sync)],
    kind: Kind,
) -> Result<(Statement, Outcome), FirstError> {
    let keep_role = begin.role == KEEP_ROLE;
    let setup = client
        .prepare_cached(if keep_role {
            SETUP_KEEP_ROLE_SQL
        } else {
            SETUP_SQL
        })
        .await
        .map_err(FirstError::Begin)?;
    let timeout = begin.statement_timeout_ms.to_string();
    let all_params: [&(dyn postgres_types::ToSql + Sync); 3] =
        [&begin.claims, &timeout, &begin.role];
    let setup_params = if keep_role {
        &all_params[..2]
    } else {
        &all_params[..]
    };
    let verb = if begin.read_only {
        "begin transaction read only"
    } else {
        "begin"
    };
    let mut begin_f = pin!(client.batch_execute(verb));
    let mut setup_f = pin!(client.execute(&setup, setup_params));
    let begin_early = poll_once(begin_f.as_mut()).await;
    let setup_early = poll_once(setup_f.as_mut()).await;
    let mut prepare_f = pin!(client.prepare_cached(sql));
    let prepared_early = poll_once(prepare_f.as_mut()).await;
    match prepared_early {
        Some(Ok(statement)) => {
            let outcome = {
                let mut run_f = pin!(execute(client, &statement, params, kind));
                let run_early = poll_once(run_f.as_mut()).await;
                finish(begin_early, begin_f)
                    .await
                    .map_err(FirstError::Begin)?;
                finish(setup_early, setup_f)
                    .await
                    .map_err(FirstError::Begin)?;
                finish(run_early, run_f)
                    .await
                    .map_err(FirstError::Statement)?
            };
            Ok((statement, outcome))
        }
        early => {
            // Responses are awaited in the order they arrive: the connection
            // hands each request its responses through a one-slot channel
            // and stops reading the socket while one is full, so waiting on
            // the `Parse` before draining `begin` and the role switch can
            // deadlock once their responses outgrow the slots.
            let begun = finish(begin_early, begin_f).await;
            let set = finish(setup_early, setup_f).await;
            let prepared = finish(early, prepare_f).await;
            begun.map_err(FirstError::Begin)?;
            set.map_err(FirstError::Begin)?;
            let statement =
                prepared.map_err(|e| FirstError::Statement(StatementError::from_pg(e)))?;
            let outcome = execute(client, &statement, params, kind)
                .await
                .map_err(FirstError::Statement)?;
            Ok((statement, outcome))
        }
    }
}

/// A query's result as the `db` interface hands it over.
fn rows(statement: &Statement, outcome: Outcome) -> Result<Rows, StatementError> {
    let Outcome::Rows(rows) = outcome else {
        return Ok(Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        });
    };
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

/// Refuses a call whose parameter count does not match the statement, as
/// PostgreSQL would, but before anything is sent.
fn check_arity(statement: &Statement, given: usize) -> Result<(), StatementError> {
    let expected = statement.params().len();
    if expected == given {
        return Ok(());
    }
    Err(StatementError::refused(
        "08P01",
        format!("the statement takes {expected} parameters but {given} were given"),
    ))
}

impl Drop for InvocationTx {
    fn drop(&mut self) {
        if let State::Open(client) = std::mem::replace(&mut self.state, State::Closed) {
            // Mid-transaction: never hand this connection to another request.
            let _ = Object::take(*client);
        }
    }
}
