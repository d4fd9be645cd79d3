//! HubSpot batch pushes (issue 16) through lead-push's `process_batch`, against moto and the
//! HubSpot simulator on the 2026-09 API: new leads of one tenant in a few batch calls (counted
//! by the simulator), a lead refused by a portal rule failing alone with HubSpot's reason, and
//! a batch deal create applied with its answer lost, then delivered again, leaving no duplicate.

use relay_tests::context::TestContext;
use relay_tests::crash::expire_lead_claims;
use relay_tests::queue::lead_message;
use relay_tests::sim::{Fault, Lost, Route};
use serde_json::json;
use shared::push::MessageOutcome;

const CONTACTS_UPSERT: &str = "/crm/objects/2026-09/contacts/batch/upsert";
const DEALS_CREATE: &str = "/crm/objects/2026-09/deals/batch/create";
const DEALS_READ: &str = "/crm/objects/2026-09/deals/batch/read";
const NOTES_CREATE: &str = "/crm/objects/2026-09/notes/batch/create";
const PIPELINES: &str = "/crm/pipelines/2026-09/deals";

/// A Pro tenant with HubSpot connected and the sample stage mapping saved (`new`,
/// `qualified` → qualifiedtobuy, `won` → closedwon; `contacted` unmapped, so its deals go to
/// the default stage), whose portal LeadRelay has pushed to before (the unique lead-id
/// property exists), with the call counter at zero.
async fn warm_tenant(ctx: &TestContext) -> String {
    let tenant = relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant")
        .tenant;
    let outcomes = ctx
        .push_batch(&[lead(&tenant, "warm-up", "qualified")], 1)
        .await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    ctx.hubspot.reset_crm_call_count();
    ctx.hubspot.clear_requests();
    tenant
}

/// A lead with email, at `stage`, with a summary.
fn lead(tenant: &str, id: &str, stage: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": format!("Fatima {id}"), "email": format!("{id}@example.qa"),
               "phone": null, "stage": stage, "source": "whatsapp", "score": 82}),
        Some(&format!("Wants 12 seats ({id})")),
    )
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

/// Every lead `id` is in HubSpot exactly once: one contact by its email, one deal named after
/// it carrying its lead id, one note with its marker, linked together.
fn in_hubspot_once(ctx: &TestContext, id: &str) {
    let problem = ctx.hubspot.lead_problem(
        id,
        &format!("{id}@example.qa"),
        &format!("Fatima {id} (LeadRelay)"),
    );
    assert_eq!(problem, None);
}

#[tokio::test]
async fn ten_new_leads_take_at_most_four_calls_and_a_hundred_at_most_ten() {
    let ctx = TestContext::new().await;
    let tenant = warm_tenant(&ctx).await;

    // `contacted` is not mapped: the default stage is read from the pipelines, once.
    let ten: Vec<String> = (0..10)
        .map(|i| lead(&tenant, &format!("ten-{i}"), "contacted"))
        .collect();
    let outcomes = ctx.push_batch(&ten, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    let calls = ctx.hubspot.crm_call_count();
    assert!(calls <= 4, "10 new leads: {calls} HubSpot calls");
    assert_eq!(ctx.hubspot.count("POST", CONTACTS_UPSERT), 1);
    assert_eq!(ctx.hubspot.count("GET", PIPELINES), 1);
    assert_eq!(ctx.hubspot.count("POST", DEALS_CREATE), 1);
    assert_eq!(ctx.hubspot.count("POST", NOTES_CREATE), 1);
    for i in 0..10 {
        in_hubspot_once(&ctx, &format!("ten-{i}"));
    }
    let default_stage = ctx
        .hubspot
        .deals()
        .into_iter()
        .find(|d| d.properties["dealname"] == "Fatima ten-0 (LeadRelay)")
        .map(|d| d.properties["dealstage"].clone());
    assert_eq!(default_stage.as_deref(), Some("appointmentscheduled"));

    // The same ten again change nothing and cost no call (recognised before HubSpot).
    ctx.hubspot.reset_crm_call_count();
    let outcomes = ctx.push_batch(&ten, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(ctx.hubspot.crm_call_count(), 0);

    ctx.hubspot.reset_crm_call_count();
    let hundred: Vec<String> = (0..100)
        .map(|i| lead(&tenant, &format!("hundred-{i}"), "qualified"))
        .collect();
    let outcomes = ctx.push_batch(&hundred, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    let calls = ctx.hubspot.crm_call_count();
    println!("HubSpot calls: 100 new leads of one tenant in one invocation: {calls}");
    assert!(calls <= 10, "100 new leads: {calls} HubSpot calls");
    for i in 0..100 {
        in_hubspot_once(&ctx, &format!("hundred-{i}"));
    }
}

#[tokio::test]
async fn a_lead_refused_by_a_portal_rule_fails_alone_with_hubspots_reason() {
    let ctx = TestContext::new().await;
    let tenant = warm_tenant(&ctx).await;
    // HubSpot's own example of a conditionally required property (enforced from 2026-09).
    ctx.hubspot
        .require_when("deals", "closedate", "dealstage", "closedwon");

    let mut bodies: Vec<String> = (0..9)
        .map(|i| lead(&tenant, &format!("ok-{i}"), "qualified"))
        .collect();
    // `won` maps to closedwon, and LeadRelay sends no close date.
    bodies.insert(4, lead(&tenant, "refused", "won"));
    let outcomes = ctx.push_batch(&bodies, 1).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 4 {
            let MessageOutcome::DeadLettered { reason } = outcome else {
                panic!("the refused lead is permanent, not retried: {outcome:?}");
            };
            assert!(
                reason.contains("MISSING_CONDITIONAL_REQUIRED_PROPERTY")
                    || reason.contains("closedate is required"),
                "HubSpot's reason: {reason}"
            );
        } else {
            assert!(done(outcome), "{i}: {outcome:?}");
        }
    }
    for i in 0..9 {
        in_hubspot_once(&ctx, &format!("ok-{i}"));
    }
    assert!(ctx
        .hubspot
        .deals()
        .iter()
        .all(|d| d.properties["dealname"] != "Fatima refused (LeadRelay)"));
    // Still one call per step: the refusal came inside the batch answer.
    assert_eq!(ctx.hubspot.count("POST", DEALS_CREATE), 1);
    assert!(ctx.hubspot.crm_call_count() <= 4);
}

#[tokio::test]
async fn a_batch_deal_create_whose_answer_is_lost_is_found_again_on_redelivery() {
    let ctx = TestContext::new().await;
    let tenant = warm_tenant(&ctx).await;
    let bodies: Vec<String> = (0..10)
        .map(|i| lead(&tenant, &format!("lost-{i}"), "qualified"))
        .collect();
    // HubSpot makes the ten deals; the answer never reaches lead-push.
    ctx.hubspot.inject(
        Route::Deals,
        Fault::LoseAnswer(Lost::Status(504, "gateway timeout".into())),
    );
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, MessageOutcome::Retry { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        ctx.hubspot.deals().len(),
        11,
        "warm-up deal and the ten made"
    );

    expire_lead_claims(&ctx, &tenant).await;
    ctx.hubspot.clear_requests();
    let outcomes = ctx.push_batch(&bodies, 2).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(ctx.hubspot.count("POST", DEALS_READ), 1, "one batch read");
    assert_eq!(
        ctx.hubspot.count("POST", DEALS_CREATE),
        0,
        "no deal created again"
    );
    assert_eq!(ctx.hubspot.deals().len(), 11);
    for i in 0..10 {
        in_hubspot_once(&ctx, &format!("lost-{i}"));
    }
}
