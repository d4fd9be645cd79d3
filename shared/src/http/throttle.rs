//! Reading a provider's answer: done, throttled (in the provider's own dialect) or transient.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::registry::ThrottleSignal;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx, or a 4xx for the caller to interpret.
    Done,
    /// The provider asks us to slow down. `give_up` when waiting inside this invocation is
    /// pointless (a daily quota).
    Throttled {
        retry_after: Option<Duration>,
        give_up: bool,
    },
    /// A 5xx: may work on another attempt.
    Transient,
}

pub fn classify(
    signals: &[ThrottleSignal],
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    let has = |s: ThrottleSignal| signals.contains(&s);
    let throttled = |give_up: bool| Verdict::Throttled {
        retry_after: super::retry::retry_after(headers),
        give_up,
    };
    match status {
        // Zoho's token endpoint answers HTTP 200 {"error":"Access Denied"} when the
        // access-token minting limit is hit, and stays blocked for the rest of its 10-minute
        // window: asking again within this invocation would only prolong it.
        200..=299 if has(ThrottleSignal::ZohoNonStandard) && zoho_access_denied(body) => {
            throttled(true)
        }
        200..=299 => Verdict::Done,
        429 => {
            let daily =
                has(ThrottleSignal::HubSpotRateLimitHeaders) && contains(body, b"\"DAILY\"");
            throttled(daily)
        }
        403 if has(ThrottleSignal::SalesforceRequestLimit)
            && contains(body, b"REQUEST_LIMIT_EXCEEDED") =>
        {
            // Salesforce's limit is a rolling 24 h allocation: no point waiting here.
            throttled(true)
        }
        // SOAP reports every error as a 500 fault; the fault code says what it is. A fault is
        // an answer for the caller to read (an expired session is not an outage), except the
        // request limit, which is throttling as above.
        500 if has(ThrottleSignal::SalesforceRequestLimit) && contains(body, b"faultcode>") => {
            if contains(body, b"REQUEST_LIMIT_EXCEEDED") {
                throttled(true)
            } else {
                Verdict::Done
            }
        }
        400 if has(ThrottleSignal::ZohoNonStandard) && zoho_access_denied(body) => throttled(true),
        400 if has(ThrottleSignal::ZohoNonStandard) && contains(body, b"TOO_MANY_REQUESTS") => {
            throttled(false)
        }
        503 if has(ThrottleSignal::Bitrix24QueryLimit)
            && contains(body, b"QUERY_LIMIT_EXCEEDED") =>
        {
            throttled(false)
        }
        500..=599 => Verdict::Transient,
        _ => Verdict::Done,
    }
}

fn zoho_access_denied(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    value
        .get("error")
        .and_then(|e| e.as_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("access denied"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use ThrottleSignal::*;

    fn verdict(signals: &[ThrottleSignal], status: u16, body: &str) -> Verdict {
        classify(signals, status, &HeaderMap::new(), body.as_bytes())
    }

    fn is_throttled(v: &Verdict) -> bool {
        matches!(v, Verdict::Throttled { .. })
    }

    #[test]
    fn hubspot_429_is_throttled_and_daily_limits_give_up() {
        let ten = verdict(
            &[Status429, HubSpotRateLimitHeaders],
            429,
            r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#,
        );
        assert_eq!(
            ten,
            Verdict::Throttled {
                retry_after: None,
                give_up: false
            }
        );
        let daily = verdict(
            &[Status429, HubSpotRateLimitHeaders],
            429,
            r#"{"policyName":"DAILY"}"#,
        );
        assert_eq!(
            daily,
            Verdict::Throttled {
                retry_after: None,
                give_up: true
            }
        );
    }

    #[test]
    fn retry_after_is_carried_on_a_429() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(
            classify(&[Status429], 429, &headers, b""),
            Verdict::Throttled {
                retry_after: Some(Duration::from_secs(3)),
                give_up: false
            }
        );
    }

    #[test]
    fn salesforce_request_limit_403_is_throttling_but_other_403s_are_not() {
        let limit =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(is_throttled(&verdict(
            &[SalesforceRequestLimit],
            403,
            limit
        )));
        let denied = r#"[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert_eq!(
            verdict(&[SalesforceRequestLimit], 403, denied),
            Verdict::Done
        );
        assert_eq!(
            verdict(&[Status429], 403, limit),
            Verdict::Done,
            "only for Salesforce"
        );
    }

    #[test]
    fn salesforce_soap_faults_are_answers_except_the_request_limit() {
        let fault = |code: &str| {
            format!("<soapenv:Envelope><soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>x</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>")
        };
        let signals = &[SalesforceRequestLimit];
        assert_eq!(
            verdict(signals, 500, &fault("INVALID_SESSION_ID")),
            Verdict::Done
        );
        assert!(is_throttled(&verdict(
            signals,
            500,
            &fault("REQUEST_LIMIT_EXCEEDED")
        )));
        assert_eq!(
            verdict(signals, 500, "<html>down</html>"),
            Verdict::Transient
        );
        assert_eq!(
            verdict(&[Status429], 500, &fault("INVALID_SESSION_ID")),
            Verdict::Transient,
            "only for Salesforce"
        );
    }

    #[test]
    fn bitrix24_query_limit_503_is_throttling_other_503s_are_transient() {
        let limit = r#"{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}"#;
        assert!(is_throttled(&verdict(&[Bitrix24QueryLimit], 503, limit)));
        assert_eq!(
            verdict(&[Bitrix24QueryLimit], 503, "oops"),
            Verdict::Transient
        );
    }

    #[test]
    fn zoho_access_denied_is_throttling_even_on_http_200() {
        let denied = r#"{"error":"Access Denied","error_description":"You have made too many requests continuously."}"#;
        // Blocked for the rest of a 10-minute window: not waited out within the call.
        let blocked = Verdict::Throttled {
            retry_after: None,
            give_up: true,
        };
        assert_eq!(verdict(&[ZohoNonStandard], 200, denied), blocked);
        assert_eq!(verdict(&[ZohoNonStandard], 400, denied), blocked);
        assert_eq!(
            verdict(&[ZohoNonStandard], 400, r#"{"code":"TOO_MANY_REQUESTS"}"#),
            Verdict::Throttled {
                retry_after: None,
                give_up: false
            }
        );
        assert_eq!(
            verdict(&[ZohoNonStandard], 200, r#"{"access_token":"x"}"#),
            Verdict::Done
        );
        assert_eq!(
            verdict(&[Status429], 200, denied),
            Verdict::Done,
            "only for Zoho"
        );
    }

    #[test]
    fn server_errors_are_transient_and_client_errors_are_done() {
        assert_eq!(verdict(&[Status429], 500, ""), Verdict::Transient);
        assert_eq!(verdict(&[Status429], 502, ""), Verdict::Transient);
        assert_eq!(verdict(&[Status429], 400, ""), Verdict::Done);
        assert_eq!(verdict(&[Status429], 404, ""), Verdict::Done);
        assert_eq!(
            verdict(&[Status429], 429, ""),
            Verdict::Throttled {
                retry_after: None,
                give_up: false
            }
        );
    }
}
