//! `make redrive` (tests/src/bin/redrive.rs) against moto: a lead dead-lettered for a cause that
//! is then fixed goes back to the lead queue with its body and attributes, and lands once.
//! moto 5.2.5 has no StartMessageMoveTask (it answers HTTP 500), so this runs the tool's
//! documented fallback, `--method copy`.

use std::process::Command;

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::queue::lead_message;
use serde_json::json;
use shared::identity::TenantId;
use shared::stage::LeadStage;
use shared::Provider;

fn redrive(ctx: &TestContext) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(["--dlq-url", &ctx.queues.dead_letter_url])
        .args(["--queue-url", &ctx.queues.url])
        .args(["--method", "copy"])
        .output()
        .expect("the redrive binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Maps `stage` to `hubspot_stage` in the tenant's saved settings.
async fn map_stage(ctx: &TestContext, tenant: &str, stage: LeadStage, hubspot_stage: &str) {
    let tenant_id = TenantId::parse(tenant).unwrap();
    let store = &ctx.services.store;
    let connection = store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    let mut settings = connection.settings.clone().unwrap();
    settings.stage_mapping.insert(stage, hubspot_stage.into());
    store
        .save_settings(
            &tenant_id,
            Provider::Hubspot,
            connection.version,
            &settings,
            &connection.account,
        )
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_lead_dead_lettered_for_a_fixed_cause_is_redriven_and_lands_once() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);

    // The cause: `lost` is mapped to a stage someone deleted in HubSpot, which refuses the deal
    // for good (HTTP 400), so lead-push dead-letters the lead at once.
    map_stage(&ctx, &tenant, LeadStage::Lost, "deleted-stage").await;
    let body = lead_message(
        &tenant,
        "pro",
        json!({"id": "lead-r", "name": "Noura Saleh", "email": "noura@example.qa", "stage": "lost"}),
        Some("Went with a competitor"),
    );
    let delivery = ctx.deliver(std::slice::from_ref(&body)).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert!(ctx.hubspot.deals().is_empty());
    // Peek at the letter (received, so invisible for a moment) and let it be seen again.
    let letter = receive_one(&ctx, &ctx.queues.dead_letter_url).await;
    assert_eq!(letter.body.as_deref(), Some(body.as_str()));
    let reason = letter.message_attributes.as_ref().unwrap()["failure_reason"]
        .string_value
        .clone()
        .unwrap();
    assert!(reason.contains("HTTP 400"), "{reason}");
    release(&ctx, &ctx.queues.dead_letter_url, &letter).await;

    // The fix: the tenant maps `lost` to a stage that exists. Then the redrive.
    map_stage(&ctx, &tenant, LeadStage::Lost, "closedlost").await;
    let (ok, text) = redrive(&ctx);
    assert!(ok, "{text}");
    assert!(text.contains("redriven: 1 message(s)"), "{text}");
    assert!(
        ctx.queues.dead_letters().await.is_empty(),
        "the DLQ is empty"
    );

    // On the lead queue: the same body and message attributes (as SQS's move task keeps them).
    let moved = receive_one(&ctx, &ctx.queues.url).await;
    assert_eq!(moved.body, letter.body);
    assert_eq!(moved.message_attributes, letter.message_attributes);
    release(&ctx, &ctx.queues.url, &moved).await;

    let delivery = ctx.redeliver(1).await;
    assert_eq!(delivery.received.len(), 1, "{delivery:?}");
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let deals = ctx.hubspot.deals();
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0].properties["dealstage"], "closedlost");
    assert_eq!(
        ctx.hubspot.contacts().len(),
        1,
        "the contact upsert was a replay"
    );
    assert_eq!(ctx.hubspot.notes().len(), 1);

    // Redriving the same lead again (a copy sent but not deleted, or a second operator's run)
    // is a replay: nothing new in the CRM, nothing dead-lettered.
    let calls = ctx.hubspot.crm_call_count();
    let delivery = ctx.deliver(std::slice::from_ref(&body)).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.hubspot.deals().len(), 1);
    assert_eq!(ctx.hubspot.contacts().len(), 1);
    assert_eq!(ctx.hubspot.notes().len(), 1);
    assert_eq!(ctx.hubspot.crm_call_count(), calls, "a replay calls nobody");
    assert!(ctx.queues.dead_letters().await.is_empty());

    // An empty DLQ: nothing to do, and says so.
    let (ok, text) = redrive(&ctx);
    assert!(ok, "{text}");
    assert!(text.contains("redriven: 0 message(s)"), "{text}");
}

async fn receive_one(ctx: &TestContext, url: &str) -> aws_sdk_sqs::types::Message {
    let out = ctx
        .queues
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .visibility_timeout(30)
        .send()
        .await
        .expect("ReceiveMessage");
    let mut messages = out.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1, "{messages:?}");
    messages.remove(0)
}

async fn release(ctx: &TestContext, url: &str, message: &aws_sdk_sqs::types::Message) {
    ctx.queues
        .sqs
        .change_message_visibility()
        .queue_url(url)
        .receipt_handle(message.receipt_handle.clone().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .expect("ChangeMessageVisibility");
}
