//! Bitrix24 batch pushes (issue 16) through lead-push's `process_batch`, against moto and the
//! Bitrix24 simulator: many new leads of one portal in a few `batch` calls (counted), a command
//! the portal refuses failing its lead alone, and each batch call applied with its answer lost,
//! then delivered again, leaving one contact, one deal and one comment per lead.

use relay_tests::context::TestContext;
use relay_tests::crash::expire_lead_claims;
use relay_tests::queue::lead_message;
use relay_tests::setup;
use relay_tests::sim::{BitrixRoute, Fault, Lost};
use serde_json::{json, Value};
use shared::push::MessageOutcome;

const PORTAL: &str = "souq-batch.bitrix24.com";

/// A Pro tenant with PORTAL connected and a stage mapping on the default category.
async fn connected(ctx: &TestContext) -> String {
    let settings =
        json!({"pipeline_id": "0", "stage_mapping": {"qualified": "PREPARATION", "won": "WON"}});
    setup::bitrix24_with_settings(ctx, PORTAL, settings)
        .await
        .expect("a connected Bitrix24 tenant")
        .tenant
}

/// A lead named `<name>` with its own email and phone, at `stage`, with `summary`.
fn lead(tenant: &str, id: &str, name: &str, stage: &str, summary: &str, at: &str) -> String {
    let n = id
        .bytes()
        .fold(7_u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let body = lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": name, "email": format!("{id}@example.qa"),
               "phone": format!("+974 55{:06}", n % 1_000_000), "source": "whatsapp",
               "score": 80, "stage": stage}),
        Some(summary),
    );
    let mut body: Value = serde_json::from_str(&body).unwrap();
    body["occurred_at"] = at.into();
    body.to_string()
}

fn new_lead(tenant: &str, id: &str) -> String {
    lead(
        tenant,
        id,
        "Noura Al-Kuwari",
        "qualified",
        "Wants 200 boxes of maamoul",
        "2026-11-28T04:00:00Z",
    )
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

/// What the portal holds for lead `id` that is not one contact, one deal in `stage` linked to
/// it and one comment on that deal saying `summary`; `None` when all is right.
fn problems(ctx: &TestContext, id: &str, stage: &str, summary: &str) -> Option<String> {
    let contacts: Vec<_> = ctx
        .bitrix
        .contacts(PORTAL)
        .into_iter()
        .filter(|c| c.fields.get("ORIGIN_ID") == Some(&json!(id)))
        .collect();
    let deals: Vec<_> = ctx
        .bitrix
        .deals(PORTAL)
        .into_iter()
        .filter(|d| d.fields.get("ORIGIN_ID") == Some(&json!(id)))
        .collect();
    let marker = format!("Lead: {id} ·");
    let comments: Vec<_> = ctx
        .bitrix
        .comments(PORTAL)
        .into_iter()
        .filter(|c| c.comment.contains(&marker))
        .collect();
    if (contacts.len(), deals.len(), comments.len()) != (1, 1, 1) {
        return Some(format!(
            "{id}: {} contacts, {} deals, {} comments",
            contacts.len(),
            deals.len(),
            comments.len()
        ));
    }
    let mut wrong = Vec::new();
    if deals[0].fields["CONTACT_ID"] != json!(contacts[0].id.to_string()) {
        wrong.push("the deal's contact".to_string());
    }
    if deals[0].fields["STAGE_ID"] != json!(stage) {
        wrong.push(format!("deal in {}", deals[0].fields["STAGE_ID"]));
    }
    if comments[0].entity_id != deals[0].id || !comments[0].comment.contains(summary) {
        wrong.push(format!("comment {:?}", comments[0].comment));
    }
    (!wrong.is_empty()).then(|| format!("{id}: {}", wrong.join(", ")))
}

fn all_problems(ctx: &TestContext, ids: &[String], stage: &str, summary: &str) -> Vec<String> {
    ids.iter()
        .filter_map(|id| problems(ctx, id, stage, summary))
        .collect()
}

#[tokio::test]
async fn new_leads_go_in_four_batch_calls_and_their_updates_in_three() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    ctx.bitrix.clear_requests();

    let ids: Vec<String> = (0..10).map(|i| format!("b24-ten-{i}")).collect();
    let bodies: Vec<String> = ids.iter().map(|id| new_lead(&tenant, id)).collect();
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(
        ctx.bitrix.rest_methods(PORTAL),
        ["batch"; 4],
        "10 new leads: find, contacts, deals, comments (50 one at a time)"
    );
    let wrong = all_problems(&ctx, &ids, "PREPARATION", "maamoul");
    assert!(wrong.is_empty(), "{wrong:?}");

    // The same leads later: a new stage and summary move each deal and comment.
    ctx.bitrix.clear_requests();
    let later: Vec<String> = ids
        .iter()
        .map(|id| {
            lead(
                &tenant,
                id,
                "Noura Al-Kuwari",
                "won",
                "Paid the deposit",
                "2026-11-29T04:00:00Z",
            )
        })
        .collect();
    let outcomes = ctx.push_batch(&later, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(
        ctx.bitrix.rest_methods(PORTAL),
        ["batch"; 3],
        "known leads: contact, deal and comment updates, no search"
    );
    let wrong = all_problems(&ctx, &ids, "WON", "Paid the deposit");
    assert!(wrong.is_empty(), "{wrong:?}");

    // 30 new leads: 60 searches need two calls, then one call per step.
    ctx.bitrix.clear_requests();
    let many: Vec<String> = (0..30).map(|i| format!("b24-many-{i}")).collect();
    let bodies: Vec<String> = many.iter().map(|id| new_lead(&tenant, id)).collect();
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(ctx.bitrix.rest_methods(PORTAL), ["batch"; 5]);
    let wrong = all_problems(&ctx, &many, "PREPARATION", "maamoul");
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[tokio::test]
async fn a_command_the_portal_refuses_fails_its_lead_alone() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    ctx.bitrix.refuse_records_with(PORTAL, "Refused");
    ctx.bitrix.clear_requests();

    let ids: Vec<String> = (0..5).map(|i| format!("b24-rule-{i}")).collect();
    let bodies: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let name = if i == 2 {
                "Refused Person"
            } else {
                "Noura Al-Kuwari"
            };
            lead(
                &tenant,
                id,
                name,
                "qualified",
                "Wants 200 boxes of maamoul",
                "2026-11-28T04:00:00Z",
            )
        })
        .collect();
    let outcomes = ctx.push_batch(&bodies, 1).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            assert!(
                matches!(outcome, MessageOutcome::DeadLettered { reason } if reason.contains("INVALID_ARG_VALUE")),
                "the refused lead: {outcome:?}"
            );
        } else {
            assert!(done(outcome), "lead {i}: {outcome:?}");
        }
    }
    assert_eq!(ctx.bitrix.rest_methods(PORTAL), ["batch"; 4]);
    let others: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, id)| id.clone())
        .collect();
    let wrong = all_problems(&ctx, &others, "PREPARATION", "maamoul");
    assert!(wrong.is_empty(), "{wrong:?}");
    assert!(
        problems(&ctx, &ids[2], "PREPARATION", "maamoul")
            .is_some_and(|p| p.contains("0 contacts, 0 deals, 0 comments")),
        "the refused lead made nothing"
    );
}

#[tokio::test]
async fn each_batch_call_applied_with_its_answer_lost_is_redelivered_without_duplicates() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let mut failures = Vec::new();
    // The 2nd, 3rd and 4th batch calls create contacts, deals and comments.
    for (nth, step) in [(2, "contacts"), (3, "deals"), (4, "comments")] {
        for (k, lost) in [
            Lost::Status(500, "{\"error\":\"INTERNAL_SERVER_ERROR\"}".into()),
            Lost::Reset,
            Lost::Garbage,
        ]
        .into_iter()
        .enumerate()
        {
            let case = format!("{step} answer lost as {lost:?}");
            let ids: Vec<String> = (0..4).map(|i| format!("b24-lost-{nth}-{k}-{i}")).collect();
            let bodies: Vec<String> = ids.iter().map(|id| new_lead(&tenant, id)).collect();
            ctx.bitrix.clear_requests();
            ctx.bitrix.inject_nth(
                BitrixRoute::Rest("batch"),
                nth,
                Fault::LoseAnswer(lost.clone()),
            );
            let first = ctx.push_batch(&bodies, 1).await;
            if ctx.bitrix.pending_faults() != 0 {
                failures.push(format!("{case}: the fault never fired: {first:?}"));
                continue;
            }
            if !first
                .iter()
                .all(|o| matches!(o, MessageOutcome::Retry { .. }))
            {
                failures.push(format!(
                    "{case}: not all handed back for a retry: {first:?}"
                ));
            }
            expire_lead_claims(&ctx, &tenant).await;
            let again = ctx.push_batch(&bodies, 1).await;
            if !again.iter().all(done) {
                failures.push(format!("{case}: redelivery {again:?}"));
            }
            let wrong = all_problems(&ctx, &ids, "PREPARATION", "maamoul");
            if !wrong.is_empty() {
                failures.push(format!(
                    "{case}: {wrong:?}; calls {:?}",
                    ctx.bitrix.rest_methods(PORTAL)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
