//! LeadRelay's lead as Salesforce records, fitted to the org's described fields: a field the
//! org does not have (or does not let us write) is left out, text is cut to the field's length,
//! and a required field we have no value for gets its documented default
//! (docs/providers/salesforce.md), so a customised org never fails a push for want of a value.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::schema::{Field, ObjectSchema, Schema, MASTER_RECORD_TYPE};
use crate::lead::{truncate_chars, Lead, LeadWarning};
use crate::provider::{person_fields, PersonFields};
use crate::store::{ConnectionSettings, ContactProperty};

const PERSON: PersonFields = PersonFields {
    last_name: "LastName",
    first_name: "FirstName",
    email: "Email",
    phone: "Phone",
};

/// The standard fields that receive the source and the score when settings name none.
pub(super) const DEFAULT_SOURCE_FIELD: &str = "LeadSource";
pub(super) const DEFAULT_SCORE_FIELD: &str = "Rating";
/// What a required text field gets when LeadRelay has nothing for it.
pub(super) const NOT_PROVIDED: &str = "Not provided";
/// Days from conversion to an opportunity's expected close (`CloseDate` is required).
pub(super) const CLOSE_DAYS: i64 = 30;
pub(super) const TASK_SUBJECT: &str = "LeadRelay conversation summary";

/// The line a Lead or Opportunity created by LeadRelay carries in its `Description`, so that a
/// create whose answer was lost can be told apart from every other record (see `push`).
pub(super) fn marker(lead: &Lead) -> String {
    format!("LeadRelay lead: {}", lead.id)
}

/// Whether a record's `Description` carries the lead's marker line.
pub(super) fn has_marker(record: &Value, lead: &Lead) -> bool {
    let marker = marker(lead);
    record
        .get("Description")
        .and_then(Value::as_str)
        .is_some_and(|d| d.lines().any(|line| line.trim() == marker))
}

/// The marker put first in a new record's `Description` (before whatever a mapping put there,
/// so that cutting the text to the field's length never loses it).
fn mark(fields: &mut Map<String, Value>, lead: &Lead) {
    let marker = marker(lead);
    let description = match fields.get("Description").and_then(Value::as_str) {
        Some(text) if !text.trim().is_empty() => format!("{marker}\n{text}"),
        _ => marker,
    };
    fields.insert("Description".into(), json!(description));
}

/// The Task's subject: the LeadRelay lead's id in it makes the Task findable by SOQL.
pub(super) fn task_subject(lead: &Lead) -> String {
    format!("{TASK_SUBJECT} [{}]", lead.id)
}

/// Whether a record is being created (required fields filled, placeholders allowed) or
/// updated (only what we know overwrites).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    Create,
    Update,
}

/// The Lead's fields: person, company on create, source and score (the tenant's fields or
/// `LeadSource` and `Rating`), and the tenant's mapped fields.
pub(super) fn lead_record(
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
    write: Write,
) -> Map<String, Value> {
    let object = schema.object("Lead");
    let mut fields = person_fields(lead, &PERSON, write == Write::Create);
    if write == Write::Create {
        fields.insert("Company".into(), json!(company_for(lead)));
    }
    for (name, value) in source_and_score(lead, settings, object) {
        fields.insert(name, json!(value));
    }
    if let Some(settings) = settings {
        fields.extend(settings.mapped_values(lead));
    }
    if write == Write::Create {
        mark(&mut fields, lead);
    }
    fit(object, fields, write, lead)
}

/// A Contact found for the lead: only the person and the source are kept up to date.
pub(super) fn contact_record(lead: &Lead, schema: &Schema) -> Map<String, Value> {
    let object = schema.object("Contact");
    let fields = person_fields(lead, &PERSON, false);
    fit(object, fields, Write::Update, lead)
}

/// A new Opportunity for a contact, in the tenant's stage and pipeline (record type).
pub(super) fn opportunity_record(
    lead: &Lead,
    stage: &str,
    record_type: &str,
    contact: &str,
    account: Option<&str>,
    schema: &Schema,
    today: NaiveDate,
) -> Map<String, Value> {
    let object = schema.object("Opportunity");
    let mut fields = Map::new();
    fields.insert("Name".into(), json!(lead.deal_name()));
    fields.insert("StageName".into(), json!(stage));
    fields.insert(
        "CloseDate".into(),
        json!((today + chrono::Duration::days(CLOSE_DAYS)).to_string()),
    );
    fields.insert("ContactId".into(), json!(contact));
    if let Some(account) = account {
        fields.insert("AccountId".into(), json!(account));
    }
    if record_type != MASTER_RECORD_TYPE {
        fields.insert("RecordTypeId".into(), json!(record_type));
    }
    mark(&mut fields, lead);
    fit(object, fields, Write::Create, lead)
}

/// The stage (and pipeline) change of an existing Opportunity.
pub(super) fn opportunity_stage(stage: &str, record_type: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("StageName".into(), json!(stage));
    if record_type != MASTER_RECORD_TYPE {
        fields.insert("RecordTypeId".into(), json!(record_type));
    }
    fields
}

/// The summary as a completed Task on the lead or contact.
pub(super) fn task_record(
    lead: &Lead,
    who: &str,
    schema: &Schema,
    today: NaiveDate,
) -> Option<Map<String, Value>> {
    let object = schema.object("Task");
    let mut fields = Map::new();
    fields.insert("Subject".into(), json!(task_subject(lead)));
    fields.insert("Description".into(), json!(task_description(lead)?));
    fields.insert("WhoId".into(), json!(who));
    fields.insert("ActivityDate".into(), json!(today.to_string()));
    // A summary is a record of a conversation that happened, not a to-do.
    if object
        .field("Status")
        .is_some_and(|f| f.values.iter().any(|v| v == "Completed"))
    {
        fields.insert("Status".into(), json!("Completed"));
    }
    Some(fit(object, fields, Write::Create, lead))
}

/// The Task's text: the summary, then the lead's facts.
pub(super) fn task_description(lead: &Lead) -> Option<String> {
    let summary = lead.summary.as_deref()?;
    Some(format!("{summary}\n\n{}", lead.summary_facts()))
}

/// A Task's description after an update.
pub(super) fn task_update(lead: &Lead, schema: &Schema) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    fields.insert("Description".into(), json!(task_description(lead)?));
    Some(fit(schema.object("Task"), fields, Write::Update, lead))
}

/// `Company` is required on a Lead; a chat lead seldom names one. Its own name is what a
/// business-to-consumer org would use (and what the Account created on conversion is called).
fn company_for(lead: &Lead) -> String {
    if lead.warnings.contains(&LeadWarning::NameMissing) {
        NOT_PROVIDED.to_string()
    } else {
        lead.full_name.clone()
    }
}

/// The source and score: into the fields the tenant chose, else into `LeadSource` and
/// `Rating` where the org has them, as one of their picklist values.
fn source_and_score(
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    object: &ObjectSchema,
) -> Vec<(String, String)> {
    if let Some(settings) = settings {
        return settings.source_and_score(lead.source.as_deref(), lead.score);
    }
    let property = |name: &str| {
        object.field(name).map(|f| ContactProperty {
            name: name.to_string(),
            options: f.values.clone(),
            kind: None,
        })
    };
    let mut chosen = Vec::new();
    if let (Some(p), Some(source)) = (property(DEFAULT_SOURCE_FIELD), &lead.source) {
        if let Some(value) = p.value_for(source) {
            chosen.push((p.name, value));
        }
    }
    if let (Some(p), Some(score)) = (property(DEFAULT_SCORE_FIELD), lead.score) {
        if let Some(value) = p.value_for_score(score) {
            chosen.push((p.name, value));
        }
    }
    chosen
}

/// `fields` fitted to the object: unknown or read-only fields dropped, text cut to length, and
/// on create every required field given a value.
fn fit(
    object: &ObjectSchema,
    fields: Map<String, Value>,
    write: Write,
    lead: &Lead,
) -> Map<String, Value> {
    if object.fields.is_empty() {
        // Not described (should not happen): send what we have and let Salesforce judge.
        return fields;
    }
    let mut fitted = Map::new();
    for (name, value) in fields {
        let Some(field) = object.field(&name) else {
            tracing::warn!(field = %name, "the org has no such field; left out");
            continue;
        };
        let writable = match write {
            Write::Create => field.createable,
            Write::Update => field.updateable,
        };
        if !writable {
            tracing::warn!(field = %name, "the field cannot be written; left out");
            continue;
        }
        fitted.insert(name, cut(field, value));
    }
    if write == Write::Create {
        for field in object.fields.iter().filter(|f| f.required) {
            let missing = fitted
                .get(&field.name)
                .is_none_or(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()));
            if missing {
                if let Some(value) = default_for(field, lead) {
                    tracing::info!(field = %field.name, "required field filled with its default");
                    fitted.insert(field.name.clone(), value);
                }
            }
        }
    }
    fitted
}

fn cut(field: &Field, value: Value) -> Value {
    match (&value, field.length) {
        (Value::String(text), Some(limit)) if field.general_kind() == "string" => {
            json!(truncate_chars(text, limit))
        }
        _ => value,
    }
}

/// The documented default of a required field LeadRelay has no value for: the picklist's
/// default (or first) value, `Not provided` for text, 0 for numbers, today for dates. A
/// required lookup has no sensible default and is left for Salesforce to refuse.
fn default_for(field: &Field, lead: &Lead) -> Option<Value> {
    let today = chrono::Utc::now().date_naive();
    match field.kind.as_str() {
        "picklist" | "multipicklist" => field
            .default_value
            .clone()
            .or_else(|| field.values.first().cloned())
            .map(Value::String),
        "string" | "textarea" | "phone" | "url" => Some(cut(field, json!(NOT_PROVIDED))),
        "email" => lead.email.clone().map(Value::String),
        "double" | "int" | "long" | "currency" | "percent" => Some(json!(0)),
        "date" => Some(json!(today.to_string())),
        "datetime" => Some(json!(chrono::Utc::now().to_rfc3339())),
        _ => None,
    }
}
