//! Pushing a lead into Salesforce with composite calls, so each step costs one API call:
//!
//! | lead | calls |
//! | --- | --- |
//! | first push to an org (or after the schema TTL) | + 1 (describe, cached per org) |
//! | new, with email or phone | duplicate queries on Lead and Contact (1), Lead + Task created together (1): 2 |
//! | new, no email or phone | Lead + Task: 1 |
//! | matches an existing lead | queries (1), lead update + Task (1): 2 |
//! | matches an existing contact | queries (1), contact update + Task (+ Opportunity at the conversion stage) (1): 2 |
//! | known lead, changed | lead update (+ Task update if the summary changed): 1 |
//! | reaching the conversion stage | lead update (1), SOAP `convertLead` (1), Opportunity stage (1): 3 |
//! | converted, changed | contact update + Opportunity stage (+ Task) in one composite: 1 |
//! | identical replay | none (recognised before this module is called) |
//!
//! Record kinds kept in the lead mapping: `lead`, `task`, and after conversion (or when the lead
//! matched a contact) `contact`, `account`, `opportunity`.
//!
//! Exactly once in effect: an org need not have an External ID field (only an admin can add
//! one), so no create here is idempotent by itself. Each is announced with an intent first
//! (`PushProgress::intend`), and an attempt that finds an intent without its id looks the record
//! up before creating it again (`settle_doubts`): a Lead or Opportunity by the marker line in its
//! `Description` (a long text area, which SOQL can select but not filter on:
//! <https://developer.salesforce.com/docs/atlas.en-us.238.0.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_fieldexpression.htm>),
//! a Task by the lead id in its `Subject`, a conversion by reading the Lead's `IsConverted`.

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::api::{self, Subrequest};
use super::mapping::{self, Write};
use super::schema::{self, Schema};
use super::soap;
use super::soql;
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::Lead;
use crate::provider::{deal_stage, text_digest, PushProgress, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let (schema, fresh) = schema::load(session).await?;
    match push_with(session, lead, settings, progress, &schema).await {
        // A field we described is gone or changed since: describe again and try once more.
        Err(error) if !fresh && api::is_schema_error(&error) => {
            tracing::warn!(error = %error, "Salesforce refused a field of the cached schema; describing again");
            schema::forget(session).await;
            let (schema, _) = schema::load(session).await?;
            push_with(session, lead, settings, progress, &schema).await
        }
        other => other,
    }
}

async fn push_with(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    settle_doubts(session, lead, settings, progress, schema).await?;
    if !progress.records.contains_key("contact") {
        sync_lead(session, lead, settings, progress, schema).await?;
    }
    if progress.records.contains_key("contact") {
        return sync_contact_side(session, lead, settings, progress, schema).await;
    }
    if let Some(settings) = settings.filter(|s| converts_now(lead, s)) {
        convert(session, lead, settings, progress, schema).await?;
    }
    Ok(())
}

pub(super) fn converts_now(lead: &Lead, settings: &ConnectionSettings) -> bool {
    settings
        .convert_at
        .is_some_and(|at| lead.stage.has_reached(at))
}

/// The Task change to send with a record's own change, if the summary needs one. `who` is the
/// record's id or a composite reference to it.
fn task_subrequest(
    lead: &Lead,
    who: &str,
    progress: &PushProgress,
    schema: &Schema,
) -> Option<Subrequest> {
    let description = mapping::task_description(lead)?;
    let digest = text_digest(&description);
    match progress.records.get("task") {
        Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => None,
        Some(task) => Some(Subrequest {
            method: "PATCH",
            resource: format!("/sobjects/Task/{task}"),
            reference: "task",
            body: Some(Value::Object(mapping::task_update(lead, schema)?)),
        }),
        None => Some(Subrequest {
            method: "POST",
            resource: "/sobjects/Task".into(),
            reference: "task",
            body: Some(Value::Object(mapping::task_record(
                lead,
                who,
                schema,
                Utc::now().date_naive(),
            )?)),
        }),
    }
}

/// Stores what a composite made: the ids of created records under their reference, the summary
/// digest once the Task holds it, and `stage` once the Opportunity is in it.
async fn record_results(
    lead: &Lead,
    results: Vec<api::SubResult>,
    stage: Option<String>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let mut changed = false;
    let mut created = Vec::new();
    for result in results {
        let reference = result.reference.clone();
        let body = result.into_result()?;
        if let Some(id) = body.get("id").and_then(Value::as_str) {
            created.push((reference.clone(), id.to_string()));
        }
        if reference == "task" {
            progress.summary_digest = mapping::task_description(lead).map(|d| text_digest(&d));
            changed = true;
        }
    }
    if stage.is_some() {
        progress.stage = stage;
        changed = true;
    }
    for (kind, id) in created {
        // Each `record` writes the whole progress, digest and stage included.
        progress.record(&kind, id).await?;
        changed = false;
    }
    if changed {
        progress.save().await?;
    }
    Ok(())
}

/// After a definite refusal of an all-or-none composite nothing it held was created: the
/// intents announced for it are withdrawn, so the next attempt need not look the records up.
async fn withdraw_on_refusal(
    error: &ProviderError,
    kinds: &[&str],
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let refused = matches!(
        error,
        ProviderError::Rejected { .. }
            | ProviderError::Unauthorized { .. }
            | ProviderError::Throttled { .. }
    );
    if refused {
        for kind in kinds {
            if progress.in_doubt(kind) {
                progress.forget(kind).await?;
            }
        }
    }
    Ok(())
}

/// Creates the composite's records will make are announced before it is sent.
async fn announce(
    subrequests: &[Subrequest],
    progress: &mut PushProgress,
) -> Result<Vec<&'static str>, ProviderError> {
    let mut kinds = Vec::new();
    for sub in subrequests.iter().filter(|s| s.method == "POST") {
        progress.intend(sub.reference).await?;
        kinds.push(sub.reference);
    }
    Ok(kinds)
}

/// Sends a composite whose POSTs were announced, withdrawing them when it is refused.
async fn composite_with_intents(
    session: &Session<'_>,
    operation: &'static str,
    subrequests: Vec<Subrequest>,
    progress: &mut PushProgress,
) -> Result<Vec<api::SubResult>, ProviderError> {
    let kinds = announce(&subrequests, progress).await?;
    let idempotency = if kinds.is_empty() {
        Idempotency::Safe
    } else {
        Idempotency::Unsafe
    };
    match api::composite(session, operation, true, subrequests, idempotency).await {
        Ok(results) => Ok(results),
        Err(e) => {
            withdraw_on_refusal(&e, &kinds, progress).await?;
            Err(e)
        }
    }
}

/// Resolves every create a previous attempt sent without hearing its answer: the record is
/// looked up by its marker and kept if found, or the intent is dropped so it is created anew.
async fn settle_doubts(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    if progress.in_doubt("lead") {
        match find_marked_lead(session, lead, settings, schema).await? {
            Some(record) => {
                let id = text_of(&record, "Id").ok_or_else(|| garbage("a lead without an id"))?;
                tracing::info!("the lead a lost create made was found by its marker");
                progress.record("lead", id).await?;
                if record.get("IsConverted").and_then(Value::as_bool) == Some(true) {
                    adopt_converted(&record, progress).await?;
                }
            }
            None => progress.forget("lead").await?,
        }
    }
    if progress.in_doubt("contact") {
        // A conversion whose answer was lost: the Lead says whether it happened.
        match progress.records.get("lead").cloned() {
            Some(lead_id) => {
                adopt_conversion(session, &lead_id, progress).await?;
            }
            None => progress.forget("contact").await?,
        }
    }
    if progress.in_doubt("opportunity") {
        let found = match progress.records.get("contact").cloned() {
            Some(contact) => {
                let records = query(
                    session,
                    "opportunity.find",
                    &soql::opportunities_of_contact(&contact),
                )
                .await?;
                records
                    .iter()
                    .find(|r| mapping::has_marker(r, lead))
                    .and_then(|r| text_of(r, "Id"))
            }
            None => None,
        };
        match found {
            Some(id) => {
                tracing::info!("the opportunity a lost create made was found by its marker");
                progress.record("opportunity", id).await?;
            }
            None => progress.forget("opportunity").await?,
        }
    }
    if progress.in_doubt("task") {
        let subject = mapping::task_record(lead, "", schema, Utc::now().date_naive())
            .and_then(|t| t.get("Subject").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| mapping::task_subject(lead));
        let records = query(session, "task.find", &soql::task_with_subject(&subject)).await?;
        match records.first().and_then(|r| text_of(r, "Id")) {
            Some(id) => {
                tracing::info!("the task a lost create made was found by its subject");
                // Its text is whatever that attempt sent: the digest stays unknown, so the
                // summary is written again.
                progress.record("task", id).await?;
            }
            None => progress.forget("task").await?,
        }
    }
    Ok(())
}

/// The Lead carrying the lead's marker, among those with the name, email or phone a create
/// would have sent (converted ones included: a lost create may have been converted since).
async fn find_marked_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
) -> Result<Option<Value>, ProviderError> {
    let sent = mapping::lead_record(lead, settings, schema, Write::Create);
    let Some(soql) = soql::leads_possibly_created(
        sent.get("LastName").and_then(Value::as_str),
        &lead.contact_query(),
    ) else {
        return Ok(None);
    };
    let records = query(session, "lead.find", &soql).await?;
    Ok(records.into_iter().find(|r| mapping::has_marker(r, lead)))
}

/// One SOQL query's records (`GET /query`; a marker lookup reads a few hundred at most).
async fn query(
    session: &Session<'_>,
    operation: &'static str,
    soql: &str,
) -> Result<Vec<Value>, ProviderError> {
    let mut request = session.request(operation, reqwest::Method::GET, "/query");
    request.url.query_pairs_mut().append_pair("q", soql);
    Ok(api::records(&api::read(
        api::send(session, request).await?,
    )?))
}

fn text_of(record: &Value, field: &str) -> Option<String> {
    record
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn garbage(detail: &str) -> ProviderError {
    ProviderError::Garbage {
        provider: Provider::Salesforce,
        status: 200,
        detail: detail.into(),
    }
}

/// The lead's Lead record exists and is current afterwards, or the lead turned out to be a
/// contact already (then `progress` names the contact).
async fn sync_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    if let Some(id) = progress.records.get("lead").cloned() {
        match update_lead(session, lead, settings, &id, progress, schema).await {
            Ok(()) => return Ok(()),
            // Converted since (by someone in Salesforce, or by a conversion whose answer we
            // never heard): carry on with what it became.
            Err(e) if api::has_code(&e, "CANNOT_UPDATE_CONVERTED_LEAD") => {
                return adopt_conversion(session, &id, progress).await.map(|_| ());
            }
            Err(e) if api::has_code(&e, "NOT_FOUND") || api::has_code(&e, "ENTITY_IS_DELETED") => {
                tracing::warn!("the lead we pushed before is gone from Salesforce");
                progress.forget("lead").await?;
                progress.forget("task").await?;
            }
            Err(e) => return Err(e),
        }
    }
    if lead.has_contact_details() {
        match find_existing(session, lead).await? {
            Some(Existing::Lead(id)) => {
                progress.record("lead", id.clone()).await?;
                return update_lead(session, lead, settings, &id, progress, schema).await;
            }
            Some(Existing::Contact { id, account }) => {
                if let Some(account) = account {
                    progress.record("account", account).await?;
                }
                progress.record("contact", id).await?;
                return Ok(());
            }
            None => {}
        }
    }
    create_lead(session, lead, settings, progress, schema).await
}

/// `PATCH` the Lead (and the Task, in the same composite).
async fn update_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    id: &str,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    let mut subrequests = vec![Subrequest {
        method: "PATCH",
        resource: format!("/sobjects/Lead/{id}"),
        reference: "leadUpdate",
        body: Some(Value::Object(mapping::lead_record(
            lead,
            settings,
            schema,
            Write::Update,
        ))),
    }];
    subrequests.extend(task_subrequest(lead, id, progress, schema));
    let results = composite_with_intents(session, "lead.update", subrequests, progress).await?;
    record_results(lead, results, None, progress).await
}

/// `POST` the Lead and its Task in one all-or-none composite.
async fn create_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    let mut subrequests = vec![Subrequest {
        method: "POST",
        resource: "/sobjects/Lead".into(),
        reference: "lead",
        body: Some(Value::Object(mapping::lead_record(
            lead,
            settings,
            schema,
            Write::Create,
        ))),
    }];
    subrequests.extend(task_subrequest(lead, "@{lead.id}", progress, schema));
    match composite_with_intents(session, "lead.create", subrequests, progress).await {
        Ok(results) => record_results(lead, results, None, progress).await,
        Err(e) if api::has_code(&e, "DUPLICATES_DETECTED") => {
            // The org's duplicate rule matched a record our queries did not (it matches on
            // more than email and phone): that record is the lead's.
            let (kind, id) = duplicate_match(session, lead, settings, schema, progress).await?;
            tracing::info!(
                kind,
                "the org's duplicate rule named an existing record; using it"
            );
            // The create sent alone is announced too: a lead it made is found by its marker.
            if kind == "Contact" {
                progress.forget("lead").await?;
                progress.record("contact", id).await?;
                Ok(())
            } else {
                progress.record("lead", id.clone()).await?;
                update_lead(session, lead, settings, &id, progress, schema).await
            }
        }
        Err(e) => Err(e),
    }
}

/// The record the org's duplicate rule matched: the create is sent again alone, so that the
/// rule's answer (`duplicateResut`, as Salesforce spells it) can be read in full.
async fn duplicate_match(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    schema: &Schema,
    progress: &mut PushProgress,
) -> Result<(&'static str, String), ProviderError> {
    progress.intend("lead").await?;
    let request = session
        .request("lead.create", reqwest::Method::POST, "/sobjects/Lead")
        .json(Value::Object(mapping::lead_record(
            lead,
            settings,
            schema,
            Write::Create,
        )))
        .idempotency(Idempotency::Unsafe);
    let response = api::send(session, request).await?;
    if response.is_success() {
        // The rule no longer blocks: the lead was created now.
        let body: Value = response.json()?;
        let id = body.get("id").and_then(Value::as_str).map(str::to_string);
        return id.map(|id| ("Lead", id)).ok_or(ProviderError::Garbage {
            provider: Provider::Salesforce,
            status: 201,
            detail: "a created record without an id".into(),
        });
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let errors = api::errors_in(&body);
    let matched = errors
        .iter()
        .filter_map(|e| e.duplicate_result.as_ref())
        .flat_map(|d| {
            d.get("matchResults")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|m| {
            m.get("matchRecords")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .find_map(|m| {
            let record = m.get("record")?;
            let kind = record.pointer("/attributes/type")?.as_str()?;
            let id = record.get("Id")?.as_str()?.to_string();
            match kind {
                "Lead" => Some(("Lead", id)),
                "Contact" => Some(("Contact", id)),
                _ => None,
            }
        });
    matched.ok_or_else(|| api::failure(response.status, &errors))
}

enum Existing {
    Lead(String),
    Contact { id: String, account: Option<String> },
}

/// Duplicate detection: unconverted leads and contacts with the lead's email or phone, in one
/// composite of two SOQL queries (values escaped, see `soql`). A contact wins over a lead (the
/// person is already a customer), and an email match over a phone match.
async fn find_existing(
    session: &Session<'_>,
    lead: &Lead,
) -> Result<Option<Existing>, ProviderError> {
    let query = lead.contact_query();
    let (Some(leads), Some(contacts)) = (
        soql::leads_matching(&query),
        soql::contacts_matching(&query),
    ) else {
        return Ok(None);
    };
    let subrequests = vec![
        Subrequest {
            method: "GET",
            resource: api::query_resource(&contacts),
            reference: "contacts",
            body: None,
        },
        Subrequest {
            method: "GET",
            resource: api::query_resource(&leads),
            reference: "leads",
            body: None,
        },
    ];
    let results = api::composite(
        session,
        "duplicates.query",
        false,
        subrequests,
        Idempotency::Safe,
    )
    .await?;
    let mut found = Vec::new();
    for result in results {
        let reference = result.reference.clone();
        found.push((reference, api::records(&result.into_result()?)));
    }
    let best = |records: &[Value]| -> Option<Value> {
        let email = query.email.as_deref();
        records
            .iter()
            .find(|r| {
                email.is_some_and(|e| {
                    r.get("Email")
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.eq_ignore_ascii_case(e))
                })
            })
            .or(records.first())
            .cloned()
    };
    for (reference, records) in &found {
        let Some(record) = best(records) else {
            continue;
        };
        let Some(id) = record.get("Id").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        if reference == "contacts" {
            let account = record
                .get("AccountId")
                .and_then(Value::as_str)
                .map(str::to_string);
            tracing::info!("the lead is an existing contact");
            return Ok(Some(Existing::Contact { id, account }));
        }
        tracing::info!("the lead matches an existing lead");
        return Ok(Some(Existing::Lead(id)));
    }
    Ok(None)
}

/// The lead may have been converted without us hearing of it (by someone in Salesforce, or by
/// a `convertLead` whose answer was lost): read it, and if it was, take the records it became.
/// Returns whether it was converted.
async fn adopt_conversion(
    session: &Session<'_>,
    lead_id: &str,
    progress: &mut PushProgress,
) -> Result<bool, ProviderError> {
    let mut request = session.request(
        "lead.read",
        reqwest::Method::GET,
        &format!("/sobjects/Lead/{lead_id}"),
    );
    request.url.query_pairs_mut().append_pair(
        "fields",
        "IsConverted,ConvertedContactId,ConvertedAccountId,ConvertedOpportunityId",
    );
    let record = api::read(api::send(session, request).await?)?;
    if record.get("IsConverted").and_then(Value::as_bool) == Some(false) {
        progress.forget("contact").await?;
        return Ok(false);
    }
    adopt_converted(&record, progress).await?;
    Ok(true)
}

/// Takes the records a converted Lead became. The contact is stored last: its id clears the
/// conversion's intent, so a failure before it leaves the conversion to be read again.
async fn adopt_converted(record: &Value, progress: &mut PushProgress) -> Result<(), ProviderError> {
    let contact = text_of(record, "ConvertedContactId")
        .ok_or_else(|| garbage("a converted lead names no contact"))?;
    tracing::info!("the lead was converted in Salesforce; following its contact");
    for (kind, field) in [
        ("account", "ConvertedAccountId"),
        ("opportunity", "ConvertedOpportunityId"),
    ] {
        if let Some(value) = text_of(record, field) {
            progress.record(kind, value).await?;
        }
    }
    progress.record("contact", contact).await
}

/// The Lead becomes a Contact, an Account and an Opportunity (SOAP `convertLead`; there is no
/// REST equivalent), then the Opportunity is put in the tenant's stage and pipeline. Never
/// resent once it may have reached Salesforce: a retry finds the lead converted instead.
async fn convert(
    session: &Session<'_>,
    lead: &Lead,
    settings: &ConnectionSettings,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    let lead_id = progress
        .records
        .get("lead")
        .cloned()
        .ok_or(ProviderError::Garbage {
            provider: Provider::Salesforce,
            status: 0,
            detail: "no lead to convert".into(),
        })?;
    let converted_status = schema
        .converted_status
        .as_deref()
        .ok_or(ProviderError::Rejected {
            provider: Provider::Salesforce,
            status: 0,
            code: "NO_CONVERTED_STATUS".into(),
            message: "the org has no lead status marked converted".into(),
        })?;
    let (pipeline, stage) = deal_stage(session, lead, Some(settings)).await?;
    let opportunity_name = lead.deal_name();
    let envelope = soap::convert_envelope(
        session.access_token().expose_secret(),
        &soap::Conversion {
            lead_id: &lead_id,
            converted_status,
            opportunity_name: Some(&opportunity_name),
        },
    );
    let version = session
        .api_base
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("v62.0")
        .trim_start_matches('v')
        .to_string();
    let mut request = session
        .request_on_origin(
            "lead.convert",
            reqwest::Method::POST,
            &format!("/services/Soap/u/{version}"),
        )
        .idempotency(Idempotency::Unsafe);
    // SOAP carries the session in the envelope, not in a header.
    request.headers.remove(reqwest::header::AUTHORIZATION);
    request.headers.insert(
        "soapaction",
        reqwest::header::HeaderValue::from_static("\"\""),
    );
    request.body = crate::http::Body::Raw {
        content_type: Some(reqwest::header::HeaderValue::from_static(
            "text/xml; charset=utf-8",
        )),
        bytes: envelope.into_bytes(),
    };
    // A conversion cannot be undone or sent twice: announced first, and a retry that finds the
    // intent reads the Lead instead (`settle_doubts`).
    progress.intend("contact").await?;
    let response = api::send(session, request).await?;
    let converted = soap::read_conversion(response.status, &response.body)?;
    tracing::info!("lead converted");
    if let Some(account) = converted.account_id {
        progress.record("account", account).await?;
    }
    if let Some(opportunity) = &converted.opportunity_id {
        progress.record("opportunity", opportunity.clone()).await?;
    }
    progress.record("contact", converted.contact_id).await?;
    if let Some(opportunity) = converted.opportunity_id {
        let body = mapping::opportunity_stage(&stage, &pipeline);
        let request = session
            .request(
                "opportunity.update",
                reqwest::Method::PATCH,
                &format!("/sobjects/Opportunity/{opportunity}"),
            )
            .json(Value::Object(body))
            .idempotency(Idempotency::Safe);
        api::read(api::send(session, request).await?)?;
        progress.stage = Some(stage);
        progress.save().await?;
    }
    Ok(())
}

/// After conversion (or for a lead that was a contact already): the contact is kept current,
/// the Opportunity follows the lead's stage (or is created once the lead reaches the
/// conversion stage), and the Task follows the summary — all in one composite.
async fn sync_contact_side(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
    schema: &Schema,
) -> Result<(), ProviderError> {
    let contact = progress.records["contact"].clone();
    let mut subrequests = vec![Subrequest {
        method: "PATCH",
        resource: format!("/sobjects/Contact/{contact}"),
        reference: "contactUpdate",
        body: Some(Value::Object(mapping::contact_record(lead, schema))),
    }];
    let mut new_stage = None;
    let opportunity = progress.records.get("opportunity").cloned();
    let wants_opportunity = settings.is_some_and(|s| converts_now(lead, s));
    if opportunity.is_some() || wants_opportunity {
        let (pipeline, stage) = deal_stage(session, lead, settings).await?;
        match &opportunity {
            Some(id) if progress.stage.as_deref() != Some(stage.as_str()) => {
                subrequests.push(Subrequest {
                    method: "PATCH",
                    resource: format!("/sobjects/Opportunity/{id}"),
                    reference: "opportunityUpdate",
                    body: Some(Value::Object(mapping::opportunity_stage(&stage, &pipeline))),
                });
                new_stage = Some(stage);
            }
            Some(_) => {}
            None => {
                let record = mapping::opportunity_record(
                    lead,
                    &stage,
                    &pipeline,
                    &contact,
                    progress.records.get("account").map(String::as_str),
                    schema,
                    Utc::now().date_naive(),
                );
                subrequests.push(Subrequest {
                    method: "POST",
                    resource: "/sobjects/Opportunity".into(),
                    reference: "opportunity",
                    body: Some(Value::Object(record)),
                });
                new_stage = Some(stage);
            }
        }
    }
    subrequests.extend(task_subrequest(lead, &contact, progress, schema));
    let results = composite_with_intents(session, "contact.sync", subrequests, progress).await?;
    record_results(lead, results, new_stage, progress).await
}
