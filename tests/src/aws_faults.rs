//! A proxy in front of moto that fails chosen AWS calls, for tests of what happens when
//! DynamoDB fails at the worst moment (after a provider has already answered).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;

/// Fails the first `failures` DynamoDB calls of `operation` whose body contains `marker`, with
/// DynamoDB's `InternalServerError` (which the SDK itself retries); forwards everything else.
pub struct FaultyAws {
    pub endpoint: String,
    matched: Arc<AtomicUsize>,
}

struct Rule {
    upstream: String,
    operation: String,
    marker: String,
    failures: usize,
    /// Matched calls are never answered (and never forwarded) instead of failing.
    hang: bool,
    matched: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl FaultyAws {
    pub async fn start(
        upstream: &str,
        operation: &str,
        marker: &str,
        failures: usize,
    ) -> FaultyAws {
        FaultyAws::serve(upstream, operation, marker, failures, false).await
    }

    /// Never answers the DynamoDB calls of `operation` whose body contains `marker` (a DynamoDB
    /// that stopped answering: nothing is applied, and the SDK, which sets no operation timeout,
    /// waits); forwards everything else.
    pub async fn hanging(upstream: &str, operation: &str, marker: &str) -> FaultyAws {
        FaultyAws::serve(upstream, operation, marker, usize::MAX, true).await
    }

    async fn serve(
        upstream: &str,
        operation: &str,
        marker: &str,
        failures: usize,
        hang: bool,
    ) -> FaultyAws {
        let matched = Arc::new(AtomicUsize::new(0));
        let rule = Arc::new(Rule {
            upstream: upstream.trim_end_matches('/').to_string(),
            operation: format!("DynamoDB_20120810.{operation}"),
            marker: marker.to_string(),
            failures,
            hang,
            matched: matched.clone(),
            client: reqwest::Client::new(),
        });
        let app = Router::new().fallback(forward).with_state(rule);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultyAws { endpoint, matched }
    }

    /// How many calls matched the rule (failed or forwarded).
    pub fn matched(&self) -> usize {
        self.matched.load(Ordering::SeqCst)
    }
}

async fn forward(State(rule): State<Arc<Rule>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if target == rule.operation && String::from_utf8_lossy(&bytes).contains(&rule.marker) {
        let n = rule.matched.fetch_add(1, Ordering::SeqCst);
        if rule.hang {
            return std::future::pending().await;
        }
        if n < rule.failures {
            return Response::builder()
                .status(500)
                .header("content-type", "application/x-amz-json-1.0")
                .body(Body::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected failure"}"#,
                ))
                .expect("static response");
        }
    }
    let url = format!(
        "{}{}",
        rule.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut upstream = rule
        .client
        .request(parts.method.clone(), url)
        .body(bytes.to_vec());
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    match upstream.send().await {
        Ok(response) => {
            let mut builder = Response::builder().status(response.status().as_u16());
            for (name, value) in response.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    builder = builder.header(name, value);
                }
            }
            let body = response.bytes().await.unwrap_or_default();
            builder.body(Body::from(body)).expect("forwarded response")
        }
        Err(_) => Response::builder()
            .status(502)
            .body(Body::empty())
            .expect("static response"),
    }
}
