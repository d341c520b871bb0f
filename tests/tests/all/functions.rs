//! User functions at `/functions/v1`: the hello example runs a
//! parameterised query as the caller's role, and a function sees its
//! principal and its `[functions.NAME.config]` table.

use reqwest::StatusCode;
use selfdb_tests::{user_token, Host, RequestExt};
use serde_json::json;

#[tokio::test]
async fn hello_runs_a_parameterised_query_as_the_callers_role() {
    let host = Host::serve().await.start();
    let path = "/functions/v1/hello";

    let anon = host
        .get(path)
        .query(&[("name", "Ada'; drop table x; --")])
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(
        anon,
        json!({"greeting": "Hello, Ada'; drop table x; --!", "role": "anon"})
    );

    let service = host.get(path).apikey(host.service_key()).fetch_json().await;
    assert_eq!(
        service,
        json!({"greeting": "Hello, world!", "role": "service_role"})
    );

    let user = host
        .post(path)
        .apikey(host.anon_key())
        .bearer_auth(user_token("5f0e7b3c-0000-4000-8000-000000000001", 60))
        .json(&json!({"name": "Grace"}))
        .fetch_json()
        .await;
    assert_eq!(
        user,
        json!({"greeting": "Hello, Grace!", "role": "authenticated"})
    );

    let bad_json = host
        .post(path)
        .apikey(host.anon_key())
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .fetch_error(StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(bad_json, "invalid_json");
}

#[tokio::test]
async fn functions_see_their_principal_and_config() {
    let data = selfdb_tests::dev_data_dir();
    std::fs::write(
        data.join("selfdb.toml"),
        "[functions.misbehave.config]\nGREETING = \"hi from config\"\n",
    )
    .unwrap();
    let host = Host::serve()
        .await
        .arg("--config")
        .arg(data.join("selfdb.toml").display().to_string())
        .start();
    let who = host
        .get("/functions/v1/misbehave?mode=whoami")
        .apikey(host.anon_key())
        .bearer_auth(user_token("c0000000-0000-4000-8000-00000000000c", 60))
        .fetch_json()
        .await;
    assert_eq!(
        who,
        json!({"role": "authenticated", "user_id": "c0000000-0000-4000-8000-00000000000c", "greeting": "hi from config"})
    );
}
