//! Versioned platform migrations, run at start-up in one transaction under
//! an advisory lock, so several hosts starting together migrate once.

use tokio_postgres::Client;

/// (version, name, SQL). Append only: a released migration never changes.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "platform",
        include_str!("../../migrations/0001_platform.sql"),
    ),
    (2, "auth", include_str!("../../migrations/0002_auth.sql")),
    (
        3,
        "schema_events",
        include_str!("../../migrations/0003_schema_events.sql"),
    ),
    (
        4,
        "storage",
        include_str!("../../migrations/0004_storage.sql"),
    ),
    (
        5,
        "storage_inline",
        include_str!("../../migrations/0005_storage_inline.sql"),
    ),
    (
        6,
        "storage_version_unique",
        include_str!("../../migrations/0006_storage_version_unique.sql"),
    ),
    (
        7,
        "functions",
        include_str!("../../migrations/0007_functions.sql"),
    ),
    (
        8,
        "realtime",
        include_str!("../../migrations/0008_realtime.sql"),
    ),
    (
        9,
        "events",
        include_str!("../../migrations/0009_events.sql"),
    ),
    (10, "spin", include_str!("../../migrations/0010_spin.sql")),
    (
        11,
        "projects",
        include_str!("../../migrations/0011_projects.sql"),
    ),
    (
        12,
        "project_shapes",
        include_str!("../../migrations/0012_project_shapes.sql"),
    ),
    (
        13,
        "storage_s3",
        include_str!("../../migrations/0013_storage_s3.sql"),
    ),
    (
        14,
        "storage_upstream",
        include_str!("../../migrations/0014_storage_upstream.sql"),
    ),
    (
        15,
        "admin_sessions",
        include_str!("../../migrations/0015_admin_sessions.sql"),
    ),
    (
        16,
        "sql_snippets",
        include_str!("../../migrations/0016_sql_snippets.sql"),
    ),
    (
        17,
        "selfdb_api",
        include_str!("../../migrations/0017_selfdb_api.sql"),
    ),
];

/// The newest migration this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS
        .iter()
        .map(|(version, _, _)| *version)
        .max()
        .unwrap_or(0)
}

/// Arbitrary constant naming SelfDB's migration lock.
const MIGRATION_LOCK: i64 = 0x5e1f_db00_0001;

/// Applies every migration not yet recorded in `selfdb.migrations`; returns
/// the versions it applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "create schema if not exists selfdb;
         create table if not exists selfdb.migrations (
             version    integer primary key,
             name       text not null,
             applied_at timestamptz not null default now()
         );",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("select version from selfdb.migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "insert into selfdb.migrations (version, name) values ($1, $2)",
            &[version, name],
        )
        .await?;
        done.push(*version);
    }
    tx.commit().await?;
    Ok(done)
}
