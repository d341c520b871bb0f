//! The admin API for S3 access keys (`/api/v1/s3/keys`): service key only,
//! users must exist, secrets are shown once, revoked keys are gone.

use reqwest::StatusCode;
use selfdb_tests::{Host, RequestExt};
use serde_json::json;

#[tokio::test]
async fn s3_key_admin_needs_the_service_key() {
    let host = Host::serve().await.start();
    let keys = "/api/v1/s3/keys";
    let (status, body) = host
        .get(keys)
        .apikey(host.anon_key())
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    let unknown_user = host
        .post(keys)
        .service_role(&host)
        .json(&json!({"user_id": "00000000-0000-0000-0000-000000000000"}))
        .fetch_status()
        .await;
    assert_eq!(unknown_user, StatusCode::NOT_FOUND);
    let bad_json = host
        .post(keys)
        .service_role(&host)
        .body("{\"user_id\": ")
        .fetch_status()
        .await;
    assert_eq!(bad_json, StatusCode::BAD_REQUEST);
    let (id, _) = host.create_s3_key(None).await;
    let listed = host.get(keys).service_role(&host).fetch_json().await;
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["access_key_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id.as_str()));
    assert!(ids.contains(&host.env["S3_ACCESS_KEY_ID"].as_str()));
    assert!(
        listed["keys"][0].get("secret_access_key").is_none(),
        "secrets are shown once, at creation"
    );
    let missing = host
        .delete("/api/v1/s3/keys/NOSUCHKEY")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
}
