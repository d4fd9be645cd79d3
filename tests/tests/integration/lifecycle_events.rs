//! Lifecycle events and EMF metrics, as the real flows emit them: connects, pushes, failures,
//! dead letters, needs-reauth, suspension and disconnects run against moto and the simulators;
//! moto's EventBridge delivers every event to an SQS queue through a rule, as a consumer's rule
//! would, and each one is checked against its JSON Schema in `events/schemas/`.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_sqs::types::QueueAttributeName;
use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::logs;
use relay_tests::queue::lead_message;
use relay_tests::sim::{Fault, Route};
use serde_json::{json, Value};
use shared::events::{LifecycleEvents, KINDS, SOURCE};
use shared::push::{process_message, DestinationOutcome, InboundMessage, MessageOutcome};
use shared::Provider;

/// A bus of its own, and a rule sending everything the relay publishes on it to a queue.
struct EventTap {
    bus: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl EventTap {
    async fn create(aws: &aws_config::SdkConfig) -> EventTap {
        let name = format!("relay-events-{}", uuid::Uuid::new_v4().simple());
        let eventbridge = aws_sdk_eventbridge::Client::new(aws);
        eventbridge
            .create_event_bus()
            .name(&name)
            .send()
            .await
            .expect("CreateEventBus");
        let sqs = aws_sdk_sqs::Client::new(aws);
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .unwrap();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        eventbridge
            .put_rule()
            .name("relay-lifecycle")
            .event_bus_name(&name)
            .event_pattern(json!({ "source": [SOURCE] }).to_string())
            .send()
            .await
            .expect("PutRule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(queue_arn)
            .build()
            .unwrap();
        eventbridge
            .put_targets()
            .rule("relay-lifecycle")
            .event_bus_name(&name)
            .targets(target)
            .send()
            .await
            .expect("PutTargets");
        EventTap {
            bus: name,
            sqs,
            queue_url,
        }
    }

    /// A context whose functions publish to this tap's bus.
    async fn context(&self) -> TestContext {
        TestContext::with_env(&[("EVENT_BUS_NAME", &self.bus)]).await
    }

    /// Every event delivered since the last call (moto delivers during `PutEvents`).
    async fn take(&self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let batch = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = batch.messages.unwrap_or_default();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                events.push(serde_json::from_str(message.body().unwrap()).unwrap());
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
    }
}

fn detail_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap())
        .collect()
}

fn schema_path(slug: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../events/schemas/{slug}.v1.json"))
}

/// Checks an event as delivered: the relay's source, a known detail-type, a detail valid under
/// that type's schema (formats checked), and nothing secret-looking anywhere in it.
fn check(event: &Value, secrets: &[&str]) {
    assert_eq!(event["source"], SOURCE, "{event}");
    let detail_type = event["detail-type"].as_str().unwrap();
    let (_, slug) = KINDS
        .iter()
        .find(|(t, _)| *t == detail_type)
        .unwrap_or_else(|| panic!("unknown detail-type {detail_type}"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path(slug)).unwrap()).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{slug}: the schema itself is invalid: {e}"));
    let detail = &event["detail"];
    let errors: Vec<String> = validator
        .iter_errors(detail)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{detail_type}: {errors:?}\n{detail}");
    assert_no_secret_fields(detail, detail_type);
    let text = event.to_string();
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{detail_type} carries a secret value"
        );
    }
}

/// No key in the detail looks like it holds a credential.
fn assert_no_secret_fields(value: &Value, detail_type: &str) {
    const WORDS: [&str; 7] = [
        "token",
        "secret",
        "password",
        "api_key",
        "apikey",
        "authorization",
        "credential",
    ];
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let key = key.to_ascii_lowercase();
                assert!(
                    !WORDS.iter().any(|w| key.contains(w)),
                    "{detail_type}: field {key:?} looks secret"
                );
                assert_no_secret_fields(inner, detail_type);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| assert_no_secret_fields(v, detail_type)),
        _ => {}
    }
}

fn fatima(tenant: &str, id: &str, stage: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": id, "name": "Fatima Al-Kuwari", "email": "fatima@example.qa",
               "phone": "5555 1234", "country": "QA", "stage": stage}),
        Some("Asked for a quote"),
    )
}

async fn connect_hubspot(ctx: &TestContext) -> String {
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    tenant
}

fn message(body: String, receive_count: u32) -> InboundMessage {
    InboundMessage {
        message_id: format!("m-{}", uuid::Uuid::new_v4().simple()),
        body,
        receive_count,
        ..Default::default()
    }
}

/// The secrets a HubSpot context holds that no event may carry: the app's client secret and
/// every token the simulator issued.
fn hubspot_secrets(ctx: &TestContext) -> Vec<String> {
    let mut secrets = vec![ctx.client_secret.clone()];
    for request in ctx.hubspot.requests() {
        if let Some(auth) = request.headers.get("authorization") {
            secrets.push(auth.trim_start_matches("Bearer ").to_string());
        }
        for key in ["refresh_token", "client_secret", "code"] {
            if let Some(v) = request.form().get(key) {
                secrets.push(v.clone());
            }
        }
    }
    secrets.retain(|s| s.len() >= 8);
    secrets
}

#[tokio::test]
async fn every_event_a_hubspot_tenant_lives_through_is_valid_under_its_schema() {
    let aws = relay_tests::aws::local_config().await.unwrap();
    let tap = EventTap::create(&aws).await;
    let ctx = tap.context().await;

    // Connected.
    let tenant = connect_hubspot(&ctx).await;
    let mut seen = tap.take().await;
    assert_eq!(detail_types(&seen), ["Connection Connected"]);
    assert_eq!(seen[0]["detail"]["tenant_id"], tenant.as_str());
    assert_eq!(seen[0]["detail"]["reconnect"], false);

    // Pushed: one event with the records the lead is in.
    let first = process_message(&ctx.services, &message(fatima(&tenant, "lead-1", "new"), 1)).await;
    let MessageOutcome::Done { results } = &first else {
        panic!("{first:?}")
    };
    let DestinationOutcome::Pushed { records } = &results[0].1 else {
        panic!("{results:?}")
    };
    let pushed = tap.take().await;
    assert_eq!(detail_types(&pushed), ["Lead Pushed"]);
    let detail = &pushed[0]["detail"];
    assert_eq!(detail["lead_id"], "lead-1");
    assert_eq!(detail["provider"], "hubspot");
    assert_eq!(detail["records"], json!(records));
    let linked: Vec<&str> = detail["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(linked.len(), records.len(), "{detail}");
    assert!(records.values().all(|id| linked.contains(&id.as_str())));
    // The contact and the deal open in the HubSpot portal the connection names.
    let hub = ctx
        .services
        .store
        .get_connection(
            &shared::identity::TenantId::parse(&tenant).unwrap(),
            Provider::Hubspot,
        )
        .await
        .unwrap()
        .unwrap()
        .account["hub_id"]
        .clone();
    for link in detail["links"].as_array().unwrap() {
        if ["contact", "deal"].contains(&link["kind"].as_str().unwrap()) {
            let url = link["url"].as_str().unwrap_or_else(|| panic!("{link}"));
            assert!(
                url.starts_with("https://app.hubspot.com/contacts/"),
                "{url}"
            );
            assert!(url.contains(&hub), "{url}");
            assert!(url.ends_with(link["id"].as_str().unwrap()), "{url}");
        }
    }
    seen.extend(pushed);

    // Failed for now: HubSpot is down for the contact call.
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Contacts, Fault::Status(503, "down".into()));
    }
    let failing =
        process_message(&ctx.services, &message(fatima(&tenant, "lead-2", "new"), 2)).await;
    assert!(
        matches!(failing, MessageOutcome::Retry { .. }),
        "{failing:?}"
    );
    let failed = tap.take().await;
    assert_eq!(detail_types(&failed), ["Lead Failed"]);
    assert_eq!(failed[0]["detail"]["attempt"], 2);
    assert_eq!(failed[0]["detail"]["providers"], json!(["hubspot"]));
    seen.extend(failed);

    // Dead-lettered: a message that is not a lead, and a lead failing on its last delivery.
    let junk = process_message(&ctx.services, &message("not json".into(), 1)).await;
    assert!(
        matches!(junk, MessageOutcome::DeadLettered { .. }),
        "{junk:?}"
    );
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Contacts, Fault::Status(502, "bad gateway".into()));
    }
    let last = process_message(&ctx.services, &message(fatima(&tenant, "lead-3", "new"), 5)).await;
    assert!(
        matches!(last, MessageOutcome::DeadLettered { .. }),
        "{last:?}"
    );
    let dead = tap.take().await;
    assert_eq!(
        detail_types(&dead),
        ["Lead Dead-Lettered", "Lead Dead-Lettered"]
    );
    assert!(dead[0]["detail"]["tenant_id"].is_null());
    assert_eq!(dead[1]["detail"]["lead_id"], "lead-3");
    assert_eq!(dead[1]["detail"]["attempt"], 5);
    seen.extend(dead);

    // Needs reauth: the token is refused and the refresh finds the grant dead.
    ctx.hubspot.expire_access_tokens();
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","status":"BAD_REFRESH_TOKEN","message":"x"}"#.into(),
        ),
    );
    let parked =
        process_message(&ctx.services, &message(fatima(&tenant, "lead-4", "new"), 1)).await;
    assert!(
        matches!(parked, MessageOutcome::Parked { .. }),
        "{parked:?}"
    );
    let reauth = tap.take().await;
    assert_eq!(detail_types(&reauth), ["Connection Needs Reauth"]);
    assert!(reauth[0]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    seen.extend(reauth);

    // Disconnected.
    let gone = ctx
        .api(ApiEvent::sample("connections-api/disconnect.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    let disconnected = tap.take().await;
    assert_eq!(detail_types(&disconnected), ["Connection Disconnected"]);
    seen.extend(disconnected);

    let secrets = hubspot_secrets(&ctx);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    for event in &seen {
        check(event, &secrets);
    }
}

#[tokio::test]
async fn a_bitrix24_portal_that_stops_paying_is_announced_as_suspended() {
    const PORTAL: &str = "souq-events.bitrix24.com";
    let aws = relay_tests::aws::local_config().await.unwrap();
    let tap = EventTap::create(&aws).await;
    let ctx = tap.context().await;
    ctx.bitrix.add_portal(PORTAL);
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", PORTAL, PORTAL).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    let connected = tap.take().await;
    assert_eq!(detail_types(&connected), ["Connection Connected"]);
    assert_eq!(connected[0]["detail"]["provider"], "bitrix24");

    ctx.bitrix.set_payment_required(PORTAL, true);
    let delivery = ctx.deliver(&[fatima(&tenant, "lead-b", "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let suspended = tap.take().await;
    assert_eq!(detail_types(&suspended), ["Connection Suspended"]);
    assert!(suspended[0]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("PAYMENT_REQUIRED"));
    for event in connected.iter().chain(&suspended) {
        check(event, &[ctx.client_secret.as_str()]);
    }
}

#[tokio::test]
async fn a_replay_and_a_second_failure_of_a_dead_connection_publish_nothing() {
    let aws = relay_tests::aws::local_config().await.unwrap();
    let tap = EventTap::create(&aws).await;
    let ctx = tap.context().await;
    let tenant = connect_hubspot(&ctx).await;
    let body = fatima(&tenant, "lead-r", "new");
    assert!(ctx
        .deliver(std::slice::from_ref(&body))
        .await
        .failed
        .is_empty());
    assert_eq!(
        detail_types(&tap.take().await),
        ["Connection Connected", "Lead Pushed"]
    );

    // The same message again changes nothing in HubSpot, and announces nothing.
    let replay = process_message(&ctx.services, &message(body.clone(), 2)).await;
    assert_eq!(
        replay,
        MessageOutcome::Done {
            results: vec![(Provider::Hubspot, DestinationOutcome::AlreadyPushed)]
        }
    );
    assert_eq!(detail_types(&tap.take().await), Vec::<&str>::new());

    // The grant dies: one needs-reauth event.
    ctx.hubspot.expire_access_tokens();
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","status":"BAD_REFRESH_TOKEN","message":"x"}"#.into(),
        ),
    );
    let parked =
        process_message(&ctx.services, &message(fatima(&tenant, "lead-s", "new"), 1)).await;
    assert!(
        matches!(parked, MessageOutcome::Parked { .. }),
        "{parked:?}"
    );
    assert_eq!(detail_types(&tap.take().await), ["Connection Needs Reauth"]);

    // Failing again while it waits for the tenant (a push, the schedule) announces nothing new.
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","status":"BAD_REFRESH_TOKEN","message":"x"}"#.into(),
        ),
    );
    let again = process_message(&ctx.services, &message(fatima(&tenant, "lead-t", "new"), 1)).await;
    assert!(matches!(again, MessageOutcome::Parked { .. }), "{again:?}");
    ctx.run_schedule().await;
    assert_eq!(detail_types(&tap.take().await), Vec::<&str>::new());
}

/// EventBridge out of reach, or holding the call: the push's result stands, the time spent is
/// bounded, and the failure is logged (without the detail) and counted as an EMF metric.
#[tokio::test]
async fn a_failing_event_bus_never_fails_a_push_and_is_counted() {
    let ctx = TestContext::with_env(&[("EVENT_BUS_NAME", "relay-events-unreachable")]).await;
    let tenant = connect_hubspot(&ctx).await;

    // A port that refuses connections: bound but never listening, so it stays reserved for the
    // whole test (a port merely released could be taken by another test's server meanwhile).
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    // A port that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let holding = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    for (n, endpoint) in [refused, holding].into_iter().enumerate() {
        let mut config = shared::config::Config::from_lookup(|k| ctx.vars.get(k).cloned()).unwrap();
        config.oauth_apps = ctx.services.config.oauth_apps.clone();
        let mut services = shared::Services::with_oauth_apps(config, &ctx.aws);
        let eventbridge = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&ctx.aws)
                .endpoint_url(&endpoint)
                .build(),
        );
        services.events = LifecycleEvents::new(eventbridge, Some("relay-events".into()))
            .with_timeout(std::time::Duration::from_millis(300));

        let lead_id = format!("lead-f{n}");
        let pushed =
            process_message(&services, &message(fatima(&tenant, &lead_id, "new"), 1)).await;
        assert!(
            matches!(&pushed, MessageOutcome::Done { results } if matches!(results[0].1, DestinationOutcome::Pushed { .. })),
            "{pushed:?}"
        );
    }
    assert_eq!(ctx.hubspot.contacts().len(), 1, "one person, two leads");
    assert_eq!(ctx.hubspot.deals().len(), 2);

    let logged = logs::captured();
    let failures: Vec<Value> = emf_lines(&logged)
        .into_iter()
        .filter(|l| l["tenant_id"] == tenant.as_str() && l.get("EventPublishFailures").is_some())
        .collect();
    // The context's own bus does not exist in moto: its connect event failed as well.
    let types: Vec<&str> = failures
        .iter()
        .map(|l| l["detail_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Connection Connected", "Lead Pushed", "Lead Pushed"],
        "one per event not published"
    );
    let warnings: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("lifecycle event not published") && l.contains(tenant.as_str()))
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no answer within 300ms")),
        "the held call was cut at the bound: {warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| !w.contains("Fatima") && !w.contains("records")),
        "the detail stays out of the log"
    );
}

/// Every EMF record among the captured log lines.
fn emf_lines(logged: &str) -> Vec<Value> {
    logged
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

/// The metrics a push, a failure, a dead letter and a refresh write: valid EMF, each on a line
/// of its own, each under the relay's namespace with the provider dimension.
#[tokio::test]
async fn pushes_refreshes_and_failures_write_valid_emf_lines() {
    let ctx = TestContext::new().await;
    let tenant = connect_hubspot(&ctx).await;
    assert!(ctx
        .deliver(&[fatima(&tenant, "lead-m", "new")])
        .await
        .failed
        .is_empty());
    ctx.hubspot.inject(Route::Contacts, Fault::Throttle);
    assert!(ctx
        .deliver(&[fatima(&tenant, "lead-n", "new")])
        .await
        .failed
        .is_empty());
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Contacts, Fault::Status(502, "bad gateway".into()));
    }
    process_message(&ctx.services, &message(fatima(&tenant, "lead-o", "new"), 5)).await;
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Contacts, Fault::Status(503, "down".into()));
    }
    let retry = process_message(&ctx.services, &message(fatima(&tenant, "lead-v", "new"), 2)).await;
    assert!(matches!(retry, MessageOutcome::Retry { .. }), "{retry:?}");
    // A rejected token: refreshed once, then pushed.
    ctx.hubspot.expire_access_tokens();
    assert!(ctx
        .deliver(&[fatima(&tenant, "lead-p", "new")])
        .await
        .failed
        .is_empty());
    // Then the grant dies.
    ctx.hubspot.expire_access_tokens();
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","status":"BAD_REFRESH_TOKEN","message":"x"}"#.into(),
        ),
    );
    process_message(&ctx.services, &message(fatima(&tenant, "lead-q", "new"), 1)).await;

    let logged = logs::captured();
    let mine: Vec<Value> = emf_lines(&logged)
        .into_iter()
        .filter(|l| l["tenant_id"] == tenant.as_str())
        .collect();
    let mut totals: HashMap<String, f64> = HashMap::new();
    for line in &mine {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "LeadRelay/CrmRelay", "{line}");
        assert_eq!(directive["Dimensions"], json!([["Provider"]]), "{line}");
        assert_eq!(line["Provider"], "hubspot", "{line}");
        assert!(line["_aws"]["Timestamp"].is_i64(), "{line}");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let value = line[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} has no value: {line}"));
            *totals.entry(name.to_string()).or_default() += value;
        }
    }
    assert_eq!(totals.get("LeadsPushed"), Some(&3.0), "{totals:?}");
    assert_eq!(totals.get("LeadsDeadLettered"), Some(&1.0), "{totals:?}");
    assert_eq!(totals.get("LeadsFailed"), Some(&1.0), "{totals:?}");
    assert_eq!(totals.get("TokenRefreshes"), Some(&1.0), "{totals:?}");
    assert_eq!(totals.get("TokenRefreshFailures"), Some(&1.0), "{totals:?}");
    assert_eq!(
        totals.get("ConnectionsNeedingReauth"),
        Some(&1.0),
        "{totals:?}"
    );
    // Every EMF line of the process is a whole line: JSON from its first byte to its last.
    for line in logged.lines().filter(|l| l.contains("\"_aws\"")) {
        let parsed: Value = serde_json::from_str(line).expect("an EMF line on its own");
        assert!(parsed["_aws"]["CloudWatchMetrics"].is_array());
    }
    // Provider calls carry no tenant: they are counted per provider, with the operation.
    let calls: Vec<Value> = emf_lines(&logged)
        .into_iter()
        .filter(|l| l.get("ProviderCallLatency").is_some() && l["Provider"] == "hubspot")
        .collect();
    assert!(!calls.is_empty());
    assert!(calls
        .iter()
        .all(|c| c["operation"].is_string() && c["ProviderCallLatency"].as_f64().unwrap() >= 0.0));
    assert!(
        calls
            .iter()
            .any(|c| c["ProviderThrottled"].as_f64().unwrap() >= 1.0),
        "the throttled contact call was counted"
    );
}
