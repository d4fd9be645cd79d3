//! Many leads of one tenant pushed to Salesforce in a few calls, with sObject Collections
//! (`POST|PATCH /composite/sobjects`: up to 200 records per call, one call against the org's
//! allocation, `allOrNone: false` so a refused record fails only its own lead):
//!
//! | step | calls |
//! | --- | --- |
//! | leads whose Lead or Task create was lost: candidates of all of them | 1 composite of SOQL `IN (…)` queries |
//! | new leads with email or phone: existing Leads and Contacts of all of them | 1 composite of SOQL `IN (…)` queries |
//! | new leads: Leads created | 1 per 200 |
//! | known leads: Leads updated | 1 per 200 |
//! | Tasks created, Tasks updated | 1 per 200 each |
//!
//! Ten new leads with email cost 3 calls instead of 20. A step that would hold a single lead
//! (and a batch of one) leaves it to the one-lead path, whose composite costs fewer calls.
//!
//! Exactly once as in `push`: the org need not have an External ID field, so a Lead or Task
//! create is not idempotent; its intent is noted on every lead of the call and stored with one
//! [`LeadBatch::save`] before it is sent, the ids are stored with one more after the answer,
//! and a lead whose create answer was lost is found again by its marker (Lead `Description`,
//! Task `Subject`).
//!
//! What a batch does not cover goes lead by lead through `push::push_lead`: a lead that is a
//! Contact (or converted), one reaching the conversion stage (SOAP `convertLead` takes one lead),
//! a conversion or Opportunity in doubt, a record the org's duplicate rule matched, a field the
//! cached schema got wrong, and a lead whose email or phone an earlier lead of the batch shares
//! (it must find that lead's Lead, as it would pushed alone).

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::api::{self, Subrequest};
use super::mapping::{self, Write};
use super::push;
use super::schema::{self, Schema};
use super::soql;
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::Lead;
use crate::provider::{copy_error, is_session_error, text_digest, LeadBatch, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// Most records one sObject Collections call takes.
pub(super) const COLLECTION_LIMIT: usize = 200;
/// Leads per lookup query: a query travels in its subrequest's URL, which must stay short.
const LOOKUP_CHUNK: usize = 50;
/// Most subrequests in one composite.
const COMPOSITE_LIMIT: usize = 25;

/// Pushes the open leads of `batch`; see the module documentation.
pub(super) async fn push_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
) -> Result<(), ProviderError> {
    let open = batch.open();
    if open.len() < 2 {
        // One lead costs fewer calls alone (its Lead and Task in one composite).
        return one_by_one(session, batch, settings, open.into_iter().collect()).await;
    }
    let (schema, fresh) = schema::load(session).await?;
    let mut plan = Plan {
        fresh_schema: fresh,
        ..Plan::default()
    };
    settle_doubts(session, batch, settings, &schema, &mut plan).await?;
    sort(batch, settings, &mut plan);
    match_existing(session, batch, &mut plan).await?;
    // The matched records' ids are stored before the next call.
    batch.save().await?;
    write_leads(session, batch, settings, &schema, &mut plan).await?;
    sync_tasks(session, batch, &schema, &mut plan).await?;
    if plan.schema_stale {
        schema::forget(session).await;
    }
    one_by_one(session, batch, settings, plan.single).await
}

/// Which step takes each open lead.
#[derive(Default)]
struct Plan {
    /// The schema was described for this batch (a schema error is then final).
    fresh_schema: bool,
    /// A cached field was refused: the schema is dropped and the leads it failed pushed alone.
    schema_stale: bool,
    creates: Vec<usize>,
    updates: Vec<usize>,
    /// Leads whose Lead was created or updated by this batch: their Task follows.
    written: Vec<usize>,
    /// Leads left to the one-at-a-time path.
    single: BTreeSet<usize>,
}

fn lead_of<'a>(batch: &LeadBatch<'a>, index: usize) -> &'a Lead {
    batch.leads()[index].lead
}

fn text_of(record: &Value, field: &str) -> Option<String> {
    record
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Runs SOQL queries as subrequests of as few composites as they fit in (25 each): each
/// query's records, and whether all of them came back (an answer at the lookup limit, or one
/// with more pages, may have been cut).
async fn run_queries(
    session: &Session<'_>,
    operation: &'static str,
    queries: Vec<String>,
) -> Result<(Vec<Value>, bool), ProviderError> {
    const REFERENCES: [&str; COMPOSITE_LIMIT] = [
        "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13",
        "q14", "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22", "q23", "q24",
    ];
    let mut records = Vec::new();
    let mut complete = true;
    for chunk in queries.chunks(COMPOSITE_LIMIT) {
        let subrequests = chunk
            .iter()
            .zip(REFERENCES)
            .map(|(soql, reference)| Subrequest {
                method: "GET",
                resource: api::query_resource(soql),
                reference,
                body: None,
            })
            .collect();
        let results =
            api::composite(session, operation, false, subrequests, Idempotency::Safe).await?;
        for result in results {
            let answer = result.into_result()?;
            let found = api::records(&answer);
            if found.len() >= soql::BATCH_LOOKUP_LIMIT
                || answer.get("done").and_then(Value::as_bool) == Some(false)
            {
                complete = false;
            }
            records.extend(found);
        }
    }
    Ok((records, complete))
}

/// Resolves the Lead and Task creates earlier attempts sent without hearing the answer, for
/// every lead of the batch at once: one composite of `IN (…)` queries, markers compared here.
/// Found records are kept; an intent nothing was found for is dropped (the record is created
/// anew), unless the answer may have been cut (that lead then looks itself up alone).
async fn settle_doubts(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
    plan: &mut Plan,
) -> Result<(), ProviderError> {
    let open = batch.open();
    let lead_doubts: Vec<usize> = open
        .iter()
        .copied()
        .filter(|&i| batch.leads()[i].progress.in_doubt("lead"))
        .collect();
    let task_doubts: Vec<usize> = open
        .iter()
        .copied()
        .filter(|&i| batch.leads()[i].progress.in_doubt("task"))
        .collect();
    let in_doubt: BTreeSet<usize> = lead_doubts.iter().chain(&task_doubts).copied().collect();
    if in_doubt.len() < 2 {
        // A lead alone looks itself up as cheaply.
        plan.single.extend(in_doubt);
        return Ok(());
    }
    let today = Utc::now().date_naive();
    // What each create was sent with: the Lead's last name, email and phone, the Task's subject.
    let sent_lead = |i: usize| {
        let lead = lead_of(batch, i);
        let record = mapping::lead_record(lead, settings, schema, Write::Create);
        let query = lead.contact_query();
        let last_name = record
            .get("LastName")
            .and_then(Value::as_str)
            .map(str::to_string);
        (last_name, query.email, query.phone)
    };
    let subject = |i: usize| {
        let lead = lead_of(batch, i);
        mapping::task_record(lead, "", schema, today)
            .and_then(|t| text_of(&Value::Object(t), "Subject"))
            .unwrap_or_else(|| mapping::task_subject(lead))
    };
    let mut lead_queries = Vec::new();
    for chunk in lead_doubts.chunks(LOOKUP_CHUNK) {
        let sent: Vec<_> = chunk.iter().map(|&i| sent_lead(i)).collect();
        let names: Vec<&str> = sent.iter().filter_map(|s| s.0.as_deref()).collect();
        let emails: Vec<&str> = sent.iter().filter_map(|s| s.1.as_deref()).collect();
        let phones: Vec<&str> = sent.iter().filter_map(|s| s.2.as_deref()).collect();
        lead_queries.extend(soql::leads_possibly_created_any(&names, &emails, &phones));
    }
    let subjects: Vec<String> = task_doubts.iter().map(|&i| subject(i)).collect();
    let task_queries: Vec<String> = subjects
        .chunks(LOOKUP_CHUNK)
        .filter_map(|chunk| {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            soql::tasks_with_subjects(&chunk)
        })
        .collect();
    let mut queries = lead_queries;
    queries.extend(task_queries);
    // One call for the leads' and the tasks' lookups together.
    let (records, complete) = run_queries(session, "batch.doubts", queries).await?;
    let (leads_found, tasks_found): (Vec<Value>, Vec<Value>) = records
        .into_iter()
        .partition(|r| r.pointer("/attributes/type").and_then(Value::as_str) != Some("Task"));
    for &i in &lead_doubts {
        let lead = lead_of(batch, i);
        let found = leads_found.iter().find(|r| mapping::has_marker(r, lead));
        let progress = &mut batch.lead_mut(i).progress;
        match found.and_then(|r| Some((r, text_of(r, "Id")?))) {
            Some((record, id)) => {
                tracing::info!("the lead a lost batch create made was found by its marker");
                progress.note_record("lead", id);
                if record.get("IsConverted").and_then(Value::as_bool) == Some(true) {
                    // Converted since: follow what it became (the contact last, as in `push`).
                    for (kind, field) in [
                        ("account", "ConvertedAccountId"),
                        ("opportunity", "ConvertedOpportunityId"),
                        ("contact", "ConvertedContactId"),
                    ] {
                        if let Some(value) = text_of(record, field) {
                            progress.note_record(kind, value);
                        }
                    }
                }
            }
            None if complete => progress.note_forget("lead"),
            None => {
                plan.single.insert(i);
            }
        }
    }
    for (&i, subject) in task_doubts.iter().zip(&subjects) {
        let found = tasks_found
            .iter()
            .find(|t| text_of(t, "Subject").as_deref() == Some(subject.as_str()))
            .and_then(|t| text_of(t, "Id"));
        let progress = &mut batch.lead_mut(i).progress;
        match found {
            Some(id) => {
                tracing::info!("the task a lost batch create made was found by its subject");
                // Its text is whatever that attempt sent: the digest stays unknown.
                progress.note_record("task", id);
            }
            None if complete => progress.note_forget("task"),
            None => {
                plan.single.insert(i);
            }
        }
    }
    batch.save().await
}

/// New leads to create, known leads to update, the rest one by one.
fn sort(batch: &LeadBatch<'_>, settings: Option<&ConnectionSettings>, plan: &mut Plan) {
    for index in batch.open() {
        if plan.single.contains(&index) {
            continue;
        }
        let item = &batch.leads()[index];
        let progress = item.progress.snapshot();
        let converting = settings.is_some_and(|s| push::converts_now(item.lead, s));
        if converting || !progress.intents.is_empty() || progress.records.contains_key("contact") {
            plan.single.insert(index);
        } else if progress.records.contains_key("lead") {
            plan.updates.push(index);
        } else if progress.records.is_empty() {
            plan.creates.push(index);
        } else {
            plan.single.insert(index);
        }
    }
    // A step for one lead costs more calls than that lead pushed alone.
    for step in [&mut plan.creates, &mut plan.updates] {
        if step.len() < 2 {
            plan.single.extend(step.drain(..));
        }
    }
}

/// Duplicate detection for the new leads, all at once: the unconverted Leads and the Contacts
/// with their emails or phones (one composite). Per lead, as `push` decides it alone: a Contact
/// wins over a Lead, an email match over a phone match, the oldest over newer ones. A lead
/// sharing an email or phone with an earlier new lead of the batch waits to be pushed alone,
/// after that one's Lead exists, so the two become one Lead as they would one after the other.
async fn match_existing(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    plan: &mut Plan,
) -> Result<(), ProviderError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut creates = Vec::new();
    for &i in &plan.creates {
        let query = lead_of(batch, i).contact_query();
        let keys: Vec<String> = query
            .email
            .iter()
            .map(|e| format!("e:{}", e.to_lowercase()))
            .chain(query.phone.iter().map(|p| format!("p:{p}")))
            .collect();
        if keys.iter().any(|k| seen.contains(k)) {
            plan.single.insert(i);
        } else {
            seen.extend(keys);
            creates.push(i);
        }
    }
    plan.creates = creates;
    let with_details: Vec<usize> = plan
        .creates
        .iter()
        .copied()
        .filter(|&i| lead_of(batch, i).has_contact_details())
        .collect();
    if with_details.is_empty() {
        return Ok(());
    }
    let mut queries = Vec::new();
    for chunk in with_details.chunks(LOOKUP_CHUNK) {
        let details: Vec<_> = chunk
            .iter()
            .map(|&i| lead_of(batch, i).contact_query())
            .collect();
        let emails: Vec<&str> = details.iter().filter_map(|q| q.email.as_deref()).collect();
        let phones: Vec<&str> = details.iter().filter_map(|q| q.phone.as_deref()).collect();
        queries.extend(soql::contacts_matching_any(&emails, &phones));
        queries.extend(soql::leads_matching_any(&emails, &phones));
    }
    let (records, complete) = run_queries(session, "batch.duplicates", queries).await?;
    if !complete {
        // Too many matches to tell them apart here: each of these leads looks itself up.
        plan.single.extend(with_details.iter().copied());
        plan.creates.retain(|i| !with_details.contains(i));
        return Ok(());
    }
    let (contacts, leads): (Vec<Value>, Vec<Value>) = records
        .into_iter()
        .partition(|r| r.pointer("/attributes/type").and_then(Value::as_str) == Some("Contact"));
    for &i in &with_details {
        let query = lead_of(batch, i).contact_query();
        let matches = |r: &&Value| {
            let email = query
                .email
                .as_deref()
                .is_some_and(|e| text_of(r, "Email").is_some_and(|v| v.eq_ignore_ascii_case(e)));
            let phone = query
                .phone
                .as_deref()
                .is_some_and(|p| text_of(r, "Phone").as_deref() == Some(p));
            email || phone
        };
        // Records come oldest first: the first email match, else the first match.
        let best = |records: &[Value]| -> Option<Value> {
            let matching: Vec<&Value> = records.iter().filter(matches).collect();
            matching
                .iter()
                .find(|r| {
                    query.email.as_deref().is_some_and(|e| {
                        text_of(r, "Email").is_some_and(|v| v.eq_ignore_ascii_case(e))
                    })
                })
                .or(matching.first())
                .map(|r| (*r).clone())
        };
        let progress = &mut batch.lead_mut(i).progress;
        if let Some(contact) = best(&contacts).and_then(|c| Some((text_of(&c, "Id")?, c))) {
            tracing::info!("the lead is an existing contact");
            if let Some(account) = text_of(&contact.1, "AccountId") {
                progress.note_record("account", account);
            }
            progress.note_record("contact", contact.0);
            plan.single.insert(i);
            plan.creates.retain(|&c| c != i);
        } else if let Some(id) = best(&leads).and_then(|l| text_of(&l, "Id")) {
            tracing::info!("the lead matches an existing lead");
            progress.note_record("lead", id);
            plan.updates.push(i);
            plan.creates.retain(|&c| c != i);
        }
    }
    Ok(())
}

/// One sObject Collections call: `records` (each with its `attributes.type`) created (`POST`)
/// or updated (`PATCH`, by `id`), `allOrNone: false`. One result per record, in order: `Ok(id)`
/// or the error that record stands for.
async fn collections(
    session: &Session<'_>,
    operation: &'static str,
    method: reqwest::Method,
    records: Vec<Value>,
) -> Result<Vec<Result<Option<String>, ProviderError>>, ProviderError> {
    let count = records.len();
    let idempotency = if method == reqwest::Method::POST {
        Idempotency::Unsafe
    } else {
        Idempotency::Safe
    };
    let request = session
        .request(operation, method, "/composite/sobjects")
        .json(json!({ "allOrNone": false, "records": records }))
        .idempotency(idempotency);
    let answer = api::read(api::send(session, request).await?)?;
    let results = answer
        .as_array()
        .filter(|results| results.len() == count)
        .ok_or(ProviderError::Garbage {
            provider: Provider::Salesforce,
            status: 200,
            detail: "the collections answer has another number of results".into(),
        })?;
    Ok(results
        .iter()
        .map(|result| {
            let id = text_of(result, "id");
            if result.get("success").and_then(Value::as_bool) == Some(true) {
                Ok(id)
            } else {
                let errors = api::errors_in(result.get("errors").unwrap_or(&Value::Null));
                Err(api::failure(400, &errors))
            }
        })
        .collect())
}

/// A record for a collections call: its fields with the object's type.
fn typed(object: &str, id: Option<&str>, fields: Map<String, Value>) -> Value {
    let mut record = Map::new();
    record.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        record.insert("id".into(), json!(id));
    }
    record.extend(fields);
    Value::Object(record)
}

/// Whether a whole call's refusal proves that none of its records was written.
fn refused(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Rejected { .. }
            | ProviderError::Unauthorized { .. }
            | ProviderError::Throttled { .. }
    )
}

/// What a record refused inside a batch means for its lead: pushed alone (the org's duplicate
/// rule matched a record, or the cached schema is out of date), or failed.
fn refused_record(batch: &mut LeadBatch<'_>, plan: &mut Plan, index: usize, error: ProviderError) {
    if api::has_code(&error, "DUPLICATES_DETECTED") {
        // The single path sends it alone to read which record the rule matched.
        plan.single.insert(index);
    } else if api::is_schema_error(&error) && !plan.fresh_schema {
        plan.schema_stale = true;
        plan.single.insert(index);
    } else {
        tracing::warn!(error = %error, "Salesforce refused one lead of a batch");
        batch.fail(index, error);
    }
}

/// What the batch writes with collections: Leads or Tasks.
struct Object {
    /// Its key in a lead's progress.
    kind: &'static str,
    create: &'static str,
    update: &'static str,
    /// Update refusals meaning the record is gone (converted or deleted): the single path
    /// follows or recreates it.
    gone: &'static [&'static str],
}

const LEADS: Object = Object {
    kind: "lead",
    create: "leads.create",
    update: "leads.update",
    // Collections name a missing id INVALID_CROSS_REFERENCE_KEY.
    gone: &[
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "ENTITY_IS_DELETED",
        "NOT_FOUND",
        "INVALID_CROSS_REFERENCE_KEY",
    ],
};

const TASKS: Object = Object {
    kind: "task",
    create: "tasks.create",
    update: "tasks.update",
    gone: &[],
};

/// One lead's record for a collections call.
struct Pending {
    index: usize,
    record: Value,
    /// The Task description's digest, noted on the lead once the record is written.
    digest: Option<String>,
}

/// Creates one record per pending lead, 200 per call, each call's intents stored before it is
/// sent. Returns the leads whose record was created.
async fn create_records(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    plan: &mut Plan,
    object: &Object,
    pending: Vec<Pending>,
) -> Result<Vec<usize>, ProviderError> {
    let mut written = Vec::new();
    for chunk in pending.chunks(COLLECTION_LIMIT) {
        for p in chunk {
            batch.lead_mut(p.index).progress.note_intent(object.kind);
        }
        batch.save().await?;
        let records = chunk.iter().map(|p| p.record.clone()).collect();
        let results =
            match collections(session, object.create, reqwest::Method::POST, records).await {
                Ok(results) => results,
                Err(error) => {
                    if refused(&error) {
                        // Nothing was created: the next attempt need not look anything up.
                        for p in chunk {
                            batch.lead_mut(p.index).progress.note_forget(object.kind);
                        }
                        batch.save().await?;
                    }
                    return Err(error);
                }
            };
        for (p, result) in chunk.iter().zip(results) {
            match result {
                Ok(Some(id)) => {
                    let progress = &mut batch.lead_mut(p.index).progress;
                    progress.note_record(object.kind, id);
                    if let Some(digest) = &p.digest {
                        progress.summary_digest = Some(digest.clone());
                    }
                    written.push(p.index);
                }
                // Created, but we cannot tell which record: the intent stays for a lookup.
                Ok(None) => batch.fail(
                    p.index,
                    ProviderError::Garbage {
                        provider: Provider::Salesforce,
                        status: 200,
                        detail: "a created record without an id".into(),
                    },
                ),
                Err(error) => {
                    // A refused record was not created.
                    batch.lead_mut(p.index).progress.note_forget(object.kind);
                    refused_record(batch, plan, p.index, error);
                }
            }
        }
        batch.save().await?;
    }
    Ok(written)
}

/// Updates one record per pending lead (by the `id` in its record), 200 per call (a `PATCH`
/// is safe to send again). Returns the leads whose record was updated.
async fn update_records(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    plan: &mut Plan,
    object: &Object,
    pending: Vec<Pending>,
) -> Result<Vec<usize>, ProviderError> {
    let mut written = Vec::new();
    for chunk in pending.chunks(COLLECTION_LIMIT) {
        let records = chunk.iter().map(|p| p.record.clone()).collect();
        let results = collections(session, object.update, reqwest::Method::PATCH, records).await?;
        for (p, result) in chunk.iter().zip(results) {
            match result {
                Ok(_) => {
                    if let Some(digest) = &p.digest {
                        batch.lead_mut(p.index).progress.summary_digest = Some(digest.clone());
                    }
                    written.push(p.index);
                }
                Err(error) if object.gone.iter().any(|code| api::has_code(&error, code)) => {
                    plan.single.insert(p.index);
                }
                Err(error) => refused_record(batch, plan, p.index, error),
            }
        }
        // Stores the digests noted (a no-op for Leads, whose progress an update leaves alone).
        batch.save().await?;
    }
    Ok(written)
}

/// The Lead record of the lead at `index`, for a create or (by the Lead's id) an update.
fn lead_pending(
    batch: &LeadBatch<'_>,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
    index: usize,
    write: Write,
) -> Pending {
    let item = &batch.leads()[index];
    let id = match write {
        Write::Create => None,
        Write::Update => item.progress.records.get("lead").map(String::as_str),
    };
    let fields = mapping::lead_record(item.lead, settings, schema, write);
    Pending {
        index,
        record: typed("Lead", id, fields),
        digest: None,
    }
}

/// Creates the new leads' Leads, then updates the known leads' Leads.
async fn write_leads(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
    plan: &mut Plan,
) -> Result<(), ProviderError> {
    let creates = std::mem::take(&mut plan.creates)
        .into_iter()
        .map(|index| lead_pending(batch, settings, schema, index, Write::Create))
        .collect();
    let created = create_records(session, batch, plan, &LEADS, creates).await?;
    plan.written.extend(created);
    let mut updates = std::mem::take(&mut plan.updates);
    // One record per call at most once: a second lead on the same Lead goes alone, after.
    let mut ids = BTreeSet::new();
    updates.retain(|&i| {
        let id = batch.leads()[i].progress.records.get("lead").cloned();
        let first = id.is_some_and(|id| ids.insert(id));
        if !first {
            plan.single.insert(i);
        }
        first
    });
    let updates = updates
        .into_iter()
        .map(|index| lead_pending(batch, settings, schema, index, Write::Update))
        .collect();
    let updated = update_records(session, batch, plan, &LEADS, updates).await?;
    plan.written.extend(updated);
    Ok(())
}

/// The Tasks of the leads whose Lead this batch wrote: created where there is none (intents
/// stored first), updated where the summary changed.
async fn sync_tasks(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    schema: &Schema,
    plan: &mut Plan,
) -> Result<(), ProviderError> {
    let today = Utc::now().date_naive();
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for &index in &plan.written {
        let item = &batch.leads()[index];
        let Some(description) = mapping::task_description(item.lead) else {
            continue;
        };
        let digest = Some(text_digest(&description));
        let progress = &item.progress;
        match progress.records.get("task") {
            Some(_) if progress.summary_digest == digest => {}
            Some(task) => {
                if let Some(fields) = mapping::task_update(item.lead, schema) {
                    let record = typed("Task", Some(task), fields);
                    updates.push(Pending {
                        index,
                        record,
                        digest,
                    });
                }
            }
            None => {
                let Some(lead_id) = progress.records.get("lead") else {
                    continue;
                };
                if let Some(fields) = mapping::task_record(item.lead, lead_id, schema, today) {
                    let record = typed("Task", None, fields);
                    creates.push(Pending {
                        index,
                        record,
                        digest,
                    });
                }
            }
        }
    }
    create_records(session, batch, plan, &TASKS, creates).await?;
    update_records(session, batch, plan, &TASKS, updates).await?;
    Ok(())
}

/// The leads no batch step took, pushed one after the other as `push_lead` does. An outage or
/// throttle stops the run and fails the leads not yet pushed (the batch's finished leads keep
/// their success); a lost session fails the whole call, for the caller to refresh.
async fn one_by_one(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    settings: Option<&ConnectionSettings>,
    single: BTreeSet<usize>,
) -> Result<(), ProviderError> {
    let mut stopped: Option<ProviderError> = None;
    for index in single {
        if !batch.leads()[index].is_open() {
            continue;
        }
        if let Some(error) = &stopped {
            batch.fail(index, copy_error(error));
            continue;
        }
        let item = batch.lead_mut(index);
        let lead = item.lead;
        match push::push_lead(session, lead, settings, &mut item.progress).await {
            Ok(()) => {}
            Err(error) if is_session_error(&error) => return Err(error),
            Err(error) if error.is_retryable() => {
                stopped = Some(copy_error(&error));
                batch.fail(index, error);
            }
            Err(error) => batch.fail(index, error),
        }
    }
    Ok(())
}
