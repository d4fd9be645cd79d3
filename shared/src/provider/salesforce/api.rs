//! Talking to an org's REST API: every call goes through [`send`], which reads
//! `Sforce-Limit-Info` and stops spending the org's daily allocation once it runs low; error
//! arrays become [`ProviderError`]s; composite requests and SOQL queries.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::account::ORG_ID;
use crate::error::ProviderError;
use crate::http::{HttpResponse, Idempotency, OutboundRequest};
use crate::provider::Session;
use crate::registry::Provider;

/// Above this share of the org's rolling 24-hour API allocation, pushes stop and wait: the
/// rest belongs to the customer's own users and integrations.
pub(super) const USAGE_CEILING_PERCENT: u64 = 90;
/// How long a reading above the ceiling holds pushes back before one call looks again.
const HOLD_BACK: Duration = Duration::from_secs(15 * 60);

/// `(used, allowed, when read)` per org.
type Readings = Mutex<HashMap<String, (u64, u64, Instant)>>;

/// The latest `api-usage=N/M` reading per org, in this process.
fn readings() -> &'static Readings {
    static READINGS: OnceLock<Readings> = OnceLock::new();
    READINGS.get_or_init(Mutex::default)
}

/// `(used, allowed)` from `Sforce-Limit-Info: api-usage=18/15000` (other entries may follow).
pub(super) fn api_usage(header: &str) -> Option<(u64, u64)> {
    header.split(',').find_map(|part| {
        let (used, allowed) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
        Some((used.trim().parse().ok()?, allowed.trim().parse().ok()?))
    })
}

fn above_ceiling(used: u64, allowed: u64) -> bool {
    allowed > 0 && used * 100 >= allowed * USAGE_CEILING_PERCENT
}

/// Refuses to call while the org's last reading is above the ceiling (until it is stale).
fn check_allocation(org: &str) -> Result<(), ProviderError> {
    let readings = readings().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((used, allowed, at)) = readings.get(org) {
        if above_ceiling(*used, *allowed) && at.elapsed() < HOLD_BACK {
            tracing::warn!(
                used,
                allowed,
                "Salesforce API usage is near the org's daily allocation; holding the push back"
            );
            return Err(ProviderError::Throttled {
                provider: Provider::Salesforce,
                retry_after: Some(HOLD_BACK - at.elapsed()),
            });
        }
    }
    Ok(())
}

fn record_usage(org: &str, response: &HttpResponse) {
    let Some((used, allowed)) = response
        .headers
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .and_then(api_usage)
    else {
        return;
    };
    tracing::debug!(used, allowed, "Salesforce API usage");
    if above_ceiling(used, allowed) {
        tracing::warn!(used, allowed, "Salesforce API usage passed the ceiling");
    }
    readings()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(org.to_string(), (used, allowed, Instant::now()));
}

/// Sends one call on the org's API, unless its allocation is nearly spent.
pub(super) async fn send(
    session: &Session<'_>,
    request: OutboundRequest,
) -> Result<HttpResponse, ProviderError> {
    let org = session.account.get(ORG_ID).cloned().unwrap_or_default();
    check_allocation(&org)?;
    let response = session.http.send(request).await?;
    record_usage(&org, &response);
    Ok(response)
}

/// One entry of Salesforce's error array (`errorCode` on REST, `statusCode` in collections).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ApiError {
    #[serde(alias = "statusCode", rename = "errorCode", default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
    /// `DUPLICATES_DETECTED`'s detail, in Salesforce's own spelling.
    #[serde(rename = "duplicateResut", default)]
    pub duplicate_result: Option<Value>,
}

/// Errors the org's schema explains: a described field that is gone or changed.
pub(super) const SCHEMA_ERRORS: [&str; 5] = [
    "INVALID_FIELD",
    "INVALID_FIELD_FOR_INSERT_UPDATE",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "REQUIRED_FIELD_MISSING",
    "INVALID_TYPE",
];

/// Errors that may pass on another try.
const TRANSIENT_ERRORS: [&str; 3] = [
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "REQUEST_RUNNING_TOO_LONG",
];

pub(super) fn errors_in(body: &Value) -> Vec<ApiError> {
    match body {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| serde_json::from_value(item.clone()).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// The error a failed answer (or subrequest) stands for: the session is over (refresh and try
/// again), the allocation is spent (wait), a lock or outage (retry), or a refusal naming the
/// code and the fields involved (permanent).
pub(super) fn failure(status: u16, errors: &[ApiError]) -> ProviderError {
    let provider = Provider::Salesforce;
    let Some(first) = errors.first() else {
        return ProviderError::Rejected {
            provider,
            status,
            code: format!("http_{status}"),
            message: String::new(),
        };
    };
    match first.code.as_str() {
        "INVALID_SESSION_ID" => ProviderError::Unauthorized {
            provider,
            code: first.code.clone(),
        },
        "REQUEST_LIMIT_EXCEEDED" => ProviderError::Throttled {
            provider,
            retry_after: None,
        },
        code if TRANSIENT_ERRORS.contains(&code) => ProviderError::Unavailable { provider, status },
        code => ProviderError::Rejected {
            provider,
            status,
            code: if first.fields.is_empty() {
                code.to_string()
            } else {
                format!("{code} {}", first.fields.join(","))
            },
            message: first.message.chars().take(300).collect(),
        },
    }
}

/// Whether a refusal carries Salesforce's `code` (the fields it names may follow).
pub(super) fn has_code(error: &ProviderError, wanted: &str) -> bool {
    matches!(error, ProviderError::Rejected { code, .. }
        if code.split(' ').next() == Some(wanted))
}

/// Whether a push failure says our description of the org is out of date.
pub(super) fn is_schema_error(error: &ProviderError) -> bool {
    SCHEMA_ERRORS.iter().any(|c| has_code(error, c))
}

/// A 2xx answer's JSON, or the error its array stands for.
pub(super) fn read(response: HttpResponse) -> Result<Value, ProviderError> {
    if response.is_success() {
        if response.body.is_empty() {
            return Ok(Value::Null);
        }
        return response.json();
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    Err(failure(response.status, &errors_in(&body)))
}

/// The full path of an API resource (`/services/data/v62.0` + `resource`), for composite
/// subrequests.
pub(super) fn path_of(session: &Session<'_>, resource: &str) -> String {
    format!(
        "{}{resource}",
        session.api_base.path().trim_end_matches('/')
    )
}

/// One subrequest of a composite call.
pub(super) struct Subrequest {
    pub method: &'static str,
    /// Under the API base: `/sobjects/Lead`, `/query?q=...`.
    pub resource: String,
    pub reference: &'static str,
    pub body: Option<Value>,
}

/// A subrequest's answer.
#[derive(Debug, Deserialize)]
pub(super) struct SubResult {
    #[serde(rename = "httpStatusCode")]
    pub status: u16,
    #[serde(default)]
    pub body: Value,
    #[serde(rename = "referenceId")]
    pub reference: String,
}

impl SubResult {
    /// The subrequest's body, or the error it stands for.
    pub fn into_result(self) -> Result<Value, ProviderError> {
        if (200..300).contains(&self.status) {
            Ok(self.body)
        } else {
            Err(failure(self.status, &errors_in(&self.body)))
        }
    }
}

/// `POST /composite`: up to 25 subrequests in one API call, later ones able to use earlier
/// results (`@{ref.id}`). With `all_or_none`, a failure rolls every write back; the first real
/// error (not the `PROCESSING_HALTED` of the others) is what the caller gets.
pub(super) async fn composite(
    session: &Session<'_>,
    operation: &'static str,
    all_or_none: bool,
    subrequests: Vec<Subrequest>,
    idempotency: Idempotency,
) -> Result<Vec<SubResult>, ProviderError> {
    let requests: Vec<Value> = subrequests
        .iter()
        .map(|s| {
            let mut entry = json!({
                "method": s.method,
                "url": path_of(session, &s.resource),
                "referenceId": s.reference,
            });
            if let Some(body) = &s.body {
                entry["body"] = body.clone();
            }
            entry
        })
        .collect();
    let request = session
        .request(operation, Method::POST, "/composite")
        .json(json!({ "allOrNone": all_or_none, "compositeRequest": requests }))
        .idempotency(idempotency);
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "compositeResponse")]
        results: Vec<SubResult>,
    }
    let answer: Answer =
        serde_json::from_value(read(send(session, request).await?)?).map_err(|_| {
            ProviderError::Garbage {
                provider: Provider::Salesforce,
                status: 200,
                detail: "the composite answer has no compositeResponse".into(),
            }
        })?;
    if answer.results.len() != subrequests.len() {
        return Err(ProviderError::Garbage {
            provider: Provider::Salesforce,
            status: 200,
            detail: "the composite answer has another number of results".into(),
        });
    }
    if all_or_none {
        let failed = answer.results.iter().find(|r| {
            !(200..300).contains(&r.status)
                && errors_in(&r.body)
                    .first()
                    .is_none_or(|e| e.code != "PROCESSING_HALTED")
        });
        if let Some(failed) = failed {
            return Err(failure(failed.status, &errors_in(&failed.body)));
        }
    }
    Ok(answer.results)
}

/// A SOQL query as a composite subrequest's resource.
pub(super) fn query_resource(soql: &str) -> String {
    let mut url = url::Url::parse("https://x/query").expect("constant");
    url.query_pairs_mut().append_pair("q", soql);
    format!("/query?{}", url.query().unwrap_or_default())
}

/// The `records` of a query answer.
pub(super) fn records(answer: &Value) -> Vec<Value> {
    answer
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usage_header_is_read_and_the_ceiling_applies() {
        assert_eq!(api_usage("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            api_usage("per-app-api-usage=1/100(appName=x), api-usage=14000/15000"),
            Some((14000, 15000))
        );
        assert_eq!(api_usage("garbage"), None);
        assert!(!above_ceiling(13_499, 15_000));
        assert!(above_ceiling(13_500, 15_000));
        assert!(!above_ceiling(5, 0));
    }

    #[test]
    fn error_arrays_map_to_reauth_throttling_retry_or_refusal() {
        let errors = |body: &str| errors_in(&serde_json::from_str(body).unwrap());
        assert!(matches!(
            failure(
                401,
                &errors(
                    r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
                )
            ),
            ProviderError::Unauthorized { .. }
        ));
        assert!(failure(
            403,
            &errors(r#"[{"message":"x","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#)
        )
        .is_retryable());
        assert!(failure(
            400,
            &errors(r#"[{"message":"x","errorCode":"UNABLE_TO_LOCK_ROW"}]"#)
        )
        .is_retryable());
        let missing = failure(
            400,
            &errors(
                r#"[{"message":"Required fields are missing: [Company]","errorCode":"REQUIRED_FIELD_MISSING","fields":["Company"]}]"#,
            ),
        );
        assert!(!missing.is_retryable());
        assert!(
            missing
                .to_string()
                .contains("REQUIRED_FIELD_MISSING Company"),
            "{missing}"
        );
        assert!(is_schema_error(&missing));
        let collections = errors(r#"[{"statusCode":"INVALID_FIELD","message":"x","fields":[]}]"#);
        assert_eq!(collections[0].code, "INVALID_FIELD");
        assert!(!is_schema_error(&failure(
            400,
            &errors(r#"[{"errorCode":"DUPLICATES_DETECTED","message":"x"}]"#)
        )));
    }
}
