//! Provider-agnostic request recording.
//!
//! Every simulator buffers each incoming request with [`capture`], keeps it (as
//! captured, or as its own request record type) in its shell's [`RequestLog`],
//! and passes the rebuilt request on to its handlers.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use serde_json::Value;

/// Largest request body the simulators accept (anything bigger is truncated
/// to an empty body and still recorded).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Upper-case HTTP method, e.g. `"POST"`.
    pub method: String,
    /// Path without the query string, e.g. `"/oauth/2026-03/token"`.
    pub path: String,
    /// Raw query string without the leading `?` (empty when absent).
    pub query: String,
    /// Headers with lower-cased names; repeated headers are joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// When the simulator received the request.
    pub at: Instant,
}

impl RecordedRequest {
    /// Header value by name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The query string decoded as `application/x-www-form-urlencoded`
    /// (the last value wins for repeated keys).
    pub fn query_params(&self) -> HashMap<String, String> {
        decode_form(&self.query)
    }

    /// The body decoded as `application/x-www-form-urlencoded`
    /// (the last value wins for repeated keys).
    pub fn form(&self) -> HashMap<String, String> {
        decode_form(&self.body)
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The host a locally routed request was meant for (`X-Forwarded-Host`,
    /// see [`normalize_host`]).
    pub fn forwarded_host(&self) -> Option<String> {
        self.header("x-forwarded-host").map(normalize_host)
    }
}

/// A host header's host: the first of several values, lower-cased, port and
/// trailing dot dropped.
pub fn normalize_host(raw: &str) -> String {
    let raw = raw.split(',').next().unwrap_or_default().trim();
    raw.rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(raw, |(host, _)| host)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A logged body: JSON when it parses, else `Value::String` with the raw text
/// (forms, SOAP); `Value::Null` when empty.
pub fn parse_body(text: &str) -> Value {
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    }
}

/// One request as a simulator that plays several hosts saw it, with the
/// provider's own details `X` (whose fields read as this request's through
/// `Deref`). The `Authorization` header is never kept.
#[derive(Debug, Clone)]
pub struct HostRequest<X> {
    /// The host the request was meant for (lower-cased, port dropped).
    pub host: String,
    /// Upper-case method.
    pub method: String,
    /// Path without the query string (still percent-encoded).
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Headers with lower-cased names, `authorization` removed.
    pub headers: BTreeMap<String, String>,
    /// The body as [`parse_body`] reads it.
    pub body: Value,
    /// Status answered (`None` while in flight, or when the client gave up
    /// or got no answer).
    pub status: Option<u16>,
    pub extra: X,
}

impl<X> HostRequest<X> {
    /// `recorded`, meant for `host`.
    pub fn new(recorded: &RecordedRequest, host: String, extra: X) -> Self {
        let mut headers = recorded.headers.clone();
        headers.remove("authorization");
        HostRequest {
            host,
            method: recorded.method.clone(),
            path: recorded.path.clone(),
            query: recorded.query.clone(),
            headers,
            body: parse_body(&recorded.body),
            status: None,
            extra,
        }
    }

    /// Header value by name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The query string decoded (last value wins).
    pub fn query_params(&self) -> HashMap<String, String> {
        decode_form(&self.query)
    }

    /// A form body decoded (empty when the body is JSON or empty).
    pub fn form(&self) -> HashMap<String, String> {
        match &self.body {
            Value::String(text) => decode_form(text),
            _ => HashMap::new(),
        }
    }
}

impl<X> Deref for HostRequest<X> {
    type Target = X;

    fn deref(&self) -> &X {
        &self.extra
    }
}

impl<X> DerefMut for HostRequest<X> {
    fn deref_mut(&mut self) -> &mut X {
        &mut self.extra
    }
}

impl<X: Clone + Send + 'static> Logged for HostRequest<X> {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }
}

/// Decode `a=1&b=x+y` style text into a map.
pub fn decode_form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// What every logged request type tells: its method and path.
pub trait Logged: Clone + Send + 'static {
    /// Upper-case HTTP method.
    fn method(&self) -> &str;
    /// Path without the query string.
    fn path(&self) -> &str;
}

impl Logged for RecordedRequest {
    fn method(&self) -> &str {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path
    }
}

/// Names one logged request for a later [`RequestLog::update`]; stays valid
/// (pointing at nothing) after a [`RequestLog::clear`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u64);

/// Thread-safe log of a simulator's requests (its own request record type),
/// oldest first.
#[derive(Debug)]
pub struct RequestLog<Q> {
    inner: Mutex<Entries<Q>>,
}

#[derive(Debug)]
struct Entries<Q> {
    next: u64,
    /// `(slot id, entry)`, ids ascending.
    entries: Vec<(u64, Q)>,
}

impl<Q> Default for RequestLog<Q> {
    fn default() -> Self {
        RequestLog {
            inner: Mutex::new(Entries {
                next: 0,
                entries: Vec::new(),
            }),
        }
    }
}

/// The request log of the simulators that keep requests as captured.
pub type Recorder = RequestLog<RecordedRequest>;

impl<Q: Logged> RequestLog<Q> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `request`; the slot names it for [`RequestLog::update`].
    pub fn push(&self, request: Q) -> Slot {
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.entries.push((id, request));
        Slot(id)
    }

    /// Append requests that have no slot of their own (e.g. subrequests).
    pub fn extend(&self, requests: impl IntoIterator<Item = Q>) {
        for request in requests {
            self.push(request);
        }
    }

    /// Change the entry in `slot` (nothing when it was cleared meanwhile).
    pub fn update(&self, slot: Slot, change: impl FnOnce(&mut Q)) {
        let mut inner = self.lock();
        if let Ok(index) = inner.entries.binary_search_by_key(&slot.0, |(id, _)| *id) {
            change(&mut inner.entries[index].1);
        }
    }

    /// A copy of every request logged so far, oldest first.
    pub fn all(&self) -> Vec<Q> {
        self.lock().entries.iter().map(|(_, q)| q.clone()).collect()
    }

    /// How many logged requests satisfy `keep`.
    pub fn count_where(&self, keep: impl Fn(&Q) -> bool) -> usize {
        self.lock().entries.iter().filter(|(_, q)| keep(q)).count()
    }

    /// How many logged requests had this method (case-insensitive) and
    /// exactly this path (query string excluded).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.count_where(|q| q.method().eq_ignore_ascii_case(method) && q.path() == path)
    }

    /// Forget everything logged so far.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<Q>> {
        // A panic while holding this lock cannot leave the log inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Buffer `request`'s body, describe it as a [`RecordedRequest`], and return
/// an equivalent request whose body can still be read by the handlers.
pub async fn capture(request: Request) -> (RecordedRequest, Request) {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();

    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }

    let recorded = RecordedRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        at: Instant::now(),
    };
    (recorded, Request::from_parts(parts, Body::from(bytes)))
}
