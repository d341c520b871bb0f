//! Request credentials: the `apikey` and the bearer token are checked
//! (signature, `alg`, expiry, audience, header shape) before any component
//! runs, and each refusal has SelfDB's error shape.

use reqwest::StatusCode;
use selfdb_tests::{user_token, Host, RequestExt};
use serde_json::json;

#[tokio::test]
async fn credentials_are_checked_before_any_component_runs() {
    let host = Host::serve().await.start();
    let path = "/functions/v1/hello";
    let unauthorized =
        |request: reqwest::RequestBuilder| request.fetch_error(StatusCode::UNAUTHORIZED);

    assert_eq!(unauthorized(host.get(path)).await, "missing_apikey");

    let garbage = host.get(path).apikey("not-a-jwt");
    assert_eq!(unauthorized(garbage).await, "invalid_token");

    let expired = host
        .get(path)
        .apikey(host.anon_key())
        .bearer_auth(user_token("u1", -120));
    assert_eq!(unauthorized(expired).await, "token_expired");

    let now = chrono::Utc::now().timestamp();
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"role": "service_role", "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-some-other-secret"),
    )
    .unwrap();
    let forged = host.get(path).apikey(&wrong_key);
    assert_eq!(unauthorized(forged).await, "invalid_token");

    // alg=none with a service_role claim.
    use base64_url as b64;
    let unsigned = format!(
        "{}.{}.",
        b64::encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64::encode(&format!(r#"{{"role":"service_role","exp":{}}}"#, now + 60))
    );
    let none = host.get(path).apikey(&unsigned);
    assert_eq!(unauthorized(none).await, "invalid_token");

    let wrong_audience = selfdb_tests::sign(json!({
        "sub": "u1", "role": "authenticated", "aud": "someone-else", "exp": now + 60
    }));
    let aud = host
        .get(path)
        .apikey(host.anon_key())
        .bearer_auth(wrong_audience);
    assert_eq!(unauthorized(aud).await, "invalid_token");

    let malformed = host
        .get(path)
        .apikey(host.anon_key())
        .header("authorization", "Token abc");
    assert_eq!(unauthorized(malformed).await, "invalid_token");
}

mod base64_url {
    pub fn encode(text: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
