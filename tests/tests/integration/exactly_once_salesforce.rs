//! Salesforce exactly once in effect: a push killed right after each of its CRM calls (the org
//! applied the call, the relay never heard back), or a create whose answer was lost, then the
//! message delivered again, leaves one Lead, one Task, and after conversion one Contact, Account
//! and Opportunity in the right stage. The faults come from a `FaultProxy` in front of the
//! Salesforce simulator; the org has no External ID field, so every lost create is found again by
//! its marker (Description line, Task subject) or, for `convertLead`, by reading the Lead.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::setup;
use serde_json::{json, Value};
use shared::push::MessageOutcome;
use shared::Services;

const ACME: &str = "acme";

/// A Business tenant connected to the org (directly, not through the proxy), converting leads
/// when they are qualified.
async fn tenant(ctx: &TestContext) -> String {
    let settings = json!({
        "pipeline_id": "012000000000000AAA",
        "stage_mapping": {"qualified": "Qualification", "proposal": "Proposal/Price Quote",
                          "won": "Closed Won", "lost": "Closed Lost"},
        "convert_at": "qualified"
    });
    setup::salesforce_with_settings(ctx, settings)
        .await
        .expect("a connected Salesforce tenant")
        .tenant
}

/// The lead `id` with `email`, in `stage`, as of `at` (later stages are later messages).
fn lead(tenant: &str, id: &str, email: &str, stage: &str, at: &str) -> String {
    let body = lead_message(
        tenant,
        "business",
        json!({"id": id, "name": "Noura Al-Thani", "email": email, "source": "website",
               "score": 82, "stage": stage}),
        Some("Needs cold-chain trucking Doha to Riyadh, twice a week."),
    );
    let mut message: Value = serde_json::from_str(&body).unwrap();
    message["occurred_at"] = json!(at);
    message.to_string()
}

const FIRST: &str = "2026-11-28T04:00:00Z";
const LATER: &str = "2026-11-28T05:00:00Z";
const LATEST: &str = "2026-11-28T06:00:00Z";

/// Every Salesforce API call (REST and SOAP), not the OAuth endpoints.
fn crm_calls() -> CallMatch {
    CallMatch::path("/services/oauth2/").negate()
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

fn with_email(ctx: &TestContext, object: &str, email: &str) -> Vec<Value> {
    ctx.salesforce
        .records(ACME, object)
        .into_iter()
        .filter(|r| text(r, "Email") == Some(email))
        .collect()
}

fn tasks_of(ctx: &TestContext, lead_id: &str) -> Vec<Value> {
    ctx.salesforce
        .records(ACME, "Task")
        .into_iter()
        .filter(|t| text(t, "Subject").is_some_and(|s| s.ends_with(&format!("[{lead_id}]"))))
        .collect()
}

/// What is wrong with the org's records of the lead `id` (email `email`); `None` when it holds
/// one Lead and one Task on it, still a lead.
fn not_one_lead(ctx: &TestContext, id: &str, email: &str) -> Option<String> {
    let leads = with_email(ctx, "Lead", email);
    let tasks = tasks_of(ctx, id);
    if leads.len() != 1 || tasks.len() != 1 {
        return Some(format!(
            "{} leads, {} tasks (want one each)",
            leads.len(),
            tasks.len()
        ));
    }
    (tasks[0]["WhoId"] != leads[0]["Id"]).then(|| "the task is not on the lead".to_string())
}

/// What is wrong with the org's records of a converted lead; `None` when it holds one Lead
/// (converted), one Contact, one Opportunity in `stage` on it, and one Task on the contact.
fn not_one_converted(ctx: &TestContext, id: &str, email: &str, stage: &str) -> Option<String> {
    let leads = with_email(ctx, "Lead", email);
    let contacts = with_email(ctx, "Contact", email);
    let tasks = tasks_of(ctx, id);
    if leads.len() != 1 || contacts.len() != 1 || tasks.len() != 1 {
        return Some(format!(
            "{} leads, {} contacts, {} tasks (want one each)",
            leads.len(),
            contacts.len(),
            tasks.len()
        ));
    }
    let contact = &contacts[0]["Id"];
    let opportunities: Vec<Value> = ctx
        .salesforce
        .records(ACME, "Opportunity")
        .into_iter()
        .filter(|o| &o["ContactId"] == contact || o["AccountId"] == contacts[0]["AccountId"])
        .collect();
    let mut problems = Vec::new();
    if leads[0]["IsConverted"] != true {
        problems.push("the lead is not converted".to_string());
    }
    if opportunities.len() != 1 {
        problems.push(format!("{} opportunities", opportunities.len()));
    } else if text(&opportunities[0], "StageName") != Some(stage) {
        problems.push(format!(
            "opportunity in {:?}, want {stage}",
            opportunities[0]["StageName"]
        ));
    }
    if &tasks[0]["WhoId"] != contact {
        problems.push("the task is not on the contact".into());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The CRM calls an uninterrupted delivery of `body` makes, as `METHOD path (reference...)`.
async fn calls_of(services: &Services, proxy: &FaultProxy, body: &str) -> Vec<String> {
    proxy.clear();
    let done = push_once(services, body).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    proxy
        .calls()
        .iter()
        .filter(|c| crm_calls().matches(c))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

/// Kills the delivery of `body` after its `i`th CRM call, lets the claim lapse and delivers it
/// again; the problems seen, if any.
async fn kill_then_redeliver(
    ctx: &TestContext,
    services: &Services,
    proxy: &FaultProxy,
    tenant: &str,
    i: usize,
    body: &str,
) -> Vec<String> {
    proxy.clear();
    let killed = push_killed_after(services, proxy, crm_calls(), i, body).await;
    if killed != KillResult::Killed {
        return vec![format!("the push ended first: {killed:?}")];
    }
    expire_lead_claims(ctx, tenant).await;
    let again = push_once(services, body).await;
    if matches!(again, MessageOutcome::Done { .. }) {
        Vec::new()
    } else {
        vec![format!("redelivery: {again:?}")]
    }
}

#[tokio::test]
async fn a_new_lead_killed_after_each_salesforce_call_lands_once() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;

    let reference = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "ref", "ref@example.qa", "contacted", FIRST),
    )
    .await;
    assert_eq!(
        reference.len(),
        2,
        "duplicate queries, then Lead + Task: {reference:?}"
    );

    let mut failures = Vec::new();
    for i in 1..=reference.len() {
        let (id, email) = (format!("new-{i}"), format!("new-{i}@example.qa"));
        let body = lead(&tenant, &id, &email, "contacted", FIRST);
        let mut problems = kill_then_redeliver(&ctx, &services, &proxy, &tenant, i, &body).await;
        problems.extend(not_one_lead(&ctx, &id, &email));
        if !problems.is_empty() {
            failures.push(format!(
                "after call {i} ({}): {}",
                reference[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_lead_converting_and_moving_on_killed_after_each_call_is_converted_once() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;

    // The reference lead: created, converted (lead update, convertLead, opportunity stage),
    // then won (contact + opportunity in one composite).
    push_once(
        &services,
        &lead(&tenant, "ref", "ref@example.qa", "contacted", FIRST),
    )
    .await;
    let converting = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "ref", "ref@example.qa", "qualified", LATER),
    )
    .await;
    assert_eq!(converting.len(), 3, "{converting:?}");
    assert!(
        converting[1].contains("/services/Soap/u/"),
        "{converting:?}"
    );
    let winning = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "ref", "ref@example.qa", "won", LATEST),
    )
    .await;
    assert_eq!(winning.len(), 1, "{winning:?}");

    let mut failures = Vec::new();
    for i in 1..=converting.len() {
        let (id, email) = (format!("conv-{i}"), format!("conv-{i}@example.qa"));
        let done = push_once(&services, &lead(&tenant, &id, &email, "contacted", FIRST)).await;
        assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
        let qualified = lead(&tenant, &id, &email, "qualified", LATER);
        let mut problems =
            kill_then_redeliver(&ctx, &services, &proxy, &tenant, i, &qualified).await;
        problems.extend(not_one_converted(&ctx, &id, &email, "Qualification"));
        // And on to the next stage: the opportunity follows, nothing is created again.
        let won = push_once(&services, &lead(&tenant, &id, &email, "won", LATEST)).await;
        if !matches!(won, MessageOutcome::Done { .. }) {
            problems.push(format!("won: {won:?}"));
        }
        problems.extend(not_one_converted(&ctx, &id, &email, "Closed Won"));
        if !problems.is_empty() {
            failures.push(format!(
                "after call {i} ({}): {}",
                converting[i - 1],
                problems.join("; ")
            ));
        }
    }
    for i in 1..=winning.len() {
        let (id, email) = (format!("won-{i}"), format!("won-{i}@example.qa"));
        for (stage, at) in [("contacted", FIRST), ("qualified", LATER)] {
            let done = push_once(&services, &lead(&tenant, &id, &email, stage, at)).await;
            assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
        }
        let won = lead(&tenant, &id, &email, "won", LATEST);
        let mut problems = kill_then_redeliver(&ctx, &services, &proxy, &tenant, i, &won).await;
        problems.extend(not_one_converted(&ctx, &id, &email, "Closed Won"));
        if !problems.is_empty() {
            failures.push(format!(
                "won, after call {i} ({}): {}",
                winning[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_lead_that_is_a_contact_killed_after_each_call_gets_one_opportunity_and_task() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;
    let contact_for = |email: &str| {
        let account =
            ctx.salesforce
                .seed_record(ACME, "Account", json!({"Name": "Gulf Logistics"}));
        ctx.salesforce.seed_record(
            ACME,
            "Contact",
            json!({"LastName": "Al-Thani", "Email": email, "AccountId": account}),
        )
    };

    contact_for("ref@example.qa");
    let reference = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "ref", "ref@example.qa", "qualified", FIRST),
    )
    .await;
    assert_eq!(
        reference.len(),
        2,
        "duplicate queries, then contact + Opportunity + Task: {reference:?}"
    );

    let mut failures = Vec::new();
    for i in 1..=reference.len() {
        let (id, email) = (format!("known-{i}"), format!("known-{i}@example.qa"));
        let contact = contact_for(&email);
        let body = lead(&tenant, &id, &email, "qualified", FIRST);
        let mut problems = kill_then_redeliver(&ctx, &services, &proxy, &tenant, i, &body).await;
        let opportunities: Vec<Value> = ctx
            .salesforce
            .records(ACME, "Opportunity")
            .into_iter()
            .filter(|o| text(o, "ContactId") == Some(contact.as_str()))
            .collect();
        let tasks = tasks_of(&ctx, &id);
        if opportunities.len() != 1 || tasks.len() != 1 {
            problems.push(format!(
                "{} opportunities, {} tasks (want one each)",
                opportunities.len(),
                tasks.len()
            ));
        }
        if !with_email(&ctx, "Lead", &email).is_empty() {
            problems.push("a lead was created for a known contact".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "after call {i} ({}): {}",
                reference[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Delivers `body` with `fault` on the first call matching `call`, then again once the claim
/// lapsed; the first outcome is returned after the second succeeded.
async fn lost_then_redelivered(
    ctx: &TestContext,
    services: &Services,
    proxy: &FaultProxy,
    tenant: &str,
    call: CallMatch,
    fault: ProxyFault,
    body: &str,
) -> MessageOutcome {
    let lost = proxy.on(call, 1, fault);
    let first = push_once(services, body).await;
    assert!(lost.has_fired(), "the call was sent: {first:?}");
    assert!(
        matches!(first, MessageOutcome::Retry { .. }),
        "a lost answer is retried, never dead-lettered: {first:?}"
    );
    expire_lead_claims(ctx, tenant).await;
    let again = push_once(services, body).await;
    assert!(matches!(again, MessageOutcome::Done { .. }), "{again:?}");
    first
}

fn composite_creating(reference: &str) -> CallMatch {
    CallMatch::path("/composite").and(CallMatch::body(&format!("\"referenceId\":\"{reference}\"")))
}

#[tokio::test]
async fn a_lead_create_whose_answer_is_lost_or_unreadable_is_found_by_its_marker() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;

    for (n, fault) in [
        ProxyFault::LoseAnswer(500),
        ProxyFault::LoseAnswer(502),
        ProxyFault::GarbageAfterApply,
    ]
    .into_iter()
    .enumerate()
    {
        let (id, email) = (format!("lost-{n}"), format!("lost-{n}@example.qa"));
        let body = lead(&tenant, &id, &email, "contacted", FIRST);
        lost_then_redelivered(
            &ctx,
            &services,
            &proxy,
            &tenant,
            composite_creating("lead"),
            fault,
            &body,
        )
        .await;
        assert_eq!(not_one_lead(&ctx, &id, &email), None, "lead {n}");
    }

    // A lead without email or phone: no duplicate query can find it, the marker does.
    let body = lead_message(
        &tenant,
        "business",
        json!({"id": "anonymous-1", "name": "Walk-in visitor", "stage": "contacted"}),
        Some("Asked about prices at the stand."),
    );
    lost_then_redelivered(
        &ctx,
        &services,
        &proxy,
        &tenant,
        composite_creating("lead"),
        ProxyFault::LoseAnswer(500),
        &body,
    )
    .await;
    let leads: Vec<Value> = ctx
        .salesforce
        .records(ACME, "Lead")
        .into_iter()
        .filter(|l| text(l, "Company") == Some("Walk-in visitor"))
        .collect();
    assert_eq!(leads.len(), 1, "{leads:?}");
    assert_eq!(
        text(&leads[0], "Description"),
        Some("LeadRelay lead: anonymous-1")
    );
    assert_eq!(tasks_of(&ctx, "anonymous-1").len(), 1);
}

#[tokio::test]
async fn a_conversion_whose_answer_is_lost_is_read_back_not_sent_again() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;

    for (n, fault) in [ProxyFault::LoseAnswer(500), ProxyFault::GarbageAfterApply]
        .into_iter()
        .enumerate()
    {
        let (id, email) = (format!("conv-{n}"), format!("conv-{n}@example.qa"));
        push_once(&services, &lead(&tenant, &id, &email, "contacted", FIRST)).await;
        proxy.clear();
        lost_then_redelivered(
            &ctx,
            &services,
            &proxy,
            &tenant,
            CallMatch::path("/services/Soap/u/"),
            fault,
            &lead(&tenant, &id, &email, "qualified", LATER),
        )
        .await;
        assert_eq!(
            not_one_converted(&ctx, &id, &email, "Qualification"),
            None,
            "lead {n}"
        );
        let soap = proxy
            .calls()
            .iter()
            .filter(|c| c.path.contains("/services/Soap/u/"))
            .count();
        assert_eq!(soap, 1, "convertLead is sent once");
    }
}

#[tokio::test]
async fn an_opportunity_create_whose_answer_is_lost_is_found_by_its_marker() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;

    for (n, fault) in [ProxyFault::LoseAnswer(502), ProxyFault::GarbageAfterApply]
        .into_iter()
        .enumerate()
    {
        let email = format!("known-{n}@example.qa");
        let contact = ctx.salesforce.seed_record(
            ACME,
            "Contact",
            json!({"LastName": "Al-Thani", "Email": email}),
        );
        let id = format!("known-{n}");
        lost_then_redelivered(
            &ctx,
            &services,
            &proxy,
            &tenant,
            composite_creating("opportunity"),
            fault,
            &lead(&tenant, &id, &email, "qualified", FIRST),
        )
        .await;
        let opportunities: Vec<Value> = ctx
            .salesforce
            .records(ACME, "Opportunity")
            .into_iter()
            .filter(|o| text(o, "ContactId") == Some(contact.as_str()))
            .collect();
        assert_eq!(opportunities.len(), 1, "{opportunities:?}");
        assert!(text(&opportunities[0], "Description")
            .unwrap()
            .starts_with(&format!("LeadRelay lead: {id}")));
        assert_eq!(tasks_of(&ctx, &id).len(), 1);
    }
}

#[tokio::test]
async fn a_task_added_later_whose_answer_is_lost_is_found_by_its_subject() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;
    let without_summary = lead_message(
        &tenant,
        "business",
        json!({"id": "later-1", "name": "Noura Al-Thani", "email": "later@example.qa",
               "stage": "contacted"}),
        None,
    );
    let done = push_once(&services, &without_summary).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    assert!(tasks_of(&ctx, "later-1").is_empty());

    lost_then_redelivered(
        &ctx,
        &services,
        &proxy,
        &tenant,
        composite_creating("task"),
        ProxyFault::LoseAnswer(500),
        &lead(&tenant, "later-1", "later@example.qa", "contacted", LATER),
    )
    .await;
    assert_eq!(not_one_lead(&ctx, "later-1", "later@example.qa"), None);
}

#[tokio::test]
async fn calls_per_new_lead_are_unchanged_by_the_intents() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = tenant(&ctx).await;
    let calls = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "count-1", "count@example.qa", "contacted", FIRST),
    )
    .await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    let calls = calls_of(
        &services,
        &proxy,
        &lead(&tenant, "count-1", "count@example.qa", "qualified", LATER),
    )
    .await;
    assert_eq!(calls.len(), 3, "{calls:?}");
}
