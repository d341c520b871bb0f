//! One event delivered to a function's `selfdb:platform/listener` export:
//! a fresh store under the same memory and time limits as an HTTP
//! invocation, its database work committed only when the handler returns
//! `ok`. Every other ending (an `err`, a trap, a limit, a failed commit) is
//! a failed attempt the caller retries.

use super::engine::Runtime;
use super::invoke::{
    classify, note_instantiation, report_from, yield_every_tick_until, Invocation, InvokeError,
    Report,
};
use crate::capabilities::bindings::listener::Event;
use crate::capabilities::compose::FinishSet;
use crate::capabilities::wasi::WasiState;
use crate::capabilities::{InvocationState, Prepare};
use crate::runtime::limits::MemoryLimiter;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::Store;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The handler returned `err(message)`.
    #[error("the handler failed: {0}")]
    Handler(String),
    /// A trap, a limit, a commit that failed.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    #[error(
        "the function has no event handler (export selfdb:platform/listener, or call onEvent)"
    )]
    NoListener,
}

impl Runtime {
    /// Delivers `event` to the function of `invocation`; its report says
    /// what the handler logged.
    pub async fn invoke_event(
        &self,
        invocation: &Invocation,
        event: &Event,
    ) -> (Result<(), EventError>, Report) {
        let started = Instant::now();
        let mut report = Report::default();
        self.metrics.invocations.fetch_add(1, Ordering::Relaxed);
        self.metrics.active.fetch_add(1, Ordering::Relaxed);
        let outcome = self.deliver(invocation, event, &mut report).await;
        self.metrics.active.fetch_sub(1, Ordering::Relaxed);
        if outcome.is_err() {
            self.metrics.failures.fetch_add(1, Ordering::Relaxed);
        }
        report.duration = started.elapsed();
        (outcome, report)
    }

    async fn deliver(
        &self,
        invocation: &Invocation,
        event: &Event,
        report: &mut Report,
    ) -> Result<(), EventError> {
        let function = &*invocation.function;
        let Some(pre) = function.listener() else {
            return Err(EventError::NoListener);
        };
        let cx = Prepare {
            function,
            principal: &invocation.principal,
            request_id: &invocation.request_id,
            client_ip: invocation.client_ip,
            external: invocation.external.as_ref(),
        };
        let limits = function.limits;
        let (wasi, stdout, stderr) = WasiState::capturing(function.allowed_hosts.clone());
        let state = InvocationState {
            wasi,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            platform: self.capabilities.platform.prepare(&cx),
            privileged: (),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        yield_every_tick_until(&mut store, limits.time_ms);
        // As for HTTP: a wall-clock backstop for time spent in host calls.
        let deadline = Duration::from_millis(limits.time_ms) + Duration::from_secs(1);
        let call = async {
            let started = Instant::now();
            let listener = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (true, e))?;
            note_instantiation(&self.metrics, started);
            listener
                .selfdb_platform_listener()
                .call_handle(&mut store, event)
                .await
                .map_err(|e| (false, e))
        };
        let outcome = match tokio::time::timeout(deadline, call).await {
            Err(_) => Err(EventError::Invoke(InvokeError::TimeLimit(limits.time_ms))),
            Ok(Err((instantiating, err))) => Err(EventError::Invoke(classify(
                &store,
                limits.time_ms,
                instantiating,
                err,
            ))),
            Ok(Ok(Err(message))) => Err(EventError::Handler(message)),
            Ok(Ok(Ok(()))) => Ok(()),
        };
        report_from(&mut store, Some((stdout, stderr)), report);
        let success = outcome.is_ok();
        let failures = store.data_mut().platform.finish(success).await;
        drop(store);
        match (outcome, failures.into_iter().next()) {
            (Ok(()), Some(err)) => Err(EventError::Invoke(InvokeError::Commit(err.0))),
            (outcome, Some(err)) => {
                tracing::warn!(error = %err, "rollback failed; connection discarded");
                outcome
            }
            (outcome, None) => outcome,
        }
    }
}
