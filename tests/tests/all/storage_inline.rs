//! Small objects in PostgreSQL: objects up to 8 KiB live in
//! `storage.object_data`, committed with their row; larger ones are files.
//! Reads, ranges, copies, moves, overwrites, deletes and HEAD work the same
//! for both, request roles cannot reach the inline bytes directly, and a
//! row cannot take over another object's bytes.

use reqwest::StatusCode;
use selfdb_tests::{files_below, wait_until, Host, RequestExt};
use serde_json::json;
use std::time::Duration;

/// A host with the private bucket `tiny` and an owner connection to its
/// database.
struct Tiny {
    host: Host,
    db: tokio_postgres::Client,
}

impl Tiny {
    async fn start() -> Tiny {
        let host = Host::serve().await.start();
        host.create_bucket("tiny", false).await;
        let db = host.db().await;
        Tiny { host, db }
    }

    fn path(key: &str) -> String {
        format!("/storage/v1/object/tiny/{key}")
    }

    /// Creates or replaces `key` as the service role.
    async fn upload(&self, key: &str, bytes: Vec<u8>) {
        let status = self
            .host
            .post(&Self::path(key))
            .service_role(&self.host)
            .header("x-upsert", "true")
            .body(bytes)
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK, "upload {key}");
    }

    async fn download(&self, key: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut request = self.host.get(&Self::path(key)).service_role(&self.host);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.fetch_bytes().await
    }

    /// The status and `content-length` of a HEAD.
    async fn head(&self, key: &str, range: Option<&str>) -> (StatusCode, Option<u64>) {
        let mut request = self.host.head(&Self::path(key)).service_role(&self.host);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.fetch().await;
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (response.status(), length)
    }

    /// The names of the objects whose bytes are inline, and how many inline
    /// byte rows there are.
    async fn inline_versions(&self) -> (Vec<String>, i64) {
        let rows = self
            .db
            .query(
                "select o.name from storage.objects o \
                 join storage.object_data d on d.version = o.version order by o.name",
                &[],
            )
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let stored: i64 = self
            .db
            .query_one("select count(*) from storage.object_data", &[])
            .await
            .unwrap()
            .get(0);
        (names, stored)
    }

    /// Object files on disk.
    fn files(&self) -> usize {
        files_below(&self.host.data_dir.join("storage/objects"))
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[tokio::test]
async fn objects_up_to_8_kib_are_inline_and_read_whole_or_in_ranges() {
    let tiny = Tiny::start().await;
    let small = pattern(8192, 1);
    tiny.upload("small.bin", small.clone()).await;
    tiny.upload("large.bin", pattern(8193, 2)).await;
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["small.bin".to_owned()], 1),
        "8 KiB is inline, one byte more is not"
    );
    assert_eq!(tiny.files(), 1, "only the larger object has a file");

    assert_eq!(
        tiny.download("small.bin", None).await,
        (StatusCode::OK, small.clone())
    );
    assert_eq!(
        tiny.download("small.bin", Some("bytes=100-199")).await,
        (StatusCode::PARTIAL_CONTENT, small[100..200].to_vec())
    );
    assert_eq!(
        tiny.download("small.bin", Some("bytes=-5")).await,
        (StatusCode::PARTIAL_CONTENT, small[8187..].to_vec())
    );
}

#[tokio::test]
async fn an_overwrite_drops_the_old_inline_bytes_in_its_transaction() {
    let tiny = Tiny::start().await;
    tiny.upload("small.bin", pattern(8192, 1)).await;

    let replaced = pattern(5000, 3);
    tiny.upload("small.bin", replaced.clone()).await;
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["small.bin".to_owned()], 1)
    );
    assert_eq!(
        tiny.download("small.bin", None).await,
        (StatusCode::OK, replaced)
    );
}

#[tokio::test]
async fn a_copy_gets_inline_bytes_of_its_own_and_a_move_keeps_them() {
    let tiny = Tiny::start().await;
    let bytes = pattern(5000, 3);
    tiny.upload("small.bin", bytes.clone()).await;
    let host = &tiny.host;

    let copied = host
        .post("/storage/v1/object/copy")
        .service_role(host)
        .json(&json!({"bucketId": "tiny", "sourceKey": "small.bin", "destinationKey": "copy.bin"}))
        .fetch_status()
        .await;
    assert_eq!(copied, StatusCode::OK);
    let moved = host
        .post("/storage/v1/object/move")
        .service_role(host)
        .json(&json!({"bucketId": "tiny", "sourceKey": "copy.bin", "destinationKey": "moved.bin"}))
        .fetch_status()
        .await;
    assert_eq!(moved, StatusCode::OK);
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["moved.bin".to_owned(), "small.bin".to_owned()], 2)
    );
    assert_eq!(
        tiny.download("moved.bin", None).await,
        (StatusCode::OK, bytes)
    );
    assert_eq!(
        tiny.download("copy.bin", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn growing_past_the_threshold_moves_an_object_to_a_file_and_back() {
    let tiny = Tiny::start().await;
    tiny.upload("small.bin", pattern(5000, 3)).await;
    tiny.upload("moved.bin", pattern(5000, 3)).await;
    tiny.upload("large.bin", pattern(8193, 2)).await;

    tiny.upload("small.bin", pattern(20_000, 4)).await;
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["moved.bin".to_owned()], 1)
    );
    assert_eq!(
        tiny.download("small.bin", None).await,
        (StatusCode::OK, pattern(20_000, 4))
    );
    tiny.upload("large.bin", pattern(10, 5)).await;
    assert_eq!(
        tiny.download("large.bin", None).await,
        (StatusCode::OK, pattern(10, 5))
    );
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["large.bin".to_owned(), "moved.bin".to_owned()], 2)
    );
    // The replaced file is deleted after the commit.
    let one_file = wait_until(Duration::from_secs(10), || tiny.files() == 1);
    assert!(one_file, "replaced files stay: {} files", tiny.files());
}

#[tokio::test]
async fn deleting_an_object_deletes_its_inline_bytes() {
    let tiny = Tiny::start().await;
    tiny.upload("large.bin", pattern(10, 5)).await;
    tiny.upload("moved.bin", pattern(5000, 3)).await;

    let deleted = tiny
        .host
        .delete(&Tiny::path("moved.bin"))
        .service_role(&tiny.host)
        .fetch_status()
        .await;
    assert_eq!(deleted, StatusCode::OK);
    assert_eq!(
        tiny.inline_versions().await,
        (vec!["large.bin".to_owned()], 1)
    );
}

/// A user's uploads store their bytes through the authenticator pool; one
/// that RLS refuses, or a create that meets an existing key, leaves no
/// bytes behind.
#[tokio::test]
async fn a_users_uploads_store_inline_bytes_and_refused_ones_leave_none() {
    let tiny = Tiny::start().await;
    // One object inline already, beside the user's.
    tiny.upload("large.bin", pattern(10, 5)).await;
    let host = &tiny.host;

    tiny.db
        .batch_execute(
            "create policy tiny_insert on storage.objects for insert to authenticated \
                 with check (bucket_id = 'tiny' and owner_id = auth.uid()::text and name like 'mine/%'); \
             create policy tiny_read on storage.objects for select to authenticated \
                 using (bucket_id = 'tiny' and owner_id = auth.uid()::text);",
        )
        .await
        .unwrap();
    host.create_user("inline@example.com").await;
    let session = host
        .post("/auth/v1/token?grant_type=password")
        .apikey(host.anon_key())
        .json(&json!({"email": "inline@example.com", "password": "correct horse 1"}))
        .fetch_json()
        .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let user_upload = |key: &str, bytes: Vec<u8>| {
        host.post(&Tiny::path(key))
            .apikey(host.anon_key())
            .bearer_auth(&token)
            .body(bytes)
            .fetch_status()
    };
    assert_eq!(
        user_upload("mine/a.bin", pattern(300, 6)).await,
        StatusCode::OK
    );
    assert_eq!(tiny.inline_versions().await.1, 2);
    let mine = host
        .get(&Tiny::path("mine/a.bin"))
        .apikey(host.anon_key())
        .bearer_auth(&token)
        .fetch_bytes()
        .await;
    assert_eq!(mine, (StatusCode::OK, pattern(300, 6)));
    assert_eq!(
        user_upload("mine/a.bin", pattern(300, 7)).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        user_upload("theirs/b.bin", pattern(300, 8)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        tiny.inline_versions().await.1,
        2,
        "a refused upload left bytes"
    );
    assert_eq!(tiny.download("mine/a.bin", None).await.1, pattern(300, 6));
}

#[tokio::test]
async fn request_roles_hold_no_privilege_on_the_inline_bytes() {
    let tiny = Tiny::start().await;
    for role in ["anon", "authenticated", "service_role"] {
        for statement in [
            "select count(*) from storage.object_data",
            "insert into storage.object_data values ('inline-x', '')",
            "delete from storage.object_data",
        ] {
            let err = tiny
                .db
                .batch_execute(&format!("begin; set local role {role}; {statement}"))
                .await
                .expect_err("a request role reached storage.object_data");
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role}: {statement}"
            );
            tiny.db.batch_execute("rollback").await.unwrap();
        }
    }
}

/// HEAD answers from the row: sizes and ranges as GET would send them,
/// without loading the bytes, so it answers even with them gone.
#[tokio::test]
async fn head_answers_from_the_row_without_the_bytes() {
    let tiny = Tiny::start().await;
    tiny.upload("large.bin", pattern(10, 5)).await;
    tiny.upload("small.bin", pattern(20_000, 4)).await;

    assert_eq!(
        tiny.head("large.bin", None).await,
        (StatusCode::OK, Some(10))
    );
    assert_eq!(
        tiny.head("small.bin", None).await,
        (StatusCode::OK, Some(20_000))
    );
    assert_eq!(
        tiny.head("small.bin", Some("bytes=100-199")).await,
        (StatusCode::PARTIAL_CONTENT, Some(100))
    );
    assert_eq!(tiny.head("nope.bin", None).await.0, StatusCode::NOT_FOUND);
    tiny.db
        .batch_execute(
            "delete from storage.object_data d using storage.objects o \
             where o.version = d.version and o.name = 'large.bin'",
        )
        .await
        .unwrap();
    assert_eq!(
        tiny.head("large.bin", None).await,
        (StatusCode::OK, Some(10))
    );
    assert_eq!(
        tiny.download("large.bin", None).await.0,
        StatusCode::INTERNAL_SERVER_ERROR,
        "GET still needs the bytes"
    );
}

/// Request roles may write `storage.objects` rows (as on Supabase), which a
/// user function's SQL can do. A row of theirs must not take over a version
/// another row holds: it would serve that object's bytes, and deleting it
/// would release them.
#[tokio::test]
async fn a_row_cannot_take_over_another_objects_bytes() {
    let host = Host::serve().await.start();
    host.create_bucket("guarded", false).await;
    let mut db = host.db().await;
    let object_path = |key: &str| format!("/storage/v1/object/guarded/{key}");
    let small: Vec<u8> = (0..100u8).collect();
    let large: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    for (key, bytes) in [
        ("victim-small.bin", small.clone()),
        ("victim-large.bin", large.clone()),
        ("mine.bin", b"mine".to_vec()),
    ] {
        let status = host
            .post(&object_path(key))
            .service_role(&host)
            .body(bytes)
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK, "upload {key}");
    }
    db.batch_execute(
        "create policy guarded_mine on storage.objects for all to authenticated \
         using (bucket_id = 'guarded' and name like 'mine%') \
         with check (bucket_id = 'guarded' and name like 'mine%')",
    )
    .await
    .unwrap();
    let version_of = |name: &'static str| {
        let db = &db;
        async move {
            db.query_one(
                "select version from storage.objects where bucket_id = 'guarded' and name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, String>(0)
        }
    };
    let victims = [
        version_of("victim-small.bin").await,
        version_of("victim-large.bin").await,
    ];
    assert!(victims[0].starts_with("inline-") && !victims[1].starts_with("inline-"));

    let attempts = [
        "update storage.objects set version = $1 where bucket_id = 'guarded' and name = 'mine.bin'",
        "insert into storage.objects (bucket_id, name, version) values ('guarded', 'mine-2.bin', $1)",
    ];
    for victim in &victims {
        for attempt in attempts {
            let tx = db.transaction().await.unwrap();
            tx.batch_execute("set local role authenticated")
                .await
                .unwrap();
            let err = tx
                .execute(attempt, &[victim])
                .await
                .expect_err("taking over another row's version is refused");
            assert_eq!(
                err.code(),
                Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
                "{attempt}: {err}"
            );
        }
    }
    // The policy does let the role write its own row: the refusal above
    // came from the version, not from row-level security.
    let tx = db.transaction().await.unwrap();
    tx.batch_execute("set local role authenticated")
        .await
        .unwrap();
    let touched = tx
        .execute(
            "update storage.objects set user_metadata = '{\"a\": 1}' \
             where bucket_id = 'guarded' and name = 'mine.bin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(touched, 1);
    let deleted = tx
        .execute(
            "delete from storage.objects where bucket_id = 'guarded' and name = 'mine.bin'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    tx.commit().await.unwrap();

    for (key, bytes) in [("victim-small.bin", small), ("victim-large.bin", large)] {
        let got = host
            .get(&object_path(key))
            .service_role(&host)
            .fetch_bytes()
            .await;
        assert_eq!(got, (StatusCode::OK, bytes), "{key}");
    }
}
