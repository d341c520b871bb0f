//! One HTTP invocation of a component: a fresh `Store`, the request handed
//! over as `wasi:http/incoming-handler`, the response collected, and the
//! transaction committed or rolled back by how the invocation ended.

use super::engine::{Runtime, EPOCH_TICK};
use super::limits::MemoryLimiter;
use super::registry::Deployed;
use super::state::{sealed_wasi, InvocationState, OutboundPolicy, Privileged};
use crate::auth::mailer::Mailer;
use crate::auth::rate_limit::RateLimiter;
use crate::auth::{JwtKeys, Principal};
use crate::db::invocation::InvocationTx;
use crate::db::schema::SchemaCache;
use crate::db::Database;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::WasiHttpView;

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

/// Everything an invocation needs besides the request.
pub struct Invocation {
    pub function: Arc<Deployed>,
    pub principal: Arc<Principal>,
    pub request_id: String,
    pub client_ip: Option<String>,
    pub db: Database,
    pub keys: JwtKeys,
    pub limiter: Arc<RateLimiter>,
    pub mailer: Arc<Mailer>,
    pub schema: Arc<SchemaCache>,
}

type CollectedResponse = http::Response<Full<Bytes>>;

impl Runtime {
    /// Runs the component on `request` (whose body the host has already
    /// read within its size limit).
    pub async fn invoke_http(
        &self,
        invocation: Invocation,
        request: http::Request<Full<Bytes>>,
    ) -> Result<CollectedResponse, InvokeError> {
        self.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.fetch_add(1, Ordering::Relaxed);
        let result = self.run(invocation, request).await;
        self.metrics.active.fetch_sub(1, Ordering::Relaxed);
        if result.is_err() {
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn run(
        &self,
        invocation: Invocation,
        request: http::Request<Full<Bytes>>,
    ) -> Result<CollectedResponse, InvokeError> {
        let function = invocation.function;
        let limits = function.limits;
        let state = InvocationState {
            wasi: sealed_wasi(),
            http: WasiHttpCtx::new(),
            table: wasmtime::component::ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed_hosts: function.allowed_hosts.clone(),
            },
            limiter: MemoryLimiter::new(limits.memory_bytes),
            privileged: function.system.then(|| Privileged {
                keys: invocation.keys,
                auth_tx: InvocationTx::auth_admin(&invocation.db, limits.time_ms),
                limiter: invocation.limiter,
                mailer: invocation.mailer,
                schema: invocation.schema,
            }),
            tx: InvocationTx::new(invocation.db, invocation.principal.clone(), limits.time_ms),
            principal: invocation.principal,
            request_id: invocation.request_id,
            function: function.name.clone(),
            config: function.config.clone(),
            client_ip: invocation.client_ip,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.time_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1);
        store.epoch_deadline_trap();

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let setup = (|| {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok::<_, wasmtime::Error>((req, out))
        })();
        let (req, out) = setup.map_err(|e| InvokeError::Trap(format!("{e:#}")))?;

        let pre = function.pre.clone();
        let metrics = &self.metrics;
        let call = async {
            let started = Instant::now();
            let proxy = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (true, e))?;
            metrics.instantiations.fetch_add(1, Ordering::Relaxed);
            metrics
                .instantiate_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| (false, e))
        };
        let collect = async {
            let response = receiver.await.map_err(|_| InvokeError::NoResponse)?;
            let response =
                response.map_err(|code| InvokeError::ResponseBody(format!("{code:?}")))?;
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
        // A wall-clock backstop for time spent in host calls, where epoch
        // interruption cannot reach.
        let wall = Duration::from_millis(limits.time_ms) + Duration::from_secs(1);
        let outcome = tokio::time::timeout(wall, async {
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
        })
        .await;

        let (called, collected) = match outcome {
            Ok(pair) => pair,
            Err(_) => {
                drop(store);
                tracing::warn!(
                    function = &*function.name,
                    "invocation passed its wall-clock limit"
                );
                return Err(InvokeError::TimeLimit(limits.time_ms));
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
        let state = store.data_mut();
        let mut finished = vec![state.tx.finish(success).await];
        if let Some(p) = state.privileged.as_mut() {
            finished.push(p.auth_tx.finish(success).await);
        }
        for result in finished {
            match result {
                Ok(_) => {}
                Err(err) if success => return Err(InvokeError::Commit(err.message)),
                Err(err) => {
                    tracing::warn!(error = %err.message, "rollback failed; connection discarded")
                }
            }
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

fn classify(
    store: &Store<InvocationState>,
    time_ms: u64,
    instantiating: bool,
    err: wasmtime::Error,
) -> InvokeError {
    if store.data().limiter.exceeded {
        return InvokeError::MemoryLimit(store.data().limiter_cap());
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

impl InvocationState {
    fn limiter_cap(&self) -> u64 {
        self.limiter.cap() as u64
    }
}
