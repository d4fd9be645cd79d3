//! Pushing a lead into Freshsales:
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | contact upsert by email, deal create (contact linked), note on the contact: 3 |
//! | new, phone only | lookup by mobile number, contact create or update, deal, note: 4 |
//! | known, changed | contact update by id, deal stage update if the stage changed, note update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |

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
    let contact = sync_contact(session, lead, known.as_deref()).await?;
    progress.records.insert("contact".into(), contact.clone());

    match progress.records.get("deal").cloned() {
        None => {
            let (pipeline, stage) = deal_stage(session, lead, settings).await?;
            let body = json!({ "deal": {
                "name": lead.deal_name(),
                // Required by Freshsales; LeadRelay knows no amount.
                "amount": 0,
                "deal_pipeline_id": mapping::id_value(&pipeline),
                "deal_stage_id": mapping::id_value(&stage),
                "contacts_added_list": [mapping::id_value(&contact)],
            }});
            let request = session
                .request("deals.create", Method::POST, "/deals")
                .json(body);
            let response = checked(session.http.send(request).await?)?;
            progress
                .records
                .insert("deal".into(), mapping::created_id(&response, "deal")?);
            progress.stage = Some(stage);
        }
        Some(deal) => {
            let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
            if let Some(stage) = mapped.filter(|s| progress.stage.as_ref() != Some(s)) {
                let body = json!({ "deal": { "deal_stage_id": mapping::id_value(&stage) } });
                update(session, "deals.update", &format!("/deals/{deal}"), body).await?;
                progress.stage = Some(stage);
            }
        }
    }

    if let Some(text) = lead.plain_note() {
        let digest = text_digest(&text);
        match progress.records.get("note").cloned() {
            Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => {}
            Some(note) => {
                let body = json!({ "note": { "description": text } });
                update(session, "notes.update", &format!("/notes/{note}"), body).await?;
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
                let response = checked(session.http.send(request).await?)?;
                progress
                    .records
                    .insert("note".into(), mapping::created_id(&response, "note")?);
            }
        }
        progress.summary_digest = Some(digest);
    }
    Ok(())
}

/// Finds or creates the lead's contact and brings it up to date; returns its id. Duplicate
/// detection: the id we stored, then the email (upsert), then the mobile number (lookup).
pub(super) async fn sync_contact(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
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
        if let Some(id) = lookup(session, "mobile_number", phone).await? {
            let path = format!("/contacts/{id}");
            send_contact(session, "contacts.update", Method::PUT, &path, lead, wrap).await?;
            return Ok(id);
        }
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
    let idempotency = if method == Method::POST && path == "/contacts" {
        Idempotency::Unsafe
    } else {
        // An update, or an upsert keyed by email: sending it twice leaves one contact.
        Idempotency::Safe
    };
    let mut with_score = lead.score.is_some();
    loop {
        let contact = mapping::contact(lead, session.account, with_score);
        let request = session
            .request(operation, method.clone(), path)
            .json(body(contact))
            .idempotency(idempotency);
        match checked(session.http.send(request).await?) {
            Err(error) if with_score && mapping::refuses_score(&error) => {
                tracing::warn!("this account keeps lead_score read-only; sending without it");
                with_score = false;
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
