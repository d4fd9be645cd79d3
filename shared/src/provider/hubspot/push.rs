//! Pushing a lead into HubSpot with as few calls as the API allows:
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | contacts batch upsert by email, deal create (contact association inline), note create (contact and deal associations inline): 3 |
//! | new, phone only | contact search by phone, contact create or update, deal, note: 4 |
//! | known, changed | contact update by id, deal stage update if the stage changed, note update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |
//!
//! Shapes from HubSpot's v3 object specs (`CRM/{Contacts,Deals,Notes}/Rollouts/424/v3`).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{truncate_chars, Lead};
use crate::provider::{
    deal_stage, person_fields, text_digest, PersonFields, PushProgress, Session,
};
use crate::store::ConnectionSettings;

/// Association type ids, HUBSPOT_DEFINED: deal→contact 3, note→contact 202, note→deal 214.
const DEAL_TO_CONTACT: u32 = 3;
const NOTE_TO_CONTACT: u32 = 202;
const NOTE_TO_DEAL: u32 = 214;
/// `hs_note_body` holds at most 65,536 characters.
const NOTE_BODY_LIMIT: usize = 65_536;

#[derive(Deserialize)]
struct ObjectId {
    id: String,
}

#[derive(Deserialize)]
struct BatchResults {
    results: Vec<ObjectId>,
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Vec<ObjectId>,
}

fn association(to: &str, type_id: u32) -> Value {
    json!({
        "to": { "id": to },
        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }]
    })
}

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let known = progress.records.get("contact").cloned();
    let contact = sync_contact_with(session, lead, settings, known.as_deref()).await?;
    progress.records.insert("contact".into(), contact.clone());
    if known.as_ref().is_some_and(|k| *k != contact) {
        // The contact we knew was deleted in HubSpot and has been found or created again: the
        // lead's deal and note move onto it.
        for (kind, object) in [("deal", "deals"), ("note", "notes")] {
            if let Some(id) = progress.records.get(kind) {
                associate_default(session, object, id, &contact).await?;
            }
        }
    }

    match progress.records.get("deal").cloned() {
        None => {
            let (pipeline, stage) = deal_stage(session, lead, settings).await?;
            let deal = create_deal(session, lead, &contact, &pipeline, &stage).await?;
            progress.records.insert("deal".into(), deal);
            progress.stage = Some(stage);
        }
        Some(deal) => {
            let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
            if let Some(stage) = mapped.filter(|s| progress.stage.as_ref() != Some(s)) {
                update(
                    session,
                    "deals.update",
                    "deals",
                    &deal,
                    json!({ "dealstage": stage }),
                )
                .await?;
                progress.stage = Some(stage);
            }
        }
    }

    if let Some(body) = note_body(lead) {
        let digest = text_digest(&body);
        match progress.records.get("note").cloned() {
            None => {
                let deal = progress.records.get("deal").cloned();
                let note = create_note(session, &body, &contact, deal.as_deref()).await?;
                progress.records.insert("note".into(), note);
            }
            Some(note) if progress.summary_digest.as_deref() != Some(digest.as_str()) => {
                update(
                    session,
                    "notes.update",
                    "notes",
                    &note,
                    json!({ "hs_note_body": body }),
                )
                .await?;
            }
            Some(_) => {}
        }
        progress.summary_digest = Some(digest);
    }
    Ok(())
}

const PERSON: PersonFields = PersonFields {
    last_name: "lastname",
    first_name: "firstname",
    email: "email",
    phone: "phone",
};

/// Contact properties from the lead; absent fields are left out so they never blank what the
/// portal already holds.
fn contact_properties(lead: &Lead, settings: Option<&ConnectionSettings>) -> Map<String, Value> {
    // HubSpot needs one of email, firstname and lastname, so a nameless lead's placeholder is
    // sent only when nothing else identifies the contact.
    let mut properties = person_fields(lead, &PERSON, !lead.has_contact_details());
    // Source and score go to the properties the tenant chose, if any; a source an enumeration
    // does not offer is left out rather than failing the push.
    if let Some(settings) = settings {
        for (name, value) in settings.source_and_score(lead.source.as_deref(), lead.score) {
            properties.insert(name, json!(value));
        }
    }
    properties
}

/// Finds or creates the lead's contact and brings it up to date; returns its id. Duplicate
/// detection: the id we stored, then the email (upsert), then the phone (search).
pub(super) async fn sync_contact(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    sync_contact_with(session, lead, None, known_id).await
}

async fn sync_contact_with(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    let properties = Value::Object(contact_properties(lead, settings));
    if let Some(id) = known_id {
        match update(
            session,
            "contacts.update",
            "contacts",
            id,
            properties.clone(),
        )
        .await
        {
            Ok(()) => return Ok(id.to_string()),
            // Deleted in HubSpot since: find or create it again below.
            Err(ProviderError::Rejected { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(email) = &lead.email {
        // Upsert by email: create or update in one call. Without `idProperty` HubSpot would
        // read `id` as a record id and silently update nothing.
        let body =
            json!({ "inputs": [{ "id": email, "idProperty": "email", "properties": properties }] });
        let response = session
            .http
            .send(
                session
                    .request(
                        "contacts.upsert",
                        Method::POST,
                        "/crm/v3/objects/contacts/batch/upsert",
                    )
                    .json(body)
                    // Keyed by email: sending it twice leaves one contact.
                    .idempotency(Idempotency::Safe),
            )
            .await?
            .error_for_status()?;
        let results: BatchResults = response.json()?;
        return results
            .results
            .into_iter()
            .next()
            .map(|o| o.id)
            .ok_or(ProviderError::Garbage {
                provider: session.provider,
                status: response.status,
                detail: "upsert returned no result".into(),
            });
    }
    if let Some(phone) = &lead.phone {
        if let Some(id) = search_by(session, "phone", phone).await? {
            update(session, "contacts.update", "contacts", &id, properties).await?;
            return Ok(id);
        }
    }
    create(
        session,
        "contacts.create",
        "contacts",
        json!({ "properties": properties, "associations": [] }),
    )
    .await
}

/// The id of a contact whose `property` equals `value`, if any.
pub(super) async fn search_by(
    session: &Session<'_>,
    property: &str,
    value: &str,
) -> Result<Option<String>, ProviderError> {
    let body = json!({
        "filterGroups": [{ "filters": [{ "propertyName": property, "operator": "EQ", "value": value }] }],
        "properties": ["email", "phone"],
        "limit": 1
    });
    let response = session
        .http
        .send(
            session
                .request(
                    "contacts.search",
                    Method::POST,
                    "/crm/v3/objects/contacts/search",
                )
                .json(body)
                .idempotency(Idempotency::Safe),
        )
        .await?
        .error_for_status()?;
    let results: SearchResults = response.json()?;
    Ok(results.results.into_iter().next().map(|o| o.id))
}

async fn create_deal(
    session: &Session<'_>,
    lead: &Lead,
    contact: &str,
    pipeline: &str,
    stage: &str,
) -> Result<String, ProviderError> {
    let body = json!({
        "properties": {
            "dealname": lead.deal_name(),
            "pipeline": pipeline,
            "dealstage": stage,
        },
        "associations": [association(contact, DEAL_TO_CONTACT)]
    });
    create(session, "deals.create", "deals", body).await
}

async fn create_note(
    session: &Session<'_>,
    body: &str,
    contact: &str,
    deal: Option<&str>,
) -> Result<String, ProviderError> {
    let mut associations = vec![association(contact, NOTE_TO_CONTACT)];
    if let Some(deal) = deal {
        associations.push(association(deal, NOTE_TO_DEAL));
    }
    let request = json!({
        "properties": {
            "hs_note_body": body,
            "hs_timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
        "associations": associations
    });
    create(session, "notes.create", "notes", request).await
}

/// The note: the conversation summary and what LeadRelay knows of the lead, HTML-escaped
/// (HubSpot renders note bodies as HTML) and cut to HubSpot's limit.
fn note_body(lead: &Lead) -> Option<String> {
    let summary = lead.summary.as_deref()?;
    let text = format!(
        "<p><strong>LeadRelay conversation summary</strong></p><p>{}</p><p>{}</p>",
        escape_html(summary),
        escape_html(&lead.summary_facts())
    );
    Some(truncate_chars(&text, NOTE_BODY_LIMIT))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "<br>")
}

/// Links a record to a contact with HubSpot's default (unlabeled) association type:
/// `PUT /crm/v4/objects/{type}/{id}/associations/default/contacts/{contact}` (checked: HubSpot's
/// v4 associations guide). A PUT of an existing association is a no-op, so it is safe to retry.
async fn associate_default(
    session: &Session<'_>,
    object: &str,
    id: &str,
    contact: &str,
) -> Result<(), ProviderError> {
    let path = format!("/crm/v4/objects/{object}/{id}/associations/default/contacts/{contact}");
    let request = session.request("associations.default", Method::PUT, &path);
    session.http.send(request).await?.error_for_status()?;
    Ok(())
}

async fn create(
    session: &Session<'_>,
    operation: &'static str,
    object: &str,
    body: Value,
) -> Result<String, ProviderError> {
    let response = session
        .http
        .send(
            session
                .request(
                    operation,
                    Method::POST,
                    &format!("/crm/v3/objects/{object}"),
                )
                .json(body),
        )
        .await?
        .error_for_status()?;
    Ok(response.json::<ObjectId>()?.id)
}

async fn update(
    session: &Session<'_>,
    operation: &'static str,
    object: &str,
    id: &str,
    properties: Value,
) -> Result<(), ProviderError> {
    // PATCH of a property set is idempotent: safe to retry.
    let request = session
        .request(
            operation,
            Method::PATCH,
            &format!("/crm/v3/objects/{object}/{id}"),
        )
        .json(json!({ "properties": properties }))
        .idempotency(Idempotency::Safe);
    session.http.send(request).await?.error_for_status()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_escaped_so_they_cannot_inject_html() {
        assert_eq!(
            escape_html("<b>hi</b> & \"x\"\nnext"),
            "&lt;b&gt;hi&lt;/b&gt; &amp; &quot;x&quot;<br>next"
        );
    }
}
