//! The sample events in `events/`, loaded and adjusted per test so that every test drives the
//! handlers with the same event shapes API Gateway, SQS and EventBridge send.

use std::path::PathBuf;

use serde_json::{json, Value};

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Reads `events/<name>` as JSON.
pub fn load(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An API Gateway HTTP API (v2) event, built from a sample.
#[derive(Clone)]
pub struct ApiEvent(pub Value);

impl ApiEvent {
    pub fn sample(name: &str) -> ApiEvent {
        ApiEvent(load(name))
    }

    /// Sets method and path (and the route's `{provider}` parameter when there is one).
    pub fn path(mut self, method: &str, path: &str) -> Self {
        self.0["rawPath"] = json!(path);
        self.0["requestContext"]["http"]["method"] = json!(method);
        self.0["requestContext"]["http"]["path"] = json!(path);
        self
    }

    pub fn provider(mut self, provider: &str) -> Self {
        let path = self.0["rawPath"].as_str().unwrap_or_default().to_string();
        let old = self.0["pathParameters"]["provider"]
            .as_str()
            .unwrap_or("hubspot")
            .to_string();
        let new_path = path.replacen(&format!("/{old}"), &format!("/{provider}"), 1);
        self.0["pathParameters"] = json!({ "provider": provider });
        let method = self.0["requestContext"]["http"]["method"]
            .as_str()
            .unwrap_or("GET")
            .to_string();
        self.path(&method, &new_path)
    }

    /// Sets the JWT claims the authorizer passes on.
    pub fn claims(mut self, tenant: &str, plan: &str) -> Self {
        let claims = &mut self.0["requestContext"]["authorizer"]["jwt"]["claims"];
        claims["tenant_id"] = json!(tenant);
        claims["plan"] = json!(plan);
        self
    }

    pub fn without_claims(mut self) -> Self {
        if let Some(ctx) = self.0["requestContext"].as_object_mut() {
            ctx.remove("authorizer");
        }
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.0["body"] = json!(body.to_string());
        self
    }

    pub fn raw_body(mut self, body: &str) -> Self {
        self.0["body"] = json!(body);
        self
    }

    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        let mut params = serde_json::Map::new();
        let mut raw = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            params.insert(k.to_string(), json!(v));
            raw.append_pair(k, v);
        }
        self.0["queryStringParameters"] = Value::Object(params);
        self.0["rawQueryString"] = json!(raw.finish());
        self
    }

    pub fn request(&self) -> lambda_http::Request {
        lambda_http::request::from_str(&self.0.to_string()).expect("a valid API Gateway v2 event")
    }
}

/// A lead as the lead pipeline sends it (`fields` is the message's `lead` object), read by the
/// real message parser.
pub fn lead(fields: Value, summary: Option<&str>) -> shared::lead::Lead {
    let message = json!({
        "version": 1,
        "tenant_id": "tenant-1",
        "plan": "pro",
        "lead": fields,
        "summary": summary,
        "occurred_at": "2026-11-28T04:00:00Z"
    });
    shared::lead::parse_message(&message.to_string())
        .expect("a valid lead message")
        .lead
}
