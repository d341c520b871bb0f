//! The per-invocation transaction: a trap or a 5xx rolls the invocation's
//! writes back, and session state (`currval`, `lastval`) does not outlive
//! the request on its pooled connection.

use reqwest::StatusCode;
use selfdb_tests::{misbehave, run_sql, user_token, Host};
use serde_json::json;

#[tokio::test]
async fn a_failed_invocation_rolls_its_writes_back() {
    let host = Host::serve().await.start();
    let db = host.db().await;
    db.batch_execute("create table public.probe (id serial primary key, value text not null)")
        .await
        .unwrap();

    assert_eq!(misbehave(&host, "write").await.status(), StatusCode::OK);
    let trapped = misbehave(&host, "write-then-trap").await;
    assert_eq!(trapped.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let failed = misbehave(&host, "write-then-500").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let values: Vec<String> = db
        .query("select value from public.probe order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(values, vec!["write".to_owned()]);
}

/// `currval` and `lastval` are session state: the next request on the
/// pooled connection, anyone's, must not read the values this one drew.
#[tokio::test]
async fn sequence_values_do_not_outlive_the_request() {
    let host = Host::serve().await.start();
    host.db()
        .await
        .batch_execute(
            "create sequence public.counter;
             grant usage, select on sequence public.counter to anon, authenticated;",
        )
        .await
        .unwrap();
    let anon = host.anon_key();
    let alice = user_token("a0000000-0000-4000-8000-00000000000a", 60);
    let backend = || async {
        let out = run_sql(
            &host,
            anon,
            None,
            "select pg_backend_pid() as pid",
            json!([]),
        )
        .await;
        out["rows"][0]["pid"].clone()
    };

    let drawn = run_sql(
        &host,
        anon,
        Some(&alice),
        "select nextval('public.counter') as v, currval('public.counter') as c, pg_backend_pid() as pid",
        json!([]),
    )
    .await;
    assert_eq!(drawn["rows"][0]["v"], 1, "{drawn}");
    assert_eq!(drawn["rows"][0]["c"], 1, "{drawn}");
    let pid = drawn["rows"][0]["pid"].clone();
    // Requests one after another share one pooled connection: the checks
    // below run on the backend that drew the value.
    assert_eq!(backend().await, pid);
    for sql in [
        "select currval('public.counter') as v",
        "select lastval() as v",
    ] {
        let out = run_sql(&host, anon, None, sql, json!([])).await;
        assert_eq!(out["error"]["code"], "55000", "{sql}: {out}");
        assert_eq!(backend().await, pid, "{sql} ran on another connection");
    }
}
