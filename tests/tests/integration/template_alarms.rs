//! infra/template.yaml's operations part against the code: the lifecycle bus and who may
//! publish to it, the alarms (metric, threshold, actions only when a notification target is
//! given), the dashboard's metrics (the names shared::metrics writes), and no secret anywhere
//! in the template.

use std::collections::BTreeSet;

use serde_yaml::Value;
use shared::metrics;

const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("the template parses")
}

/// The tag and value of `!Tag value`, else None.
fn tagged<'a>(value: &'a Value, tag: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

fn reference(value: &Value) -> Option<&str> {
    tagged(value, "!Ref").and_then(Value::as_str)
}

fn get_att(value: &Value) -> Option<String> {
    let target = tagged(value, "!GetAtt")?;
    match target {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(parts) => Some(
            parts
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

fn resources_of_type(template: &Value, kind: &str) -> BTreeSet<String> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, _)| name.as_str().unwrap().to_string())
        .collect()
}

fn alarm<'a>(template: &'a Value, name: &str) -> &'a Value {
    let alarm = &template["Resources"][name];
    assert_eq!(
        alarm["Type"].as_str(),
        Some("AWS::CloudWatch::Alarm"),
        "{name} is an alarm"
    );
    &alarm["Properties"]
}

/// (namespace, metric, dimension name, dimension value as written) of a single-metric alarm.
fn single_metric(props: &Value) -> (String, String, String, String) {
    let dimension = &props["Dimensions"][0];
    let value = get_att(&dimension["Value"])
        .or_else(|| reference(&dimension["Value"]).map(str::to_string))
        .expect("the dimension names a resource");
    (
        props["Namespace"].as_str().unwrap().to_string(),
        props["MetricName"].as_str().unwrap().to_string(),
        dimension["Name"].as_str().unwrap().to_string(),
        value,
    )
}

/// The Metrics Insights query of an alarm over every provider, and its period.
fn insights_query(props: &Value) -> (String, u64) {
    let metrics = props["Metrics"].as_sequence().expect("a query alarm");
    assert_eq!(metrics.len(), 1, "one query, returning one series");
    let query = &metrics[0];
    assert_eq!(query["ReturnData"].as_bool(), Some(true));
    (
        query["Expression"].as_str().unwrap().to_string(),
        query["Period"].as_u64().unwrap(),
    )
}

fn threshold(props: &Value) -> (String, Value) {
    (
        props["ComparisonOperator"].as_str().unwrap().to_string(),
        props["Threshold"].clone(),
    )
}

#[test]
fn the_alarms_watch_the_dlq_the_queue_age_lead_push_errors_refresh_failures_and_lost_tokens() {
    let template = template();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    assert_eq!(
        alarms,
        [
            "BackfillDeadLetterQueueNotEmptyAlarm",
            "LeadDeadLetterQueueNotEmptyAlarm",
            "LeadPushErrorsAlarm",
            "LeadQueueOldestLeadAlarm",
            "RefreshedTokensLostAlarm",
            "TokenRefreshFailuresAlarm",
        ]
        .map(String::from)
        .into(),
    );
    let at_least_one = (
        "GreaterThanOrEqualToThreshold".to_string(),
        Value::from(1u64),
    );

    let dlq = alarm(&template, "LeadDeadLetterQueueNotEmptyAlarm");
    assert_eq!(
        single_metric(dlq),
        (
            "AWS/SQS".into(),
            "ApproximateNumberOfMessagesVisible".into(),
            "QueueName".into(),
            "LeadDeadLetterQueue.QueueName".into()
        )
    );
    assert_eq!(threshold(dlq), at_least_one, "one lead in the DLQ");
    assert_eq!(dlq["Statistic"].as_str(), Some("Maximum"));

    let age = alarm(&template, "LeadQueueOldestLeadAlarm");
    assert_eq!(
        single_metric(age),
        (
            "AWS/SQS".into(),
            "ApproximateAgeOfOldestMessage".into(),
            "QueueName".into(),
            "LeadQueue.QueueName".into()
        )
    );
    assert_eq!(
        age["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold")
    );
    assert_eq!(
        reference(&age["Threshold"]),
        Some("LeadQueueAgeAlarmSeconds")
    );
    // A lead waiting out one visibility timeout after a failure is not a backlog.
    let visibility = template["Resources"]["LeadQueue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .unwrap();
    let default_age = template["Parameters"]["LeadQueueAgeAlarmSeconds"]["Default"]
        .as_u64()
        .unwrap();
    assert!(
        default_age > visibility,
        "{default_age} s must exceed one retry's wait ({visibility} s)"
    );

    let errors = alarm(&template, "LeadPushErrorsAlarm");
    assert_eq!(
        single_metric(errors),
        (
            "AWS/Lambda".into(),
            "Errors".into(),
            "FunctionName".into(),
            "LeadPushFunction".into()
        )
    );
    assert_eq!(threshold(errors), at_least_one);
    assert_eq!(errors["Statistic"].as_str(), Some("Sum"));

    let every_provider = |metric: &str| {
        format!(
            "SELECT SUM({metric}) FROM SCHEMA(\"{}\", Provider)",
            metrics::NAMESPACE
        )
    };
    let refresh = alarm(&template, "TokenRefreshFailuresAlarm");
    assert_eq!(
        insights_query(refresh),
        (every_provider(metrics::REFRESH_FAILURES), 600)
    );
    assert_eq!(
        refresh["ComparisonOperator"].as_str(),
        Some("GreaterThanOrEqualToThreshold")
    );
    assert_eq!(
        reference(&refresh["Threshold"]),
        Some("RefreshFailureAlarmThreshold")
    );
    assert_eq!(
        (
            refresh["DatapointsToAlarm"].as_u64(),
            refresh["EvaluationPeriods"].as_u64()
        ),
        (Some(2), Some(3))
    );

    let lost = alarm(&template, "RefreshedTokensLostAlarm");
    assert_eq!(
        insights_query(lost),
        (every_provider(metrics::REFRESHED_TOKENS_LOST), 300)
    );
    assert_eq!(
        threshold(lost),
        at_least_one,
        "a single lost token is an incident"
    );

    for name in &alarms {
        let props = alarm(&template, name);
        assert_eq!(
            props["TreatMissingData"].as_str(),
            Some("notBreaching"),
            "{name}: no data means nothing happened"
        );
        for actions in ["AlarmActions", "OKActions"] {
            let branches = tagged(&props[actions], "!If")
                .and_then(Value::as_sequence)
                .unwrap_or_else(|| panic!("{name}.{actions} is conditional"));
            assert_eq!(branches[0].as_str(), Some("HasAlarmNotification"), "{name}");
            assert_eq!(
                reference(&branches[2]),
                Some("AWS::NoValue"),
                "{name}: no actions without a target"
            );
            let target = tagged(&branches[1][0], "!If")
                .and_then(Value::as_sequence)
                .expect("the created topic or the given ARN");
            assert_eq!(target[0].as_str(), Some("CreateAlarmTopic"));
            assert_eq!(reference(&target[1]), Some("AlarmTopic"));
            assert_eq!(reference(&target[2]), Some("AlarmNotification"));
        }
    }

    // The notification target is optional: empty by default, an email or a topic ARN.
    let notification = &template["Parameters"]["AlarmNotification"];
    assert_eq!(notification["Default"].as_str(), Some(""));
    let topic = &template["Resources"]["AlarmTopic"];
    assert_eq!(topic["Condition"].as_str(), Some("CreateAlarmTopic"));
    assert_eq!(
        reference(&topic["Properties"]["Subscription"][0]["Endpoint"]),
        Some("AlarmNotification")
    );
}

#[test]
fn every_function_may_publish_to_the_bus_and_nothing_else_in_eventbridge() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let bus = tagged(&globals["EVENT_BUS_NAME"], "!If")
        .and_then(Value::as_sequence)
        .expect("EVENT_BUS_NAME: the created bus or the named one");
    assert_eq!(bus[0].as_str(), Some("CreateEventBus"));
    assert_eq!(reference(&bus[1]), Some("LifecycleEventBus"));
    assert_eq!(reference(&bus[2]), Some("EventBusName"));
    assert_eq!(
        template["Resources"]["LifecycleEventBus"]["Condition"].as_str(),
        Some("CreateEventBus")
    );

    let policy = &template["Resources"]["PublishLifecycleEventsPolicy"]["Properties"];
    let roles: BTreeSet<String> = policy["Roles"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| reference(r).map(str::to_string))
        .collect();
    let all_roles = resources_of_type(&template, "AWS::IAM::Role");
    assert_eq!(roles, all_roles, "every function publishes");
    let statements = policy["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 1);
    let statement = &statements[0];
    assert_eq!(statement["Action"].as_str(), Some("events:PutEvents"));
    let resource = tagged(&statement["Resource"], "!If")
        .and_then(Value::as_sequence)
        .expect("exactly the bus in use");
    assert_eq!(
        get_att(&resource[1]).as_deref(),
        Some("LifecycleEventBus.Arn")
    );
    let named = tagged(&resource[2], "!Sub")
        .and_then(Value::as_str)
        .unwrap();
    assert!(named.ends_with(":event-bus/${EventBusName}"), "{named}");
    assert_eq!(
        statement["Condition"]["StringEquals"]["events:source"].as_str(),
        Some(shared::events::SOURCE)
    );
    // No other statement grants an EventBridge action.
    let mut documents: Vec<&Value> = Vec::new();
    for role in &all_roles {
        for inline in template["Resources"][role.as_str()]["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            documents.push(&inline["PolicyDocument"]);
        }
    }
    for name in resources_of_type(&template, "AWS::IAM::Policy") {
        if name != "PublishLifecycleEventsPolicy" {
            documents.push(&template["Resources"][name.as_str()]["Properties"]["PolicyDocument"]);
        }
    }
    for document in documents {
        for statement in document["Statement"].as_sequence().unwrap() {
            let actions = match &statement["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Sequence(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            };
            assert!(
                actions.iter().all(|a| !a.starts_with("events:")),
                "{actions:?}"
            );
        }
    }
}

#[test]
fn the_dashboard_shows_every_metric_the_functions_write_and_the_queues() {
    let template = template();
    let body = tagged(
        &template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"],
        "!Sub",
    )
    .and_then(Value::as_str)
    .expect("a !Sub body");
    // What !Sub leaves: `${!x}` becomes `${x}`; every `${Name}` a value.
    let mut rendered = String::new();
    let mut rest = body;
    while let Some(at) = rest.find("${") {
        rendered.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a closed placeholder") + at;
        let inner = &rest[at + 2..end];
        match inner.strip_prefix('!') {
            Some(literal) => rendered.push_str(&format!("${{{literal}}}")),
            None => rendered.push_str(&format!("<{inner}>")),
        }
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    let dashboard: serde_json::Value =
        serde_json::from_str(&rendered).expect("the body is JSON once substituted");
    let widgets = dashboard["widgets"].as_array().expect("widgets");

    let mut searched = BTreeSet::new();
    let mut plain = BTreeSet::new();
    for widget in widgets {
        for line in widget["properties"]["metrics"].as_array().unwrap() {
            let line = line.as_array().unwrap();
            if let Some(expression) = line[0]["expression"].as_str() {
                let prefix = format!("SEARCH('{{{},Provider}} MetricName=\"", metrics::NAMESPACE);
                let metric = expression
                    .strip_prefix(&prefix)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or_else(|| panic!("a per-provider search: {expression}"));
                searched.insert(metric.to_string());
            } else {
                let names: Vec<&str> = line.iter().filter_map(|v| v.as_str()).collect();
                plain.insert(names.join(" "));
            }
        }
    }
    let per_provider: BTreeSet<String> = [
        metrics::LEADS_PUSHED,
        metrics::LEADS_FAILED,
        metrics::LEADS_DEAD_LETTERED,
        metrics::PROVIDER_CALL_LATENCY,
        metrics::PROVIDER_THROTTLED,
        metrics::REFRESHES,
        metrics::REFRESH_FAILURES,
        metrics::CONNECTIONS_NEEDING_REAUTH,
        metrics::REFRESHED_TOKENS_LOST,
    ]
    .map(String::from)
    .into();
    assert_eq!(searched, per_provider);
    for expected in [
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName <LeadDeadLetterQueue.QueueName>",
        "AWS/SQS ApproximateAgeOfOldestMessage QueueName <LeadQueue.QueueName>",
        "AWS/SQS ApproximateNumberOfMessagesVisible QueueName <LeadQueue.QueueName>",
        "AWS/Lambda Errors FunctionName <LeadPushFunction>",
        "AWS/Lambda Errors FunctionName <TokenRefreshFunction>",
    ] {
        assert!(plain.contains(expected), "{expected} in {plain:?}");
    }
    assert!(plain.contains(&format!(
        "{} {}",
        metrics::NAMESPACE,
        metrics::EVENT_PUBLISH_FAILURES
    )));
}

#[test]
fn no_secret_is_written_in_the_template() {
    let template = template();
    // The app secrets are created empty (template_secrets.rs); nothing else holds a value
    // that looks like a credential, and no parameter has a secret-looking default.
    let mut scalars = Vec::new();
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Sequence(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Mapping(map) => map.iter().for_each(|(k, v)| {
                walk(k, out);
                walk(v, out);
            }),
            Value::Tagged(t) => walk(&t.value, out),
            _ => {}
        }
    }
    walk(&template, &mut scalars);
    for s in &scalars {
        let lower = s.to_ascii_lowercase();
        assert!(
            !(s.starts_with("AKIA") || s.starts_with("ASIA")) || s.len() != 20,
            "an AWS access key id: {s}"
        );
        for marker in ["-----begin", "bearer ", "xoxb-", "sk_live_", "pat-na1-"] {
            assert!(
                !lower.contains(marker),
                "secret-looking {marker:?} in {s:?}"
            );
        }
        if let Some(json) = s
            .strip_prefix('{')
            .and(serde_json::from_str::<serde_json::Value>(s).ok())
        {
            for field in ["client_secret", "access_token", "refresh_token", "api_key"] {
                if let Some(v) = json.get(field) {
                    assert_eq!(v, "", "{field} is only ever an empty placeholder: {s}");
                }
            }
        }
    }
    for (name, parameter) in template["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let default = parameter["Default"].as_str().unwrap_or("");
        assert!(
            !default.contains('@'),
            "{name}: no address or credential as a default"
        );
        let lower = name.to_ascii_lowercase();
        if lower.contains("secret") || lower.contains("token") || lower.contains("password") {
            panic!("{name}: a secret is never a parameter (Secrets Manager holds them)");
        }
    }
}
