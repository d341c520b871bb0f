//! Roles, claims and row-level security inside components: SQL runs as the
//! caller's role with the caller's claims, cannot leave them (the guard
//! and the privileges stop it), RLS policies see them, and `query-alone`
//! reads run the same way, read-only.

use selfdb_tests::{run_sql, run_sql_body, user_token, Host};
use serde_json::json;

#[tokio::test]
async fn components_cannot_leave_their_role_or_claims() {
    let host = Host::serve().await.start();
    let anon = host.anon_key();

    let who = run_sql(
        &host,
        anon,
        None,
        "select current_user::text as u, auth.role() as r",
        json!([]),
    )
    .await;
    assert_eq!(who["rows"], json!([{"u": "anon", "r": "anon"}]));

    for (sql, code) in [
        ("set role service_role", "selfdb.refused"),
        ("reset role", "selfdb.refused"),
        ("commit", "selfdb.refused"),
        ("do $$ begin perform 1; end $$", "selfdb.refused"),
        ("select set_config('role', 'service_role', true)", "selfdb.refused"),
        ("select 1; set role service_role", "selfdb.refused"),
        // Dynamic SQL hides the name from the guard; the privilege stops it.
        ("select query_to_xml('select set_config(''role'', ''service_role'', true)', true, true, '')", "42501"),
        ("create function pg_temp.f() returns int language sql as 'select 1'", "42501"),
        ("select * from selfdb.settings", "42501"),
        // State that would outlive the request on its pooled connection.
        ("select pg_advisory_lock(7)", "selfdb.refused"),
        ("select query_to_xml('select pg_try_advisory_lock(7)', true, true, '')", "42501"),
        ("declare held cursor with hold for select 1", "selfdb.refused"),
    ] {
        let out = run_sql(&host, anon, None, sql, json!([])).await;
        assert_eq!(out["error"]["code"], code, "{sql}: {out}");
    }
    // Locks that end with the transaction stay available.
    let xact_lock = run_sql(
        &host,
        anon,
        None,
        "select 1 as one from (select pg_advisory_xact_lock(7)) locked",
        json!([]),
    )
    .await;
    assert_eq!(xact_lock["rows"], json!([{"one": 1}]), "{xact_lock}");
}

#[tokio::test]
async fn row_level_security_sees_the_callers_claims() {
    let host = Host::serve().await.start();
    host.db()
        .await
        .batch_execute(
            "create table public.notes (id serial primary key, owner_id uuid not null default auth.uid(), body text);
             alter table public.notes enable row level security;
             create policy own_notes on public.notes for all to authenticated
                 using (auth.uid() = owner_id) with check (auth.uid() = owner_id);",
        )
        .await
        .unwrap();
    let anon = host.anon_key();
    let alice = user_token("a0000000-0000-4000-8000-00000000000a", 60);
    let bob = user_token("b0000000-0000-4000-8000-00000000000b", 60);

    for (token, body) in [(&alice, "alice's"), (&bob, "bob's")] {
        let out = run_sql(
            &host,
            anon,
            Some(token),
            "insert into public.notes (body) values ($1) returning body",
            json!([body]),
        )
        .await;
        assert_eq!(out["rows"], json!([{"body": body}]), "{out}");
    }
    let seen = run_sql(
        &host,
        anon,
        Some(&alice),
        "select body from public.notes order by id",
        json!([]),
    )
    .await;
    assert_eq!(seen["rows"], json!([{"body": "alice's"}]));
    let stolen = run_sql(
        &host,
        anon,
        Some(&alice),
        "update public.notes set body = 'mine' where owner_id = $1::uuid returning id",
        json!(["b0000000-0000-4000-8000-00000000000b"]),
    )
    .await;
    assert_eq!(stolen["rows"], json!([]));
    let forged = run_sql(
        &host,
        anon,
        Some(&alice),
        "insert into public.notes (owner_id, body) values ($1::uuid, 'forged')",
        json!(["b0000000-0000-4000-8000-00000000000b"]),
    )
    .await;
    assert_eq!(forged["error"]["code"], "42501", "{forged}");
    let as_anon = run_sql(
        &host,
        anon,
        None,
        "select count(*) as n from public.notes",
        json!([]),
    )
    .await;
    assert_eq!(as_anon["rows"], json!([{"n": 0}]));
}

/// `db.query-alone`: anonymous reads run on connections that stay in the
/// anon role, everyone else's in a read-only transaction; either way as the
/// caller, read-only, and no way out of the role.
#[tokio::test]
async fn query_alone_reads_as_the_caller_and_writes_nothing() {
    let host = Host::serve().await.start();
    let db = host.db().await;
    db.batch_execute(
        "create table public.probe (id serial primary key, value text not null); \
         grant all on public.probe to anon, authenticated; \
         grant usage on sequence public.probe_id_seq to anon, authenticated;",
    )
    .await
    .unwrap();
    let anon = host.anon_key().to_owned();
    let service = host.service_key().to_owned();
    let user = "c0000000-0000-4000-8000-00000000000c";
    let alice = user_token(user, 60);
    // An anon token with claims of its own: not the anon key's, so it takes
    // the transaction path, and its claims must still be the ones seen.
    let marked = selfdb_tests::sign(json!({
        "role": "anon", "marker": "m1",
        "exp": chrono::Utc::now().timestamp() + 60,
    }));
    let alone = |sql: &str| json!({"sql": sql, "params": [], "alone": true});
    let who = "select current_user::text as u, auth.role() as r, \
               coalesce(auth.jwt()->>'marker', auth.jwt()->>'sub', '') as c, \
               current_setting('transaction_read_only') as ro";

    // Twice each: the second anon read reuses a pooled anon connection.
    for _ in 0..2 {
        for (key, bearer, expected) in [
            (
                &anon,
                None,
                json!({"u": "anon", "r": "anon", "c": "", "ro": "on"}),
            ),
            (
                &anon,
                Some(&marked),
                json!({"u": "anon", "r": "anon", "c": "m1", "ro": "on"}),
            ),
            (
                &anon,
                Some(&alice),
                json!({"u": "authenticated", "r": "authenticated", "c": user, "ro": "on"}),
            ),
            (
                &service,
                None,
                json!({"u": "service_role", "r": "service_role", "c": "", "ro": "on"}),
            ),
        ] {
            let bearer = bearer.map(String::as_str);
            let out = run_sql_body(&host, key, bearer, alone(who)).await;
            assert_eq!(out["rows"], json!([expected]), "{out}");
            let write = run_sql_body(
                &host,
                key,
                bearer,
                alone("insert into public.probe (value) values ('x') returning id"),
            )
            .await;
            assert_eq!(write["error"]["code"], "25006", "{write}");
        }
    }
    // A normal request after anonymous alone-reads is still in its own
    // transaction, with its own role.
    let normal = run_sql(&host, &anon, Some(&alice), who, json!([])).await;
    assert_eq!(normal["rows"][0]["ro"], "off", "{normal}");
    assert_eq!(normal["rows"][0]["u"], "authenticated", "{normal}");

    for (sql, code) in [
        ("set role service_role", "selfdb.refused"),
        ("reset role", "selfdb.refused"),
        ("select set_config('role', 'service_role', false)", "selfdb.refused"),
        ("select query_to_xml('select set_config(''role'', ''service_role'', false)', true, true, '')", "42501"),
        ("select * from selfdb.settings", "42501"),
    ] {
        let out = run_sql_body(&host, &anon, None, alone(sql)).await;
        assert_eq!(out["error"]["code"], code, "{sql}: {out}");
    }
    let still_anon = run_sql_body(&host, &anon, None, alone(who)).await;
    assert_eq!(still_anon["rows"][0]["u"], "anon", "{still_anon}");

    let late = run_sql_body(
        &host,
        &anon,
        None,
        json!({"sql": "select 1 as one", "params": [], "alone": true, "before": "select 2"}),
    )
    .await;
    assert_eq!(late["error"]["code"], "selfdb.in_transaction", "{late}");

    let rows: i64 = db
        .query_one("select count(*) from public.probe", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}
