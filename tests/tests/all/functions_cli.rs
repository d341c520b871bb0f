//! `selfdb functions ...`, the command line a developer uses: scaffold,
//! deploy, invoke, secrets, versions, rollback and logs against a running
//! host, found through SELFDB_URL and SELFDB_SERVICE_KEY.

use selfdb_tests::{selfdb_binary, Host};
use std::path::Path;
use std::process::{Command, Output};

fn cli(host: Option<&Host>, dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(selfdb_binary());
    command
        .arg("functions")
        .args(args)
        .current_dir(dir)
        .env_remove("SELFDB_URL")
        .env_remove("SELFDB_SERVICE_KEY");
    if let Some(host) = host {
        command
            .env("SELFDB_URL", &host.url)
            .env("SELFDB_SERVICE_KEY", host.service_key());
    }
    command.output().expect("run selfdb functions")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn run(host: &Host, dir: &Path, args: &[&str]) -> String {
    let (url, key, dir) = (
        host.url.clone(),
        host.service_key().to_owned(),
        dir.to_owned(),
    );
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(selfdb_binary());
        command
            .arg("functions")
            .args(&args)
            .current_dir(&dir)
            .env("SELFDB_URL", url)
            .env("SELFDB_SERVICE_KEY", key);
        ok(command.output().expect("run selfdb functions"))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_scaffolds_deploys_invokes_and_rolls_back_a_function() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // Without an instance it says where it looked.
    let lost = cli(None, dir, &["list"]);
    assert!(!lost.status.success());
    let message = String::from_utf8_lossy(&lost.stderr);
    assert!(message.contains("SELFDB_URL"), "{message}");

    let created = ok(cli(None, dir, &["new", "greeter", "--lang", "ts"]));
    assert!(created.contains("functions/greeter"), "{created}");
    assert!(dir.join("functions/greeter/index.ts").is_file());
    assert!(dir.join("functions/greeter/request.json").is_file());

    let host = Host::serve()
        .await
        .arg("--js-own-components")
        .arg("false")
        .start();
    let deployed = run(&host, dir, &["deploy", "greeter", "functions/greeter"]).await;
    assert!(deployed.contains("version 1"), "{deployed}");
    // deploy returns once the version serves: the next line may call it.
    let answer = run(
        &host,
        dir,
        &[
            "invoke",
            "greeter",
            "--data",
            "@functions/greeter/request.json",
        ],
    )
    .await;
    let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
    assert_eq!(answer["greeting"], "Hello, Ada!", "{answer}");
    assert_eq!(answer["role"], "service_role");

    let set = run(&host, dir, &["secrets", "set", "greeter", "GREETER=cli"]).await;
    assert!(set.contains("GREETER"), "{set}");
    assert!(!set.contains("cli\""), "values are never shown: {set}");
    let answer = run(&host, dir, &["invoke", "greeter", "-X", "GET"]).await;
    assert!(answer.contains("\"greeter\":\"cli\""), "{answer}");

    std::fs::write(
        dir.join("functions/greeter/index.ts"),
        "import { serve } from \"selfdb\";\nserve(() => new Response(\"two\"));\n",
    )
    .unwrap();
    let second = run(
        &host,
        dir,
        &["deploy", "greeter", "functions/greeter/index.ts"],
    )
    .await;
    assert!(second.contains("version 2"), "{second}");
    assert_eq!(run(&host, dir, &["invoke", "greeter"]).await.trim(), "two");
    let versions = run(&host, dir, &["versions", "greeter"]).await;
    assert_eq!(versions.lines().count(), 2, "{versions}");
    let rolled = run(&host, dir, &["rollback", "greeter"]).await;
    assert!(rolled.contains("version 1"), "{rolled}");
    let answer = run(&host, dir, &["invoke", "greeter", "-X", "GET"]).await;
    assert!(answer.contains("Hello, world!"), "{answer}");

    // A refused deploy names the file, line and column.
    std::fs::write(dir.join("broken.ts"), "const x: number = 'no';\n").unwrap();
    let refused = {
        let (url, key, dir) = (
            host.url.clone(),
            host.service_key().to_owned(),
            dir.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            Command::new(selfdb_binary())
                .args(["functions", "deploy", "greeter", "broken.ts"])
                .current_dir(&dir)
                .env("SELFDB_URL", url)
                .env("SELFDB_SERVICE_KEY", key)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("broken.ts:1:7"), "{message}");

    // Invocation records are written off the request path: wait for them.
    let logged = {
        let host = &host;
        selfdb_tests::eventually(std::time::Duration::from_secs(60), || async move {
            run(host, dir, &["logs", "greeter"]).await.contains(" 200 ")
        })
        .await
    };
    assert!(logged, "{}", host.stderr());
}

#[tokio::test]
async fn the_cli_declares_triggers_at_deploy_and_lists_dead_letters() {
    let host = Host::serve().await.start();
    let db = host.db().await;
    db.batch_execute("create table public.orders (id int primary key, status text)")
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let wasm = selfdb_tests::functions_dir().join("events.wasm");
    let wasm = wasm.to_str().unwrap();
    let deployed = run(
        &host,
        work.path(),
        &[
            "deploy",
            "orders-hook",
            wasm,
            "--on",
            "insert,update:public.orders?status=eq.paid",
            "--cron",
            "*/5 * * * *",
            "--tz",
            "Europe/Paris",
            "--event",
            "order.paid",
        ],
    )
    .await;
    assert!(
        deployed.contains("deployed orders-hook version 1"),
        "{deployed}"
    );
    let listed = run(&host, work.path(), &["triggers", "orders-hook"]).await;
    assert_eq!(
        listed,
        "on insert,update:public.orders?status=eq.paid\ncron */5 * * * * (Europe/Paris)\nevent order.paid\n"
    );
    // Two Postgres triggers, one per operation, each with the filter.
    let when: i64 = db
        .query_one(
            "select count(*) from pg_trigger where tgname like 'selfdb_fn_%' \
             and pg_get_triggerdef(oid) like '%status%paid%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(when, 2);
    // Deploying again without trigger flags keeps them.
    run(&host, work.path(), &["deploy", "orders-hook", wasm]).await;
    let kept = run(&host, work.path(), &["triggers", "orders-hook"]).await;
    assert_eq!(kept, listed);
    let cleared = run(
        &host,
        work.path(),
        &["triggers", "orders-hook", "--no-triggers"],
    )
    .await;
    assert_eq!(cleared, "HTTP requests only\n");
    let letters = run(&host, work.path(), &["dead-letters", "orders-hook"]).await;
    assert_eq!(letters, "");
    let refused = cli(
        Some(&host),
        work.path(),
        &["triggers", "orders-hook", "--on", "insert:public.nothing"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("table_not_found"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
