//! What the dashboard's Auth page uses beyond GoTrue's admin users API:
//! `filter` on the users list (GoTrue's own parameter), and users' sessions
//! for admins (`/api/v1/auth/sessions`): listed newest first and paged,
//! ended one at a time or all of a user's, after which their refresh
//! tokens no longer work.

use reqwest::StatusCode;
use selfdb_tests::{Host, RequestExt};
use serde_json::{json, Value};

async fn sign_in(host: &Host, email: &str) -> Value {
    let (status, body) = host
        .post("/auth/v1/token?grant_type=password")
        .apikey(host.anon_key())
        .header("user-agent", "users-test")
        .json(&json!({"email": email, "password": "correct horse 1"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(host: &Host, token: &Value) -> StatusCode {
    host.post("/auth/v1/token?grant_type=refresh_token")
        .apikey(host.anon_key())
        .json(&json!({"refresh_token": token["refresh_token"]}))
        .fetch_status()
        .await
}

async fn sessions(host: &Host, query: &[(&str, &str)]) -> Value {
    host.get("/api/v1/auth/sessions")
        .query(query)
        .service_role(host)
        .fetch_json()
        .await
}

fn emails(list: &Value) -> Vec<String> {
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admins_find_users_and_end_their_sessions() {
    let host = Host::serve().await.start();
    let alice = host.create_user("alice@example.com").await;
    let bob = host.create_user("bob_smith@example.com").await;
    let status = host
        .put(&format!("/auth/v1/admin/users/{bob}"))
        .service_role(&host)
        .json(&json!({"user_metadata": {"full_name": "Robert Smith"}}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);

    // GoTrue's `filter`: part of the email or the full name, any case;
    // `_` and `%` are themselves, not wildcards. The total counts matches.
    for (filter, want) in [
        ("ALICE", vec!["alice@example.com"]),
        ("robert", vec!["bob_smith@example.com"]),
        ("b_s", vec!["bob_smith@example.com"]),
        ("e_c", vec![]),
        ("%", vec![]),
        (
            "example",
            vec!["bob_smith@example.com", "alice@example.com"],
        ),
    ] {
        let response = host
            .get("/auth/v1/admin/users")
            .query(&[("filter", filter)])
            .service_role(&host)
            .fetch()
            .await;
        let total = response.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .to_owned();
        let list: Value = response.json().await.unwrap();
        assert_eq!(emails(&list), want, "filter {filter}");
        assert_eq!(total, want.len().to_string(), "filter {filter}");
    }

    // Sessions, newest first, paged.
    let first = sign_in(&host, "alice@example.com").await;
    let second = sign_in(&host, "alice@example.com").await;
    let _bobs = sign_in(&host, "bob_smith@example.com").await;
    let all = sessions(&host, &[]).await;
    let listed = all["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{all}");
    assert_eq!(listed[0]["email"], "bob_smith@example.com");
    assert_eq!(listed[0]["user_agent"], "users-test");
    assert!(all["next_before"].is_null());
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(cursor) = &before {
            query.push(("before", cursor));
        }
        let page = sessions(&host, &query).await;
        paged.extend(
            page["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].clone()),
        );
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = listed.iter().map(|s| s["id"].clone()).collect();
    assert_eq!(paged, ids);
    let hers = sessions(&host, &[("user_id", &alice)]).await;
    let hers = hers["sessions"].as_array().unwrap().clone();
    assert_eq!(hers.len(), 2);

    // End one: its refresh token is refused; the other still works.
    let newest = hers[0]["id"].as_str().unwrap();
    let status = host
        .delete(&format!("/api/v1/auth/sessions/{newest}"))
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_ne!(refresh(&host, &second).await, StatusCode::OK);
    assert_eq!(refresh(&host, &first).await, StatusCode::OK);

    // End all of hers.
    let ended = host
        .delete(&format!("/api/v1/auth/users/{alice}/sessions"))
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(ended["ended"], 1, "{ended}");
    let left = sessions(&host, &[]).await;
    assert_eq!(left["sessions"].as_array().unwrap().len(), 1, "{left}");

    // Unknown ones, and bad input.
    for path in [
        format!("/api/v1/auth/sessions/{newest}"),
        "/api/v1/auth/sessions/not-a-uuid".to_owned(),
        "/api/v1/auth/users/00000000-0000-0000-0000-000000000000/sessions".to_owned(),
    ] {
        let status = host.delete(&path).service_role(&host).fetch_status().await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for query in ["?limit=0", "?user_id=x", "?before=yesterday"] {
        let status = host
            .get(&format!("/api/v1/auth/sessions{query}"))
            .service_role(&host)
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }
}
