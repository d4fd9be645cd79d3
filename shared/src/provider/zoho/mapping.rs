//! Zoho's shapes ↔ ours: pipelines, field metadata, the Lead record, notes and conversion.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::lead::{truncate_chars, Lead};
use crate::provider::{person_fields, PersonFields, Pipeline, PipelineStage, PropertyInfo};
use crate::store::ConnectionSettings;

/// Zoho shows `-None-` as a picklist's empty choice; it is not a value to write.
const NONE_CHOICE: &str = "-None-";
/// Note_Content is kept well under Zoho's limit for a note (not stated in the v8 spec; 32,000
/// characters is what the UI accepts).
const NOTE_LIMIT: usize = 32_000;
/// A converted lead's deal needs a closing date; LeadRelay does not know one, so the deal
/// gets this many days from today, which the sales team can change.
pub(super) const CLOSING_DAYS: i64 = 30;

#[derive(Deserialize)]
pub(super) struct LayoutsResponse {
    #[serde(default)]
    pub layouts: Vec<Layout>,
}

#[derive(Deserialize)]
pub(super) struct Layout {
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
}

impl Layout {
    pub fn is_active(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "active")
    }
}

#[derive(Deserialize)]
pub(super) struct PipelineResponse {
    #[serde(default)]
    pipeline: Vec<ZohoPipeline>,
}

#[derive(Deserialize)]
struct ZohoPipeline {
    display_value: String,
    actual_value: String,
    #[serde(default)]
    default: bool,
    #[serde(default)]
    maps: Vec<ZohoStage>,
}

#[derive(Deserialize)]
struct ZohoStage {
    display_value: String,
    actual_value: String,
    #[serde(default)]
    sequence_number: i64,
    #[serde(default)]
    forecast_type: Option<String>,
}

/// Pipelines and stages as the setup page shows them. Ids are Zoho's `actual_value`s, which
/// is what a deal's `Pipeline` and `Stage` fields take (display values can differ:
/// "Identify Decision Makers" is written `Id. Decision Makers`). The default pipeline first.
pub(super) fn pipelines(responses: Vec<PipelineResponse>) -> Vec<Pipeline> {
    let mut found: Vec<(bool, Pipeline)> = Vec::new();
    for response in responses {
        for p in response.pipeline {
            if found.iter().any(|(_, known)| known.id == p.actual_value) {
                continue;
            }
            let mut stages: Vec<PipelineStage> = p
                .maps
                .into_iter()
                .map(|s| PipelineStage {
                    is_closed: s.forecast_type.as_deref().is_some_and(|t| t != "Open"),
                    id: s.actual_value,
                    label: s.display_value,
                    display_order: s.sequence_number,
                })
                .collect();
            stages.sort_by_key(|s| s.display_order);
            found.push((
                p.default,
                Pipeline {
                    id: p.actual_value,
                    label: p.display_value,
                    stages,
                },
            ));
        }
    }
    found.sort_by_key(|(default, _)| !default);
    found.into_iter().map(|(_, p)| p).collect()
}

#[derive(Deserialize)]
pub(super) struct FieldsResponse {
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Deserialize)]
pub(super) struct Field {
    pub api_name: String,
    #[serde(default)]
    data_type: String,
    #[serde(default)]
    pick_list_values: Vec<PicklistValue>,
}

#[derive(Deserialize)]
struct PicklistValue {
    actual_value: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A Leads field in the kinds settings speak of: `string`, `number` or `enumeration` (with
/// its usable values), or Zoho's own type name for anything else.
pub(super) fn property_info(field: Field) -> PropertyInfo {
    let kind = match field.data_type.as_str() {
        "text" | "textarea" | "email" | "phone" | "website" => "string",
        "integer" | "bigint" | "double" | "decimal" | "currency" | "percent" => "number",
        "picklist" => "enumeration",
        other => other,
    }
    .to_string();
    let options = field
        .pick_list_values
        .into_iter()
        .filter(|v| v.actual_value != NONE_CHOICE && v.kind.as_deref() != Some("unused"))
        .map(|v| v.actual_value)
        .collect();
    PropertyInfo { kind, options }
}

/// The Lead record: the plan's mapping (`First_Name`, `Last_Name`, `Phone`, `Email`, and the
/// source and score into the properties settings chose, by default `Lead_Source` and
/// `Rating`). Absent values are left out so they never blank what Zoho holds. `Last_Name` is
/// required on a new lead and never empty; `with_placeholder_name` says whether a nameless
/// lead's placeholder may be written (not over a record found by email or phone).
pub(super) fn lead_record(
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    with_placeholder_name: bool,
) -> Map<String, Value> {
    let mut record = person(lead, with_placeholder_name);
    if let Some(settings) = settings {
        for (name, value) in settings.source_and_score(lead.source.as_deref(), lead.score) {
            record.insert(name, json!(value));
        }
    }
    record
}

/// Name, email and phone: what a Lead and the Contact it became both hold.
pub(super) fn person(lead: &Lead, with_placeholder_name: bool) -> Map<String, Value> {
    person_fields(lead, &PERSON, with_placeholder_name)
}

const PERSON: PersonFields = PersonFields {
    last_name: "Last_Name",
    first_name: "First_Name",
    email: "Email",
    phone: "Phone",
};

/// The note: the summary and what LeadRelay knows of the lead, as plain text (Zoho notes
/// are not HTML).
pub(super) fn note_content(lead: &Lead) -> Option<String> {
    let note = lead.plain_note()?;
    let cut = truncate_chars(&note, NOTE_LIMIT);
    if names_lead(&cut, lead) {
        return Some(cut);
    }
    // Cut short, the note would lose the facts line that names the lead (the marker a retry
    // finds the note by): the summary is cut instead.
    let facts = lead.summary_facts();
    let room = NOTE_LIMIT.saturating_sub(facts.chars().count() + 2);
    Some(format!("{}\n\n{facts}", truncate_chars(&note, room)))
}

/// Whether a note's content names this lead in its facts line (`Lead: <id> · ...`).
pub(super) fn names_lead(content: &str, lead: &Lead) -> bool {
    let marker = format!("Lead: {}", lead.id);
    content
        .lines()
        .any(|line| line.split(" · ").any(|part| part == marker))
}

/// What a lead without email or phone carries in `Description`, so it can be found again.
pub(super) fn lead_marker(lead: &Lead) -> String {
    format!("LeadRelay lead {}", lead.id)
}

/// `POST /Leads/{id}/actions/convert`: into a Contact (and an Account where the lead names a
/// company) and a Deal in the tenant's pipeline at `stage`. Owners are not notified: the
/// lead's owner already is by Zoho's own assignment rules.
pub(super) fn convert_body(
    lead: &Lead,
    pipeline: &str,
    stage: &str,
    today: chrono::NaiveDate,
) -> Value {
    let closing = today + chrono::Duration::days(CLOSING_DAYS);
    json!({
        "data": [{
            "overwrite": false,
            "notify_lead_owner": false,
            "notify_new_entity_owner": false,
            "Deals": {
                "Deal_Name": truncate_chars(&lead.deal_name(), 120),
                "Closing_Date": closing.format("%Y-%m-%d").to_string(),
                "Stage": stage,
                "Pipeline": pipeline,
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_keep_actual_values_as_ids_and_put_the_default_first() {
        let layout_a: PipelineResponse = serde_json::from_value(json!({"pipeline": [
            {"display_value": "Enterprise", "actual_value": "Enterprise", "default": false, "id": "2",
             "maps": [{"display_value": "Won", "actual_value": "Won", "sequence_number": 2, "forecast_type": "Closed Won", "id": "b"},
                      {"display_value": "Intro", "actual_value": "Intro", "sequence_number": 1, "forecast_type": "Open", "id": "a"}]},
        ]}))
        .unwrap();
        let layout_b: PipelineResponse = serde_json::from_value(json!({"pipeline": [
            {"display_value": "Standard", "actual_value": "Standard (Standard)", "default": true, "id": "1",
             "maps": [{"display_value": "Identify Decision Makers", "actual_value": "Id. Decision Makers", "sequence_number": 4, "forecast_type": "Open", "id": "c"}]},
            {"display_value": "Enterprise", "actual_value": "Enterprise", "default": false, "id": "2", "maps": []},
        ]}))
        .unwrap();
        let pipelines = pipelines(vec![layout_a, layout_b]);
        assert_eq!(
            pipelines.len(),
            2,
            "a pipeline on two layouts is listed once"
        );
        assert_eq!(pipelines[0].id, "Standard (Standard)");
        assert_eq!(pipelines[0].stages[0].id, "Id. Decision Makers");
        assert_eq!(pipelines[0].stages[0].label, "Identify Decision Makers");
        let enterprise = &pipelines[1];
        assert_eq!(enterprise.stages[0].id, "Intro");
        assert!(!enterprise.stages[0].is_closed && enterprise.stages[1].is_closed);
    }

    #[test]
    fn picklists_offer_their_used_values_without_none() {
        let field: Field = serde_json::from_value(json!({
            "api_name": "Lead_Source", "data_type": "picklist",
            "pick_list_values": [
                {"display_value": "-None-", "actual_value": "-None-", "type": "used"},
                {"display_value": "Chat", "actual_value": "Chat", "type": "used"},
                {"display_value": "Old", "actual_value": "Old", "type": "unused"},
                {"display_value": "Online Store", "actual_value": "OnlineStore"}
            ]
        }))
        .unwrap();
        let info = property_info(field);
        assert_eq!(info.kind, "enumeration");
        assert_eq!(info.options, vec!["Chat", "OnlineStore"]);
    }

    #[test]
    fn a_conversion_deal_closes_thirty_days_out_in_the_mapped_stage() {
        let message = crate::lead::parse_message(
            r#"{"version": 1, "tenant_id": "t", "plan": "pro", "occurred_at": "2026-11-28T04:00:00Z",
                "lead": {"id": "lead-1", "name": "Fatima Al-Thani", "stage": "qualified"}}"#,
        )
        .unwrap();
        let lead = message.lead;
        let body = convert_body(
            &lead,
            "Standard (Standard)",
            "Qualification",
            chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        );
        let deals = &body["data"][0]["Deals"];
        assert_eq!(deals["Closing_Date"], "2026-12-28");
        assert_eq!(deals["Stage"], "Qualification");
        assert_eq!(deals["Pipeline"], "Standard (Standard)");
        assert_eq!(deals["Deal_Name"], "Fatima Al-Thani (LeadRelay)");
    }
}
