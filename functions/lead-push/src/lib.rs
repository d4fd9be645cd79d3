//! `lead-push`: consumes the lead queue, pushes each lead into the tenant's CRMs, and reports
//! partial batch failures (`ReportBatchItemFailures`) so that one bad message never holds the
//! others back. Messages that can never succeed go to the DLQ with their reason.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use lambda_runtime::LambdaEvent;
use shared::push::{process_message, InboundMessage, MessageOutcome};
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
    let records = event.payload.records;
    let work = stream::iter(records)
        .map(|record| async move {
            let message = inbound(record);
            let outcome = process_message(services, &message).await;
            (message.message_id, outcome)
        })
        .buffer_unordered(services.config.push.concurrency)
        .collect::<Vec<(String, MessageOutcome)>>();
    let outcomes = deadline::within(until, work).instrument(span).await;
    let mut response = SqsBatchResponse::default();
    for (message_id, outcome) in outcomes {
        if !outcome.is_settled() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

fn inbound(record: SqsMessage) -> InboundMessage {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    InboundMessage {
        message_id: record.message_id.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        receive_count,
        ..Default::default()
    }
}
