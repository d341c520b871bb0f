//! One HTTP invocation of a component: a fresh `Store`, the request handed
//! over as `wasi:http/incoming-handler` (or, to a system component that
//! exports it, as a `selfdb:platform/handler` record), the response
//! collected, and the transaction committed or rolled back by how the
//! invocation ended.

use super::engine::{Runtime, RuntimeMetrics};
use super::limits::MemoryLimiter;
use super::registry::{Deployed, Entry};
use crate::auth::Principal;
use crate::capabilities::bindings::{HandlerRequest, HandlerResponse, RecordHandlerPre};
use crate::capabilities::compose::FinishSet;
use crate::capabilities::wasi::{CapturedOutput, WasiState};
use crate::capabilities::{InvocationState, PlatformState, Prepare};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpView, DEFAULT_FORBIDDEN_HEADERS};

/// Largest response body a component may produce.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// Why an invocation produced no usable response. Each maps to a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function ran past its time limit of {0} ms")]
    TimeLimit(u64),
    #[error("the function exceeded its memory limit of {0} bytes")]
    MemoryLimit(u64),
    #[error("the function trapped: {0}")]
    Trap(String),
    #[error("no instance slot is free; try again")]
    Busy(String),
    #[error("the function returned no response")]
    NoResponse,
    #[error("the function's response is larger than {MAX_RESPONSE_BYTES} bytes")]
    ResponseTooLarge,
    #[error("the function's response body failed: {0}")]
    ResponseBody(String),
    #[error("the function's transaction failed to commit: {0}")]
    Commit(String),
}

impl InvokeError {
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::TimeLimit(_) => "function_time_limit",
            InvokeError::MemoryLimit(_) => "function_memory_limit",
            InvokeError::Trap(_) => "function_trapped",
            InvokeError::Busy(_) => "function_busy",
            InvokeError::NoResponse => "function_no_response",
            InvokeError::ResponseTooLarge => "function_response_too_large",
            InvokeError::ResponseBody(_) => "function_response_failed",
            InvokeError::Commit(_) => "function_commit_failed",
        }
    }

    pub fn status(&self) -> http::StatusCode {
        match self {
            InvokeError::TimeLimit(_) => http::StatusCode::GATEWAY_TIMEOUT,
            InvokeError::Busy(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            InvokeError::NoResponse
            | InvokeError::ResponseTooLarge
            | InvokeError::ResponseBody(_) => http::StatusCode::BAD_GATEWAY,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Everything an invocation needs besides the request; what the host
/// itself provides comes from the runtime's capabilities.
pub struct Invocation {
    pub function: Arc<Deployed>,
    pub principal: Arc<Principal>,
    pub request_id: Arc<str>,
    pub client_ip: Option<std::net::IpAddr>,
}

/// What an invocation left besides its response, for the function's logs.
#[derive(Debug, Default)]
pub struct Report {
    /// (level, message): lines from the `log` interface, then stdout
    /// (`info`) and stderr (`error`).
    pub lines: Vec<(&'static str, String)>,
    /// The largest linear memory it used, in bytes.
    pub memory_peak: u64,
    pub duration: Duration,
}

/// The export to call, in a store of state `InvocationState<P>`.
enum Call<'a, P: 'static> {
    Http(&'a ProxyPre<InvocationState<P>>),
    Record(&'a RecordHandlerPre<InvocationState<P>>),
}

type CollectedResponse = http::Response<Full<Bytes>>;

impl Runtime {
    /// Runs the component on `request` (whose body the host has already
    /// read within its size limit).
    pub async fn invoke_http(
        &self,
        invocation: Invocation,
        request: http::Request<Full<Bytes>>,
    ) -> (Result<CollectedResponse, InvokeError>, Report) {
        self.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut report = Report::default();
        let result = self.run(invocation, request, &mut report).await;
        report.duration = started.elapsed();
        self.metrics.active.fetch_sub(1, Ordering::Relaxed);
        if result.is_err() {
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
        }
        (result, report)
    }

    async fn run(
        &self,
        invocation: Invocation,
        request: http::Request<Full<Bytes>>,
        report: &mut Report,
    ) -> Result<CollectedResponse, InvokeError> {
        let function = &*invocation.function;
        let cx = Prepare {
            function,
            principal: &invocation.principal,
            request_id: &invocation.request_id,
            client_ip: invocation.client_ip,
        };
        let platform = self.capabilities.platform.prepare(&cx);
        match &function.entry {
            Entry::Http(pre) => {
                self.run_in(function, platform, (), Call::Http(pre), request, report)
                    .await
            }
            Entry::SystemHttp(pre) => {
                let privileged = self.capabilities.privileged.prepare(&cx);
                self.run_in(
                    function,
                    platform,
                    privileged,
                    Call::Http(pre),
                    request,
                    report,
                )
                .await
            }
            Entry::Record(pre) => {
                let privileged = self.capabilities.privileged.prepare(&cx);
                self.run_in(
                    function,
                    platform,
                    privileged,
                    Call::Record(pre),
                    request,
                    report,
                )
                .await
            }
        }
    }

    /// Runs `call` in a fresh store holding the invocation's states, then
    /// ends them: committed when the response is not a server error,
    /// rolled back otherwise.
    async fn run_in<P: FinishSet>(
        &self,
        function: &Deployed,
        platform: PlatformState,
        privileged: P,
        call: Call<'_, P>,
        request: http::Request<Full<Bytes>>,
        report: &mut Report,
    ) -> Result<CollectedResponse, InvokeError> {
        let limits = function.limits;
        // A user function's stdout and stderr go to its logs.
        let (wasi, output) = if function.system {
            (WasiState::sealed(function.allowed_hosts.clone()), None)
        } else {
            let (wasi, stdout, stderr) = WasiState::capturing(function.allowed_hosts.clone());
            (wasi, Some((stdout, stderr)))
        };
        let state = InvocationState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            platform,
            privileged,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        yield_every_tick_until(&mut store, limits.time_ms);

        // A wall-clock backstop for time spent in host calls, where epoch
        // interruption cannot reach.
        let wall = Duration::from_millis(limits.time_ms) + Duration::from_secs(1);
        let metrics = &self.metrics;
        let outcome = match call {
            Call::Http(pre) => {
                tokio::time::timeout(wall, call_http(&mut store, pre, request, metrics)).await
            }
            Call::Record(pre) => {
                tokio::time::timeout(wall, call_record(&mut store, pre, request, metrics)).await
            }
        };
        let (called, collected) = match outcome {
            Ok(pair) => pair,
            Err(_) => {
                report_from(&mut store, output, report);
                drop(store);
                let err = InvokeError::TimeLimit(limits.time_ms);
                // The same line as a limit met by epoch interruption, so
                // logs (and tests) see one code whichever backstop fired.
                tracing::warn!(
                    function = &*function.name,
                    code = err.code(),
                    error = %err,
                    "invocation failed: passed its wall-clock limit"
                );
                return Err(err);
            }
        };
        let failure = match called {
            Ok(()) => None,
            Err((instantiating, err)) => Some(classify(&store, limits.time_ms, instantiating, err)),
        };
        let response = match (failure, collected) {
            (Some(err), _) => Err(err),
            (None, Some(Ok(response))) => Ok(response),
            (None, Some(Err(err))) => Err(err),
            (None, None) => Err(InvokeError::NoResponse),
        };
        let success = response
            .as_ref()
            .is_ok_and(|r| !r.status().is_server_error());
        report_from(&mut store, output, report);
        let state = store.data_mut();
        let mut failures = state.platform.finish(success).await;
        failures.extend(state.privileged.finish(success).await);
        for err in failures {
            if success {
                return Err(InvokeError::Commit(err.0));
            }
            tracing::warn!(error = %err, "rollback failed; connection discarded");
        }
        match &response {
            Err(err) => {
                tracing::warn!(function = &*function.name, code = err.code(), error = %err, "invocation failed")
            }
            Ok(r) if r.status().is_server_error() => {
                tracing::warn!(
                    function = &*function.name,
                    status = r.status().as_u16(),
                    body = %String::from_utf8_lossy(&r.body()[..r.body().len().min(300)]),
                    "function answered with a server error; its transaction was rolled back"
                )
            }
            Ok(_) => {}
        }
        response.map(|r| r.map(Full::new))
    }
}

/// Moves what the invocation wrote and used into `report`.
fn report_from<P>(
    store: &mut Store<InvocationState<P>>,
    output: Option<(CapturedOutput, CapturedOutput)>,
    report: &mut Report,
) {
    let state = store.data_mut();
    report.memory_peak = state.limiter.peak as u64;
    report.lines = state.platform.log.take_lines();
    if let Some((stdout, stderr)) = output {
        report
            .lines
            .extend(stdout.lines().into_iter().map(|l| ("info", l)));
        report
            .lines
            .extend(stderr.lines().into_iter().map(|l| ("error", l)));
    }
}

/// How the guest call ended (`true` with the error when it failed while
/// instantiating), and the response it produced, if it got that far.
type Called = (
    Result<(), (bool, wasmtime::Error)>,
    Option<Result<http::Response<Bytes>, InvokeError>>,
);

fn note_instantiation(metrics: &RuntimeMetrics, started: Instant) {
    metrics.instantiations.fetch_add(1, Ordering::Relaxed);
    metrics
        .instantiate_nanos
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Calls `wasi:http/incoming-handler.handle` and collects the response the
/// guest streams back.
async fn call_http<P: Send + 'static>(
    store: &mut Store<InvocationState<P>>,
    pre: &ProxyPre<InvocationState<P>>,
    request: http::Request<Full<Bytes>>,
    metrics: &RuntimeMetrics,
) -> Called {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let setup = (|| {
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        Ok::<_, wasmtime::Error>((req, out))
    })();
    let (req, out) = match setup {
        Ok(pair) => pair,
        Err(e) => return (Ok(()), Some(Err(InvokeError::Trap(format!("{e:#}"))))),
    };
    let call = async {
        let started = Instant::now();
        let proxy = pre
            .instantiate_async(&mut *store)
            .await
            .map_err(|e| (true, e))?;
        note_instantiation(metrics, started);
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut *store, req, out)
            .await
            .map_err(|e| (false, e))
    };
    let collect = async {
        let response = receiver.await.map_err(|_| InvokeError::NoResponse)?;
        let response = response.map_err(|code| InvokeError::ResponseBody(format!("{code:?}")))?;
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    InvokeError::ResponseTooLarge
                } else {
                    InvokeError::ResponseBody(e.to_string())
                }
            })?
            .to_bytes();
        Ok::<_, InvokeError>(http::Response::from_parts(parts, bytes))
    };
    tokio::pin!(call);
    tokio::pin!(collect);
    tokio::select! {
        called = &mut call => match called {
            Ok(()) => (Ok(()), Some(collect.await)),
            // The guest failed: whatever it sent is not to be trusted.
            Err(err) => (Err(err), None),
        },
        collected = &mut collect => match collected {
            Ok(response) => (call.await, Some(Ok(response))),
            Err(err) => (call.await, Some(Err(err))),
        },
    }
}

/// Calls `selfdb:platform/handler.handle`: the whole request in, the whole
/// response out, no resources or streams in between.
async fn call_record<P: Send + 'static>(
    store: &mut Store<InvocationState<P>>,
    pre: &RecordHandlerPre<InvocationState<P>>,
    request: http::Request<Full<Bytes>>,
    metrics: &RuntimeMetrics,
) -> Called {
    let request = handler_request(request).await;
    let started = Instant::now();
    let handler = match pre.instantiate_async(&mut *store).await {
        Ok(handler) => handler,
        Err(e) => return (Err((true, e)), None),
    };
    note_instantiation(metrics, started);
    match handler
        .selfdb_platform_handler()
        .call_handle(&mut *store, &request)
        .await
    {
        Ok(response) => (Ok(()), Some(handler_response(response))),
        Err(e) => (Err((false, e)), None),
    }
}

/// The request as the `handler` record. Headers `wasi:http` keeps from
/// guests (hop-by-hop ones, `host`) are left out here too, so a component
/// sees the same request through either export.
async fn handler_request(request: http::Request<Full<Bytes>>) -> HandlerRequest {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    HandlerRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| !DEFAULT_FORBIDDEN_HEADERS.contains(name))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    }
}

/// The `handler` record as an HTTP response. As with `wasi:http` fields, a
/// header that is not valid HTTP or that only the host may set is dropped;
/// `content-length` is the host's to set from the body.
fn handler_response(response: HandlerResponse) -> Result<http::Response<Bytes>, InvokeError> {
    if response.body.len() > MAX_RESPONSE_BYTES {
        return Err(InvokeError::ResponseTooLarge);
    }
    let status = http::StatusCode::from_u16(response.status).map_err(|_| {
        InvokeError::ResponseBody(format!("invalid status code {}", response.status))
    })?;
    let mut headers = http::HeaderMap::with_capacity(response.headers.len());
    for (name, value) in response.headers {
        let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if DEFAULT_FORBIDDEN_HEADERS.contains(&name) || name == http::header::CONTENT_LENGTH {
            continue;
        }
        if let Ok(value) = http::HeaderValue::from_bytes(&value) {
            headers.append(name, value);
        }
    }
    let mut out = http::Response::new(Bytes::from(response.body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// A guest that computes without calling the host would otherwise hold its
/// tokio worker for its whole time limit: tasks queued behind it on that
/// worker (which other workers cannot steal from its LIFO slot) would stall,
/// and the wall-clock backstop could not fire. So each epoch tick hands the
/// worker back once, and the first tick past the limit interrupts the guest.
/// The limit is measured from the start, not counted in ticks: on a busy
/// machine a yielded guest may wait many tick periods to run again, and a
/// count of callbacks would leave the backstop, a second later, to end it.
fn yield_every_tick_until<P>(store: &mut Store<InvocationState<P>>, time_ms: u64) {
    let deadline = Instant::now() + Duration::from_millis(time_ms);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        // tokio's own yield puts the task behind the others; a plain
        // self-wake would put it in the LIFO slot and run it again first.
        Ok(wasmtime::UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

fn classify<P>(
    store: &Store<InvocationState<P>>,
    time_ms: u64,
    instantiating: bool,
    err: wasmtime::Error,
) -> InvokeError {
    if store.data().limiter.exceeded {
        return InvokeError::MemoryLimit(store.data().limiter.cap() as u64);
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::Interrupt {
            return InvokeError::TimeLimit(time_ms);
        }
    }
    let full = format!("{err:#}");
    if instantiating && full.contains("pooling") {
        return InvokeError::Busy(full);
    }
    // The caller gets the cause; the log gets the wasm backtrace too.
    tracing::warn!(error = %full, "component trapped");
    let cause = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    InvokeError::Trap(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> HandlerResponse {
        HandlerResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[tokio::test]
    async fn the_request_record_carries_what_wasi_http_would_show() {
        let request = http::Request::builder()
            .method("PATCH")
            .uri("/rest/v1/items?id=eq.1&select=*")
            .header("host", "example.com")
            .header("connection", "keep-alive")
            .header("apikey", "k")
            .header("prefer", "a")
            .header("prefer", "b")
            .body(Full::new(Bytes::from_static(b"{\"x\":1}")))
            .unwrap();
        let record = handler_request(request).await;
        assert_eq!(record.method, "PATCH");
        assert_eq!(record.path, "/rest/v1/items");
        assert_eq!(record.query, "id=eq.1&select=*");
        let names: Vec<&str> = record.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["apikey", "prefer", "prefer"]);
        assert_eq!(record.headers[2].1, b"b");
        assert_eq!(record.body, b"{\"x\":1}");

        let bare = http::Request::builder()
            .uri("/rest/v1/items")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(handler_request(bare).await.query, "");
    }

    #[test]
    fn response_headers_only_the_host_may_set_are_dropped() {
        let out = handler_response(response(
            201,
            &[
                ("Content-Type", "application/json"),
                ("content-length", "999"),
                ("transfer-encoding", "chunked"),
                ("bad header", "x"),
                ("x-bad-value", "a\nb"),
                ("content-range", "0-0/1"),
            ],
            b"[]",
        ))
        .unwrap();
        assert_eq!(out.status(), 201);
        let names: Vec<&str> = out.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-type", "content-range"]);
        assert_eq!(out.body().as_ref(), b"[]");
    }

    #[test]
    fn an_invalid_status_or_oversize_body_is_the_functions_failure() {
        let err = handler_response(response(42, &[], b"")).unwrap_err();
        assert_eq!(err.code(), "function_response_failed");
        let big = vec![b'x'; MAX_RESPONSE_BYTES + 1];
        let err = handler_response(response(200, &[], &big)).unwrap_err();
        assert!(matches!(err, InvokeError::ResponseTooLarge));
    }
}
