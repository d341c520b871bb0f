//! Realtime at the protocol level (a raw WebSocket client, where
//! supabase-js cannot reach): two hosts behind Redis, the capture moving to
//! a surviving host with no change lost or repeated, and bad input.

use futures::{SinkExt, StreamExt};
use selfdb_tests::{psql, Host, HostBuilder, Redis};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(host: &Host, key: &str) -> Socket {
    let url = format!(
        "{}/realtime/v1/websocket?apikey={key}&vsn=2.0.0",
        host.url.replacen("http", "ws", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect the realtime socket");
    socket
}

pub(crate) async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string().into()))
        .await
        .expect("send a frame");
}

/// The next text frame matching `want`, within `within`; `None` when none
/// came in time.
pub(crate) async fn try_next_where(
    socket: &mut Socket,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .ok()?
            .expect("the socket closed")
            .expect("a frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if want(&frame) {
                return Some(frame);
            }
        }
    }
}

/// The next text frame matching `want`, within `within`.
pub(crate) async fn next_where(
    socket: &mut Socket,
    within: Duration,
    want: impl Fn(&Value) -> bool,
) -> Value {
    try_next_where(socket, within, want)
        .await
        .expect("timed out waiting for a frame")
}

pub(crate) async fn join(socket: &mut Socket, topic: &str, config: Value) -> Value {
    send(
        socket,
        json!(["1", "1", topic, "phx_join", { "config": config }]),
    )
    .await;
    next_where(socket, Duration::from_secs(20), |f| {
        f[3] == "phx_reply" && f[2] == topic
    })
    .await
}

#[tokio::test]
async fn the_capture_moves_to_a_surviving_host_with_no_change_lost_or_repeated() {
    let redis = Redis::start();
    let mut a = Host::serve()
        .await
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    let b = HostBuilder::alongside(&a)
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    let db = psql(a.database_url.as_deref().expect("database")).await;
    db.batch_execute(
        "create table ticks (id int primary key, note text);
         alter publication supabase_realtime add table ticks;",
    )
    .await
    .expect("table");
    // The first host to start holds the capture lock.
    assert!(
        a.wait_for_log("capturing database changes", Duration::from_secs(30))
            .await,
        "host A never started capturing:\n{}",
        a.stderr()
    );

    // A subscriber on B, the host that survives.
    let mut socket = connect(&b, b.service_key()).await;
    let reply = join(
        &mut socket,
        "realtime:ticks",
        json!({ "postgres_changes": [{ "event": "INSERT", "schema": "public", "table": "ticks" }] }),
    )
    .await;
    assert_eq!(reply[4]["status"], "ok", "{reply}");

    // Changes before, during and after the capturing host dies.
    for id in 1..=50 {
        db.execute("insert into ticks values ($1, 'before')", &[&id])
            .await
            .expect("insert");
    }
    a.kill();
    for id in 51..=100 {
        db.execute("insert into ticks values ($1, 'after')", &[&id])
            .await
            .expect("insert");
    }
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let frame = next_where(&mut socket, Duration::from_secs(60), |f| {
            f[3] == "postgres_changes"
        })
        .await;
        seen.push(frame[4]["data"]["record"]["id"].as_i64().expect("id"));
    }
    let expected: Vec<i64> = (1..=100).collect();
    assert_eq!(seen, expected, "every change once, in commit order");
    assert!(
        b.wait_for_log("capturing database changes", Duration::from_secs(30))
            .await,
        "host B never took over the capture"
    );
    // Nothing repeated after the takeover: a marker comes next.
    db.execute("insert into ticks values (1000, 'marker')", &[])
        .await
        .expect("marker");
    let next = next_where(&mut socket, Duration::from_secs(30), |f| {
        f[3] == "postgres_changes"
    })
    .await;
    assert_eq!(next[4]["data"]["record"]["id"], 1000);
}

#[tokio::test]
async fn broadcast_and_presence_cross_hosts_through_redis() {
    let redis = Redis::start();
    let a = Host::serve()
        .await
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    let b = HostBuilder::alongside(&a)
        .arg("--redis-url")
        .arg(redis.url.clone())
        .start();
    let mut on_a = connect(&a, a.anon_key()).await;
    let mut on_b = connect(&b, b.anon_key()).await;
    let config =
        json!({ "broadcast": { "self": false }, "presence": { "key": "", "enabled": true } });
    assert_eq!(
        join(&mut on_a, "realtime:hall", config.clone()).await[4]["status"],
        "ok"
    );
    assert_eq!(
        join(&mut on_b, "realtime:hall", config).await[4]["status"],
        "ok"
    );

    // B subscribes to Redis as it starts: resend until the first arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        send(
            &mut on_a,
            json!(["1", "2", "realtime:hall", "broadcast", { "type": "broadcast", "event": "hi", "payload": { "from": "a" } }]),
        )
        .await;
        match try_next_where(&mut on_b, Duration::from_secs(1), |f| f[3] == "broadcast").await {
            Some(frame) => break frame,
            None => assert!(Instant::now() < deadline, "no broadcast crossed hosts"),
        }
    };
    assert_eq!(got[4]["payload"]["from"], "a");

    send(
        &mut on_b,
        json!(["1", "3", "realtime:hall", "presence", { "type": "presence", "event": "track", "payload": { "who": "b" } }]),
    )
    .await;
    let diff = next_where(&mut on_a, Duration::from_secs(10), |f| {
        f[3] == "presence_diff"
    })
    .await;
    let joins = diff[4]["joins"].as_object().expect("joins");
    assert_eq!(joins.len(), 1);
    let (_, entry) = joins.iter().next().expect("one key");
    assert_eq!(entry["metas"][0]["who"], "b");

    // A third socket joining A sees B's presence in its state.
    let mut late = connect(&a, a.anon_key()).await;
    send(
        &mut late,
        json!(["1", "1", "realtime:hall", "phx_join", { "config": { "presence": { "key": "late", "enabled": true } } }]),
    )
    .await;
    let state = next_where(&mut late, Duration::from_secs(10), |f| {
        f[3] == "presence_state"
    })
    .await;
    assert!(state[4].to_string().contains("\"who\":\"b\""), "{state}");

    // B's socket closes: its presence leaves on A.
    drop(on_b);
    let leave = next_where(&mut on_a, Duration::from_secs(70), |f| {
        f[3] == "presence_diff" && f[4]["leaves"].as_object().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert!(
        leave[4]["leaves"].to_string().contains("\"who\":\"b\""),
        "{leave}"
    );
}

#[tokio::test]
async fn bad_frames_and_limits_get_errors_without_hurting_neighbours() {
    let host = Host::serve()
        .await
        .arg("--realtime-max-channels")
        .arg("5")
        .arg("--realtime-max-connections")
        .arg("3")
        .start();
    let mut neighbour = connect(&host, host.anon_key()).await;
    assert_eq!(
        join(&mut neighbour, "realtime:calm", json!({})).await[4]["status"],
        "ok"
    );

    let mut rowdy = connect(&host, host.anon_key()).await;
    rowdy
        .send(Message::Text("not json".into()))
        .await
        .expect("send");
    let error = next_where(&mut rowdy, Duration::from_secs(10), |f| f[3] == "phx_reply").await;
    assert_eq!(error[4]["status"], "error");
    send(
        &mut rowdy,
        json!(["1", "5", "realtime:nowhere", "broadcast", {}]),
    )
    .await;
    let unmatched = next_where(&mut rowdy, Duration::from_secs(10), |f| f[1] == "5").await;
    assert_eq!(unmatched[4]["response"]["reason"], "unmatched topic");
    send(&mut rowdy, json!(["1", "6", "other:topic", "phx_join", {}])).await;
    let other = next_where(&mut rowdy, Duration::from_secs(10), |f| f[1] == "6").await;
    assert_eq!(other[4]["status"], "error");
    let forged =
        json!(["1", "7", "realtime:x", "phx_join", { "config": {}, "access_token": "a.b.c" }]);
    send(&mut rowdy, forged).await;
    let refused = next_where(&mut rowdy, Duration::from_secs(10), |f| f[1] == "7").await;
    assert_eq!(refused[4]["status"], "error");

    // The channel cap, then Supabase's error.
    for i in 0..5 {
        let topic = format!("realtime:c{i}");
        assert_eq!(join(&mut rowdy, &topic, json!({})).await[4]["status"], "ok");
    }
    send(
        &mut rowdy,
        json!(["x", "x", "realtime:one-too-many", "phx_join", { "config": {} }]),
    )
    .await;
    let capped = next_where(&mut rowdy, Duration::from_secs(10), |f| f[1] == "x").await;
    assert_eq!(
        capped[4]["response"]["reason"],
        "ChannelRateLimitReached: Too many channels"
    );

    // The connection cap: a fourth socket is refused before the upgrade.
    let mut burst = connect(&host, host.anon_key()).await;
    let url = format!(
        "{}/realtime/v1/websocket?apikey={}&vsn=2.0.0",
        host.url.replacen("http", "ws", 1),
        host.anon_key()
    );
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a fourth connection was not refused: {other:?}"),
    }
    // More than 100 joins in a second: an error, then the socket closes.
    for i in 0..101 {
        send(&mut burst, json!([format!("b{i}"), format!("b{i}"), format!("realtime:b{i}"), "phx_join", { "config": {} }])).await;
    }
    next_where(&mut burst, Duration::from_secs(10), |f| {
        f[4]["response"]["reason"] == "ClientJoinRateLimitReached: Too many joins per second"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), burst.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) if Instant::now() < deadline => continue,
            _ => panic!("the socket over the join rate stayed open"),
        }
    }
    // Its place is free again.
    assert!(
        selfdb_tests::eventually(Duration::from_secs(10), || async {
            tokio_tungstenite::connect_async(url.as_str()).await.is_ok()
        })
        .await,
        "the closed socket's place was not freed"
    );

    // An unknown API key is refused before the upgrade.
    let bad = format!(
        "{}/realtime/v1/websocket?apikey=nope&vsn=2.0.0",
        host.url.replacen("http", "ws", 1)
    );
    assert!(tokio_tungstenite::connect_async(bad).await.is_err());

    // The neighbour still works.
    send(
        &mut neighbour,
        json!([null, "9", "phoenix", "heartbeat", {}]),
    )
    .await;
    let beat = next_where(&mut neighbour, Duration::from_secs(10), |f| f[1] == "9").await;
    assert_eq!(beat[4]["status"], "ok");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_not_buffered() {
    let host = Host::serve().await.start();
    let mut slow = connect(&host, host.anon_key()).await;
    assert_eq!(
        join(&mut slow, "realtime:flood", json!({})).await[4]["status"],
        "ok"
    );
    let mut sender = connect(&host, host.anon_key()).await;
    assert_eq!(
        join(&mut sender, "realtime:flood", json!({})).await[4]["status"],
        "ok"
    );
    // The slow socket reads nothing while 4,000 frames of 64 KiB go out:
    // more than its queue and the kernel's buffers hold.
    let blob = "x".repeat(64 * 1024);
    for i in 0..4000 {
        send(
            &mut sender,
            json!([null, null, "realtime:flood", "broadcast", { "type": "broadcast", "event": "e", "payload": { "i": i, "blob": blob } }]),
        )
        .await;
    }
    // Reading now: what was queued, then a close saying why.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut closed = None;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                closed = frame;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) | Err(_) => break,
        }
    }
    let frame = closed.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("too slowly"), "{}", frame.reason);
    // The sender was not held up.
    send(&mut sender, json!([null, "h", "phoenix", "heartbeat", {}])).await;
    let beat = next_where(&mut sender, Duration::from_secs(10), |f| f[1] == "h").await;
    assert_eq!(beat[4]["status"], "ok");
}
