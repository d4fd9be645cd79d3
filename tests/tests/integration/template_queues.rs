//! infra/template.yaml's lead queues against the code and AWS's rules: both lanes feed
//! lead-push, a burst arrives in large batches within the limits Lambda documents for standard
//! queues, each queue's visibility timeout covers six function timeouts plus its batching
//! window, the backfill lane runs at the lowest concurrency SQS allows, the function is
//! configured with the queues the code reads, and may send exactly where it defers and
//! dead-letters.

use std::collections::BTreeSet;

use serde_yaml::Value;
use shared::push::defer::queue_variable;
use shared::push::Lane;

const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("the template parses")
}

fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

fn reference(value: &Value) -> Option<String> {
    tagged(value, "!Ref")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn get_att(value: &Value) -> Option<String> {
    tagged(value, "!GetAtt").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(parts) => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    })
}

/// The lead-push event whose queue is `queue` (a resource name).
fn event_on<'a>(template: &'a Value, queue: &str) -> &'a Value {
    let events = template["Resources"]["LeadPushFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("LeadPushFunction has events");
    let wanted = format!("{queue}.Arn");
    let found: Vec<&Value> = events
        .values()
        .filter(|e| get_att(&e["Properties"]["Queue"]).as_deref() == Some(wanted.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "one lead-push event on {queue}");
    &found[0]["Properties"]
}

fn resources(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Sequence(items) => items.iter().filter_map(get_att).collect(),
        single => get_att(single).into_iter().collect(),
    }
}

#[test]
fn both_lanes_feed_lead_push_in_large_batches_within_the_documented_limits() {
    let template = template();
    let function = &template["Resources"]["LeadPushFunction"]["Properties"];
    let timeout = function["Timeout"].as_u64().expect("a timeout of its own");
    let mut concurrency = Vec::new();
    for queue in ["LeadQueue", "BackfillQueue"] {
        let event = event_on(&template, queue);
        let batch = event["BatchSize"].as_u64().unwrap();
        let window = event["MaximumBatchingWindowInSeconds"]
            .as_u64()
            .unwrap_or(0);
        // A burst arrives in batches a provider's batch call takes whole (HubSpot, Zoho: 100).
        assert!(batch >= 100, "{queue}: batch size {batch}");
        // Lambda: at most 10,000 on a standard queue; above 10 a window of at least 1 s.
        assert!(batch <= 10_000, "{queue}: batch size {batch}");
        assert!((1..=300).contains(&window), "{queue}: window {window}");
        assert_eq!(
            event["FunctionResponseTypes"][0].as_str(),
            Some("ReportBatchItemFailures"),
            "{queue}: partial batch failures"
        );
        let queue_props = &template["Resources"][queue]["Properties"];
        let visibility = queue_props["VisibilityTimeout"].as_u64().unwrap();
        assert!(
            visibility >= 6 * timeout + window,
            "{queue}: visibility {visibility} s < 6 x {timeout} s + {window} s"
        );
        // Fair queues are standard queues with group ids on the messages.
        assert!(
            queue_props["FifoQueue"].is_null(),
            "{queue} is a standard queue"
        );
        concurrency.push(
            event["ScalingConfig"]["MaximumConcurrency"]
                .as_u64()
                .unwrap(),
        );
    }
    let (live, backfill) = (concurrency[0], concurrency[1]);
    assert_eq!(backfill, 2, "the lowest maximum concurrency SQS allows");
    assert!(backfill < live, "{backfill} < {live}");
}

#[test]
fn each_lane_dead_letters_to_its_own_queue_after_the_receives_lead_push_counts() {
    let template = template();
    let variables =
        &template["Resources"]["LeadPushFunction"]["Properties"]["Environment"]["Variables"];
    let max_receives: u64 = variables["LEAD_MAX_RECEIVES"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for (queue, dlq) in [
        ("LeadQueue", "LeadDeadLetterQueue"),
        ("BackfillQueue", "BackfillDeadLetterQueue"),
    ] {
        let redrive = &template["Resources"][queue]["Properties"]["RedrivePolicy"];
        assert_eq!(
            get_att(&redrive["deadLetterTargetArn"]),
            Some(format!("{dlq}.Arn"))
        );
        assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(max_receives));
        let allowed = &template["Resources"][dlq]["Properties"]["RedriveAllowPolicy"];
        let source = tagged(&allowed["sourceQueueArns"][0], "!Sub")
            .and_then(Value::as_str)
            .unwrap();
        let name = tagged(
            &template["Resources"][queue]["Properties"]["QueueName"],
            "!Sub",
        )
        .and_then(Value::as_str)
        .unwrap();
        assert!(source.ends_with(&format!(":{name}")), "{source} / {name}");
    }
    assert_eq!(
        reference(&variables["DEAD_LETTER_QUEUE_URL"]).as_deref(),
        Some("LeadDeadLetterQueue")
    );
    assert_eq!(
        reference(&variables["BACKFILL_DEAD_LETTER_QUEUE_URL"]).as_deref(),
        Some("BackfillDeadLetterQueue")
    );
}

#[test]
fn lead_push_knows_both_queues_by_the_names_the_code_reads() {
    let template = template();
    let variables =
        &template["Resources"]["LeadPushFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(queue_variable(Lane::Live), "LEAD_QUEUE_URL");
    assert_eq!(queue_variable(Lane::Backfill), "BACKFILL_QUEUE_URL");
    assert_eq!(
        reference(&variables[queue_variable(Lane::Live)]).as_deref(),
        Some("LeadQueue")
    );
    assert_eq!(
        reference(&variables[queue_variable(Lane::Backfill)]).as_deref(),
        Some("BackfillQueue")
    );
    assert_eq!(
        get_att(&variables["BACKFILL_QUEUE_ARN"]).as_deref(),
        Some("BackfillQueue.Arn")
    );

    // The configuration the template gives reads back as two lanes (the queue variables
    // count only when the function's environment sets them).
    let config = shared::config::Config::from_lookup(|name| {
        let queue = match name {
            "TABLE_NAME" | "KMS_KEY_ID" => return Some("x".into()),
            "SETUP_PAGE_URL" | "OAUTH_REDIRECT_BASE_URL" => {
                return Some("https://example.com/".into())
            }
            "LEAD_QUEUE_URL" => "https://sqs/1/leadrelay-dev-leads",
            "BACKFILL_QUEUE_URL" => "https://sqs/1/leadrelay-dev-backfill",
            "BACKFILL_QUEUE_ARN" => "arn:aws:sqs:eu-west-1:1:leadrelay-dev-backfill",
            _ => return None,
        };
        (!variables[name].is_null()).then(|| queue.to_string())
    })
    .unwrap();
    assert_eq!(
        config.lane_of(Some("arn:aws:sqs:eu-west-1:1:leadrelay-dev-backfill")),
        Lane::Backfill
    );
    assert_eq!(
        config.queue_url(Lane::Live),
        Some("https://sqs/1/leadrelay-dev-leads")
    );
    assert_eq!(
        config.queue_url(Lane::Backfill),
        Some("https://sqs/1/leadrelay-dev-backfill")
    );
}

#[test]
fn lead_push_may_poll_both_queues_and_send_only_to_its_lanes_and_their_dlqs() {
    let template = template();
    let statements = template["Resources"]["LeadPushRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    let mut send = BTreeSet::new();
    let mut poll = BTreeSet::new();
    for statement in statements {
        let actions: Vec<String> = match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Sequence(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        if actions.iter().any(|a| a == "sqs:SendMessage") {
            send.extend(resources(&statement["Resource"]));
        }
        if actions.iter().any(|a| a == "sqs:ReceiveMessage") {
            poll.extend(resources(&statement["Resource"]));
        }
    }
    let arns =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| format!("{n}.Arn")).collect() };
    assert_eq!(
        send,
        arns(&[
            "LeadQueue",
            "BackfillQueue",
            "LeadDeadLetterQueue",
            "BackfillDeadLetterQueue"
        ])
    );
    assert_eq!(poll, arns(&["LeadQueue", "BackfillQueue"]));
}

#[test]
fn the_producer_is_given_the_backfill_queue() {
    let template = template();
    let outputs = &template["Outputs"];
    assert_eq!(
        reference(&outputs["BackfillQueueUrl"]["Value"]).as_deref(),
        Some("BackfillQueue")
    );
    assert_eq!(
        get_att(&outputs["BackfillQueueArn"]["Value"]).as_deref(),
        Some("BackfillQueue.Arn")
    );
}
