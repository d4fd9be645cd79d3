//! Pushing a lead into Bitrix24: a contact (found by email or phone first), a deal in the
//! tenant's category and stage, and the summary as a timeline comment on the deal.
//!
//! | lead | calls |
//! | --- | --- |
//! | new, with email | findbycomm (email), contact add, deal add, comment add: 4 (+1 phone search when the email finds nothing and there is a phone) |
//! | new, matching a contact | findbycomm, contact update, deal add, comment add: 4 |
//! | known, changed | contact update, deal stage update if the mapped stage changed, comment update if the summary changed: 1–3 |
//! | identical replay | none (recognised before this module is called) |
//! | after a create whose answer was lost | +1 list call for that record (contact, deal or comment), only then |
//!
//! Bitrix24 appends a phone or email sent without its value id, so an update never sends them:
//! a known contact keeps the values it has.
//!
//! Bitrix24 has no idempotent create, so every create is announced in the lead's progress first
//! (`intend`), and an attempt that finds the intent without an id looks the record up before
//! creating it again: contacts and deals carry the lead's id (`ORIGINATOR_ID`/`ORIGIN_ID`, found
//! with `crm.contact.list`/`crm.deal.list`), the comment carries it in its facts line (found in
//! the deal's `crm.timeline.comment.list`). Every id is stored before the next call.

use serde_json::{json, Map, Value};

use super::api::{call, id_of, id_value};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{truncate_chars, ContactField, Lead};
use crate::provider::{
    deal_stage, person_fields, text_digest, CrmProvider, PersonFields, Pipeline, PipelineStage,
    ProgressSnapshot, PushProgress, Session,
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

/// What the contacts and deals this relay creates say in `ORIGINATOR_ID`.
const ORIGINATOR: &str = "leadrelay";

/// The in-memory marker of a deal create sent without its answer, as mappings written before
/// durable intents may still hold it: read as an intent, then dropped.
pub(super) const LEGACY_DEAL_SENT: &str = "deal_sent";

/// A timeline comment is a text field; kept well under what the portal stores.
const COMMENT_MAX_CHARS: usize = 10_000;

/// List methods answer 50 records a page, whatever is asked
/// (https://apidocs.bitrix24.com/api-reference/crm/contacts/crm-contact-list.html, `start`).
const PAGE_SIZE: usize = 50;

/// How many pages of a deal's comments, newest first, are searched for the lead's comment after
/// a lost create: the comment was made moments before, so it is on the first page unless people
/// wrote hundreds of comments since.
const COMMENT_PAGES: usize = 10;

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let contact = contact(session, lead, progress).await?;
    let deal = deal(session, lead, settings, &contact, progress).await?;
    if let Some(text) = comment_text(lead) {
        comment(session, lead, &deal, text, progress).await?;
    }
    Ok(())
}

/// The lead's contact: the one it was pushed to before, else the one a lost create made, else
/// one holding its email or phone (its name brought up to date), else a new one.
async fn contact(
    session: &Session<'_>,
    lead: &Lead,
    progress: &mut PushProgress,
) -> Result<String, ProviderError> {
    if let Some(id) = progress.records.get("contact").cloned() {
        match update_contact(session, &id, names_only(lead)).await {
            Ok(()) => return Ok(id),
            // Deleted in Bitrix24 since: found or created again below.
            Err(ProviderError::Rejected { code, .. }) if code == "NOT_FOUND" => {
                progress.forget("contact").await?;
            }
            Err(error) => return Err(error),
        }
    }
    let found = if progress.in_doubt("contact") {
        // By the lead's id first: it finds the contact whatever email or phone it holds.
        match contact_of_lead(session, lead).await? {
            Some(id) => Some(id),
            None => search(session, lead).await?,
        }
    } else {
        search(session, lead).await?
    };
    if let Some(id) = found {
        progress.record("contact", id.as_str()).await?;
        update_contact(session, &id, names_only(lead)).await?;
        return Ok(id);
    }
    progress.intend("contact").await?;
    let id = create_contact(session, lead).await?;
    progress.record("contact", id.as_str()).await?;
    Ok(id)
}

/// Email first, then phone: the trait's search over [`find_contact`].
async fn search(session: &Session<'_>, lead: &Lead) -> Result<Option<String>, ProviderError> {
    super::Bitrix24
        .search_contact(session, &lead.contact_query())
        .await
}

/// The lead's deal: the one it was pushed to (its stage moved to the mapped one), the one a
/// lost create made, or a new one.
async fn deal(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    contact: &str,
    progress: &mut PushProgress,
) -> Result<String, ProviderError> {
    let legacy = progress.records.contains_key(LEGACY_DEAL_SENT);
    if (legacy || progress.in_doubt("deal")) && !progress.records.contains_key("deal") {
        // A create sent before whose answer never came: the deal may exist. Found by the id it
        // carries, it is used instead of being created twice, at the stage it is in.
        if let Some((found, stage)) = deal_of_lead(session, lead).await? {
            progress.stage = stage;
            progress.record("deal", found).await?;
        }
    }
    if legacy {
        progress.forget(LEGACY_DEAL_SENT).await?;
    }

    if let Some(deal) = progress.records.get("deal").cloned() {
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
            progress.save().await?;
        }
        return Ok(deal);
    }

    let (category, stage) = deal_stage(session, lead, settings).await?;
    let params = deal_add_params(lead, contact, &category, &stage);
    progress.intend("deal").await?;
    let result = call(
        session,
        "deals.create",
        "crm.deal.add",
        params,
        Idempotency::Unsafe,
    )
    .await?;
    let deal = id_of(&result, "deal")?;
    progress.stage = Some(stage);
    progress.record("deal", deal.as_str()).await?;
    Ok(deal)
}

/// `crm.deal.add`'s parameters: the lead's deal in `category` at `stage`, linked to `contact`
/// and carrying the lead's id.
pub(super) fn deal_add_params(lead: &Lead, contact: &str, category: &str, stage: &str) -> Value {
    let mut fields = json!({
        "TITLE": lead.deal_name(),
        "CATEGORY_ID": id_value(category),
        "STAGE_ID": stage,
        "CONTACT_ID": id_value(contact),
        "OPENED": "Y",
        // Bitrix24's fields for linking a record to its external source
        // (https://apidocs.bitrix24.com/api-reference/crm/deals/crm-deal-add.html).
        "ORIGINATOR_ID": ORIGINATOR,
        "ORIGIN_ID": lead.id,
    });
    if let Some(source) = &lead.source {
        fields["SOURCE_DESCRIPTION"] = source.clone().into();
    }
    json!({ "fields": fields, "params": { "REGISTER_SONET_EVENT": "N" } })
}

/// The summary as the deal's timeline comment: added once, updated when it changed.
async fn comment(
    session: &Session<'_>,
    lead: &Lead,
    deal: &str,
    text: String,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let digest = text_digest(&text);
    if progress.in_doubt("comment") {
        if let Some((found, stored)) = comment_of_lead(session, lead, deal).await? {
            progress.summary_digest = Some(text_digest(&stored));
            progress.record("comment", found).await?;
        }
    }
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
            progress.summary_digest = Some(digest);
            progress.save().await?;
        }
        None => {
            let params = comment_add_params(deal, &text);
            progress.intend("comment").await?;
            let result = call(
                session,
                "comments.create",
                "crm.timeline.comment.add",
                params,
                Idempotency::Unsafe,
            )
            .await?;
            let comment = id_of(&result, "comment")?;
            progress.summary_digest = Some(digest);
            progress.record("comment", comment).await?;
        }
    }
    Ok(())
}

/// `crm.timeline.comment.add`'s parameters: `text` on the deal's timeline.
pub(super) fn comment_add_params(deal: &str, text: &str) -> Value {
    json!({ "fields": {
        "ENTITY_ID": id_value(deal),
        "ENTITY_TYPE": "deal",
        "COMMENT": text,
    }})
}

/// The contact this relay created for `lead` (by `ORIGINATOR_ID` and `ORIGIN_ID`), if any; the
/// oldest when a lost create was followed by another.
/// https://apidocs.bitrix24.com/api-reference/crm/contacts/crm-contact-list.html
async fn contact_of_lead(
    session: &Session<'_>,
    lead: &Lead,
) -> Result<Option<String>, ProviderError> {
    let params = json!({
        "filter": { "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": lead.id },
        "select": ["ID"],
        "order": { "ID": "ASC" },
    });
    let result = call(
        session,
        "contacts.search",
        "crm.contact.list",
        params,
        Idempotency::Safe,
    )
    .await?;
    Ok(first_id(&result, "contact"))
}

/// The deal this relay created for `lead` (by `ORIGINATOR_ID` and `ORIGIN_ID`), if any, with
/// its stage.
async fn deal_of_lead(
    session: &Session<'_>,
    lead: &Lead,
) -> Result<Option<(String, Option<String>)>, ProviderError> {
    let params = json!({
        "filter": { "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": lead.id },
        "select": ["ID", "STAGE_ID"],
        "order": { "ID": "ASC" },
    });
    let result = call(
        session,
        "deals.search",
        "crm.deal.list",
        params,
        Idempotency::Safe,
    )
    .await?;
    let Some(id) = first_id(&result, "deal") else {
        return Ok(None);
    };
    let stage = result
        .get(0)
        .and_then(|deal| deal.get("STAGE_ID"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Some((id, stage)))
}

/// The `ID` of a list answer's first record.
fn first_id(result: &Value, what: &str) -> Option<String> {
    result
        .as_array()
        .and_then(|records| records.first())
        .and_then(|record| record.get("ID"))
        .and_then(|id| id_of(id, what).ok())
}

/// The comment this relay added for `lead` on `deal` (its facts line names the lead), with its
/// text, searched newest first. `crm.timeline.comment.list` requires both `ENTITY_ID` and
/// `ENTITY_TYPE` in the filter and orders by `ID`
/// (https://apidocs.bitrix24.com/api-reference/crm/timeline/comments/crm-timeline-comment-list.html,
/// https://dev.1c-bitrix.ru/rest_help/crm/timeline/comment/crm_timeline_comment_list.php).
async fn comment_of_lead(
    session: &Session<'_>,
    lead: &Lead,
    deal: &str,
) -> Result<Option<(String, String)>, ProviderError> {
    for page in 0..COMMENT_PAGES {
        let params = json!({
            "filter": { "ENTITY_ID": id_value(deal), "ENTITY_TYPE": "deal" },
            "select": ["ID", "COMMENT"],
            "order": { "ID": "DESC" },
            "start": page * PAGE_SIZE,
        });
        let result = call(
            session,
            "comments.search",
            "crm.timeline.comment.list",
            params,
            Idempotency::Safe,
        )
        .await?;
        let comments = result.as_array().cloned().unwrap_or_default();
        for comment in &comments {
            let text = comment
                .get("COMMENT")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if names_lead(text, &lead.id) {
                if let Some(id) = comment.get("ID").and_then(|id| id_of(id, "comment").ok()) {
                    return Ok(Some((id, text.to_string())));
                }
            }
        }
        if comments.len() < PAGE_SIZE {
            break;
        }
    }
    Ok(None)
}

/// Whether a comment's text holds the facts line of lead `id` (`Lead: <id>`, alone or followed
/// by ` · Source: ...`), the marker [`comment_text`] always keeps.
fn names_lead(text: &str, id: &str) -> bool {
    let marker = format!("Lead: {id}");
    text.lines().any(|line| {
        line.trim()
            .strip_prefix(&marker)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

/// The timeline comment: the summary with the lead's id, source and score. A summary too long
/// for the comment is cut, never the facts line: it is what finds the comment again.
pub(super) fn comment_text(lead: &Lead) -> Option<String> {
    let note = lead.plain_note()?;
    if note.chars().count() <= COMMENT_MAX_CHARS {
        return Some(note);
    }
    let facts = format!("\n\n{}", lead.summary_facts());
    let room = COMMENT_MAX_CHARS.saturating_sub(facts.chars().count());
    Some(format!("{}{facts}", truncate_chars(&note, room)))
}

/// Finds or creates the lead's contact and brings its name up to date; returns its id. (The
/// push keeps its progress in the lead's mapping; this one-off keeps it in memory.)
pub(super) async fn sync_contact(
    session: &Session<'_>,
    lead: &Lead,
    known_id: Option<&str>,
) -> Result<String, ProviderError> {
    let mut snapshot = ProgressSnapshot::default();
    if let Some(id) = known_id {
        snapshot.records.insert("contact".into(), id.to_string());
    }
    contact(session, lead, &mut PushProgress::resumed(snapshot)).await
}

/// What an update sends: the name and source only, never phone or email values (see the
/// module's note).
pub(super) fn names_only(lead: &Lead) -> Map<String, Value> {
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

/// `crm.contact.add`'s parameters for the lead's new contact.
pub(super) fn contact_add_params(lead: &Lead) -> Value {
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
    // The lead's id, for finding the contact after a lost answer whatever it holds (contacts
    // take the same external-source fields as deals:
    // https://apidocs.bitrix24.com/api-reference/crm/contacts/crm-contact-add.html).
    fields.insert("ORIGINATOR_ID".into(), ORIGINATOR.into());
    fields.insert("ORIGIN_ID".into(), lead.id.clone().into());
    json!({ "fields": fields, "params": { "REGISTER_SONET_EVENT": "N" } })
}

async fn create_contact(session: &Session<'_>, lead: &Lead) -> Result<String, ProviderError> {
    let params = contact_add_params(lead);
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
    let params = findbycomm_params(field, value);
    let result = call(
        session,
        "contacts.search",
        "crm.duplicate.findbycomm",
        params,
        Idempotency::Safe,
    )
    .await?;
    Ok(oldest_contact(&result))
}

/// The oldest contact of a `crm.duplicate.findbycomm` result: `[]` when nothing matches (an
/// empty PHP array), `{"CONTACT": [ids]}` otherwise.
pub(super) fn oldest_contact(result: &Value) -> Option<String> {
    result
        .get("CONTACT")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|id| id_of(id, "contact").ok())
        .min_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX))
}

/// `crm.duplicate.findbycomm`'s parameters: contacts holding `value` as an email or phone.
pub(super) fn findbycomm_params(field: ContactField, value: &str) -> Value {
    let kind = match field {
        ContactField::Email => "EMAIL",
        ContactField::Phone => "PHONE",
    };
    json!({ "entity_type": "CONTACT", "type": kind, "values": [value] })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::parse_message;

    fn lead(id: &str, summary: &str) -> Lead {
        let body = json!({
            "version": 1, "tenant_id": "tenant-1", "plan": "pro",
            "lead": {"id": id, "name": "Noura", "email": "noura@example.qa",
                     "source": "whatsapp", "stage": "new"},
            "summary": summary, "occurred_at": "2026-11-28T04:00:00Z",
        });
        parse_message(&body.to_string()).unwrap().lead
    }

    #[test]
    fn the_comment_names_its_lead_even_when_the_summary_is_cut() {
        let short = comment_text(&lead("lead-7", "Wants a quote")).unwrap();
        assert!(names_lead(&short, "lead-7"));
        assert!(
            !names_lead(&short, "lead-"),
            "a prefix of the id is another lead"
        );
        assert!(!names_lead(&short, "lead-77"));

        let long = comment_text(&lead("lead-7", &"maamoul ".repeat(3_000))).unwrap();
        assert!(long.chars().count() <= COMMENT_MAX_CHARS);
        assert!(long.contains('…'), "the summary was cut");
        assert!(names_lead(&long, "lead-7"));
        assert!(
            long.ends_with("Lead: lead-7 · Source: whatsapp"),
            "{}",
            &long[long.len() - 60..]
        );
    }
}
