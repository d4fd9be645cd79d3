//! Pushing a lead into Zoho CRM with as few calls (and API credits) as the API allows:
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email or phone | Leads upsert (duplicate check on Email, then Phone), note: 2 |
//! | new, reaching the conversion stage | upsert, convert (5 credits), note on the contact: 3 |
//! | known lead, changed | lead update by id, note update if the summary changed: 1–2 |
//! | later reaching the conversion stage | lead update, convert: 2 (+1 if the summary changed) |
//! | converted, changed | contact update, deal stage update if the stage changed, note update if the summary changed: 1–3 |
//! | nameless lead with email or phone | a search first, so the placeholder name never overwrites a real one: +1 |
//! | identical replay | none (recognised before this module is called) |
//!
//! Record kinds kept in the lead mapping: `lead`, then after conversion `contact`, `deal` and
//! (when Zoho made one) `account`; `note`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::envelope::{self, RecordResult};
use super::{mapping, API};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{ContactField, Lead, LeadWarning};
use crate::provider::CrmProvider;
use crate::provider::{deal_stage, text_digest, PushProgress, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// Duplicate check of the upsert: the email first, then the phone (both are normalised by
/// LeadRelay, so equal values compare equal in Zoho).
const DUPLICATE_CHECK_FIELDS: [&str; 2] = ["Email", "Phone"];
/// Workflow rules (assignment, alerts) run as they do for a web-form lead; approval processes
/// and blueprints are not triggered, so a pushed lead is never left locked.
const TRIGGERS: [&str; 1] = ["workflow"];

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    if let Some(contact) = progress.records.get("contact").cloned() {
        update_converted(session, lead, settings, &contact, progress).await?;
    } else {
        let known = progress.records.get("lead").cloned();
        let id = sync_lead(session, lead, settings, known.as_deref()).await?;
        progress.records.insert("lead".into(), id.clone());
        if let Some(settings) = settings.filter(|s| converts_now(lead, s)) {
            let (pipeline, stage) = deal_stage(session, lead, Some(settings)).await?;
            let converted = convert(session, &id, lead, &pipeline, &stage).await?;
            progress.records.extend(converted);
            progress.stage = Some(stage);
        }
    }
    sync_note(session, lead, progress).await
}

/// The tenant converts leads at a stage, and this lead has reached it.
fn converts_now(lead: &Lead, settings: &ConnectionSettings) -> bool {
    settings
        .convert_at
        .is_some_and(|at| lead.stage.has_reached(at))
}

/// Creates or updates the Lead; returns its id. The id we stored first; then Zoho's own
/// duplicate check (upsert on Email, then Phone).
pub(super) async fn sync_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    if let Some(id) = known_id {
        let record = mapping::lead_record(lead, settings, false);
        match update(session, "leads.update", "Leads", id, record).await {
            Ok(()) => return Ok(id.to_string()),
            // Deleted, or converted by someone in Zoho since: find or create it again.
            Err(ProviderError::Rejected { code, .. }) if code == "INVALID_DATA id" => {
                tracing::warn!("the lead we pushed before is gone from Zoho's leads");
            }
            Err(e) => return Err(e),
        }
    }
    let nameless = lead.warnings.contains(&LeadWarning::NameMissing);
    if nameless && lead.has_contact_details() {
        if let Some(id) = super::Zoho
            .search_contact(session, &lead.contact_query())
            .await?
        {
            let record = mapping::lead_record(lead, settings, false);
            update(session, "leads.update", "Leads", &id, record).await?;
            return Ok(id);
        }
    }
    upsert(session, lead, settings).await
}

/// `POST /Leads/upsert`: one call creates the lead or updates the one whose Email (then
/// Phone) matches.
async fn upsert(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
) -> Result<String, ProviderError> {
    let body = json!({
        "data": [mapping::lead_record(lead, settings, true)],
        "duplicate_check_fields": DUPLICATE_CHECK_FIELDS,
        "trigger": TRIGGERS,
    });
    // Keyed by email or phone, sending it twice leaves one lead; without either it would not.
    let idempotency = if lead.has_contact_details() {
        Idempotency::Safe
    } else {
        Idempotency::Unsafe
    };
    let request = session
        .request("leads.upsert", Method::POST, &format!("{API}/Leads/upsert"))
        .json(body)
        .idempotency(idempotency);
    let record = envelope::single_record(session.http.send(request).await?)?;
    tracing::debug!(
        action = record.action.as_deref().unwrap_or("unknown"),
        "lead upserted"
    );
    record_id(&record)
}

/// `GET /Leads/search?email=` (or `?phone=`): an unconverted lead matching the value.
pub(super) async fn search_lead(
    session: &Session<'_>,
    field: ContactField,
    value: &str,
) -> Result<Option<String>, ProviderError> {
    #[derive(Deserialize)]
    struct Found {
        #[serde(default)]
        data: Vec<Value>,
    }
    let name = match field {
        ContactField::Email => "email",
        ContactField::Phone => "phone",
    };
    let mut request = session.request("leads.search", Method::GET, &format!("{API}/Leads/search"));
    request.url.query_pairs_mut().append_pair(name, value);
    let response = session.http.send(request).await?;
    // 204: nothing matched.
    if response.status == 204 {
        return Ok(None);
    }
    if !response.is_success() {
        return Err(super::failure(response));
    }
    let found: Found = response.json()?;
    Ok(found.data.first().and_then(envelope::id_of))
}

/// `POST /Leads/{id}/actions/convert`: the lead becomes a Contact (and an Account where it
/// names a company) and a Deal. Never resent once it may have reached Zoho: a second
/// conversion is refused (`ID_ALREADY_CONVERTED`) and would leave us without the new ids.
async fn convert(
    session: &Session<'_>,
    lead_id: &str,
    lead: &Lead,
    pipeline: &str,
    stage: &str,
) -> Result<Vec<(String, String)>, ProviderError> {
    let body = mapping::convert_body(lead, pipeline, stage, chrono::Utc::now().date_naive());
    let request = session
        .request(
            "leads.convert",
            Method::POST,
            &format!("{API}/Leads/{lead_id}/actions/convert"),
        )
        .json(body)
        .idempotency(Idempotency::Unsafe);
    let record = envelope::single_record(session.http.send(request).await?)?;
    let mut made = Vec::new();
    for (kind, module) in [
        ("contact", "Contacts"),
        ("deal", "Deals"),
        ("account", "Accounts"),
    ] {
        if let Some(id) = record.details.get(module).and_then(envelope::id_of) {
            made.push((kind.to_string(), id));
        }
    }
    if !made.iter().any(|(kind, _)| kind == "contact") {
        // A scheduled conversion (`SCHEDULED`, with a job id) or an answer without the new ids.
        return Err(ProviderError::Rejected {
            provider: Provider::Zoho,
            status: 202,
            code: record.code.clone(),
            message: "the conversion answer names no contact".into(),
        });
    }
    tracing::info!(records = made.len(), "lead converted");
    Ok(made)
}

/// After conversion the lead lives on as the Contact and the Deal.
async fn update_converted(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    contact: &str,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let person = mapping::person(lead, false);
    update(session, "contacts.update", "Contacts", contact, person).await?;
    let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
    if let (Some(deal), Some(stage)) = (progress.records.get("deal").cloned(), mapped) {
        if progress.stage.as_ref() != Some(&stage) {
            let fields = Map::from_iter([("Stage".to_string(), json!(stage))]);
            update(session, "deals.update", "Deals", &deal, fields).await?;
            progress.stage = Some(stage);
        }
    }
    Ok(())
}

/// The summary as a note on the lead, or on the contact once converted (Zoho moves a lead's
/// notes to the contact on conversion; the note keeps its id either way).
async fn sync_note(
    session: &Session<'_>,
    lead: &Lead,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let Some(content) = mapping::note_content(lead) else {
        return Ok(());
    };
    let digest = text_digest(&content);
    match progress.records.get("note").cloned() {
        Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => {}
        Some(note) => {
            let fields = Map::from_iter([("Note_Content".to_string(), json!(content))]);
            update(session, "notes.update", "Notes", &note, fields).await?;
        }
        None => {
            let (module, parent) = match (
                progress.records.get("contact"),
                progress.records.get("lead"),
            ) {
                (Some(contact), _) => ("Contacts", contact.clone()),
                (None, Some(lead_id)) => ("Leads", lead_id.clone()),
                (None, None) => return Ok(()),
            };
            let body = json!({ "data": [{
                "Note_Title": "LeadRelay conversation summary",
                "Note_Content": content,
                "Parent_Id": { "module": { "api_name": module }, "id": parent },
            }]});
            let request = session
                .request("notes.create", Method::POST, &format!("{API}/Notes"))
                .json(body);
            let record = envelope::single_record(session.http.send(request).await?)?;
            progress.records.insert("note".into(), record_id(&record)?);
        }
    }
    progress.summary_digest = Some(digest);
    Ok(())
}

/// `PUT /{module}/{id}`: fields present overwrite, absent ones stay. Safe to resend. Records
/// run workflow rules as a web form's do; notes take no `trigger` (their update spec has none).
async fn update(
    session: &Session<'_>,
    operation: &'static str,
    module: &str,
    id: &str,
    fields: Map<String, Value>,
) -> Result<(), ProviderError> {
    let body = if module == "Notes" {
        json!({ "data": [fields] })
    } else {
        json!({ "data": [fields], "trigger": TRIGGERS })
    };
    let request = session
        .request(operation, Method::PUT, &format!("{API}/{module}/{id}"))
        .json(body)
        .idempotency(Idempotency::Safe);
    envelope::single_record(session.http.send(request).await?)?;
    Ok(())
}

fn record_id(record: &RecordResult) -> Result<String, ProviderError> {
    record.id().ok_or(ProviderError::Garbage {
        provider: Provider::Zoho,
        status: 200,
        detail: "a successful record result holds no id".into(),
    })
}
