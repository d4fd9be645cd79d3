//! `token-refresh`: refreshes every OAuth token that is due before the next run (plus a
//! margin), found through the sharded, sparse `by-refresh-due` index.
//!
//! Three events reach it: the EventBridge schedule ([`handle`]), which fans out one message per
//! index shard to the refresh-shard queue (or, without one, walks the shards itself), and
//! those messages ([`handle_shards`]), each walking one shard until the invocation's deadline.
//! Both run inside the Lambda context's deadline, so no refresh starts that could not finish.
//! The third is billing's plan change ([`handle_plan_change`]): stored per tenant, it is here
//! because this function already takes EventBridge events and has the table, nothing more.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
pub use shared::refresh::RefreshSummary;
use shared::refresh::{deadline, run_scheduled, run_shard, ShardWork};
use shared::Services;
use tracing::Instrument;

/// The scheduled run. Reports how many connections were refreshed, skipped and failed (or how
/// many shards were handed to the queue). Fails the invocation only when nothing could be
/// listed or handed off at all (EventBridge retries it then).
pub async fn handle(
    services: &Services,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RefreshSummary, lambda_runtime::Error> {
    let span = tracing::info_span!("token_refresh", request_id = %event.context.request_id);
    let until = deadline::from_epoch_ms(event.context.deadline);
    let now = chrono::Utc::now();
    let summary = deadline::within(until, async {
        // Consents nobody completed in time are revoked at their provider and deleted; a
        // failure here waits for the next run and never stops the refreshes.
        if let Err(error) = shared::connections::sweep_pending_connections(services, now).await {
            tracing::warn!(error = %error, "the sweep of pending connections failed; the next run retries");
        }
        run_scheduled(services, now).await
    })
    .instrument(span)
    .await?;
    Ok(summary)
}

/// Refresh-shard messages (`ShardWork` as JSON). A message whose shard could not be read, or
/// whose continuation could not be sent, is reported failed so that SQS delivers it again; a
/// body that is not a shard is dropped with an error log (the next scheduled run covers it).
pub async fn handle_shards(
    services: &Services,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let span = tracing::info_span!("token_refresh_shard", request_id = %event.context.request_id);
    let until = deadline::from_epoch_ms(event.context.deadline);
    let records = event.payload.records;
    let response = deadline::within(until, async {
        let mut response = SqsBatchResponse::default();
        for record in records {
            let id = record.message_id.clone().unwrap_or_default();
            let work: ShardWork = match serde_json::from_str(record.body.as_deref().unwrap_or(""))
            {
                Ok(work) => work,
                Err(error) => {
                    tracing::error!(message_id = %id, error = %error, "not a refresh-shard message; dropped");
                    continue;
                }
            };
            let bucket = work.bucket.clone();
            if let Err(error) = run_shard(services, work).await {
                tracing::warn!(message_id = %id, bucket = %bucket, error = %error, "shard walk failed; SQS retries it");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    })
    .instrument(span)
    .await;
    Ok(response)
}

/// What became of a billing plan change.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct PlanChangeOutcome {
    /// Stored; `false` for a change not newer than the stored one (out of order, or again).
    pub applied: bool,
    /// Why the event was dropped as unreadable, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Billing's `Tenant Plan Changed` event: the plan is stored for the tenant unless a change at
/// the same or a later `changed_at` is stored already. A detail that does not read is logged
/// and dropped (it will not read better on a retry); a storage failure fails the invocation, so
/// EventBridge's asynchronous invocation retries it.
pub async fn handle_plan_change(
    services: &Services,
    detail: &Value,
) -> Result<PlanChangeOutcome, lambda_runtime::Error> {
    let change = match shared::plan::PlanChange::from_detail(detail) {
        Ok(change) => change,
        Err(reason) => {
            tracing::error!(reason = %reason, "billing plan change dropped: it does not read");
            return Ok(PlanChangeOutcome {
                applied: false,
                refused: Some(reason),
            });
        }
    };
    let applied = services
        .store
        .record_plan_change(&change.tenant, change.plan, change.changed_at)
        .await?;
    tracing::info!(
        tenant = %change.tenant,
        plan = %change.plan,
        changed_at = %change.changed_at,
        applied,
        "billing plan change"
    );
    Ok(PlanChangeOutcome {
        applied,
        refused: None,
    })
}

/// What `main` registers: an SQS event (it has `Records`) goes to [`handle_shards`], billing's
/// plan change to [`handle_plan_change`], anything else is the schedule. Boxed: the refresh futures are too deep for the compiler's layout
/// query otherwise.
pub async fn handle_any(
    services: &Services,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    if payload.get("Records").is_some() {
        let sqs: SqsEvent = serde_json::from_value(payload)?;
        let response = Box::pin(handle_shards(services, LambdaEvent::new(sqs, context))).await?;
        Ok(serde_json::to_value(response)?)
    } else if payload.get("source").and_then(Value::as_str) == Some(shared::plan::BILLING_SOURCE)
        && payload.get("detail-type").and_then(Value::as_str) == Some(shared::plan::PLAN_CHANGED)
    {
        let detail = payload.get("detail").cloned().unwrap_or(Value::Null);
        Ok(serde_json::to_value(
            handle_plan_change(services, &detail).await?,
        )?)
    } else {
        let schedule: EventBridgeEvent = serde_json::from_value(payload)?;
        let summary = Box::pin(handle(services, LambdaEvent::new(schedule, context))).await?;
        Ok(serde_json::to_value(summary)?)
    }
}
