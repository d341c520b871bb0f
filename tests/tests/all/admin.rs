//! Admin sessions (`/api/v1/admin/*`, `/api/v1/admins`): the first admin
//! signs in with the password the host printed, the access token works on
//! the admin API and, as the service role, on the Supabase APIs; the
//! refresh token rotates and a replayed one ends the session; signing out,
//! a new password and a removed admin take effect on the admin API at once;
//! sign-in attempts are limited; and every admin route refuses anyone who
//! is neither an admin nor the service key.

use reqwest::{Method, StatusCode};
use selfdb_tests::{error_code, psql, sign, user_token, Host, RequestExt};
use serde_json::{json, Value};

/// A signed-in admin: the access token and the refresh cookie's token.
struct Session {
    access: String,
    refresh: String,
}

fn first_admin(host: &Host) -> (String, String) {
    (
        host.env["SELFDB_ADMIN_EMAIL"].clone(),
        host.env
            .get("SELFDB_ADMIN_PASSWORD")
            .expect("a generated first admin password")
            .clone(),
    )
}

/// The refresh token a response's `Set-Cookie` carries, checked to be an
/// HttpOnly, SameSite=Strict cookie scoped to the admin API.
fn refresh_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a refresh cookie")
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/admin"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("selfdb_admin_refresh="))
        .expect("the cookie's name")
        .to_owned()
}

async fn sign_in(host: &Host, email: &str, password: &str) -> Session {
    let response = host
        .post("/api/v1/admin/token?grant_type=password")
        .json(&json!({"email": email, "password": password}))
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let refresh = refresh_cookie(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["admin"]["email"], email);
    Session {
        access: body["access_token"].as_str().expect("token").to_owned(),
        refresh,
    }
}

async fn refresh(host: &Host, token: &str) -> reqwest::Response {
    host.post("/api/v1/admin/token?grant_type=refresh_token")
        .header("cookie", format!("selfdb_admin_refresh={token}"))
        .header("content-type", "application/json")
        .body("{}")
        .fetch()
        .await
}

/// `GET /api/v1/admin/me` with an admin token and no apikey.
async fn me(host: &Host, access: &str) -> (StatusCode, Value) {
    host.get("/api/v1/admin/me")
        .bearer_auth(access)
        .fetch_status_json()
        .await
}

#[tokio::test]
async fn an_admin_signs_in_refreshes_and_signs_out() {
    let host = Host::serve().await.start();
    let (email, password) = first_admin(&host);
    // The sign-in limit counts failures only: more successful sign-ins
    // than it allows (5 per email) all succeed (tabs, browsers, scripts).
    for _ in 0..7 {
        sign_in(&host, &email, &password).await;
    }
    let session = sign_in(&host, &email, &password).await;
    let (status, who) = me(&host, &session.access).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    assert_eq!(who["email"], email.as_str());
    assert!(who["last_sign_in_at"].is_string(), "{who}");

    // The admin API without any key; the Supabase APIs as the service
    // role, with the anon key as apikey: rows behind RLS, auth's admin
    // routes, storage.
    let status = host
        .get("/api/v1/functions")
        .bearer_auth(&session.access)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    psql(host.database_url.as_deref().unwrap())
        .await
        .batch_execute(
            "create table ledger (id int primary key); insert into ledger values (1), (2); \
             alter table ledger enable row level security;",
        )
        .await
        .unwrap();
    let admin_get = |path: &'static str| {
        host.get(path)
            .apikey(host.anon_key())
            .bearer_auth(&session.access)
            .fetch_status_json()
    };
    let rows = selfdb_tests::eventually(std::time::Duration::from_secs(30), || async {
        admin_get("/rest/v1/ledger?order=id").await.1 == json!([{"id": 1}, {"id": 2}])
    })
    .await;
    assert!(rows, "the admin reads rows RLS hides from others");
    let anonymous = host
        .get("/rest/v1/ledger")
        .apikey(host.anon_key())
        .fetch_json()
        .await;
    assert_eq!(anonymous, json!([]));
    let (status, users) = admin_get("/auth/v1/admin/users").await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let (status, buckets) = admin_get("/storage/v1/bucket").await;
    assert_eq!(status, StatusCode::OK, "{buckets}");

    // Refreshing rotates the token; a refresh needs JSON (no cross-site
    // form can send it).
    let not_json = host
        .post("/api/v1/admin/token?grant_type=refresh_token")
        .header(
            "cookie",
            format!("selfdb_admin_refresh={}", session.refresh),
        )
        .fetch_error(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await;
    assert_eq!(not_json, "json_required");
    let response = refresh(&host, &session.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = refresh_cookie(&response);
    assert_ne!(rotated, session.refresh);
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&host, &access).await.0, StatusCode::OK);

    // The replaced token presented again at once is a race (another tab,
    // a retry): refused, the session kept.
    let raced = refresh(&host, &session.refresh).await;
    assert!(raced.headers().get("set-cookie").is_none());
    assert_eq!(
        error_code(raced, StatusCode::CONFLICT).await,
        "refresh_token_stale"
    );
    assert_eq!(me(&host, &access).await.0, StatusCode::OK);
    // Later, it means the token leaked: the session ends, its newest
    // refresh token and access tokens with it. (The rotation is moved a
    // minute into the past rather than waited for.)
    psql(host.database_url.as_deref().unwrap())
        .await
        .batch_execute(
            "update selfdb.admin_sessions set refreshed_at = refreshed_at - interval '1 minute'",
        )
        .await
        .unwrap();
    let replayed = refresh(&host, &session.refresh).await;
    assert_eq!(
        error_code(replayed, StatusCode::UNAUTHORIZED).await,
        "refresh_token_reused"
    );
    let after = refresh(&host, &rotated).await;
    assert_eq!(
        error_code(after, StatusCode::UNAUTHORIZED).await,
        "invalid_refresh_token"
    );
    let (status, body) = me(&host, &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "session_revoked");

    // Signing out ends a session on the admin API at once.
    let session = sign_in(&host, &email, &password).await;
    let response = host
        .post("/api/v1/admin/logout")
        .bearer_auth(&session.access)
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let code = host
        .get("/api/v1/functions")
        .bearer_auth(&session.access)
        .fetch_error(StatusCode::UNAUTHORIZED)
        .await;
    assert_eq!(code, "session_revoked");
    let again = refresh(&host, &session.refresh).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_passwords_are_refused_alike_and_limited() {
    let host = Host::serve()
        .await
        .arg("--auth-failed-sign-ins-per-email")
        .arg("3")
        .start();
    let (email, password) = first_admin(&host);
    let attempt = |email: String, password: String| {
        host.post("/api/v1/admin/token?grant_type=password")
            .json(&json!({"email": email, "password": password}))
            .fetch()
    };
    // An unknown email and a wrong password get the same answer.
    let unknown = attempt("nobody@example.com".into(), password.clone()).await;
    let unknown_body: Value = {
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        unknown.json().await.unwrap()
    };
    for n in 1..=3 {
        let wrong = attempt(email.clone(), format!("wrong {n}")).await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body, unknown_body);
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    // Even the right password waits now.
    let limited = attempt(email.clone(), password.clone()).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 300, "{retry_after}");
    // Malformed requests are refused clearly; only JSON is taken, which no
    // cross-site form can send.
    let code = host
        .post("/api/v1/admin/token?grant_type=password")
        .header("content-type", "application/json")
        .body("not json")
        .fetch_error(StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(code, "invalid_json");
    let code = host
        .post("/api/v1/admin/token?grant_type=password")
        .header("content-type", "text/plain")
        .body(json!({"email": email, "password": password}).to_string())
        .fetch_error(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .await;
    assert_eq!(code, "json_required");
    let code = host
        .post("/api/v1/admin/token?grant_type=magic")
        .json(&json!({}))
        .fetch_error(StatusCode::BAD_REQUEST)
        .await;
    assert_eq!(code, "unsupported_grant_type");
}

#[tokio::test]
async fn admins_add_remove_and_reset_each_other() {
    let host = Host::serve().await.start();
    let (email, password) = first_admin(&host);
    let first = sign_in(&host, &email, &password).await;
    let add = |body: Value| {
        host.post("/api/v1/admins")
            .bearer_auth(&first.access)
            .json(&body)
            .fetch_status_json()
    };
    let (status, second) =
        add(json!({"email": "second@example.com", "password": "second password"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, body) =
        add(json!({"email": "SECOND@example.com", "password": "another one"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = add(json!({"email": "third@example.com", "password": "abc"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "weak_password");
    let (status, body) = add(json!({"email": "not an email", "password": "long enough"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let listed = host
        .get("/api/v1/admins")
        .bearer_auth(&first.access)
        .fetch_json()
        .await;
    let emails: Vec<&str> = listed["admins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["email"].as_str())
        .collect();
    assert_eq!(emails, vec![email.as_str(), "second@example.com"]);

    // The second admin signs in; removed, their session ends at once.
    let second_session = sign_in(&host, "second@example.com", "second password").await;
    assert_eq!(me(&host, &second_session.access).await.0, StatusCode::OK);
    let second_id = second["id"].as_str().unwrap();
    let status = host
        .delete(&format!("/api/v1/admins/{second_id}"))
        .bearer_auth(&first.access)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = me(&host, &second_session.access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The last admin stays.
    let first_id = me(&host, &first.access).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = host
        .delete(&format!("/api/v1/admins/{first_id}"))
        .bearer_auth(&first.access)
        .fetch_error(StatusCode::CONFLICT)
        .await;
    assert_eq!(code, "last_admin");

    // A new password ends the admin's other sessions, not the caller's.
    let elsewhere = sign_in(&host, &email, &password).await;
    let status = host
        .put(&format!("/api/v1/admins/{first_id}/password"))
        .bearer_auth(&first.access)
        .json(&json!({"password": "a new password"}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&host, &first.access).await.0, StatusCode::OK);
    assert_eq!(
        me(&host, &elsewhere.access).await.0,
        StatusCode::UNAUTHORIZED
    );
    let old = host
        .post("/api/v1/admin/token?grant_type=password")
        .json(&json!({"email": email, "password": password}))
        .fetch_status()
        .await;
    assert_eq!(old, StatusCode::BAD_REQUEST);
    sign_in(&host, &email, "a new password").await;
}

#[tokio::test]
async fn the_overview_describes_the_instance_and_reveals_secrets_on_request() {
    let host = Host::serve().await.start();
    let (email, password) = first_admin(&host);
    let admin = sign_in(&host, &email, &password).await;
    host.create_user("counted@example.com").await;
    host.create_bucket("counted", false).await;
    psql(host.database_url.as_deref().unwrap())
        .await
        .batch_execute("create table counted (id int primary key)")
        .await
        .unwrap();
    let (status, instance) = host
        .get("/api/v1/instance")
        .bearer_auth(&admin.access)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["anon_key"], host.anon_key());
    assert_eq!(instance["urls"]["api"], host.url.as_str());
    assert_eq!(instance["urls"]["s3"], host.env["S3_ENDPOINT"].as_str());
    assert_eq!(instance["urls"]["dashboard"], format!("{}/_/", host.url));
    let counts = &instance["counts"];
    assert_eq!(counts["users"], 1, "{instance}");
    assert_eq!(counts["buckets"], 1, "{instance}");
    assert_eq!(counts["admins"], 1, "{instance}");
    assert!(counts["tables"].as_i64().unwrap() >= 1, "{instance}");
    // Nothing secret in the description.
    let text = instance.to_string();
    assert!(!text.contains(host.service_key()));
    assert!(!text.contains(&host.env["S3_SECRET_ACCESS_KEY"]));

    let response = host
        .post("/api/v1/instance/secrets")
        .bearer_auth(&admin.access)
        .fetch()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let secrets: Value = response.json().await.unwrap();
    assert_eq!(secrets["service_key"], host.service_key());
    assert_eq!(
        secrets["s3"]["secret_access_key"],
        host.env["S3_SECRET_ACCESS_KEY"].as_str()
    );
    // Requests of the last hour, by the minute.
    let (status, analytics) = host
        .get("/api/v1/requests/analytics?bucket=minute")
        .bearer_auth(&admin.access)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{analytics}");
    assert_eq!(analytics["bucket"], "minute");
}

/// Every admin route, each with a method it serves.
const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/admin/me"),
    ("GET", "/api/v1/instance"),
    ("POST", "/api/v1/instance/secrets"),
    ("GET", "/api/v1/admins"),
    ("POST", "/api/v1/admins"),
    (
        "DELETE",
        "/api/v1/admins/00000000-0000-0000-0000-000000000000",
    ),
    (
        "PUT",
        "/api/v1/admins/00000000-0000-0000-0000-000000000000/password",
    ),
    ("GET", "/api/v1/s3/keys"),
    ("POST", "/api/v1/s3/keys"),
    ("DELETE", "/api/v1/s3/keys/nokey"),
    ("GET", "/api/v1/functions"),
    ("PUT", "/api/v1/functions/nofn"),
    ("GET", "/api/v1/functions/nofn"),
    ("PATCH", "/api/v1/functions/nofn"),
    ("DELETE", "/api/v1/functions/nofn"),
    ("GET", "/api/v1/functions/nofn/versions"),
    ("POST", "/api/v1/functions/nofn/rollback"),
    ("GET", "/api/v1/functions/nofn/secrets"),
    ("PUT", "/api/v1/functions/nofn/secrets"),
    ("DELETE", "/api/v1/functions/nofn/secrets/KEY"),
    ("GET", "/api/v1/functions/nofn/logs"),
    ("GET", "/api/v1/functions/nofn/versions/1/source"),
    ("GET", "/api/v1/functions/nofn/triggers"),
    ("PUT", "/api/v1/functions/nofn/triggers"),
    ("GET", "/api/v1/functions/nofn/dead-letters"),
    ("DELETE", "/api/v1/functions/nofn/dead-letters/1"),
    ("POST", "/api/v1/functions/nofn/dead-letters/1/replay"),
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects/noproject"),
    ("DELETE", "/api/v1/projects/noproject"),
    ("POST", "/api/v1/projects/noproject/rotate-key"),
    ("POST", "/api/v1/projects/noproject/pause"),
    ("POST", "/api/v1/projects/noproject/resume"),
    ("GET", "/api/v1/projects/noproject/schema-changes"),
    ("GET", "/api/v1/projects/noproject/logs"),
    ("GET", "/api/v1/projects/noproject/analytics"),
    ("GET", "/api/v1/requests/logs"),
    ("GET", "/api/v1/requests/analytics"),
    ("GET", "/api/v1/auth/sessions"),
    ("DELETE", "/api/v1/auth/sessions/nosession"),
    ("DELETE", "/api/v1/auth/users/nouser/sessions"),
    ("POST", "/api/v1/sql"),
    ("GET", "/api/v1/sql/snippets"),
    ("POST", "/api/v1/sql/snippets"),
    ("PUT", "/api/v1/sql/snippets/nosnippet"),
    ("DELETE", "/api/v1/sql/snippets/nosnippet"),
    ("GET", "/api/v1/schemas"),
    ("GET", "/api/v1/tables"),
    ("GET", "/api/v1/tables/public/notable"),
    ("POST", "/api/v1/tables"),
    ("PATCH", "/api/v1/tables/public/notable"),
    ("DELETE", "/api/v1/tables/public/notable"),
    ("POST", "/api/v1/tables/public/notable/columns"),
    ("PATCH", "/api/v1/tables/public/notable/columns/nocolumn"),
    ("DELETE", "/api/v1/tables/public/notable/columns/nocolumn"),
    ("POST", "/api/v1/tables/public/notable/policies"),
    ("DELETE", "/api/v1/tables/public/notable/policies/nopolicy"),
    // Last: as the admin, it ends the session the other routes use.
    ("POST", "/api/v1/admin/logout"),
];

#[tokio::test]
async fn every_admin_route_refuses_everyone_else() {
    let host = Host::serve().await.start();
    let (email, password) = first_admin(&host);
    let admin = sign_in(&host, &email, &password).await;
    let now = chrono::Utc::now().timestamp();
    // Signed with the instance's secret and shaped like an admin's, but
    // expired.
    let expired = sign(json!({
        "iss": "selfdb-admin", "role": "service_role", "admin_id": uuid_zero(),
        "admin_email": email, "sid": uuid_zero(), "iat": now - 1200, "exp": now - 600,
    }));
    let user = user_token("00000000-0000-0000-0000-000000000001", 600);
    let anon = host.anon_key().to_owned();
    let service = host.service_key().to_owned();
    for (method, path) in ADMIN_ROUTES {
        let method: Method = method.parse().unwrap();
        let request = |apikey: Option<&str>, bearer: Option<&str>| {
            let mut request = host
                .http()
                .request(method.clone(), host.url_of(path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(key) = apikey {
                request = request.header("apikey", key);
            }
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            status_and_body(request)
        };
        for (who, apikey, bearer, want) in [
            ("no credentials", None, None, StatusCode::UNAUTHORIZED),
            (
                "the anon key",
                Some(anon.as_str()),
                None,
                StatusCode::FORBIDDEN,
            ),
            (
                "a user",
                Some(anon.as_str()),
                Some(user.as_str()),
                StatusCode::FORBIDDEN,
            ),
            (
                "an expired admin token",
                None,
                Some(expired.as_str()),
                StatusCode::UNAUTHORIZED,
            ),
        ] {
            let (status, body) = request(apikey, bearer).await;
            assert_eq!(status, want, "{method} {path} as {who}: {body}");
        }
        // Admins and the service key get past the check (to whatever the
        // route answers; `me` and `logout` are an admin's own).
        for (who, apikey, bearer) in [
            ("an admin", None, Some(admin.access.as_str())),
            ("the service key", Some(service.as_str()), None),
        ] {
            let (status, body) = request(apikey, bearer).await;
            let own = path.starts_with("/api/v1/admin/") && who == "the service key";
            if own {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} as {who}");
                assert_eq!(body["error"]["code"], "admin_session_required");
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as {who}: {status} {body}"
                );
            }
        }
    }
}

/// A response's status and JSON body (`null` when it has none).
async fn status_and_body(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.fetch().await;
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn uuid_zero() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}
