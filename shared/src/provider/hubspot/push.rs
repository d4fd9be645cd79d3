//! Pushing a lead into HubSpot with as few calls as the API allows:
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | contacts batch upsert by email, deal create (contact association inline), note create (contact and deal associations inline): 3 |
//! | new, phone only | contact search by phone, contact create or update, deal, note: 4 |
//! | known, changed | contact update by id, deal stage update if the stage changed, note update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |
//!
//! Shapes from HubSpot's object specs (`CRM/{Contacts,Deals,Notes}/Rollouts/424/v3`), unchanged on
//! the date-based paths ([`super::paths`]). Many leads at once: `batch.rs`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ProviderError;
use crate::http::{HttpResponse, Idempotency};
use crate::lead::{truncate_chars, Lead};
use crate::provider::{
    deal_stage, person_fields, text_digest, PersonFields, ProgressSnapshot, PushProgress, Session,
};
use crate::store::ConnectionSettings;

use super::paths;

/// Association type ids, HUBSPOT_DEFINED: deal→contact 3, note→contact 202, note→deal 214.
pub(super) const DEAL_TO_CONTACT: u32 = 3;
pub(super) const NOTE_TO_CONTACT: u32 = 202;
pub(super) const NOTE_TO_DEAL: u32 = 214;
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

pub(super) fn association(to: &str, type_id: u32) -> Value {
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
    let contact = sync_contact_with(session, lead, settings, Some(progress)).await?;
    if progress.records.get("contact") != Some(&contact) {
        // The contact we knew was deleted in HubSpot (and forgotten) and has been found or
        // created again: the lead's deal and note move onto it. Its id is recorded only after
        // these PUTs, which are idempotent, so a push killed in between does them again; the
        // contact is found again by email, by the lead id it carries, or by phone.
        for (kind, object) in [("deal", "deals"), ("note", "notes")] {
            if let Some(id) = progress.records.get(kind) {
                associate_default(session, object, id, &contact).await?;
            }
        }
    }
    progress.record("contact", contact.clone()).await?;

    push_deal(session, lead, settings, &contact, progress).await?;

    if let Some(body) = note_body(lead) {
        push_note(session, lead, &body, &contact, progress).await?;
    }
    Ok(())
}

/// The lead's deal: created once (announced by an intent, carrying the lead id in the unique
/// [`LEAD_ID_PROPERTY`]), found again by that id when a create's answer was lost, then moved
/// when the tenant's mapped stage changes.
async fn push_deal(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    contact: &str,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    if !progress.records.contains_key("deal") && progress.in_doubt("deal") {
        if let Some(found) = read_by_lead_id(session, "deals", &lead.id, "dealstage").await? {
            // The stage it was created in; the update below moves it if the lead's differs.
            progress.stage = found.property;
            progress.record("deal", found.id).await?;
        }
    }
    match progress.records.get("deal").cloned() {
        None => {
            let (pipeline, stage) = deal_stage(session, lead, settings).await?;
            let body = json!({
                "properties": {
                    "dealname": lead.deal_name(),
                    "pipeline": pipeline,
                    "dealstage": stage,
                },
                "associations": [association(contact, DEAL_TO_CONTACT)]
            });
            let retry = progress.in_doubt("deal");
            progress.intend("deal").await?;
            let deal =
                create_with_lead_id(session, "deals.create", "deals", lead, retry, body).await?;
            progress.stage = Some(stage);
            progress.record("deal", deal).await?;
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
                progress.save().await?;
            }
        }
    }
    Ok(())
}

/// The lead's note: created once (announced by an intent, its body carrying the lead's marker),
/// found again among the deal's notes when a create's answer was lost, then rewritten when the
/// summary changes.
async fn push_note(
    session: &Session<'_>,
    lead: &Lead,
    body: &str,
    contact: &str,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let digest = text_digest(body);
    let deal = progress.records.get("deal").cloned();
    if !progress.records.contains_key("note") && progress.in_doubt("note") {
        if let Some(deal) = deal.as_deref() {
            if let Some((note, found_body)) = find_marked_note(session, deal, lead).await? {
                progress.summary_digest = Some(text_digest(&found_body));
                progress.record("note", note).await?;
            }
        }
    }
    match progress.records.get("note").cloned() {
        None => {
            progress.intend("note").await?;
            let note = create_note(session, body, contact, deal.as_deref()).await?;
            progress.summary_digest = Some(digest);
            progress.record("note", note).await?;
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
            progress.summary_digest = Some(digest);
            progress.save().await?;
        }
        Some(_) => {}
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
pub(super) fn contact_properties(
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
) -> Map<String, Value> {
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
    let mut snapshot = ProgressSnapshot::default();
    if let Some(id) = known_id {
        snapshot.records.insert("contact".into(), id.to_string());
    }
    let mut progress = PushProgress::resumed(snapshot);
    sync_contact_with(session, lead, None, Some(&mut progress)).await
}

async fn sync_contact_with(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: Option<&mut PushProgress>,
) -> Result<String, ProviderError> {
    let mut scratch = PushProgress::default();
    let progress = progress.unwrap_or(&mut scratch);
    let properties = Value::Object(contact_properties(lead, settings));
    if let Some(id) = progress.records.get("contact").cloned() {
        match update(
            session,
            "contacts.update",
            "contacts",
            &id,
            properties.clone(),
        )
        .await
        {
            Ok(()) => return Ok(id),
            // Deleted in HubSpot since: find or create it again below.
            Err(ProviderError::Rejected { status: 404, .. }) => progress.forget("contact").await?,
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
                        &paths::batch("contacts", "upsert"),
                    )
                    .json(body)
                    // Keyed by email: sending it twice leaves one contact.
                    .idempotency(Idempotency::Safe),
            )
            .await?;
        let response = refused(response)?;
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
    // Without an email HubSpot cannot deduplicate the create: the contact carries the lead id
    // in the unique LEAD_ID_PROPERTY, and after a create whose answer was lost it is read back
    // by that id (a read by unique property, not the lagging search index).
    if progress.in_doubt("contact") {
        if let Some(found) = read_by_lead_id(session, "contacts", &lead.id, "phone").await? {
            update(
                session,
                "contacts.update",
                "contacts",
                &found.id,
                properties,
            )
            .await?;
            return Ok(found.id);
        }
    }
    if let Some(phone) = &lead.phone {
        if let Some(id) = search_by(session, "phone", phone).await? {
            update(session, "contacts.update", "contacts", &id, properties).await?;
            return Ok(id);
        }
    }
    let retry = progress.in_doubt("contact");
    progress.intend("contact").await?;
    create_with_lead_id(
        session,
        "contacts.create",
        "contacts",
        lead,
        retry,
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
                .request("contacts.search", Method::POST, &paths::search("contacts"))
                .json(body)
                .idempotency(Idempotency::Safe),
        )
        .await?
        .error_for_status()?;
    let results: SearchResults = response.json()?;
    Ok(results.results.into_iter().next().map(|o| o.id))
}

pub(super) async fn create_note(
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
/// (HubSpot renders note bodies as HTML) and cut to HubSpot's limit, ending with the lead's
/// marker (kept whole by the cut), by which a note whose create answer was lost is found again.
pub(super) fn note_body(lead: &Lead) -> Option<String> {
    let summary = lead.summary.as_deref()?;
    let marker = note_marker(lead);
    let text = format!(
        "<p><strong>LeadRelay conversation summary</strong></p><p>{}</p><p>{}</p>",
        escape_html(summary),
        escape_html(&lead.summary_facts())
    );
    let room = NOTE_BODY_LIMIT - marker.chars().count();
    Some(truncate_chars(&text, room) + &marker)
}

/// A visible footer rather than an HTML comment: HubSpot sanitizes note HTML, and a footer is
/// sure to be stored as sent. Lead ids are letters, digits and `._:-`, nothing HTML-special.
fn note_marker(lead: &Lead) -> String {
    format!(
        "<p><small>LeadRelay lead {}</small></p>",
        escape_html(&lead.id)
    )
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "<br>")
}

/// Links a record to a contact with HubSpot's default (unlabeled) association type:
/// `PUT /crm/objects/{version}/{type}/{id}/associations/default/contacts/{contact}` (checked:
/// HubSpot's date-based "associate records" reference). A PUT of an existing association is a no-op, so it is safe to retry.
async fn associate_default(
    session: &Session<'_>,
    object: &str,
    id: &str,
    contact: &str,
) -> Result<(), ProviderError> {
    let path = paths::default_association(object, id, "contacts", contact);
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
                .request(operation, Method::POST, &paths::objects(object))
                .json(body),
        )
        .await?;
    Ok(refused(response)?.json::<ObjectId>()?.id)
}

pub(super) async fn update(
    session: &Session<'_>,
    operation: &'static str,
    object: &str,
    id: &str,
    properties: Value,
) -> Result<(), ProviderError> {
    // PATCH of a property set is idempotent: safe to retry.
    let request = session
        .request(operation, Method::PATCH, &paths::object(object, id))
        .json(json!({ "properties": properties }))
        .idempotency(Idempotency::Safe);
    refused(session.http.send(request).await?)?;
    Ok(())
}

/// The deal and contact property holding the LeadRelay lead id, unique per portal
/// (`hasUniqueValue`), so a record whose create answer was lost can be read back by it:
/// `GET /crm/objects/{version}/{type}/{leadId}?idProperty=leadrelay_lead_id` (reads by a unique
/// property are documented in
/// https://developers.hubspot.com/changelog/updating-objects-by-custom-field-and-adding-owner-properties-via-the-api
/// and, unlike search, do not go through the lagging search index).
pub(super) const LEAD_ID_PROPERTY: &str = "leadrelay_lead_id";

/// A record read back by its lead id, with one property asked for.
struct Found {
    id: String,
    property: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ObjectWithProperties {
    pub(super) id: String,
    #[serde(default)]
    pub(super) properties: Map<String, Value>,
}

/// The record of `object` carrying `lead_id` in [`LEAD_ID_PROPERTY`], if any.
async fn read_by_lead_id(
    session: &Session<'_>,
    object: &str,
    lead_id: &str,
    property: &str,
) -> Result<Option<Found>, ProviderError> {
    let mut request = session.request(
        "objects.read_by_lead_id",
        Method::GET,
        &paths::object(object, lead_id),
    );
    request
        .url
        .query_pairs_mut()
        .append_pair("idProperty", LEAD_ID_PROPERTY)
        .append_pair("properties", property);
    let response = session.http.send(request).await?;
    if response.status == 404 {
        return Ok(None);
    }
    match response.error_for_status() {
        Ok(response) => {
            let found: ObjectWithProperties = response.json()?;
            Ok(Some(Found {
                id: found.id,
                property: found
                    .properties
                    .get(property)
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }))
        }
        // The portal has no such property yet: no record can carry the lead id.
        Err(ProviderError::Rejected {
            status: 400,
            message,
            ..
        }) if message.contains(LEAD_ID_PROPERTY) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates a record of `object` from `body` with the lead id in [`LEAD_ID_PROPERTY`]. The first
/// create in a portal finds the property missing: it is created (unique) and the create sent
/// once more. On a `retry` (an earlier create's answer is unknown), a create refused because the
/// lead id is taken is answered by reading that record back.
async fn create_with_lead_id(
    session: &Session<'_>,
    operation: &'static str,
    object: &str,
    lead: &Lead,
    retry: bool,
    mut body: Value,
) -> Result<String, ProviderError> {
    body["properties"][LEAD_ID_PROPERTY] = json!(lead.id);
    let mut property_created = false;
    loop {
        let refusal = match create(session, operation, object, body.clone()).await {
            Err(ProviderError::Rejected {
                provider,
                status: 400,
                code,
                message,
            }) if message.contains(LEAD_ID_PROPERTY) => (provider, code, message),
            other => return other,
        };
        let (provider, code, message) = refusal;
        // HubSpot's wording for a taken unique value is "... already has that value"; for a
        // property the portal does not have, PROPERTY_DOESNT_EXIST.
        if message.contains("already has that value") {
            if !retry {
                // A first attempt meets a record this lead's mapping never made: another
                // LeadRelay tenant connected to the same portal pushed a lead with the same id
                // (lead ids are unique per tenant only). Keep the tenants apart: create it
                // without the lead id (it cannot be looked up after a lost answer).
                if let Some(properties) = body["properties"].as_object_mut() {
                    properties.remove(LEAD_ID_PROPERTY);
                }
                return create(session, operation, object, body).await;
            }
            if let Some(found) = read_by_lead_id(session, object, &lead.id, "hs_object_id").await? {
                return Ok(found.id);
            }
        } else if message.contains("PROPERTY_DOESNT_EXIST") && !property_created {
            property_created = true;
            if create_lead_id_property(session, object).await? {
                continue;
            }
            // Not allowed to define it: create without it (no lookup after a lost answer).
            if let Some(properties) = body["properties"].as_object_mut() {
                properties.remove(LEAD_ID_PROPERTY);
            }
            return create(session, operation, object, body).await;
        }
        return Err(ProviderError::Rejected {
            provider,
            status: 400,
            code,
            message,
        });
    }
}

/// Defines [`LEAD_ID_PROPERTY`] on `object` as a unique single-line text property:
/// `POST /crm/properties/{version}/{object}` (body fields required by HubSpot: `name`, `label`, `type`,
/// `fieldType`, `groupName`; https://developers.hubspot.com/docs/api-reference/legacy/crm/properties/create-property).
/// A 409 means it exists already (another push made it first). `false` when the app may not
/// define properties (403: the `crm.schemas.<object>.write` scope is missing).
pub(super) async fn create_lead_id_property(
    session: &Session<'_>,
    object: &str,
) -> Result<bool, ProviderError> {
    let group = if object == "contacts" {
        "contactinformation"
    } else {
        "dealinformation"
    };
    let body = json!({
        "name": LEAD_ID_PROPERTY,
        "label": "LeadRelay lead id",
        "description": "Set by LeadRelay: the lead this record was made for. Do not edit.",
        "type": "string",
        "fieldType": "text",
        "groupName": group,
        "hasUniqueValue": true,
        "formField": false,
    });
    let request = session
        .request(
            "properties.create",
            Method::POST,
            &paths::properties(object),
        )
        .json(body)
        // Keyed by name: a second create is a 409, which is handled below.
        .idempotency(Idempotency::Safe);
    let response = session.http.send(request).await?;
    match response.status {
        409 => Ok(true),
        403 => Ok(false),
        _ => response.error_for_status().map(|_| true),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociatedIds {
    #[serde(default)]
    results: Vec<AssociatedId>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociatedId {
    to_object_id: Value,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    after: String,
}

#[derive(Deserialize)]
struct NoteBodies {
    #[serde(default)]
    results: Vec<ObjectWithProperties>,
}

/// The deal's note carrying the lead's marker, with its body: the deal's note associations
/// (`GET /crm/objects/{version}/deals/{id}/associations/notes`, pages of up to 500), then their bodies
/// (`POST /crm/objects/{version}/notes/batch/read`, 100 ids a call).
async fn find_marked_note(
    session: &Session<'_>,
    deal: &str,
    lead: &Lead,
) -> Result<Option<(String, String)>, ProviderError> {
    let marker = note_marker(lead);
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut request = session.request(
            "notes.associated",
            Method::GET,
            &paths::associations("deals", deal, "notes"),
        );
        request.url.query_pairs_mut().append_pair("limit", "500");
        if let Some(after) = &after {
            request.url.query_pairs_mut().append_pair("after", after);
        }
        let page: AssociatedIds = session
            .http
            .send(request)
            .await?
            .error_for_status()?
            .json()?;
        ids.extend(
            page.results
                .into_iter()
                .filter_map(|a| match a.to_object_id {
                    Value::Number(n) => Some(n.to_string()),
                    Value::String(s) => Some(s),
                    _ => None,
                }),
        );
        match page.paging.and_then(|p| p.next) {
            Some(next) => after = Some(next.after),
            None => break,
        }
    }
    for chunk in ids.chunks(100) {
        let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
        let request = session
            .request(
                "notes.batch_read",
                Method::POST,
                &paths::batch("notes", "read"),
            )
            .json(json!({ "properties": ["hs_note_body"], "inputs": inputs }))
            // A read: safe to send again.
            .idempotency(Idempotency::Safe);
        let notes: NoteBodies = session
            .http
            .send(request)
            .await?
            .error_for_status()?
            .json()?;
        for note in notes.results {
            if let Some(body) = note.properties.get("hs_note_body").and_then(Value::as_str) {
                if body.contains(&marker) {
                    return Ok(Some((note.id, body.to_string())));
                }
            }
        }
    }
    Ok(None)
}

/// A write's answer, or its refusal with HubSpot's reason. From 2026-09 HubSpot enforces the
/// portal's own rules on API writes (properties required on the Create Record form,
/// conditionally required properties, the user's Edit Associations permission): a 400
/// `VALIDATION_ERROR` whose `errors[].code` (`MISSING_REQUIRED_PROPERTY`,
/// `MISSING_CONDITIONAL_REQUIRED_PROPERTY`) and `errors[].message` name the rule. The refusal
/// keeps that code and message (permanent for the lead: the same data is refused again).
pub(super) fn refused(response: HttpResponse) -> Result<HttpResponse, ProviderError> {
    if response.is_success() {
        return Ok(response);
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    match input_refusal(response.provider, response.status, &body) {
        Some(error) if response.status == 400 && is_portal_rule(&error) => Err(error),
        // Anything else as before (the callers match HubSpot's top-level wording).
        _ => response.error_for_status(),
    }
}

/// The codes of HubSpot's 2026-09 write validation (and its permission refusal, which comes
/// without a code).
pub(super) fn is_portal_rule(error: &ProviderError) -> bool {
    match error {
        ProviderError::Rejected { code, message, .. } => {
            matches!(
                code.as_str(),
                "MISSING_REQUIRED_PROPERTY" | "MISSING_CONDITIONAL_REQUIRED_PROPERTY"
            ) || message.contains("Edit Associations")
        }
        _ => false,
    }
}

/// The refusal an error body (a whole answer's, or one entry of a batch answer's `errors`)
/// states through its first detailed error: `errors[0].code` and `errors[0].message`, else
/// the body's own `category` and `message`. `None` when the body states neither.
pub(super) fn input_refusal(
    provider: crate::registry::Provider,
    status: u16,
    body: &Value,
) -> Option<ProviderError> {
    let detail = body
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|errors| errors.first());
    let text = |value: Option<&Value>, key: &str| {
        value
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let code = text(detail, "code").or_else(|| text(Some(body), "category"))?;
    let message = text(detail, "message")
        .or_else(|| text(Some(body), "message"))
        .unwrap_or_default();
    Some(ProviderError::Rejected {
        provider,
        status,
        code,
        // HubSpot's reason, cut short: it goes to logs and to the lead's outcome.
        message: message.chars().take(300).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_rule_refusal_keeps_hubspots_code_and_reason() {
        let body = json!({
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid",
            "errors": [{
                "code": "MISSING_CONDITIONAL_REQUIRED_PROPERTY",
                "message": "closedate is required because of a conditional property rule based on [dealstage]",
                "context": { "propertyName": ["closedate"] }
            }]
        });
        let error = input_refusal(crate::registry::Provider::Hubspot, 400, &body).unwrap();
        assert!(!error.is_retryable());
        match error {
            ProviderError::Rejected { code, message, .. } => {
                assert_eq!(code, "MISSING_CONDITIONAL_REQUIRED_PROPERTY");
                assert!(message.contains("closedate is required"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn summaries_are_escaped_so_they_cannot_inject_html() {
        assert_eq!(
            escape_html("<b>hi</b> & \"x\"\nnext"),
            "&lt;b&gt;hi&lt;/b&gt; &amp; &quot;x&quot;<br>next"
        );
    }
}
