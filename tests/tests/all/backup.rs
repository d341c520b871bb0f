//! `selfdb backup` and `selfdb restore`: an instance restored from an
//! archive taken while it served is the same instance (keys, rows, users
//! whose passwords still work, objects byte for byte, the secrets key); a
//! backup under concurrent writes holds each write wholly or not at all;
//! truncated, altered and unknown archives are refused before anything is
//! touched.

use reqwest::StatusCode;
use selfdb_tests::{
    dev_data_dir, eventually, fresh_database, psql, selfdb_binary, Host, RequestExt,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn selfdb(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(selfdb_binary())
            .args(&args)
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "selfdb=info,warn")
            .output()
            .expect("run selfdb")
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `selfdb backup ARGS --to OUT` and returns the archive it printed.
async fn backup(args: &[String], out: &Path) -> PathBuf {
    let mut all = vec![
        "backup".to_owned(),
        "--to".into(),
        out.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    let output = selfdb(all).await;
    assert!(output.status.success(), "backup failed: {}", text(&output));
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let path = PathBuf::from(&printed);
    assert!(path.is_file(), "backup printed {printed:?}");
    assert!(
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("selfdb-") && n.ends_with(".tar")),
        "{printed}"
    );
    path
}

async fn restore(archive: &Path, data_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "restore".to_owned(),
        archive.display().to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    selfdb(args).await
}

fn object_bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

async fn greet(host: &Host) -> (StatusCode, Vec<u8>) {
    host.get("/functions/v1/greeter?name=kept")
        .apikey(host.anon_key())
        .fetch_bytes()
        .await
}

/// `kept@example.com`, made by `Host::create_user` before the backup, signs
/// in on a restored host with the password it had.
async fn signs_in_with_the_old_password(copy: &Host) {
    let (status, session) = copy
        .post("/auth/v1/token?grant_type=password")
        .apikey(copy.anon_key())
        .json(&json!({"email": "kept@example.com", "password": "correct horse 1"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert!(session["access_token"].is_string(), "{session}");
}

async fn upload(host: &Host, bucket: &str, name: &str, bytes: Vec<u8>) -> StatusCode {
    host.post(&format!("/storage/v1/object/{bucket}/{name}"))
        .service_role(host)
        .body(bytes)
        .fetch_status()
        .await
}

async fn download(host: &Host, bucket: &str, name: &str) -> (StatusCode, Vec<u8>) {
    host.get(&format!("/storage/v1/object/{bucket}/{name}"))
        .service_role(host)
        .fetch_bytes()
        .await
}

/// Everything round-trips through an archive taken while the host serves;
/// then bad archives are refused without touching the target directory.
#[tokio::test]
async fn a_restored_instance_is_the_instance_backed_up() {
    let dir = dev_data_dir();
    let host = Host::dev(&dir).start();
    let db = psql(&host.env["DATABASE_URL"]).await;
    db.batch_execute(
        "create table notes (id int primary key, body text not null); \
         insert into notes select g, 'note ' || g from generate_series(1, 500) g; \
         grant select on notes to anon, authenticated;",
    )
    .await
    .unwrap();
    host.create_user("kept@example.com").await;
    host.create_bucket("files", false).await;
    let small = object_bytes(1, 4096);
    let large = object_bytes(2, 300_000);
    for (name, bytes) in [("small.bin", &small), ("large.bin", &large)] {
        assert_eq!(
            upload(&host, "files", name, bytes.clone()).await,
            StatusCode::OK
        );
    }

    // A function with a secret: it loads only where the secret decrypts,
    // so serving it after the restore proves the secrets key came along.
    let wasm = std::fs::read(selfdb_tests::functions_dir().join("hello.wasm")).unwrap();
    let (status, deployed) = host
        .put("/api/v1/functions/greeter")
        .service_role(&host)
        .header("content-type", "application/wasm")
        .body(wasm)
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{deployed}");
    let (status, secrets) = host
        .put("/api/v1/functions/greeter/secrets")
        .service_role(&host)
        .json(&json!({"API_TOKEN": "kept-secret"}))
        .fetch_status_json()
        .await;
    assert_eq!(status, StatusCode::OK, "{secrets}");
    let greeting = Mutex::new((StatusCode::NOT_FOUND, Vec::new()));
    let served = eventually(Duration::from_secs(60), || async {
        let got = greet(&host).await;
        let ok = got.0 == StatusCode::OK;
        *greeting.lock().unwrap() = got;
        ok
    })
    .await;
    let greeting = greeting.into_inner().unwrap();
    assert!(served, "the function does not answer: {greeting:?}");

    let out = tempfile::tempdir().unwrap();
    let archive = backup(
        &["--data-dir".into(), dir.display().to_string()],
        out.path(),
    )
    .await;
    let checked = restore(&archive, &out.path().join("unused"), &["--check"]).await;
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        !out.path().join("unused").exists(),
        "--check writes nothing"
    );

    let restored_dir = dev_data_dir();
    let restored = restore(&archive, &restored_dir, &[]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    let copy = Host::dev(&restored_dir).start();
    for key in [
        "SELFDB_ANON_KEY",
        "SELFDB_SERVICE_KEY",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
    ] {
        assert_eq!(copy.env[key], host.env[key], "{key}");
    }
    assert_eq!(
        std::fs::read(dir.join("secrets.key")).unwrap(),
        std::fs::read(restored_dir.join("secrets.key")).unwrap()
    );
    let copy_db = psql(&copy.env["DATABASE_URL"]).await;
    let summary = "select count(*)::text || ' ' || string_agg(body, ',' order by id) from notes";
    let want: String = db.query_one(summary, &[]).await.unwrap().get(0);
    let got: String = copy_db.query_one(summary, &[]).await.unwrap().get(0);
    assert_eq!(got, want);
    let users =
        "select string_agg(email || ':' || encrypted_password, ',' order by email) from auth.users";
    let want: String = db.query_one(users, &[]).await.unwrap().get(0);
    let got: String = copy_db.query_one(users, &[]).await.unwrap().get(0);
    assert_eq!(got, want);
    signs_in_with_the_old_password(&copy).await;
    let rows = copy
        .get("/rest/v1/notes?id=eq.7")
        .apikey(copy.anon_key())
        .fetch_json()
        .await;
    assert_eq!(rows, json!([{"id": 7, "body": "note 7"}]));
    for (name, bytes) in [("small.bin", &small), ("large.bin", &large)] {
        let (status, got) = download(&copy, "files", name).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(got == *bytes, "{name} differs after the restore");
    }

    let versions = "select string_agg(function || ':' || version || ':' || sha256, ',' \
                    order by function, version) from selfdb.function_versions";
    let want: Option<String> = db.query_one(versions, &[]).await.unwrap().get(0);
    let got: Option<String> = copy_db.query_one(versions, &[]).await.unwrap().get(0);
    assert!(want.is_some());
    assert_eq!(got, want);
    let restored = eventually(Duration::from_secs(60), || async {
        greet(&copy).await == greeting
    })
    .await;
    assert!(restored, "the restored function answers differently");

    // Bad archives: each refused, the target (with a marker, and --force)
    // untouched, no staging directory left.
    let good = std::fs::read(&archive).unwrap();
    let target = out.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("marker"), b"keep me").unwrap();
    let truncated = out.path().join("truncated.tar");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    let before_manifest = out.path().join("no-manifest.tar");
    let manifest_at = good
        .windows(b"manifest.json".len())
        .rposition(|w| w == b"manifest.json")
        .unwrap();
    std::fs::write(&before_manifest, &good[..manifest_at - manifest_at % 512]).unwrap();
    let flipped = out.path().join("flipped.tar");
    let mut altered = good.clone();
    let at = altered
        .windows(64)
        .position(|w| w == &large[1000..1064])
        .expect("the large object's bytes are in the archive");
    altered[at] ^= 0xff;
    std::fs::write(&flipped, &altered).unwrap();
    let future = out.path().join("future.tar");
    let rewrite = Command::new("python3")
        .arg("-c")
        .arg(
            "import io, json, sys, tarfile\n\
             src = tarfile.open(sys.argv[1]); dst = tarfile.open(sys.argv[2], 'w', format=tarfile.GNU_FORMAT)\n\
             for m in src.getmembers():\n\
             \x20   data = src.extractfile(m).read()\n\
             \x20   if m.name == 'manifest.json':\n\
             \x20       doc = json.loads(data); doc['format_version'] = 99; data = json.dumps(doc).encode(); m.size = len(data)\n\
             \x20   dst.addfile(m, io.BytesIO(data))\n\
             dst.close()\n",
        )
        .arg(&archive)
        .arg(&future)
        .output()
        .unwrap();
    assert!(rewrite.status.success(), "{}", text(&rewrite));
    for (bad, why) in [
        (&truncated, "truncated"),
        (&before_manifest, "no manifest"),
        (&flipped, "does not match the manifest"),
        (&future, "format version 99"),
    ] {
        let output = restore(bad, &target, &["--force"]).await;
        assert!(
            !output.status.success(),
            "{}: {}",
            bad.display(),
            text(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{}: {stderr}", bad.display());
        assert_eq!(std::fs::read(target.join("marker")).unwrap(), b"keep me");
        let left: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("restoring"))
            .collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }
    // A non-empty target without --force is refused too.
    let output = restore(&archive, &target, &[]).await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is not empty"),
        "{}",
        text(&output)
    );
}

/// Writers on a `serve` host run through the whole backup: rows through
/// the data API, pairs of rows in one transaction, 64 KiB uploads and
/// deletes of earlier objects. The restored instance holds, per writer, a
/// prefix of its writes, both rows of every pair or neither, and the bytes
/// of every object its rows name; writes acknowledged after the backup are
/// absent.
#[tokio::test]
async fn a_backup_under_concurrent_writes_is_one_point_in_time() {
    // The database belongs to a role other than the restoring cluster's
    // superuser (as compose's POSTGRES_USER does): roles.sql must bring it.
    let admin_url = fresh_database().await;
    let database = admin_url.rsplit('/').next().unwrap().to_owned();
    let owner = format!("owner_{database}");
    psql(&admin_url)
        .await
        .batch_execute(&format!(
            "create role {owner} login superuser password 'owner-password'; \
             alter database {database} owner to {owner};"
        ))
        .await
        .unwrap();
    let (_, at) = admin_url.split_once('@').unwrap();
    let host = Host::serve_at(&format!("postgres://{owner}:owner-password@{at}")).start();
    let db = host.db().await;
    db.batch_execute(
        "create table ledger (w int, n int, primary key (w, n)); \
         create table pair_a (n int primary key); create table pair_b (n int primary key); \
         grant insert, select on ledger to service_role;",
    )
    .await
    .unwrap();
    host.create_bucket("load", false).await;
    // Enough file objects that copying them takes a while.
    for i in 0..150u32 {
        let status = upload(&host, "load", &format!("pre/{i}"), object_bytes(i, 65_536)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let host = Arc::new(host);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(i32, i32)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3i32 {
        let (host, stop, acked) = (host.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                let status = host
                    .post("/rest/v1/ledger")
                    .service_role(&host)
                    .header("prefer", "return=minimal")
                    .json(&json!({"w": w, "n": n}))
                    .fetch_status()
                    .await;
                assert_eq!(status, StatusCode::CREATED);
                acked.lock().unwrap().push((w, n));
                n += 1;
            }
        }));
    }
    {
        let (stop, url) = (stop.clone(), host.database_url.clone().unwrap());
        writers.push(tokio::spawn(async move {
            let mut client = psql(&url).await;
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                let tx = client.transaction().await.unwrap();
                tx.execute("insert into pair_a values ($1)", &[&n])
                    .await
                    .unwrap();
                tx.execute("insert into pair_b values ($1)", &[&n])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                n += 1;
            }
        }));
    }
    let uploaded: Arc<Mutex<Vec<u32>>> = Arc::default();
    {
        let (host, stop, uploaded) = (host.clone(), stop.clone(), uploaded.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let status = upload(
                    &host,
                    "load",
                    &format!("new/{i}"),
                    object_bytes(1000 + i, 65_536),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                uploaded.lock().unwrap().push(i);
                // Deletes free files the backup may be copying.
                let deleted = host
                    .delete(&format!("/storage/v1/object/load/pre/{}", i % 150))
                    .service_role(&host)
                    .fetch_status()
                    .await;
                assert!(
                    deleted.is_success()
                        || deleted == StatusCode::BAD_REQUEST
                        || deleted == StatusCode::NOT_FOUND
                );
                i += 1;
            }
        }));
    }
    let started = eventually(Duration::from_secs(60), || async {
        acked.lock().unwrap().len() >= 30 && uploaded.lock().unwrap().len() >= 3
    })
    .await;
    assert!(started, "the writers did not get going");

    let out = tempfile::tempdir().unwrap();
    let archive = backup(
        &[
            "--database-url".into(),
            host.database_url.clone().unwrap(),
            "--data-dir".into(),
            host.data_dir.display().to_string(),
            "--secrets-key".into(),
            "test secrets key of the selfdb test suite".into(),
        ],
        out.path(),
    )
    .await;
    // Writes acknowledged from here on came after the snapshot.
    let after_backup = acked.lock().unwrap().len();
    let more = eventually(Duration::from_secs(60), || async {
        acked.lock().unwrap().len() >= after_backup + 30
    })
    .await;
    assert!(more, "the writers stopped");
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let restored_dir = dev_data_dir();
    let restored = restore(&archive, &restored_dir, &[]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    let copy = Host::dev(&restored_dir).start();
    let copy_db = psql(&copy.env["DATABASE_URL"]).await;
    let table_owner: String = copy_db
        .query_one(
            "select tableowner::text from pg_tables where tablename = 'ledger'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(table_owner, owner);
    let mut missing_acks = 0;
    for w in 0..3i32 {
        let kept: Vec<i32> = copy_db
            .query("select n from ledger where w = $1 order by n", &[&w])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let prefix: Vec<i32> = (1..=kept.len() as i32).collect();
        assert_eq!(kept, prefix, "writer {w}: not a prefix of its writes");
        let acknowledged = acked
            .lock()
            .unwrap()
            .iter()
            .filter(|(aw, _)| *aw == w)
            .count();
        missing_acks += acknowledged - kept.len();
    }
    assert!(missing_acks > 0, "writes after the backup should be absent");
    let pairs = "select (select array_agg(n order by n) from pair_a)::text = \
                        (select array_agg(n order by n) from pair_b)::text";
    let equal: Option<bool> = copy_db.query_one(pairs, &[]).await.unwrap().get(0);
    assert_eq!(equal, Some(true), "a pair was split by the backup");
    let names: Vec<String> = copy_db
        .query(
            "select name from storage.objects where bucket_id = 'load' order by name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(names.len() > 100, "{} objects restored", names.len());
    let names: BTreeSet<String> = names.into_iter().collect();
    for name in &names {
        let seed = match name.split_once('/') {
            Some(("pre", i)) => i.parse::<u32>().unwrap(),
            Some(("new", i)) => 1000 + i.parse::<u32>().unwrap(),
            _ => panic!("unexpected object {name}"),
        };
        let (status, got) = download(&copy, "load", name).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(got == object_bytes(seed, 65_536), "{name} differs");
    }
}

/// The tick each "backup written" line of a host's log names.
fn ticks_written(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("backup written"))
        .filter_map(|line| {
            let rest = &line[line.find("tick=")? + "tick=".len()..];
            let value = rest.split_whitespace().next()?;
            Some(value.trim_matches('"').to_owned())
        })
        .collect()
}

/// Two hosts with a schedule of every second and `--backup-keep 2`: each
/// tick's backup is taken by one host only, the folder keeps the newest
/// two archives, and they are good archives.
#[tokio::test]
async fn scheduled_backups_take_each_tick_once_and_keep_the_newest() {
    let out = tempfile::tempdir().unwrap();
    let schedule = [
        "--backup-cron".to_owned(),
        "* * * * * *".into(),
        "--backup-to".into(),
        out.path().display().to_string(),
        "--backup-keep".into(),
        "2".into(),
    ];
    let mut a = Host::serve().await;
    for arg in &schedule {
        a = a.arg(arg.clone());
    }
    let mut a = a.start();
    let mut b = selfdb_tests::HostBuilder::alongside(&a);
    for arg in &schedule {
        b = b.arg(arg.clone());
    }
    let mut b = b.start();
    let enough = eventually(Duration::from_secs(90), || async {
        ticks_written(&a.stderr()).len() + ticks_written(&b.stderr()).len() >= 4
    })
    .await;
    assert!(
        enough,
        "fewer than 4 scheduled backups:\nA:\n{}\nB:\n{}",
        a.stderr(),
        b.stderr()
    );
    a.terminate();
    b.terminate();
    let mut ticks = ticks_written(&a.stderr());
    ticks.extend(ticks_written(&b.stderr()));
    let unique: BTreeSet<&String> = ticks.iter().collect();
    assert_eq!(
        unique.len(),
        ticks.len(),
        "a tick was backed up twice: {ticks:?}"
    );
    let archives: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    // At least four were written and two kept; a third can be left when
    // a host stopped between writing its archive and pruning the folder.
    assert!(
        (2..=3).contains(&archives.len()),
        "{} archives left after {} backups: {archives:?}",
        archives.len(),
        ticks.len()
    );
    for archive in &archives {
        let checked = restore(archive, &out.path().join("unused"), &["--check"]).await;
        assert!(checked.status.success(), "{}", text(&checked));
    }
}

/// An empty database in the tests' cluster, as `createdb` makes one.
async fn empty_database() -> String {
    let migrated = fresh_database().await;
    let (cluster, name) = migrated.rsplit_once('/').unwrap();
    let empty = format!("{name}_empty");
    psql(&migrated)
        .await
        .batch_execute(&format!("create database {empty}"))
        .await
        .unwrap();
    format!("{cluster}/{empty}")
}

/// A `serve` instance whose object bytes are in S3 is backed up to an
/// `s3://` prefix and restored from it: the archive holds the upstream
/// bytes (a single-PUT and a multipart object), and the restored `dev`
/// instance serves them from its own disk. The same archive restores onto
/// `serve` too: into an empty database, with the bytes in a prefix of
/// their own or in the data directory; a database that is not empty and a
/// prefix another instance holds are refused before anything is written.
#[tokio::test]
async fn archives_go_to_s3_and_back_with_upstream_bytes() {
    let seaweed = selfdb_tests::SeaweedFs::start("objects").await;
    seaweed.create_bucket("backups").await;
    let storage = seaweed.host_args("objects", "instance");
    let mut builder = Host::serve().await;
    for arg in &storage {
        builder = builder.arg(arg.clone());
    }
    let host = builder.start();
    host.create_user("kept@example.com").await;
    host.create_bucket("media", false).await;
    let small = object_bytes(4, 4096);
    let medium = object_bytes(5, 300_000);
    let large = object_bytes(6, 20 << 20);
    let objects = [
        ("small.bin", &small),
        ("medium.bin", &medium),
        ("large.bin", &large),
    ];
    for (name, bytes) in objects {
        assert_eq!(
            upload(&host, "media", name, bytes.clone()).await,
            StatusCode::OK
        );
    }
    let mut args = vec![
        "backup".to_owned(),
        "--to".into(),
        format!("s3://backups/nightly?{}", seaweed.url_options()),
        "--database-url".into(),
        host.database_url.clone().unwrap(),
        "--data-dir".into(),
        host.data_dir.display().to_string(),
        "--secrets-key".into(),
        "test secrets key of the selfdb test suite".into(),
    ];
    args.extend(storage.iter().cloned());
    let output = selfdb(args).await;
    assert!(output.status.success(), "backup failed: {}", text(&output));
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        url.starts_with("s3://backups/nightly/selfdb-") && url.ends_with(".tar"),
        "{url}"
    );
    let outgoing = host.data_dir.join("backups-outgoing");
    let left = std::fs::read_dir(&outgoing).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the local copy of an uploaded archive is deleted");
    let listed = seaweed.inventory("backups", "nightly/").await;
    assert_eq!(listed.keys.len(), 1, "{listed:?}");

    let restored_dir = dev_data_dir();
    let key_flags: Vec<String> = storage[2..].to_vec();
    let mut args = vec![
        "restore".to_owned(),
        format!("{url}?{}", seaweed.url_options()),
        "--data-dir".into(),
        restored_dir.display().to_string(),
    ];
    args.extend(key_flags.iter().cloned());
    let output = selfdb(args).await;
    assert!(output.status.success(), "restore failed: {}", text(&output));
    let copy = Host::dev(&restored_dir).start();
    for (name, bytes) in objects {
        let (status, got) = download(&copy, "media", name).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert!(got == *bytes, "{name} differs after the restore");
    }

    // Onto `serve`: each into an empty database; the bytes into a prefix
    // of their own, then into the data directory.
    let archive = format!("{url}?{}", seaweed.url_options());
    let restore_to_server = |database: String, dir: PathBuf, backend: Option<String>| {
        let mut args = vec![
            "restore".to_owned(),
            archive.clone(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--database-url".into(),
            database,
        ];
        if let Some(backend) = backend {
            args.push("--storage-backend".into());
            args.push(backend);
        }
        args.extend(key_flags.iter().cloned());
        selfdb(args)
    };
    let in_s3 = empty_database().await;
    let in_files = empty_database().await;
    let (dir_s3, dir_files) = (dev_data_dir(), dev_data_dir());
    let output = restore_to_server(
        in_s3.clone(),
        dir_s3.clone(),
        Some(seaweed.backend_url("objects", "restored")),
    )
    .await;
    assert!(output.status.success(), "restore failed: {}", text(&output));
    let output = restore_to_server(in_files.clone(), dir_files.clone(), None).await;
    assert!(output.status.success(), "restore failed: {}", text(&output));
    assert_eq!(
        std::fs::read_to_string(dir_files.join("secrets.key")).unwrap(),
        "test secrets key of the selfdb test suite"
    );
    let mut from_s3 = Host::serve_at(&in_s3);
    for arg in seaweed.host_args("objects", "restored") {
        from_s3 = from_s3.arg(arg);
    }
    let from_files = Host::serve_at(&in_files)
        .arg("--storage-dir")
        .arg(dir_files.join("storage").display().to_string());
    for copy in [from_s3.start(), from_files.start()] {
        assert_eq!(copy.service_key(), host.service_key());
        signs_in_with_the_old_password(&copy).await;
        for (name, bytes) in objects {
            let (status, got) = download(&copy, "media", name).await;
            assert_eq!(status, StatusCode::OK, "{name}: {}", copy.stderr());
            assert!(got == *bytes, "{name} differs after the restore");
        }
    }
    let restored_keys = seaweed.inventory("objects", "restored/objects/").await;
    assert_eq!(restored_keys.keys.len(), 2, "{restored_keys:?}");

    // Refused, with nothing written: a database that is not empty, and a
    // prefix an instance holds.
    let refused_dir = dev_data_dir();
    let untouched = empty_database().await;
    for (database, backend, why) in [
        (in_files.clone(), None, "is not empty"),
        (
            untouched.clone(),
            Some(seaweed.backend_url("objects", "instance")),
            "belongs to a SelfDB instance",
        ),
    ] {
        let output = restore_to_server(database, refused_dir.clone(), backend).await;
        assert!(!output.status.success(), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{stderr}");
        assert!(
            std::fs::read_dir(&refused_dir).map_or(true, |mut d| d.next().is_none()),
            "the data directory was written"
        );
    }
    let tables: i64 = psql(&untouched)
        .await
        .query_one(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where c.relkind = 'r' and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the refused restore wrote to the database");
}
