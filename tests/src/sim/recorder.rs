//! Provider-agnostic request recording.
//!
//! Every simulator buffers each incoming request with [`capture`], stores the
//! resulting [`RecordedRequest`] in its [`Recorder`], and passes the rebuilt
//! request on to its handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;

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
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Decode `a=1&b=x+y` style text into a map.
pub fn decode_form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// Thread-safe, append-only log of requests.
#[derive(Debug, Default)]
pub struct Recorder {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// A copy of every request recorded so far, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    /// How many recorded requests had this method (case-insensitive) and
    /// exactly this path (query string excluded).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.lock()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .count()
    }

    /// Forget everything recorded so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
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
