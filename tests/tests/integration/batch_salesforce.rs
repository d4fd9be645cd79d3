//! Salesforce batch pushes (issue 16) through `process_batch`, moto and the Salesforce
//! simulator: one tenant's new leads go in a few sObject Collections calls (each counted once
//! against the org's allocation), a record the org refuses fails its own lead alone, and a
//! collections create whose answer was lost is found again on redelivery, never duplicated.

use relay_tests::context::TestContext;
use relay_tests::queue::{inbound_messages, lead_message};
use relay_tests::setup;
use relay_tests::sim::{Fault, Lost, SalesforceRoute};
use serde_json::{json, Value};
use shared::connections::open_session;
use shared::identity::TenantId;
use shared::lead::parse_message;
use shared::provider::{for_provider, LeadBatch, ProgressSnapshot};
use shared::push::{process_batch, MessageOutcome};
use shared::Provider;

const ACME: &str = "acme";

/// A Business tenant connected to the org (its schema described and cached at connect), with a
/// stage mapping and no conversion stage: new leads stay Leads.
async fn tenant(ctx: &TestContext) -> String {
    let settings = json!({
        "pipeline_id": "012000000000000AAA",
        "stage_mapping": {"qualified": "Qualification", "proposal": "Proposal/Price Quote",
                          "won": "Closed Won", "lost": "Closed Lost"}
    });
    setup::salesforce_with_settings(ctx, settings)
        .await
        .expect("a connected Salesforce tenant")
        .tenant
}

/// The lead `lead-<tag>` with its own email and a summary.
fn lead(tenant: &str, tag: &str) -> String {
    lead_message(
        tenant,
        "business",
        json!({"id": format!("lead-{tag}"), "name": format!("Noura Batch{tag}"),
               "email": format!("noura.{tag}@example.com"), "source": "website",
               "score": 82, "stage": "qualified"}),
        Some("Needs cold-chain trucking Doha to Riyadh, twice a week."),
    )
}

/// The API calls (not OAuth) since the last clear, as `METHOD path`; a composite's
/// subrequests are not counted apart.
fn api_calls(ctx: &TestContext) -> Vec<String> {
    ctx.salesforce
        .requests()
        .iter()
        .filter(|r| !r.extra.sub && !r.path.starts_with("/services/oauth2/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

/// The org's Leads with `email`, and the Tasks naming `lead_id`.
fn records_of(ctx: &TestContext, lead_id: &str, email: &str) -> (Vec<Value>, Vec<Value>) {
    let leads = ctx
        .salesforce
        .records(ACME, "Lead")
        .into_iter()
        .filter(|r| text(r, "Email") == Some(email))
        .collect();
    let tasks = ctx
        .salesforce
        .records(ACME, "Task")
        .into_iter()
        .filter(|t| text(t, "Subject").is_some_and(|s| s.ends_with(&format!("[{lead_id}]"))))
        .collect();
    (leads, tasks)
}

/// Asserts that the lead `lead-<tag>` is one Lead with one Task on it.
fn assert_one_lead_with_its_task(ctx: &TestContext, tag: &str) {
    let (leads, tasks) = records_of(
        ctx,
        &format!("lead-{tag}"),
        &format!("noura.{tag}@example.com"),
    );
    assert_eq!(
        (leads.len(), tasks.len()),
        (1, 1),
        "lead-{tag}: one Lead and one Task"
    );
    assert_eq!(tasks[0]["WhoId"], leads[0]["Id"], "lead-{tag}'s task");
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

#[tokio::test]
async fn ten_new_leads_take_three_salesforce_calls_each_counted_once() {
    let ctx = TestContext::new().await;
    let tenant = tenant(&ctx).await;
    let bodies: Vec<String> = (0..10).map(|i| lead(&tenant, &format!("a{i}"))).collect();
    let usage_before = ctx.salesforce.api_usage(ACME);
    ctx.salesforce.clear_requests();

    let outcomes = process_batch(&ctx.services, inbound_messages(&bodies, 1)).await;

    assert_eq!(outcomes.len(), 10);
    assert!(outcomes.iter().all(|(_, o)| done(o)), "{outcomes:?}");
    for i in 0..10 {
        assert_one_lead_with_its_task(&ctx, &format!("a{i}"));
    }
    // Duplicate queries for all ten (one composite), the ten Leads, the ten Tasks: pushed one
    // by one the same leads cost 20 calls.
    let calls = api_calls(&ctx);
    assert_eq!(
        calls,
        [
            "POST /services/data/v62.0/composite",
            "POST /services/data/v62.0/composite/sobjects",
            "POST /services/data/v62.0/composite/sobjects",
        ],
        "the batch's Salesforce calls"
    );
    assert_eq!(
        ctx.salesforce.api_usage(ACME) - usage_before,
        3,
        "each call, whatever it carries, counts once against the org's allocation"
    );

    // The same messages again change nothing and cost no call.
    ctx.salesforce.clear_requests();
    let again = process_batch(&ctx.services, inbound_messages(&bodies, 2)).await;
    assert!(again.iter().all(|(_, o)| done(o)), "{again:?}");
    assert_eq!(ctx.salesforce.requests().len(), 0);

    // A later message of each, with a new score: the ten known Leads updated in one call, and
    // their Tasks (whose text states the score) in one more.
    let later: Vec<String> = bodies
        .iter()
        .map(|body| {
            let mut message: Value = serde_json::from_str(body).unwrap();
            message["lead"]["score"] = json!(35);
            message["occurred_at"] = json!("2026-11-28T05:00:00Z");
            message.to_string()
        })
        .collect();
    let updated = process_batch(&ctx.services, inbound_messages(&later, 1)).await;
    assert!(updated.iter().all(|(_, o)| done(o)), "{updated:?}");
    let calls = api_calls(&ctx);
    assert_eq!(
        calls,
        [
            "PATCH /services/data/v62.0/composite/sobjects",
            "PATCH /services/data/v62.0/composite/sobjects",
        ]
    );
    for i in 0..10 {
        assert_one_lead_with_its_task(&ctx, &format!("a{i}"));
        let (leads, _) = records_of(
            &ctx,
            &format!("lead-a{i}"),
            &format!("noura.a{i}@example.com"),
        );
        assert_eq!(leads[0]["Rating"], "Cold", "lead-a{i}'s score moved");
        let (_, tasks) = records_of(
            &ctx,
            &format!("lead-a{i}"),
            &format!("noura.a{i}@example.com"),
        );
        assert!(
            text(&tasks[0], "Description").is_some_and(|d| d.contains("Score: 35/100")),
            "lead-a{i}'s task"
        );
    }
}

#[tokio::test]
async fn a_lead_the_orgs_validation_rule_refuses_fails_alone() {
    let ctx = TestContext::new().await;
    let tenant = tenant(&ctx).await;
    ctx.salesforce.add_validation_rule(
        ACME,
        "Lead",
        "Email",
        "blocked",
        "Leads from this address are not accepted",
    );
    let mut bodies: Vec<String> = (0..4).map(|i| lead(&tenant, &format!("v{i}"))).collect();
    bodies.insert(
        2,
        lead_message(
            &tenant,
            "business",
            json!({"id": "lead-refused", "name": "Refused Person",
                   "email": "blocked@example.com", "stage": "qualified"}),
            Some("Wants a quote."),
        ),
    );

    ctx.salesforce.clear_requests();
    let outcomes = process_batch(&ctx.services, inbound_messages(&bodies, 1)).await;

    // The refusal came inside the answer of the one call that created all five Leads.
    let creates: Vec<usize> = ctx
        .salesforce
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/composite/sobjects"))
        .map(|r| r.body["records"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        creates,
        [5, 4],
        "five Leads in one call, then the four Tasks"
    );
    for (i, (_, outcome)) in outcomes.iter().enumerate() {
        if i == 2 {
            let MessageOutcome::DeadLettered { reason } = outcome else {
                panic!("the refused lead is dead-lettered: {outcome:?}");
            };
            assert!(
                reason.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                "{reason}"
            );
        } else {
            assert!(done(outcome), "lead {i}: {outcome:?}");
        }
    }
    for i in 0..4 {
        assert_one_lead_with_its_task(&ctx, &format!("v{i}"));
    }
    let (leads, tasks) = records_of(&ctx, "lead-refused", "blocked@example.com");
    assert_eq!((leads.len(), tasks.len()), (0, 0));
}

#[tokio::test]
async fn a_lost_collections_answer_is_redelivered_without_a_duplicate() {
    let ctx = TestContext::new().await;
    let tenant = tenant(&ctx).await;
    let bodies: Vec<String> = (0..5).map(|i| lead(&tenant, &format!("l{i}"))).collect();
    // The Leads' create is applied, then its answer lost.
    ctx.salesforce.inject(
        SalesforceRoute::Collections,
        Fault::LoseAnswer(Lost::Status(502, "Bad Gateway".into())),
    );

    let first = process_batch(&ctx.services, inbound_messages(&bodies, 1)).await;

    assert!(
        first
            .iter()
            .all(|(_, o)| matches!(o, MessageOutcome::Retry { .. })),
        "{first:?}"
    );
    assert_eq!(ctx.salesforce.pending_faults(), 0);
    assert_eq!(
        ctx.salesforce.records(ACME, "Lead").len(),
        5,
        "the lost call did create them"
    );

    ctx.salesforce.clear_requests();
    let again = process_batch(&ctx.services, inbound_messages(&bodies, 2)).await;

    assert!(again.iter().all(|(_, o)| done(o)), "{again:?}");
    for i in 0..5 {
        assert_one_lead_with_its_task(&ctx, &format!("l{i}"));
    }
    // The five Leads found by their markers in one lookup, updated in one call, their Tasks
    // created in one.
    let calls = ctx
        .salesforce
        .requests()
        .iter()
        .filter(|r| !r.extra.sub && !r.path.starts_with("/services/oauth2/"))
        .count();
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn more_leads_than_one_collection_holds_go_in_calls_of_two_hundred() {
    let ctx = TestContext::new().await;
    let tenant = tenant(&ctx).await;
    let bodies: Vec<String> = (0..230).map(|i| lead(&tenant, &format!("c{i}"))).collect();
    let parsed: Vec<_> = bodies
        .iter()
        .map(|b| parse_message(b).expect("a lead").lead)
        .collect();
    let open = open_session(
        &ctx.services,
        &TenantId::parse(&tenant).unwrap(),
        Provider::Salesforce,
    )
    .await
    .expect("the connection opens");
    let session = open.session().expect("a session");
    let settings = open.connection.settings.clone();
    let mut batch = LeadBatch::in_memory(
        Provider::Salesforce,
        parsed
            .iter()
            .map(|l| (l, ProgressSnapshot::default()))
            .collect(),
    );
    let usage_before = ctx.salesforce.api_usage(ACME);

    let result = for_provider(Provider::Salesforce)
        .unwrap()
        .push_leads(&session, settings.as_ref(), &mut batch)
        .await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(batch.open().len(), 230, "no lead failed");
    assert_eq!(ctx.salesforce.records(ACME, "Lead").len(), 230);
    assert_eq!(ctx.salesforce.records(ACME, "Task").len(), 230);
    let sizes: Vec<usize> = ctx
        .salesforce
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/composite/sobjects"))
        .map(|r| r.body["records"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(
        sizes,
        [200, 30, 200, 30],
        "Leads, then Tasks, 200 at most per call"
    );
    // The duplicate queries of all 230 in one composite, two calls of Leads, two of Tasks.
    assert_eq!(ctx.salesforce.api_usage(ACME) - usage_before, 5);
    for (lead, (progress, outcome)) in parsed.iter().zip(batch.finish(Ok(()))) {
        assert!(outcome.is_ok());
        assert!(progress.records.contains_key("lead"), "{}", lead.id);
        assert!(progress.records.contains_key("task"), "{}", lead.id);
        assert!(!progress.in_doubt("lead") && !progress.in_doubt("task"));
    }
}
