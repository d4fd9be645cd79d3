//! Zoho CRM exactly once in effect: a push killed right after each of its CRM calls, or a create
//! whose answer was lost after Zoho applied it, then delivered again, leaves one lead, one
//! contact, one deal and one note for the lead, the deal in the mapped stage.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::setup;
use serde_json::{json, Value};
use shared::push::MessageOutcome;

const DC: &str = "au";

/// A Pro tenant with Zoho connected (directly, not through the proxy), converting at
/// `qualified`.
async fn zoho_tenant(ctx: &TestContext) -> String {
    let settings = json!({
        "pipeline_id": "Standard (Standard)",
        "stage_mapping": {"qualified": "Needs Analysis", "proposal": "Proposal/Price Quote",
                          "won": "Closed Won", "lost": "Closed Lost"},
        "convert_at": "qualified"
    });
    setup::zoho_with_settings(ctx, settings)
        .await
        .expect("a connected Zoho tenant")
        .tenant
}

/// A lead message; `hour` orders messages of one lead (a later one is newer).
fn lead(tenant: &str, id: &str, email: &str, stage: &str, hour: u8) -> String {
    let mut message: Value = serde_json::from_str(&lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": "Fatima Al-Kuwari", "email": email, "phone": null,
               "country": "QA", "source": "whatsapp", "score": 82, "stage": stage}),
        Some("Wants 12 seats"),
    ))
    .unwrap();
    message["occurred_at"] = json!(format!("2026-11-28T{hour:02}:00:00Z"));
    message.to_string()
}

/// Every Zoho API call (not OAuth).
fn crm_calls() -> CallMatch {
    CallMatch::path("/crm/")
}

/// What is wrong with the simulator's records of the lead `id` (email `email`); `None` when it
/// holds exactly one lead, and (when `converted`) one contact and one deal in `stage`, and one
/// note naming the lead on the right record.
fn problems(
    ctx: &TestContext,
    id: &str,
    email: &str,
    converted: bool,
    stage: &str,
) -> Option<String> {
    let leads: Vec<_> = ctx
        .zoho
        .leads(DC)
        .into_iter()
        .filter(|l| l.text("Email") == Some(email))
        .collect();
    let contacts: Vec<_> = ctx
        .zoho
        .contacts(DC)
        .into_iter()
        .filter(|c| c.text("Email") == Some(email))
        .collect();
    let deals: Vec<_> = ctx
        .zoho
        .deals(DC)
        .into_iter()
        .filter(|d| {
            contacts
                .iter()
                .any(|c| d.field("Contact_Name").and_then(|n| n.get("id")) == Some(&json!(c.id)))
        })
        .collect();
    let marker = format!("Lead: {id} ");
    let notes: Vec<_> = ctx
        .zoho
        .notes(DC)
        .into_iter()
        .filter(|n| n.text("Note_Content").is_some_and(|c| c.contains(&marker)))
        .collect();
    let want = usize::from(converted);
    if leads.len() != 1 || contacts.len() != want || deals.len() != want || notes.len() != 1 {
        return Some(format!(
            "{} leads, {} contacts, {} deals, {} notes (want 1, {want}, {want}, 1)",
            leads.len(),
            contacts.len(),
            deals.len(),
            notes.len()
        ));
    }
    if leads[0].converted != converted {
        return Some(format!("lead converted: {}", leads[0].converted));
    }
    let parent = notes[0].parent.clone().unwrap();
    let (module, parent_id) = if converted {
        ("Contacts", contacts[0].id.clone())
    } else {
        ("Leads", leads[0].id.clone())
    };
    if parent.module != module || parent.id != parent_id {
        return Some(format!("the note is on {parent:?}"));
    }
    if converted && deals[0].text("Stage") != Some(stage) {
        return Some(format!(
            "deal stage {:?}, want {stage}",
            deals[0].text("Stage")
        ));
    }
    None
}

fn sequence(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .calls()
        .iter()
        .filter(|c| crm_calls().matches(c))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

/// Kills `body`'s push after each of its CRM calls in turn (on a fresh lead each time, after
/// `prepare` delivered what comes before), lets the claim lapse, delivers again, and checks.
async fn crash_matrix(
    ctx: &TestContext,
    proxy: &FaultProxy,
    services: &shared::Services,
    tenant: &str,
    name: &str,
    first_stage: Option<&str>,
    stage: &str,
) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut calls = 0;
    for i in 1.. {
        let id = format!("lead-{name}-{i}");
        let email = format!("{name}-{i}@example.qa");
        if let Some(first) = first_stage {
            let done = push_once(services, &lead(tenant, &id, &email, first, 4)).await;
            assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
        }
        let body = lead(tenant, &id, &email, stage, 5);
        proxy.clear();
        let killed = push_killed_after(services, proxy, crm_calls(), i, &body).await;
        let made = sequence(proxy);
        if killed != KillResult::Killed {
            assert!(
                matches!(killed, KillResult::Finished(MessageOutcome::Done { .. })),
                "{killed:?}"
            );
            calls = i - 1;
            break;
        }
        expire_lead_claims(ctx, tenant).await;
        let again = push_once(services, &body).await;
        let mut wrong = Vec::new();
        if !matches!(again, MessageOutcome::Done { .. }) {
            wrong.push(format!("redelivery: {again:?}"));
        }
        if let Some(problem) = problems(ctx, &id, &email, true, "Needs Analysis") {
            wrong.push(problem);
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "kill after call {i} ({}): {}",
                made.last().cloned().unwrap_or_default(),
                wrong.join("; ")
            ));
        }
    }
    (calls, failures)
}

#[tokio::test]
async fn zoho_push_killed_after_each_crm_call_then_redelivered() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.zoho.base_url()).await;
    let services = ctx.services_with_provider_endpoint("zoho", &proxy.endpoint());
    let tenant = zoho_tenant(&ctx).await;

    // A new lead that qualifies at once: upsert, convert, note on the contact.
    let (calls, failures) =
        crash_matrix(&ctx, &proxy, &services, &tenant, "new", None, "qualified").await;
    assert!(calls >= 3, "upsert, convert and note at least: {calls}");
    assert!(failures.is_empty(), "new lead:\n{}", failures.join("\n"));

    // A lead pushed as contacted (lead and note), then qualified: lead update and convert.
    let (calls, failures) = crash_matrix(
        &ctx,
        &proxy,
        &services,
        &tenant,
        "later",
        Some("contacted"),
        "qualified",
    )
    .await;
    assert!(calls >= 2, "lead update and convert at least: {calls}");
    assert!(failures.is_empty(), "later stage:\n{}", failures.join("\n"));
}

/// One create's answer lost (or unreadable) after Zoho applied it, then the message delivered
/// again.
async fn lost_answer(create: CallMatch, fault: ProxyFault, name: &str) {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.zoho.base_url()).await;
    let services = ctx.services_with_provider_endpoint("zoho", &proxy.endpoint());
    let tenant = zoho_tenant(&ctx).await;
    let id = format!("lead-{name}");
    let email = format!("{name}@example.qa");
    let body = lead(&tenant, &id, &email, "qualified", 4);
    let lost = proxy.on(create, 1, fault.clone());

    let first = push_once(&services, &body).await;
    assert!(lost.has_fired(), "the create was sent: {first:?}");
    // Transient: retried by SQS, or — for the upsert, which is idempotent — resent in place.
    assert!(
        !matches!(first, MessageOutcome::DeadLettered { .. }),
        "{fault:?} after a create is transient: {first:?}"
    );
    expire_lead_claims(&ctx, &tenant).await;
    let again = push_once(&services, &body).await;
    assert!(matches!(again, MessageOutcome::Done { .. }), "{again:?}");
    assert_eq!(
        problems(&ctx, &id, &email, true, "Needs Analysis"),
        None,
        "calls: {:?}",
        sequence(&proxy)
    );
}

fn upsert() -> CallMatch {
    CallMatch::method_and_path("POST", "/crm/v8/Leads/upsert")
}

fn convert() -> CallMatch {
    CallMatch::method_and_path("POST", "/actions/convert")
}

fn note_create() -> CallMatch {
    CallMatch::Method("POST").and(CallMatch::path_is("/crm/v8/Notes"))
}

#[tokio::test]
async fn zoho_upsert_answer_lost_then_redelivered() {
    lost_answer(upsert(), ProxyFault::LoseAnswer(502), "upsert-502").await;
    lost_answer(upsert(), ProxyFault::GarbageAfterApply, "upsert-garbage").await;
}

#[tokio::test]
async fn zoho_conversion_answer_lost_then_redelivered() {
    lost_answer(convert(), ProxyFault::LoseAnswer(500), "convert-500").await;
    lost_answer(convert(), ProxyFault::GarbageAfterApply, "convert-garbage").await;
}

#[tokio::test]
async fn zoho_note_create_answer_lost_then_redelivered() {
    lost_answer(note_create(), ProxyFault::LoseAnswer(502), "note-502").await;
    lost_answer(note_create(), ProxyFault::GarbageAfterApply, "note-garbage").await;
}

/// A lead with neither email nor phone: Zoho's duplicate check cannot know it again, so its
/// create goes under an intent and a retry finds it by the marker in `Description`.
#[tokio::test]
async fn zoho_lead_without_email_or_phone_created_once_when_the_answer_is_lost() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.zoho.base_url()).await;
    let services = ctx.services_with_provider_endpoint("zoho", &proxy.endpoint());
    let tenant = zoho_tenant(&ctx).await;
    let body = lead_message(
        &tenant,
        "pro",
        json!({"id": "lead-anon", "stage": "contacted", "source": "whatsapp"}),
        Some("Asked for a callback"),
    );
    let lost = proxy.on(upsert(), 1, ProxyFault::LoseAnswer(502));
    let first = push_once(&services, &body).await;
    assert!(
        lost.has_fired() && matches!(first, MessageOutcome::Retry { .. }),
        "{first:?}"
    );
    expire_lead_claims(&ctx, &tenant).await;
    let again = push_once(&services, &body).await;
    assert!(matches!(again, MessageOutcome::Done { .. }), "{again:?}");
    let leads: Vec<_> = ctx
        .zoho
        .leads(DC)
        .into_iter()
        .filter(|l| l.text("Description") == Some("LeadRelay lead lead-anon"))
        .collect();
    assert_eq!(leads.len(), 1, "calls: {:?}", sequence(&proxy));
    let notes = ctx.zoho.notes(DC);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].parent.as_ref().unwrap().id, leads[0].id);
}

/// The CRM calls of a new lead's push, counted with the simulator (for the docs).
#[tokio::test]
async fn zoho_calls_per_new_lead() {
    let ctx = TestContext::new().await;
    let tenant = zoho_tenant(&ctx).await;
    let count = |ctx: &TestContext| {
        ctx.zoho
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/crm/"))
            .count()
    };
    let before = count(&ctx);
    let delivery = ctx
        .deliver(&[lead(&tenant, "lead-c", "c@example.qa", "contacted", 4)])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(count(&ctx) - before, 2, "upsert, note");
    let before = count(&ctx);
    let delivery = ctx
        .deliver(&[lead(&tenant, "lead-q", "q@example.qa", "qualified", 4)])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(count(&ctx) - before, 3, "upsert, convert, note");
}
