//! Faults of lead-push's batch path (issue 16): an invocation of several leads killed right
//! after each of its CRM calls, then delivered again; a large batch whose invocation has too
//! little time left; a late older message in a batch beside its neighbours; and a deferral's
//! `leadrelay-not-before` read back by lead-push when the copy arrives early.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use relay_tests::context::TestContext;
use relay_tests::crash::{
    batch_killed_after, expire_lead_claims, lead_mapping_items, push_batch_once, BatchKillResult,
};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::{inbound_messages, lead_message};
use relay_tests::setup;
use serde_json::{json, Value};
use shared::push::defer::{DEFERRALS_ATTRIBUTE, NOT_BEFORE_ATTRIBUTE};
use shared::push::{process_batch, DestinationOutcome, MessageOutcome};
use shared::{Provider, Services};

/// A HubSpot lead `id` with its own email, at `stage`, with a summary naming it.
fn hubspot_lead(tenant: &str, id: &str, stage: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": format!("Fatima {id}"), "email": format!("{id}@example.qa"),
               "stage": stage, "source": "whatsapp", "score": 82}),
        Some(&format!("Wants 12 seats ({id})")),
    )
}

/// `body` with its `occurred_at` set to `at` (RFC 3339): another version of the same lead.
fn occurred_at(body: &str, at: &str) -> String {
    let mut message: Value = serde_json::from_str(body).expect("a lead message");
    message["occurred_at"] = json!(at);
    message.to_string()
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

/// What is wrong with HubSpot's records of lead `id`; `None` when it is exactly once there.
fn hubspot_problem(ctx: &TestContext, id: &str) -> Option<String> {
    ctx.hubspot.lead_problem(
        id,
        &format!("{id}@example.qa"),
        &format!("Fatima {id} (LeadRelay)"),
    )
}

/// The tenant's lead mappings still claimed (`lease_until` in the future): claims a push left
/// behind instead of releasing them.
async fn held_claims(ctx: &TestContext, tenant: &str) -> Vec<String> {
    let now = chrono::Utc::now().timestamp();
    lead_mapping_items(ctx, tenant)
        .await
        .into_iter()
        .filter(|item| {
            // Epoch seconds, as the store writes it.
            item.get("lease_until")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|until| until > now)
        })
        .map(|item| item["sk"].as_s().cloned().unwrap_or_default())
        .collect()
}

/// Every HubSpot call but the OAuth token endpoint's.
fn hubspot_crm_calls() -> CallMatch {
    CallMatch::path("/oauth/").negate()
}

/// The crash matrix of one batch: `batch(tag)` makes five new leads' messages; an
/// uninterrupted batch (tag `reference`) counts the CRM calls (`crm`) of five new leads, then
/// for each k in turn a fresh batch is killed right after its k-th CRM call was applied, its
/// claims lapse and the same five messages are delivered again, and `problem(tag, i)` says
/// what is wrong with lead i's records. Panics listing every kill point that went wrong.
async fn kill_after_each_call(
    ctx: &TestContext,
    services: &Services,
    proxy: &FaultProxy,
    tenant: &str,
    crm: fn() -> CallMatch,
    batch: impl Fn(&str) -> Vec<String>,
    problem: impl Fn(&str, usize) -> Option<String>,
) {
    proxy.clear();
    let reference = push_batch_once(services, &batch("reference"), 1).await;
    assert!(reference.iter().all(done), "{reference:?}");
    let sequence: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|c| crm().matches(c))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    let n = sequence.len();
    // The measurement: printed with --nocapture.
    eprintln!("five new leads in one batch: {n} CRM calls {sequence:?}");
    assert!(n >= 2, "{sequence:?}");

    let mut failures = Vec::new();
    for k in 1..=n {
        let tag = format!("kill{k}");
        let bodies = batch(&tag);
        proxy.clear();
        match batch_killed_after(services, proxy, crm(), k, &bodies).await {
            BatchKillResult::Killed => {}
            BatchKillResult::Finished(outcomes) => {
                failures.push(format!(
                    "kill after call {k}: the batch made fewer calls than the reference: {outcomes:?}"
                ));
                continue;
            }
        }
        // The claims lapse (180 s in production); SQS delivers the same five messages again.
        expire_lead_claims(ctx, tenant).await;
        let again = push_batch_once(services, &bodies, 2).await;
        let mut problems: Vec<String> = again
            .iter()
            .filter(|o| !done(o) || !o.is_settled())
            .map(|o| format!("redelivery: {o:?}"))
            .collect();
        problems.extend((0..5).filter_map(|i| problem(&tag, i)));
        if !problems.is_empty() {
            failures.push(format!(
                "kill after call {k} ({}): {}",
                sequence[k - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert!(
        failures.is_empty(),
        "a batch of five new leads makes {n} CRM calls {sequence:?}; after a kill:\n{}",
        failures.join("\n")
    );
}

/// A HubSpot tenant whose pushes go through a fault proxy, its portal warmed by one lead (the
/// portal's first push also defines the deal's lead-id property: paid once, here).
async fn proxied_hubspot_tenant(ctx: &TestContext) -> (FaultProxy, Services, String) {
    let proxy = FaultProxy::start(&ctx.hubspot.base_url()).await;
    let services = ctx.services_with_provider_endpoint("hubspot", &proxy.endpoint());
    let tenant = setup::hubspot(ctx).await.expect("a HubSpot tenant").tenant;
    let warm = push_batch_once(
        &services,
        &[hubspot_lead(&tenant, "warm-up", "qualified")],
        1,
    )
    .await;
    assert!(warm.iter().all(done), "{warm:?}");
    (proxy, services, tenant)
}

#[tokio::test]
async fn hubspot_batch_of_five_killed_after_each_crm_call_then_redelivered() {
    let ctx = TestContext::new().await;
    let (proxy, services, tenant) = proxied_hubspot_tenant(&ctx).await;
    let batch = |tag: &str| -> Vec<String> {
        (0..5)
            .map(|i| hubspot_lead(&tenant, &format!("{tag}-{i}"), "qualified"))
            .collect()
    };
    let problem = |tag: &str, i: usize| hubspot_problem(&ctx, &format!("{tag}-{i}"));
    kill_after_each_call(
        &ctx,
        &services,
        &proxy,
        &tenant,
        hubspot_crm_calls,
        batch,
        problem,
    )
    .await;
    // The batch path, not one lead after the other.
    assert!(
        ctx.hubspot
            .count("POST", "/crm/objects/2026-09/deals/batch/create")
            > 0
    );
}

/// Every Salesforce API call (REST and SOAP), not the OAuth endpoints.
fn salesforce_crm_calls() -> CallMatch {
    CallMatch::path("/services/oauth2/").negate()
}

/// A Salesforce lead `sf-<tag>` with its own email, at `new` (before any conversion stage).
fn salesforce_lead(tenant: &str, tag: &str) -> String {
    lead_message(
        tenant,
        "business",
        json!({"id": format!("sf-{tag}"), "name": format!("Noura Batch{tag}"),
               "email": format!("noura.{tag}@example.com"), "source": "website",
               "score": 82, "stage": "new"}),
        Some("Needs cold-chain trucking Doha to Riyadh, twice a week."),
    )
}

/// What is wrong with the org's records of `sf-<tag>`; `None` when it is one Lead (by its
/// email) with one Task on it (by the subject's lead-id marker).
fn salesforce_problem(ctx: &TestContext, tag: &str) -> Option<String> {
    let org = setup::SALESFORCE_ORG;
    let email = format!("noura.{tag}@example.com");
    let marker = format!("[sf-{tag}]");
    let leads: Vec<Value> = ctx
        .salesforce
        .records(org, "Lead")
        .into_iter()
        .filter(|r| r.get("Email").and_then(Value::as_str) == Some(email.as_str()))
        .collect();
    let tasks: Vec<Value> = ctx
        .salesforce
        .records(org, "Task")
        .into_iter()
        .filter(|t| {
            t.get("Subject")
                .and_then(Value::as_str)
                .is_some_and(|s| s.ends_with(&marker))
        })
        .collect();
    if (leads.len(), tasks.len()) != (1, 1) {
        return Some(format!(
            "sf-{tag}: {} Leads, {} Tasks (want one each)",
            leads.len(),
            tasks.len()
        ));
    }
    (tasks[0].get("WhoId") != leads[0].get("Id"))
        .then(|| format!("sf-{tag}: the Task is not on the Lead"))
}

#[tokio::test]
async fn salesforce_batch_of_five_killed_after_each_crm_call_then_redelivered() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    let tenant = setup::salesforce(&ctx)
        .await
        .expect("a Salesforce tenant")
        .tenant;
    let batch = |tag: &str| -> Vec<String> {
        (0..5)
            .map(|i| salesforce_lead(&tenant, &format!("{tag}{i}")))
            .collect()
    };
    let problem = |tag: &str, i: usize| salesforce_problem(&ctx, &format!("{tag}{i}"));
    kill_after_each_call(
        &ctx,
        &services,
        &proxy,
        &tenant,
        salesforce_crm_calls,
        batch,
        problem,
    )
    .await;
}

/// The messages as Lambda's SQS trigger hands them to lead-push, each on its first receive,
/// from the lead queue. Ids are the bodies' positions, so a second delivery has the same ids.
fn sqs_event(ctx: &TestContext, bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut record = SqsMessage::default();
            record.message_id = Some(format!("message-{i}"));
            record.body = Some(body.clone());
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(ctx.queues.arn.clone());
            record.attributes =
                HashMap::from([("ApproximateReceiveCount".to_string(), "1".to_string())]);
            record
        })
        .collect();
    event
}

/// A hundred new leads of one Salesforce tenant reach lead-push when its session has expired
/// and the invocation has 3 s left: less than a rotating refresh and its store need, so none is
/// presented. No lead is half-done: each message is reported back as a batch item failure, no
/// claim is left held, nothing is in the org; delivered again with time enough, all hundred
/// land, each once.
#[tokio::test]
async fn a_hundred_leads_with_too_little_time_left_are_all_handed_back_then_pushed_once() {
    let ctx = TestContext::new().await;
    let tenant = setup::salesforce(&ctx)
        .await
        .expect("a Salesforce tenant")
        .tenant;
    let org = setup::SALESFORCE_ORG;
    // `new` is before the tenant's conversion stage: each lead stays a Lead with its Task.
    let bodies: Vec<String> = (0..100)
        .map(|i| {
            lead_message(
                &tenant,
                "business",
                json!({"id": format!("late-{i}"), "name": format!("Noura Late{i}"),
                       "email": format!("noura.late{i}@example.com"), "stage": "new"}),
                Some("Cold-chain trucking, twice a week."),
            )
        })
        .collect();
    let leads_before = ctx.salesforce.records(org, "Lead").len();
    ctx.salesforce.expire_sessions(org);

    let mut context = lambda_runtime::Context::default();
    context.deadline = (chrono::Utc::now().timestamp_millis() + 3_000) as u64;
    let event = sqs_event(&ctx, &bodies);
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event.clone(), context),
    )
    .await
    .expect("lead-push never fails the invocation");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed.len(), 100, "every message handed back to SQS");
    assert_eq!(ctx.salesforce.refresh_calls(org), 0, "no refresh presented");
    assert_eq!(
        ctx.salesforce.records(org, "Lead").len(),
        leads_before,
        "nothing half-made in the org"
    );
    assert_eq!(held_claims(&ctx, &tenant).await, Vec::<String>::new());
    assert!(ctx.queues.dead_letters().await.is_empty());

    // The same hundred messages again, with no deadline pressing.
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .expect("lead-push never fails the invocation");
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let leads = ctx.salesforce.records(org, "Lead");
    let tasks = ctx.salesforce.records(org, "Task");
    for i in 0..100 {
        let email = format!("noura.late{i}@example.com");
        let mine: Vec<&Value> = leads
            .iter()
            .filter(|r| r.get("Email").and_then(Value::as_str) == Some(email.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "late-{i}: one Lead");
        let on_it = tasks
            .iter()
            .filter(|t| t.get("WhoId") == mine[0].get("Id"))
            .count();
        assert_eq!(on_it, 1, "late-{i}: one Task");
    }
    assert_eq!(held_claims(&ctx, &tenant).await, Vec::<String>::new());
}

/// A hundred new leads of one HubSpot tenant through lead-push with 6 s left, and HubSpot slow
/// to answer the batch deal create (applied, the answer never comes): Lambda kills the
/// invocation at its deadline, so no message is settled and SQS delivers all hundred again
/// (same message ids) once the claims lapsed. With time enough, every lead lands once: the
/// deals made before the kill are found again, none is made twice.
#[tokio::test]
async fn a_hundred_leads_killed_at_the_deadline_mid_batch_land_once_on_redelivery() {
    let ctx = TestContext::new().await;
    let (proxy, services, tenant) = proxied_hubspot_tenant(&ctx).await;
    let bodies: Vec<String> = (0..100)
        .map(|i| hubspot_lead(&tenant, &format!("deadline-{i}"), "qualified"))
        .collect();
    let hang = proxy.on(
        CallMatch::path("/deals/batch/create"),
        1,
        ProxyFault::HangAfterApply,
    );

    let deadline = chrono::Utc::now() + chrono::Duration::seconds(6);
    let mut context = lambda_runtime::Context::default();
    context.deadline = deadline.timestamp_millis() as u64;
    let event = sqs_event(&ctx, &bodies);
    let left = (deadline - chrono::Utc::now()).to_std().expect("time left");
    // Lambda ends the invocation at its deadline: the handler's future is dropped there.
    let killed = tokio::time::timeout(
        left,
        lead_push::handle(
            &services,
            lambda_runtime::LambdaEvent::new(event.clone(), context),
        ),
    )
    .await;
    assert!(
        killed.is_err(),
        "the invocation outlived its deadline: {killed:?}"
    );
    assert!(hang.has_fired(), "killed while the deal create hung");
    assert_eq!(
        ctx.hubspot.deals().len(),
        101,
        "HubSpot made the hundred deals before the kill"
    );

    expire_lead_claims(&ctx, &tenant).await;
    let response = lead_push::handle(
        &services,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .expect("lead-push never fails the invocation");
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let problems: Vec<String> = (0..100)
        .filter_map(|i| hubspot_problem(&ctx, &format!("deadline-{i}")))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(ctx.hubspot.deals().len(), 101, "no deal made twice");
    assert_eq!(held_claims(&ctx, &tenant).await, Vec::<String>::new());
    assert!(ctx.queues.dead_letters().await.is_empty());
}

/// X's newer version was pushed; then SQS delivers its older version late, in a batch with
/// three new leads. X keeps the newer data (no CRM write for it at all), the stale message is
/// settled (neither retried nor dead-lettered), and the neighbours land.
#[tokio::test]
async fn a_late_older_message_in_a_batch_changes_nothing_and_its_neighbours_land() {
    let ctx = TestContext::new().await;
    let tenant = setup::hubspot(&ctx).await.expect("a HubSpot tenant").tenant;
    let newer = occurred_at(
        &hubspot_lead(&tenant, "lead-x", "qualified"),
        "2026-11-28T05:00:00Z",
    );
    let first = ctx.push_batch(&[newer], 1).await;
    assert!(first.iter().all(done), "{first:?}");
    let deal_before = ctx
        .hubspot
        .deals()
        .into_iter()
        .find(|d| d.properties.get("leadrelay_lead_id").map(String::as_str) == Some("lead-x"))
        .expect("X's deal");
    assert_eq!(deal_before.properties["dealstage"], "qualifiedtobuy");

    // The older version: an earlier stage, another name and summary.
    let older = occurred_at(
        &lead_message(
            &tenant,
            "pro",
            json!({"id": "lead-x", "name": "Old Name", "email": "lead-x@example.qa",
                   "stage": "new", "source": "whatsapp", "score": 10}),
            Some("An old summary"),
        ),
        "2026-11-28T04:00:00Z",
    );
    let mut bodies: Vec<String> = (0..3)
        .map(|i| hubspot_lead(&tenant, &format!("beside-{i}"), "qualified"))
        .collect();
    bodies.insert(1, older);
    ctx.hubspot.clear_requests();
    let outcomes = process_batch(&ctx.services, inbound_messages(&bodies, 1)).await;

    let (_, stale) = &outcomes[1];
    let MessageOutcome::Done { results } = stale else {
        panic!("the stale message is settled as done: {stale:?}");
    };
    assert!(
        matches!(
            results[..],
            [(Provider::Hubspot, DestinationOutcome::Stale { .. })]
        ),
        "{results:?}"
    );
    assert!(stale.is_settled());
    for (i, (_, outcome)) in outcomes.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert!(done(outcome), "{i}: {outcome:?}");
    }
    for i in 0..3 {
        assert_eq!(hubspot_problem(&ctx, &format!("beside-{i}")), None);
    }
    assert_eq!(hubspot_problem(&ctx, "lead-x"), None);
    let written: Vec<String> = ctx
        .hubspot
        .requests()
        .iter()
        .filter(|r| r.body.contains("lead-x") || r.body.contains("Old Name"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        written.is_empty(),
        "no call for the stale lead: {written:?}"
    );
    let deal_after = ctx
        .hubspot
        .deals()
        .into_iter()
        .find(|d| d.id == deal_before.id)
        .expect("X's deal");
    assert_eq!(
        deal_after.properties, deal_before.properties,
        "X's deal kept"
    );
    let contact = ctx
        .hubspot
        .contacts()
        .into_iter()
        .find(|c| c.properties.get("email").map(String::as_str) == Some("lead-x@example.qa"))
        .expect("X's contact");
    assert!(
        contact.properties.values().all(|v| !v.contains("Old")),
        "{:?}",
        contact.properties
    );
    let note = ctx
        .hubspot
        .notes()
        .into_iter()
        .find(|n| {
            n.properties
                .get("hs_note_body")
                .is_some_and(|b| b.contains("LeadRelay lead lead-x<"))
        })
        .expect("X's note");
    assert!(note.properties["hs_note_body"].contains("Wants 12 seats (lead-x)"));
    assert!(ctx.queues.dead_letters().await.is_empty());
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type set")
}

/// Sends `body` in its tenant's group with a deferral's attributes: deferred `deferrals`
/// times, not to be pushed before `not_before`.
async fn send_deferred(
    ctx: &TestContext,
    tenant: &str,
    body: &str,
    deferrals: u32,
    not_before: chrono::DateTime<chrono::Utc>,
) {
    let count = MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(deferrals.to_string())
        .build()
        .expect("data type set");
    ctx.queues
        .sqs
        .send_message()
        .queue_url(&ctx.queues.url)
        .message_body(body)
        .message_group_id(tenant)
        .message_attributes(DEFERRALS_ATTRIBUTE, count)
        .message_attributes(
            NOT_BEFORE_ATTRIBUTE,
            string_attribute(&not_before.to_rfc3339()),
        )
        .send()
        .await
        .expect("SendMessage");
}

/// Runs one received event through lead-push and settles it on the queue; the ids reported
/// as batch item failures.
async fn run_lead_push(ctx: &TestContext, event: SqsEvent) -> Vec<String> {
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event.clone(), lambda_runtime::Context::default()),
    )
    .await
    .expect("lead-push never fails the invocation");
    ctx.queues.settle(&event, &response).await.failed
}

/// A deferred copy carrying `leadrelay-not-before` delivered before that instant goes through
/// lead-push's handler without a CRM call: it is sent again, delayed by what is left of the
/// wait (at most SQS's 900 s, the rest carried on), with its deferral count one higher as
/// `push/defer.rs` documents, and the delivery is settled. Delivered after the instant, it is
/// pushed.
#[tokio::test]
async fn an_early_not_before_copy_is_sent_again_delayed_and_pushed_once_its_time_came() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = setup::hubspot(&ctx).await.expect("a HubSpot tenant").tenant;
    ctx.hubspot.reset_crm_call_count();

    // An hour early: the copy waits SQS's longest delay and still carries the instant.
    let far = hubspot_lead(&tenant, "lead-far", "qualified");
    send_deferred(
        &ctx,
        &tenant,
        &far,
        2,
        chrono::Utc::now() + chrono::Duration::seconds(3_600),
    )
    .await;
    let event = ctx.queues.receive(1).await;
    assert_eq!(event.records.len(), 1);
    assert!(run_lead_push(&ctx, event).await.is_empty(), "settled");
    assert_eq!(
        ctx.queues.delayed_count().await,
        1,
        "the copy waits in the queue"
    );
    assert_eq!(ctx.hubspot.crm_call_count(), 0, "no CRM call");
    assert_eq!(
        ctx.queues.receive(1).await.records.len(),
        0,
        "nothing visible"
    );

    // A few seconds early: the copy is delayed by what is left, and no longer needs the
    // attribute.
    let near = hubspot_lead(&tenant, "lead-near", "qualified");
    let not_before = chrono::Utc::now() + chrono::Duration::seconds(3);
    send_deferred(&ctx, &tenant, &near, 2, not_before).await;
    let event = ctx.queues.receive(1).await;
    assert_eq!(event.records.len(), 1);
    assert!(run_lead_push(&ctx, event).await.is_empty(), "settled");
    assert_eq!(ctx.hubspot.crm_call_count(), 0, "no CRM call");
    assert!(ctx.hubspot.deals().is_empty());

    // Poll until SQS shows the near copy (its delay is what was left, not 900 s).
    let mut copy = None;
    for _ in 0..40 {
        let event = ctx.queues.receive(1).await;
        if !event.records.is_empty() {
            copy = Some((chrono::Utc::now(), event));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let (seen_at, event) = copy.expect("the near copy became visible within 20 s");
    assert!(
        seen_at >= not_before,
        "never delivered early: {seen_at} < {not_before}"
    );
    let record = &event.records[0];
    assert_eq!(record.body.as_deref(), Some(near.as_str()));
    let attribute = |name: &str| {
        record
            .message_attributes
            .get(name)
            .and_then(|a| a.string_value.clone())
    };
    assert_eq!(attribute(DEFERRALS_ATTRIBUTE).as_deref(), Some("3"));
    assert_eq!(
        attribute(NOT_BEFORE_ATTRIBUTE),
        None,
        "the delay covered it"
    );
    assert_eq!(
        record.attributes.get("MessageGroupId").map(String::as_str),
        Some(tenant.as_str())
    );
    assert!(run_lead_push(&ctx, event).await.is_empty(), "settled");
    assert_eq!(hubspot_problem(&ctx, "lead-near"), None);

    // A copy whose instant has passed (the attribute still on it) is pushed at once.
    let due = hubspot_lead(&tenant, "lead-due", "qualified");
    send_deferred(
        &ctx,
        &tenant,
        &due,
        1,
        chrono::Utc::now() - chrono::Duration::seconds(1),
    )
    .await;
    let event = ctx.queues.receive(1).await;
    assert_eq!(event.records.len(), 1);
    assert!(run_lead_push(&ctx, event).await.is_empty(), "settled");
    assert_eq!(hubspot_problem(&ctx, "lead-due"), None);
    assert_eq!(
        ctx.queues.delayed_count().await,
        1,
        "only the far copy still waits"
    );
    assert!(ctx.hubspot.deals().iter().all(|d| d
        .properties
        .get("leadrelay_lead_id")
        .map(String::as_str)
        != Some("lead-far")));
    assert!(ctx.queues.dead_letters().await.is_empty());
}
