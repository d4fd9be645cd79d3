//! `contract-gateway [--listen 127.0.0.1:PORT]`
//!
//! A small stand-in for the HTTP API (API Gateway v2) in front of the real `connections-api` and
//! `oauth-callback` handlers, for the contract test (scripts/contract.sh): schemathesis sends
//! HTTP requests generated from infra/openapi.yaml here, each becomes the API Gateway v2 event
//! the function would get, and the handler runs in this process against moto (the AWS_* env,
//! as `scripts/moto.sh` sets it) and the provider simulators of a fresh `TestContext`.
//!
//! What it plays of API Gateway: the JWT authorizer on every route but the OAuth callback. A
//! bearer token `test.<tenant>.<plan>` stands for a verified JWT with the claims `tenant_id`,
//! `plan` and `sub` (`user-<tenant>`); any other token, or none, is answered 401
//! `{"message":"Unauthorized"}` as the authorizer does, before the function runs. Prints one
//! line, `contract-gateway listening on http://ADDR`, then serves until it is killed.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lambda_http::Body;
use relay_tests::context::TestContext;
use serde_json::{json, Map, Value};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .context("--listen needs an address")?
                    .parse()
                    .context("--listen ADDR")?
            }
            other => bail!("unknown argument {other:?}; usage: contract-gateway [--listen ADDR]"),
        }
    }
    let context = Arc::new(TestContext::new().await);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(gateway).with_state(context);
    println!("contract-gateway listening on http://{addr}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn gateway(
    State(context): State<Arc<TestContext>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let callback = callback_provider(&path);
    let claims = match (&callback, claims(&headers)) {
        (Some(_), _) => None,
        (None, Some(claims)) => Some(claims),
        (None, None) => {
            return (
                StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                json!({"message": "Unauthorized"}).to_string(),
            )
                .into_response()
        }
    };
    let event = event(&method, &uri, &headers, &body, claims, callback.as_deref());
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(e) => {
            // API Gateway would not have produced such an event; say so loudly.
            return (
                StatusCode::BAD_GATEWAY,
                format!("contract-gateway: not a valid v2 event: {e}"),
            )
                .into_response();
        }
    };
    let result = if callback.is_some() {
        oauth_callback::handle(&context.services, request).await
    } else {
        connections_api::handle(&context.services, request).await
    };
    match result {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes: Vec<u8> = match body {
                Body::Text(text) => text.into_bytes(),
                Body::Binary(bytes) => bytes,
                _ => Vec::new(),
            };
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        // The function failed the invocation: API Gateway answers 500 itself.
        Err(e) => {
            eprintln!("contract-gateway: the handler failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                json!({"message": "Internal Server Error"}).to_string(),
            )
                .into_response()
        }
    }
}

/// `{provider}` of `/oauth/{provider}/callback`, the one public route.
fn callback_provider(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "oauth", provider, "callback"] if !provider.is_empty() => Some(provider.to_string()),
        _ => None,
    }
}

/// The claims of the test token `test.<tenant>.<plan>`, as the JWT authorizer would pass them.
fn claims(headers: &HeaderMap) -> Option<Value> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    let mut parts = token.splitn(3, '.');
    let (Some("test"), Some(tenant), Some(plan)) = (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if tenant.is_empty() || plan.is_empty() {
        return None;
    }
    Some(json!({
        "iss": "https://auth.leadrelay.test/",
        "aud": "leadrelay-setup",
        "sub": format!("user-{tenant}"),
        "tenant_id": tenant,
        "plan": plan,
    }))
}

/// The API Gateway HTTP API (payload 2.0) event for this request.
fn event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    claims: Option<Value>,
    callback: Option<&str>,
) -> Value {
    let path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    // Repeated query parameters arrive comma-joined, as API Gateway v2 sends them.
    let mut query = Map::new();
    for (name, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(name.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(name.into_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let mut header_map = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    let route_key = match callback {
        Some(_) => "GET /oauth/{provider}/callback".to_string(),
        None => format!("{method} {path}"),
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "contract",
            "domainName": "contract.execute-api.local",
            "domainPrefix": "contract",
            "http": {
                "method": method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "schemathesis"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": "06/Dec/2026:19:00:00 +0000",
            "timeEpoch": chrono::Utc::now().timestamp_millis()
        },
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if let Some(provider) = callback {
        event["pathParameters"] = json!({ "provider": provider });
    }
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => event["body"] = json!(text),
            Err(_) => {
                event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
                event["isBase64Encoded"] = json!(true);
            }
        }
    }
    event
}
