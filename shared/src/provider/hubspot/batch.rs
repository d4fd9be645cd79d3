//! Many leads of one tenant pushed to HubSpot in a few batch calls (HubSpot's batch endpoints
//! take up to 100 inputs and count as one request against the ten-secondly limit):
//!
//! | step | calls for up to 100 new leads |
//! | --- | --- |
//! | contacts: batch upsert by email | 1 |
//! | the default stage's pipelines (only when a lead's stage is not mapped) | 0–1 |
//! | deals in doubt (an earlier create's answer lost): batch read by the lead-id property | 0–1 |
//! | deals: batch create, each with its deal→contact association inline | 1 |
//! | notes: batch create, each with its note→contact and note→deal associations inline | 1 |
//!
//! Exactly once, as in `push.rs`, but with one journal write per step for the whole batch:
//! every deal (and note) to create is noted as intended and the intents stored with ONE
//! [`LeadBatch::save`] before the create is sent; the ids from the answer are noted and stored
//! with the next step's intents (deal ids with the notes' intents), or by the write that
//! releases the batch's claims (note ids): claim, two saves and the release, four journal
//! transactions for a batch. A redelivery after a lost answer or a kill finds the deals again
//! by the unique lead-id property (one batch read), and the notes by their marker.
//!
//! Batch creates carry an `objectWriteTraceId` per input (the lead's index in the batch), so
//! HubSpot answers per input ("multi-status", 207): the records made, and an `errors` entry
//! naming each refused input's trace id. A refused input fails only its lead
//! ([`LeadBatch::fail`], permanent, with HubSpot's reason: e.g. a portal rule enforced from
//! 2026-09); its neighbours go on. Leads the batch path does not cover (no email, a deal or
//! note already made, a note in doubt, a lead-id clash, a whole-call refusal of their step)
//! take the one-lead path of `push.rs`, and so does a batch with a single such lead.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::provider::{
    deal_stage, is_session_error, text_digest, BatchLead, LeadBatch, PushProgress, Session,
};
use crate::store::ConnectionSettings;

use super::paths;
use super::push::{
    self, association, contact_properties, input_refusal, note_body, DEAL_TO_CONTACT,
    LEAD_ID_PROPERTY, NOTE_TO_CONTACT, NOTE_TO_DEAL,
};

/// Most inputs one HubSpot batch call takes.
pub(super) const MAX_INPUTS: usize = 100;

/// A batch answer: the records made (or read) and the per-input errors of a 207.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<BatchRecord>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchRecord {
    id: String,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    object_write_trace_id: Option<String>,
}

impl BatchRecord {
    fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
}

/// The trace ids (batch indexes) an `errors` entry names.
fn traced_inputs(error: &Value) -> Vec<usize> {
    error
        .pointer("/context/objectWriteTraceId")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .filter_map(|id| id.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// How a whole step's call went wrong for its leads.
enum StepFailure {
    /// Concerns every lead (outage, throttling, lost answer, lost token, journal): the caller
    /// stops and the batch is retried whole.
    Whole(ProviderError),
    /// The call was refused as a whole (a 4xx): its leads take the one-lead path, where each
    /// meets its own refusal alone.
    OneByOne,
}

fn step_failure(error: ProviderError) -> StepFailure {
    if error.is_retryable() || is_session_error(&error) {
        StepFailure::Whole(error)
    } else {
        tracing::warn!(error = %error, "HubSpot batch call refused; pushing its leads one by one");
        StepFailure::OneByOne
    }
}

/// After one batch step over `chunk`: the leads it handed back go one by one; a call refused as
/// a whole sends the whole chunk one by one (`false`: skip the chunk's later steps); a failure
/// concerning every lead ends the batch.
fn carry_on(
    step: Result<Vec<usize>, StepFailure>,
    chunk: &mut Vec<usize>,
    one_by_one: &mut BTreeSet<usize>,
) -> Result<bool, ProviderError> {
    match step {
        Ok(handed_back) => {
            chunk.retain(|i| !handed_back.contains(i));
            one_by_one.extend(handed_back);
            Ok(true)
        }
        Err(StepFailure::Whole(error)) => Err(error),
        Err(StepFailure::OneByOne) => {
            one_by_one.extend(chunk.drain(..));
            Ok(false)
        }
    }
}

pub(super) async fn push_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
) -> Result<(), ProviderError> {
    // Leads whose every record is still to be made, and that HubSpot can deduplicate by
    // email; the rest (and any lead a step hands back) go one by one at the end.
    let mut one_by_one: BTreeSet<usize> = BTreeSet::new();
    let mut batched = Vec::new();
    for index in batch.open() {
        let item = &batch.leads()[index];
        let fresh = !item.progress.records.contains_key("deal")
            && !item.progress.records.contains_key("note")
            && !item.progress.in_doubt("note");
        if item.lead.email.is_some() && fresh {
            batched.push(index);
        } else {
            one_by_one.insert(index);
        }
    }
    if batched.len() < 2 {
        // One lead gains nothing from batch endpoints: the one-lead path makes the same three
        // calls on the single-record endpoints.
        one_by_one.extend(batched.drain(..));
    }

    for chunk in batched.chunks(MAX_INPUTS) {
        let mut chunk: Vec<usize> = chunk.to_vec();
        let contacts = upsert_contacts(session, settings, batch, &chunk).await;
        if !carry_on(contacts, &mut chunk, &mut one_by_one)? {
            continue;
        }
        let deals = push_deals(session, settings, batch, &chunk).await;
        if !carry_on(deals, &mut chunk, &mut one_by_one)? {
            continue;
        }
        let notes = create_notes(session, batch, &chunk).await;
        carry_on(notes, &mut chunk, &mut one_by_one)?;
    }

    for index in one_by_one {
        if !batch.leads()[index].is_open() {
            continue;
        }
        let item: &mut BatchLead<'_> = batch.lead_mut(index);
        let lead = item.lead;
        if let Err(error) = push::push_lead(session, lead, settings, &mut item.progress).await {
            // As the default `push_leads`: an outage or a lost token concerns every lead, a
            // refusal of this lead's data is this lead's alone.
            if error.is_retryable() || is_session_error(&error) {
                return Err(error);
            }
            batch.fail(index, error);
        }
    }
    Ok(())
}

/// One batch upsert by email for the chunk's leads; notes each lead's contact id. Two leads
/// with one email share one input (HubSpot refuses duplicate ids in a batch). Returns the
/// leads to hand to the one-lead path (their input was refused).
async fn upsert_contacts(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
    chunk: &[usize],
) -> Result<Vec<usize>, StepFailure> {
    let mut by_email: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut inputs = Vec::new();
    for &index in chunk {
        let lead = batch.leads()[index].lead;
        let email = lead.email.clone().unwrap_or_default();
        let key = email.to_lowercase();
        let sharing = by_email.entry(key).or_default();
        if sharing.is_empty() {
            inputs.push(json!({
                "id": email,
                // Without it HubSpot would read `id` as a record id.
                "idProperty": "email",
                "properties": Value::Object(contact_properties(lead, settings)),
                "objectWriteTraceId": index.to_string(),
            }));
        }
        sharing.push(index);
    }
    let request = session
        .request(
            "contacts.batch_upsert",
            Method::POST,
            &paths::batch("contacts", "upsert"),
        )
        .json(json!({ "inputs": inputs }))
        // Keyed by email: sending it twice leaves one contact per email.
        .idempotency(Idempotency::Safe);
    let answer = send_batch(session, request).await?;
    let mut handed_back = Vec::new();
    for error in &answer.errors {
        for index in traced_inputs(error) {
            if let Some(email) = batch.leads().get(index).and_then(|l| l.lead.email.clone()) {
                handed_back.extend(by_email.remove(&email.to_lowercase()).unwrap_or_default());
            }
        }
    }
    for record in &answer.results {
        // The answer's order is not the inputs': match by trace id, else by email.
        let key = record
            .object_write_trace_id
            .as_deref()
            .and_then(|t| t.parse::<usize>().ok())
            .and_then(|i| batch.leads().get(i))
            .and_then(|l| l.lead.email.as_deref())
            .or(record.property("email"))
            .map(str::to_lowercase);
        for index in key.and_then(|k| by_email.remove(&k)).unwrap_or_default() {
            batch
                .lead_mut(index)
                .progress
                .note_record("contact", record.id.clone());
        }
    }
    // An email the answer does not account for: that lead goes one by one.
    handed_back.extend(by_email.into_values().flatten());
    Ok(handed_back)
}

/// The chunk's deals: those in doubt read back (one batch read by the lead-id property), the
/// rest created in one batch create with their contact association inline, announced by one
/// journal write and recorded by another. Returns the leads handed to the one-lead path.
async fn push_deals(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
    chunk: &[usize],
) -> Result<Vec<usize>, StepFailure> {
    let mut handed_back = Vec::new();
    let in_doubt: Vec<usize> = chunk
        .iter()
        .copied()
        .filter(|&i| batch.leads()[i].progress.in_doubt("deal"))
        .collect();
    if !in_doubt.is_empty() {
        read_back_deals(session, batch, &in_doubt).await?;
    }

    // Stages: a mapped one per lead; the default stage read once for every unmapped lead.
    let mut default_stage: Option<(String, String)> = None;
    let mut to_create = Vec::new();
    let mut to_move = Vec::new();
    for &index in chunk {
        let item = &batch.leads()[index];
        if !item.is_open() {
            continue;
        }
        let lead = item.lead;
        let mapped = settings.and_then(|s| {
            s.stage_mapping
                .get(&lead.stage)
                .map(|stage| (s.pipeline_id.clone(), stage.clone()))
        });
        if let Some(deal) = item.progress.records.get("deal").cloned() {
            // Found again: moved when the lead's mapped stage is not the one it is in.
            if let Some((_, stage)) = mapped {
                if item.progress.stage.as_ref() != Some(&stage) {
                    to_move.push((index, deal, stage));
                }
            }
            continue;
        }
        let stage = match mapped {
            Some(stage) => stage,
            None => match &default_stage {
                Some(stage) => stage.clone(),
                None => {
                    let stage = deal_stage(session, lead, settings)
                        .await
                        .map_err(step_failure)?;
                    default_stage = Some(stage.clone());
                    stage
                }
            },
        };
        to_create.push((index, stage));
    }

    for (index, deal, stage) in to_move {
        // A PATCH of the stage is idempotent; rare (only after a lost create answer).
        push::update(
            session,
            "deals.update",
            "deals",
            &deal,
            json!({ "dealstage": stage }),
        )
        .await
        .map_err(step_failure)?;
        batch.lead_mut(index).progress.stage = Some(stage);
    }
    if to_create.is_empty() {
        batch.save().await.map_err(StepFailure::Whole)?;
        return Ok(handed_back);
    }

    for (index, _) in &to_create {
        batch.lead_mut(*index).progress.note_intent("deal");
    }
    // ONE journal write: the contacts' ids and every deal's intent, before the create.
    batch.save().await.map_err(StepFailure::Whole)?;

    let mut property_made = false;
    loop {
        let inputs: Vec<Value> = to_create
            .iter()
            .map(|(index, (pipeline, stage))| {
                let item = &batch.leads()[*index];
                let contact = item.progress.records.get("contact").cloned();
                json!({
                    "properties": {
                        "dealname": item.lead.deal_name(),
                        "pipeline": pipeline,
                        "dealstage": stage,
                        LEAD_ID_PROPERTY: item.lead.id,
                    },
                    "associations": contact
                        .map(|c| vec![association(&c, DEAL_TO_CONTACT)])
                        .unwrap_or_default(),
                    "objectWriteTraceId": index.to_string(),
                })
            })
            .collect();
        let request = session
            .request(
                "deals.batch_create",
                Method::POST,
                &paths::batch("deals", "create"),
            )
            .json(json!({ "inputs": inputs }));
        let answer = send_batch(session, request).await?;
        let stages: BTreeMap<usize, String> = to_create
            .iter()
            .map(|(i, (_, stage))| (*i, stage.clone()))
            .collect();
        for record in &answer.results {
            let Some(index) = record
                .object_write_trace_id
                .as_deref()
                .and_then(|t| t.parse::<usize>().ok())
                .filter(|i| stages.contains_key(i))
            else {
                continue;
            };
            let progress = &mut batch.lead_mut(index).progress;
            progress.stage = stages.get(&index).cloned();
            progress.note_record("deal", record.id.clone());
        }
        let mut missing_property = Vec::new();
        for error in &answer.errors {
            let text = error.to_string();
            for index in traced_inputs(error) {
                if !stages.contains_key(&index) {
                    continue;
                }
                if text.contains(LEAD_ID_PROPERTY) && text.contains("PROPERTY_DOESNT_EXIST") {
                    missing_property.push(index);
                } else if text.contains(LEAD_ID_PROPERTY) && text.contains("already has that value")
                {
                    // Another tenant on this portal used the same lead id: the one-lead path
                    // creates this deal without it. This input made nothing, so its intent
                    // goes first (else the lookup would adopt the other tenant's deal).
                    batch
                        .lead_mut(index)
                        .progress
                        .forget("deal")
                        .await
                        .map_err(StepFailure::Whole)?;
                    handed_back.push(index);
                } else if let Some(refusal) = input_refusal(session.provider, 400, error) {
                    batch.fail(index, refusal);
                }
            }
        }
        if missing_property.is_empty() {
            // The new deal ids are stored with the notes' intents (or by the releasing write):
            // a push killed before that finds these deals again by their intents.
            break;
        }
        // ONE journal write: every new deal id, before the deals are sent again.
        batch.save().await.map_err(StepFailure::Whole)?;
        // The portal's first push: define the unique lead-id property, then send those
        // inputs once more. Not allowed to define it: those leads go one by one (created
        // without it).
        if property_made
            || !push::create_lead_id_property(session, "deals")
                .await
                .map_err(step_failure)?
        {
            for index in missing_property {
                batch
                    .lead_mut(index)
                    .progress
                    .forget("deal")
                    .await
                    .map_err(StepFailure::Whole)?;
                handed_back.push(index);
            }
            break;
        }
        property_made = true;
        to_create.retain(|(i, _)| missing_property.contains(i));
    }
    // A lead the answer neither made nor refused (its error not traced to it): the one-lead
    // path settles it (its intent makes it read back first), rather than it passing unmade.
    for &index in chunk {
        let item = &batch.leads()[index];
        if item.is_open()
            && !item.progress.records.contains_key("deal")
            && !handed_back.contains(&index)
        {
            handed_back.push(index);
        }
    }
    Ok(handed_back)
}

/// Deals whose create answer was lost, read back in one batch read by the lead-id property
/// (a read by a unique property: strongly consistent, unlike search). Found ones are noted
/// with the stage they are in; the others stay to be created.
async fn read_back_deals(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    in_doubt: &[usize],
) -> Result<(), StepFailure> {
    let by_lead: BTreeMap<String, usize> = in_doubt
        .iter()
        .map(|&i| (batch.leads()[i].lead.id.clone(), i))
        .collect();
    let inputs: Vec<Value> = by_lead.keys().map(|id| json!({ "id": id })).collect();
    let request = session
        .request(
            "deals.batch_read_by_lead_id",
            Method::POST,
            &paths::batch("deals", "read"),
        )
        .json(json!({
            "idProperty": LEAD_ID_PROPERTY,
            "properties": ["dealstage", LEAD_ID_PROPERTY],
            "inputs": inputs,
        }))
        // A read: safe to send again.
        .idempotency(Idempotency::Safe);
    let answer = match send_batch(session, request).await {
        Ok(answer) => answer,
        // The portal has no lead-id property yet: no deal can carry a lead id.
        Err(StepFailure::OneByOne) => return Ok(()),
        Err(whole) => return Err(whole),
    };
    for record in answer.results {
        let Some(&index) = record
            .property(LEAD_ID_PROPERTY)
            .and_then(|id| by_lead.get(id))
        else {
            continue;
        };
        let progress: &mut PushProgress = &mut batch.lead_mut(index).progress;
        progress.stage = record.property("dealstage").map(str::to_string);
        progress.note_record("deal", record.id.clone());
    }
    Ok(())
}

/// The chunk's notes in one batch create, each with its contact and deal associations inline
/// and the lead's marker at the end of its body, announced and recorded by one journal write
/// each. Returns the leads handed to the one-lead path.
async fn create_notes(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    chunk: &[usize],
) -> Result<Vec<usize>, StepFailure> {
    let mut bodies: BTreeMap<usize, String> = BTreeMap::new();
    let mut inputs = Vec::new();
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for &index in chunk {
        let item = &batch.leads()[index];
        if !item.is_open() || item.progress.records.contains_key("note") {
            continue;
        }
        let Some(body) = note_body(item.lead) else {
            continue;
        };
        let mut associations = Vec::new();
        if let Some(contact) = item.progress.records.get("contact") {
            associations.push(association(contact, NOTE_TO_CONTACT));
        }
        if let Some(deal) = item.progress.records.get("deal") {
            associations.push(association(deal, NOTE_TO_DEAL));
        }
        inputs.push(json!({
            "properties": { "hs_note_body": body, "hs_timestamp": timestamp },
            "associations": associations,
            "objectWriteTraceId": index.to_string(),
        }));
        bodies.insert(index, body);
    }
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    for index in bodies.keys() {
        batch.lead_mut(*index).progress.note_intent("note");
    }
    batch.save().await.map_err(StepFailure::Whole)?;
    let request = session
        .request(
            "notes.batch_create",
            Method::POST,
            &paths::batch("notes", "create"),
        )
        .json(json!({ "inputs": inputs }));
    let answer = send_batch(session, request).await?;
    for record in answer.results {
        let Some(index) = record
            .object_write_trace_id
            .as_deref()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|i| bodies.contains_key(i))
        else {
            continue;
        };
        let progress = &mut batch.lead_mut(index).progress;
        progress.summary_digest = Some(text_digest(&bodies[&index]));
        progress.note_record("note", record.id);
    }
    for error in &answer.errors {
        for index in traced_inputs(error) {
            if bodies.contains_key(&index) {
                if let Some(refusal) = input_refusal(session.provider, 400, error) {
                    batch.fail(index, refusal);
                }
            }
        }
    }
    // The note ids are stored by the releasing write, which follows at once: a push killed
    // before it finds these notes again by their marker (their intents are stored).
    // A note the answer neither made nor refused: the one-lead path finds it by its marker or
    // makes it.
    Ok(bodies
        .keys()
        .copied()
        .filter(|&i| {
            let item = &batch.leads()[i];
            item.is_open() && !item.progress.records.contains_key("note")
        })
        .collect())
}

/// Sends one batch call: its answer (200, 201, or 207 with per-input errors), or how the
/// whole call failed.
async fn send_batch(
    session: &Session<'_>,
    request: crate::http::OutboundRequest,
) -> Result<BatchAnswer, StepFailure> {
    let response = session.http.send(request).await.map_err(step_failure)?;
    let response = push::refused(response).map_err(step_failure)?;
    response.json::<BatchAnswer>().map_err(step_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_status_error_names_its_inputs_by_trace_id() {
        let answer: BatchAnswer = serde_json::from_value(json!({
            "status": "COMPLETE",
            "results": [{ "id": "1", "properties": {}, "objectWriteTraceId": "0" }],
            "numErrors": 1,
            "errors": [{
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": "Property values were not valid",
                "context": { "objectWriteTraceId": ["3"] },
                "errors": [{ "code": "MISSING_REQUIRED_PROPERTY", "message": "A value for amount must be provided" }]
            }]
        }))
        .unwrap();
        assert_eq!(
            answer.results[0].object_write_trace_id.as_deref(),
            Some("0")
        );
        assert_eq!(traced_inputs(&answer.errors[0]), vec![3]);
        let refusal = input_refusal(crate::registry::Provider::Hubspot, 400, &answer.errors[0]);
        assert!(matches!(
            refusal,
            Some(ProviderError::Rejected { ref code, .. }) if code == "MISSING_REQUIRED_PROPERTY"
        ));
    }
}
