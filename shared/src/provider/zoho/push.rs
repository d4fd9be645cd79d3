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
pub(super) const DUPLICATE_CHECK_FIELDS: [&str; 2] = ["Email", "Phone"];
/// Workflow rules (assignment, alerts) run as they do for a web-form lead; approval processes
/// and blueprints are not triggered, so a pushed lead is never left locked.
pub(super) const TRIGGERS: [&str; 1] = ["workflow"];

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    // A conversion whose answer never came back: what it made is read back first, since a
    // converted lead can no longer be updated and an upsert would make a second lead.
    if progress.in_doubt("contact") {
        if let Some(lead_id) = progress.records.get("lead").cloned() {
            if let Some(made) = converted_records(session, &lead_id).await? {
                record_conversion(progress, made, None).await?;
            }
        }
    }
    if let Some(contact) = progress.records.get("contact").cloned() {
        update_converted(session, lead, settings, &contact, progress).await?;
    } else {
        let known = progress.records.get("lead").cloned();
        let id = push_lead_record(session, lead, settings, known.as_deref(), progress).await?;
        progress.record("lead", id.clone()).await?;
        convert_if_due(session, lead, settings, &id, progress).await?;
    }
    sync_note(session, lead, progress).await
}

/// Converts the lead `id` into a Contact and a Deal when the tenant converts at a stage this
/// lead has reached; nothing otherwise.
pub(super) async fn convert_if_due(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    id: &str,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let Some(settings) = settings.filter(|s| converts_now(lead, s)) else {
        return Ok(());
    };
    let (pipeline, stage) = deal_stage(session, lead, Some(settings)).await?;
    // Zoho refuses a second conversion, so the intent is what tells a retry to read the lead
    // back instead of converting it again.
    progress.intend("contact").await?;
    let made = match convert(session, id, lead, &pipeline, &stage).await {
        Ok(made) => made,
        // Converted by an attempt whose answer was lost, or by hand in Zoho.
        Err(e) if is_already_converted(&e) => converted_records(session, id).await?.ok_or(e)?,
        Err(e) => return Err(e),
    };
    record_conversion(progress, made, Some(stage)).await
}

/// Stores what a conversion made: deal and account first, the contact last, since the
/// contact's id is what ends the conversion's intent (and with it, the stage reached).
async fn record_conversion(
    progress: &mut PushProgress,
    made: Vec<(String, String)>,
    stage: Option<String>,
) -> Result<(), ProviderError> {
    let mut contact = None;
    for (kind, id) in made {
        if kind == "contact" {
            contact = Some(id);
        } else {
            progress.record(&kind, id).await?;
        }
    }
    if stage.is_some() {
        progress.stage = stage;
    }
    match contact {
        Some(contact) => progress.record("contact", contact).await,
        None => Err(no_contact(200, "")),
    }
}

fn is_already_converted(error: &ProviderError) -> bool {
    matches!(error, ProviderError::Rejected { code, .. } if code.starts_with("ID_ALREADY_CONVERTED"))
}

fn no_contact(status: u16, code: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Zoho,
        status,
        code: code.to_string(),
        message: "the conversion names no contact".into(),
    }
}

/// The tenant converts leads at a stage, and this lead has reached it.
pub(super) fn converts_now(lead: &Lead, settings: &ConnectionSettings) -> bool {
    settings
        .convert_at
        .is_some_and(|at| lead.stage.has_reached(at))
}

/// The Lead of a push: as [`sync_lead`], except that a lead with neither email nor phone
/// (which Zoho's duplicate check cannot recognise) is created under an intent and carries its
/// LeadRelay id in `Description`, so a retry after a lost answer finds it instead of making a
/// second one.
async fn push_lead_record(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    known_id: Option<&str>,
    progress: &mut PushProgress,
) -> Result<String, ProviderError> {
    if lead.has_contact_details() {
        return sync_lead(session, lead, settings, known_id).await;
    }
    if let Some(id) = known_id {
        if let Some(id) = update_known_lead(session, lead, settings, id).await? {
            return Ok(id);
        }
    }
    let marker = mapping::lead_marker(lead);
    if progress.in_doubt("lead") {
        if let Some(id) = find_marked_lead(session, &marker).await? {
            let record = mapping::lead_record(lead, settings, true);
            update(session, "leads.update", "Leads", &id, record).await?;
            return Ok(id);
        }
    }
    progress.intend("lead").await?;
    upsert(session, lead, settings, Some(&marker)).await
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
        if let Some(id) = update_known_lead(session, lead, settings, id).await? {
            return Ok(id);
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
    upsert(session, lead, settings, None).await
}

/// Updates the lead we stored; `None` when it is gone from Zoho's leads.
async fn update_known_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    id: &str,
) -> Result<Option<String>, ProviderError> {
    let record = mapping::lead_record(lead, settings, false);
    match update(session, "leads.update", "Leads", id, record).await {
        Ok(()) => Ok(Some(id.to_string())),
        // Deleted, or converted by someone in Zoho since: find or create it again.
        Err(ProviderError::Rejected { code, .. }) if code == "INVALID_DATA id" => {
            tracing::warn!("the lead we pushed before is gone from Zoho's leads");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `GET /Leads/search?word=`: the unconverted lead whose `Description` is `marker`. The word
/// search is Zoho's module-level text search
/// (https://help.zoho.com/portal/en/community/topic/kaizen-82-search-records-api-v4); its hits
/// are checked for the exact marker here, since a word search matches parts too.
async fn find_marked_lead(
    session: &Session<'_>,
    marker: &str,
) -> Result<Option<String>, ProviderError> {
    let mut request = session.request("leads.search", Method::GET, &format!("{API}/Leads/search"));
    request.url.query_pairs_mut().append_pair("word", marker);
    let Some(found) = read_list(session, request).await? else {
        return Ok(None);
    };
    Ok(found
        .data
        .iter()
        .find(|r| r.get("Description").and_then(Value::as_str) == Some(marker))
        .and_then(envelope::id_of))
}

/// `POST /Leads/upsert`: one call creates the lead or updates the one whose Email (then
/// Phone) matches. `marker` goes into a new lead's `Description` (leads without email or phone).
async fn upsert(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    marker: Option<&str>,
) -> Result<String, ProviderError> {
    let mut record = mapping::lead_record(lead, settings, true);
    if let Some(marker) = marker {
        record.insert("Description".into(), json!(marker));
    }
    let body = json!({
        "data": [record],
        "duplicate_check_fields": DUPLICATE_CHECK_FIELDS,
        "trigger": TRIGGERS,
    });
    // Keyed by email or phone, sending it twice leaves one lead; without either it would not
    // (those go under an intent, see `push_lead_record`).
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

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    info: Option<ListInfo>,
}

#[derive(Deserialize)]
struct ListInfo {
    #[serde(default)]
    more_records: bool,
}

/// A GET answering a list: `None` for Zoho's 204 (nothing there).
async fn read_list(
    session: &Session<'_>,
    request: crate::http::OutboundRequest,
) -> Result<Option<Listed>, ProviderError> {
    let response = session.http.send(request).await?;
    if response.status == 204 {
        return Ok(None);
    }
    if !response.is_success() {
        return Err(super::failure(response));
    }
    Ok(Some(response.json()?))
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
    let made = conversion_ids(&record.details, ["Contacts", "Deals", "Accounts"]);
    if !made.iter().any(|(kind, _)| kind == "contact") {
        // A scheduled conversion (`SCHEDULED`, with a job id) or an answer without the new ids.
        return Err(no_contact(202, &record.code));
    }
    tracing::info!(records = made.len(), "lead converted");
    Ok(made)
}

/// The contact, deal and account ids under the given keys of a conversion's details.
fn conversion_ids(details: &Value, keys: [&str; 3]) -> Vec<(String, String)> {
    ["contact", "deal", "account"]
        .into_iter()
        .zip(keys)
        .filter_map(|(kind, key)| {
            let id = match details.get(key)? {
                Value::String(id) if !id.is_empty() => id.clone(),
                other => envelope::id_of(other)?,
            };
            Some((kind.to_string(), id))
        })
        .collect()
}

/// `GET /Leads/{id}?converted=true`: what the lead was converted into, read back from its
/// `$converted_detail` (contact, deal, account); `None` when it is not converted (Zoho answers
/// 204). `converted` is the records API's filter (true: converted records only,
/// https://www.zoho.com/crm/developer/docs/api/v2.1/get-records.html); `$converted_detail` is
/// the derived property of a converted lead
/// (https://help.zoho.com/portal/en/community/topic/kaizen-11-the-properties-in-zoho-crm-api).
async fn converted_records(
    session: &Session<'_>,
    lead_id: &str,
) -> Result<Option<Vec<(String, String)>>, ProviderError> {
    let mut request = session.request("leads.read", Method::GET, &format!("{API}/Leads/{lead_id}"));
    request
        .url
        .query_pairs_mut()
        .append_pair("converted", "true");
    let Some(found) = read_list(session, request).await? else {
        return Ok(None);
    };
    let Some(record) = found.data.first() else {
        return Ok(None);
    };
    if record.get("$converted").and_then(Value::as_bool) == Some(false) {
        return Ok(None);
    }
    let detail = record.get("$converted_detail").unwrap_or(&Value::Null);
    let made = conversion_ids(detail, ["contact", "deal", "account"]);
    if !made.iter().any(|(kind, _)| kind == "contact") {
        return Err(no_contact(200, "CONVERTED_DETAIL_MISSING"));
    }
    tracing::info!(records = made.len(), "lead found converted");
    Ok(Some(made))
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
            progress.save().await?;
        }
    }
    Ok(())
}

/// The summary as a note on the lead, or on the contact once converted (Zoho moves a lead's
/// notes to the contact on conversion; the note keeps its id either way). Notes have no upsert:
/// the create goes under an intent, and a retry in doubt lists the parent's notes for the one
/// naming this lead (`Lead: <id>`, see [`mapping::note_content`]).
async fn sync_note(
    session: &Session<'_>,
    lead: &Lead,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let Some(content) = mapping::note_content(lead) else {
        return Ok(());
    };
    let digest = text_digest(&content);
    let parent = match (
        progress.records.get("contact"),
        progress.records.get("lead"),
    ) {
        (Some(contact), _) => Some(("Contacts", contact.clone())),
        (None, Some(lead_id)) => Some(("Leads", lead_id.clone())),
        (None, None) => None,
    };
    let mut note = progress.records.get("note").cloned();
    if let (None, true, Some((module, parent))) = (&note, progress.in_doubt("note"), &parent) {
        if let Some((id, found)) = find_note(session, module, parent, lead).await? {
            progress.summary_digest = Some(text_digest(&found));
            progress.record("note", id.clone()).await?;
            note = Some(id);
        }
    }
    match note {
        Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => {}
        Some(note) => {
            let fields = Map::from_iter([("Note_Content".to_string(), json!(content))]);
            update(session, "notes.update", "Notes", &note, fields).await?;
            progress.summary_digest = Some(digest);
            progress.save().await?;
        }
        None => {
            let Some((module, parent)) = parent else {
                return Ok(());
            };
            let body = json!({ "data": [{
                "Note_Title": "LeadRelay conversation summary",
                "Note_Content": content,
                "Parent_Id": { "module": { "api_name": module }, "id": parent },
            }]});
            progress.intend("note").await?;
            let request = session
                .request("notes.create", Method::POST, &format!("{API}/Notes"))
                .json(body);
            let record = envelope::single_record(session.http.send(request).await?)?;
            // One write for the id and the summary it holds.
            progress.summary_digest = Some(digest);
            progress.record("note", record_id(&record)?).await?;
        }
    }
    Ok(())
}

/// Most pages of a record's notes read to find ours (200 notes a page).
const NOTE_PAGES: u32 = 5;

/// `GET /{module}/{id}/Notes?fields=Note_Title,Note_Content`: the note of this lead on the
/// record, with its content. `fields` is mandatory and a page holds at most 200 notes, oldest
/// first (https://zoho.com/crm/developer/docs/api/v6/get-notes.html).
async fn find_note(
    session: &Session<'_>,
    module: &str,
    parent: &str,
    lead: &Lead,
) -> Result<Option<(String, String)>, ProviderError> {
    for page in 1..=NOTE_PAGES {
        let mut request = session.request(
            "notes.list",
            Method::GET,
            &format!("{API}/{module}/{parent}/Notes"),
        );
        request
            .url
            .query_pairs_mut()
            .append_pair("fields", "Note_Title,Note_Content")
            .append_pair("per_page", "200")
            .append_pair("page", &page.to_string());
        let Some(listed) = read_list(session, request).await? else {
            return Ok(None);
        };
        let ours = listed.data.iter().find_map(|note| {
            let content = note.get("Note_Content").and_then(Value::as_str)?;
            if !mapping::names_lead(content, lead) {
                return None;
            }
            Some((envelope::id_of(note)?, content.to_string()))
        });
        if ours.is_some() {
            return Ok(ours);
        }
        if !listed.info.is_some_and(|i| i.more_records) {
            break;
        }
    }
    Ok(None)
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

pub(super) fn record_id(record: &RecordResult) -> Result<String, ProviderError> {
    record.id().ok_or(ProviderError::Garbage {
        provider: Provider::Zoho,
        status: 200,
        detail: "a successful record result holds no id".into(),
    })
}
