//! One HTTP invocation of a component: a fresh `Store`, the request handed
//! over as `wasi:http/incoming-handler` (or, to a system component that
//! exports it, as a `selfdb:platform/handler` record), and the transaction
//! committed or rolled back by how the invocation ended.
//!
//! A `wasi:http` guest's bodies stream both ways: it reads the request body
//! as it arrives, and its response goes out as soon as it sets one, its
//! body as it writes it. So the invocation runs in its own task, which
//! outlives the handler's return: it keeps driving the guest while the body
//! streams, then commits. The body's end is held back until the commit
//! succeeded; if it failed, or the guest trapped after answering, the body
//! ends in an error instead, so a client that read a whole response knows
//! its writes were committed.

use super::engine::{Runtime, RuntimeMetrics};
use super::limits::MemoryLimiter;
use super::registry::{Deployed, Entry};
use super::spin::SpinHttp;
use crate::auth::Principal;
use crate::capabilities::bindings::{HandlerRequest, HandlerResponse, RecordHandlerPre};
use crate::capabilities::compose::FinishSet;
use crate::capabilities::wasi::{CapturedOutput, WasiState};
use crate::capabilities::{InvocationState, PlatformState, Prepare};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::Request as P3Request;
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
    #[error("the request body could not be read: {0}")]
    RequestBody(String),
    #[error("the function has no HTTP handler: it runs on events only")]
    NoHttpHandler,
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
            InvokeError::RequestBody(_) => "request_body_failed",
            InvokeError::NoHttpHandler => "function_not_http",
        }
    }

    pub fn status(&self) -> http::StatusCode {
        match self {
            InvokeError::TimeLimit(_) => http::StatusCode::GATEWAY_TIMEOUT,
            InvokeError::NoHttpHandler => http::StatusCode::NOT_FOUND,
            InvokeError::RequestBody(_) => http::StatusCode::BAD_REQUEST,
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
    /// For a Spin app: the component its router picked.
    pub spin_component: Option<usize>,
    /// For a project's request: the user's database its SQL runs on,
    /// instead of the platform's.
    pub external: Option<Arc<crate::db::external::ExternalDb>>,
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

/// A request body as the runtime takes it: a `wasi:http` guest reads it as
/// it arrives; a record handler's is collected first.
pub type RequestBody = UnsyncBoxBody<Bytes, ErrorCode>;

/// A response body: what a `wasi:http` guest writes, as it writes it.
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// Why a response body ended early (the client sees a broken response).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(String);

/// A started invocation: its response (head, and a body that may still be
/// streaming) and, once it has ended, its report.
pub struct Invoked {
    pub response: Result<http::Response<ResponseBody>, InvokeError>,
    pub report: oneshot::Receiver<Report>,
}

/// Where the invocation's task sends the response head.
type Head = oneshot::Sender<Result<http::Response<ResponseBody>, InvokeError>>;

fn full_body(bytes: Bytes) -> ResponseBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The guest's response body, capped at [`MAX_RESPONSE_BYTES`], whose end
/// waits for the invocation's outcome (`done`): a clean end once it
/// committed, an error otherwise.
struct Gated<B> {
    body: Limited<B>,
    done: Option<oneshot::Receiver<Result<(), String>>>,
    /// Bytes still to come when the guest declared a `content-length`:
    /// the frame that completes it is held until the outcome, since with a
    /// length the client sees the end in the last byte, not in a
    /// terminating chunk.
    remaining: Option<u64>,
    held: Option<Frame<Bytes>>,
}

impl<B> Body for Gated<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        while this.held.is_none() {
            let Some(frame) = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) else {
                break;
            };
            let frame = frame.map_err(|e| {
                BodyError(if e.is::<http_body_util::LengthLimitError>() {
                    format!("the function's response is larger than {MAX_RESPONSE_BYTES} bytes")
                } else {
                    format!("the function's response body failed: {e}")
                })
            })?;
            match (this.remaining.as_mut(), frame.data_ref()) {
                (Some(remaining), Some(data)) if this.done.is_some() => {
                    *remaining = remaining.saturating_sub(data.len() as u64);
                    if *remaining == 0 {
                        this.held = Some(frame);
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                _ => return Poll::Ready(Some(Ok(frame))),
            }
        }
        let Some(done) = this.done.as_mut() else {
            return Poll::Ready(this.held.take().map(Ok));
        };
        let outcome = std::task::ready!(Pin::new(done).poll(cx));
        this.done = None;
        let held = this.held.take();
        Poll::Ready(match outcome {
            Ok(Ok(())) => held.map(Ok),
            Ok(Err(why)) => Some(Err(BodyError(why))),
            Err(_) => Some(Err(BodyError(
                "the invocation ended without an outcome".into(),
            ))),
        })
    }
}

/// The export to call, in a store of state `InvocationState<P>`.
enum Call<'a, P: 'static> {
    Http(&'a ProxyPre<InvocationState<P>>),
    /// `wasi:http/handler@0.3.0` (WASI 0.3; spin-sdk 7 components).
    Service(&'a ServicePre<InvocationState<P>>),
    Record(&'a RecordHandlerPre<InvocationState<P>>),
}

impl Runtime {
    /// Starts the component on `request` in a task of its own and returns
    /// once it has answered (see the module's documentation): the body may
    /// still be streaming, and the report arrives when the invocation ends.
    pub async fn invoke_http(
        self: &Arc<Self>,
        invocation: Invocation,
        request: http::Request<RequestBody>,
    ) -> Invoked {
        let streams = invocation.function.streams_request();
        let (head_tx, head_rx) = oneshot::channel();
        let (report_tx, report_rx) = oneshot::channel();
        let task = self
            .clone()
            .invocation_task(invocation, request, head_tx, report_tx);
        // A record handler answers only once it has ended: no task of its
        // own to pay for (the data API's path).
        if streams {
            tokio::spawn(task);
        } else {
            task.await;
        }
        let response = head_rx.await.unwrap_or(Err(InvokeError::NoResponse));
        Invoked {
            response,
            report: report_rx,
        }
    }

    async fn invocation_task(
        self: Arc<Self>,
        invocation: Invocation,
        request: http::Request<RequestBody>,
        head: Head,
        report_tx: oneshot::Sender<Report>,
    ) {
        let metrics = &self.metrics;
        metrics.invocations.fetch_add(1, Ordering::Relaxed);
        metrics.active.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut report = Report::default();
        let ok = self.run(invocation, request, &mut report, head).await;
        report.duration = started.elapsed();
        metrics.active.fetch_sub(1, Ordering::Relaxed);
        if !ok {
            metrics.failures.fetch_add(1, Ordering::Relaxed);
        }
        let _ = report_tx.send(report);
    }

    /// Whether the invocation succeeded (answered without a server error
    /// and committed).
    async fn run(
        &self,
        invocation: Invocation,
        request: http::Request<RequestBody>,
        report: &mut Report,
        head: Head,
    ) -> bool {
        let function = &*invocation.function;
        let cx = Prepare {
            function,
            principal: &invocation.principal,
            request_id: &invocation.request_id,
            client_ip: invocation.client_ip,
            external: invocation.external.as_ref(),
        };
        let platform = self.capabilities.platform.prepare(&cx);
        match &function.entry {
            Entry::User { http: None, .. } => {
                let _ = head.send(Err(InvokeError::NoHttpHandler));
                false
            }
            Entry::User {
                http: Some(pre), ..
            } => {
                self.run_in(
                    function,
                    platform,
                    (),
                    Call::Http(pre),
                    request,
                    report,
                    head,
                )
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
                    head,
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
                    head,
                )
                .await
            }
            Entry::Spin(app) => {
                let Some(component) = invocation
                    .spin_component
                    .and_then(|i| app.components.get(i))
                else {
                    let _ = head.send(Err(InvokeError::NoHttpHandler));
                    return false;
                };
                let spin = self.capabilities.spin.prepare(&component.spec, &cx);
                let call = match &component.http {
                    SpinHttp::P2(pre) => Call::Http(pre),
                    SpinHttp::P3(pre) => Call::Service(pre),
                };
                // Its own WASI state: environment, files, outbound hosts.
                let (wasi, stdout, stderr) =
                    WasiState::for_spin(&component.spec, component.files.as_deref());
                let wasi = (wasi, Some((stdout, stderr)));
                self.run_with(function, wasi, platform, spin, call, request, report, head)
                    .await
            }
        }
    }

    /// Runs `call` in a fresh store holding the invocation's states, sends
    /// the response head as soon as there is one, then ends the states:
    /// committed when the guest answered without a server error and did not
    /// fail, rolled back otherwise. Returns whether it committed.
    #[allow(clippy::too_many_arguments)]
    async fn run_in<P: FinishSet>(
        &self,
        function: &Deployed,
        platform: PlatformState,
        privileged: P,
        call: Call<'_, P>,
        request: http::Request<RequestBody>,
        report: &mut Report,
        head: Head,
    ) -> bool {
        // A user function's stdout and stderr go to its logs.
        let wasi = if function.system {
            (WasiState::sealed(function.allowed_hosts.clone()), None)
        } else {
            let (wasi, stdout, stderr) = WasiState::capturing(function.allowed_hosts.clone());
            (wasi, Some((stdout, stderr)))
        };
        self.run_with(
            function, wasi, platform, privileged, call, request, report, head,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_with<P: FinishSet>(
        &self,
        function: &Deployed,
        (wasi, output): (WasiState, Option<(CapturedOutput, CapturedOutput)>),
        platform: PlatformState,
        privileged: P,
        call: Call<'_, P>,
        request: http::Request<RequestBody>,
        report: &mut Report,
        head: Head,
    ) -> bool {
        let limits = function.limits;
        let state = InvocationState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            platform,
            privileged,
        };
        // A store belongs to the engine its component was compiled by.
        let engine = match &function.entry {
            Entry::Spin(_) => &self.spin_engine,
            _ => &self.engine,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        yield_every_tick_until(&mut store, limits.time_ms);

        // A wall-clock backstop for time spent in host calls, where epoch
        // interruption cannot reach.
        let wall = Duration::from_millis(limits.time_ms) + Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + wall;
        let metrics = &self.metrics;
        let mut answer = Answer {
            head: Some(head),
            status: None,
            done: None,
        };
        let mut pending = None;
        let called = match call {
            Call::Http(pre) => {
                call_http(&mut store, pre, request, metrics, deadline, &mut answer).await
            }
            Call::Service(pre) => {
                call_service(&mut store, pre, request, metrics, deadline, &mut answer).await
            }
            Call::Record(pre) => {
                match tokio::time::timeout_at(
                    deadline,
                    call_record(&mut store, pre, request, metrics),
                )
                .await
                {
                    Err(_) => Err(None),
                    Ok((called, response)) => {
                        // Sent once committed: a record handler's answer
                        // is whole, so a failed commit can still replace it.
                        if let Some(response) = response {
                            answer.status = response.as_ref().ok().map(|r| r.status());
                            pending = Some(response.map(|r| r.map(full_body)));
                        }
                        called.map_err(Some)
                    }
                }
            }
        };
        let failure = match called {
            Ok(()) => None,
            Err(None) => Some(InvokeError::TimeLimit(limits.time_ms)),
            Err(Some((instantiating, err))) => {
                Some(classify(&store, limits.time_ms, instantiating, err))
            }
        };
        let success = failure.is_none() && answer.status.is_some_and(|s| !s.is_server_error());
        report_from(&mut store, output, report);
        let state = store.data_mut();
        let mut failures = state.platform.finish(success).await;
        failures.extend(state.privileged.finish(success).await);
        drop(store);
        let mut commit_failed = None;
        for err in failures {
            if success && commit_failed.is_none() {
                commit_failed = Some(InvokeError::Commit(err.0));
            } else {
                tracing::warn!(error = %err, "rollback failed; connection discarded");
            }
        }
        let error = failure.or(commit_failed);
        match &error {
            Some(err) => {
                tracing::warn!(function = &*function.name, code = err.code(), error = %err, "invocation failed");
                if answer.head.is_none() {
                    report
                        .lines
                        .push(("error", format!("after the response was sent: {err}")));
                }
            }
            None if !success && answer.status.is_some() => tracing::warn!(
                function = &*function.name,
                status = answer.status.map(|s| s.as_u16()),
                "function answered with a server error; its transaction was rolled back"
            ),
            None => {}
        }
        let committed = error.is_none() && success;
        match (error, pending) {
            // Not answered yet: the error is the answer.
            (Some(err), _) if answer.head.is_some() => answer.send(Err(err)),
            // Answered: the body ends in the error.
            (Some(err), _) => answer.finish(Err(err.to_string())),
            (None, Some(response)) => answer.send(response),
            (None, None) if answer.head.is_some() => answer.send(Err(InvokeError::NoResponse)),
            (None, None) => answer.finish(Ok(())),
        }
        committed
    }
}

/// The response side of one invocation: the head not sent yet, the status
/// sent, and how to end the body once the invocation's outcome is known.
struct Answer {
    head: Option<Head>,
    status: Option<http::StatusCode>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

impl Answer {
    fn send(&mut self, response: Result<http::Response<ResponseBody>, InvokeError>) {
        let Some(head) = self.head.take() else { return };
        if let Ok(r) = &response {
            self.status = Some(r.status());
        }
        let _ = head.send(response);
    }

    /// Sends the guest's response with its body gated on the outcome.
    fn stream<B>(&mut self, response: http::Response<B>)
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (done, gate) = oneshot::channel();
        self.done = Some(done);
        let (parts, body) = response.into_parts();
        let remaining = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&len| len > 0);
        let body = Gated {
            body: Limited::new(body, MAX_RESPONSE_BYTES),
            done: Some(gate),
            remaining,
            held: None,
        };
        self.send(Ok(http::Response::from_parts(parts, body.boxed_unsync())));
    }

    fn finish(&mut self, outcome: Result<(), String>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(outcome);
        }
    }
}

/// Moves what the invocation wrote and used into `report`.
pub(super) fn report_from<P>(
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

/// How the guest call ended: `Err(None)` past the deadline, `Err(Some((true,
/// err)))` when it failed while instantiating.
type Called = Result<(), Option<(bool, wasmtime::Error)>>;

pub(super) fn note_instantiation(metrics: &RuntimeMetrics, started: Instant) {
    metrics.instantiations.fetch_add(1, Ordering::Relaxed);
    metrics
        .instantiate_nanos
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Calls `wasi:http/incoming-handler.handle`, sending the response through
/// `answer` the moment the guest sets it, and keeps driving the guest (which
/// writes the body) until it returns or the deadline passes.
async fn call_http<P: Send + 'static>(
    store: &mut Store<InvocationState<P>>,
    pre: &ProxyPre<InvocationState<P>>,
    request: http::Request<RequestBody>,
    metrics: &RuntimeMetrics,
    deadline: tokio::time::Instant,
    answer: &mut Answer,
) -> Called {
    let (sender, receiver) = oneshot::channel();
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
        Err(e) => {
            answer.send(Err(InvokeError::Trap(format!("{e:#}"))));
            return Ok(());
        }
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
    let guest = tokio::time::timeout_at(deadline, call);
    tokio::pin!(guest);
    let mut receiver = Some(receiver);
    let called = loop {
        tokio::select! {
            called = &mut guest => break called,
            set = async { receiver.as_mut().expect("guarded").await }, if receiver.is_some() => {
                receiver = None;
                answer_with(answer, set);
            }
        }
    };
    let called = match called {
        Err(_) => Err(None),
        Ok(Err(err)) => Err(Some(err)),
        Ok(Ok(())) => Ok(()),
    };
    // The guest returned before its answer was taken: take it now (a failed
    // guest's is not to be trusted).
    if let (Ok(()), Some(mut receiver)) = (&called, receiver) {
        if let Ok(set) = receiver.try_recv() {
            answer_with(answer, Ok(set));
        }
    }
    called
}

/// Calls `wasi:http/handler@0.3.0`'s `handle`: the guest runs as a task in
/// the store's event loop, which must keep running while it writes the
/// body; so the body is forwarded, frame by frame, from inside the loop to
/// the response already sent, until it ends or the deadline passes.
async fn call_service<P: Send + 'static>(
    store: &mut Store<InvocationState<P>>,
    pre: &ServicePre<InvocationState<P>>,
    request: http::Request<RequestBody>,
    metrics: &RuntimeMetrics,
    deadline: tokio::time::Instant,
    answer: &mut Answer,
) -> Called {
    let started = Instant::now();
    let service = match tokio::time::timeout_at(deadline, pre.instantiate_async(&mut *store)).await
    {
        Err(_) => return Err(None),
        Ok(Err(err)) => return Err(Some((true, err))),
        Ok(Ok(service)) => service,
    };
    note_instantiation(metrics, started);
    let request = request.map(|body| {
        body.map_err(|code| wasmtime_wasi_http::Error::InternalError(Some(format!("{code:?}"))))
    });
    let (req, io) = P3Request::from_http(store.data_mut().http().hooks, request);
    let run = store.run_concurrent(async |store| {
        let respond = async {
            let response = match service.handle(store, req).await? {
                Ok(response) => response,
                Err(code) => {
                    answer.send(Err(InvokeError::ResponseBody(format!("{code:?}"))));
                    return wasmtime::Result::Ok(());
                }
            };
            // As wasmtime's own handler does: the request body's outcome
            // goes to the guest (the future `response.new` gave it), not
            // joined here, where a guest that keeps the request body unread
            // would hold a finished invocation open until its deadline.
            let response = store.with(|store| response.into_http(store, io))?;
            let (parts, mut body) = response.into_parts();
            let (frames, receiver) = tokio::sync::mpsc::channel(4);
            answer.stream(http::Response::from_parts(parts, ChannelBody(receiver)));
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| BodyError(format!("{e:?}")));
                let failed = frame.is_err();
                // The client went away: stop reading the guest's body.
                if frames.send(frame).await.is_err() || failed {
                    break;
                }
            }
            Ok(())
        };
        respond.await
    });
    match tokio::time::timeout_at(deadline, run).await {
        Err(_) => Err(None),
        Ok(Err(err)) | Ok(Ok(Err(err))) => Err(Some((false, err))),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

/// A response body fed by the store's event loop (see [`call_service`]).
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BodyError>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0.poll_recv(cx)
    }
}

type OutparamSet = Result<
    Result<http::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>, ErrorCode>,
    oneshot::error::RecvError,
>;

fn answer_with(answer: &mut Answer, set: OutparamSet) {
    match set {
        Ok(Ok(response)) => answer.stream(response),
        Ok(Err(code)) => answer.send(Err(InvokeError::ResponseBody(format!("{code:?}")))),
        // The guest dropped its response-outparam without setting it: the
        // outcome says what happened once it returns.
        Err(_) => {}
    }
}

/// Calls `selfdb:platform/handler.handle`: the whole request in, the whole
/// response out, no resources or streams in between.
async fn call_record<P: Send + 'static>(
    store: &mut Store<InvocationState<P>>,
    pre: &RecordHandlerPre<InvocationState<P>>,
    request: http::Request<RequestBody>,
    metrics: &RuntimeMetrics,
) -> RecordCalled {
    let request = match handler_request(request).await {
        Ok(request) => request,
        Err(err) => return (Ok(()), Some(Err(err))),
    };
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

/// How a record handler's call ended, and its response if it made one.
type RecordCalled = (
    Result<(), (bool, wasmtime::Error)>,
    Option<Result<http::Response<Bytes>, InvokeError>>,
);

/// The request as the `handler` record. Headers `wasi:http` keeps from
/// guests (hop-by-hop ones, `host`) are left out here too, so a component
/// sees the same request through either export.
async fn handler_request<B>(request: http::Request<B>) -> Result<HandlerRequest, InvokeError>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| InvokeError::RequestBody(format!("{e:?}")))?
        .to_bytes();
    Ok(HandlerRequest {
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
    })
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
pub(super) fn yield_every_tick_until<P>(store: &mut Store<InvocationState<P>>, time_ms: u64) {
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

pub(super) fn classify<P>(
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
        let record = handler_request(request).await.unwrap();
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
        assert_eq!(handler_request(bare).await.unwrap().query, "");
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
