//! Freshsales exactly once in effect: a push killed right after any of its CRM calls, or a create
//! whose answer was lost or garbled after Freshsales applied it, then delivered again, leaves one
//! contact, one deal (in the right stage) and one note for the lead. Faults come from a
//! `FaultProxy` in front of the simulator; pushes run through lead-push's `process_message`.

use std::collections::HashMap;

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::sim::freshworks::FsRecord;
use serde_json::json;
use shared::push::MessageOutcome;
use shared::Services;

const HOST: &str = "acme.myfreshworks.com";
const KEY: &str = "Xk9fQ2mZ7rT4vB1nL8sW";
const API: &str = "/crm/sales/api";

struct Setup {
    ctx: TestContext,
    proxy: FaultProxy,
    services: Services,
    tenant: String,
    /// Stage name → id in the default pipeline.
    stages: HashMap<String, String>,
}

/// A Pro tenant connected to `acme.myfreshworks.com` (directly), its stage mapping saved
/// (`qualified` → Qualification, `won` → Won), and services whose Freshsales calls go through a
/// fault proxy.
async fn setup() -> Setup {
    let ctx = TestContext::new().await;
    ctx.freshsales.add_account(HOST, KEY);
    let proxy = FaultProxy::start(&ctx.freshsales.base_url()).await;
    let services = ctx.services_with_provider_endpoint("freshsales", &proxy.endpoint());
    let tenant = TestContext::tenant();
    let answer = ctx
        .connect_freshsales(&tenant, "pro", json!({"domain": "acme", "api_key": KEY}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let pipeline = ctx.freshsales.pipelines(HOST)[0].clone();
    let stages: HashMap<String, String> = pipeline
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.id.clone()))
        .collect();
    let saved = ctx
        .provider_api(
            "connections-api/settings.json",
            "freshsales",
            (&tenant, "pro"),
            Some(json!({
                "pipeline_id": pipeline.id,
                "stage_mapping": {"qualified": stages["Qualification"], "won": stages["Won"]}
            })),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    proxy.clear();
    Setup {
        ctx,
        proxy,
        services,
        tenant,
        stages,
    }
}

/// How a lead reaches Freshsales' contact: by email (upsert), by mobile number (lookup, then
/// create), or with neither (create carrying the lead id).
#[derive(Clone, Copy, Debug)]
enum Kind {
    Email,
    PhoneOnly,
    Nothing,
}

/// Lead `i` of `kind`: its own lead id, email or phone, so each run starts from nothing.
fn lead(tenant: &str, kind: Kind, i: usize, stage: &str, summary: &str) -> String {
    let mut fields = json!({"id": lead_id(kind, i), "name": "Fatima Al-Kuwari",
                            "country": "QA", "source": "whatsapp", "score": 82, "stage": stage});
    match kind {
        Kind::Email => {
            fields["email"] = json!(format!("fatima-{i}@example.qa"));
            fields["phone"] = json!(format!("5555 {:04}", 1000 + i));
        }
        Kind::PhoneOnly => fields["phone"] = json!(format!("5555 {:04}", 2000 + i)),
        Kind::Nothing => {}
    }
    lead_message(tenant, "pro", fields, Some(summary))
}

fn lead_id(kind: Kind, i: usize) -> String {
    format!("lead-{kind:?}-{i}")
}

fn ids(records: &[FsRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// The account's records when a lead's pushes start.
struct Before {
    contacts: Vec<String>,
    deals: Vec<String>,
    notes: Vec<String>,
}

fn before(ctx: &TestContext) -> Before {
    Before {
        contacts: ids(&ctx.freshsales.contacts(HOST)),
        deals: ids(&ctx.freshsales.deals(HOST)),
        notes: ids(&ctx.freshsales.notes(HOST)),
    }
}

/// What is wrong with the records made since `before`: `None` when there is exactly one
/// contact, one deal in `stage` linked to it and one note on it that says `summary`.
fn wrong(ctx: &TestContext, before: &Before, stage: &str, summary: &str) -> Option<String> {
    let new = |all: Vec<FsRecord>, old: &[String]| -> Vec<FsRecord> {
        all.into_iter().filter(|r| !old.contains(&r.id)).collect()
    };
    let contacts = new(ctx.freshsales.contacts(HOST), &before.contacts);
    let deals = new(ctx.freshsales.deals(HOST), &before.deals);
    let notes = new(ctx.freshsales.notes(HOST), &before.notes);
    if contacts.len() != 1 || deals.len() != 1 || notes.len() != 1 {
        return Some(format!(
            "{} contacts, {} deals, {} notes (want one each)",
            contacts.len(),
            deals.len(),
            notes.len()
        ));
    }
    let (contact, deal, note) = (&contacts[0], &deals[0], &notes[0]);
    let mut problems = Vec::new();
    if deal.fields["deal_stage_id"] != json!(stage.parse::<u64>().unwrap()) {
        problems.push(format!("deal in stage {}", deal.fields["deal_stage_id"]));
    }
    if deal.fields["contact_ids"] != json!([contact.id.parse::<u64>().unwrap()]) {
        problems.push(format!("deal linked to {}", deal.fields["contact_ids"]));
    }
    if note.fields["targetable_id"] != json!(contact.id.parse::<u64>().unwrap()) {
        problems.push(format!("note on {}", note.fields["targetable_id"]));
    }
    if !note.fields["description"]
        .as_str()
        .is_some_and(|d| d.contains(summary))
    {
        problems.push(format!("note says {}", note.fields["description"]));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn is_done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

fn sequence(proxy: &FaultProxy) -> Vec<String> {
    proxy
        .calls()
        .iter()
        .map(|c| {
            let query = c
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let path = c.path.strip_prefix(API).unwrap_or(&c.path);
            format!("{} {path}{query}", c.method)
        })
        .collect()
}

/// The calls an uninterrupted first push of a new lead of `kind` makes.
async fn first_push_calls(s: &Setup, kind: Kind) -> Vec<String> {
    s.proxy.clear();
    let body = lead(&s.tenant, kind, 0, "qualified", "Wants 12 seats");
    let done = push_once(&s.services, &body).await;
    assert!(is_done(&done), "{done:?}");
    sequence(&s.proxy)
}

#[tokio::test]
async fn a_new_lead_costs_the_same_calls_as_before_and_nothing_is_looked_up_on_the_happy_path() {
    let s = setup().await;
    assert_eq!(
        first_push_calls(&s, Kind::Email).await,
        vec!["POST /contacts/upsert", "POST /deals", "POST /notes"]
    );
    let phone = first_push_calls(&s, Kind::PhoneOnly).await;
    assert_eq!(phone.len(), 4, "{phone:?}");
    assert!(phone[0].starts_with("GET /lookup?") && phone[0].contains("f=mobile_number"));
    assert_eq!(phone[1..], ["POST /contacts", "POST /deals", "POST /notes"]);
    assert_eq!(
        first_push_calls(&s, Kind::Nothing).await,
        vec!["POST /contacts", "POST /deals", "POST /notes"]
    );
    let deal = s
        .ctx
        .freshsales
        .deals(HOST)
        .into_iter()
        .find(|d| d.fields["name"] == "Fatima Al-Kuwari (LeadRelay) [lead-Email-0]");
    assert!(deal.is_some(), "the deal's name ends with its lead id");
    let marked = s
        .ctx
        .freshsales
        .contacts(HOST)
        .into_iter()
        .filter(|c| c.fields.get("external_id") == Some(&json!("lead-Nothing-0")))
        .count();
    assert_eq!(
        marked, 1,
        "a contact with no email or phone carries the lead id"
    );
}

/// For each CRM call a first push of a `kind` lead makes: kill the push right after Freshsales
/// applied that call, let the claim lapse, deliver the message again.
async fn crash_matrix_for_new_leads(kind: Kind) {
    let s = setup().await;
    let calls = first_push_calls(&s, kind).await;
    let qualified = s.stages["Qualification"].clone();
    let mut failures = Vec::new();
    for i in 1..=calls.len() {
        let body = lead(&s.tenant, kind, i, "qualified", "Wants 12 seats");
        let was = before(&s.ctx);
        s.proxy.clear();
        let killed = push_killed_after(&s.services, &s.proxy, CallMatch::Any, i, &body).await;
        if killed != KillResult::Killed {
            failures.push(format!(
                "kill after {}: ended first: {killed:?}",
                calls[i - 1]
            ));
            continue;
        }
        expire_lead_claims(&s.ctx, &s.tenant).await;
        let again = push_once(&s.services, &body).await;
        let mut problems = Vec::new();
        if !is_done(&again) {
            problems.push(format!("redelivery: {again:?}"));
        }
        problems.extend(wrong(&s.ctx, &was, &qualified, "Wants 12 seats"));
        if !problems.is_empty() {
            failures.push(format!(
                "kill after call {i} ({}): {} [calls: {:?}]",
                calls[i - 1],
                problems.join("; "),
                sequence(&s.proxy)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{kind:?} lead, first push {calls:?}:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn an_email_lead_killed_after_each_crm_call_then_redelivered_is_in_freshsales_once() {
    crash_matrix_for_new_leads(Kind::Email).await;
}

#[tokio::test]
async fn a_phone_only_lead_killed_after_each_crm_call_then_redelivered_is_in_freshsales_once() {
    crash_matrix_for_new_leads(Kind::PhoneOnly).await;
}

#[tokio::test]
async fn a_lead_without_email_or_phone_killed_after_each_crm_call_then_redelivered_is_in_freshsales_once(
) {
    crash_matrix_for_new_leads(Kind::Nothing).await;
}

#[tokio::test]
async fn a_lead_moving_to_won_killed_after_each_crm_call_then_redelivered_is_updated_once() {
    let s = setup().await;
    let won = s.stages["Won"].clone();
    let mut calls = Vec::new();
    let mut failures = Vec::new();
    // Lead 0 measures the update's calls; each later lead is killed after one of them.
    let mut i = 0;
    loop {
        let first = lead(&s.tenant, Kind::Email, i, "qualified", "Wants 12 seats");
        let moved = lead(&s.tenant, Kind::Email, i, "won", "Signed for 12 seats");
        let was = before(&s.ctx);
        assert!(is_done(&push_once(&s.services, &first).await));
        s.proxy.clear();
        if i == 0 {
            assert!(is_done(&push_once(&s.services, &moved).await));
            calls = sequence(&s.proxy);
            assert_eq!(wrong(&s.ctx, &was, &won, "Signed for 12 seats"), None);
            i += 1;
            continue;
        }
        if i > calls.len() {
            break;
        }
        let killed = push_killed_after(&s.services, &s.proxy, CallMatch::Any, i, &moved).await;
        if killed != KillResult::Killed {
            failures.push(format!(
                "kill after {}: ended first: {killed:?}",
                calls[i - 1]
            ));
        } else {
            expire_lead_claims(&s.ctx, &s.tenant).await;
            let again = push_once(&s.services, &moved).await;
            let mut problems = Vec::new();
            if !is_done(&again) {
                problems.push(format!("redelivery: {again:?}"));
            }
            problems.extend(wrong(&s.ctx, &was, &won, "Signed for 12 seats"));
            if !problems.is_empty() {
                failures.push(format!(
                    "kill after call {i} ({}): {}",
                    calls[i - 1],
                    problems.join("; ")
                ));
            }
        }
        i += 1;
    }
    assert_eq!(calls.len(), 3, "contact, deal stage, note: {calls:?}");
    assert!(
        failures.is_empty(),
        "update {calls:?}:\n{}",
        failures.join("\n")
    );
}

/// Runs lead `kind` once with `fault` on the first call `matches`, lets the claim lapse,
/// delivers it again; returns what is wrong with the records, if anything.
async fn lost_answer(kind: Kind, matches: CallMatch, fault: ProxyFault) -> Option<String> {
    let s = setup().await;
    let body = lead(&s.tenant, kind, 1, "qualified", "Wants 12 seats");
    let was = before(&s.ctx);
    let rule = s.proxy.on(matches, 1, fault.clone());
    let first = push_once(&s.services, &body).await;
    assert!(rule.has_fired(), "{fault:?} never fired: {first:?}");
    // Transient: handed back to SQS, or (the upsert, safe to resend) retried at once.
    assert!(
        !matches!(first, MessageOutcome::DeadLettered { .. }),
        "{fault:?}: {first:?}"
    );
    expire_lead_claims(&s.ctx, &s.tenant).await;
    let again = push_once(&s.services, &body).await;
    if !is_done(&again) {
        return Some(format!("{fault:?}: redelivery {again:?}"));
    }
    wrong(&s.ctx, &was, &s.stages["Qualification"], "Wants 12 seats")
        .map(|w| format!("{fault:?}: {w} [calls: {:?}]", sequence(&s.proxy)))
}

fn post(path: &str) -> CallMatch {
    CallMatch::Method("POST").and(CallMatch::path_is(&format!("{API}{path}")))
}

#[tokio::test]
async fn each_create_whose_answer_is_lost_after_freshsales_applied_it_is_made_once() {
    let mut failures = Vec::new();
    for (kind, path, fault) in [
        (Kind::Email, "/contacts/upsert", ProxyFault::LoseAnswer(502)),
        (Kind::Email, "/deals", ProxyFault::LoseAnswer(500)),
        (Kind::Email, "/notes", ProxyFault::LoseAnswer(502)),
        (Kind::PhoneOnly, "/contacts", ProxyFault::LoseAnswer(500)),
        (Kind::Nothing, "/contacts", ProxyFault::LoseAnswer(502)),
    ] {
        if let Some(problem) = lost_answer(kind, post(path), fault).await {
            failures.push(format!("{kind:?} POST {path}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn each_create_answered_with_garbage_after_freshsales_applied_it_is_retried_and_made_once() {
    let mut failures = Vec::new();
    for (kind, path) in [
        (Kind::Email, "/contacts/upsert"),
        (Kind::Email, "/deals"),
        (Kind::Email, "/notes"),
        (Kind::PhoneOnly, "/contacts"),
        (Kind::Nothing, "/contacts"),
    ] {
        if let Some(problem) = lost_answer(kind, post(path), ProxyFault::GarbageAfterApply).await {
            failures.push(format!("{kind:?} POST {path}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_deal_found_again_after_a_lost_answer_costs_one_read_of_the_contact() {
    let s = setup().await;
    let body = lead(&s.tenant, Kind::Email, 1, "qualified", "Wants 12 seats");
    s.proxy.on(post("/deals"), 1, ProxyFault::LoseAnswer(500));
    push_once(&s.services, &body).await;
    expire_lead_claims(&s.ctx, &s.tenant).await;
    s.proxy.clear();
    assert!(is_done(&push_once(&s.services, &body).await));
    let calls = sequence(&s.proxy);
    let read = calls
        .iter()
        .position(|c| c.starts_with("GET /contacts/") && c.ends_with("?include=deals"));
    assert!(read.is_some(), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c == "POST /deals"),
        "found, not created again: {calls:?}"
    );
    assert_eq!(
        calls,
        vec![
            // The contact is known by now: updated by id.
            format!("PUT /contacts/{}", s.ctx.freshsales.contacts(HOST)[0].id),
            calls[read.unwrap()].clone(),
            "POST /notes".to_string()
        ]
    );
}
