//! Leads wait for a reconnect: a connection that needs the tenant parks its leads instead of
//! dead-lettering them, and a connect of the same tenant and provider pushes them, once each.

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::push::{process_message, InboundMessage, MessageOutcome};
use shared::store::ParkedLead;
use shared::Provider;

/// A Pro tenant with HubSpot connected and its stage mapping saved.
async fn connected_tenant(ctx: &TestContext) -> String {
    relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant")
        .tenant
}

/// Lead `n` of `tenant` at `stage`, `minute` minutes into the test's day.
fn lead(tenant: &str, n: usize, stage: &str, minute: u32) -> String {
    json!({
        "version": 1,
        "tenant_id": tenant,
        "plan": "pro",
        "lead": {"id": format!("lead-{n}"), "name": format!("Lead Number{n}"),
                 "email": format!("lead{n}@example.com"), "stage": stage},
        "summary": format!("lead {n} at {stage}"),
        "occurred_at": format!("2026-11-28T04:{minute:02}:00Z"),
    })
    .to_string()
}

/// The tenant's HubSpot connection as `GET /connections` shows it.
async fn listed(ctx: &TestContext, tenant: &str) -> Value {
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(tenant, "pro"))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "hubspot")
        .cloned()
        .expect("a HubSpot connection")
}

/// HubSpot revokes the tenant's refresh token (and so its access tokens), as when the app is
/// uninstalled from the portal: the next push is refused and the refresh gets `invalid_grant`.
async fn burn_grant(ctx: &TestContext) {
    let live = ctx.hubspot.live_refresh_tokens();
    assert_eq!(live.len(), 1, "one live grant");
    let revoked = reqwest::Client::new()
        .post(format!(
            "{}/oauth/2026-03/token/revoke",
            ctx.hubspot.base_url()
        ))
        .form(&[
            ("client_id", "test-client-id"),
            ("client_secret", ctx.client_secret.as_str()),
            ("token", live[0].as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("revoke");
    assert!(revoked.status().is_success(), "{}", revoked.status());
    assert!(ctx.hubspot.live_refresh_tokens().is_empty());
}

/// Runs lead-push over the queue until it is empty (at most `rounds` batches of 10).
async fn drain(ctx: &TestContext, rounds: usize) -> usize {
    let mut received = 0;
    for _ in 0..rounds {
        let delivery = ctx.redeliver(10).await;
        if delivery.received.is_empty() {
            return received;
        }
        received += delivery.received.len();
    }
    panic!("the lead queue did not drain in {rounds} batches");
}

fn deal_stages(ctx: &TestContext) -> Vec<String> {
    let mut stages: Vec<String> = ctx
        .hubspot
        .deals()
        .iter()
        .map(|d| d.properties["dealstage"].clone())
        .collect();
    stages.sort();
    stages
}

#[tokio::test]
async fn leads_for_a_burnt_grant_are_parked_and_a_reconnect_pushes_each_once_in_its_final_stage() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = connected_tenant(&ctx).await;
    burn_grant(&ctx).await;

    // 20 leads wait on the dead grant, and a newer version of lead 0 (won) after them.
    let mut messages: Vec<String> = (0..20).map(|n| lead(&tenant, n, "new", 1)).collect();
    messages.push(lead(&tenant, 0, "won", 30));
    let delivery = ctx.deliver(&messages).await;
    assert!(
        delivery.failed.is_empty(),
        "every message settled: {delivery:?}"
    );
    assert_eq!(delivery.received.len(), 21);
    assert!(
        ctx.queues.dead_letters().await.is_empty(),
        "nothing dead-lettered"
    );
    assert!(ctx.hubspot.contacts().is_empty());
    let connection = listed(&ctx, &tenant).await;
    assert_eq!(connection["status"], "needs_reauth", "{connection}");
    assert_eq!(connection["parked_leads"], 21, "{connection}");

    // The tenant reconnects the same portal: the parked leads go back to the lead queue.
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let connection = listed(&ctx, &tenant).await;
    assert_eq!(connection["status"], "active");
    assert_eq!(connection["parked_leads"], 0, "{connection}");
    // Released in the tenant's message group, as the message contract asks (fair queue).
    let event = ctx.queues.receive(21).await;
    assert_eq!(event.records.len(), 21);
    for record in &event.records {
        assert_eq!(
            record.attributes.get("MessageGroupId").map(String::as_str),
            Some(tenant.as_str()),
            "a released lead is in its tenant's message group"
        );
    }
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event.clone(), lambda_runtime::Context::default()),
    )
    .await
    .expect("lead-push never fails the invocation");
    let delivery = ctx.queues.settle(&event, &response).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(drain(&ctx, 10).await, 0);

    let contacts = ctx.hubspot.contacts();
    assert_eq!(contacts.len(), 20, "each lead once");
    let mut emails: Vec<&str> = contacts
        .iter()
        .map(|c| c.properties["email"].as_str())
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len(), 20);
    let mut expected = vec!["appointmentscheduled".to_string(); 19];
    expected.push("closedwon".into());
    expected.sort();
    assert_eq!(deal_stages(&ctx), expected, "lead 0 in its newest stage");
    assert_eq!(ctx.hubspot.notes().len(), 20);
    assert!(ctx.queues.dead_letters().await.is_empty());

    // Released once: another reconnect sends nothing more.
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    assert_eq!(drain(&ctx, 1).await, 0);
    assert_eq!(ctx.hubspot.contacts().len(), 20);
}

#[tokio::test]
async fn a_lead_parked_past_the_limit_is_gone_and_a_fresh_one_is_released() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = connected_tenant(&ctx).await;
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let now = chrono::Utc::now();
    let parked = |n: usize, days_ago: i64| {
        let parked_at = now - chrono::Duration::days(days_ago);
        ParkedLead {
            tenant_id: tenant_id.clone(),
            provider: Provider::Hubspot,
            lead_id: format!("lead-{n}"),
            occurred_at: parked_at,
            body: lead(&tenant, n, "new", n as u32),
            reason: "the hubspot connection needs to be reconnected".into(),
            parked_at,
            ttl: (parked_at + chrono::Duration::days(14)).timestamp(),
        }
    };
    // Parked 15 days ago, past the 14-day limit (DynamoDB may not have deleted it yet).
    ctx.services.store.park_lead(&parked(1, 15)).await.unwrap();
    ctx.services.store.park_lead(&parked(2, 1)).await.unwrap();
    assert_eq!(listed(&ctx, &tenant).await["parked_leads"], 1);

    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    assert_eq!(drain(&ctx, 2).await, 1, "only the live one is re-sent");
    let contacts = ctx.hubspot.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].properties["email"], "lead2@example.com");
}

#[tokio::test]
async fn another_tenants_reconnect_never_releases_a_parked_lead() {
    let ctx = TestContext::with_lead_queue().await;
    let parked_tenant = connected_tenant(&ctx).await;
    let other = connected_tenant(&ctx).await;
    ctx.services
        .store
        .mark_needs_reauth(
            &TenantId::parse(&parked_tenant).unwrap(),
            Provider::Hubspot,
            "invalid_grant from hubspot",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let delivery = ctx.deliver(&[lead(&parked_tenant, 7, "new", 5)]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(listed(&ctx, &parked_tenant).await["parked_leads"], 1);

    assert_eq!(
        outcome(&ctx.connect_hubspot(&other, "pro").await)["status"],
        "connected"
    );
    assert_eq!(drain(&ctx, 1).await, 0, "nothing re-sent");
    assert_eq!(listed(&ctx, &parked_tenant).await["parked_leads"], 1);
    assert_eq!(listed(&ctx, &other).await["parked_leads"], 0);
    assert!(ctx.hubspot.contacts().is_empty());
    assert!(ctx.queues.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_message_pushed_to_one_destination_and_parked_for_another_is_settled() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "business").await)["status"],
        "connected"
    );
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(&tenant, "business"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let sheets = ctx
        .connect_google_sheets(&tenant, "business", "owner@example.com")
        .await;
    assert_eq!(outcome(&sheets)["status"], "connected", "{sheets}");
    ctx.services
        .store
        .mark_needs_reauth(
            &TenantId::parse(&tenant).unwrap(),
            Provider::GoogleSheets,
            "invalid_grant from google",
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    let mut body: Value = serde_json::from_str(&lead(&tenant, 3, "new", 9)).unwrap();
    body["plan"] = json!("business");
    let message = InboundMessage {
        message_id: "m-3".into(),
        body: body.to_string(),
        receive_count: 1,
        ..Default::default()
    };
    let result = process_message(&ctx.services, &message).await;
    match &result {
        MessageOutcome::Parked { results, parked } => {
            assert_eq!(parked, &vec![Provider::GoogleSheets]);
            assert_eq!(results.len(), 1);
            assert_eq!(results[0].0, Provider::Hubspot);
        }
        other => panic!("expected parked, got {other:?}"),
    }
    assert!(result.is_settled());
    assert_eq!(ctx.hubspot.contacts().len(), 1);
    assert!(ctx.queues.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_lead_that_cannot_be_parked_is_retried_not_dead_lettered() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = connected_tenant(&ctx).await;
    ctx.services
        .store
        .mark_needs_reauth(
            &TenantId::parse(&tenant).unwrap(),
            Provider::Hubspot,
            "invalid_grant from hubspot",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    // Every attempt of the parking write (the SDK tries 3 times) fails.
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = relay_tests::aws_faults::FaultyAws::start(&moto, "PutItem", "PARK#", 3).await;
    let failing = ctx.services_via(&proxy.endpoint);
    let message = |receive_count| InboundMessage {
        message_id: "m-1".into(),
        body: lead(&tenant, 1, "new", 1),
        receive_count,
        ..Default::default()
    };

    let first = process_message(&failing, &message(1)).await;
    assert!(matches!(first, MessageOutcome::Retry { .. }), "{first:?}");
    assert_eq!(proxy.matched(), 3);
    assert_eq!(listed(&ctx, &tenant).await["parked_leads"], 0);

    let again = process_message(&ctx.services, &message(2)).await;
    assert!(matches!(again, MessageOutcome::Parked { .. }), "{again:?}");
    assert_eq!(listed(&ctx, &tenant).await["parked_leads"], 1);
    assert!(ctx.queues.dead_letters().await.is_empty());
}
