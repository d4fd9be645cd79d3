//! Pushing a lead into Freshsales:
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | contact upsert by email, deal create (contact linked), note on the contact: 3 |
//! | new, phone only | lookup by mobile number, contact create or update, deal, note: 4 |
//! | known, changed | contact update by id, deal stage update if the stage changed, note update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |
//! | after a create whose answer was lost | one more read where the create is in doubt (below) |
//!
//! Exactly once in effect: the contact upsert is keyed by email, so sending it again leaves one
//! contact; a phone-only contact is looked up by its mobile number before every create. Deals,
//! notes and contacts with neither email nor phone have no upsert, so their creates are announced
//! first (`progress.intend`) and, when a later attempt finds the create in doubt, looked up by
//! the lead id they carry: the deal's name ends in `[<lead id>]`, the note says `Lead: <lead id>`,
//! a contact without email or phone has the lead id as its `external_id`. Every write's result is
//! stored before the next call.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::mapping;
use crate::error::ProviderError;
use crate::http::{HttpResponse, Idempotency};
use crate::lead::Lead;
use crate::provider::{deal_stage, text_digest, PushProgress, Session};
use crate::store::ConnectionSettings;

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let known = progress.records.get("contact").cloned();
    let contact = sync_contact_with(session, lead, known.as_deref(), Some(&mut *progress)).await?;
    progress.record("contact", contact.clone()).await?;

    if !progress.records.contains_key("deal") && progress.in_doubt("deal") {
        if let Some(found) = find_deal(session, lead, &contact).await? {
            // Its stage is the one it was created in; the update below moves it if the lead's
            // stage maps elsewhere now.
            progress.stage = found.stage;
            progress.record("deal", found.id).await?;
        }
    }
    match progress.records.get("deal").cloned() {
        None => {
            let (pipeline, stage) = deal_stage(session, lead, settings).await?;
            let body = json!({ "deal": {
                "name": deal_name(lead),
                // Required by Freshsales; LeadRelay knows no amount.
                "amount": 0,
                "deal_pipeline_id": mapping::id_value(&pipeline),
                "deal_stage_id": mapping::id_value(&stage),
                "contacts_added_list": [mapping::id_value(&contact)],
            }});
            let request = session
                .request("deals.create", Method::POST, "/deals")
                .json(body);
            progress.intend("deal").await?;
            let response = checked(session.http.send(request).await?)?;
            let id = mapping::created_id(&response, "deal")?;
            progress.stage = Some(stage);
            progress.record("deal", id).await?;
        }
        Some(deal) => {
            let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
            if let Some(stage) = mapped.filter(|s| progress.stage.as_ref() != Some(s)) {
                let body = json!({ "deal": { "deal_stage_id": mapping::id_value(&stage) } });
                update(session, "deals.update", &format!("/deals/{deal}"), body).await?;
                progress.stage = Some(stage);
                progress.save().await?;
            }
        }
    }

    if let Some(text) = lead.plain_note() {
        let digest = text_digest(&text);
        if progress.in_doubt("note") {
            if let Some((id, said)) = find_note(session, lead, &contact).await? {
                // Updated below unless it already says this.
                progress.summary_digest = Some(text_digest(&said));
                progress.record("note", id).await?;
            }
        }
        match progress.records.get("note").cloned() {
            Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => {}
            Some(note) => {
                let body = json!({ "note": { "description": text } });
                update(session, "notes.update", &format!("/notes/{note}"), body).await?;
                progress.summary_digest = Some(digest);
                progress.save().await?;
            }
            None => {
                let body = json!({ "note": {
                    "description": text,
                    "targetable_type": "Contact",
                    "targetable_id": mapping::id_value(&contact),
                }});
                let request = session
                    .request("notes.create", Method::POST, "/notes")
                    .json(body);
                progress.intend("note").await?;
                let response = checked(session.http.send(request).await?)?;
                let id = mapping::created_id(&response, "note")?;
                progress.summary_digest = Some(digest);
                progress.record("note", id).await?;
            }
        }
    }
    Ok(())
}

/// The deal's name: LeadRelay's, with the lead id at the end so a deal whose create answer was
/// lost can be told apart from the contact's other deals.
fn deal_name(lead: &Lead) -> String {
    format!("{} {}", lead.deal_name(), deal_marker(lead))
}

fn deal_marker(lead: &Lead) -> String {
    // Lead ids hold no brackets, so `[id]` at the end names one lead.
    format!("[{}]", lead.id)
}

/// A deal found again.
struct FoundDeal {
    id: String,
    stage: Option<String>,
}

/// `GET /contacts/{id}?include=deals`: the contact with its deals side-loaded (top-level
/// `deals`); the one whose name ends with the lead's marker. The `include` parameter of "View a
/// Contact": https://developers.freshworks.com/crm/api/ (its list of includes, `deals` and
/// `notes` among them, as also given at
/// https://glama.ai/mcp/connectors/io.usefulapi/freshsales/tools/freshsales_get_contact).
async fn find_deal(
    session: &Session<'_>,
    lead: &Lead,
    contact: &str,
) -> Result<Option<FoundDeal>, ProviderError> {
    let body = contact_with(session, contact, "deals").await?;
    let marker = deal_marker(lead);
    Ok(body["deals"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"].as_str().is_some_and(|n| n.ends_with(&marker)))
        .and_then(|d| {
            Some(FoundDeal {
                id: id_text(&d["id"])?,
                stage: id_text(&d["deal_stage_id"]),
            })
        }))
}

/// `GET /contacts/{id}?include=notes`: the id and text of the contact's note that names the
/// lead (its facts line starts `Lead: <id>`, see `Lead::summary_facts`).
async fn find_note(
    session: &Session<'_>,
    lead: &Lead,
    contact: &str,
) -> Result<Option<(String, String)>, ProviderError> {
    let body = contact_with(session, contact, "notes").await?;
    let facts = format!("Lead: {}", lead.id);
    let names_lead = |text: &str| {
        text.lines().any(|line| {
            line == facts
                || line
                    .strip_prefix(facts.as_str())
                    .is_some_and(|rest| rest.starts_with(" ·"))
        })
    };
    Ok(body["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["description"].as_str().is_some_and(names_lead))
        .and_then(|n| {
            let said = n["description"].as_str()?.to_string();
            Some((id_text(&n["id"])?, said))
        }))
}

async fn contact_with(
    session: &Session<'_>,
    contact: &str,
    include: &str,
) -> Result<Value, ProviderError> {
    let mut request = session.request(
        "contacts.read",
        Method::GET,
        &format!("/contacts/{contact}"),
    );
    request
        .url
        .query_pairs_mut()
        .append_pair("include", include);
    let response = checked(session.http.send(request).await?)?;
    response.json()
}

fn id_text(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Finds or creates the lead's contact and brings it up to date; returns its id. Duplicate
/// detection: the id we stored, then the email (upsert), then the mobile number (lookup).
pub(super) async fn sync_contact(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    sync_contact_with(session, lead, known_id, None).await
}

/// [`sync_contact`], announcing a create the upsert does not cover in `progress` when given.
async fn sync_contact_with(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
    progress: Option<&mut PushProgress>,
) -> Result<String, ProviderError> {
    if let Some(id) = known_id {
        let path = format!("/contacts/{id}");
        match send_contact(session, "contacts.update", Method::PUT, &path, lead, wrap).await {
            Ok(_) => return Ok(id.to_string()),
            // Deleted in Freshsales since: find or create it again below.
            Err(ProviderError::Rejected { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(email) = lead.email.clone() {
        // Keyed by email: resending it after a lost answer leaves one contact.
        let upsert = move |contact: Map<String, Value>| json!({ "unique_identifier": { "emails": email }, "contact": contact });
        let response = send_contact(
            session,
            "contacts.upsert",
            Method::POST,
            "/contacts/upsert",
            lead,
            upsert,
        )
        .await?;
        return mapping::created_id(&response, "contact");
    }
    if let Some(phone) = &lead.phone {
        // Looked up before every create: a contact made by an attempt whose answer was lost is
        // found here by the number it carries.
        if let Some(id) = lookup(session, "mobile_number", phone).await? {
            let path = format!("/contacts/{id}");
            send_contact(session, "contacts.update", Method::PUT, &path, lead, wrap).await?;
            return Ok(id);
        }
    } else if progress.as_ref().is_some_and(|p| p.in_doubt("contact")) {
        // Nothing to search by but the lead id it was created with.
        if let Some(id) = lookup(session, mapping::EXTERNAL_ID, &lead.id).await? {
            return Ok(id);
        }
    }
    if let Some(progress) = progress {
        progress.intend("contact").await?;
    }
    let response = send_contact(
        session,
        "contacts.create",
        Method::POST,
        "/contacts",
        lead,
        wrap,
    )
    .await?;
    mapping::created_id(&response, "contact")
}

fn wrap(contact: Map<String, Value>) -> Value {
    json!({ "contact": contact })
}

/// Sends the lead's contact in `body`'s shape. The plan maps the score to `lead_score`; where
/// an account keeps that field read-only and says so, the contact is sent again without it
/// rather than failing the lead (the score is in the note either way).
async fn send_contact(
    session: &Session<'_>,
    operation: &'static str,
    method: Method,
    path: &str,
    lead: &Lead,
    body: impl Fn(Map<String, Value>) -> Value,
) -> Result<HttpResponse, ProviderError> {
    let create = method == Method::POST && path == "/contacts";
    let idempotency = if create {
        Idempotency::Unsafe
    } else {
        // An update, or an upsert keyed by email: sending it twice leaves one contact.
        Idempotency::Safe
    };
    let mut with_score = lead.score.is_some();
    // A contact with neither email nor phone carries the lead id, the only thing it can be
    // found again by after a create whose answer was lost.
    let mut with_marker = create && !lead.has_contact_details();
    loop {
        let mut contact = mapping::contact(lead, session.account, with_score);
        if with_marker {
            contact.insert(mapping::EXTERNAL_ID.into(), json!(lead.id));
        }
        let request = session
            .request(operation, method.clone(), path)
            .json(body(contact))
            .idempotency(idempotency);
        match checked(session.http.send(request).await?) {
            Err(error) if with_score && mapping::refuses_field(&error, "lead_score") => {
                tracing::warn!("this account keeps lead_score read-only; sending without it");
                with_score = false;
            }
            Err(error) if with_marker && mapping::refuses_field(&error, mapping::EXTERNAL_ID) => {
                tracing::warn!("this account refuses external_id; the contact goes without it");
                with_marker = false;
            }
            other => return other,
        }
    }
}

/// `GET /lookup?q=..&f=..&entities=contact`: a contact whose field equals `value`.
pub(super) async fn lookup(
    session: &Session<'_>,
    field: &str,
    value: &str,
) -> Result<Option<String>, ProviderError> {
    let mut request = session.request("contacts.lookup", Method::GET, "/lookup");
    request
        .url
        .query_pairs_mut()
        .append_pair("q", value)
        .append_pair("f", field)
        .append_pair("entities", "contact");
    let response = checked(session.http.send(request).await?)?;
    let body: Value = response.json()?;
    // `{"contacts": {"contacts": [...]}}`.
    let first = body["contacts"]["contacts"]
        .as_array()
        .and_then(|c| c.first())
        .map(|c| c["id"].clone());
    Ok(match first {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    })
}

/// `PUT` of the fields given: idempotent, safe to resend.
async fn update(
    session: &Session<'_>,
    operation: &'static str,
    path: &str,
    body: Value,
) -> Result<(), ProviderError> {
    let request = session
        .request(operation, Method::PUT, path)
        .json(body)
        .idempotency(Idempotency::Safe);
    checked(session.http.send(request).await?)?;
    Ok(())
}

pub(super) fn checked(response: HttpResponse) -> Result<HttpResponse, ProviderError> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(mapping::failure(response))
    }
}
