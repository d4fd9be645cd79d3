//! The account's endpoints: selectors, contacts (upsert, create, update, read, lookup), deals
//! and notes, with Freshsales' validation and answer shapes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{error, Account, Shared};
use crate::sim::recorder::RecordedRequest;
use crate::sim::server::Reject;

/// Contact fields the API takes (anything else is refused).
const CONTACT_FIELDS: [&str; 12] = [
    "first_name",
    "last_name",
    "email",
    "emails",
    "mobile_number",
    "work_number",
    "lead_source_id",
    "lead_score",
    "job_title",
    "city",
    "country",
    "external_id",
];

fn ok(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(body),
    )
        .into_response()
}

pub(super) fn route(
    account: &mut Account,
    method: &str,
    rest: &str,
    request: &RecordedRequest,
) -> Response {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let body = request.json().unwrap_or(Value::Null);
    match (method, segments.as_slice()) {
        ("GET", ["selector", "lead_sources"]) => ok(
            200,
            json!({"lead_sources": account.lead_sources.iter().enumerate().map(|(i, (id, name))| {
                json!({"id": id, "name": name, "position": i + 1})
            }).collect::<Vec<_>>()}),
        ),
        ("GET", ["selector", "deal_pipelines"]) => ok(
            200,
            json!({"deal_pipelines": account.pipelines.iter().enumerate().map(|(i, p)| pipeline_json(p, i)).collect::<Vec<_>>()}),
        ),
        ("GET", ["selector", "deal_pipelines", id, "deal_stages"]) => {
            match account.pipelines.iter().find(|p| p.id == *id) {
                Some(p) => ok(200, json!({"deal_stages": stages_json(p)})),
                None => error(404, "pipeline not found"),
            }
        }
        ("POST", ["contacts", "upsert"]) => upsert(account, &body),
        ("POST", ["contacts"]) => create_contact(account, &body),
        ("PUT", ["contacts", id]) => update(account, Table::Contacts, id, &body),
        ("GET", ["contacts", id]) => read_contact(account, id, request),
        ("GET", ["lookup"]) => lookup(account, request),
        ("POST", ["deals"]) => create_deal(account, &body),
        ("PUT", ["deals", id]) => update(account, Table::Deals, id, &body),
        ("POST", ["notes"]) => create_note(account, &body),
        ("PUT", ["notes", id]) => update(account, Table::Notes, id, &body),
        _ => error(404, "not found"),
    }
}

fn pipeline_json(p: &super::FsPipeline, position: usize) -> Value {
    json!({
        "id": p.id.parse::<u64>().unwrap_or_default(),
        "name": p.name,
        "position": position + 1,
        "is_default": p.is_default,
        "deal_stages": stages_json(p),
    })
}

fn stages_json(p: &super::FsPipeline) -> Vec<Value> {
    p.stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "id": s.id.parse::<u64>().unwrap_or_default(),
                "name": s.name,
                "position": i + 1,
                "forecast_type": s.forecast_type,
                "deal_pipeline_id": p.id.parse::<u64>().unwrap_or_default(),
                "probability": if s.forecast_type == "Won" { 100 } else { 10 },
            })
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Table {
    Contacts,
    Deals,
    Notes,
}

impl Table {
    fn of(self, account: &mut Account) -> &mut std::collections::BTreeMap<u64, Map<String, Value>> {
        match self {
            Table::Contacts => &mut account.contacts,
            Table::Deals => &mut account.deals,
            Table::Notes => &mut account.notes,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Table::Contacts => "contact",
            Table::Deals => "deal",
            Table::Notes => "note",
        }
    }
}

/// Checks a contact's fields; returns them normalised (`emails` folded into `email`).
fn checked_contact(account: &Account, fields: &Value) -> Result<Map<String, Value>, Reject> {
    let Some(fields) = fields.as_object() else {
        return Err(error(400, "contact is missing").into());
    };
    let mut out = Map::new();
    for (name, value) in fields {
        if !CONTACT_FIELDS.contains(&name.as_str()) {
            return Err(error(400, &format!("Invalid field {name}")).into());
        }
        match name.as_str() {
            "emails" => {
                let first = match value {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(items) => items.first().and_then(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .or_else(|| i["value"].as_str().map(str::to_string))
                    }),
                    _ => None,
                };
                if let Some(email) = first {
                    out.insert("email".into(), json!(email));
                }
            }
            "lead_source_id" => {
                let id = value.as_u64();
                if !id.is_some_and(|id| account.lead_sources.iter().any(|(s, _)| *s == id)) {
                    return Err(error(400, "Lead source is invalid").into());
                }
                out.insert(name.clone(), value.clone());
            }
            "lead_score" => {
                if !account.lead_score_writable {
                    return Err(error(400, "lead_score is a read-only field").into());
                }
                if value.as_u64().is_none_or(|s| s > 100) {
                    return Err(error(400, "lead_score must be a number between 0 and 100").into());
                }
                out.insert(name.clone(), value.clone());
            }
            "email" => {
                if !value.as_str().is_some_and(|e| e.contains('@')) {
                    return Err(error(400, "Email is invalid").into());
                }
                out.insert(name.clone(), value.clone());
            }
            _ => {
                out.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

fn contact_json(id: u64, fields: &Map<String, Value>) -> Value {
    let mut contact = fields.clone();
    contact.insert("id".into(), json!(id));
    let display = [fields.get("first_name"), fields.get("last_name")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    contact.insert("display_name".into(), json!(display));
    if let Some(email) = fields.get("email") {
        contact.insert(
            "emails".into(),
            json!([{"id": id + 7, "value": email, "is_primary": true, "label": null, "_destroy": false}]),
        );
    }
    json!({"contact": contact})
}

fn find_by_email(account: &Account, email: &str) -> Option<u64> {
    account
        .contacts
        .iter()
        .find(|(_, c)| {
            c.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .map(|(id, _)| *id)
}

fn upsert(account: &mut Account, body: &Value) -> Response {
    let Some(email) = body["unique_identifier"]["emails"]
        .as_str()
        .map(str::to_string)
    else {
        return error(400, "unique_identifier is missing");
    };
    let fields = match checked_contact(account, &body["contact"]) {
        Ok(fields) => fields,
        Err(response) => return response.into_response(),
    };
    match find_by_email(account, &email) {
        Some(id) => {
            let contact = account.contacts.get_mut(&id).expect("found");
            contact.extend(fields);
            let answer = contact_json(id, contact);
            ok(200, answer)
        }
        None => {
            let id = account.id();
            let mut fields = fields;
            fields.entry("email").or_insert(json!(email));
            let answer = contact_json(id, &fields);
            account.contacts.insert(id, fields);
            ok(201, answer)
        }
    }
}

fn create_contact(account: &mut Account, body: &Value) -> Response {
    let fields = match checked_contact(account, &body["contact"]) {
        Ok(fields) => fields,
        Err(response) => return response.into_response(),
    };
    if !fields.contains_key("last_name") && !fields.contains_key("email") {
        return error(400, "Need to fill this Email");
    }
    if let Some(email) = fields.get("email").and_then(Value::as_str) {
        if find_by_email(account, email).is_some() {
            return error(400, &format!("{email} already exists."));
        }
    }
    let id = account.id();
    let answer = contact_json(id, &fields);
    account.contacts.insert(id, fields);
    ok(200, answer)
}

fn lookup(account: &Account, request: &RecordedRequest) -> Response {
    let query = request.query_params();
    let (Some(value), Some(field)) = (query.get("q"), query.get("f")) else {
        return error(400, "q and f are required");
    };
    let found: Vec<Value> = account
        .contacts
        .iter()
        .filter(|(_, c)| match field.as_str() {
            // `Map`'s index panics on a missing key: a contact may lack the field.
            "email" => c
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(value)),
            other => c.get(other).and_then(Value::as_str) == Some(value.as_str()),
        })
        .map(|(id, c)| contact_json(*id, c)["contact"].clone())
        .collect();
    ok(200, json!({"contacts": {"contacts": found}}))
}

fn create_deal(account: &mut Account, body: &Value) -> Response {
    let Some(deal) = body["deal"].as_object().cloned() else {
        return error(400, "deal is missing");
    };
    if deal
        .get("name")
        .is_none_or(|n| n.as_str().is_none_or(str::is_empty))
    {
        return error(400, "Name can't be empty");
    }
    if !deal.contains_key("amount") {
        return error(400, "Deal value can't be empty");
    }
    let mut deal = deal;
    if let Err(response) = check_stage(account, &mut deal) {
        return response.into_response();
    }
    let contacts: Vec<u64> = deal
        .remove("contacts_added_list")
        .and_then(|l| l.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    if contacts.iter().any(|c| !account.contacts.contains_key(c)) {
        return error(400, "Contact does not exist");
    }
    deal.insert("contact_ids".into(), json!(contacts));
    let id = account.id();
    let mut answer = deal.clone();
    answer.insert("id".into(), json!(id));
    answer.insert(
        "amount".into(),
        json!(format!("{:.1}", deal["amount"].as_f64().unwrap_or(0.0))),
    );
    account.deals.insert(id, deal);
    ok(200, json!({"deal": answer}))
}

/// The deal's pipeline and stage: the default pipeline's first stage when none is given; a
/// stage must belong to the pipeline.
fn check_stage(account: &Account, deal: &mut Map<String, Value>) -> Result<(), Reject> {
    let pipeline = match deal.get("deal_pipeline_id").and_then(Value::as_u64) {
        Some(id) => account
            .pipelines
            .iter()
            .find(|p| p.id == id.to_string())
            .ok_or_else(|| Reject::from(error(400, "Deal pipeline is invalid")))?,
        None => account
            .pipelines
            .iter()
            .find(|p| p.is_default)
            .expect("a default pipeline"),
    };
    let stage = match deal.get("deal_stage_id").and_then(Value::as_u64) {
        Some(id) => pipeline
            .stages
            .iter()
            .find(|s| s.id == id.to_string())
            .ok_or_else(|| Reject::from(error(400, "Deal stage is not part of the pipeline")))?,
        None => &pipeline.stages[0],
    };
    deal.insert(
        "deal_pipeline_id".into(),
        json!(pipeline.id.parse::<u64>().unwrap_or_default()),
    );
    deal.insert(
        "deal_stage_id".into(),
        json!(stage.id.parse::<u64>().unwrap_or_default()),
    );
    Ok(())
}

fn create_note(account: &mut Account, body: &Value) -> Response {
    let Some(note) = body["note"].as_object().cloned() else {
        return error(400, "note is missing");
    };
    if note
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return error(400, "Description can't be empty");
    }
    let target = note.get("targetable_id").and_then(Value::as_u64);
    let exists = match (note.get("targetable_type").and_then(Value::as_str), target) {
        (Some("Contact"), Some(id)) => account.contacts.contains_key(&id),
        (Some("Deal"), Some(id)) => account.deals.contains_key(&id),
        _ => false,
    };
    if !exists {
        return error(400, "Targetable is invalid");
    }
    let id = account.id();
    let mut answer = note.clone();
    answer.insert("id".into(), json!(id));
    account.notes.insert(id, note);
    ok(201, json!({"note": answer}))
}

fn update(account: &mut Account, table: Table, id: &str, body: &Value) -> Response {
    let Some(id) = id
        .parse::<u64>()
        .ok()
        .filter(|id| table.of(account).contains_key(id))
    else {
        return error(404, "not found");
    };
    let changes = match table {
        Table::Contacts => match checked_contact(account, &body["contact"]) {
            Ok(fields) => fields,
            Err(response) => return response.into_response(),
        },
        Table::Deals | Table::Notes => match body[table.key()].as_object() {
            Some(fields) => fields.clone(),
            None => return error(400, &format!("{} is missing", table.key())),
        },
    };
    let mut changes = changes;
    if let Table::Deals = table {
        let current = account.deals[&id].clone();
        let mut merged = current;
        merged.extend(changes.clone());
        if merged.get("deal_stage_id") != account.deals[&id].get("deal_stage_id")
            && !changes.contains_key("deal_pipeline_id")
        {
            changes.insert(
                "deal_pipeline_id".into(),
                merged["deal_pipeline_id"].clone(),
            );
        }
        if let Err(response) = check_stage(account, &mut changes) {
            return response.into_response();
        }
    }
    let record = table.of(account).get_mut(&id).expect("checked");
    record.extend(changes);
    let answer = match table {
        Table::Contacts => contact_json(id, record),
        _ => {
            let mut answer = record.clone();
            answer.insert("id".into(), json!(id));
            json!({ table.key(): answer })
        }
    };
    ok(200, answer)
}

/// `GET /contacts/{id}[?include=deals,notes]`: the contact, with the records named in
/// `include` side-loaded as top-level arrays beside it (`{"contact": {..}, "deals": [..],
/// "notes": [..]}`), as Freshworks' "View a Contact" answers. Other includes are ignored.
fn read_contact(account: &Account, id: &str, request: &RecordedRequest) -> Response {
    let Some((id, record)) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| account.contacts.get(&id).map(|r| (id, r)))
    else {
        return error(404, "not found");
    };
    let mut answer = contact_json(id, record);
    let include = request
        .query_params()
        .get("include")
        .cloned()
        .unwrap_or_default();
    for name in include.split(',').map(str::trim) {
        match name {
            "deals" => {
                let deals: Vec<Value> = account
                    .deals
                    .iter()
                    .filter(|(_, d)| {
                        d.get("contact_ids")
                            .and_then(Value::as_array)
                            .is_some_and(|c| c.iter().any(|c| c.as_u64() == Some(id)))
                    })
                    .map(|(deal_id, d)| {
                        let mut deal = d.clone();
                        deal.insert("id".into(), json!(deal_id));
                        deal.insert(
                            "amount".into(),
                            json!(format!("{:.1}", d["amount"].as_f64().unwrap_or(0.0))),
                        );
                        Value::Object(deal)
                    })
                    .collect();
                answer["deals"] = json!(deals);
            }
            "notes" => {
                let notes: Vec<Value> = account
                    .notes
                    .iter()
                    .filter(|(_, n)| {
                        n.get("targetable_type").and_then(Value::as_str) == Some("Contact")
                            && n.get("targetable_id").and_then(Value::as_u64) == Some(id)
                    })
                    .map(|(note_id, n)| {
                        let mut note = n.clone();
                        note.insert("id".into(), json!(note_id));
                        Value::Object(note)
                    })
                    .collect();
                answer["notes"] = json!(notes);
            }
            _ => {}
        }
    }
    ok(200, answer)
}

/// `GET /_sim/state?host=`: one account's records.
pub(super) fn state(shared: &Shared, host: &str) -> Value {
    let accounts = shared.accounts();
    let Some(account) = accounts.get(&host.to_ascii_lowercase()) else {
        return json!({"simulator": "Freshsales simulator state (not a Freshsales API)", "host": host, "account": null});
    };
    let list = |table: &std::collections::BTreeMap<u64, Map<String, Value>>| {
        table
            .iter()
            .map(|(id, fields)| {
                let mut record = fields.clone();
                record.insert("id".into(), json!(id));
                Value::Object(record)
            })
            .collect::<Vec<_>>()
    };
    json!({
        "simulator": "Freshsales simulator state (not a Freshsales API)",
        "host": host,
        "api_calls": account.api_calls,
        "lead_sources": account.lead_sources.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "pipelines": account.pipelines.iter().map(|p| json!({"id": p.id, "name": p.name, "stages": p.stages.iter().map(|s| json!({"id": s.id, "name": s.name})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "contacts": list(&account.contacts),
        "deals": list(&account.deals),
        "notes": list(&account.notes),
    })
}
