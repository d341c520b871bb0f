//! Reading the request log: pages of records, and analytics (totals,
//! latency, error rate, per endpoint, per hour or day).

use super::{LogError, Sink};
use crate::db::{Database, DbError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Which records: one project's (or the main instance's with `None`),
/// narrowed by the optional fields.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub project_id: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub endpoint: Option<String>,
    pub table: Option<String>,
    pub operation: Option<String>,
    pub status: Option<i16>,
    /// Only failures (status 400 and above).
    pub errors: bool,
    /// The HTTP method, upper case as logged.
    pub method: Option<String>,
}

/// The `where` shared by both reads; parameters $1..$9 are the filter.
const WHERE: &str = "(project_id = $1 or ($1::bigint is null and project_id is null)) \
    and ($2::timestamptz is null or at >= $2) and ($3::timestamptz is null or at < $3) \
    and ($4::text is null or endpoint = $4) and ($5::text is null or table_name = $5) \
    and ($6::text is null or operation = $6) and ($7::smallint is null or status = $7) \
    and (not $8 or status >= 400) and ($9::text is null or method = $9)";

/// Microseconds, as stored: a page's last time is the next page's bound.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Filter {
    /// $1..$9 of [`WHERE`].
    fn params(&self) -> [&(dyn postgres_types::ToSql + Sync); 9] {
        [
            &self.project_id,
            &self.from,
            &self.to,
            &self.endpoint,
            &self.table,
            &self.operation,
            &self.status,
            &self.errors,
            &self.method,
        ]
    }
}

/// Where a page of records ends: the last record's time and id (records
/// logged in one microsecond are ordered by id). Written `<time>~<id>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Option<i64>,
}

impl Cursor {
    /// `<RFC 3339 time>` (records strictly older) or `<time>~<id>`.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let (time, id) = match text.split_once('~') {
            Some((time, id)) => (
                time,
                Some(
                    id.parse::<i64>()
                        .map_err(|e| format!("the id after ~: {e}"))?,
                ),
            ),
            None => (text, None),
        };
        let at = DateTime::parse_from_rfc3339(time)
            .map_err(|e| format!("an RFC 3339 time: {e}"))?
            .with_timezone(&Utc);
        Ok(Cursor { at, id })
    }

    pub fn text(&self) -> String {
        match self.id {
            Some(id) => format!("{}~{id}", iso(self.at)),
            None => iso(self.at),
        }
    }
}

/// The newest records first, at most `limit`, after `before` (the
/// previous page's cursor) when given, with the next page's cursor when
/// there may be more.
pub async fn records(
    sink: &Sink,
    filter: &Filter,
    limit: i64,
    before: Option<Cursor>,
) -> Result<(Vec<Value>, Option<Cursor>), LogError> {
    Ok(match sink {
        Sink::Postgres(db) => pg_records(db, filter, limit, before).await?,
        Sink::ClickHouse(ch) => ch.records(filter, limit, before).await?,
    })
}

/// Totals, per endpoint (with table and operation) and per `bucket`
/// (`hour` or `day`) over the filtered records.
pub async fn analytics(sink: &Sink, filter: &Filter, bucket: &str) -> Result<Value, LogError> {
    Ok(match sink {
        Sink::Postgres(db) => pg_analytics(db, filter, bucket).await?,
        Sink::ClickHouse(ch) => ch.analytics(filter, bucket).await?,
    })
}

async fn pg_records(
    db: &Database,
    filter: &Filter,
    limit: i64,
    before: Option<Cursor>,
) -> Result<(Vec<Value>, Option<Cursor>), DbError> {
    let client = db.owner().get().await?;
    let (before_at, before_id) = (before.map(|c| c.at), before.and_then(|c| c.id));
    let rows = client
        .query(
            &format!(
                "select at, project_id, method, endpoint, table_name, operation, status, \
                        latency_ms, bytes_in, bytes_out, id \
                 from selfdb.request_logs where {WHERE} \
                   and ($10::timestamptz is null or at < $10 \
                        or ($12::bigint is not null and at = $10 and coalesce(id, 0) < $12)) \
                 order by at desc, coalesce(id, 0) desc limit $11"
            ),
            &[
                filter.params().as_slice(),
                &[&before_at, &limit, &before_id],
            ]
            .concat(),
        )
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| Cursor {
            at: r.get(0),
            id: Some(r.get::<_, Option<i64>>(10).unwrap_or(0)),
        });
    let records = rows
        .iter()
        .map(|r| {
            json!({
                "at": iso(r.get(0)),
                "project_id": r.get::<_, Option<i64>>(1),
                "method": r.get::<_, String>(2),
                "endpoint": r.get::<_, String>(3),
                "table": r.get::<_, Option<String>>(4),
                "operation": r.get::<_, Option<String>>(5),
                "status": r.get::<_, i16>(6),
                "latency_ms": r.get::<_, f32>(7),
                "bytes_in": r.get::<_, i64>(8),
                "bytes_out": r.get::<_, i64>(9),
                "id": r.get::<_, Option<i64>>(10),
            })
        })
        .collect();
    Ok((records, next))
}

async fn pg_analytics(db: &Database, filter: &Filter, bucket: &str) -> Result<Value, DbError> {
    let bucket = match bucket {
        "day" => "day",
        "minute" => "minute",
        _ => "hour",
    };
    let client = db.owner().get().await?;
    let params = filter.params();
    let summary = "count(*), coalesce(avg(latency_ms), 0)::float8, \
        coalesce(percentile_cont(0.95) within group (order by latency_ms), 0)::float8, \
        coalesce(avg((status >= 400)::int), 0)::float8, coalesce(sum(bytes_in), 0)::int8, \
        coalesce(sum(bytes_out), 0)::int8";
    let totals = client
        .query_one(
            &format!("select {summary} from selfdb.request_logs where {WHERE}"),
            &params,
        )
        .await?;
    let stats = |row: &tokio_postgres::Row, offset: usize| {
        json!({
            "requests": row.get::<_, i64>(offset),
            "avg_latency_ms": row.get::<_, f64>(offset + 1),
            "p95_latency_ms": row.get::<_, f64>(offset + 2),
            "error_rate": row.get::<_, f64>(offset + 3),
            "bytes_in": row.get::<_, i64>(offset + 4),
            "bytes_out": row.get::<_, i64>(offset + 5),
        })
    };
    let per_endpoint = client
        .query(
            &format!(
                "select endpoint, table_name, operation, {summary} from selfdb.request_logs \
                 where {WHERE} group by endpoint, table_name, operation \
                 order by count(*) desc limit 500"
            ),
            &params,
        )
        .await?;
    // `bucket` is one of three constants.
    let per_time = client
        .query(
            &format!(
                "select date_trunc('{bucket}', at), {summary} from selfdb.request_logs \
                 where {WHERE} group by 1 order by 1 limit 2000"
            ),
            &params,
        )
        .await?;
    Ok(json!({
        "totals": stats(&totals, 0),
        "endpoints": per_endpoint.iter().map(|r| {
            let mut s = stats(r, 3);
            s["endpoint"] = json!(r.get::<_, String>(0));
            s["table"] = json!(r.get::<_, Option<String>>(1));
            s["operation"] = json!(r.get::<_, Option<String>>(2));
            s
        }).collect::<Vec<_>>(),
        "bucket": bucket,
        "series": per_time.iter().map(|r| {
            let mut s = stats(r, 1);
            s["at"] = json!(iso(r.get(0)));
            s
        }).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_read_back_what_they_write() {
        let cursor = Cursor::parse("2026-12-06T15:00:00.123456Z~42").unwrap();
        assert_eq!(cursor.id, Some(42));
        assert_eq!(cursor.text(), "2026-12-06T15:00:00.123456Z~42");
        let plain = Cursor::parse("2026-12-06T16:00:00+01:00").unwrap();
        assert_eq!(plain.id, None);
        assert_eq!(plain.text(), "2026-12-06T15:00:00.000000Z");
        assert!(Cursor::parse("yesterday").is_err());
        assert!(Cursor::parse("2026-12-06T15:00:00Z~x").is_err());
    }
}
