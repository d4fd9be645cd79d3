//! Zoho batch pushes (issue 16) through lead-push's `process_batch`, against moto and the Zoho
//! simulator: many new leads of one tenant in a few multi-record calls (counted), a record Zoho
//! refuses inside a call failing its lead alone, and batch calls applied with their answers lost,
//! then delivered again, leaving no duplicate.

use relay_tests::context::TestContext;
use relay_tests::crash::expire_lead_claims;
use relay_tests::queue::lead_message;
use relay_tests::setup;
use relay_tests::sim::zoho::DEFAULT_USER;
use relay_tests::sim::{Fault, Lost, ZohoRoute};
use serde_json::json;
use shared::push::MessageOutcome;

const DC: &str = "au";
const UPSERT: &str = "/crm/v8/Leads/upsert";
const NOTES: &str = "/crm/v8/Notes";

/// A Pro tenant with Zoho connected in Australia, converting only at `won` (the leads here
/// are `qualified`, so none converts and every call is a batch call).
async fn zoho_tenant(ctx: &TestContext) -> String {
    let settings = json!({
        "pipeline_id": "Standard (Standard)",
        "stage_mapping": {"qualified": "Needs Analysis", "won": "Closed Won"},
        "convert_at": "won"
    });
    setup::zoho_with_settings(ctx, settings)
        .await
        .expect("a connected Zoho tenant")
        .tenant
}

/// A qualified lead named `Fatima <id>` with a summary; `email: None` makes one with neither
/// email nor phone, which Zoho's duplicate check cannot recognise.
fn lead(tenant: &str, id: &str, email: Option<&str>) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": format!("Fatima {id}"), "email": email, "phone": null,
               "stage": "qualified", "source": "whatsapp", "score": 82}),
        Some(&format!("Wants 12 seats ({id})")),
    )
}

/// `count` leads `<prefix>-<i>`, each with the email `<prefix><i>@example.com`.
fn numbered(tenant: &str, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let email = format!("{prefix}{i}@example.com");
            lead(tenant, &format!("{prefix}-{i}"), Some(&email))
        })
        .collect()
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

fn calls(ctx: &TestContext, method: &str, path: &str) -> usize {
    ctx.zoho.count_on(DC, method, path)
}

/// Every Zoho API call (not OAuth) since the last clear.
fn crm_calls(ctx: &TestContext) -> usize {
    ctx.zoho
        .requests()
        .iter()
        .filter(|r| r.request.path.starts_with("/crm/"))
        .count()
}

/// How many leads (named `Fatima <id>`) and notes naming `Lead: <id>` the simulator holds.
fn made(ctx: &TestContext, id: &str) -> (usize, usize) {
    let leads = ctx
        .zoho
        .leads(DC)
        .iter()
        .filter(|l| l.text("Last_Name") == Some(id))
        .count();
    let marker = format!("Lead: {id} ");
    let notes = ctx
        .zoho
        .notes(DC)
        .iter()
        .filter(|n| n.text("Note_Content").is_some_and(|c| c.contains(&marker)))
        .count();
    (leads, notes)
}

#[tokio::test]
async fn new_leads_go_in_one_upsert_and_one_notes_call_per_hundred() {
    let ctx = TestContext::new().await;
    let tenant = zoho_tenant(&ctx).await;
    ctx.zoho.clear_requests();
    let credits_before = ctx.zoho.credits_used(DC, DEFAULT_USER);

    let ten = numbered(&tenant, "ten", 10);
    let outcomes = ctx.push_batch(&ten, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(calls(&ctx, "POST", UPSERT), 1, "10 new leads: one upsert");
    assert_eq!(calls(&ctx, "POST", NOTES), 1, "and one notes create");
    assert_eq!(crm_calls(&ctx), 2, "no other CRM call");
    assert_eq!(ctx.zoho.credits_used(DC, DEFAULT_USER) - credits_before, 2);
    for i in 0..10 {
        assert_eq!(made(&ctx, &format!("ten-{i}")), (1, 1), "lead ten-{i}");
    }

    // 150 leads in one invocation: 100 + 50 in each kind of call.
    ctx.zoho.clear_requests();
    let many = numbered(&tenant, "many", 150);
    let outcomes = ctx.push_batch(&many, 1).await;
    assert!(
        outcomes.iter().all(done),
        "{:?}",
        outcomes.iter().find(|o| !done(o))
    );
    assert_eq!(calls(&ctx, "POST", UPSERT), 2);
    assert_eq!(calls(&ctx, "POST", NOTES), 2);
    assert_eq!(ctx.zoho.leads(DC).len(), 160);
    assert_eq!(ctx.zoho.notes(DC).len(), 160);
}

#[tokio::test]
async fn known_leads_and_their_changed_notes_are_updated_in_one_call_each() {
    let ctx = TestContext::new().await;
    let tenant = zoho_tenant(&ctx).await;
    let first = numbered(&tenant, "known", 10);
    assert!(ctx.push_batch(&first, 1).await.iter().all(done));
    ctx.zoho.clear_requests();

    // An hour later each lead has a new summary.
    let later: Vec<String> = first
        .iter()
        .map(|body| {
            let mut message: serde_json::Value = serde_json::from_str(body).unwrap();
            message["summary"] = json!(format!("{} and a demo", message["summary"]));
            message["occurred_at"] = json!("2026-11-28T05:00:00Z");
            message.to_string()
        })
        .collect();
    let outcomes = ctx.push_batch(&later, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(
        calls(&ctx, "PUT", "/crm/v8/Leads"),
        1,
        "10 known leads: one update"
    );
    assert_eq!(calls(&ctx, "PUT", NOTES), 1, "and one notes update");
    assert_eq!(crm_calls(&ctx), 2, "no other CRM call");
    for i in 0..10 {
        assert_eq!(made(&ctx, &format!("known-{i}")), (1, 1));
    }
    assert!(ctx.zoho.notes(DC).iter().all(|n| n
        .text("Note_Content")
        .is_some_and(|c| c.contains("and a demo"))));

    // The same content again: no CRM call at all.
    ctx.zoho.clear_requests();
    assert!(ctx.push_batch(&later, 1).await.iter().all(done));
    assert_eq!(ctx.zoho.requests().len(), 0);
}

#[tokio::test]
async fn a_record_zoho_refuses_fails_its_lead_alone() {
    let ctx = TestContext::new().await;
    let tenant = zoho_tenant(&ctx).await;
    ctx.zoho.clear_requests();
    ctx.zoho
        .refuse_records("Leads", "Email", "refused", "INVALID_DATA");
    let bodies = vec![
        lead(&tenant, "ok-1", Some("ok1@example.com")),
        lead(&tenant, "bad", Some("bad.refused@example.com")),
        lead(&tenant, "ok-2", Some("ok2@example.com")),
    ];
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(done(&outcomes[0]) && done(&outcomes[2]), "{outcomes:?}");
    match &outcomes[1] {
        MessageOutcome::DeadLettered { reason } => {
            assert!(reason.contains("INVALID_DATA Email"), "{reason}")
        }
        other => panic!("the refused lead is dead-lettered at once, got {other:?}"),
    }
    assert_eq!(calls(&ctx, "POST", UPSERT), 1);
    assert_eq!(
        calls(&ctx, "POST", NOTES),
        1,
        "the neighbours' notes in one call"
    );
    assert_eq!(made(&ctx, "ok-1"), (1, 1));
    assert_eq!(made(&ctx, "ok-2"), (1, 1));
    assert_eq!(made(&ctx, "bad"), (0, 0));
}

#[tokio::test]
async fn batch_calls_applied_with_their_answers_lost_then_delivered_again_make_no_duplicate() {
    let ctx = TestContext::new().await;
    let tenant = zoho_tenant(&ctx).await;
    // Two leads Zoho deduplicates by email, two it cannot (neither email nor phone).
    let ids = ["mail-1", "bare-1", "mail-2", "bare-2"];
    let bodies = vec![
        lead(&tenant, ids[0], Some("mail1@example.com")),
        lead(&tenant, ids[1], None),
        lead(&tenant, ids[2], Some("mail2@example.com")),
        lead(&tenant, ids[3], None),
    ];

    // The upsert is applied and its answer lost; it is not resent (two of its records have
    // no duplicate check), so every lead is retried with the intents stored.
    ctx.zoho.inject(
        ZohoRoute::Upsert,
        Fault::LoseAnswer(Lost::Status(504, "gateway timeout".into())),
    );
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, MessageOutcome::Retry { .. })),
        "{outcomes:?}"
    );
    assert_eq!(ctx.zoho.leads(DC).len(), 4, "Zoho applied the lost call");
    expire_lead_claims(&ctx, &tenant).await;

    // Delivered again: the notes call is applied and its answer lost in turn.
    ctx.zoho.inject(
        ZohoRoute::Notes,
        Fault::LoseAnswer(Lost::Status(504, "gateway timeout".into())),
    );
    let outcomes = ctx.push_batch(&bodies, 2).await;
    assert!(outcomes.iter().any(|o| !done(o)), "{outcomes:?}");
    assert_eq!(ctx.zoho.pending_faults(), 0, "the notes fault fired");
    expire_lead_claims(&ctx, &tenant).await;

    // Once more: everything is found again, nothing is made twice.
    let outcomes = ctx.push_batch(&bodies, 3).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    for id in ids {
        assert_eq!(made(&ctx, id), (1, 1), "lead {id}");
    }
    assert_eq!(ctx.zoho.leads(DC).len(), 4);
    assert_eq!(ctx.zoho.notes(DC).len(), 4);
}
