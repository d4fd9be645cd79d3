//! The lead mapping's promises that hold for every provider: an older message never undoes a
//! newer one, a mapping belongs to the CRM account it was made in, a disconnect forgets the
//! provider's mappings, and an unreadable success answer is retried rather than dead-lettered.

use relay_tests::context::{outcome, TestContext};
use relay_tests::queue::lead_message;
use relay_tests::sim::{Fault, Route};
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::Provider;

async fn hubspot_tenant(ctx: &TestContext) -> String {
    relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant")
        .tenant
}

/// A message for lead `lead-1` at `stage`, sent by the lead pipeline at `at`.
fn message_at(tenant: &str, stage: &str, summary: &str, at: &str) -> String {
    let mut body: Value = serde_json::from_str(&lead_message(
        tenant,
        "pro",
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "fatima@example.qa",
               "phone": "+974 5555 1234", "stage": stage}),
        Some(summary),
    ))
    .unwrap();
    body["occurred_at"] = json!(at);
    body.to_string()
}

fn stage_of_only_deal(ctx: &TestContext) -> String {
    let deals = ctx.hubspot.deals();
    assert_eq!(deals.len(), 1, "one deal: {deals:?}");
    deals[0].properties["dealstage"].clone()
}

#[tokio::test]
async fn an_older_message_delivered_after_a_newer_one_is_acknowledged_and_changes_nothing() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let won = message_at(&tenant, "won", "Signed", "2026-11-28T05:00:00Z");
    let new = message_at(&tenant, "new", "First hello", "2026-11-28T04:00:00Z");

    assert!(ctx.deliver(&[won]).await.failed.is_empty());
    let won_stage = stage_of_only_deal(&ctx);
    let note = ctx.hubspot.notes()[0].properties["hs_note_body"].clone();
    let before = ctx.hubspot.crm_call_count();

    let late = ctx.deliver(&[new]).await;

    assert!(late.failed.is_empty(), "a stale message is not retried");
    assert!(
        ctx.queues.dead_letters().await.is_empty(),
        "nor dead-lettered"
    );
    assert_eq!(ctx.hubspot.crm_call_count(), before, "no CRM call");
    assert_eq!(stage_of_only_deal(&ctx), won_stage, "the deal stays won");
    assert_eq!(ctx.hubspot.notes()[0].properties["hs_note_body"], note);
    assert!(
        relay_tests::logs::captured().contains("stale message"),
        "the acknowledgement is logged as stale"
    );
}

#[tokio::test]
async fn the_same_content_sent_again_later_makes_an_older_change_stale() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let first = message_at(&tenant, "won", "Signed", "2026-11-28T05:00:00Z");
    let again = message_at(&tenant, "won", "Signed", "2026-11-28T07:00:00Z");
    let between = message_at(&tenant, "new", "First hello", "2026-11-28T06:00:00Z");

    assert!(ctx.deliver(&[first]).await.failed.is_empty());
    let won_stage = stage_of_only_deal(&ctx);
    assert!(ctx.deliver(&[again]).await.failed.is_empty());
    assert!(ctx.deliver(&[between]).await.failed.is_empty());

    assert_eq!(stage_of_only_deal(&ctx), won_stage);
}

#[tokio::test]
async fn a_newer_message_after_an_older_one_moves_the_deal_on() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let new = message_at(&tenant, "new", "First hello", "2026-11-28T04:00:00Z");
    let won = message_at(&tenant, "won", "Signed", "2026-11-28T05:00:00Z");

    assert!(ctx.deliver(&[new]).await.failed.is_empty());
    let first_stage = stage_of_only_deal(&ctx);
    assert!(ctx.deliver(&[won]).await.failed.is_empty());

    assert_ne!(stage_of_only_deal(&ctx), first_stage);
}

#[tokio::test]
async fn an_unreadable_success_answer_is_retried_and_the_lead_lands_once() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    // A proxy's HTML page instead of the upsert's JSON, on the first delivery only.
    ctx.hubspot.inject(Route::Contacts, Fault::Garbage);

    let first = ctx
        .deliver(&[message_at(&tenant, "new", "Hi", "2026-11-28T04:00:00Z")])
        .await;
    assert_eq!(first.failed.len(), 1, "retried, not settled: {first:?}");
    assert!(
        ctx.queues.dead_letters().await.is_empty(),
        "not dead-lettered"
    );

    let second = ctx.redeliver(1).await;
    assert!(second.failed.is_empty(), "{second:?}");
    assert_eq!(ctx.hubspot.contacts().len(), 1);
    assert_eq!(ctx.hubspot.deals().len(), 1);
    assert_eq!(ctx.hubspot.notes().len(), 1);
}

#[tokio::test]
async fn a_disconnect_forgets_the_providers_lead_mappings() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    assert!(ctx
        .deliver(&[message_at(&tenant, "new", "Hi", "2026-11-28T04:00:00Z")])
        .await
        .failed
        .is_empty());
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let mappings = |ctx: &TestContext| {
        let store = ctx.services.store.clone();
        let tenant_id = tenant_id.clone();
        async move {
            store
                .lead_mappings_of(&tenant_id, Provider::Hubspot, "lead-1")
                .await
                .unwrap()
        }
    };
    assert_eq!(mappings(&ctx).await.len(), 1);

    let gone = ctx
        .provider_api(
            "connections-api/disconnect.json",
            "hubspot",
            (&tenant, "pro"),
            None,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);

    assert!(mappings(&ctx).await.is_empty());
}

#[tokio::test]
async fn a_reconnect_to_another_bitrix24_portal_pushes_the_lead_there_anew_and_leaves_the_old_portal_alone(
) {
    const FIRST: &str = "souq-bakery.bitrix24.com";
    const SECOND: &str = "dune-motors.bitrix24.eu";
    let ctx = TestContext::new().await;
    ctx.bitrix.add_portal(FIRST);
    ctx.bitrix.add_portal(SECOND);
    let tenant = TestContext::tenant();
    let lead = message_at(&tenant, "new", "Hi", "2026-11-28T04:00:00Z");
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", FIRST, FIRST).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    assert!(ctx
        .deliver(std::slice::from_ref(&lead))
        .await
        .failed
        .is_empty());
    let first_portal = ctx.bitrix.state_json(FIRST);
    // The second portal already holds records with the same small ids.
    ctx.bitrix
        .seed_contact(SECOND, json!({"NAME": "Somebody", "LAST_NAME": "Else"}));

    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", SECOND, SECOND).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    // The identical message again: new to this portal.
    assert!(ctx.deliver(&[lead]).await.failed.is_empty());

    assert_eq!(ctx.bitrix.state_json(FIRST), first_portal, "untouched");
    let contacts = ctx.bitrix.contacts(SECOND);
    assert_eq!(
        contacts.len(),
        2,
        "Somebody Else and the lead's own contact"
    );
    assert!(
        contacts
            .iter()
            .any(|c| c.fields["NAME"] == "Somebody" && c.fields["LAST_NAME"] == "Else"),
        "the other contact keeps its name: {contacts:?}"
    );
    assert_eq!(ctx.bitrix.deals(SECOND).len(), 1);
    let mappings = ctx
        .services
        .store
        .lead_mappings_of(
            &TenantId::parse(&tenant).unwrap(),
            Provider::Bitrix24,
            "lead-1",
        )
        .await
        .unwrap();
    assert_eq!(mappings.len(), 2, "one mapping per portal");
}
