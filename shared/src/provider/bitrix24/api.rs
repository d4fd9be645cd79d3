//! One Bitrix24 REST call: `POST {portal}/rest/{method}` with the parameters and the access
//! token (`auth`) in a JSON body, so the token never sits in a URL; the answer's `result`, or
//! Bitrix24's error (`error`, `error_description`) as a [`ProviderError`].

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::error::ProviderError;
use crate::http::{HttpResponse, Idempotency};
use crate::provider::Session;
use crate::registry::Provider;

/// Calls `method` with `params` (a JSON object); returns the answer's `result`. `idempotency`
/// says whether a lost answer may be resent (reads and updates) or not (creates).
pub(super) async fn call(
    session: &Session<'_>,
    operation: &'static str,
    method: &str,
    params: Value,
    idempotency: Idempotency,
) -> Result<Value, ProviderError> {
    let mut body = match params {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    body.insert(
        "auth".into(),
        Value::String(session.access_token().expose_secret().to_string()),
    );
    let request = session
        .unauthenticated_request(operation, Method::POST, &format!("/{method}"))
        .json(Value::Object(body))
        .idempotency(idempotency);
    let response = session.http.send(request).await?;
    result_of(&response)
}

/// The `result` of a successful answer, or the error it carries.
pub(super) fn result_of(response: &HttpResponse) -> Result<Value, ProviderError> {
    if !response.is_success() {
        return Err(classify(response));
    }
    let mut body: Value = response.json()?;
    if let Some(result) = body.get_mut("result") {
        return Ok(result.take());
    }
    match body.get("error") {
        Some(_) => Err(classify(response)),
        None => Err(ProviderError::Garbage {
            provider: Provider::Bitrix24,
            status: response.status,
            detail: "the answer has no `result`".into(),
        }),
    }
}

/// Bitrix24's error codes (the system list in its REST documentation) mapped to what the relay
/// does about them: refresh and retry, reconnect, wait, or dead-letter with the code.
fn classify(response: &HttpResponse) -> ProviderError {
    #[derive(serde::Deserialize, Default)]
    struct Answer {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&response.body).unwrap_or_default();
    let code = answer
        .error
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("http_{}", response.status));
    error_of(
        response.status,
        code,
        answer.error_description.unwrap_or_default(),
    )
}

/// What the relay does about Bitrix24's error `code` (answered with `status`; a batch's
/// per-command error carries the batch's status).
pub(super) fn error_of(status: u16, code: String, description: String) -> ProviderError {
    let provider = Provider::Bitrix24;
    match code.as_str() {
        // The access token is spent or unknown: refresh once, then reconnect.
        "expired_token" | "invalid_token" | "NO_AUTH_FOUND" => {
            ProviderError::Unauthorized { provider, code }
        }
        // The app's paid period or trial ended: nothing works until the portal pays.
        "PAYMENT_REQUIRED" => ProviderError::InvalidGrant { provider, code },
        // Throttling the HTTP client did not wait out.
        "QUERY_LIMIT_EXCEEDED" | "OPERATION_TIME_LIMIT" => ProviderError::Throttled {
            provider,
            retry_after: None,
        },
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => {
            ProviderError::Unavailable { provider, status }
        }
        // Everything else (ACCESS_DENIED: REST is not on the portal's plan; insufficient_scope;
        // a field the portal refuses) needs a person, not a retry.
        _ => ProviderError::Rejected {
            provider,
            status,
            code,
            message: description.chars().take(300).collect(),
        },
    }
}

/// An id in an answer (`result` of an add), as the string the relay keeps.
pub(super) fn id_of(result: &Value, what: &str) -> Result<String, ProviderError> {
    match result {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => Ok(n.to_string()),
        Value::String(s) if s.parse::<u64>().is_ok_and(|n| n > 0) => Ok(s.clone()),
        _ => Err(ProviderError::Garbage {
            provider: Provider::Bitrix24,
            status: 200,
            detail: format!("the answer holds no {what} id"),
        }),
    }
}

/// An id the relay kept, as Bitrix24 takes it (a number).
pub(super) fn id_value(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::String(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            provider: Provider::Bitrix24,
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_map_to_refresh_reconnect_wait_or_refuse() {
        let expired = r#"{"error":"expired_token","error_description":"The access token provided has expired."}"#;
        assert!(matches!(
            result_of(&answer(401, expired)),
            Err(ProviderError::Unauthorized { code, .. }) if code == "expired_token"
        ));
        assert!(matches!(
            result_of(&answer(402, r#"{"error":"PAYMENT_REQUIRED"}"#)),
            Err(ProviderError::InvalidGrant { code, .. }) if code == "PAYMENT_REQUIRED"
        ));
        assert!(
            result_of(&answer(429, r#"{"error":"OPERATION_TIME_LIMIT"}"#))
                .unwrap_err()
                .is_retryable()
        );
        let denied = r#"{"error":"ACCESS_DENIED","error_description":"REST is available only on commercial plans"}"#;
        assert!(matches!(
            result_of(&answer(401, denied)),
            Err(ProviderError::Rejected { code, .. }) if code == "ACCESS_DENIED"
        ));
        assert!(matches!(
            result_of(&answer(400, "<html>")),
            Err(ProviderError::Rejected { code, .. }) if code == "http_400"
        ));
        assert!(matches!(
            result_of(&answer(200, r#"{"time":{}}"#)),
            Err(ProviderError::Garbage { .. })
        ));
        assert_eq!(
            result_of(&answer(200, r#"{"result":[],"time":{}}"#)).unwrap(),
            serde_json::json!([])
        );
    }

    #[test]
    fn ids_come_as_numbers_or_numeric_strings() {
        assert_eq!(id_of(&serde_json::json!(42), "contact").unwrap(), "42");
        assert_eq!(id_of(&serde_json::json!("42"), "contact").unwrap(), "42");
        assert!(id_of(&serde_json::json!(false), "contact").is_err());
        assert!(id_of(&serde_json::json!(0), "contact").is_err());
        assert_eq!(id_value("42"), serde_json::json!(42));
    }
}
