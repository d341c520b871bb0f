//! Running an admin's SQL script (the dashboard's SQL editor, `POST
//! /api/v1/sql`): any statements, several at once, with a statement
//! timeout and a cap on the rows kept per statement.
//!
//! Why it works the way it does:
//! - **A connection of its own**, made for the script and closed after it:
//!   a script may `SET` anything, hold locks or run for minutes, and none of
//!   that may reach the pools that serve requests.
//! - **One transaction around several statements**, as PostgreSQL runs a
//!   multi-statement query string: all or nothing. The script's own
//!   `BEGIN`/`COMMIT` act as they would there (a `COMMIT` ends the
//!   transaction early; what follows runs on its own). A single statement
//!   runs alone, so `VACUUM` or `CREATE INDEX CONCURRENTLY` work.
//! - **Each statement is prepared first** (for its column types and an error
//!   position relative to that statement), **then run with the simple
//!   protocol**: values come back as PostgreSQL's text, so every type shows
//!   (intervals, ranges, geometry), and rows stream, so a huge result is
//!   counted without being kept.
//! - Read-only is a guard against accidents, not a permission: an admin can
//!   run anything anyway.

use super::connect::PgTarget;
use super::guard::{split_statements, Refused, Statement};
use futures::{StreamExt, TryStreamExt};
use postgres_types::Type;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_postgres::{AsyncMessage, SimpleQueryMessage};

/// What a script may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// PostgreSQL's `statement_timeout`, per statement.
    pub timeout: Duration,
    /// Rows kept per statement; the rest are counted.
    pub max_rows: usize,
    pub read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct Column {
    pub name: String,
    /// PostgreSQL's name for the type (`int4`, `timestamptz`).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// What one statement did.
#[derive(Debug, Serialize)]
pub struct StatementResult {
    /// Its index in the script, from 0.
    pub statement: usize,
    /// The statement's first word, upper case (`SELECT`, `CREATE`).
    pub command: Option<String>,
    /// Rows returned (all of them, also those not kept) or changed.
    pub row_count: u64,
    /// Present when the statement returns rows (even none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<Column>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<Value>>>,
    /// More rows than `max_rows` came back; only the first are in `rows`.
    pub truncated: bool,
    pub duration_ms: f64,
}

/// A notice PostgreSQL sent while the script ran (`RAISE NOTICE`, "there
/// is already a transaction in progress").
#[derive(Debug, Serialize)]
pub struct Notice {
    pub severity: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub results: Vec<StatementResult>,
    pub notices: Vec<Notice>,
    pub duration_ms: f64,
}

/// Where and why a statement failed. Nothing of the script is kept (unless
/// the script committed before it).
#[derive(Debug, Serialize)]
pub struct Failure {
    pub statement: usize,
    pub sqlstate: String,
    pub message: String,
    /// 1-based, in characters, in the whole script, as PostgreSQL counts.
    pub position: Option<usize>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// What ran before it, for the editor to show.
    pub results: Vec<StatementResult>,
    pub notices: Vec<Notice>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{0}")]
    Unreadable(Refused),
    #[error("the script has no statement")]
    Empty,
    #[error("connecting to the database: {0}")]
    Connect(String),
    #[error("statement {} failed: {}", .0.statement + 1, .0.message)]
    Failed(Box<Failure>),
}

/// Runs `sql` on a new connection to `target`.
pub async fn run(target: &PgTarget, sql: &str, limits: Limits) -> Result<Outcome, ScriptError> {
    let statements = split_statements(sql).map_err(ScriptError::Unreadable)?;
    if statements.is_empty() {
        return Err(ScriptError::Empty);
    }
    let started = Instant::now();
    let connecting = target.config.connect(target.tls.clone());
    let (client, mut connection) = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| ScriptError::Connect("no answer in 10 s".into()))?
        .map_err(|e| ScriptError::Connect(e.to_string()))?;
    // The connection's own task, which also hands over the notices.
    let (notice_tx, mut notice_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(|cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = notice_tx.send(Notice {
                    severity: notice.severity().to_owned(),
                    message: notice.message().to_owned(),
                });
            }
        }
    });
    let mut script = Script {
        client: &client,
        sql,
        limits,
        results: Vec::with_capacity(statements.len()),
    };
    let outcome = script.run_all(&statements).await;
    let results = std::mem::take(&mut script.results);
    // Dropping the client closes the connection: an open transaction (after
    // a failure) is rolled back by the server.
    drop(client);
    // The connection's task ends, and with it the notices, once the server
    // has the connection closed: at once, short of a network fault.
    let mut notices = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(notice) = notice_rx.recv().await {
            notices.push(notice);
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(Outcome {
            results,
            notices,
            duration_ms: millis(started),
        }),
        Err(Fault::Statement(mut failure)) => {
            failure.results = results;
            failure.notices = notices;
            Err(ScriptError::Failed(failure))
        }
        Err(Fault::Connection(message)) => Err(ScriptError::Connect(message)),
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

enum Fault {
    Statement(Box<Failure>),
    Connection(String),
}

struct Script<'a> {
    client: &'a tokio_postgres::Client,
    sql: &'a str,
    limits: Limits,
    results: Vec<StatementResult>,
}

impl Script<'_> {
    async fn run_all(&mut self, statements: &[Statement]) -> Result<(), Fault> {
        let settings = format!(
            "set statement_timeout = {}; set default_transaction_read_only = {}; \
             set application_name = 'selfdb sql editor'",
            self.limits.timeout.as_millis(),
            if self.limits.read_only { "on" } else { "off" },
        );
        self.client
            .batch_execute(&settings)
            .await
            .map_err(|e| Fault::Connection(e.to_string()))?;
        let together = statements.len() > 1;
        if together {
            self.client
                .batch_execute("begin")
                .await
                .map_err(|e| Fault::Connection(e.to_string()))?;
        }
        // PostgreSQL ends a statement at its timeout; this is for a server
        // or network that stops answering altogether.
        let deadline = self.limits.timeout + Duration::from_secs(5);
        for (index, statement) in statements.iter().enumerate() {
            let result = tokio::time::timeout(deadline, self.run_one(index, statement))
                .await
                .map_err(|_| {
                    Fault::Connection(format!(
                        "statement {} had no answer in {} s",
                        index + 1,
                        deadline.as_secs()
                    ))
                })?
                .map_err(|e| self.fault(index, statement, e))?;
            self.results.push(result);
        }
        if let (true, Some(last)) = (together, statements.last()) {
            // After the script's own COMMIT this only warns. A deferred
            // constraint fails here: the last statement is blamed.
            self.client
                .batch_execute("commit")
                .await
                .map_err(|e| self.fault(statements.len() - 1, last, e))?;
        }
        Ok(())
    }

    async fn run_one(
        &self,
        index: usize,
        statement: &Statement,
    ) -> Result<StatementResult, tokio_postgres::Error> {
        let started = Instant::now();
        let text = &self.sql[statement.range.clone()];
        let prepared = self.client.prepare(text).await?;
        let types: Vec<Type> = prepared
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        drop(prepared);
        let mut stream = std::pin::pin!(self.client.simple_query_raw(text).await?);
        let mut columns = None;
        let mut rows: Option<Vec<Vec<Value>>> = None;
        let mut seen: u64 = 0;
        let mut row_count = 0;
        while let Some(message) = stream.try_next().await? {
            match message {
                SimpleQueryMessage::RowDescription(described) => {
                    columns = Some(
                        described
                            .iter()
                            .enumerate()
                            .map(|(i, c)| Column {
                                name: c.name().to_owned(),
                                type_name: types
                                    .get(i)
                                    .map_or_else(|| "unknown".to_owned(), |t| t.name().to_owned()),
                            })
                            .collect::<Vec<_>>(),
                    );
                    rows = Some(Vec::new());
                }
                SimpleQueryMessage::Row(row) => {
                    seen += 1;
                    let kept = rows.get_or_insert_with(Vec::new);
                    if kept.len() < self.limits.max_rows {
                        kept.push(
                            (0..row.len())
                                .map(|i| json_of(row.get(i), types.get(i)))
                                .collect(),
                        );
                    }
                }
                SimpleQueryMessage::CommandComplete(count) => row_count = count,
                _ => {}
            }
        }
        if rows.is_some() {
            row_count = row_count.max(seen);
        }
        Ok(StatementResult {
            statement: index,
            command: statement.first_word.clone(),
            row_count,
            truncated: seen > self.limits.max_rows as u64,
            columns,
            rows,
            duration_ms: millis(started),
        })
    }

    fn fault(&self, index: usize, statement: &Statement, err: tokio_postgres::Error) -> Fault {
        let Some(db) = err.as_db_error() else {
            return Fault::Connection(err.to_string());
        };
        // PostgreSQL counts characters from 1 in the text it was sent: the
        // statement, which starts this many characters into the script.
        let before = self.sql[..statement.range.start].chars().count();
        let position = match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(before + *p as usize),
            _ => None,
        };
        Fault::Statement(Box::new(Failure {
            statement: index,
            sqlstate: db.code().code().to_owned(),
            message: db.message().to_owned(),
            position,
            detail: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
            results: Vec::new(),
            notices: Vec::new(),
        }))
    }
}

/// A value in PostgreSQL's text form as JSON: numbers and booleans as JSON
/// has them, JSON as JSON, everything else (`int8` and `numeric` too, whose
/// digits a JavaScript number would round) as the text PostgreSQL wrote.
fn json_of(text: Option<&str>, ty: Option<&Type>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    let parsed = match ty {
        Some(&Type::BOOL) => match text {
            "t" => Some(Value::Bool(true)),
            "f" => Some(Value::Bool(false)),
            _ => None,
        },
        Some(&Type::INT2 | &Type::INT4 | &Type::OID) => text.parse::<i64>().ok().map(Value::from),
        Some(&Type::FLOAT4 | &Type::FLOAT8) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Some(&Type::JSON | &Type::JSONB) => serde_json::from_str(text).ok(),
        _ => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::json_of;
    use postgres_types::Type;
    use serde_json::json;

    #[test]
    fn text_values_become_json_where_json_has_the_type() {
        assert_eq!(json_of(None, Some(&Type::INT4)), json!(null));
        assert_eq!(json_of(Some("t"), Some(&Type::BOOL)), json!(true));
        assert_eq!(json_of(Some("-7"), Some(&Type::INT2)), json!(-7));
        assert_eq!(json_of(Some("1.5"), Some(&Type::FLOAT8)), json!(1.5));
        // Exact digits, as PostgreSQL wrote them.
        assert_eq!(
            json_of(Some("9007199254740993"), Some(&Type::INT8)),
            json!("9007199254740993")
        );
        assert_eq!(json_of(Some("NaN"), Some(&Type::FLOAT8)), json!("NaN"));
        assert_eq!(
            json_of(Some(r#"{"a":[1]}"#), Some(&Type::JSONB)),
            json!({"a": [1]})
        );
        assert_eq!(
            json_of(Some("1 day 02:00:00"), Some(&Type::INTERVAL)),
            json!("1 day 02:00:00")
        );
        assert_eq!(json_of(Some("x"), None), json!("x"));
    }
}
