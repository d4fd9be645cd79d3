//! `lead-push`: consumes the lead queue (and the backfill queue), pushes each invocation's
//! leads into the tenants' CRMs in batches (see `shared::push::process_batch`), and reports
//! partial batch failures (`ReportBatchItemFailures`) so that one bad message never holds the
//! others back. Messages that can never succeed go to the DLQ with their reason; throttled
//! ones are deferred (sent again, delayed as long as the CRM asked) and settled.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use lambda_runtime::LambdaEvent;
use shared::push::defer;
use shared::push::{process_batch, InboundMessage, MessageOutcome};
use shared::refresh::deadline;
use shared::Services;
use tracing::Instrument;

pub async fn handle(
    services: &Services,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let span = tracing::info_span!("lead_push", request_id = %event.context.request_id);
    // No rotating refresh starts that the invocation's deadline could cut short.
    let until = deadline::from_epoch_ms(event.context.deadline);
    let now = Utc::now();
    let mut messages = Vec::new();
    // Delivered before the instant a deferral asked for (longer than SQS can delay): deferred
    // again, with no CRM call.
    let mut early = Vec::new();
    for record in event.payload.records {
        let (message, not_before) = inbound(services, record);
        match not_before {
            Some(at) if at > now => early.push((message, at)),
            _ => messages.push(message),
        }
    }
    let work = async {
        // Outcomes come back in the order of the messages.
        let kept = messages.clone();
        let mut outcomes: Vec<(InboundMessage, MessageOutcome)> = kept
            .into_iter()
            .zip(process_batch(services, messages).await)
            .map(|(message, (_, outcome))| (message, outcome))
            .collect();
        for (message, at) in early {
            let outcome = MessageOutcome::Deferred {
                until: at,
                reason: "not to be pushed before this instant".into(),
            };
            outcomes.push((message, outcome));
        }
        // Deferred messages are sent again, delayed; each is settled only once that worked.
        stream::iter(outcomes)
            .map(|(message, outcome)| async move {
                let settled = match &outcome {
                    MessageOutcome::Deferred { until, reason } => {
                        defer_message(services, &message, *until, reason).await
                    }
                    other => other.is_settled(),
                };
                (message.message_id, settled)
            })
            .buffer_unordered(services.config.push.concurrency.max(1))
            .collect::<Vec<(String, bool)>>()
            .await
    };
    let outcomes = deadline::within(until, work).instrument(span).await;
    let mut response = SqsBatchResponse::default();
    for (message_id, settled) in outcomes {
        if !settled {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

/// Sends a deferred message again, to arrive at `until`. Whether the original is settled: when
/// the send failed, SQS delivers the original again after its visibility timeout.
async fn defer_message(
    services: &Services,
    message: &InboundMessage,
    until: DateTime<Utc>,
    reason: &str,
) -> bool {
    match defer::defer(services, message, until, reason).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(error = %error, message_id = %message.message_id, "could not defer the throttled lead; SQS will deliver it again");
            false
        }
    }
}

/// The message as the push reads it, and the instant it must not be pushed before (a
/// deferral's `leadrelay-not-before`).
fn inbound(services: &Services, record: SqsMessage) -> (InboundMessage, Option<DateTime<Utc>>) {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let sent_at = record
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    let group_id = record
        .attributes
        .get("MessageGroupId")
        .filter(|g| !g.is_empty())
        .cloned();
    let attributes = || {
        record
            .message_attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value.string_value.as_deref()))
    };
    let deferrals = defer::deferrals(attributes());
    let not_before = defer::not_before(attributes());
    let lane = services.config.lane_of(record.event_source_arn.as_deref());
    let message = InboundMessage {
        message_id: record.message_id.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count,
        lane,
        group_id,
        sent_at,
        deferrals,
    };
    (message, not_before)
}
