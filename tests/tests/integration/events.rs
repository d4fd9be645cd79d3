//! Every sample in events/ is a valid event for its function and drives the real handler.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Context, LambdaEvent};
use relay_tests::context::TestContext;
use relay_tests::events::{self, ApiEvent};

#[tokio::test]
async fn every_api_sample_event_parses_and_gets_a_json_answer() {
    let ctx = TestContext::new().await;
    let dir = events::events_dir().join("connections-api");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = format!(
            "connections-api/{}",
            entry.unwrap().file_name().to_string_lossy()
        );
        let response = ctx.api(ApiEvent::sample(&name)).await;
        assert!(
            response.body["error"].is_string() || response.status == 200,
            "{name}: {}",
            response.body
        );
        assert_ne!(response.status, 500, "{name}");
        seen += 1;
    }
    assert!(seen >= 6);
    let list = ctx.api(ApiEvent::sample("connections-api/list.json")).await;
    assert_eq!(list.status, 200);
}

#[tokio::test]
async fn the_callback_samples_redirect_to_the_setup_page() {
    let ctx = TestContext::new().await;
    for name in [
        "oauth-callback/callback.json",
        "oauth-callback/access-denied.json",
    ] {
        let response = oauth_callback::handle(&ctx.services, ApiEvent::sample(name).request())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302);
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("https://app.leadrelay.test/settings/integrations?"),
            "{location}"
        );
        // The samples' state was never issued.
        assert!(location.contains("reason=invalid_state"), "{location}");
    }
}

#[tokio::test]
async fn the_sqs_sample_drives_lead_push_and_settles() {
    let ctx = TestContext::new().await;
    let event: SqsEvent = serde_json::from_value(events::load("lead-push/sqs-batch.json")).unwrap();
    assert!(!event.records.is_empty());
    let response = lead_push::handle(&ctx.services, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    // The sample's tenant has no connection here: nothing to push, nothing to retry.
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn the_schedule_sample_drives_token_refresh() {
    let ctx = TestContext::new().await;
    let event: EventBridgeEvent =
        serde_json::from_value(events::load("token-refresh/schedule.json")).unwrap();
    let summary = token_refresh::handle(&ctx.services, LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert_eq!(summary, token_refresh::RefreshSummary::default());
}

#[test]
fn the_message_samples_are_valid_v1_lead_messages() {
    for name in [
        "lead-push/message-v1.json",
        "lead-push/message-v1-minimal.json",
    ] {
        let body = events::load(name).to_string();
        let message = shared::lead::parse_message(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(message.version, 1);
        assert!(!message.lead.last_name.is_empty());
    }
    let minimal =
        shared::lead::parse_message(&events::load("lead-push/message-v1-minimal.json").to_string())
            .unwrap();
    assert_eq!(
        minimal.lead.phone.as_deref(),
        Some("+61412345678"),
        "the locale's region is the phone hint"
    );
    assert_eq!(minimal.lead.first_name.as_deref(), Some("محمد"));
    assert!(minimal.lead.email.is_none() && minimal.lead.summary.is_none());
}
