//! With Redis configured, hosts behind one balancer share the failed
//! sign-in counts: the limit holds across nodes.

use selfdb_tests::{Host, HostBuilder, Redis, RequestExt};
use serde_json::json;

#[tokio::test]
async fn failed_sign_ins_are_counted_across_hosts_in_redis() {
    let redis = Redis::start();
    let a = Host::serve()
        .await
        .arg("--redis-url")
        .arg(redis.url.clone())
        .arg("--auth-failed-sign-ins-per-email")
        .arg("3")
        .start();
    let b = HostBuilder::alongside(&a)
        .arg("--redis-url")
        .arg(redis.url.clone())
        .arg("--auth-failed-sign-ins-per-email")
        .arg("3")
        .start();
    let email = "shared-limit@example.com";
    let signup = a
        .post("/auth/v1/signup")
        .apikey(a.anon_key())
        .json(&json!({"email": email, "password": "the-right-one"}))
        .fetch_status()
        .await;
    assert_eq!(signup, 200);

    let attempt = |host: &Host, password: &str| {
        host.post("/auth/v1/token?grant_type=password")
            .apikey(host.anon_key())
            .json(&json!({"email": email, "password": password}))
            .fetch()
    };
    for (host, password) in [(&a, "wrong-1"), (&b, "wrong-2"), (&a, "wrong-3")] {
        assert_eq!(attempt(host, password).await.status(), 400);
    }
    // The fourth try reaches the other host: it knows of all three.
    let limited = attempt(&b, "the-right-one").await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 300);
}
