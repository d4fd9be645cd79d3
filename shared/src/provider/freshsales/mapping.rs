//! Freshsales' shapes ↔ ours: selectors (lead sources, pipelines), the contact, errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ProviderError;
use crate::http::HttpResponse;
use crate::lead::Lead;
use crate::provider::{person_fields, PersonFields, Pipeline, PipelineStage};
use crate::registry::Provider;

/// The contact field that holds the lead id of a contact with neither email nor phone (the
/// contact's `external_id`; looked up with `GET /lookup?f=external_id`).
pub(super) const EXTERNAL_ID: &str = "external_id";

/// Account key under which the lead sources (name → id) are cached.
pub(super) const LEAD_SOURCE_IDS: &str = "lead_source_ids";

/// Freshsales ids are integers above 2^32; some answers quote them.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub(super) enum Id {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::Text(s) => f.write_str(s),
        }
    }
}

/// An id as the API takes it back: a number where it is one.
pub(super) fn id_value(id: &str) -> Value {
    id.parse::<u64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(id))
}

#[derive(Deserialize)]
pub(super) struct LeadSources {
    #[serde(default)]
    lead_sources: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    id: Id,
    name: String,
}

/// `{lower-cased name: id}` as compact JSON, for the account map.
pub(super) fn lead_source_cache(sources: LeadSources) -> String {
    let map: BTreeMap<String, String> = sources
        .lead_sources
        .into_iter()
        .map(|s| (s.name.trim().to_lowercase(), s.id.to_string()))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The id of the account's lead source named like `source` (case-insensitively), if any.
pub(super) fn lead_source_id(account: &BTreeMap<String, String>, source: &str) -> Option<String> {
    let cache: BTreeMap<String, String> =
        serde_json::from_str(account.get(LEAD_SOURCE_IDS)?).ok()?;
    cache.get(&source.trim().to_lowercase()).cloned()
}

#[derive(Deserialize)]
pub(super) struct Pipelines {
    #[serde(default)]
    deal_pipelines: Vec<FsPipeline>,
}

#[derive(Deserialize)]
struct FsPipeline {
    id: Id,
    name: String,
    #[serde(default)]
    position: i64,
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    deal_stages: Vec<FsStage>,
}

#[derive(Deserialize)]
struct FsStage {
    id: Id,
    name: String,
    #[serde(default)]
    position: i64,
    #[serde(default)]
    forecast_type: Option<String>,
}

/// Pipelines with their stages; the default pipeline first. A stage whose forecast type is
/// not `Open` (`Won`, `Lost`) is closed.
pub(super) fn pipelines(response: Pipelines) -> Vec<Pipeline> {
    let mut found = response.deal_pipelines;
    found.sort_by_key(|p| (!p.is_default, p.position));
    found
        .into_iter()
        .map(|p| {
            let mut stages: Vec<PipelineStage> = p
                .deal_stages
                .into_iter()
                .map(|s| PipelineStage {
                    is_closed: s
                        .forecast_type
                        .as_deref()
                        .is_some_and(|t| !t.eq_ignore_ascii_case("open")),
                    id: s.id.to_string(),
                    label: s.name,
                    display_order: s.position,
                })
                .collect();
            stages.sort_by_key(|s| s.display_order);
            Pipeline {
                id: p.id.to_string(),
                label: p.name,
                stages,
            }
        })
        .collect()
}

const PERSON: PersonFields = PersonFields {
    last_name: "last_name",
    first_name: "first_name",
    email: "email",
    phone: "mobile_number",
};

/// The contact: the plan's mapping (`first_name`, `last_name`, `mobile_number`, `email`, the
/// lead source's id, `lead_score`). Absent values are left out so they never blank what the
/// account holds; the `Unknown` placeholder name only goes on a contact nothing else names.
pub(super) fn contact(
    lead: &Lead,
    account: &BTreeMap<String, String>,
    with_score: bool,
) -> Map<String, Value> {
    let mut contact = person_fields(lead, &PERSON, !lead.has_contact_details());
    if let Some(id) = lead
        .source
        .as_deref()
        .and_then(|s| lead_source_id(account, s))
    {
        contact.insert("lead_source_id".into(), id_value(&id));
    }
    if let (Some(score), true) = (lead.score, with_score) {
        contact.insert("lead_score".into(), json!(score));
    }
    contact
}

/// `{"<kind>": {"id": ...}}`: the id of what a create or upsert answered with.
pub(super) fn created_id(response: &HttpResponse, kind: &str) -> Result<String, ProviderError> {
    let body: Value = response.json()?;
    match body.get(kind).and_then(|o| o.get("id")) {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ProviderError::Garbage {
            provider: Provider::Freshsales,
            status: response.status,
            detail: format!("the answer holds no {kind} id"),
        }),
    }
}

/// A non-2xx answer as our error. Freshsales' body is `{"errors":{"code","message":[..]}}`
/// (or `{"login":"failed"}` for a refused key); its prose may quote the lead's data, so it is
/// kept out of `Display`.
pub(super) fn failure(response: HttpResponse) -> ProviderError {
    let status = response.status;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let message = body["errors"]["message"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(Value::as_str)
        .or_else(|| body["message"].as_str())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
    let provider = Provider::Freshsales;
    match status {
        401 => ProviderError::Unauthorized {
            provider,
            code: "invalid_api_key".into(),
        },
        _ => ProviderError::Rejected {
            provider,
            status,
            code: match status {
                403 => "forbidden".into(),
                404 => "not_found".into(),
                _ => format!("http_{status}"),
            },
            message,
        },
    }
}

/// Whether a refusal names `field` (e.g. `lead_score` kept read-only in this account).
pub(super) fn refuses_field(error: &ProviderError, field: &str) -> bool {
    matches!(error, ProviderError::Rejected { status: 400, message, .. } if message.contains(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_sources_are_matched_by_name_whatever_the_case() {
        let sources: LeadSources = serde_json::from_value(json!({"lead_sources": [
            {"id": 31000123456u64, "name": "WhatsApp", "position": 1},
            {"id": "31000123457", "name": "Web Form"}
        ]}))
        .unwrap();
        let account = BTreeMap::from([(LEAD_SOURCE_IDS.to_string(), lead_source_cache(sources))]);
        assert_eq!(
            lead_source_id(&account, "whatsapp").as_deref(),
            Some("31000123456")
        );
        assert_eq!(
            lead_source_id(&account, " web form ").as_deref(),
            Some("31000123457")
        );
        assert_eq!(lead_source_id(&account, "instagram"), None);
        assert_eq!(id_value("31000123456"), json!(31000123456u64));
    }

    #[test]
    fn pipelines_put_the_default_first_and_close_won_and_lost_stages() {
        let response: Pipelines = serde_json::from_value(json!({"deal_pipelines": [
            {"id": 2, "name": "Enterprise", "position": 1, "is_default": false, "deal_stages": []},
            {"id": 1, "name": "Default Pipeline", "position": 2, "is_default": true, "deal_stages": [
                {"id": 12, "name": "Won", "position": 2, "forecast_type": "Won"},
                {"id": 11, "name": "New", "position": 1, "forecast_type": "Open"}
            ]}
        ]}))
        .unwrap();
        let pipelines = pipelines(response);
        assert_eq!(pipelines[0].id, "1");
        assert_eq!(pipelines[0].stages[0].id, "11");
        assert!(!pipelines[0].stages[0].is_closed && pipelines[0].stages[1].is_closed);
    }
}
