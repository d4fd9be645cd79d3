//! Sending a lead that cannot be pushed to the DLQ ourselves, with its reason as message
//! attributes, instead of letting SQS retry what can never succeed.

use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::Utc;

use super::{InboundMessage, MessageOutcome};
use crate::lead::LeadMessage;
use crate::services::Services;

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type is set")
}

/// Sends the original body to the DLQ with `reason`. If that fails (or no DLQ is configured),
/// the message is left to SQS's redrive, which moves it after the last receive.
pub(super) async fn send(
    services: &Services,
    message: &InboundMessage,
    parsed: Option<&LeadMessage>,
    reason: &str,
) -> MessageOutcome {
    tracing::error!(reason = %reason, "lead cannot be pushed; dead-lettering it");
    // A backfill lead goes to the backfill's own DLQ where there is one.
    let queue_url = match message.lane {
        super::Lane::Backfill => services
            .config
            .push
            .backfill_dead_letter_queue_url
            .as_deref()
            .or(services.config.push.dead_letter_queue_url.as_deref()),
        super::Lane::Live => services.config.push.dead_letter_queue_url.as_deref(),
    };
    let Some(queue_url) = queue_url else {
        return MessageOutcome::Retry {
            reason: format!("{reason} (no DEAD_LETTER_QUEUE_URL: left to the redrive policy)"),
        };
    };
    let reason_attr: String = reason.chars().take(1000).collect();
    let mut request = services
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(&message.body)
        .message_attributes("failure_reason", attribute(&reason_attr))
        .message_attributes("source_message_id", attribute(&message.message_id))
        .message_attributes("failed_at", attribute(&Utc::now().to_rfc3339()))
        .message_attributes(
            "receive_count",
            attribute(&message.receive_count.to_string()),
        );
    if let Some(parsed) = parsed {
        request = request
            .message_attributes("tenant_id", attribute(parsed.tenant_id.as_str()))
            .message_attributes("lead_id", attribute(&parsed.lead.id));
    }
    match request.send().await {
        Ok(_) => MessageOutcome::DeadLettered {
            reason: reason.to_string(),
        },
        Err(error) => {
            tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(&error), "could not reach the DLQ; leaving the message to SQS");
            MessageOutcome::Retry {
                reason: format!("{reason} (DLQ unreachable)"),
            }
        }
    }
}

/// Marks the lead's mapping at each failing destination as dead-lettered, for the sync status,
/// once the message is in the DLQ. One conditional update per failing destination (the
/// connection rows, read first, name the accounts that key the mappings); a destination with
/// no mapping (the push failed before its claim) stays unmarked. Best effort: the message is
/// in the DLQ either way, so a failure here is logged, never raised.
pub(super) async fn mark(
    services: &Services,
    parsed: Option<&LeadMessage>,
    failing: &[crate::registry::Provider],
    outcome: &MessageOutcome,
) {
    let (MessageOutcome::DeadLettered { reason }, Some(parsed)) = (outcome, parsed) else {
        return;
    };
    if failing.is_empty() {
        return;
    }
    let connections = match services.store.list_connections(&parsed.tenant_id).await {
        Ok(connections) => connections,
        Err(error) => {
            tracing::warn!(error = %error, "could not mark the dead-lettered lead's status");
            return;
        }
    };
    let mark = crate::store::DeadLettered {
        reason: reason.chars().take(1000).collect(),
        at: Utc::now(),
    };
    for connection in connections.iter().filter(|c| failing.contains(&c.provider)) {
        let Ok(account) = super::destination::account_of(connection) else {
            continue;
        };
        let key = crate::store::LeadKey {
            tenant: &parsed.tenant_id,
            provider: connection.provider,
            account: &account,
            lead_id: &parsed.lead.id,
        };
        if let Err(error) = services.store.mark_dead_lettered(key, &mark).await {
            tracing::warn!(error = %error, provider = %connection.provider, "could not mark the dead-lettered lead's status");
        }
    }
}
