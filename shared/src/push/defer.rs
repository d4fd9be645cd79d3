//! Deferring a lead whose CRM account has no capacity right now (the shared limiter said no,
//! or the CRM answered 429 with a reset time).
//!
//! Leaving such a message in flight would make it wait out the queue's whole visibility
//! timeout (750 s) and spend one of its receives, so a throttled lead could end in the DLQ.
//! Instead the body is sent again to its lane's queue with `DelaySeconds` set to exactly the
//! wait asked for, and the caller deletes the original (reports it settled). Deferrals never
//! count towards dead-lettering: the new message starts at receive 1 and carries how often it
//! was deferred in `leadrelay-deferrals`.
//!
//! SQS delays a message by at most 900 s. A later `until` is carried in
//! `leadrelay-not-before`; the delivery that arrives before it is deferred again, without a CRM
//! call (see [`not_before`]).
//!
//! If the send fails, [`defer`] returns the error and the caller reports a batch item failure:
//! the original then comes back after its visibility timeout, so nothing is lost.

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};

use super::{InboundMessage, Lane};
use crate::error::{ConfigError, Error, QueueError};
use crate::services::Services;

/// Message attribute: how many times the lead was deferred (a `Number`).
pub const DEFERRALS_ATTRIBUTE: &str = "leadrelay-deferrals";
/// Message attribute: not to be pushed before this instant (RFC 3339), when that was further
/// away than SQS can delay a message.
pub const NOT_BEFORE_ATTRIBUTE: &str = "leadrelay-not-before";
/// Message attribute: why it was deferred (for whoever looks at the queue; not read back).
pub const REASON_ATTRIBUTE: &str = "leadrelay-deferred-reason";
/// The longest `DelaySeconds` SQS takes (15 minutes).
pub const MAX_DELAY_SECONDS: i32 = 900;

/// How a deferral to `until`, made at `now`, is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferral {
    /// The message's `DelaySeconds`: the wait rounded up (never early), at most 900.
    pub delay_seconds: i32,
    /// Set when `until` is beyond what the delay covers.
    pub not_before: Option<DateTime<Utc>>,
}

impl Deferral {
    pub fn plan(until: DateTime<Utc>, now: DateTime<Utc>) -> Deferral {
        let millis = (until - now).num_milliseconds().max(0);
        let seconds = (millis + 999) / 1000;
        if seconds > i64::from(MAX_DELAY_SECONDS) {
            Deferral {
                delay_seconds: MAX_DELAY_SECONDS,
                not_before: Some(until),
            }
        } else {
            Deferral {
                delay_seconds: seconds as i32,
                not_before: None,
            }
        }
    }
}

/// Sends `message`'s body again to its lane's queue, invisible until `until` (or 900 s, with
/// the rest carried in [`NOT_BEFORE_ATTRIBUTE`]), in the same message group (the tenant, for
/// fair queues), with [`DEFERRALS_ATTRIBUTE`] one higher than the message's.
///
/// On `Ok` the caller deletes the original (it is settled); on `Err` it reports a batch item
/// failure, so SQS delivers the original again.
pub async fn defer(
    services: &Services,
    message: &InboundMessage,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<(), Error> {
    let queue_url = services
        .config
        .queue_url(message.lane)
        .ok_or(Error::Config(ConfigError::Missing(queue_variable(
            message.lane,
        ))))?;
    let deferral = Deferral::plan(until, Utc::now());
    let deferrals = message.deferrals.saturating_add(1);
    let reason: String = reason.chars().take(256).collect();
    let mut request = services
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(&message.body)
        .delay_seconds(deferral.delay_seconds)
        .message_attributes(DEFERRALS_ATTRIBUTE, number(deferrals))
        .message_attributes(REASON_ATTRIBUTE, string(&reason));
    if let Some(not_before) = deferral.not_before {
        request =
            request.message_attributes(NOT_BEFORE_ATTRIBUTE, string(&not_before.to_rfc3339()));
    }
    if let Some(group) = group_of(message) {
        request = request.message_group_id(group);
    }
    request
        .send()
        .await
        .map_err(|e| QueueError::from_sdk("SendMessage", e))?;
    tracing::info!(
        lane = %message.lane,
        delay_seconds = deferral.delay_seconds,
        deferrals,
        reason = %reason,
        "lead deferred"
    );
    Ok(())
}

/// The variable naming the queue of `lane`.
pub fn queue_variable(lane: Lane) -> &'static str {
    match lane {
        Lane::Live => "LEAD_QUEUE_URL",
        Lane::Backfill => "BACKFILL_QUEUE_URL",
    }
}

/// The message group a re-sent message keeps: the one it came with, else the tenant named in
/// its body (a producer that predates the contract), else none.
fn group_of(message: &InboundMessage) -> Option<String> {
    if let Some(group) = message.group_id.as_deref().filter(|g| !g.is_empty()) {
        return Some(group.to_string());
    }
    #[derive(serde::Deserialize)]
    struct Tenant {
        tenant_id: String,
    }
    serde_json::from_str::<Tenant>(&message.body)
        .ok()
        .map(|t| t.tenant_id)
        .filter(|t| !t.is_empty())
}

/// [`NOT_BEFORE_ATTRIBUTE`] of a delivered message, given its message attributes as (name,
/// string value) pairs (Lambda's `SqsMessage::message_attributes`). `None` when absent or not
/// a valid instant: a lead is never held back on a value it cannot read.
pub fn not_before<'a>(
    attributes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<DateTime<Utc>> {
    attribute(attributes, NOT_BEFORE_ATTRIBUTE)
        .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// [`DEFERRALS_ATTRIBUTE`] of a delivered message (0 when absent or unreadable).
pub fn deferrals<'a>(attributes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> u32 {
    attribute(attributes, DEFERRALS_ATTRIBUTE)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn attribute<'a>(
    attributes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    name: &str,
) -> Option<&'a str> {
    attributes
        .into_iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v)
}

fn string(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

fn number(value: u32) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(value.to_string())
        .build()
        .expect("data type is set")
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn the_delay_is_the_wait_rounded_up_and_never_negative() {
        let now = at(1_000);
        assert_eq!(
            Deferral::plan(now + Duration::seconds(10), now).delay_seconds,
            10
        );
        assert_eq!(
            Deferral::plan(now + Duration::milliseconds(10_200), now).delay_seconds,
            11,
            "never delivered before the time asked for"
        );
        assert_eq!(
            Deferral::plan(now - Duration::seconds(5), now),
            Deferral {
                delay_seconds: 0,
                not_before: None
            }
        );
        assert_eq!(
            Deferral::plan(now + Duration::seconds(900), now),
            Deferral {
                delay_seconds: 900,
                not_before: None
            }
        );
    }

    #[test]
    fn a_wait_beyond_fifteen_minutes_is_carried_in_not_before() {
        let now = at(1_000);
        let until = now + Duration::seconds(3_600);
        assert_eq!(
            Deferral::plan(until, now),
            Deferral {
                delay_seconds: 900,
                not_before: Some(until)
            }
        );
    }

    #[test]
    fn the_attributes_are_read_back_and_bad_values_ignored() {
        let until = "2026-12-06T22:00:00+00:00";
        let attributes = [
            ("other", Some("x")),
            (NOT_BEFORE_ATTRIBUTE, Some(until)),
            (DEFERRALS_ATTRIBUTE, Some("3")),
        ];
        assert_eq!(
            not_before(attributes),
            Some(
                DateTime::parse_from_rfc3339(until)
                    .unwrap()
                    .with_timezone(&Utc)
            )
        );
        assert_eq!(deferrals(attributes), 3);
        let bad = [
            (NOT_BEFORE_ATTRIBUTE, Some("tomorrow")),
            (DEFERRALS_ATTRIBUTE, Some("-1")),
        ];
        assert_eq!(not_before(bad), None);
        assert_eq!(deferrals(bad), 0);
        assert_eq!(not_before([(NOT_BEFORE_ATTRIBUTE, None)]), None);
        assert_eq!(deferrals(std::iter::empty()), 0);
    }

    #[test]
    fn the_group_is_kept_else_taken_from_the_body() {
        let mut message = InboundMessage {
            body: r#"{"version":1,"tenant_id":"tenant-a"}"#.into(),
            group_id: Some("tenant-b".into()),
            ..Default::default()
        };
        assert_eq!(group_of(&message).as_deref(), Some("tenant-b"));
        message.group_id = None;
        assert_eq!(group_of(&message).as_deref(), Some("tenant-a"));
        message.body = "not json".into();
        assert_eq!(group_of(&message), None);
    }
}
