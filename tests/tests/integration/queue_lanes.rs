//! The queues against moto: producers put each lead in its tenant's message group (fair
//! queues), a deferral re-sends a throttled lead to its own lane's queue with the delay asked
//! for, its group and its deferral count, and a redriven copy keeps its group.
//!
//! moto 5.2.5 takes `MessageGroupId` on a standard queue, keeps it and returns it; it does not
//! schedule deliveries fairly by group (that is SQS's side of fair queues), so what is checked
//! here is the contract each producer and the relay keep, not the fairness itself.

use std::collections::HashMap;
use std::process::Command;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{Duration, Utc};
use relay_tests::queue::{lead_message, LeadQueues};
use serde_json::json;
use shared::config::Config;
use shared::push::defer::{self, DEFERRALS_ATTRIBUTE, MAX_DELAY_SECONDS, NOT_BEFORE_ATTRIBUTE};
use shared::push::{InboundMessage, Lane};
use shared::Services;

struct Lanes {
    services: Services,
    live: LeadQueues,
    backfill: LeadQueues,
}

/// Both lanes' queues on moto, and services configured with them as the template does.
async fn lanes() -> Lanes {
    let aws = relay_tests::aws::local_config().await.expect("local AWS");
    let prefix = format!("lanes-{}", uuid::Uuid::new_v4().simple());
    let live = LeadQueues::create_lane(&aws, &prefix, Lane::Live)
        .await
        .unwrap();
    let backfill = LeadQueues::create_lane(&aws, &prefix, Lane::Backfill)
        .await
        .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        // Not used here: only the queues are.
        ("TABLE_NAME", "unused".to_string()),
        ("KMS_KEY_ID", "alias/unused".to_string()),
        ("SETUP_PAGE_URL", "https://app.example.com/".to_string()),
        (
            "OAUTH_REDIRECT_BASE_URL",
            "https://api.example.com/".to_string(),
        ),
        ("LEAD_QUEUE_URL", live.url.clone()),
        ("BACKFILL_QUEUE_URL", backfill.url.clone()),
        ("BACKFILL_QUEUE_ARN", backfill.arn.clone()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("configuration");
    Lanes {
        services: Services::with_oauth_apps(config, &aws),
        live,
        backfill,
    }
}

/// A received message: body, system attributes and message attributes (string values).
struct Received {
    body: String,
    system: HashMap<String, String>,
    attributes: HashMap<String, String>,
}

impl Received {
    /// The message attributes as `defer::not_before` and `defer::deferrals` take them.
    fn pairs(&self) -> Vec<(&str, Option<&str>)> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect()
    }
}

/// Receives what is visible now (`wait` 0) or waits up to `wait` seconds for a message.
async fn receive(queues: &LeadQueues, wait: i32) -> Vec<Received> {
    let output = queues
        .sqs
        .receive_message()
        .queue_url(&queues.url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .wait_time_seconds(wait)
        .send()
        .await
        .expect("ReceiveMessage");
    output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| Received {
            body: m.body.unwrap_or_default(),
            system: m
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_string(), v))
                .collect(),
            attributes: m
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                .collect(),
        })
        .collect()
}

fn lead(tenant: &str, id: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({ "id": id, "name": "Dana Lee", "email": "dana@example.com", "stage": "qualified" }),
        Some("Wants a quote."),
    )
}

#[tokio::test]
async fn the_producers_put_each_lead_in_its_tenants_group_on_both_lanes() {
    let lanes = lanes().await;
    lanes.live.send(&lead("tenant-a", "lead-1")).await;
    lanes.backfill.send(&lead("tenant-b", "lead-2")).await;
    // A body that names no tenant is sent without a group (moto and SQS both take that).
    lanes.live.send("{\"version\": 2}").await;

    let mut live = receive(&lanes.live, 0).await;
    live.sort_by_key(|m| m.body.len());
    assert_eq!(live.len(), 2);
    assert_eq!(
        live[0].system.get("MessageGroupId"),
        None,
        "{}",
        live[0].body
    );
    assert_eq!(
        live[1].system.get("MessageGroupId").map(String::as_str),
        Some("tenant-a")
    );
    let backfill = receive(&lanes.backfill, 0).await;
    assert_eq!(backfill.len(), 1);
    assert_eq!(
        backfill[0].system.get("MessageGroupId").map(String::as_str),
        Some("tenant-b")
    );

    // Lambda's event carries the group and the lane's source ARN; the lane follows from it.
    lanes.backfill.send(&lead("tenant-b", "lead-3")).await;
    let event = lanes.backfill.receive(1).await;
    let record = &event.records[0];
    assert_eq!(
        record.attributes.get("MessageGroupId").map(String::as_str),
        Some("tenant-b")
    );
    assert_eq!(
        lanes
            .services
            .config
            .lane_of(record.event_source_arn.as_deref()),
        Lane::Backfill
    );
    lanes.live.send(&lead("tenant-a", "lead-4")).await;
    let event = lanes.live.receive(1).await;
    assert_eq!(
        lanes
            .services
            .config
            .lane_of(event.records[0].event_source_arn.as_deref()),
        Lane::Live
    );
}

#[tokio::test]
async fn a_deferred_lead_is_invisible_until_its_delay_then_carries_its_group_and_count() {
    let lanes = lanes().await;
    let body = lead("tenant-a", "lead-1");
    let message = InboundMessage {
        message_id: "m-1".into(),
        body: body.clone(),
        receive_count: 3,
        lane: Lane::Live,
        group_id: Some("tenant-a".into()),
        deferrals: 1,
        ..Default::default()
    };
    let until = Utc::now() + Duration::seconds(3);
    defer::defer(
        &lanes.services,
        &message,
        until,
        "hubspot: no capacity until reset",
    )
    .await
    .expect("deferred");

    assert!(
        receive(&lanes.live, 0).await.is_empty(),
        "not visible before its delay"
    );
    assert_eq!(lanes.live.delayed_count().await, 1);
    assert!(
        receive(&lanes.backfill, 0).await.is_empty(),
        "its own lane only"
    );

    // Long polling returns it once the delay is over (moto checks every second).
    let mut received = Vec::new();
    for _ in 0..3 {
        received = receive(&lanes.live, 10).await;
        if !received.is_empty() {
            break;
        }
    }
    assert_eq!(received.len(), 1, "delivered after its delay");
    let again = &received[0];
    assert!(
        Utc::now() >= until,
        "not delivered before the time asked for"
    );
    assert_eq!(again.body, body);
    assert_eq!(
        again.system.get("MessageGroupId").map(String::as_str),
        Some("tenant-a")
    );
    // A new message: its receives start again, so throttling never dead-letters it.
    assert_eq!(
        again
            .system
            .get("ApproximateReceiveCount")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(defer::deferrals(again.pairs()), 2);
    assert_eq!(
        again
            .attributes
            .get(DEFERRALS_ATTRIBUTE)
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(defer::not_before(again.pairs()), None, "within 15 minutes");
}

#[tokio::test]
async fn a_wait_beyond_fifteen_minutes_is_delayed_900_s_and_carries_not_before() {
    let lanes = lanes().await;
    // A backfill lead, sent by a producer that predates the contract (no group): the
    // deferral puts it in the tenant's group its body names.
    let message = InboundMessage {
        message_id: "m-2".into(),
        body: lead("tenant-c", "lead-9"),
        lane: Lane::Backfill,
        ..Default::default()
    };
    let until = Utc::now() + Duration::hours(2);
    defer::defer(
        &lanes.services,
        &message,
        until,
        "zoho: daily credits used up",
    )
    .await
    .expect("deferred");
    assert!(receive(&lanes.backfill, 0).await.is_empty());
    assert_eq!(lanes.backfill.delayed_count().await, 1);
    assert_eq!(
        lanes.live.delayed_count().await,
        0,
        "never onto the live lane"
    );
    // Its 900 s delay cannot be waited out here; what it was sent with is the plan below,
    // and the next test reads such a message's attributes back as lead-push gets them.
    let plan = defer::Deferral::plan(until, Utc::now());
    assert_eq!(plan.delay_seconds, MAX_DELAY_SECONDS);
    assert_eq!(plan.not_before, Some(until));
}

#[tokio::test]
async fn the_next_delivery_before_not_before_reads_it_back() {
    let lanes = lanes().await;
    // What a deferral to two hours away looks like on its next delivery: sent as defer()
    // sends it but without the delay, so the test can receive it now.
    let until = (Utc::now() + Duration::hours(2)).to_rfc3339();
    lanes
        .live
        .sqs
        .send_message()
        .queue_url(&lanes.live.url)
        .message_body(lead("tenant-a", "lead-1"))
        .message_group_id("tenant-a")
        .message_attributes(
            NOT_BEFORE_ATTRIBUTE,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(&until)
                .build()
                .unwrap(),
        )
        .message_attributes(
            DEFERRALS_ATTRIBUTE,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("Number")
                .string_value("1")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Through the event Lambda hands lead-push: the attributes are on the record.
    let event = lanes.live.receive(1).await;
    let record = &event.records[0];
    let pairs: Vec<(&str, Option<&str>)> = record
        .message_attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.string_value.as_deref()))
        .collect();
    assert_eq!(
        defer::not_before(pairs.iter().copied()).map(|t| t.to_rfc3339()),
        Some(until)
    );
    assert_eq!(defer::deferrals(pairs.iter().copied()), 1);
}

#[tokio::test]
async fn a_failed_send_is_an_error_so_the_caller_keeps_the_original() {
    let lanes = lanes().await;
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", "unused".to_string()),
        ("KMS_KEY_ID", "alias/unused".to_string()),
        ("SETUP_PAGE_URL", "https://app.example.com/".to_string()),
        (
            "OAUTH_REDIRECT_BASE_URL",
            "https://api.example.com/".to_string(),
        ),
    ]);
    let message = InboundMessage {
        message_id: "m-3".into(),
        body: lead("tenant-a", "lead-1"),
        ..Default::default()
    };
    let aws = relay_tests::aws::local_config().await.unwrap();

    // No queue configured for the lane.
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let services = Services::with_oauth_apps(config, &aws);
    let error = defer::defer(&services, &message, Utc::now(), "throttled")
        .await
        .expect_err("no LEAD_QUEUE_URL");
    assert!(error.to_string().contains("LEAD_QUEUE_URL"), "{error}");

    // A queue that does not exist: SendMessage fails, and so does the deferral.
    let missing = lanes.live.url.replace("-leads", "-gone");
    vars.insert("LEAD_QUEUE_URL", missing);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let services = Services::with_oauth_apps(config, &aws);
    let error = defer::defer(&services, &message, Utc::now(), "throttled")
        .await
        .expect_err("the queue is gone");
    assert!(error.to_string().contains("SendMessage"), "{error}");
    assert!(error.is_retryable());
    assert!(receive(&lanes.live, 0).await.is_empty());
}

#[tokio::test]
async fn a_redriven_copy_keeps_its_tenants_group() {
    let lanes = lanes().await;
    let sqs = &lanes.live.sqs;
    let body_a = lead("tenant-a", "lead-1");
    let body_b = lead("tenant-b", "lead-2");
    // One dead-lettered with its group, one as the relay's DLQ send leaves it (a tenant_id
    // attribute, no group).
    sqs.send_message()
        .queue_url(&lanes.live.dead_letter_url)
        .message_body(&body_a)
        .message_group_id("tenant-a")
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&lanes.live.dead_letter_url)
        .message_body(&body_b)
        .message_attributes(
            "tenant_id",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("tenant-b")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(["--dlq-url", &lanes.live.dead_letter_url])
        .args(["--queue-url", &lanes.live.url])
        .args(["--method", "copy"])
        .output()
        .expect("the redrive binary runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let copies = receive(&lanes.live, 0).await;
    let groups: HashMap<String, Option<String>> = copies
        .iter()
        .map(|m| (m.body.clone(), m.system.get("MessageGroupId").cloned()))
        .collect();
    assert_eq!(
        groups,
        HashMap::from([
            (body_a, Some("tenant-a".to_string())),
            (body_b, Some("tenant-b".to_string())),
        ])
    );
}
