//! SelfDB's own API (`/users`, `/tables`, `/storage/buckets`,
//! `/storage/files`, `/realtime/socket`) driven by SelfDB's Python SDK from
//! PyPI (`selfdb`, pinned with pytest in `tests/selfdb-sdk/requirements.txt`,
//! in the venv `scripts/bootstrap.sh` makes): the pytest suite in
//! `tests/selfdb-sdk` runs against a host started here, and this test fails
//! with pytest's output when any of it does.
//!
//! While working on a few tests, `SELFDB_SDK_ONLY='<pytest -k expression>'`
//! narrows the run.

use selfdb_tests::{wait_until, workspace_root, Host};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A run that has not finished by then is stuck (seconds unloaded).
const DEADLINE: Duration = Duration::from_secs(10 * 60);

/// The venv bootstrap made for the pinned requirements.
fn venv_python() -> PathBuf {
    let requirements = workspace_root().join("tests/selfdb-sdk/requirements.txt");
    let output = Command::new("sha256sum")
        .arg(&requirements)
        .output()
        .expect("run sha256sum");
    let digest = String::from_utf8_lossy(&output.stdout);
    let venv = workspace_root().join(format!("target/tools/selfdb-sdk-venv-{}", &digest[..12]));
    assert!(
        venv.join("bin/pytest").is_file(),
        "no SelfDB SDK venv at {}: run `make test` (scripts/bootstrap.sh makes it)",
        venv.display()
    );
    venv.join("bin/python")
}

#[tokio::test]
async fn the_python_sdk_runs_against_selfdbs_own_api() {
    let host = Host::serve().await.start();
    let python = venv_python();
    let log_path = host.data_dir.join("selfdb-sdk.log");
    let mut envs = vec![
        ("SELFDB_URL", host.url.clone()),
        ("SELFDB_ANON_KEY", host.anon_key().to_owned()),
        ("SELFDB_SERVICE_KEY", host.service_key().to_owned()),
        (
            "DATABASE_URL",
            host.database_url.clone().expect("a serve host"),
        ),
    ];
    // The S3 port, for the checks that an object is one object on every API.
    for key in ["S3_ENDPOINT", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"] {
        envs.push((key, host.env[key].clone()));
    }
    if let Ok(only) = std::env::var("SELFDB_SDK_ONLY") {
        envs.push(("SELFDB_SDK_ONLY", only));
    }
    let log = log_path.clone();
    let (finished, status) = tokio::task::spawn_blocking(move || {
        let log_file = std::fs::File::create(&log).expect("pytest log");
        let mut command = Command::new(python);
        command
            .args(["-m", "pytest", "--tb=short"])
            .current_dir(workspace_root().join("tests/selfdb-sdk"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("pytest log"))
            .stderr(log_file);
        if let Some((_, only)) = envs.iter().find(|(k, _)| *k == "SELFDB_SDK_ONLY") {
            command.args(["-k", only]);
        }
        let mut child = command.spawn().expect("run pytest");
        let mut status = None;
        let finished = wait_until(DEADLINE, || {
            status = child.try_wait().expect("wait for pytest");
            status.is_some()
        });
        if !finished {
            let _ = child.kill();
            let _ = child.wait();
        }
        (finished, status)
    })
    .await
    .expect("pytest task");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(finished, "pytest did not finish in {DEADLINE:?}:\n{log}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the SDK suite failed:\n{log}\n\nhost log:\n{}",
        host.stderr()
    );
    // pytest's summary ("N passed in S s"), shown with --nocapture.
    println!("{}", log.lines().last().unwrap_or_default());
}
