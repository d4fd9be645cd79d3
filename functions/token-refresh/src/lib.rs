//! `token-refresh`: runs on the EventBridge schedule and refreshes every OAuth token that is due
//! before the next run (plus a margin), found through the sparse `by-refresh-due` index.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use shared::refresh::run_scheduled;
pub use shared::refresh::RefreshSummary;
use shared::Services;
use tracing::Instrument;

/// Reports how many connections were refreshed, skipped and failed. Fails the invocation only
/// when the due connections could not be listed at all (EventBridge retries it then).
pub async fn handle(
    services: &Services,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RefreshSummary, lambda_runtime::Error> {
    let span = tracing::info_span!("token_refresh", request_id = %event.context.request_id);
    let summary = run_scheduled(services, chrono::Utc::now())
        .instrument(span)
        .await?;
    Ok(summary)
}
