//! Requests the tests repeat: sending and reading a response in one call,
//! SelfDB's error shape, and the admin calls that set a host up.

use crate::Host;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// The client a host hands out: a request that hangs fails its test after a
/// minute instead of hanging the run.
pub(crate) fn client(trusted_ca: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
    if let Some(pem) = trusted_ca {
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).expect("the test CA"),
        );
    }
    builder.build().expect("HTTP client")
}

/// Sends a request and reads its response in one call; a request that
/// cannot be sent, or a body that cannot be read, fails the test.
pub trait RequestExt: Sized {
    /// `apikey: key` (the anon or service key; a user token goes in
    /// `bearer_auth`).
    fn apikey(self, key: &str) -> Self;

    /// The service key as both `apikey` and bearer token, as storage and
    /// the admin APIs are called with it.
    fn service_role(self, host: &Host) -> Self;

    fn fetch(self) -> impl Future<Output = Response> + Send;

    fn fetch_status(self) -> impl Future<Output = StatusCode> + Send;

    /// The body as JSON, whatever the status.
    fn fetch_json(self) -> impl Future<Output = Value> + Send;

    fn fetch_status_json(self) -> impl Future<Output = (StatusCode, Value)> + Send;

    fn fetch_bytes(self) -> impl Future<Output = (StatusCode, Vec<u8>)> + Send;

    /// Asserts `status` and SelfDB's error shape; returns the error code.
    fn fetch_error(self, status: StatusCode) -> impl Future<Output = String> + Send;
}

impl RequestExt for RequestBuilder {
    fn apikey(self, key: &str) -> Self {
        self.header("apikey", key)
    }

    fn service_role(self, host: &Host) -> Self {
        let key = host.service_key();
        self.header("apikey", key).bearer_auth(key)
    }

    async fn fetch(self) -> Response {
        self.send()
            .await
            .unwrap_or_else(|err| panic!("request failed: {err}"))
    }

    async fn fetch_status(self) -> StatusCode {
        self.fetch().await.status()
    }

    async fn fetch_json(self) -> Value {
        self.fetch_status_json().await.1
    }

    async fn fetch_status_json(self) -> (StatusCode, Value) {
        let response = self.fetch().await;
        let status = response.status();
        let url = response.url().clone();
        let body = response
            .json()
            .await
            .unwrap_or_else(|err| panic!("{url} ({status}): no JSON body: {err}"));
        (status, body)
    }

    async fn fetch_bytes(self) -> (StatusCode, Vec<u8>) {
        let response = self.fetch().await;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|err| panic!("read the body: {err}"));
        (status, bytes.to_vec())
    }

    async fn fetch_error(self, status: StatusCode) -> String {
        error_code(self.fetch().await, status).await
    }
}

/// Asserts `status` and SelfDB's error shape
/// (`{"error": {"code", "message", "details"}}`); returns the code.
pub async fn error_code(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("JSON error body");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(error.get("details").is_some(), "{body}");
    error["code"].as_str().expect("code").to_owned()
}

impl Host {
    /// This host's URL for `path` (which starts with `/`).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The host's HTTP client (one per host, so connections are reused).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url_of(path))
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.http.head(self.url_of(path))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url_of(path))
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.http.put(self.url_of(path))
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.http.patch(self.url_of(path))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.http.delete(self.url_of(path))
    }

    /// A connection to the host's database as its owner.
    pub async fn db(&self) -> tokio_postgres::Client {
        crate::psql(self.database_url.as_deref().expect("a serve host")).await
    }

    /// A confirmed user (password `correct horse 1`) made through the auth
    /// admin API; returns its id.
    pub async fn create_user(&self, email: &str) -> String {
        let (status, user) = self
            .post("/auth/v1/admin/users")
            .service_role(self)
            .json(&json!({"email": email, "password": "correct horse 1", "email_confirm": true}))
            .fetch_status_json()
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        user["id"].as_str().expect("user id").to_owned()
    }

    /// A new S3 access key, acting as `user_id` or as the service role;
    /// returns the key id and its secret.
    pub async fn create_s3_key(&self, user_id: Option<&str>) -> (String, String) {
        let (status, key) = self
            .post("/api/v1/s3/keys")
            .service_role(self)
            .json(&json!({"user_id": user_id, "description": "test"}))
            .fetch_status_json()
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        (
            key["access_key_id"].as_str().expect("key id").to_owned(),
            key["secret_access_key"]
                .as_str()
                .expect("secret")
                .to_owned(),
        )
    }

    pub async fn create_bucket(&self, id: &str, public: bool) {
        let status = self
            .post("/storage/v1/bucket")
            .service_role(self)
            .json(&json!({"id": id, "name": id, "public": public}))
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK, "create bucket {id}");
    }
}

/// The misbehave fixture (`functions/v1/misbehave`), called with the anon
/// key in `mode` (its `value` is the mode too).
pub async fn misbehave(host: &Host, mode: &str) -> Response {
    host.get("/functions/v1/misbehave")
        .query(&[("mode", mode), ("value", mode)])
        .apikey(host.anon_key())
        .fetch()
        .await
}

/// The misbehave fixture's `sql` mode: runs `sql` with `params` as the
/// caller `key` (and user token `bearer`) and returns `{"rows"}` or
/// `{"error": {"code"}}`.
pub async fn run_sql(
    host: &Host,
    key: &str,
    bearer: Option<&str>,
    sql: &str,
    params: Value,
) -> Value {
    run_sql_body(host, key, bearer, json!({"sql": sql, "params": params})).await
}

/// The misbehave fixture's `sql` mode with the whole body:
/// `{"sql", "params", "alone", "before"}`.
pub async fn run_sql_body(host: &Host, key: &str, bearer: Option<&str>, body: Value) -> Value {
    let mut request = host
        .post("/functions/v1/misbehave?mode=sql")
        .apikey(key)
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.fetch_json().await
}
