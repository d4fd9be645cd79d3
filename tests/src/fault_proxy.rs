//! One fault surface in front of any provider simulator.
//!
//! [`FaultProxy`] is a loopback HTTP proxy: every request it receives is forwarded as it came
//! (method, path and query, headers including `X-Forwarded-Host`, body bytes) to one upstream, a
//! simulator's `base_url()`, and the upstream's status, headers and body are handed back. Point
//! the relay's `<PROVIDER>_ENDPOINT_URL` at [`FaultProxy::endpoint`] (see
//! `TestContext::services_with_provider_endpoint`) and its calls to that provider can be made to
//! fail at the moments the simulators' own fault queues cannot reach: *after* the CRM acted
//! (answer lost, garbled, connection reset, or the caller killed while waiting).
//!
//! Rules are queued with [`FaultProxy::on`]: "the `nth` call from now on that matches" gets the
//! fault, once. Every call is logged ([`FaultProxy::calls`]) whether a rule fired on it or not.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;
use axum::serve::Listener;
use axum::Router;
use tokio::sync::{watch, Semaphore};

// The simulators' shell serves through the same resettable connections.
use crate::sim::server::{ResettableListener, Resetter};

/// Largest request or response body the proxy carries.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Headers that describe one hop, not the message: never copied across the proxy.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a queued rule does to the call it fires on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyFault {
    /// Forward, let the upstream apply it, then answer this status (500, 502, 503, ...) with a
    /// short `text/plain` body instead of the real answer: "the CRM acted, the answer was lost".
    LoseAnswer(u16),
    /// Forward, then answer `200 OK` with an HTML body labelled `application/json` (a proxy's
    /// error page) instead of the real answer.
    GarbageAfterApply,
    /// Forward, then close the connection without any answer (a TCP reset after the write).
    ResetAfterApply,
    /// Forward, then never answer. [`FaultProxy::applied`] and [`FaultHandle::fired`] resolve
    /// once the upstream has answered, so a test can kill the caller at that point. The request
    /// stays pending until the proxy is dropped.
    HangAfterApply,
    /// Do not forward; answer this status at once (a failure before the write).
    Status(u16),
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct ProxiedCall {
    /// Upper-case method, e.g. `"POST"`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Raw query string without the `?`, if the request had one.
    pub query: Option<String>,
    /// The request's headers as received.
    pub headers: HeaderMap,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// The fault a rule applied to this call, if one fired on it.
    pub fault: Option<ProxyFault>,
    /// When the proxy received it.
    pub at: Instant,
}

impl ProxiedCall {
    /// The host the relay meant the call for (`X-Forwarded-Host`), when it was moved.
    pub fn forwarded_host(&self) -> Option<&str> {
        self.headers
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok())
    }
}

/// Which calls a rule counts.
#[derive(Debug, Clone)]
pub enum CallMatch {
    /// Every call.
    Any,
    /// Calls with this method (case-insensitive), e.g. `"POST"`.
    Method(&'static str),
    /// Calls whose path (query excluded) contains this text.
    PathContains(String),
    /// Calls whose path (query excluded) is exactly this.
    PathIs(String),
    /// Calls with this method whose path contains this text.
    MethodAndPath(&'static str, String),
    /// Calls whose body contains this text (e.g. a Bitrix24 method name like `crm.deal.add`).
    BodyContains(String),
    /// Calls the inner matcher does not match.
    Not(Box<CallMatch>),
    /// Calls every inner matcher matches.
    All(Vec<CallMatch>),
}

impl CallMatch {
    /// Calls whose path contains `text`.
    pub fn path(text: &str) -> CallMatch {
        CallMatch::PathContains(text.to_string())
    }

    /// Calls whose path is exactly `path`.
    pub fn path_is(path: &str) -> CallMatch {
        CallMatch::PathIs(path.to_string())
    }

    /// Calls with `method` whose path contains `text`.
    pub fn method_and_path(method: &'static str, text: &str) -> CallMatch {
        CallMatch::MethodAndPath(method, text.to_string())
    }

    /// Calls whose body contains `text`.
    pub fn body(text: &str) -> CallMatch {
        CallMatch::BodyContains(text.to_string())
    }

    /// Calls this matcher does not match.
    pub fn negate(self) -> CallMatch {
        CallMatch::Not(Box::new(self))
    }

    /// Calls both this matcher and `other` match.
    pub fn and(self, other: CallMatch) -> CallMatch {
        match self {
            CallMatch::All(mut all) => {
                all.push(other);
                CallMatch::All(all)
            }
            first => CallMatch::All(vec![first, other]),
        }
    }

    pub fn matches(&self, call: &ProxiedCall) -> bool {
        match self {
            CallMatch::Any => true,
            CallMatch::Method(method) => call.method.eq_ignore_ascii_case(method),
            CallMatch::PathContains(text) => call.path.contains(text.as_str()),
            CallMatch::PathIs(path) => call.path == *path,
            CallMatch::MethodAndPath(method, text) => {
                call.method.eq_ignore_ascii_case(method) && call.path.contains(text.as_str())
            }
            CallMatch::BodyContains(text) => call.body.contains(text.as_str()),
            CallMatch::Not(inner) => !inner.matches(call),
            CallMatch::All(all) => all.iter().all(|m| m.matches(call)),
        }
    }
}

/// A queued rule, returned by [`FaultProxy::on`]. Dropping it leaves the rule queued.
#[derive(Debug)]
pub struct FaultHandle {
    id: u64,
    fired: watch::Receiver<bool>,
    shared: std::sync::Weak<Shared>,
}

impl FaultHandle {
    /// Resolves `true` once the fault took effect: for the `*AfterApply` faults and
    /// `LoseAnswer`, after the upstream answered the call; for `Status`, when the call came.
    /// Resolves `false` if the rule was withdrawn ([`Self::cancel`], [`FaultProxy::clear`]) or
    /// the proxy dropped before that.
    pub async fn fired(&self) -> bool {
        let mut fired = self.fired.clone();
        let outcome = fired.wait_for(|f| *f).await.is_ok();
        outcome
    }

    /// Whether the fault has taken effect (see [`Self::fired`]).
    pub fn has_fired(&self) -> bool {
        *self.fired.borrow()
    }

    /// Withdraws the rule if it has not fired yet.
    pub fn cancel(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.rules().retain(|rule| rule.id != self.id);
        }
    }
}

#[derive(Debug)]
struct Rule {
    id: u64,
    matches: CallMatch,
    nth: usize,
    /// Matching calls counted so far.
    seen: usize,
    fault: ProxyFault,
    fired: watch::Sender<bool>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<ProxiedCall>>,
    rules: Mutex<Vec<Rule>>,
    next_rule: AtomicU64,
    /// One permit per `HangAfterApply` that fired; [`FaultProxy::applied`] takes one.
    applied: Semaphore,
    /// Set when the proxy drops: hanging calls end.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        // A panic while holding the lock cannot leave the rules inconsistent.
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn calls(&self) -> MutexGuard<'_, Vec<ProxiedCall>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `call` against every queued rule it matches, takes the first rule that reached
    /// its `nth` match and logs the call. A rule that reaches its count on a call an earlier
    /// rule already took waits for its next match.
    fn admit(&self, mut call: ProxiedCall) -> Option<(ProxyFault, watch::Sender<bool>)> {
        let mut rules = self.rules();
        let mut chosen = None;
        for (index, rule) in rules.iter_mut().enumerate() {
            if !rule.matches.matches(&call) {
                continue;
            }
            if rule.seen + 1 >= rule.nth {
                if chosen.is_none() {
                    chosen = Some(index);
                }
                // Otherwise it stays one short and fires on its next match.
            } else {
                rule.seen += 1;
            }
        }
        let taken = chosen.map(|index| rules.remove(index));
        drop(rules);
        call.fault = taken.as_ref().map(|rule| rule.fault.clone());
        self.calls().push(call);
        taken.map(|rule| (rule.fault, rule.fired))
    }
}

/// A loopback proxy in front of one upstream that fails chosen calls (see the module docs).
/// Dropping it stops the server and ends every hanging call.
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (an origin such as a
    /// simulator's `base_url()`; a trailing `/` is ignored).
    pub async fn start(upstream: &str) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a TLS backend is compiled in"),
            calls: Mutex::default(),
            rules: Mutex::default(),
            next_rule: AtomicU64::new(1),
            applied: Semaphore::new(0),
            shutdown: watch::Sender::new(false),
        });
        let listener = ResettableListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the fault proxy");
        let endpoint = format!(
            "http://{}",
            Listener::local_addr(&listener).expect("local address")
        );
        let app = Router::new()
            .fallback(proxy)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<Resetter>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            endpoint,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// Queues `fault` for the `nth` (1-based) call from now on that `matches`. Each rule fires
    /// once; rules count independently, and when two would fire on the same call the one queued
    /// first does (the other fires on its next match). The handle tells when it fired.
    pub fn on(&self, matches: CallMatch, nth: usize, fault: ProxyFault) -> FaultHandle {
        assert!(nth >= 1, "calls are counted from 1");
        let (fired_tx, fired_rx) = watch::channel(false);
        let id = self.shared.next_rule.fetch_add(1, Ordering::SeqCst);
        self.shared.rules().push(Rule {
            id,
            matches,
            nth,
            seen: 0,
            fault,
            fired: fired_tx,
        });
        FaultHandle {
            id,
            fired: fired_rx,
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Every call received since the start (or the last [`Self::clear`]), in arrival order.
    pub fn calls(&self) -> Vec<ProxiedCall> {
        self.shared.calls().clone()
    }

    /// Forgets the call log and withdraws every queued rule.
    pub fn clear(&self) {
        self.shared.rules().clear();
        self.shared.calls().clear();
    }

    /// Rules queued and not fired yet.
    pub fn pending(&self) -> usize {
        self.shared.rules().len()
    }

    /// Resolves once a [`ProxyFault::HangAfterApply`] has fired: the upstream applied the call
    /// and the caller is left waiting. Each fired hang resolves one `applied()` call, including
    /// a hang that fired before `applied()` was called.
    pub async fn applied(&self) {
        self.shared
            .applied
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.server.abort();
    }
}

/// What the upstream answered.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn proxy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(resetter): ConnectInfo<Resetter>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let call = ProxiedCall {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        fault: None,
        at: Instant::now(),
    };
    let rule = shared.admit(call);
    if let Some((ProxyFault::Status(code), fired)) = &rule {
        fired.send_replace(true);
        return text(*code, "fault proxy: injected failure, not forwarded\n");
    }

    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    // On its own task: the upstream gets the whole call even if the caller goes away meanwhile.
    let forwarding = tokio::spawn({
        let shared = shared.clone();
        async move {
            let upstream = forward(
                &shared,
                parts.method,
                &path_and_query,
                &parts.headers,
                bytes,
            )
            .await;
            if let Some((fault, fired)) = &rule {
                fired.send_replace(true);
                if *fault == ProxyFault::HangAfterApply {
                    shared.applied.add_permits(1);
                }
            }
            (upstream, rule.map(|(fault, _)| fault))
        }
    });
    let (upstream, fault) = match forwarding.await {
        Ok(done) => done,
        Err(_) => return text(502, "fault proxy: forwarding failed\n"),
    };
    match fault {
        None => match upstream {
            Ok(upstream) => {
                let mut response = Response::new(Body::from(upstream.body));
                *response.status_mut() = upstream.status;
                *response.headers_mut() = end_to_end(&upstream.headers);
                response
            }
            Err(error) => text(
                502,
                &format!("fault proxy: upstream unreachable: {error}\n"),
            ),
        },
        Some(ProxyFault::LoseAnswer(code)) => text(code, "fault proxy: the answer was lost\n"),
        Some(ProxyFault::GarbageAfterApply) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                "<html><head><title>502 Bad Gateway</title></head>\
                 <body><h1>502 Bad Gateway</h1></body></html>",
            ))
            .expect("static response"),
        Some(ProxyFault::ResetAfterApply) => {
            resetter.reset();
            // Never written: the connection fails at its first write and is dropped.
            text(500, "")
        }
        Some(ProxyFault::HangAfterApply) => {
            let mut shutdown = shared.shutdown.subscribe();
            let _ = shutdown.wait_for(|stop| *stop).await;
            text(503, "fault proxy: stopped\n")
        }
        Some(ProxyFault::Status(_)) => unreachable!("answered before forwarding"),
    }
}

async fn forward(
    shared: &Shared,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Upstream, reqwest::Error> {
    let mut outgoing = end_to_end(headers);
    // The upstream's own host; the host the call was meant for travels in X-Forwarded-Host.
    outgoing.remove(header::HOST);
    let response = shared
        .client
        .request(method, format!("{}{path_and_query}", shared.upstream))
        .headers(outgoing)
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(Upstream {
        status,
        headers,
        body,
    })
}

/// `headers` without the hop-by-hop ones.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in HOP_BY_HOP {
        kept.remove(HeaderName::from_static(name));
    }
    kept
}

fn text(status: u16, body: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("a valid status")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use axum::response::IntoResponse;
    use serde_json::{json, Value};
    use tokio::net::TcpListener;

    /// A tiny upstream that counts calls and echoes what it received.
    struct Upstream {
        base_url: String,
        calls: Arc<AtomicUsize>,
    }

    async fn upstream() -> Upstream {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let app = Router::new().fallback(move |request: Request| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let (parts, body) = request.into_parts();
                let body = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
                if parts.uri.path() == "/redirect" {
                    return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
                }
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let echo = json!({
                    "method": parts.method.as_str(),
                    "path": parts.uri.path(),
                    "query": parts.uri.query(),
                    "forwarded_host": header("x-forwarded-host"),
                    "custom": header("x-custom"),
                    "body": String::from_utf8_lossy(&body),
                });
                (
                    StatusCode::CREATED,
                    [("x-upstream", "yes"), ("content-type", "application/json")],
                    echo.to_string(),
                )
                    .into_response()
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { base_url, calls }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn post(proxy: &FaultProxy, path: &str, body: &str) -> reqwest::Response {
        client()
            .post(format!("{}{path}", proxy.endpoint()))
            .body(body.to_string())
            .send()
            .await
            .expect("an answer")
    }

    fn call(method: &str, path: &str, body: &str) -> ProxiedCall {
        ProxiedCall {
            method: method.into(),
            path: path.into(),
            query: None,
            headers: HeaderMap::new(),
            body: body.into(),
            fault: None,
            at: Instant::now(),
        }
    }

    #[tokio::test]
    async fn forwarding_is_faithful() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;

        let response = client()
            .post(format!(
                "{}/crm/v3/objects/deals?a=1&b=two%20words",
                proxy.endpoint()
            ))
            .header("x-forwarded-host", "crm.example.com")
            .header("x-custom", "kept")
            .body("{\"hello\":\"world\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        assert_eq!(response.headers()["x-upstream"], "yes");
        assert_eq!(response.headers()["content-type"], "application/json");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["path"], "/crm/v3/objects/deals");
        assert_eq!(echo["query"], "a=1&b=two%20words");
        assert_eq!(echo["forwarded_host"], "crm.example.com");
        assert_eq!(echo["custom"], "kept");
        assert_eq!(echo["body"], "{\"hello\":\"world\"}");

        // Redirects are handed back, not followed.
        let response = client()
            .get(format!("{}/redirect", proxy.endpoint()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302);
        assert_eq!(response.headers()["location"], "/elsewhere");

        let calls = proxy.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].method, "POST");
        assert_eq!(calls[0].path, "/crm/v3/objects/deals");
        assert_eq!(calls[0].query.as_deref(), Some("a=1&b=two%20words"));
        assert_eq!(calls[0].forwarded_host(), Some("crm.example.com"));
        assert_eq!(calls[0].body, "{\"hello\":\"world\"}");
        assert_eq!(calls[0].fault, None);
        assert_eq!(calls[1].method, "GET");
        assert_eq!(calls[1].path, "/redirect");
        assert_eq!(calls[1].query, None);
        assert!(calls[0].at <= calls[1].at);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn lose_answer_applies_upstream_and_answers_the_status() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        let handle = proxy.on(CallMatch::path("/deals"), 1, ProxyFault::LoseAnswer(500));

        let response = post(&proxy, "/crm/v3/objects/deals", "{}").await;
        assert_eq!(response.status().as_u16(), 500);
        assert!(response.headers().get("x-upstream").is_none());
        assert!(response.text().await.unwrap().contains("lost"));
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1, "applied upstream");
        assert!(handle.has_fired());
        assert!(handle.fired().await);

        // Once only.
        assert_eq!(
            post(&proxy, "/crm/v3/objects/deals", "{}")
                .await
                .status()
                .as_u16(),
            201
        );
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
        let faults: Vec<_> = proxy.calls().into_iter().map(|c| c.fault).collect();
        assert_eq!(faults, vec![Some(ProxyFault::LoseAnswer(500)), None]);
    }

    #[tokio::test]
    async fn garbage_after_apply_answers_html_labelled_json() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        proxy.on(CallMatch::Any, 1, ProxyFault::GarbageAfterApply);

        let response = post(&proxy, "/anything", "x").await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.text().await.unwrap().starts_with("<html>"));
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn status_answers_without_forwarding() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        proxy.on(CallMatch::Any, 1, ProxyFault::Status(503));

        assert_eq!(post(&proxy, "/x", "").await.status().as_u16(), 503);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 0, "never forwarded");
        assert_eq!(proxy.calls().len(), 1, "still logged");
    }

    #[tokio::test]
    async fn nth_counts_each_rule_against_its_own_matcher() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        proxy.on(
            CallMatch::method_and_path("POST", "/deals"),
            2,
            ProxyFault::Status(503),
        );
        proxy.on(CallMatch::body("crm.deal.add"), 1, ProxyFault::Status(502));
        let not_oauth = proxy.on(
            CallMatch::path("/oauth/").negate(),
            6,
            ProxyFault::Status(504),
        );

        let statuses = [
            post(&proxy, "/oauth/token", "").await, // not counted by rule 3
            post(&proxy, "/crm/v3/objects/contacts", "").await, // rule 3: 1
            post(&proxy, "/crm/v3/objects/deals", "").await, // rule 1: 1; rule 3: 2
            client()
                .get(format!("{}/crm/v3/objects/deals", proxy.endpoint()))
                .send()
                .await
                .unwrap(), // GET: not rule 1; rule 3: 3
            post(&proxy, "/rest/batch", "cmd=crm.deal.add").await, // rule 2 fires; rule 3: 4
            post(&proxy, "/crm/v3/objects/deals", "").await, // rule 1 fires; rule 3: 5
            post(&proxy, "/crm/v3/objects/deals", "").await, // rule 3 fires
            post(&proxy, "/crm/v3/objects/deals", "").await, // no rule left
        ]
        .map(|r| r.status().as_u16());
        assert_eq!(statuses, [201, 201, 201, 201, 502, 503, 504, 201]);
        assert!(not_oauth.has_fired());
        assert_eq!(proxy.pending(), 0);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_rule_that_comes_due_on_a_call_already_taken_fires_on_the_next_match() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        proxy.on(CallMatch::Any, 1, ProxyFault::Status(500));
        proxy.on(CallMatch::Any, 1, ProxyFault::Status(502));

        assert_eq!(post(&proxy, "/a", "").await.status().as_u16(), 500);
        assert_eq!(post(&proxy, "/b", "").await.status().as_u16(), 502);
        assert_eq!(post(&proxy, "/c", "").await.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn cancelled_and_cleared_rules_never_fire() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        let cancelled = proxy.on(CallMatch::Any, 1, ProxyFault::Status(500));
        cancelled.cancel();
        assert!(!cancelled.fired().await, "withdrawn");
        let cleared = proxy.on(CallMatch::Any, 2, ProxyFault::Status(500));
        assert_eq!(post(&proxy, "/a", "").await.status().as_u16(), 201);
        proxy.clear();
        assert!(proxy.calls().is_empty());
        assert_eq!(proxy.pending(), 0);
        assert!(!cleared.fired().await, "withdrawn");
        assert_eq!(post(&proxy, "/b", "").await.status().as_u16(), 201);
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn matchers() {
        let deal_add = call("POST", "/rest/1/abc/batch", "cmd[0]=crm.deal.add%3F");
        let token = call("POST", "/oauth/2026-03/token", "grant_type=refresh_token");
        let deals = call("POST", "/crm/v3/objects/deals", "{}");
        let get_deals = call("GET", "/crm/v3/objects/deals/1", "");

        let crm = CallMatch::path("/oauth/").negate();
        assert!(crm.matches(&deal_add) && crm.matches(&deals) && !crm.matches(&token));
        let post_deals = CallMatch::method_and_path("post", "/deals");
        assert!(post_deals.matches(&deals) && !post_deals.matches(&get_deals));
        assert!(CallMatch::body("crm.deal.add").matches(&deal_add));
        assert!(!CallMatch::body("crm.deal.add").matches(&deals));
        let get_crm = CallMatch::Method("GET").and(CallMatch::path("/crm/"));
        assert!(get_crm.matches(&get_deals) && !get_crm.matches(&deals));
        assert!(CallMatch::Any.matches(&token));
        let create_deal =
            CallMatch::Method("POST").and(CallMatch::path_is("/crm/v3/objects/deals"));
        assert!(create_deal.matches(&deals));
        assert!(!create_deal.matches(&call("POST", "/crm/v3/objects/deals/search", "")));
    }

    #[tokio::test]
    async fn hang_after_apply_notifies_and_never_answers() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        let handle = proxy.on(CallMatch::Any, 1, ProxyFault::HangAfterApply);
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();

        let (answer, ()) = tokio::join!(
            impatient
                .post(format!("{}/crm/v3/objects/deals", proxy.endpoint()))
                .body("{}")
                .send(),
            proxy.applied()
        );
        let error = answer.expect_err("never answered");
        assert!(error.is_timeout(), "{error:?}");
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1, "applied upstream");
        assert!(handle.fired().await);
        assert_eq!(proxy.calls()[0].fault, Some(ProxyFault::HangAfterApply));
    }

    #[tokio::test]
    async fn applied_counts_a_hang_that_fired_before_it_was_awaited() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        let handle = proxy.on(CallMatch::Any, 1, ProxyFault::HangAfterApply);
        let url = format!("{}/x", proxy.endpoint());
        let request = tokio::spawn(async move { reqwest::Client::new().post(url).send().await });
        assert!(handle.fired().await);
        proxy.applied().await;
        request.abort();
    }

    #[tokio::test]
    async fn reset_after_apply_gives_the_client_a_connection_error() {
        let upstream = upstream().await;
        let proxy = FaultProxy::start(&upstream.base_url).await;
        proxy.on(CallMatch::Any, 1, ProxyFault::ResetAfterApply);

        let error = client()
            .post(format!("{}/crm/v3/objects/deals", proxy.endpoint()))
            .body("{}")
            .send()
            .await
            .expect_err("no answer");
        assert!(!error.is_timeout(), "{error:?}");
        assert!(error.status().is_none(), "{error:?}");
        assert!(error.is_request() || error.is_connect(), "{error:?}");
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 1, "applied upstream");

        // The proxy keeps serving other connections.
        assert_eq!(post(&proxy, "/after", "").await.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_bad_gateway() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let proxy = FaultProxy::start(&closed).await;
        assert_eq!(post(&proxy, "/x", "").await.status().as_u16(), 502);
    }
}
