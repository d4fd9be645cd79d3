//! CloudWatch metrics without a CloudWatch call: each record is one line of JSON in the
//! Embedded Metric Format (EMF), written to stdout, from which CloudWatch Logs extracts the
//! metrics when the line reaches the function's log group.
//!
//! CloudWatch extracts metrics only from a log event that *is* an EMF object (a root `_aws`
//! member), so a record is never a field of a tracing event: it is its own line, written with
//! one locked write to the same stdout the tracing subscriber writes to (each of its events is
//! one locked write as well), so the two never interleave inside a line. Lambda passes lines of
//! a custom runtime through unchanged in either log format (text or JSON). Every name below is
//! listed in `docs/events.md`.

use std::io::Write;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::registry::Provider;

/// The namespace every metric of the relay is published under.
pub const NAMESPACE: &str = "LeadRelay/CrmRelay";

/// Leads that reached a CRM (new records or changed ones), per provider.
pub const LEADS_PUSHED: &str = "LeadsPushed";
/// Lead deliveries that failed for now and will be retried, per failing provider.
pub const LEADS_FAILED: &str = "LeadsFailed";
/// Leads sent to the DLQ, per failing provider (`none` when no provider was tried).
pub const LEADS_DEAD_LETTERED: &str = "LeadsDeadLettered";
/// Wall time of one provider call, retries and waits included, per provider.
pub const PROVIDER_CALL_LATENCY: &str = "ProviderCallLatency";
/// Throttled answers a provider gave (each attempt counts), per provider.
pub const PROVIDER_THROTTLED: &str = "ProviderThrottled";
/// Access tokens refreshed and stored, per provider.
pub const REFRESHES: &str = "TokenRefreshes";
/// Refresh attempts that did not end with new tokens stored, per provider.
pub const REFRESH_FAILURES: &str = "TokenRefreshFailures";
/// Connections that entered `needs_reauth` (suspensions included), per provider.
pub const CONNECTIONS_NEEDING_REAUTH: &str = "ConnectionsNeedingReauth";
/// Lifecycle events EventBridge did not take (or not in time).
pub const EVENT_PUBLISH_FAILURES: &str = "EventPublishFailures";
/// The provider issued new tokens that could not be stored (`refreshed_tokens_lost`).
pub const REFRESHED_TOKENS_LOST: &str = "RefreshedTokensLost";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: metrics sharing one set of dimensions, plus plain properties (searchable in
/// Logs Insights, not metrics). Build it, then [`Record::emit`] it.
#[derive(Debug, Clone)]
pub struct Record {
    dimensions: Vec<(&'static str, String)>,
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Record {
    /// A record with no dimension (one time series per metric name).
    pub fn new() -> Record {
        Record {
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    /// A record with the `Provider` dimension.
    pub fn for_provider(provider: Provider) -> Record {
        Record::new().dimension("Provider", provider.slug())
    }

    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Record {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn count(self, name: &'static str, value: u64) -> Record {
        self.metric(name, Unit::Count, value as f64)
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Record {
        self.metrics.push((name, unit, value));
        self
    }

    /// A plain property (a tenant id, an operation name): never a secret.
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Record {
        self.properties.insert(name.to_string(), value.into());
        self
    }

    /// The EMF object, stamped with `timestamp_ms` (epoch milliseconds).
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut root = self.properties.clone();
        for (name, value) in &self.dimensions {
            root.insert((*name).to_string(), json!(value));
        }
        for (name, _, value) in &self.metrics {
            root.insert((*name).to_string(), json!(value));
        }
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| *n).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }

    /// Writes the record as one line. Never fails the caller: a metric is not worth an error.
    pub fn emit(self) {
        if self.metrics.is_empty() {
            return;
        }
        let line = self
            .to_json(chrono::Utc::now().timestamp_millis())
            .to_string();
        match SINK.get() {
            Some(sink) => sink(&line),
            None => {
                let mut line = line.into_bytes();
                line.push(b'\n');
                // One write under stdout's lock: a whole line, never split by a log line.
                let _ = std::io::stdout().lock().write_all(&line);
            }
        }
    }
}

impl Default for Record {
    fn default() -> Self {
        Record::new()
    }
}

type Sink = Box<dyn Fn(&str) + Send + Sync>;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every record's line (without its newline) to `sink` instead of stdout, for the rest
/// of the process (test harnesses, which capture logs the same way). Only the first call counts.
pub fn set_sink(sink: impl Fn(&str) + Send + Sync + 'static) {
    let _ = SINK.set(Box::new(sink));
}

/// A count of one under the `Provider` dimension, with the tenant as a property.
pub fn count_for(provider: Option<Provider>, name: &'static str, tenant: Option<&str>) {
    let record = match provider {
        Some(provider) => Record::for_provider(provider),
        None => Record::new().dimension("Provider", "none"),
    };
    let record = match tenant {
        Some(tenant) => record.property("tenant_id", tenant),
        None => record,
    };
    record.count(name, 1).emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The structural rules of the EMF specification a record must meet for CloudWatch to
    /// extract it; a failing rule is returned as text.
    fn emf_violations(line: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![format!("not JSON: {e}")],
        };
        let Some(root) = value.as_object() else {
            return vec!["not an object".into()];
        };
        let aws = &root["_aws"];
        if !aws["Timestamp"].is_i64() {
            problems.push("_aws.Timestamp is not an integer".into());
        }
        let Some(directives) = aws["CloudWatchMetrics"].as_array() else {
            return vec!["_aws.CloudWatchMetrics is not an array".into()];
        };
        for directive in directives {
            if directive["Namespace"].as_str().is_none_or(str::is_empty) {
                problems.push("empty Namespace".into());
            }
            for set in directive["Dimensions"].as_array().into_iter().flatten() {
                let names = set.as_array().cloned().unwrap_or_default();
                if names.len() > 30 {
                    problems.push("more than 30 dimensions".into());
                }
                for name in names {
                    match name.as_str().and_then(|n| root.get(n)) {
                        Some(Value::String(_)) => {}
                        _ => problems.push(format!("dimension {name} has no string value")),
                    }
                }
            }
            let metrics = directive["Metrics"].as_array().cloned().unwrap_or_default();
            if metrics.is_empty() || metrics.len() > 100 {
                problems.push("Metrics must hold 1 to 100 definitions".into());
            }
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap_or_default();
                if !root.get(name).is_some_and(Value::is_number) {
                    problems.push(format!("metric {name:?} has no numeric value"));
                }
                let unit = metric["Unit"].as_str().unwrap_or("None");
                if !["Count", "Milliseconds", "None"].contains(&unit) {
                    problems.push(format!("unit {unit} is not one the relay uses"));
                }
            }
        }
        problems
    }

    #[test]
    fn a_record_is_one_valid_emf_line() {
        let record = Record::for_provider(Provider::Hubspot)
            .count(LEADS_PUSHED, 1)
            .metric(PROVIDER_CALL_LATENCY, Unit::Milliseconds, 12.5)
            .property("tenant_id", "t-1");
        let line = record.to_json(1_700_000_000_000).to_string();
        assert!(!line.contains('\n'));
        assert_eq!(emf_violations(&line), Vec::<String>::new());
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["Provider"], "hubspot");
        assert_eq!(value["LeadsPushed"], 1.0);
        assert_eq!(value["ProviderCallLatency"], 12.5);
        assert_eq!(value["tenant_id"], "t-1");
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Provider"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "LeadsPushed", "Unit": "Count"},
                {"Name": "ProviderCallLatency", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(value["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn a_record_without_dimensions_declares_an_empty_set() {
        let line = Record::new()
            .count(EVENT_PUBLISH_FAILURES, 1)
            .to_json(1)
            .to_string();
        assert_eq!(emf_violations(&line), Vec::<String>::new());
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }

    #[test]
    fn the_checker_catches_a_metric_without_its_value() {
        let mut value = Record::for_provider(Provider::Zoho)
            .count(REFRESHES, 1)
            .to_json(1);
        value.as_object_mut().unwrap().remove(REFRESHES);
        assert_eq!(
            emf_violations(&value.to_string()),
            vec![format!("metric {REFRESHES:?} has no numeric value")]
        );
        value.as_object_mut().unwrap().remove("Provider");
        assert_eq!(emf_violations(&value.to_string()).len(), 2);
    }
}
