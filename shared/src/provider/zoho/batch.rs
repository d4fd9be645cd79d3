//! Pushing many leads of one tenant into Zoho CRM with its multi-record APIs:
//!
//! | step | call | leads a call |
//! | --- | --- | --- |
//! | new leads | `POST /crm/v8/Leads/upsert` (duplicate check on Email, then Phone) | up to 100 |
//! | known, unconverted leads | `PUT /crm/v8/Leads` (each record names its id) | up to 100 |
//! | conversion (tenants converting at a reached stage) | `POST /Leads/{id}/actions/convert` | 1 (Zoho converts one lead a call) |
//! | notes of those leads: new ones, then changed ones | `POST /crm/v8/Notes`, `PUT /crm/v8/Notes` | up to 100 |
//!
//! So 10 new leads cost 2 calls (and 2 API credits) instead of 20, and 10 known leads whose
//! summary changed 2 instead of 20. Leads the batch path does not cover (converted, nameless or
//! in doubt, see [`batched`]) go through the one-lead push of `push.rs`, which already knows how
//! to resume each of them.
//!
//! Exactly once (see [`crate::provider::batch`]): a create Zoho cannot deduplicate (a lead
//! without email or phone, every note) is noted as an intent on each lead of the call and all
//! of them are stored with one [`LeadBatch::save`] before the call; the ids of the answer are
//! noted and stored with one more save before the next call. A record Zoho refuses inside a
//! multi-record answer (`data[i].status == "error"`) fails that lead alone.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use super::envelope::{self, RecordResult};
use super::push::{self, DUPLICATE_CHECK_FIELDS, TRIGGERS};
use super::{mapping, API};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{Lead, LeadWarning};
use crate::provider::{is_session_error, text_digest, BatchLead, LeadBatch, Session};
use crate::store::ConnectionSettings;

/// Most records one insert, upsert or notes call may carry (Zoho answers `LIMIT_EXCEEDED`
/// beyond).
pub(super) const MAX_RECORDS: usize = 100;

pub(super) async fn push_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
) -> Result<(), ProviderError> {
    let (mine, mut others): (Vec<usize>, Vec<usize>) = batch
        .open()
        .into_iter()
        .partition(|&i| batched(&batch.leads()[i]));
    let (known, new): (Vec<usize>, Vec<usize>) = mine
        .iter()
        .partition(|&&i| batch.leads()[i].progress.records.contains_key("lead"));
    upsert_leads(session, settings, batch, &new).await?;
    // A known lead found gone from Zoho's leads is found or made again one by one.
    let gone = update_leads(session, settings, batch, &known).await?;
    let mine: Vec<usize> = mine.into_iter().filter(|i| !gone.contains(i)).collect();
    others.extend(gone);
    for &index in &mine {
        let item = batch.lead_mut(index);
        let Some(id) = item.progress.records.get("lead").cloned() else {
            continue;
        };
        if !item.is_open() {
            continue;
        }
        let lead = item.lead;
        let converted =
            push::convert_if_due(session, lead, settings, &id, &mut item.progress).await;
        one_lead(batch, index, converted)?;
    }
    create_notes(session, batch, &mine).await?;
    update_notes(session, batch, &mine).await?;
    for index in others {
        let item = batch.lead_mut(index);
        let lead = item.lead;
        let pushed = push::push_lead(session, lead, settings, &mut item.progress).await;
        one_lead(batch, index, pushed)?;
    }
    Ok(())
}

/// A lead the batch calls can push: a known unconverted lead with no note in doubt (updated by
/// id), or a new one with nothing to look up first (upserted). A converted lead, a nameless lead
/// with email or phone (searched first, so its placeholder name never overwrites a real one)
/// and a lead left in doubt go one by one.
fn batched(item: &BatchLead<'_>) -> bool {
    let progress = &item.progress;
    let lead = item.lead;
    if progress.records.contains_key("contact")
        || progress.in_doubt("contact")
        || progress.in_doubt("note")
    {
        return false;
    }
    if progress.records.contains_key("lead") {
        return true;
    }
    if lead.has_contact_details() {
        !lead.warnings.contains(&LeadWarning::NameMissing)
    } else {
        !progress.in_doubt("lead")
    }
}

/// The result of one lead's own step: a refusal of its data fails it alone; a lost token or
/// an outage concerns every lead and ends the batch.
fn one_lead(
    batch: &mut LeadBatch<'_>,
    index: usize,
    result: Result<(), ProviderError>,
) -> Result<(), ProviderError> {
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.is_retryable() || is_session_error(&error) => Err(error),
        Err(error) => {
            batch.fail(index, error);
            Ok(())
        }
    }
}

/// The email (lower-cased) and phone a record is matched on by the duplicate check.
fn duplicate_keys(lead: &Lead) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(email) = &lead.email {
        keys.push(format!("email:{}", email.to_lowercase()));
    }
    if let Some(phone) = &lead.phone {
        keys.push(format!("phone:{phone}"));
    }
    keys
}

/// Splits `indexes` into calls of at most [`MAX_RECORDS`], never two leads with the same
/// email or phone in one call: Zoho does not say how a call matches records against each
/// other, and one after the other the second updates the lead the first made, as the
/// one-lead push does.
fn upsert_calls(batch: &LeadBatch<'_>, indexes: &[usize]) -> Vec<Vec<usize>> {
    let mut pending: Vec<usize> = indexes.to_vec();
    let mut calls = Vec::new();
    while !pending.is_empty() {
        let mut call = Vec::new();
        let mut keys = BTreeSet::new();
        let mut later = Vec::new();
        for index in pending {
            let lead_keys = duplicate_keys(batch.leads()[index].lead);
            if call.len() == MAX_RECORDS || lead_keys.iter().any(|k| keys.contains(k)) {
                later.push(index);
                continue;
            }
            keys.extend(lead_keys);
            call.push(index);
        }
        calls.push(call);
        pending = later;
    }
    calls
}

/// `POST /Leads/upsert` with many records: a lead with email or phone is found again by
/// Zoho's duplicate check, so sending it twice leaves one lead; a lead with neither carries its
/// marker in `Description` and goes under an intent, as in the one-lead push.
async fn upsert_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
    new: &[usize],
) -> Result<(), ProviderError> {
    for call in upsert_calls(batch, new) {
        let mut records = Vec::with_capacity(call.len());
        let mut deduplicated = true;
        for &index in &call {
            let item = batch.lead_mut(index);
            let mut record = mapping::lead_record(item.lead, settings, true);
            if !item.lead.has_contact_details() {
                record.insert("Description".into(), json!(mapping::lead_marker(item.lead)));
                item.progress.note_intent("lead");
                deduplicated = false;
            }
            records.push(Value::Object(record));
        }
        // One write for every intent of the call, before it is sent.
        batch.save().await?;
        let body = json!({
            "data": records,
            "duplicate_check_fields": DUPLICATE_CHECK_FIELDS,
            "trigger": TRIGGERS,
        });
        let idempotency = if deduplicated {
            Idempotency::Safe
        } else {
            Idempotency::Unsafe
        };
        let request = session
            .request("leads.upsert", Method::POST, &format!("{API}/Leads/upsert"))
            .json(body)
            .idempotency(idempotency);
        let results = envelope::many_records(session.http.send(request).await?, call.len())?;
        note_results(batch, &call, results, |item, record| {
            item.progress.note_record("lead", push::record_id(record)?);
            Ok(())
        });
        // The ids of the call, in one write, before the next call.
        batch.save().await?;
        tracing::info!(leads = call.len(), "leads upserted in one call");
    }
    Ok(())
}

/// `PUT /Leads` with many records, each naming the id stored for it (fields present overwrite,
/// absent ones stay; safe to resend). Returns the leads Zoho no longer has as unconverted leads
/// (`INVALID_DATA id`: deleted, or converted by hand), for the one-lead push to find or make
/// again.
async fn update_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
    known: &[usize],
) -> Result<Vec<usize>, ProviderError> {
    let mut gone = Vec::new();
    for call in known.chunks(MAX_RECORDS) {
        let records: Vec<Value> = call
            .iter()
            .map(|&index| {
                let item = &batch.leads()[index];
                let mut record = mapping::lead_record(item.lead, settings, false);
                record.insert("id".into(), json!(item.progress.records["lead"]));
                Value::Object(record)
            })
            .collect();
        let request = session
            .request("leads.update", Method::PUT, &format!("{API}/Leads"))
            .json(json!({ "data": records, "trigger": TRIGGERS }))
            .idempotency(Idempotency::Safe);
        let results = envelope::many_records(session.http.send(request).await?, call.len())?;
        for (&index, result) in call.iter().zip(results) {
            match result {
                Ok(_) => {}
                Err(ProviderError::Rejected { code, .. }) if code == "INVALID_DATA id" => {
                    tracing::warn!("a lead we pushed before is gone from Zoho's leads");
                    gone.push(index);
                }
                Err(error) => batch.fail(index, error),
            }
        }
        tracing::info!(leads = call.len(), "leads updated in one call");
    }
    Ok(gone)
}

/// `PUT /Notes` with many notes: each lead whose note holds an older summary gets the current
/// one (notes take no `trigger`). The digests are stored in one write after the call.
async fn update_notes(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    leads: &[usize],
) -> Result<(), ProviderError> {
    let mut changed = Vec::new();
    for &index in leads {
        let item = &batch.leads()[index];
        let (true, Some(note)) = (item.is_open(), item.progress.records.get("note")) else {
            continue;
        };
        let Some(content) = mapping::note_content(item.lead) else {
            continue;
        };
        let digest = text_digest(&content);
        if item.progress.summary_digest.as_deref() != Some(digest.as_str()) {
            changed.push((index, note.clone(), content));
        }
    }
    for call in changed.chunks(MAX_RECORDS) {
        let notes: Vec<Value> = call
            .iter()
            .map(|(_, id, content)| json!({"id": id, "Note_Content": content}))
            .collect();
        let request = session
            .request("notes.update", Method::PUT, &format!("{API}/Notes"))
            .json(json!({ "data": notes }))
            .idempotency(Idempotency::Safe);
        let results = envelope::many_records(session.http.send(request).await?, call.len())?;
        let indexes: Vec<usize> = call.iter().map(|(index, ..)| *index).collect();
        note_results(batch, &indexes, results, |item, _| {
            let content = mapping::note_content(item.lead).unwrap_or_default();
            item.progress.summary_digest = Some(text_digest(&content));
            Ok(())
        });
        batch.save().await?;
        tracing::info!(notes = call.len(), "notes updated in one call");
    }
    Ok(())
}

/// Notes each record result on its lead: `apply` for a success, the record's error (or a
/// success without an id) fails that lead alone.
fn note_results(
    batch: &mut LeadBatch<'_>,
    call: &[usize],
    results: Vec<Result<RecordResult, ProviderError>>,
    apply: impl Fn(&mut BatchLead<'_>, &RecordResult) -> Result<(), ProviderError>,
) {
    for (&index, result) in call.iter().zip(results) {
        let outcome = result.and_then(|record| apply(batch.lead_mut(index), &record));
        if let Err(error) = outcome {
            tracing::warn!(%error, "Zoho refused one record of a multi-record call");
            batch.fail(index, error);
        }
    }
}

/// `POST /Notes` with many notes: each new lead's summary on its lead (or, once converted, on
/// its contact). Notes have no upsert: every note of the call goes under an intent, which a
/// later delivery resolves by listing the parent's notes (`push.rs`, `find_note`).
async fn create_notes(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    new: &[usize],
) -> Result<(), ProviderError> {
    let mut wanted = Vec::new();
    for &index in new {
        let item = &batch.leads()[index];
        if !item.is_open() || item.progress.records.contains_key("note") {
            continue;
        }
        let parent = match (
            item.progress.records.get("contact"),
            item.progress.records.get("lead"),
        ) {
            (Some(contact), _) => ("Contacts", contact.clone()),
            (None, Some(lead)) => ("Leads", lead.clone()),
            (None, None) => continue,
        };
        if let Some(content) = mapping::note_content(item.lead) {
            wanted.push((index, parent, content));
        }
    }
    for call in wanted.chunks(MAX_RECORDS) {
        let mut notes = Vec::with_capacity(call.len());
        for (index, (module, parent), content) in call {
            batch.lead_mut(*index).progress.note_intent("note");
            notes.push(json!({
                "Note_Title": "LeadRelay conversation summary",
                "Note_Content": content,
                "Parent_Id": { "module": { "api_name": module }, "id": parent },
            }));
        }
        batch.save().await?;
        let request = session
            .request("notes.create", Method::POST, &format!("{API}/Notes"))
            .json(json!({ "data": notes }));
        let results = envelope::many_records(session.http.send(request).await?, call.len())?;
        let indexes: Vec<usize> = call.iter().map(|(index, _, _)| *index).collect();
        note_results(batch, &indexes, results, |item, record| {
            let id = push::record_id(record)?;
            // The note holds this lead's current summary: its digest goes with the id.
            let content = mapping::note_content(item.lead).unwrap_or_default();
            item.progress.summary_digest = Some(text_digest(&content));
            item.progress.note_record("note", id);
            Ok(())
        });
        batch.save().await?;
        tracing::info!(notes = call.len(), "notes created in one call");
    }
    Ok(())
}
