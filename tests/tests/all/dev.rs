//! `selfdb dev`: the embedded cluster's life across restarts, clean stops
//! and crashes.

use selfdb_tests::{dev_data_dir, postmaster_pid, process_alive, psql, wait_for_exit, Host};
use std::time::Duration;

/// How long a stopped process may take to be gone: `pg_ctl stop -w`
/// returns once `postmaster.pid` is removed, which PostgreSQL does just
/// before its process exits.
const EXIT_WAIT: Duration = Duration::from_secs(10);

async fn count_rows(url: &str) -> i64 {
    psql(url)
        .await
        .query_one("select count(*) from public.kept", &[])
        .await
        .unwrap()
        .get(0)
}

/// Field 41 of `/proc/PID/stat`: the scheduling policy.
fn scheduling_policy(pid: i32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // The command name, field 2, is parenthesised and may hold spaces.
    let (_, after_name) = stat.rsplit_once(") ").expect("stat format");
    after_name
        .split(' ')
        .nth(41 - 3)
        .and_then(|field| field.parse().ok())
        .expect("policy field")
}

fn env_file(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("selfdb.env")).expect("selfdb.env")
}

#[tokio::test]
async fn dev_prints_keys_keeps_data_across_restarts_and_stops_its_cluster() {
    let dir = dev_data_dir();
    let mut first = Host::dev(&dir)
        .env("SELFDB_ADMIN_EMAIL", "ops@example.com")
        .start();
    for key in [
        "SELFDB_URL",
        "SELFDB_ANON_KEY",
        "SELFDB_SERVICE_KEY",
        "DATABASE_URL",
    ] {
        assert!(first.env.contains_key(key), "{key} not printed");
        assert!(
            env_file(&dir).contains(&format!("{key}={}", first.env[key])),
            "{key} not in selfdb.env"
        );
    }
    assert_eq!(first.env["SELFDB_ADMIN_EMAIL"], "ops@example.com");
    let admin_password = first
        .env
        .get("SELFDB_ADMIN_PASSWORD")
        .cloned()
        .expect("generated password printed");
    assert!(admin_password.len() >= 16);
    assert!(
        !env_file(&dir).contains(&admin_password),
        "the admin password must not be written to selfdb.env"
    );

    let database_url = first.env["DATABASE_URL"].clone();
    psql(&database_url)
        .await
        .batch_execute("create table public.kept (v int); insert into public.kept values (1), (2);")
        .await
        .unwrap();
    let pgdata = dir.join("pg");
    let pid = postmaster_pid(&pgdata).expect("postmaster.pid while running");
    // The cluster runs as SCHED_BATCH (3), so its backends do not preempt
    // the host; a backend forked for this test's connection inherits it.
    assert_eq!(scheduling_policy(pid), 3, "postmaster");
    let backend: i32 = psql(&database_url)
        .await
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(scheduling_policy(backend), 3, "backend");
    assert!(
        first.terminate(),
        "selfdb dev did not exit cleanly on SIGTERM"
    );
    assert!(
        wait_for_exit(pid, EXIT_WAIT),
        "PostgreSQL still running after a clean stop"
    );
    assert!(postmaster_pid(&pgdata).is_none());

    let second = Host::dev(&dir).start();
    assert_eq!(second.env["SELFDB_ANON_KEY"], first.env["SELFDB_ANON_KEY"]);
    assert_eq!(
        second.env["SELFDB_SERVICE_KEY"],
        first.env["SELFDB_SERVICE_KEY"]
    );
    assert_eq!(
        second.env["DATABASE_URL"], database_url,
        "the cluster moved"
    );
    assert!(
        !second.env.contains_key("SELFDB_ADMIN_PASSWORD"),
        "the admin was created again"
    );
    assert_eq!(count_rows(&database_url).await, 2);
}

#[tokio::test]
async fn a_cluster_left_by_a_killed_host_is_taken_over_without_losing_data() {
    let dir = dev_data_dir();
    let mut first = Host::dev(&dir).start();
    let database_url = first.env["DATABASE_URL"].clone();
    psql(&database_url)
        .await
        .batch_execute("create table public.kept (v int); insert into public.kept values (42);")
        .await
        .unwrap();
    let pgdata = dir.join("pg");
    let postmaster = postmaster_pid(&pgdata).unwrap();
    // Kill the host and its watchdog, so the cluster is truly orphaned.
    let watchdog: i32 = std::fs::read_to_string(dir.join("pg.watchdog.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watchdog),
        nix::sys::signal::Signal::SIGKILL,
    );
    // A signal is delivered asynchronously: the watchdog must be gone
    // before the host dies, or it would still stop the cluster.
    assert!(
        wait_for_exit(watchdog, EXIT_WAIT),
        "the watchdog survived SIGKILL"
    );
    first.kill();
    assert!(
        process_alive(postmaster),
        "the orphaned postmaster should still be running"
    );

    let mut second = Host::dev(&dir).start();
    assert!(
        wait_for_exit(postmaster, EXIT_WAIT),
        "the orphan was not stopped"
    );
    assert_eq!(count_rows(&second.env["DATABASE_URL"]).await, 1);
    let pid = postmaster_pid(&pgdata).unwrap();
    assert!(second.terminate());
    assert!(wait_for_exit(pid, EXIT_WAIT));
}

#[tokio::test]
async fn the_watchdog_stops_the_cluster_when_the_host_is_killed() {
    let dir = dev_data_dir();
    let mut host = Host::dev(&dir).start();
    let postmaster = postmaster_pid(&dir.join("pg")).unwrap();
    host.kill();
    assert!(
        wait_for_exit(postmaster, Duration::from_secs(30)),
        "PostgreSQL outlived its killed host"
    );
}
