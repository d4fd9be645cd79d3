//! Provider-agnostic fault injection.
//!
//! A simulator owns one [`FaultQueue`] keyed by its own route enum. Tests push
//! faults; the simulator's request interceptor pops the first queued fault
//! whose route matches the incoming request (or is the wildcard route) before
//! any normal handling. Each queued fault fires exactly once, in FIFO order.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A misbehaviour to inject into the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and body instead of handling the request.
    /// The body is labelled `application/json` when it looks like JSON
    /// (starts with `{` or `[`), `text/plain` otherwise.
    Status(u16, String),
    /// Answer `200 OK` with a body that is not JSON, while the `Content-Type`
    /// still claims `application/json` (what a misbehaving proxy or a provider
    /// outage page looks like to a client).
    Garbage,
    /// Sleep this long, then handle the request normally. If the client
    /// gives up first (its timeout is shorter), the connection closes and the
    /// request is never handled: "the provider never saw it".
    Delay(Duration),
    /// Handle the request normally, then hold the response back this long.
    /// The handling runs to completion even if the client gives up, so a
    /// client timeout shorter than this is "the provider did it, but the
    /// client never heard back" (the case that tests idempotent retries).
    DelayAfter(Duration),
    /// Answer with the provider's own "rate limited" response (status, body
    /// and headers are provider-specific; each simulator renders it).
    Throttle,
}

/// Route enums used as fault-queue keys implement this.
pub trait FaultRoute: Copy + Eq + Send + std::fmt::Debug + 'static {
    /// True for the route value that matches every request.
    fn is_wildcard(&self) -> bool;
}

/// FIFO queue of `(route, fault)` entries.
#[derive(Debug)]
pub struct FaultQueue<R> {
    entries: Mutex<VecDeque<(R, Fault)>>,
}

impl<R> Default for FaultQueue<R> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

impl<R: FaultRoute> FaultQueue<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `fault` for the next request that matches `route`.
    pub fn push(&self, route: R, fault: Fault) {
        self.lock().push_back((route, fault));
    }

    /// Remove and return the oldest fault that applies to a request on
    /// `route` (`None` = a request that matches no named route; only
    /// wildcard faults apply to it).
    pub fn take(&self, route: Option<R>) -> Option<Fault> {
        self.take_where(|queued| Some(*queued) == route)
    }

    /// Remove and return the oldest fault whose route is the wildcard or
    /// satisfies `applies` (for simulators where one request belongs to
    /// several routes, e.g. a contact search is both "contacts" and "search").
    pub fn take_where(&self, applies: impl Fn(&R) -> bool) -> Option<Fault> {
        let mut entries = self.lock();
        let index = entries
            .iter()
            .position(|(queued, _)| queued.is_wildcard() || applies(queued))?;
        entries.remove(index).map(|(_, fault)| fault)
    }

    /// Number of faults still queued.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Drop every queued fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(R, Fault)>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the interceptor should do after applying a fault.
#[derive(Debug)]
pub enum FaultOutcome {
    /// Handle the request normally (after a `Delay`, or no fault).
    Continue,
    /// Handle the request to completion (even if the client disconnects),
    /// then wait this long before answering.
    ContinueThenDelay(Duration),
    /// Send this response instead of handling the request.
    Respond(Response),
    /// Send the provider-specific throttle response.
    Throttle,
}

/// Apply the generic part of a fault: sleeps for `Delay`, renders `Status`
/// and `Garbage`, and leaves `Throttle` and `DelayAfter` to the caller
/// (see [`run_then_delay`] for the latter).
pub async fn apply(fault: Fault) -> FaultOutcome {
    match fault {
        Fault::Delay(duration) => {
            tokio::time::sleep(duration).await;
            FaultOutcome::Continue
        }
        Fault::DelayAfter(duration) => FaultOutcome::ContinueThenDelay(duration),
        Fault::Status(code, body) => FaultOutcome::Respond(status_response(code, body)),
        Fault::Garbage => FaultOutcome::Respond(garbage_response()),
        Fault::Throttle => FaultOutcome::Throttle,
    }
}

/// Run `handle` on its own task (so it completes even if the client hangs
/// up), then sleep `delay` before handing its response back.
pub async fn run_then_delay<F>(handle: F, delay: Duration) -> Response
where
    F: std::future::Future<Output = Response> + Send + 'static,
{
    let response = match tokio::spawn(handle).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "simulator handler task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    tokio::time::sleep(delay).await;
    response
}

fn status_response(code: u16, body: String) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let trimmed = body.trim_start();
    let content_type = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        "application/json;charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn garbage_response() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        )],
        "<html><head><title>Bad Gateway</title></head><body>upstream sent \u{fffd}\u{fffd} garbage; this is not JSON</body></html>",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum R {
        A,
        B,
        Any,
    }

    impl FaultRoute for R {
        fn is_wildcard(&self) -> bool {
            matches!(self, R::Any)
        }
    }

    #[test]
    fn fifo_per_route_and_wildcard() {
        let q = FaultQueue::new();
        q.push(R::A, Fault::Garbage);
        q.push(R::B, Fault::Status(500, "b".into()));
        q.push(R::Any, Fault::Throttle);
        q.push(R::A, Fault::Status(503, "a2".into()));

        // B skips the A entry ahead of it.
        assert_eq!(q.take(Some(R::B)), Some(Fault::Status(500, "b".into())));
        assert_eq!(q.take(Some(R::A)), Some(Fault::Garbage));
        // The wildcard is now the oldest entry that matches A.
        assert_eq!(q.take(Some(R::A)), Some(Fault::Throttle));
        // Unrouted requests only see wildcards.
        assert_eq!(q.take(None), None);
        assert_eq!(q.pending(), 1);
        assert_eq!(q.take(Some(R::A)), Some(Fault::Status(503, "a2".into())));
        assert_eq!(q.take(Some(R::A)), None);
    }

    #[test]
    fn take_where_matches_any_applicable_route() {
        let q = FaultQueue::new();
        q.push(R::B, Fault::Garbage);
        q.push(R::A, Fault::Throttle);
        // A request that belongs to both A and B gets the oldest of either.
        assert_eq!(
            q.take_where(|r| matches!(r, R::A | R::B)),
            Some(Fault::Garbage)
        );
        assert_eq!(q.take_where(|r| *r == R::B), None);
        assert_eq!(q.take_where(|r| *r == R::A), Some(Fault::Throttle));
    }
}
