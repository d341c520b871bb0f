//! Per-invocation limits: a looping component is stopped at its time limit
//! (504) while others are served meanwhile, a trap and a memory hog get
//! 500s, each failure is logged, and the host keeps serving.

use reqwest::StatusCode;
use selfdb_tests::{error_code, eventually, misbehave, Host, RequestExt};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a log line may take to appear after the response it explains.
const LOG_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_looping_component_hits_its_time_limit_while_others_are_served() {
    // One worker thread: the loop holds it for its whole time limit unless
    // the host makes the guest yield, and then nothing below is served.
    let host = Host::serve()
        .await
        .arg("--function-time-ms")
        .arg("3000")
        .env("TOKIO_WORKER_THREADS", "1")
        .start();
    let looping = {
        let request = host
            .get("/functions/v1/misbehave?mode=loop")
            .apikey(host.anon_key());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = request.fetch().await;
            (response, started.elapsed())
        })
    };
    // Wait until the loop is really running inside the host (or gave up).
    let running = Cell::new(false);
    eventually(Duration::from_secs(20), || async {
        if looping.is_finished() {
            return true;
        }
        let metrics = host.get("/metrics").fetch().await.text().await.unwrap();
        running.set(metrics.contains("selfdb_active_invocations 1"));
        running.get()
    })
    .await;
    assert!(running.get(), "the looping invocation never became active");

    // Each is served between the loop's ticks: about 70 ms apiece here.
    for i in 0..10 {
        let status = host
            .get(&format!("/functions/v1/hello?name=n{i}"))
            .apikey(host.anon_key())
            .fetch_status()
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        !looping.is_finished(),
        "the loop ended before the other requests were served"
    );

    let (response, elapsed) = looping.await.unwrap();
    assert_eq!(
        error_code(response, StatusCode::GATEWAY_TIMEOUT).await,
        "function_time_limit"
    );
    assert!(
        elapsed < Duration::from_secs(6),
        "the limit took {elapsed:?}"
    );
    // Both ends of a loop, epoch interruption and the wall-clock backstop,
    // log the same code; the line may land after the response.
    let logged = host.wait_for_log("function_time_limit", LOG_WAIT).await;
    assert!(logged, "no log line for the timeout:\n{}", host.stderr());
}

#[tokio::test]
async fn traps_and_memory_hogs_get_5xx_and_the_host_keeps_serving() {
    let host = Host::serve()
        .await
        .arg("--function-memory-mb")
        .arg("16")
        .start();

    let trap = misbehave(&host, "trap").await;
    assert_eq!(
        error_code(trap, StatusCode::INTERNAL_SERVER_ERROR).await,
        "function_trapped"
    );

    let oom = misbehave(&host, "oom").await;
    assert_eq!(
        error_code(oom, StatusCode::INTERNAL_SERVER_ERROR).await,
        "function_memory_limit"
    );

    let ok = host
        .get("/functions/v1/hello")
        .apikey(host.anon_key())
        .fetch_status()
        .await;
    assert_eq!(ok, StatusCode::OK);
    let logged = host
        .wait_for_log_where(LOG_WAIT, |log| {
            log.contains("function_trapped") && log.contains("function_memory_limit")
        })
        .await;
    assert!(logged, "{}", host.stderr());
}
