//! `token-refresh`: runs on the EventBridge schedule. The scheduled refresh arrives with the
//! token-refresh issue; until then tokens are refreshed lazily when a connection is used.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use shared::Services;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RefreshSummary {
    pub refreshed: u32,
    pub skipped: u32,
    pub failed: u32,
}

pub async fn handle(
    _services: &Services,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<RefreshSummary, lambda_runtime::Error> {
    tracing::warn!(
        request_id = %event.context.request_id,
        "scheduled token refresh is not built yet; tokens are refreshed when used"
    );
    Ok(RefreshSummary::default())
}
