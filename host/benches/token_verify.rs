//! The host's per-request cost of checking an access token: HS256
//! signature, expiry, audience and role, as `http::principal` does it, the
//! first time a token is seen and then from the memory of verified tokens.
//! Run by `make bench`; prints microseconds per verification.

use selfdb::auth::{JwtKeys, Role};
use std::time::Instant;

fn main() {
    let keys = JwtKeys::new("bench-secret-bench-secret-bench-secret-01");
    let now = chrono::Utc::now().timestamp();
    let user_token = keys
        .sign(&serde_json::json!({
            "sub": "8b0f4a64-7e0b-4b59-9b4a-0d3c1f5e2a11",
            "role": "authenticated",
            "aud": "authenticated",
            "email": "bench@example.com",
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {"name": "Bench"},
            "session_id": "1f2e3d4c-5b6a-4789-8a9b-0c1d2e3f4a5b",
            "iat": now,
            "exp": now + 3600,
        }))
        .expect("sign");
    let anon_key = keys.api_key(Role::Anon, now).expect("api key");
    for (name, token) in [
        ("user access token", &user_token),
        ("anon API key", &anon_key),
    ] {
        let rounds = 200_000;
        let full = per_call(rounds, || {
            std::hint::black_box(
                keys.verify_in_full(std::hint::black_box(token))
                    .expect("valid"),
            );
        });
        let remembered = per_call(rounds, || {
            std::hint::black_box(keys.verify(std::hint::black_box(token)).expect("valid"));
        });
        println!(
            "token verification ({name:>17}): {full:.2} us the first time, {remembered:.2} us remembered ({rounds} rounds, HS256)"
        );
    }
}

/// Mean microseconds per call of `f`, after a warm-up.
fn per_call(rounds: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let started = Instant::now();
    for _ in 0..rounds {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
}
