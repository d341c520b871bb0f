//! `POST /api/v1/sql` (the SQL editor's scripts), its saved snippets, and
//! the catalog routes (`/api/v1/schemas`, `/api/v1/tables`): several
//! statements all or nothing, errors with their position in the script,
//! the timeout, the row cap, read-only, nothing leaking into the pools,
//! values of every type, and tables described with keys and policies.

use reqwest::StatusCode;
use selfdb_tests::{Host, RequestExt};
use serde_json::{json, Value};

async fn sql(host: &Host, body: Value) -> (StatusCode, Value) {
    host.post("/api/v1/sql")
        .service_role(host)
        .json(&body)
        .fetch_status_json()
        .await
}

async fn ok(host: &Host, query: &str) -> Value {
    let (status, body) = sql(host, json!({ "query": query })).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

async fn failed(host: &Host, body: Value) -> Value {
    let (status, answer) = sql(host, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    assert_eq!(answer["error"]["code"], "sql_error", "{answer}");
    answer["error"]["details"].clone()
}

#[tokio::test]
async fn scripts_run_all_or_nothing_with_errors_placed_and_limits_kept() {
    let host = Host::serve().await.start();

    // Several statements: each one's result, in order.
    let script = "create table notes (id int8 generated always as identity primary key, \
                  body text not null, done bool default false, meta jsonb, took interval);\n\
                  insert into notes (body, meta, took) values ('a', '{\"k\": [1]}', '1 day 2 hours'), ('b', null, null);\n\
                  select id, body, done, meta, took, 9007199254740993::int8 as big, 1.5::float8 as f \
                  from notes order by id";
    let answer = ok(&host, script).await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{answer}");
    assert_eq!(results[0]["command"], "CREATE");
    assert!(results[0].get("rows").is_none(), "{answer}");
    assert_eq!(results[1]["command"], "INSERT");
    assert_eq!(results[1]["row_count"], 2);
    let select = &results[2];
    assert_eq!(select["row_count"], 2);
    assert_eq!(select["truncated"], false);
    let types: Vec<(&str, &str)> = select["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("id", "int8"),
            ("body", "text"),
            ("done", "bool"),
            ("meta", "jsonb"),
            ("took", "interval"),
            ("big", "int8"),
            ("f", "float8")
        ]
    );
    assert_eq!(
        select["rows"][0],
        json!(["1", "a", false, {"k": [1]}, "1 day 02:00:00", "9007199254740993", 1.5])
    );
    assert_eq!(select["rows"][1][3], Value::Null);

    // An error names the statement and its place in the whole script
    // (1-based characters, as PostgreSQL counts: "é" is one), and nothing
    // of the script stays.
    let script = "insert into notes (body) values ('é');\nselect nope from notes";
    let details = failed(&host, json!({ "query": script })).await;
    assert_eq!(details["statement"], 1, "{details}");
    assert_eq!(details["sqlstate"], "42703");
    let at = script.find("nope").unwrap();
    assert_eq!(
        details["position"].as_u64().unwrap() as usize,
        script[..at].chars().count() + 1,
        "{details}"
    );
    assert_eq!(details["results"].as_array().unwrap().len(), 1);
    let count = ok(&host, "select count(*) from notes").await;
    assert_eq!(count["results"][0]["rows"][0][0], "2", "{count}");

    // The statement timeout, PostgreSQL's own.
    let details = failed(
        &host,
        json!({ "query": "select pg_sleep(10)", "timeout_ms": 200 }),
    )
    .await;
    assert_eq!(details["sqlstate"], "57014", "{details}");

    // The row cap keeps the first rows and counts them all.
    let (status, capped) = sql(
        &host,
        json!({ "query": "select g from generate_series(1, 5000) g", "max_rows": 100 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let capped = &capped["results"][0];
    assert_eq!(capped["truncated"], true);
    assert_eq!(capped["row_count"], 5000);
    assert_eq!(capped["rows"].as_array().unwrap().len(), 100);
    assert_eq!(capped["rows"][99][0], 100);

    // Read-only refuses a write.
    let details = failed(
        &host,
        json!({ "query": "insert into notes (body) values ('c')", "read_only": true }),
    )
    .await;
    assert_eq!(details["sqlstate"], "25006", "{details}");

    // A script's settings stay on its own connection: the next script,
    // and the REST API, see the defaults.
    let before = ok(&host, "show work_mem").await["results"][0]["rows"][0][0].clone();
    ok(&host, "set search_path = nowhere; set work_mem = '1111kB'").await;
    let shown = ok(&host, "show search_path; show work_mem").await;
    assert_eq!(shown["results"][0]["rows"][0][0], "\"$user\", public");
    assert_eq!(shown["results"][1]["rows"][0][0], before);
    let rest = host
        .get("/rest/v1/notes?select=body")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(rest, StatusCode::OK);

    // Alone, a statement that cannot run in a transaction runs; in a
    // script, PostgreSQL refuses it. Notices come back.
    ok(&host, "vacuum notes").await;
    let details = failed(&host, json!({ "query": "select 1; vacuum notes" })).await;
    assert_eq!(details["sqlstate"], "25001", "{details}");
    let noticed = ok(&host, "do $$ begin raise notice 'hello %', 42; end $$").await;
    assert!(
        noticed["notices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["message"] == "hello 42" && n["severity"] == "NOTICE"),
        "{noticed}"
    );

    // Bad requests.
    for (body, code) in [
        (json!({ "query": "  -- nothing\n;" }), "invalid_sql"),
        (json!({ "query": "select 'open" }), "invalid_sql"),
        (
            json!({ "query": "select 1", "max_rows": 0 }),
            "invalid_request",
        ),
        (
            json!({ "query": "select 1", "timeout_ms": 600000 }),
            "invalid_request",
        ),
        (json!({ "sql": "select 1" }), "invalid_json"),
    ] {
        let (status, answer) = sql(&host, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
}

#[tokio::test]
async fn snippets_are_saved_listed_changed_and_removed() {
    let host = Host::serve().await.start();
    let (status, saved) = host
        .post("/api/v1/sql/snippets")
        .service_role(&host)
        .json(&json!({"name": " Recent users ", "sql": "select * from auth.users"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(saved["name"], "Recent users");
    let id = saved["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/sql/snippets/{id}");
    let changed = host
        .put(&path)
        .service_role(&host)
        .json(&json!({"name": "Users", "sql": "select count(*) from auth.users"}))
        .fetch_json()
        .await;
    assert_eq!(
        changed["sql"], "select count(*) from auth.users",
        "{changed}"
    );
    let listed = host
        .get("/api/v1/sql/snippets")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(listed["snippets"].as_array().unwrap().len(), 1);
    assert_eq!(listed["snippets"][0]["name"], "Users");
    let (status, _) = host
        .post("/api/v1/sql/snippets")
        .service_role(&host)
        .json(&json!({"name": "  ", "sql": "select 1"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let removed = host.delete(&path).service_role(&host).fetch_status().await;
    assert_eq!(removed, StatusCode::NO_CONTENT);
    for path in [path.as_str(), "/api/v1/sql/snippets/not-an-id"] {
        let status = host.delete(path).service_role(&host).fetch_status().await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn the_catalog_describes_schemas_and_tables_with_keys_and_policies() {
    let host = Host::serve().await.start();
    ok(
        &host,
        "create schema reports;\n\
         create table authors (id uuid primary key default gen_random_uuid(), \
           name text not null unique);\n\
         create table books (id bigint generated by default as identity primary key, \
           title text not null, author uuid references authors on delete cascade, \
           price numeric(8,2));\n\
         comment on table books is 'What we sell';\n\
         alter table books enable row level security;\n\
         create policy \"anyone reads\" on books for select to anon, authenticated using (true);\n\
         create view cheap as select * from books where price < 10",
    )
    .await;

    let schemas = host
        .get("/api/v1/schemas")
        .service_role(&host)
        .fetch_json()
        .await;
    let names: Vec<&str> = schemas["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"public") && names.contains(&"reports"),
        "{schemas}"
    );
    assert!(
        !names.contains(&"auth") && !names.contains(&"pg_catalog"),
        "{schemas}"
    );
    assert!(schemas["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "public" && s["exposed"] == true));
    let all = host
        .get("/api/v1/schemas?all=true")
        .service_role(&host)
        .fetch_json()
        .await;
    assert!(all["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "auth" && s["platform"] == true));

    let tables = host
        .get("/api/v1/tables?schema=public")
        .service_role(&host)
        .fetch_json()
        .await;
    let tables = tables["tables"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("authors", "table"), ("books", "table"), ("cheap", "view")]
    );
    let books = host
        .get("/api/v1/tables/public/books")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(books["rls_enabled"], true, "{books}");
    assert_eq!(books["comment"], "What we sell");
    assert_eq!(books["primary_key"], json!(["id"]));
    let price = &books["columns"][3];
    assert_eq!(price["name"], "price");
    assert_eq!(price["type"], "numeric(8,2)");
    assert_eq!(price["nullable"], true);
    assert_eq!(books["columns"][0]["is_identity"], true);
    assert_eq!(
        books["foreign_keys"][0],
        json!({"name": "books_author_fkey", "columns": ["author"], "ref_schema": "public",
               "ref_table": "authors", "ref_columns": ["id"], "on_delete": "CASCADE",
               "on_update": "NO ACTION"})
    );
    assert_eq!(
        books["policies"][0],
        json!({"name": "anyone reads", "command": "SELECT", "permissive": true,
               "roles": ["anon", "authenticated"], "using": "true", "with_check": null})
    );
    let authors = &tables[0];
    assert_eq!(authors["columns"][1]["is_unique"], true, "{authors}");
    assert_eq!(authors["referenced_by"][0]["table"], "books");
    // Brief: names and types only, for the SQL editor's side panel.
    let brief = host
        .get("/api/v1/tables?schema=public&brief=true")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(
        brief["tables"][0],
        json!({"schema": "public", "name": "authors", "kind": "table", "columns": [
            {"name": "id", "type": "uuid", "position": 1},
            {"name": "name", "type": "text", "position": 2}]})
    );
    let status = host
        .get("/api/v1/tables/public/nothing")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tables_columns_and_policies_change_from_forms() {
    let host = Host::serve().await.start();
    let (status, created) = host
        .post("/api/v1/tables")
        .service_role(&host)
        .json(&json!({"name": "todos", "realtime": true, "comment": "Things to do", "columns": [
            {"name": "id", "type": "bigint", "identity": true, "primary_key": true},
            {"name": "title", "type": "text", "nullable": false},
            {"name": "owner", "type": "uuid", "default": "auth.uid()",
             "references": {"schema": "auth", "table": "users", "column": "id", "on_delete": "cascade"}},
            {"name": "done", "type": "boolean", "default": "false"}]}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created["sql"]
            .as_str()
            .unwrap()
            .starts_with("create table \"public\".\"todos\" (\n  \"id\" bigint generated by default as identity primary key,"),
        "{created}"
    );
    let table = &created["table"];
    assert_eq!(
        table["rls_enabled"], true,
        "RLS is on unless asked otherwise"
    );
    assert_eq!(table["realtime"], true);
    assert_eq!(table["comment"], "Things to do");
    assert_eq!(table["foreign_keys"][0]["ref_table"], "users");

    // Rows go through /rest/v1 (once its schema cache has the table): the
    // service role writes; anon sees nothing until a policy lets it.
    assert!(
        selfdb_tests::eventually(std::time::Duration::from_secs(30), || async {
            host.post("/rest/v1/todos")
                .service_role(&host)
                .json(&json!({"title": "write tests"}))
                .fetch_status()
                .await
                == StatusCode::CREATED
        })
        .await,
        "the REST API serves the new table"
    );
    let anon = || async {
        host.get("/rest/v1/todos?select=title")
            .apikey(host.anon_key())
            .fetch_json()
            .await
    };
    assert_eq!(anon().await, json!([]));
    let policies = "/api/v1/tables/public/todos/policies";
    let (status, body) = host
        .post(policies)
        .service_role(&host)
        .json(&json!({"name": "anyone reads", "command": "select", "roles": ["anon"], "using": "true"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["table"]["policies"][0]["name"], "anyone reads");
    assert_eq!(anon().await, json!([{"title": "write tests"}]));

    // Columns: add, change (type with USING, default, rename) and drop.
    let (status, body) = host
        .post("/api/v1/tables/public/todos/columns")
        .service_role(&host)
        .json(&json!({"name": "priority", "type": "int4", "default": "0", "nullable": false}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let body = host
        .patch("/api/v1/tables/public/todos/columns/priority")
        .service_role(&host)
        .json(&json!({"name": "rank", "type": "numeric(4,1)", "using": "priority::numeric", "default": null}))
        .fetch_json()
        .await;
    let rank = body["table"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rank")
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(rank["type"], "numeric(4,1)");
    assert_eq!(rank["default"], Value::Null);
    let status = host
        .delete("/api/v1/tables/public/todos/columns/done")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);

    // Refused: a type that is SQL rather than a type name (nothing runs),
    // a table that exists, a column that does not, a bad policy.
    let (status, body) = host
        .post("/api/v1/tables/public/todos/columns")
        .service_role(&host)
        .json(&json!({"name": "x", "type": "text); drop table todos; --"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = host
        .post("/api/v1/tables")
        .service_role(&host)
        .json(&json!({"name": "todos", "columns": [{"name": "id", "type": "int"}]}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["details"]["sqlstate"], "42P07");
    let status = host
        .patch("/api/v1/tables/public/todos/columns/nothing")
        .service_role(&host)
        .json(&json!({"nullable": true}))
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = host
        .post(policies)
        .service_role(&host)
        .json(&json!({"name": "bad", "command": "insert", "using": "true"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The table: renamed, RLS off, then dropped.
    let body = host
        .patch("/api/v1/tables/public/todos")
        .service_role(&host)
        .json(&json!({"name": "tasks", "rls_enabled": false, "realtime": false, "comment": null}))
        .fetch_json()
        .await;
    assert_eq!(body["table"]["name"], "tasks", "{body}");
    assert_eq!(body["table"]["rls_enabled"], false);
    assert_eq!(body["table"]["realtime"], false);
    assert_eq!(body["table"]["comment"], Value::Null);
    let status = host
        .delete("/api/v1/tables/public/tasks/policies/anyone%20reads")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = host
        .delete("/api/v1/tables/public/tasks")
        .service_role(&host)
        .fetch_json()
        .await;
    assert_eq!(body["sql"], "drop table \"public\".\"tasks\";");
    assert_eq!(body["table"], Value::Null);
    let status = host
        .get("/api/v1/tables/public/tasks")
        .service_role(&host)
        .fetch_status()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
