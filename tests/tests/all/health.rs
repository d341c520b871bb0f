//! `/health`: version, database reachability and the runtime's functions
//! and system components.

use selfdb_tests::{Host, RequestExt};
use serde_json::json;

#[tokio::test]
async fn health_reports_version_database_and_runtime() {
    let host = Host::serve().await.start();
    let health = host.get("/health").fetch_json().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["database"]["reachable"], true);
    assert_eq!(health["runtime"]["status"], "ok");
    assert_eq!(
        health["runtime"]["functions"],
        json!(["events", "hello", "misbehave"])
    );
    assert_eq!(
        health["runtime"]["system_components"],
        json!(["auth", "crud"])
    );
    // The system components are called through the record export, not
    // through `wasi:http`; user functions never are.
    assert_eq!(
        health["runtime"]["record_handlers"],
        json!(["auth", "crud"])
    );
}
