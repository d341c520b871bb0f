//! The ClickHouse sink (`--logs-clickhouse-url`): request logs written to
//! and read from a ClickHouse table, for instances whose logs outgrow a
//! day-partitioned PostgreSQL table.
//!
//! Kept to what ClickHouse has had since 18.x (Debian's package, on which
//! it is tested): the HTTP interface with uncompressed RowBinary (the
//! client's schema validation needs a newer server), times as Int64
//! microseconds (DateTime64 came in 20.1), a `Date` partition per day and
//! old days dropped by partition (TTL came in 19.6). The main instance's
//! records have project 0: ClickHouse orders by the project, and sorting
//! keys cannot be Nullable there.

use super::read::{Cursor, Filter};
use super::Record;
use ::clickhouse::{Client, Compression};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

const TABLE: &str = "request_logs";

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("--logs-clickhouse-url: {0}")]
    Url(String),
    #[error("ClickHouse: {0}")]
    Client(#[from] ::clickhouse::error::Error),
    #[error("ClickHouse did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// How long one write, prune or read may take: an unreachable server that
/// drops packets would otherwise hold the writer (and fill its queue) or a
/// logs request for the system's TCP timeout.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

async fn within<T>(
    limit: std::time::Duration,
    work: impl std::future::Future<Output = Result<T, ClickHouseError>>,
) -> Result<T, ClickHouseError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ClickHouseError::Timeout(limit))?
}

/// A ClickHouse database holding the `request_logs` table.
#[derive(Clone)]
pub struct ClickHouseLogs {
    client: Client,
}

/// One record as stored (RowBinary, in the table's column order).
#[derive(::clickhouse::Row, serde::Serialize, serde::Deserialize)]
struct Row {
    day: u16,
    at_us: i64,
    id: i64,
    project: i64,
    method: String,
    endpoint: String,
    table_name: Option<String>,
    operation: Option<String>,
    status: u16,
    latency_ms: f32,
    bytes_in: i64,
    bytes_out: i64,
}

/// count, average and p95 latency, error rate, bytes in and out.
#[derive(::clickhouse::Row, serde::Deserialize)]
struct Stats {
    requests: u64,
    avg_latency_ms: f64,
    p95_latency_ms: f64,
    error_rate: f64,
    bytes_in: i64,
    bytes_out: i64,
}

#[derive(::clickhouse::Row, serde::Deserialize)]
struct EndpointStats {
    endpoint: String,
    table_name: Option<String>,
    operation: Option<String>,
    requests: u64,
    avg_latency_ms: f64,
    p95_latency_ms: f64,
    error_rate: f64,
    bytes_in: i64,
    bytes_out: i64,
}

#[derive(::clickhouse::Row, serde::Deserialize)]
struct TimeStats {
    at: u32,
    requests: u64,
    avg_latency_ms: f64,
    p95_latency_ms: f64,
    error_rate: f64,
    bytes_in: i64,
    bytes_out: i64,
}

const SUMMARY: &str = "count() as requests, \
    if(count() = 0, 0, toFloat64(avg(latency_ms))) as avg_latency_ms, \
    if(count() = 0, 0, toFloat64(quantile(0.95)(latency_ms))) as p95_latency_ms, \
    if(count() = 0, 0, toFloat64(avg(status >= 400))) as error_rate, \
    toInt64(sum(bytes_in)) as bytes_in, toInt64(sum(bytes_out)) as bytes_out";

impl ClickHouseLogs {
    /// `http[s]://user:password@host:port/database`; the database defaults
    /// to `default`, the user to ClickHouse's default user.
    pub fn new(url: &str) -> Result<Self, ClickHouseError> {
        let mut parsed = url::Url::parse(url).map_err(|e| ClickHouseError::Url(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClickHouseError::Url(
                "use ClickHouse's HTTP interface: http:// or https://".into(),
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| ClickHouseError::Url(e.to_string()))
        };
        let user = decode(parsed.username())?;
        let password = parsed.password().map(decode).transpose()?;
        let database = decode(parsed.path().trim_matches('/'))?;
        let database = if database.is_empty() {
            "default".to_owned()
        } else {
            database
        };
        if !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ClickHouseError::Url(format!(
                "database {database:?}: use letters, digits and '_'"
            )));
        }
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_path("");
        let mut client = Client::default()
            .with_url(parsed.as_str().trim_end_matches('/'))
            .with_database(database)
            // Compressed transfers and RowBinaryWithNamesAndTypes need newer
            // servers than the oldest this supports.
            .with_compression(Compression::None)
            .with_validation(false);
        if !user.is_empty() {
            client = client.with_user(user);
        }
        if let Some(password) = password {
            client = client.with_password(password);
        }
        Ok(Self { client })
    }

    /// Creates the table if it is missing.
    pub async fn prepare(&self) -> Result<(), ClickHouseError> {
        within(WRITE_TIMEOUT, async {
            self.client
                .query(&format!(
                    "create table if not exists {TABLE} (\
                   day Date, at_us Int64, id Int64, project Int64, method String, \
                   endpoint String, table_name Nullable(String), operation Nullable(String), \
                   status UInt16, latency_ms Float32, bytes_in Int64, bytes_out Int64\
                 ) engine = MergeTree partition by toYYYYMMDD(day) \
                 order by (project, at_us, id)"
                ))
                .execute()
                .await?;
            Ok(())
        })
        .await
    }

    pub async fn append(&self, batch: &[Record], ids: &[i64]) -> Result<(), ClickHouseError> {
        within(WRITE_TIMEOUT, async {
            let mut insert = self.client.insert::<Row>(TABLE).await?;
            for (r, id) in batch.iter().zip(ids) {
                let day =
                    r.at.date_naive()
                        .signed_duration_since(NaiveDate::default())
                        .num_days();
                insert
                    .write(&Row {
                        day: u16::try_from(day).unwrap_or(u16::MAX),
                        at_us: r.at.timestamp_micros(),
                        id: *id,
                        project: r.project_id.unwrap_or(0),
                        method: r.method.to_owned(),
                        endpoint: r.endpoint.clone(),
                        table_name: r.table.clone(),
                        operation: r.operation.map(str::to_owned),
                        status: r.status,
                        latency_ms: r.latency_ms,
                        bytes_in: r.bytes_in,
                        bytes_out: r.bytes_out,
                    })
                    .await?;
            }
            insert.end().await?;
            Ok(())
        })
        .await
    }

    /// Drops the days before `oldest`.
    pub async fn prune(&self, oldest: NaiveDate) -> Result<(), ClickHouseError> {
        within(WRITE_TIMEOUT, async {
            let partitions = self
                .client
                .query(
                    "select distinct partition from system.parts \
                 where database = currentDatabase() and table = ? and active",
                )
                .bind(TABLE)
                .fetch_all::<String>()
                .await?;
            let cutoff = oldest.format("%Y%m%d").to_string();
            for partition in partitions {
                // Names are YYYYMMDD (the partition key): they compare as dates,
                // and anything else is not ours to drop.
                if partition.len() == 8
                    && partition.bytes().all(|b| b.is_ascii_digit())
                    && partition < cutoff
                {
                    self.client
                        .query(&format!("alter table {TABLE} drop partition {partition}"))
                        .execute()
                        .await?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The filter as a `where` (values bound, never pasted).
    fn filtered(&self, sql: &str, filter: &Filter) -> ::clickhouse::query::Query {
        let mut conditions = vec!["project = ?".to_owned()];
        let optional = [
            (filter.from.is_some(), "at_us >= ?"),
            (filter.to.is_some(), "at_us < ?"),
            (filter.endpoint.is_some(), "endpoint = ?"),
            (filter.table.is_some(), "table_name = ?"),
            (filter.operation.is_some(), "operation = ?"),
            (filter.method.is_some(), "method = ?"),
            (filter.status.is_some(), "status = ?"),
            (filter.errors, "status >= 400"),
        ];
        conditions.extend(
            optional
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| (*c).to_owned()),
        );
        // `?` in the SQL is the client's placeholder: the text around the
        // conditions has none of its own.
        let mut query = self
            .client
            .query(&sql.replace("{where}", &conditions.join(" and ")))
            .bind(filter.project_id.unwrap_or(0));
        if let Some(from) = filter.from {
            query = query.bind(from.timestamp_micros());
        }
        if let Some(to) = filter.to {
            query = query.bind(to.timestamp_micros());
        }
        for text in [
            &filter.endpoint,
            &filter.table,
            &filter.operation,
            &filter.method,
        ]
        .into_iter()
        .flatten()
        {
            query = query.bind(text.as_str());
        }
        if let Some(status) = filter.status {
            query = query.bind(status);
        }
        query
    }

    pub async fn records(
        &self,
        filter: &Filter,
        limit: i64,
        before: Option<Cursor>,
    ) -> Result<(Vec<Value>, Option<Cursor>), ClickHouseError> {
        within(READ_TIMEOUT, async {
            let page = match before {
                None => String::new(),
                Some(Cursor { at, id: None }) => format!(" and at_us < {}", at.timestamp_micros()),
                Some(Cursor { at, id: Some(id) }) => format!(
                    " and (at_us < {at} or (at_us = {at} and id < {id}))",
                    at = at.timestamp_micros()
                ),
            };
            let rows = self
                .filtered(
                    &format!(
                        "select day, at_us, id, project, method, endpoint, table_name, operation, \
                       status, latency_ms, bytes_in, bytes_out \
                     from {TABLE} where {{where}}{page} \
                     order by at_us desc, id desc limit {limit}"
                    ),
                    filter,
                )
                .fetch_all::<Row>()
                .await?;
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last())
                .flatten()
                .map(|r| Cursor {
                    at: micros(r.at_us),
                    id: Some(r.id),
                });
            let records = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "at": micros(r.at_us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        "project_id": (r.project != 0).then_some(r.project),
                        "method": r.method,
                        "endpoint": r.endpoint,
                        "table": r.table_name,
                        "operation": r.operation,
                        "status": r.status,
                        "latency_ms": r.latency_ms,
                        "bytes_in": r.bytes_in,
                        "bytes_out": r.bytes_out,
                        "id": r.id,
                    })
                })
                .collect();
            Ok((records, next))
        })
        .await
    }

    /// The same answer as the PostgreSQL sink's analytics.
    pub async fn analytics(&self, filter: &Filter, bucket: &str) -> Result<Value, ClickHouseError> {
        within(READ_TIMEOUT, async {
            let (start, bucket) = match bucket {
                "day" => ("toStartOfDay", "day"),
                "minute" => ("toStartOfMinute", "minute"),
                _ => ("toStartOfHour", "hour"),
            };
            let totals = self
                .filtered(
                    &format!("select {SUMMARY} from {TABLE} where {{where}}"),
                    filter,
                )
                .fetch_one::<Stats>()
                .await?;
            let endpoints = self
                .filtered(
                    &format!(
                        "select endpoint, table_name, operation, {SUMMARY} from {TABLE} \
                     where {{where}} group by endpoint, table_name, operation \
                     order by requests desc limit 500"
                    ),
                    filter,
                )
                .fetch_all::<EndpointStats>()
                .await?;
            // `start` is one of two constants.
            let series = self
                .filtered(
                    &format!(
                    "select toUInt32({start}(toDateTime(intDiv(at_us, 1000000), 'UTC'))) as at, \
                       {SUMMARY} from {TABLE} where {{where}} group by at order by at limit 2000"
                ),
                    filter,
                )
                .fetch_all::<TimeStats>()
                .await?;
            let stats =
                |requests: u64, avg: f64, p95: f64, errors: f64, bytes_in: i64, bytes_out: i64| {
                    json!({
                        "requests": requests,
                        "avg_latency_ms": avg,
                        "p95_latency_ms": p95,
                        "error_rate": errors,
                        "bytes_in": bytes_in,
                        "bytes_out": bytes_out,
                    })
                };
            Ok(json!({
                "totals": stats(totals.requests, totals.avg_latency_ms, totals.p95_latency_ms,
                    totals.error_rate, totals.bytes_in, totals.bytes_out),
                "endpoints": endpoints.into_iter().map(|e| {
                    let mut s = stats(e.requests, e.avg_latency_ms, e.p95_latency_ms, e.error_rate,
                        e.bytes_in, e.bytes_out);
                    s["endpoint"] = json!(e.endpoint);
                    s["table"] = json!(e.table_name);
                    s["operation"] = json!(e.operation);
                    s
                }).collect::<Vec<_>>(),
                "bucket": bucket,
                "series": series.into_iter().map(|t| {
                    let mut s = stats(t.requests, t.avg_latency_ms, t.p95_latency_ms, t.error_rate,
                        t.bytes_in, t.bytes_out);
                    s["at"] = json!(micros(i64::from(t.at) * 1_000_000)
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                    s
                }).collect::<Vec<_>>(),
            }))
        })
        .await
    }
}

fn micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}
