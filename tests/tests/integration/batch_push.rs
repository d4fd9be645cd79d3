//! lead-push's batch pipeline (issue 16): many leads of one tenant pushed to HubSpot in one
//! `process_batch`, counted in AWS calls (an interceptor on the real SDK clients, against moto)
//! and in CRM records; a lead refused inside the batch, two claims of the same new leads, a
//! failed journal write, a DynamoDB call that never answers and a throttled destination.

use chrono::Utc;
use relay_tests::aws_calls::counted_services;
use relay_tests::aws_faults::FaultyAws;
use relay_tests::context::{outcome, TestContext};
use relay_tests::crash::expire_lead_claims;
use relay_tests::events::ApiEvent;
use relay_tests::queue::{inbound_messages, lead_message};
use relay_tests::sim::{Fault, Route};
use serde_json::json;
use shared::identity::TenantId;
use shared::push::{process_batch, DestinationOutcome, MessageOutcome};
use shared::store::{ClaimRequest, LeadKey};
use shared::Provider;
use std::time::Duration;

/// A Pro tenant with HubSpot connected, its stage mapping saved, and one lead pushed already
/// (the portal's first push also defines the deal's unique lead id property).
async fn connected_tenant(ctx: &TestContext) -> String {
    let tenant = TestContext::tenant();
    connect(ctx, &tenant).await;
    let warm = ctx.deliver(&[lead(&tenant, "warm-up", "Wafa Warm")]).await;
    assert!(warm.failed.is_empty(), "{warm:?}");
    tenant
}

/// `tenant` on Pro with HubSpot connected and its stage mapping saved.
async fn connect(ctx: &TestContext, tenant: &str) {
    assert_eq!(
        outcome(&ctx.connect_hubspot(tenant, "pro").await)["status"],
        "connected"
    );
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(tenant, "pro"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
}

fn lead(tenant: &str, id: &str, name: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": name, "email": format!("{id}@example.qa"), "stage": "qualified"}),
        Some("Wants a demo"),
    )
}

fn ten(tenant: &str) -> Vec<String> {
    (0..10)
        .map(|i| lead(tenant, &format!("lead-{i}"), &format!("Noor Person{i}")))
        .collect()
}

/// How many of the simulator's contacts carry the email of lead `id`.
fn contacts_of(ctx: &TestContext, id: &str) -> usize {
    let email = format!("{id}@example.qa");
    ctx.hubspot
        .contacts()
        .iter()
        .filter(|c| c.properties.get("email") == Some(&email))
        .count()
}

#[tokio::test]
async fn ten_new_leads_cost_at_most_two_aws_calls_each_and_their_replay_three_and_no_crm_call() {
    let ctx = TestContext::new().await;
    let tenant = connected_tenant(&ctx).await;
    let (services, calls) = counted_services(&ctx);
    let bodies = ten(&tenant);

    let outcomes = process_batch(&services, inbound_messages(&bodies, 1)).await;
    let made = calls.take();
    assert_eq!(outcomes.len(), 10);
    for (_, outcome) in &outcomes {
        let MessageOutcome::Done { results } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(
            matches!(
                results[..],
                [(Provider::Hubspot, DestinationOutcome::Pushed { .. })]
            ),
            "{results:?}"
        );
    }
    // The measurement (docs/architecture.md, Lead push): printed with --nocapture.
    eprintln!("AWS calls for 10 new leads: {}: {made:?}", made.len());
    assert!(made.len() <= 20, "{} AWS calls: {made:?}", made.len());
    // The journal's transactions: the claim, the deals' intents (with the contacts' ids), the
    // notes' intents (with the deals' ids) and the release (with the notes' ids).
    let transactions = made
        .iter()
        .filter(|call| call.ends_with("TransactWriteItems"))
        .count();
    assert_eq!(transactions, 4, "{made:?}");
    for i in 0..10 {
        assert_eq!(contacts_of(&ctx, &format!("lead-{i}")), 1, "lead-{i}");
    }
    assert_eq!(ctx.hubspot.deals().len(), 11, "ten and the warm-up lead");
    assert_eq!(ctx.hubspot.notes().len(), 11);

    // The same ten again (SQS delivering them twice): read, found pushed, settled.
    let crm_before = ctx.hubspot.crm_call_count();
    let again = process_batch(&services, inbound_messages(&bodies, 1)).await;
    let replayed = calls.take();
    for (_, outcome) in &again {
        assert_eq!(
            *outcome,
            MessageOutcome::Done {
                results: vec![(Provider::Hubspot, DestinationOutcome::AlreadyPushed)]
            }
        );
    }
    eprintln!(
        "AWS calls for their replay: {}: {replayed:?}",
        replayed.len()
    );
    assert!(replayed.len() <= 3, "{replayed:?}");
    assert_eq!(ctx.hubspot.crm_call_count(), crm_before, "no CRM call");
}

/// Two instances that both read the same ten leads as new (SQS delivering one batch to two of
/// them at once) and then claim them: each lead's claim, a put on condition that no mapping
/// exists, is won once; the later claim finds all ten busy and writes nothing.
#[tokio::test]
async fn two_claims_of_the_same_leads_both_read_as_new_are_won_once() {
    let ctx = TestContext::new().await;
    let tenant = TenantId::parse(&TestContext::tenant()).expect("tenant id");
    let ids: Vec<String> = (0..10).map(|i| format!("lead-{i}")).collect();
    let keys: Vec<LeadKey<'_>> = ids
        .iter()
        .map(|id| LeadKey {
            tenant: &tenant,
            provider: Provider::Hubspot,
            account: "4242",
            lead_id: id,
        })
        .collect();
    let store = &ctx.services.store;
    let read_by_a = store.get_lead_mappings(&keys).await.expect("read");
    let read_by_b = store.get_lead_mappings(&keys).await.expect("read");
    assert!(read_by_a.iter().chain(&read_by_b).all(Option::is_none));

    let now = Utc::now();
    let until = now + chrono::Duration::minutes(5);
    let requests: Vec<ClaimRequest<'_>> = keys
        .iter()
        .map(|&key| ClaimRequest {
            key,
            read: None,
            at: now,
        })
        .collect();
    let a = store.claim_leads(&requests, "instance-a", now, until).await;
    let b = store.claim_leads(&requests, "instance-b", now, until).await;
    assert!(
        a.expect("claim").iter().all(Option::is_some),
        "a holds all ten"
    );
    let b = b.expect("claim");
    let won_by_b = b.iter().filter(|m| m.is_some()).count();
    assert_eq!(won_by_b, 0, "b finds all ten busy");
    for mapping in store.get_lead_mappings(&keys).await.expect("read") {
        let mapping = mapping.expect("claimed");
        assert_eq!(mapping.lease_owner.as_deref(), Some("instance-a"));
        assert_eq!(mapping.version, 1);
    }
}

#[tokio::test]
async fn a_lead_refused_inside_the_batch_fails_alone_and_its_neighbours_are_done() {
    let ctx = TestContext::new().await;
    let tenant = connected_tenant(&ctx).await;
    // A portal rule only one lead breaks: HubSpot refuses that input, permanently.
    ctx.hubspot
        .require_when("contacts", "jobtitle", "lastname", "Refused");
    let mut bodies = ten(&tenant);
    bodies[4] = lead(&tenant, "lead-4", "Omar Refused");

    let outcomes = process_batch(&ctx.services, inbound_messages(&bodies, 1)).await;
    for (i, (_, outcome)) in outcomes.iter().enumerate() {
        if i == 4 {
            let MessageOutcome::DeadLettered { reason } = outcome else {
                panic!("the refused lead: {outcome:?}");
            };
            assert!(reason.contains("hubspot"), "{reason}");
        } else {
            assert!(
                matches!(outcome, MessageOutcome::Done { .. }),
                "lead-{i}: {outcome:?}"
            );
            assert_eq!(contacts_of(&ctx, &format!("lead-{i}")), 1, "lead-{i}");
        }
    }
    assert_eq!(contacts_of(&ctx, "lead-4"), 0);
    assert_eq!(ctx.hubspot.deals().len(), 10, "nine and the warm-up lead");
    let dead = ctx.queues.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
}

#[tokio::test]
async fn a_failed_journal_write_after_the_creates_creates_nothing_twice_on_redelivery() {
    let ctx = TestContext::new().await;
    let tenant = connected_tenant(&ctx).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("moto");
    // Every lead-mapping transaction that writes a contact id fails (the journal after the
    // contacts were made, and the releasing write): the CRM has records the store never heard
    // of, except as intents.
    let proxy = FaultyAws::start(
        &moto,
        "TransactWriteItems",
        r#""records":{"M":{"contact""#,
        usize::MAX,
    )
    .await;
    let faulty = ctx.services_via(&proxy.endpoint);
    let bodies = ten(&tenant);

    let first = process_batch(&faulty, inbound_messages(&bodies, 1)).await;
    assert!(proxy.matched() > 0, "the journal write was faulted");
    for (_, outcome) in &first {
        assert!(
            matches!(outcome, MessageOutcome::Retry { .. }),
            "{outcome:?}"
        );
    }

    // Redelivered once the killed claims lapse, with the store healthy.
    expire_lead_claims(&ctx, &tenant).await;
    let second = process_batch(&ctx.services, inbound_messages(&bodies, 2)).await;
    for (_, outcome) in &second {
        assert!(
            matches!(outcome, MessageOutcome::Done { .. }),
            "{outcome:?}"
        );
    }
    for i in 0..10 {
        assert_eq!(contacts_of(&ctx, &format!("lead-{i}")), 1, "lead-{i}");
    }
    assert_eq!(
        ctx.hubspot.deals().len(),
        11,
        "ten and the warm-up lead, once"
    );
    assert_eq!(ctx.hubspot.notes().len(), 11);
}

/// DynamoDB stops answering the batch's mapping read (no error, no answer, as a network that
/// drops it). Every attempt is cut off after `AWS_ATTEMPT_TIMEOUT_MS` and the SDK tries again;
/// after its attempts the leads are handed back for SQS to deliver again, instead of the push
/// hanging until Lambda kills the invocation. Nothing was claimed or sent to the CRM.
#[tokio::test]
async fn a_dynamodb_call_that_never_answers_hands_the_leads_back_instead_of_hanging() {
    let ctx = TestContext::new().await;
    let tenant = connected_tenant(&ctx).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("moto");
    let proxy = FaultyAws::hanging(&moto, "BatchGetItem", &tenant).await;
    let services = ctx.services_via_with(&proxy.endpoint, &[("AWS_ATTEMPT_TIMEOUT_MS", "300")]);
    let crm_before = ctx.hubspot.crm_call_count();

    // A guard against hanging for ever, far above the attempts' 0.3 s each with backoff.
    let outcomes = tokio::time::timeout(
        Duration::from_secs(60),
        process_batch(&services, inbound_messages(&ten(&tenant), 1)),
    )
    .await
    .expect("the push ended although DynamoDB never answered");
    assert!(proxy.matched() >= 2, "the read was attempted again");
    for (_, outcome) in &outcomes {
        assert!(
            matches!(outcome, MessageOutcome::Retry { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(ctx.hubspot.crm_call_count(), crm_before, "no CRM call");
}

#[tokio::test]
async fn a_throttled_destination_defers_the_lead_even_on_its_last_receive() {
    let ctx = TestContext::new().await;
    let tenant = connected_tenant(&ctx).await;
    // HubSpot answers 429 to everything for a while: more than the client waits in-process.
    for _ in 0..200 {
        ctx.hubspot.inject(Route::Any, Fault::Throttle);
    }
    let before = chrono::Utc::now();
    let outcomes = process_batch(
        &ctx.services,
        inbound_messages(&[lead(&tenant, "lead-t", "Tariq Throttled")], 5),
    )
    .await;
    let (_, outcome) = &outcomes[0];
    let MessageOutcome::Deferred { until, reason } = outcome else {
        panic!("deferred, not retried or dead-lettered: {outcome:?}");
    };
    assert!(*until > before, "{until} {before}");
    assert!(reason.contains("throttled"), "{reason}");
    assert!(!outcome.is_settled(), "settled only once sent again");
    assert!(ctx.queues.dead_letters().await.is_empty());
}

/// Through lead-push as Lambda runs it: the throttled lead is sent again to the lead queue,
/// delayed (SQS holds the copy), and the original is settled — no batch item failure, so it
/// neither waits out the visibility timeout nor uses up a receive — even on its last receive.
#[tokio::test]
async fn lead_push_sends_a_throttled_lead_again_delayed_and_settles_the_original() {
    let ctx = TestContext::with_lead_queue().await;
    let tenant = connected_tenant(&ctx).await;
    let deals_before = ctx.hubspot.deals().len();
    for _ in 0..200 {
        ctx.hubspot.inject(Route::Any, Fault::Throttle);
    }
    ctx.queues
        .send(&lead(&tenant, "lead-d", "Dana Deferred"))
        .await;
    let event = ctx.queues.receive(1).await;
    assert_eq!(event.records.len(), 1);
    let mut event = event;
    // Its last allowed receive: a retry here would dead-letter it.
    event.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "5".into());
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event.clone(), lambda_runtime::Context::default()),
    )
    .await
    .expect("lead-push never fails the invocation");
    assert!(
        response.batch_item_failures.is_empty(),
        "the original is settled once its copy is sent"
    );
    let delivery = ctx.queues.settle(&event, &response).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert_eq!(
        ctx.queues.delayed_count().await,
        1,
        "the copy waits in the queue, delayed"
    );
    assert_eq!(ctx.hubspot.deals().len(), deals_before, "nothing pushed");
}

#[tokio::test]
async fn a_quiet_tenants_few_leads_are_pushed_before_a_burst_sharing_their_invocation() {
    // One group at a time, so the order the groups are taken in is the order they land in.
    let ctx = TestContext::with_env(&[("PUSH_CONCURRENCY", "1")]).await;
    // The burst's tenant sorts first by id: taken in id order, it would go first.
    let mut tenants: Vec<String> = (0..3).map(|_| TestContext::tenant()).collect();
    tenants.sort();
    for tenant in &tenants {
        connect(&ctx, tenant).await;
    }
    let (burst, quiet) = (&tenants[0], &tenants[1..]);
    // The portal's first push defines the deal's lead id property.
    let warm = ctx.deliver(&[lead(burst, "warm-up", "Wafa Warm")]).await;
    assert!(warm.failed.is_empty(), "{warm:?}");
    let mut bodies: Vec<String> = (0..20)
        .map(|i| lead(burst, &format!("burst-{i}"), &format!("Badr Burst{i}")))
        .collect();
    for (n, tenant) in quiet.iter().enumerate() {
        bodies.push(lead(
            tenant,
            &format!("quiet-{n}"),
            &format!("Qamar Quiet{n}"),
        ));
    }

    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, MessageOutcome::Done { .. })),
        "{outcomes:?}"
    );
    // HubSpot's ids rise with each record made: every quiet deal was made before the burst's
    // first deal.
    let deals_of = |prefix: &str| -> Vec<u64> {
        ctx.hubspot
            .deals()
            .iter()
            .filter(|d| {
                d.properties
                    .get("leadrelay_lead_id")
                    .is_some_and(|id| id.starts_with(prefix))
            })
            .map(|d| d.id.parse::<u64>().expect("numeric id"))
            .collect()
    };
    let (quiet_deals, burst_deals) = (deals_of("quiet-"), deals_of("burst-"));
    assert_eq!((quiet_deals.len(), burst_deals.len()), (2, 20));
    let burst_first = burst_deals.iter().min().expect("the burst's deals");
    assert!(
        quiet_deals.iter().all(|d| d < burst_first),
        "quiet deals {quiet_deals:?}, the burst's first deal {burst_first}"
    );
}
