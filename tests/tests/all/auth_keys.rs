//! Asymmetric signing keys (`--jwt-signing-key`): users' RS256 tokens are
//! issued, published at `/auth/v1/.well-known/jwks.json`, verifiable with
//! the published key alone, and accepted. ES256 is covered through
//! supabase-js in `supabase_js.rs`.

use selfdb_tests::{signing_key, Host, RequestExt};
use serde_json::json;

#[tokio::test]
async fn rs256_tokens_are_issued_published_and_accepted() {
    let dir = selfdb_tests::dev_data_dir();
    let key = signing_key(&dir, "rsa");
    let host = Host::serve()
        .await
        .arg("--jwt-signing-key")
        .arg(key.display().to_string())
        .start();
    let session = host
        .post("/auth/v1/signup")
        .apikey(host.anon_key())
        .json(&json!({"email": "rs256@example.com", "password": "rs256-pass"}))
        .fetch_json()
        .await;
    let token = session["access_token"].as_str().expect("a session");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwks = host
        .get("/auth/v1/.well-known/jwks.json")
        .fetch_json()
        .await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["kid"].as_str(), header.kid.as_deref());
    // Verify with the published key only, as a third party would.
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["authenticated"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation).unwrap();
    assert_eq!(claims.claims["email"], "rs256@example.com");
    let user = host
        .get("/auth/v1/user")
        .apikey(host.anon_key())
        .bearer_auth(token)
        .fetch_status()
        .await;
    assert_eq!(user, 200);
}
