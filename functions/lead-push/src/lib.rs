//! `lead-push`: consumes the lead queue. The push itself arrives with the lead-push issue; until
//! then every message is handed back to SQS as a batch item failure, so that no lead is lost:
//! SQS retries it and, after the redrive policy's receive count, moves it to the DLQ.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::Services;

pub async fn handle(
    _services: &Services,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let request_id = event.context.request_id.clone();
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let message_id = record.message_id.unwrap_or_default();
        tracing::warn!(
            request_id = %request_id,
            message_id = %message_id,
            "lead push is not built yet; returning the message to the queue"
        );
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = message_id;
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}
