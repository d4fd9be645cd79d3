//! Zoho's answers: per-record results inside a 2xx (`{"data":[{code, status, details,
//! message}]}`, HTTP 200, 201 or 207 when mixed) and request-level errors as one bare object.
//! A 2xx whose record says `"status":"error"` is a failure, never a success.
//!
//! Codes and statuses from Zoho's v8 OpenAPI specs (`zoho/crm-oas`, `common.json` and the
//! record, notes and convert operations' examples).

use serde::Deserialize;
use serde_json::Value;

use crate::error::ProviderError;
use crate::http::HttpResponse;
use crate::registry::Provider;

/// One record's result.
#[derive(Debug, Deserialize)]
pub(super) struct RecordResult {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Value,
    /// Upsert: `insert` or `update`.
    #[serde(default)]
    pub action: Option<String>,
}

impl RecordResult {
    /// `details.id`: the record created or updated.
    pub fn id(&self) -> Option<String> {
        id_of(&self.details)
    }
}

/// `{"id": "..."}` (ids are strings in v8 answers; numbers tolerated).
pub(super) fn id_of(value: &Value) -> Option<String> {
    match value.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[derive(Deserialize)]
struct DataEnvelope {
    data: Vec<RecordResult>,
}

/// The single record result of a one-record call, or the error it carries.
pub(super) fn single_record(response: HttpResponse) -> Result<RecordResult, ProviderError> {
    let status = response.status;
    let provider = response.provider;
    if let Some(error) = request_level_error(&response) {
        return Err(error);
    }
    let envelope: DataEnvelope = response.json()?;
    let record = envelope
        .data
        .into_iter()
        .next()
        .ok_or(ProviderError::Garbage {
            provider,
            status,
            detail: "the answer holds no record result".into(),
        })?;
    if record.status.eq_ignore_ascii_case("success") {
        Ok(record)
    } else {
        Err(classify(
            status,
            &record.code,
            &record.details,
            &record.message,
        ))
    }
}

/// The per-record results of a multi-record call, in the order the records were sent: each
/// one a success or the error Zoho gave that record. `Err` when the whole call failed (a
/// request-level error) or the answer does not hold one result per record sent.
pub(super) fn many_records(
    response: HttpResponse,
    sent: usize,
) -> Result<Vec<Result<RecordResult, ProviderError>>, ProviderError> {
    let status = response.status;
    let provider = response.provider;
    if let Some(error) = request_level_error(&response) {
        return Err(error);
    }
    let envelope: DataEnvelope = response.json()?;
    if envelope.data.len() != sent {
        return Err(ProviderError::Garbage {
            provider,
            status,
            detail: format!(
                "{} record results for {sent} records sent",
                envelope.data.len()
            ),
        });
    }
    Ok(envelope
        .data
        .into_iter()
        .map(|record| {
            if record.status.eq_ignore_ascii_case("success") {
                Ok(record)
            } else {
                Err(classify(
                    status,
                    &record.code,
                    &record.details,
                    &record.message,
                ))
            }
        })
        .collect())
}

/// A request-level error object (`{"code","status":"error",...}` without `data`), or any
/// non-2xx the body does not explain.
fn request_level_error(response: &HttpResponse) -> Option<ProviderError> {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let object = body.as_ref().filter(|b| b.get("data").is_none());
    if let Some(error) = object.filter(|o| o.get("code").is_some()) {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("");
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        let details = error.get("details").cloned().unwrap_or(Value::Null);
        return Some(classify(response.status, code, &details, message));
    }
    if !response.is_success() && body.as_ref().and_then(|b| b.get("data")).is_none() {
        return Some(classify(response.status, "", &Value::Null, ""));
    }
    None
}

/// Zoho's code → retryable, permanent or reauth. The field a record error names (`api_name`)
/// goes into the code so a dead-lettered lead says which field was refused; the message is
/// Zoho's prose and stays out of `Display`.
pub(super) fn classify(status: u16, code: &str, details: &Value, message: &str) -> ProviderError {
    let provider = Provider::Zoho;
    let code = if code.is_empty() {
        format!("http_{status}")
    } else {
        code.to_string()
    };
    match code.as_str() {
        // The access token is not (or no longer) good: refresh once, then reconnect.
        "INVALID_TOKEN" | "AUTHENTICATION_FAILURE" => {
            ProviderError::Unauthorized { provider, code }
        }
        // The grant lacks a scope we need: no refresh can fix that, only a new consent.
        "OAUTH_SCOPE_MISMATCH" => ProviderError::InvalidGrant { provider, code },
        "TOO_MANY_REQUESTS" => ProviderError::Throttled {
            provider,
            retry_after: None,
        },
        // Zoho's own fault, or a record changed under us: may work next time.
        "INTERNAL_ERROR" | "ALREADY_MODIFIED" => ProviderError::Unavailable {
            provider,
            status: if status < 500 { 503 } else { status },
        },
        _ if status == 401 => ProviderError::Unauthorized { provider, code },
        _ if status >= 500 => ProviderError::Unavailable { provider, status },
        // DUPLICATE_DATA, MANDATORY_NOT_FOUND, INVALID_DATA, MAPPING_MISMATCH, RECORD_LOCKED,
        // NO_PERMISSION, ID_ALREADY_CONVERTED, LIMIT_EXCEEDED, ...: the same request will fail
        // the same way.
        _ => {
            let field = details
                .get("api_name")
                .or_else(|| details.get("param_name"))
                .and_then(Value::as_str)
                .filter(|f| {
                    f.len() <= 100 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            ProviderError::Rejected {
                provider,
                status,
                code: match field {
                    Some(field) => format!("{code} {field}"),
                    None => code,
                },
                message: message.chars().take(300).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            provider: Provider::Zoho,
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_success_record_gives_its_id_and_action() {
        let record = single_record(answer(
            200,
            r#"{"data":[{"code":"SUCCESS","duplicate_field":null,"action":"insert","details":{"id":"5725767000000524157"},"message":"record added","status":"success"}]}"#,
        ))
        .unwrap();
        assert_eq!(record.id().as_deref(), Some("5725767000000524157"));
        assert_eq!(record.action.as_deref(), Some("insert"));
    }

    #[test]
    fn a_record_error_inside_a_2xx_is_a_failure_naming_the_field() {
        let error = single_record(answer(
            207,
            r#"{"data":[{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"Last_Name","json_path":"$.data[0].Last_Name"},"message":"required field not found","status":"error"}]}"#,
        ))
        .unwrap_err();
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "zoho refused the request (HTTP 207, MANDATORY_NOT_FOUND Last_Name)"
        );
        let duplicate = single_record(answer(
            200,
            r#"{"data":[{"code":"DUPLICATE_DATA","details":{"api_name":"Email","id":"1"},"message":"duplicate data","status":"error"}]}"#,
        ))
        .unwrap_err();
        assert!(matches!(duplicate, ProviderError::Rejected { .. }));
    }

    #[test]
    fn request_level_errors_map_to_reauth_retry_or_refusal() {
        let token = single_record(answer(
            401,
            r#"{"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}"#,
        ))
        .unwrap_err();
        assert!(matches!(token, ProviderError::Unauthorized { .. }));
        let scope = single_record(answer(
            401,
            r#"{"code":"OAUTH_SCOPE_MISMATCH","details":{},"message":"x","status":"error"}"#,
        ))
        .unwrap_err();
        assert!(matches!(scope, ProviderError::InvalidGrant { .. }));
        let busy = single_record(answer(
            400,
            r#"{"code":"TOO_MANY_REQUESTS","details":{},"message":"x","status":"error"}"#,
        ))
        .unwrap_err();
        assert!(busy.is_retryable());
        let internal = single_record(answer(
            200,
            r#"{"data":[{"code":"INTERNAL_ERROR","details":{},"message":"x","status":"error"}]}"#,
        ))
        .unwrap_err();
        assert!(internal.is_retryable());
        let converted = single_record(answer(
            400,
            r#"{"code":"ID_ALREADY_CONVERTED","details":{"resource_path_index":1},"message":"id already converted","status":"error"}"#,
        ))
        .unwrap_err();
        assert!(!converted.is_retryable());
        assert!(converted.to_string().contains("ID_ALREADY_CONVERTED"));
    }

    #[test]
    fn a_multi_record_answer_gives_one_result_per_record_in_order() {
        let results = many_records(
            answer(
                207,
                r#"{"data":[{"code":"SUCCESS","action":"insert","details":{"id":"1"},"message":"record added","status":"success"},{"code":"MANDATORY_NOT_FOUND","details":{"api_name":"Last_Name","json_path":"$.data[1].Last_Name"},"message":"required field not found","status":"error"},{"code":"INTERNAL_ERROR","details":{},"message":"x","status":"error"}]}"#,
            ),
            3,
        )
        .unwrap();
        assert_eq!(results[0].as_ref().unwrap().id().as_deref(), Some("1"));
        let refused = results[1].as_ref().unwrap_err();
        assert!(!refused.is_retryable());
        assert!(refused
            .to_string()
            .contains("MANDATORY_NOT_FOUND Last_Name"));
        assert!(results[2].as_ref().unwrap_err().is_retryable());
    }

    #[test]
    fn a_multi_record_answer_of_the_wrong_length_or_a_request_error_fails_the_whole_call() {
        let short = many_records(
            answer(
                200,
                r#"{"data":[{"code":"SUCCESS","details":{"id":"1"},"message":"ok","status":"success"}]}"#,
            ),
            2,
        )
        .unwrap_err();
        assert!(matches!(short, ProviderError::Garbage { .. }));
        let throttled = many_records(
            answer(
                429,
                r#"{"code":"TOO_MANY_REQUESTS","details":{},"message":"x","status":"error"}"#,
            ),
            2,
        )
        .unwrap_err();
        assert!(matches!(throttled, ProviderError::Throttled { .. }));
    }

    #[test]
    fn garbage_and_empty_answers_are_not_successes() {
        assert!(matches!(
            single_record(answer(200, "<html>oops</html>")).unwrap_err(),
            ProviderError::Garbage { .. }
        ));
        assert!(matches!(
            single_record(answer(200, r#"{"data":[]}"#)).unwrap_err(),
            ProviderError::Garbage { .. }
        ));
        assert!(matches!(
            single_record(answer(404, "not here")).unwrap_err(),
            ProviderError::Rejected { status: 404, .. }
        ));
    }
}
