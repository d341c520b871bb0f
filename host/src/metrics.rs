//! What `/metrics` shows (Prometheus scrapes it; the text is OpenMetrics):
//! every request of every API on both ports, counted by API, method and
//! status, with its duration and the requests in flight; and, read at
//! scrape time, the state other layers keep (function invocations, event
//! deliveries, realtime connections, the database pools).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// The API a request belongs to: a small fixed set, so a label of it
/// cannot grow with what clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Rest,
    Auth,
    Storage,
    Realtime,
    Functions,
    /// SelfDB's own routes under `/api/v1`.
    Admin,
    /// `/projects/{id}/...`: the data API over a registered database.
    Projects,
    /// Dbify's `POST /query` and `POST /api/crud`.
    Dbify,
    Health,
    Metrics,
    /// The S3 port.
    S3,
    /// The dashboard's files at `/_/`.
    Dashboard,
    /// SelfDB's own API (`/users`, `/tables`, `/storage/buckets`,
    /// `/storage/files`, `/realtime/socket`), for its SDKs.
    SelfDb,
    Other,
}

impl Api {
    pub fn of_path(path: &str) -> Api {
        let mut segments = path.trim_start_matches('/').split('/');
        match (segments.next().unwrap_or_default(), segments.next()) {
            ("rest", Some("v1")) => Api::Rest,
            ("auth", Some("v1")) => Api::Auth,
            ("storage", Some("v1")) => Api::Storage,
            ("realtime", Some("v1")) => Api::Realtime,
            ("functions", Some("v1")) => Api::Functions,
            ("api", Some("v1")) => Api::Admin,
            ("api", Some("crud")) | ("query", None) => Api::Dbify,
            ("projects", Some(_)) => Api::Projects,
            ("health", None) => Api::Health,
            ("metrics", None) => Api::Metrics,
            ("_", _) => Api::Dashboard,
            ("users" | "tables", _)
            | ("storage", Some("buckets" | "files"))
            | ("realtime", Some("socket")) => Api::SelfDb,
            _ => Api::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Api::Rest => "rest",
            Api::Auth => "auth",
            Api::Storage => "storage",
            Api::Realtime => "realtime",
            Api::Functions => "functions",
            Api::Admin => "admin",
            Api::Projects => "projects",
            Api::Dbify => "dbify",
            Api::Health => "health",
            Api::Metrics => "metrics",
            Api::S3 => "s3",
            Api::Dashboard => "dashboard",
            Api::SelfDb => "selfdb",
            Api::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    api: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabel {
    api: &'static str,
}

/// Values other layers keep, read when `/metrics` is scraped.
pub struct Snapshot {
    pub invocations: u64,
    pub invocation_failures: u64,
    pub instantiations: u64,
    pub instantiate_seconds: f64,
    pub active_invocations: u64,
    pub events_delivered: u64,
    pub events_failed: u64,
    pub events_dead: u64,
    pub realtime_connections: u64,
    /// (pool name, connections open, connections idle).
    pub pools: Vec<(&'static str, u64, u64)>,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<ApiLabel, Histogram>,
    in_flight: Family<ApiLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 1 ms to about 16 s.
        let durations = Family::<ApiLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        let in_flight = Family::<ApiLabel, Gauge>::default();
        registry.register(
            "selfdb_http_requests",
            "Requests answered, by API, method and status",
            requests.clone(),
        );
        registry.register(
            "selfdb_http_request_duration_seconds",
            "Time from a request's arrival to its response's head, by API",
            durations.clone(),
        );
        registry.register(
            "selfdb_http_requests_in_flight",
            "Requests being answered, by API",
            in_flight.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            in_flight,
        }
    }

    /// Counts a request in; the guard counts it out when dropped.
    pub fn started(&self, api: Api) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create(&ApiLabel { api: api.as_str() })
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    pub fn answered(&self, api: Api, method: &'static str, status: u16, elapsed: Duration) {
        let api = api.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                api,
                method,
                status,
            })
            .inc();
        self.durations
            .get_or_create(&ApiLabel { api })
            .observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text of everything.
    pub fn render(&self, snapshot: Snapshot) -> Result<String, std::fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut now = Registry::default();
        let counter = |n: u64| ConstCounter::new(n);
        now.register(
            "selfdb_invocations",
            "Function invocations",
            counter(snapshot.invocations),
        );
        now.register(
            "selfdb_invocation_failures",
            "Function invocations that failed (trap, limit, error)",
            counter(snapshot.invocation_failures),
        );
        now.register(
            "selfdb_instantiations",
            "Component instantiations",
            counter(snapshot.instantiations),
        );
        now.register(
            "selfdb_instantiate_seconds",
            "Time spent instantiating components",
            ConstCounter::new(snapshot.instantiate_seconds),
        );
        now.register(
            "selfdb_active_invocations",
            "Function invocations running now",
            ConstGauge::new(snapshot.active_invocations as i64),
        );
        now.register(
            "selfdb_event_deliveries",
            "Event deliveries (triggers, schedules, custom events) that succeeded",
            counter(snapshot.events_delivered),
        );
        now.register(
            "selfdb_event_delivery_failures",
            "Event deliveries that failed and will be retried",
            counter(snapshot.events_failed),
        );
        now.register(
            "selfdb_event_dead_letters",
            "Event deliveries given up on (dead letters)",
            counter(snapshot.events_dead),
        );
        now.register(
            "selfdb_realtime_connections",
            "Open realtime WebSocket connections on this host",
            ConstGauge::new(snapshot.realtime_connections as i64),
        );
        let open = Family::<PoolLabel, Gauge>::default();
        let idle = Family::<PoolLabel, Gauge>::default();
        for (pool, size, available) in &snapshot.pools {
            let label = PoolLabel { pool };
            open.get_or_create(&label).set(*size as i64);
            idle.get_or_create(&label).set(*available as i64);
        }
        now.register(
            "selfdb_db_pool_connections",
            "Connections open in each database pool",
            open,
        );
        now.register(
            "selfdb_db_pool_idle_connections",
            "Open connections waiting for work in each database pool",
            idle,
        );
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;
        encode_registry(&mut text, &now)?;
        encode_eof(&mut text)?;
        Ok(text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabel {
    pool: &'static str,
}

/// A request being answered; counted out when dropped (also when the
/// client goes away mid-request and the handler is cancelled).
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_api() {
        assert_eq!(Api::of_path("/rest/v1/todos"), Api::Rest);
        assert_eq!(Api::of_path("/auth/v1/token"), Api::Auth);
        assert_eq!(Api::of_path("/functions/v1/hello/x"), Api::Functions);
        assert_eq!(Api::of_path("/api/v1/functions"), Api::Admin);
        assert_eq!(Api::of_path("/api/crud"), Api::Dbify);
        assert_eq!(Api::of_path("/query"), Api::Dbify);
        assert_eq!(Api::of_path("/projects/3/rest/v1/x"), Api::Projects);
        assert_eq!(Api::of_path("/metrics"), Api::Metrics);
        assert_eq!(Api::of_path("/users/token"), Api::SelfDb);
        assert_eq!(Api::of_path("/tables/"), Api::SelfDb);
        assert_eq!(Api::of_path("/storage/files/upload"), Api::SelfDb);
        assert_eq!(Api::of_path("/storage/v1/object/x"), Api::Storage);
        assert_eq!(Api::of_path("/realtime/socket"), Api::SelfDb);
        assert_eq!(Api::of_path("/nope"), Api::Other);
        assert_eq!(Api::of_path("/"), Api::Other);
    }

    #[test]
    fn the_text_has_every_family_and_ends_with_eof() {
        let metrics = Metrics::new();
        metrics.answered(Api::Rest, "GET", 200, Duration::from_millis(3));
        let guard = metrics.started(Api::S3);
        let text = metrics
            .render(Snapshot {
                invocations: 2,
                invocation_failures: 0,
                instantiations: 1,
                instantiate_seconds: 0.5,
                active_invocations: 0,
                events_delivered: 0,
                events_failed: 0,
                events_dead: 0,
                realtime_connections: 4,
                pools: vec![("api", 3, 1)],
            })
            .unwrap();
        drop(guard);
        assert!(
            text.contains(r#"selfdb_http_requests_total{api="rest",method="GET",status="200"} 1"#)
        );
        assert!(text.contains(r#"selfdb_http_requests_in_flight{api="s3"} 1"#));
        assert!(text.contains("selfdb_invocations_total 2"));
        assert!(text.contains("selfdb_realtime_connections 4"));
        assert!(text.contains(r#"selfdb_db_pool_connections{pool="api"} 3"#));
        assert!(text.ends_with("# EOF\n"));
    }
}
