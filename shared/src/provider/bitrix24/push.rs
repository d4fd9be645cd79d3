//! Pushing a lead into Bitrix24: a contact (found by email or phone first), a deal in the
//! tenant's category and stage, and the summary as a timeline comment on the deal.
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | findbycomm (email), contact add, deal add, comment add: 4 (+1 phone search when the email finds nothing and there is a phone) |
//! | new, matching a contact | findbycomm, contact update, deal add, comment add: 4 |
//! | known, changed | contact update, deal stage update if the mapped stage changed, comment update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |
//!
//! Bitrix24 appends a phone or email sent without its value id, so an update never sends them:
//! a known contact keeps the values it has. A deal carries the lead's id (`ORIGIN_ID`), so a
//! retry after a create whose answer was lost finds it (`crm.deal.list`, one call, only then)
//! instead of creating a second one.

use serde_json::{json, Map, Value};

use super::api::{call, id_of, id_value};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{truncate_chars, ContactField, Lead};
use crate::provider::{
    deal_stage, person_fields, text_digest, CrmProvider, PersonFields, Pipeline, PipelineStage,
    PushProgress, Session,
};
use crate::store::ConnectionSettings;

const NAMES: PersonFields = PersonFields {
    last_name: "LAST_NAME",
    first_name: "NAME",
    email: "EMAIL",
    phone: "PHONE",
};

/// Bitrix24's deals: CRM entity type 2 in `crm.category.list`.
const DEAL_ENTITY_TYPE: u8 = 2;

/// What the deals this relay creates say in `ORIGINATOR_ID`.
const ORIGINATOR: &str = "leadrelay";

/// Marks, in the lead's mapping, a deal create whose answer has not come back yet.
const DEAL_SENT: &str = "deal_sent";

/// A timeline comment is a text field; kept well under what the portal stores.
const COMMENT_MAX_CHARS: usize = 10_000;

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let known = progress.records.get("contact").cloned();
    let contact = sync_contact(session, lead, known.as_deref()).await?;
    progress.records.insert("contact".into(), contact.clone());

    // A create sent before whose answer never came: the deal may exist. Found by the id it
    // carries, it is used instead of being created twice.
    if progress.records.contains_key(DEAL_SENT) && !progress.records.contains_key("deal") {
        if let Some(found) = deal_of_lead(session, lead).await? {
            progress.records.insert("deal".into(), found);
            progress.stage = None;
        }
    }
    progress.records.remove(DEAL_SENT);

    let deal = match progress.records.get("deal").cloned() {
        None => {
            let (category, stage) = deal_stage(session, lead, settings).await?;
            let mut fields = json!({
                "TITLE": lead.deal_name(),
                "CATEGORY_ID": id_value(&category),
                "STAGE_ID": stage,
                "CONTACT_ID": id_value(&contact),
                "OPENED": "Y",
                // Bitrix24's fields for linking a record to its external source.
                "ORIGINATOR_ID": ORIGINATOR,
                "ORIGIN_ID": lead.id,
            });
            if let Some(source) = &lead.source {
                fields["SOURCE_DESCRIPTION"] = source.clone().into();
            }
            let params = json!({ "fields": fields, "params": { "REGISTER_SONET_EVENT": "N" } });
            // Kept with the lead's mapping whatever happens next, so a retry after a lost
            // answer looks for the deal before creating one.
            progress.records.insert(DEAL_SENT.into(), "1".into());
            let result = call(
                session,
                "deals.create",
                "crm.deal.add",
                params,
                Idempotency::Unsafe,
            )
            .await?;
            progress.records.remove(DEAL_SENT);
            let deal = id_of(&result, "deal")?;
            progress.records.insert("deal".into(), deal.clone());
            progress.stage = Some(stage);
            deal
        }
        Some(deal) => {
            let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
            if let Some(stage) = mapped.filter(|s| progress.stage.as_ref() != Some(s)) {
                let params = json!({ "id": id_value(&deal), "fields": { "STAGE_ID": stage } });
                call(
                    session,
                    "deals.update",
                    "crm.deal.update",
                    params,
                    Idempotency::Safe,
                )
                .await?;
                progress.stage = Some(stage);
            }
            deal
        }
    };

    if let Some(text) = comment(lead) {
        let digest = text_digest(&text);
        match progress.records.get("comment").cloned() {
            Some(_) if progress.summary_digest.as_deref() == Some(digest.as_str()) => {}
            Some(comment) => {
                let params = json!({ "id": id_value(&comment), "fields": { "COMMENT": text } });
                call(
                    session,
                    "comments.update",
                    "crm.timeline.comment.update",
                    params,
                    Idempotency::Safe,
                )
                .await?;
            }
            None => {
                let params = json!({ "fields": {
                    "ENTITY_ID": id_value(&deal),
                    "ENTITY_TYPE": "deal",
                    "COMMENT": text,
                }});
                let result = call(
                    session,
                    "comments.create",
                    "crm.timeline.comment.add",
                    params,
                    Idempotency::Unsafe,
                )
                .await?;
                progress
                    .records
                    .insert("comment".into(), id_of(&result, "comment")?);
            }
        }
        progress.summary_digest = Some(digest);
    }
    Ok(())
}

/// The deal this relay created for `lead` (by `ORIGINATOR_ID` and `ORIGIN_ID`), if any.
async fn deal_of_lead(session: &Session<'_>, lead: &Lead) -> Result<Option<String>, ProviderError> {
    let params = json!({
        "filter": { "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": lead.id },
        "select": ["ID"],
    });
    let result = call(
        session,
        "deals.search",
        "crm.deal.list",
        params,
        Idempotency::Safe,
    )
    .await?;
    Ok(result
        .as_array()
        .and_then(|deals| deals.first())
        .and_then(|deal| deal.get("ID"))
        .and_then(|id| id_of(id, "deal").ok()))
}

/// The timeline comment: the summary with the lead's id, source and score.
fn comment(lead: &Lead) -> Option<String> {
    Some(truncate_chars(&lead.plain_note()?, COMMENT_MAX_CHARS))
}

/// Finds or creates the lead's contact and brings its name up to date; returns its id.
pub(super) async fn sync_contact(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    let existing = match known_id {
        Some(id) => Some(id.to_string()),
        // Email first, then phone: the trait's search over `find_contact` below.
        None => {
            super::Bitrix24
                .search_contact(session, &lead.contact_query())
                .await?
        }
    };
    match existing {
        Some(id) => {
            let fields = names_only(lead);
            match update_contact(session, &id, fields).await {
                Ok(()) => Ok(id),
                // Deleted in Bitrix24 since: create it again.
                Err(ProviderError::Rejected { code, .. })
                    if code == "NOT_FOUND" && known_id.is_some() =>
                {
                    create_contact(session, lead).await
                }
                Err(error) => Err(error),
            }
        }
        None => create_contact(session, lead).await,
    }
}

/// What an update sends: the name and source only, never phone or email values (see the
/// module's note).
fn names_only(lead: &Lead) -> Map<String, Value> {
    let mut fields = person_fields(lead, &NAMES, false);
    fields.remove(NAMES.email);
    fields.remove(NAMES.phone);
    if let Some(source) = &lead.source {
        fields.insert("SOURCE_DESCRIPTION".into(), source.clone().into());
    }
    fields
}

async fn update_contact(
    session: &Session<'_>,
    id: &str,
    fields: Map<String, Value>,
) -> Result<(), ProviderError> {
    let params = json!({ "id": id_value(id), "fields": fields });
    call(
        session,
        "contacts.update",
        "crm.contact.update",
        params,
        Idempotency::Safe,
    )
    .await
    .map(drop)
}

async fn create_contact(session: &Session<'_>, lead: &Lead) -> Result<String, ProviderError> {
    let mut fields = person_fields(lead, &NAMES, true);
    // Multi-value fields: a list of values, each with its type.
    for name in [NAMES.email, NAMES.phone] {
        if let Some(value) = fields.remove(name) {
            fields.insert(
                name.into(),
                json!([{ "VALUE": value, "VALUE_TYPE": "WORK" }]),
            );
        }
    }
    if let Some(source) = &lead.source {
        fields.insert("SOURCE_DESCRIPTION".into(), source.clone().into());
    }
    fields.insert("OPENED".into(), "Y".into());
    let params = json!({ "fields": fields, "params": { "REGISTER_SONET_EVENT": "N" } });
    let result = call(
        session,
        "contacts.create",
        "crm.contact.add",
        params,
        Idempotency::Unsafe,
    )
    .await?;
    id_of(&result, "contact")
}

/// `crm.duplicate.findbycomm` on contacts: the oldest contact holding this email or phone.
pub(super) async fn find_contact(
    session: &Session<'_>,
    field: ContactField,
    value: &str,
) -> Result<Option<String>, ProviderError> {
    let kind = match field {
        ContactField::Email => "EMAIL",
        ContactField::Phone => "PHONE",
    };
    let params = json!({ "entity_type": "CONTACT", "type": kind, "values": [value] });
    let result = call(
        session,
        "contacts.search",
        "crm.duplicate.findbycomm",
        params,
        Idempotency::Safe,
    )
    .await?;
    // `[]` when nothing matches (an empty PHP array), `{"CONTACT": [ids]}` otherwise.
    let ids = result
        .get("CONTACT")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let oldest = ids
        .iter()
        .filter_map(|id| id_of(id, "contact").ok())
        .min_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    Ok(oldest)
}

/// Deal categories (Bitrix24's pipelines) with their stages, in the portal's order.
pub(super) async fn pipelines(session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
    let result = call(
        session,
        "pipelines.list",
        "crm.category.list",
        json!({ "entityTypeId": DEAL_ENTITY_TYPE }),
        Idempotency::Safe,
    )
    .await?;
    let garbage = |detail: &str| ProviderError::Garbage {
        provider: crate::registry::Provider::Bitrix24,
        status: 200,
        detail: detail.into(),
    };
    let mut categories: Vec<(i64, String, String)> = result
        .get("categories")
        .and_then(Value::as_array)
        .ok_or_else(|| garbage("the category list has no `categories`"))?
        .iter()
        .filter_map(|c| {
            let id = c.get("id").and_then(as_i64)?;
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let sort = c.get("sort").and_then(as_i64).unwrap_or(0);
            Some((sort, id.to_string(), name.to_string()))
        })
        .collect();
    categories.sort();
    let mut pipelines = Vec::with_capacity(categories.len());
    for (_, id, label) in categories {
        // Category 0's stages are `DEAL_STAGE`; category n's are `DEAL_STAGE_n`.
        let entity = if id == "0" {
            "DEAL_STAGE".to_string()
        } else {
            format!("DEAL_STAGE_{id}")
        };
        let result = call(
            session,
            "stages.list",
            "crm.status.list",
            json!({ "filter": { "ENTITY_ID": entity } }),
            Idempotency::Safe,
        )
        .await?;
        let mut stages: Vec<PipelineStage> = result
            .as_array()
            .ok_or_else(|| garbage("the stage list is not a list"))?
            .iter()
            .filter_map(|s| {
                Some(PipelineStage {
                    id: s.get("STATUS_ID")?.as_str()?.to_string(),
                    label: s
                        .get("NAME")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    display_order: s.get("SORT").and_then(as_i64).unwrap_or(0),
                    // `S`: won, `F`: lost; in progress otherwise.
                    is_closed: matches!(
                        s.get("SEMANTICS").and_then(Value::as_str),
                        Some("S" | "F")
                    ),
                })
            })
            .collect();
        stages.sort_by_key(|s| s.display_order);
        pipelines.push(Pipeline { id, label, stages });
    }
    Ok(pipelines)
}

/// Bitrix24 sends numbers as numbers or as numeric strings, depending on the method.
fn as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}
