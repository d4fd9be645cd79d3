//! The crash matrix: a push killed right after each of its CRM calls (the CRM applied the call,
//! the relay never heard back), then the message delivered again once the claim lapsed, must
//! still leave the lead in the CRM exactly once. Kill points come from a `FaultProxy` in front of
//! the provider's simulator.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::sim::SimObject;
use serde_json::json;
use shared::push::MessageOutcome;

/// A Pro tenant with HubSpot connected (directly, not through the proxy) and its stage mapping
/// saved.
async fn hubspot_tenant(ctx: &TestContext) -> String {
    relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant")
        .tenant
}

fn lead(tenant: &str, id: &str, email: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": "Fatima Al-Kuwari", "email": email, "phone": "5555 1234",
               "country": "QA", "source": "whatsapp", "score": 82, "stage": "qualified"}),
        Some("Wants 12 seats"),
    )
}

/// Every HubSpot call but the OAuth token endpoint's.
fn crm_calls() -> CallMatch {
    CallMatch::path("/oauth/").negate()
}

fn ids(objects: &[SimObject]) -> Vec<String> {
    objects.iter().map(|o| o.id.clone()).collect()
}

/// What is wrong with the simulator's records of the lead whose email is `email`, given the
/// deals and notes that existed before its pushes; `None` when it holds exactly one contact,
/// one deal and one note, linked together.
fn duplicates(
    ctx: &TestContext,
    email: &str,
    deals_before: &[String],
    notes_before: &[String],
) -> Option<String> {
    let contacts: Vec<SimObject> = ctx
        .hubspot
        .contacts()
        .into_iter()
        .filter(|c| c.properties.get("email").map(String::as_str) == Some(email))
        .collect();
    let deals: Vec<SimObject> = ctx
        .hubspot
        .deals()
        .into_iter()
        .filter(|d| !deals_before.contains(&d.id))
        .collect();
    let notes: Vec<SimObject> = ctx
        .hubspot
        .notes()
        .into_iter()
        .filter(|n| !notes_before.contains(&n.id))
        .collect();
    if contacts.len() != 1 || deals.len() != 1 || notes.len() != 1 {
        return Some(format!(
            "{} contacts, {} deals, {} notes (want one each)",
            contacts.len(),
            deals.len(),
            notes.len()
        ));
    }
    let (contact, deal, note) = (&contacts[0], &deals[0], &notes[0]);
    let deal_links = ctx.hubspot.associations("deals", &deal.id);
    let note_links = ctx.hubspot.associations("notes", &note.id);
    let linked = deal_links.contains(&("contacts".into(), contact.id.clone(), 3))
        && note_links.contains(&("contacts".into(), contact.id.clone(), 202))
        && note_links.contains(&("deals".into(), deal.id.clone(), 214));
    (!linked).then(|| format!("records not linked: deal {deal_links:?}, note {note_links:?}"))
}

#[tokio::test]
async fn hubspot_push_killed_after_each_crm_call_then_redelivered() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.hubspot.base_url()).await;
    let services = ctx.services_with_provider_endpoint("hubspot", &proxy.endpoint());
    let tenant = hubspot_tenant(&ctx).await;

    // How many CRM calls an uninterrupted first push of a lead makes (for another tenant, so
    // this tenant's pushes all start from nothing).
    let reference = hubspot_tenant(&ctx).await;
    proxy.clear();
    let done = push_once(
        &services,
        &lead(&reference, "lead-reference", "reference@example.qa"),
    )
    .await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    let calls = proxy.calls();
    let n = calls.iter().filter(|c| crm_calls().matches(c)).count();
    assert!(n >= 3, "contact, deal and note at least: {calls:?}");
    let sequence: Vec<String> = calls
        .iter()
        .filter(|c| crm_calls().matches(c))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();

    let mut failures = Vec::new();
    for i in 1..=n {
        let email = format!("crash-{i}@example.qa");
        let body = lead(&tenant, &format!("lead-crash-{i}"), &email);
        let deals_before = ids(&ctx.hubspot.deals());
        let notes_before = ids(&ctx.hubspot.notes());
        proxy.clear();

        let killed = push_killed_after(&services, &proxy, crm_calls(), i, &body).await;
        if let KillResult::Finished(done) = killed {
            // This push made fewer calls than the reference (which also paid for the portal's
            // one-time setup): it ran to the end, and every later kill point would too.
            if !matches!(done, MessageOutcome::Done { .. }) {
                failures.push(format!("push of {i} calls or fewer: {done:?}"));
            } else if let Some(problem) = duplicates(&ctx, &email, &deals_before, &notes_before) {
                failures.push(format!("push of {i} calls or fewer: {problem}"));
            }
            assert!(
                i > 3,
                "a new lead costs contact, deal and note calls at least"
            );
            break;
        }
        expire_lead_claims(&ctx, &tenant).await;
        let redelivered = push_once(&services, &body).await;
        let mut problems = Vec::new();
        if !matches!(redelivered, MessageOutcome::Done { .. }) {
            problems.push(format!("redelivery: {redelivered:?}"));
        }
        if let Some(problem) = duplicates(&ctx, &email, &deals_before, &notes_before) {
            problems.push(problem);
        }
        if !problems.is_empty() {
            failures.push(format!(
                "kill after call {i} ({}): {}",
                sequence[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "a first push makes {n} CRM calls {sequence:?}; after a kill:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn hubspot_deal_create_answer_lost_then_redelivered() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.hubspot.base_url()).await;
    let services = ctx.services_with_provider_endpoint("hubspot", &proxy.endpoint());
    let tenant = hubspot_tenant(&ctx).await;
    let lost = proxy.on(
        CallMatch::Method("POST").and(CallMatch::path_is("/crm/objects/2026-09/deals")),
        1,
        ProxyFault::LoseAnswer(500),
    );
    let body = lead(&tenant, "lead-1", "fatima@example.qa");

    let first = push_once(&services, &body).await;
    assert!(lost.has_fired(), "the deal create was sent: {first:?}");
    expire_lead_claims(&ctx, &tenant).await;
    let again = push_once(&services, &body).await;

    assert!(matches!(again, MessageOutcome::Done { .. }), "{again:?}");
    assert_eq!(
        duplicates(&ctx, "fatima@example.qa", &[], &[]),
        None,
        "first delivery: {first:?}; calls: {:?}",
        proxy
            .calls()
            .iter()
            .map(|c| format!("{} {} {:?}", c.method, c.path, c.fault))
            .collect::<Vec<_>>()
    );
}
