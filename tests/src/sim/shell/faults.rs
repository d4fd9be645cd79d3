//! Provider-agnostic fault injection.
//!
//! A simulator's [`super::Shell`] owns one [`FaultQueue`] keyed by the
//! simulator's own route enum. Tests push faults; the shell's interceptor takes
//! the first queued fault that is due on the incoming request before any normal
//! handling (see [`super::Shell::answer`]). Each queued fault fires exactly
//! once, in FIFO order among the faults that are due.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A misbehaviour to inject into a matching request.
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
    /// Handle the request to completion (the provider applied it), then
    /// answer this instead of the real answer.
    LoseAnswer(Lost),
    /// Never answer and never handle: the request stays open until the
    /// client gives up or the simulator stops.
    Hang,
    /// Handle the request to completion, then never answer (until the client
    /// gives up or the simulator stops).
    HangAfterApply,
}

/// What a client gets instead of the real answer after [`Fault::LoseAnswer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// This status and body (labelled as in [`Fault::Status`]).
    Status(u16, String),
    /// `200 OK` with a non-JSON body labelled JSON (as [`Fault::Garbage`]).
    Garbage,
    /// The connection is reset without any answer.
    Reset,
}

/// Route enums used as fault-queue keys implement this.
pub trait FaultRoute: Copy + Eq + Send + std::fmt::Debug + 'static {
    /// The route value that matches every request.
    const WILDCARD: Self;

    fn is_wildcard(&self) -> bool {
        *self == Self::WILDCARD
    }
}

/// One queued fault.
#[derive(Debug)]
struct Entry<R> {
    route: R,
    /// Matching requests still to let through before this one fires.
    skip: usize,
    fault: Fault,
}

/// FIFO queue of `(route, fault)` entries, each firing on the n-th matching
/// request (the next one unless queued with [`FaultQueue::push_nth`]).
#[derive(Debug)]
pub struct FaultQueue<R> {
    entries: Mutex<VecDeque<Entry<R>>>,
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
        self.push_nth(route, 1, fault);
    }

    /// Queue `fault` for the `nth` (1-based) request from now on that matches
    /// `route`. Entries count independently; when two are due on the same
    /// request, the one queued first fires and the other fires on its next
    /// match.
    ///
    /// # Panics
    /// When `nth` is 0.
    pub fn push_nth(&self, route: R, nth: usize, fault: Fault) {
        assert!(nth >= 1, "requests are counted from 1");
        self.lock().push_back(Entry {
            route,
            skip: nth - 1,
            fault,
        });
    }

    /// Count a request on `route` and take the fault due on it, if any
    /// (`None` = a request that matches no named route; only wildcard faults
    /// apply to it).
    pub fn take(&self, route: Option<R>) -> Option<Fault> {
        self.take_where(|queued| Some(*queued) == route)
    }

    /// Count a request against every entry whose route is the wildcard or
    /// satisfies `applies` (for simulators where one request belongs to
    /// several routes, e.g. a contact search is both "contacts" and "search"),
    /// and remove and return the oldest entry that is due.
    pub fn take_where(&self, applies: impl Fn(&R) -> bool) -> Option<Fault> {
        let mut entries = self.lock();
        let mut chosen = None;
        for (index, entry) in entries.iter_mut().enumerate() {
            if !(entry.route.is_wildcard() || applies(&entry.route)) {
                continue;
            }
            if entry.skip > 0 {
                entry.skip -= 1;
            } else if chosen.is_none() {
                chosen = Some(index);
            }
        }
        chosen
            .and_then(|index| entries.remove(index))
            .map(|entry| entry.fault)
    }

    /// Number of faults still queued.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Drop every queued fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry<R>>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `code` with `body`, labelled JSON when the body looks like JSON.
pub fn status_response(code: u16, body: String) -> Response {
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

/// `200 OK`, labelled JSON, with an HTML error page as the body.
pub fn garbage_response() -> Response {
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
        const WILDCARD: R = R::Any;
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

    #[test]
    fn nth_counts_only_matching_requests() {
        let q = FaultQueue::new();
        q.push_nth(R::A, 3, Fault::Hang);
        assert_eq!(q.take(Some(R::A)), None);
        // A request on another route does not count.
        assert_eq!(q.take(Some(R::B)), None);
        assert_eq!(q.take(None), None);
        assert_eq!(q.take(Some(R::A)), None);
        assert_eq!(q.take(Some(R::A)), Some(Fault::Hang));
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn nth_entries_count_independently_and_the_older_wins_a_tie() {
        let q = FaultQueue::new();
        q.push_nth(R::A, 2, Fault::Garbage);
        q.push_nth(R::Any, 2, Fault::HangAfterApply);
        q.push(R::A, Fault::Throttle);
        // First A request: both nth entries count, the plain entry fires.
        assert_eq!(q.take(Some(R::A)), Some(Fault::Throttle));
        // Second: both are due; the older fires, the other waits one more.
        assert_eq!(q.take(Some(R::A)), Some(Fault::Garbage));
        assert_eq!(q.take(Some(R::B)), Some(Fault::HangAfterApply));
    }

    #[test]
    #[should_panic(expected = "counted from 1")]
    fn nth_zero_is_refused() {
        FaultQueue::new().push_nth(R::A, 0, Fault::Garbage);
    }
}
