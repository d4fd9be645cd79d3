//! HubSpot's shapes ↔ ours.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::provider::{Pipeline, PipelineStage};

#[derive(Deserialize)]
pub(super) struct PipelinesResponse {
    results: Vec<HubSpotPipeline>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HubSpotPipeline {
    id: String,
    label: String,
    #[serde(default)]
    display_order: i64,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    stages: Vec<HubSpotStage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HubSpotStage {
    id: String,
    label: String,
    #[serde(default)]
    display_order: i64,
    #[serde(default)]
    archived: bool,
    /// String-valued in HubSpot's spec: `{"isClosed": "false", "probability": "0.2"}`.
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
}

pub(super) fn pipelines(response: PipelinesResponse) -> Vec<Pipeline> {
    let mut pipelines: Vec<HubSpotPipeline> = response
        .results
        .into_iter()
        .filter(|p| !p.archived)
        .collect();
    pipelines.sort_by_key(|p| p.display_order);
    pipelines
        .into_iter()
        .map(|p| {
            let mut stages: Vec<PipelineStage> = p
                .stages
                .into_iter()
                .filter(|s| !s.archived)
                .map(|s| PipelineStage {
                    is_closed: s
                        .metadata
                        .get("isClosed")
                        .map(|v| v.as_str() == Some("true") || v.as_bool() == Some(true))
                        .unwrap_or(false),
                    id: s.id,
                    label: s.label,
                    display_order: s.display_order,
                })
                .collect();
            stages.sort_by_key(|s| s.display_order);
            Pipeline {
                id: p.id,
                label: p.label,
                stages,
            }
        })
        .collect()
}

#[derive(Deserialize)]
pub(super) struct PropertyResponse {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    options: Vec<PropertyOption>,
}

#[derive(Deserialize)]
struct PropertyOption {
    value: String,
    #[serde(default)]
    hidden: bool,
}

pub(super) fn property_info(response: PropertyResponse) -> crate::provider::PropertyInfo {
    crate::provider::PropertyInfo {
        kind: response.kind,
        options: response
            .options
            .into_iter()
            .filter(|o| !o.hidden)
            .map(|o| o.value)
            .collect(),
    }
}

/// `hub_id` (and `user_id`, when present) from the token response.
pub(super) fn account_from_token_extras(
    extras: &Map<String, Value>,
) -> Option<BTreeMap<String, String>> {
    let hub_id = extras.get("hub_id").and_then(number_or_string)?;
    let mut account = BTreeMap::from([("hub_id".to_string(), hub_id)]);
    if let Some(user) = extras.get("user_id").and_then(number_or_string) {
        account.insert("user_id".into(), user);
    }
    Some(account)
}

fn number_or_string(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_are_ordered_and_archived_ones_dropped() {
        let body: PipelinesResponse = serde_json::from_str(
            r#"{"results":[
                {"id":"2","label":"Second","displayOrder":1,"archived":false,"stages":[]},
                {"id":"old","label":"Old","displayOrder":0,"archived":true,"stages":[]},
                {"id":"default","label":"Sales","displayOrder":0,"archived":false,"stages":[
                    {"id":"closedwon","label":"Won","displayOrder":5,"archived":false,"metadata":{"isClosed":"true","probability":"1.0"}},
                    {"id":"appointmentscheduled","label":"Appointment","displayOrder":0,"archived":false,"metadata":{"isClosed":"false"}}
                ]}
            ]}"#,
        )
        .unwrap();
        let out = pipelines(body);
        assert_eq!(
            out.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["default", "2"]
        );
        assert_eq!(out[0].stages[0].id, "appointmentscheduled");
        assert!(!out[0].stages[0].is_closed);
        assert!(out[0].stages[1].is_closed);
    }

    #[test]
    fn the_account_is_the_hub_id() {
        let extras: Map<String, Value> =
            serde_json::from_str(r#"{"hub_id":123,"user_id":7,"token_use":"access_token"}"#)
                .unwrap();
        let account = account_from_token_extras(&extras).unwrap();
        assert_eq!(account["hub_id"], "123");
        assert_eq!(account["user_id"], "7");
        assert!(account_from_token_extras(&Map::new()).is_none());
    }
}
