//! Pushing many leads of one portal in a few calls with Bitrix24's `batch` method: up to 50
//! commands a call, `halt=0` so one command's error does not stop the others, each command's
//! `result` or `result_error` under its key
//! (https://apidocs.bitrix24.com/settings/how-to-call-rest-api/batch.html; the answer's shape:
//! https://training.bitrix24.com/rest_help/general/lists.php). A batch is one hit on the portal's
//! request counter, however many commands it holds
//! (https://apidocs.bitrix24.com/settings/performance/index.html).
//!
//! The leads go through four steps, each one batch call per 50 commands:
//!
//! | step | commands per lead |
//! | --- | --- |
//! | find | findbycomm by email and by phone (leads without a contact) |
//! | contacts | contact update (known or found), or contact add |
//! | deals | deal stage update when the mapped stage changed, or deal add |
//! | comments | comment update when the summary changed, or comment add |
//!
//! so ten new leads cost four calls where one at a time they cost fifty.
//!
//! Exactly once, as in [`super::push`]: before a call holding creates, the intent of each create
//! is noted on its lead and every lead's progress stored with one [`LeadBatch::save`]; after the
//! answer each new id is noted and stored, again in one write, before the next call. A
//! command's own error fails its lead alone ([`LeadBatch::fail`]). A lead that has anything in
//! doubt (a create whose answer was lost, a marker of the older format) or whose known contact
//! is gone is pushed on its own through [`super::push::push_lead`], which looks the record up by
//! the lead's id before creating it again: that path is rare, and already proven. So is a batch
//! of one lead (lead-push's single messages).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::api::{call, error_of, id_of, id_value};
use super::push::{
    comment_add_params, comment_text, contact_add_params, deal_add_params, findbycomm_params,
    names_only, oldest_contact, push_lead, LEGACY_DEAL_SENT,
};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::ContactField;
use crate::provider::{deal_stage, is_session_error, text_digest, LeadBatch, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// Most commands one `batch` call may hold (the method's documented limit).
pub(super) const MAX_COMMANDS: usize = 50;

/// One command of a batch: the lead it is for, its key in `cmd`, its method and parameters.
struct Command {
    lead: usize,
    key: String,
    method: &'static str,
    params: Value,
}

impl Command {
    fn new(lead: usize, tag: &str, method: &'static str, params: Value) -> Self {
        Command {
            lead,
            key: format!("{tag}{lead}"),
            method,
            params,
        }
    }
}

pub(super) async fn push_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
) -> Result<(), ProviderError> {
    // Leads pushed one at a time after the batch steps (see the module's note). A lone lead
    // too: `batch` would save it one call at most, and the one-lead push is the path whose
    // every kill point is tested.
    let mut alone = vec![false; batch.len()];
    let single = batch.open().len() == 1;
    for index in batch.open() {
        let progress = &batch.leads()[index].progress;
        alone[index] = single
            || progress.records.contains_key(LEGACY_DEAL_SENT)
            || ["contact", "deal", "comment"]
                .iter()
                .any(|kind| progress.in_doubt(kind));
    }
    let batched = |batch: &LeadBatch<'_>, alone: &[bool]| -> Vec<usize> {
        batch.open().into_iter().filter(|&i| !alone[i]).collect()
    };

    // Find: the contacts holding each new lead's email or phone.
    let mut commands = Vec::new();
    for index in batched(batch, &alone) {
        let lead = batch.leads()[index].lead;
        if batch.leads()[index]
            .progress
            .records
            .contains_key("contact")
        {
            continue;
        }
        for (field, value) in lead.contact_query().criteria() {
            let tag = match field {
                ContactField::Email => "e",
                ContactField::Phone => "p",
            };
            commands.push(Command::new(
                index,
                tag,
                "crm.duplicate.findbycomm",
                findbycomm_params(field, value),
            ));
        }
    }
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    let mut by_phone: BTreeMap<usize, String> = BTreeMap::new();
    run(
        session,
        batch,
        "contacts.search",
        commands,
        |batch, command, answer| {
            match answer {
                Ok(result) => {
                    if let Some(id) = oldest_contact(&result) {
                        // Email first, as the one-lead search: a phone match counts only without.
                        let into = if command.key.starts_with('e') {
                            &mut found
                        } else {
                            &mut by_phone
                        };
                        into.insert(command.lead, id);
                    }
                }
                Err(error) => batch.fail(command.lead, error),
            }
        },
    )
    .await?;
    for (index, id) in by_phone {
        found.entry(index).or_insert(id);
    }

    // Contacts: known or found ones get the lead's name, the others are created.
    let mut commands = Vec::new();
    for index in batched(batch, &alone) {
        let item = batch.lead_mut(index);
        let lead = item.lead;
        if let Some(id) = found.remove(&index) {
            item.progress.note_record("contact", id);
        }
        match item.progress.records.get("contact") {
            Some(id) => commands.push(Command::new(
                index,
                "u",
                "crm.contact.update",
                json!({ "id": id_value(id), "fields": names_only(lead) }),
            )),
            None => {
                item.progress.note_intent("contact");
                commands.push(Command::new(
                    index,
                    "a",
                    "crm.contact.add",
                    contact_add_params(lead),
                ));
            }
        }
    }
    run(
        session,
        batch,
        "contacts.create",
        commands,
        |batch, command, answer| {
            match (command.method, answer) {
                ("crm.contact.add", Ok(result)) => match id_of(&result, "contact") {
                    Ok(id) => batch
                        .lead_mut(command.lead)
                        .progress
                        .note_record("contact", id),
                    Err(error) => batch.fail(command.lead, error),
                },
                (_, Ok(_)) => {}
                // Deleted in Bitrix24 since: the one-lead push finds or creates it again.
                (_, Err(ProviderError::Rejected { code, .. })) if code == "NOT_FOUND" => {
                    alone[command.lead] = true;
                }
                (_, Err(error)) => batch.fail(command.lead, error),
            }
        },
    )
    .await?;

    // Deals: a known deal moves to the mapped stage, a new one is created in it.
    let mut default_stage: Option<(String, String)> = None;
    let mut stages: BTreeMap<usize, String> = BTreeMap::new();
    let mut commands = Vec::new();
    for index in batched(batch, &alone) {
        let lead = batch.leads()[index].lead;
        let mapped = settings.and_then(|s| s.stage_mapping.get(&lead.stage).cloned());
        let progress = &batch.leads()[index].progress;
        if let Some(deal) = progress.records.get("deal") {
            if let Some(stage) = mapped.filter(|s| progress.stage.as_ref() != Some(s)) {
                commands.push(Command::new(
                    index,
                    "s",
                    "crm.deal.update",
                    json!({ "id": id_value(deal), "fields": { "STAGE_ID": stage } }),
                ));
                stages.insert(index, stage);
            }
            continue;
        }
        let Some(contact) = progress.records.get("contact").cloned() else {
            continue;
        };
        let (category, stage) = match (&mapped, &default_stage) {
            (Some(stage), _) => (
                settings.map(|s| s.pipeline_id.clone()).unwrap_or_default(),
                stage.clone(),
            ),
            (None, Some(default)) => default.clone(),
            // The portal's first open stage: the same for every unmapped lead, read once.
            (None, None) => match deal_stage(session, lead, settings).await {
                Ok(default) => {
                    default_stage = Some(default.clone());
                    default
                }
                Err(error) if error.is_retryable() || is_session_error(&error) => {
                    return Err(error)
                }
                Err(error) => {
                    batch.fail(index, error);
                    continue;
                }
            },
        };
        batch.lead_mut(index).progress.note_intent("deal");
        commands.push(Command::new(
            index,
            "d",
            "crm.deal.add",
            deal_add_params(lead, &contact, &category, &stage),
        ));
        stages.insert(index, stage);
    }
    run(
        session,
        batch,
        "deals.create",
        commands,
        |batch, command, answer| {
            let progress = &mut batch.lead_mut(command.lead).progress;
            match (command.method, answer) {
                ("crm.deal.add", Ok(result)) => match id_of(&result, "deal") {
                    Ok(id) => {
                        progress.stage = stages.get(&command.lead).cloned();
                        progress.note_record("deal", id);
                    }
                    Err(error) => batch.fail(command.lead, error),
                },
                (_, Ok(_)) => progress.stage = stages.get(&command.lead).cloned(),
                (_, Err(error)) => batch.fail(command.lead, error),
            }
        },
    )
    .await?;

    // Comments: the summary added once, updated when it changed.
    let mut digests: BTreeMap<usize, String> = BTreeMap::new();
    let mut commands = Vec::new();
    for index in batched(batch, &alone) {
        let item = batch.lead_mut(index);
        let (Some(text), Some(deal)) = (
            comment_text(item.lead),
            item.progress.records.get("deal").cloned(),
        ) else {
            continue;
        };
        let digest = text_digest(&text);
        match item.progress.records.get("comment") {
            Some(_) if item.progress.summary_digest.as_deref() == Some(digest.as_str()) => continue,
            Some(comment) => commands.push(Command::new(
                index,
                "m",
                "crm.timeline.comment.update",
                json!({ "id": id_value(comment), "fields": { "COMMENT": text } }),
            )),
            None => {
                item.progress.note_intent("comment");
                commands.push(Command::new(
                    index,
                    "c",
                    "crm.timeline.comment.add",
                    comment_add_params(&deal, &text),
                ));
            }
        }
        digests.insert(index, digest);
    }
    run(
        session,
        batch,
        "comments.create",
        commands,
        |batch, command, answer| {
            let progress = &mut batch.lead_mut(command.lead).progress;
            match (command.method, answer) {
                ("crm.timeline.comment.add", Ok(result)) => match id_of(&result, "comment") {
                    Ok(id) => {
                        progress.summary_digest = digests.get(&command.lead).cloned();
                        progress.note_record("comment", id);
                    }
                    Err(error) => batch.fail(command.lead, error),
                },
                (_, Ok(_)) => progress.summary_digest = digests.get(&command.lead).cloned(),
                (_, Err(error)) => batch.fail(command.lead, error),
            }
        },
    )
    .await?;

    // The leads with something in doubt, one at a time, each journaled as it goes.
    for index in batch.open().into_iter().filter(|&i| alone[i]) {
        let item = batch.lead_mut(index);
        let lead = item.lead;
        if let Err(error) = push_lead(session, lead, settings, &mut item.progress).await {
            if error.is_retryable() || is_session_error(&error) {
                return Err(error);
            }
            batch.fail(index, error);
        }
    }
    batch.save().await
}

/// Sends `commands` in calls of at most [`MAX_COMMANDS`], hands each command's answer to
/// `each`, and stores what changed after every call, before the next. What was noted before
/// (the intents of the creates) is stored before the first call.
async fn run<F>(
    session: &Session<'_>,
    batch: &mut LeadBatch<'_>,
    operation: &'static str,
    commands: Vec<Command>,
    mut each: F,
) -> Result<(), ProviderError>
where
    F: FnMut(&mut LeadBatch<'_>, &Command, Result<Value, ProviderError>) + Send,
{
    batch.save().await?;
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let chunk: Vec<Command> = commands.by_ref().take(MAX_COMMANDS).collect();
        // A lost answer to a call that creates must not be resent: the next delivery finds
        // what it made by the intents stored above.
        let creates = chunk.iter().any(|c| c.method.ends_with(".add"));
        let idempotency = if creates {
            Idempotency::Unsafe
        } else {
            Idempotency::Safe
        };
        let cmd: Map<String, Value> = chunk
            .iter()
            .map(|c| {
                (
                    c.key.clone(),
                    Value::String(command_line(c.method, &c.params)),
                )
            })
            .collect();
        let answer = call(
            session,
            operation,
            "batch",
            json!({ "halt": 0, "cmd": cmd }),
            idempotency,
        )
        .await?;
        let mut answers = Answers::of(answer)?;
        for command in &chunk {
            each(batch, command, answers.take(&command.key));
        }
        batch.save().await?;
    }
    Ok(())
}

/// A batch answer's `result`: each command's `result` and `result_error` by key. PHP writes an
/// empty map as `[]`.
struct Answers {
    results: Map<String, Value>,
    errors: Map<String, Value>,
}

impl Answers {
    fn of(mut answer: Value) -> Result<Self, ProviderError> {
        let mut part = |name: &str| -> Result<Map<String, Value>, ProviderError> {
            match answer.get_mut(name).map(Value::take) {
                Some(Value::Object(map)) => Ok(map),
                Some(Value::Array(list)) if list.is_empty() => Ok(Map::new()),
                None | Some(Value::Null) => Ok(Map::new()),
                Some(_) => Err(garbage(&format!(
                    "the batch answer's `{name}` is not a map"
                ))),
            }
        };
        Ok(Answers {
            results: part("result")?,
            errors: part("result_error")?,
        })
    }

    /// The command's result, or its error as the relay classifies Bitrix24's errors.
    fn take(&mut self, key: &str) -> Result<Value, ProviderError> {
        if let Some(error) = self.errors.remove(key) {
            let text = |name: &str| {
                error
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let code = Some(text("error"))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "batch_command_failed".into());
            return Err(error_of(400, code, text("error_description")));
        }
        self.results
            .remove(key)
            .ok_or_else(|| garbage("the batch answer holds neither a result nor an error"))
    }
}

fn garbage(detail: &str) -> ProviderError {
    ProviderError::Garbage {
        provider: Provider::Bitrix24,
        status: 200,
        detail: detail.into(),
    }
}

/// One command as `batch` takes it: `method?query`, the parameters in PHP's nested form
/// (`fields[EMAIL][0][VALUE]=...`), percent-encoded once (the JSON body adds no encoding).
fn command_line(method: &str, params: &Value) -> String {
    let mut pairs = Vec::new();
    if let Value::Object(map) = params {
        for (name, value) in map {
            flatten(name.clone(), value, &mut pairs);
        }
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &pairs {
        query.append_pair(name, value);
    }
    format!("{method}?{}", query.finish())
}

fn flatten(name: String, value: &Value, pairs: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(format!("{name}[{key}]"), inner, pairs);
            }
        }
        Value::Array(list) => {
            for (index, inner) in list.iter().enumerate() {
                flatten(format!("{name}[{index}]"), inner, pairs);
            }
        }
        Value::String(text) => pairs.push((name, text.clone())),
        Value::Number(n) => pairs.push((name, n.to_string())),
        Value::Bool(b) => pairs.push((name, if *b { "Y" } else { "N" }.to_string())),
        Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_its_method_and_php_style_parameters_encoded_once() {
        let params = json!({
            "fields": {"NAME": "Noura & Co", "EMAIL": [{"VALUE": "n@example.qa", "VALUE_TYPE": "WORK"}],
                       "CATEGORY_ID": 3},
            "params": {"REGISTER_SONET_EVENT": "N"},
        });
        let line = command_line("crm.contact.add", &params);
        let (method, query) = line.split_once('?').unwrap();
        assert_eq!(method, "crm.contact.add");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert!(pairs.contains(&("fields[NAME]".into(), "Noura & Co".into())));
        assert!(pairs.contains(&("fields[EMAIL][0][VALUE]".into(), "n@example.qa".into())));
        assert!(pairs.contains(&("fields[CATEGORY_ID]".into(), "3".into())));
        assert!(pairs.contains(&("params[REGISTER_SONET_EVENT]".into(), "N".into())));
    }

    #[test]
    fn each_key_gets_its_result_or_its_own_error() {
        let answer = json!({
            "result": {"a0": 41, "a1": 42},
            "result_error": {"a2": {"error": "INVALID_ARG_VALUE", "error_description": "bad e-mail"}},
            "result_total": [], "result_next": [], "result_time": {},
        });
        let mut answers = Answers::of(answer).unwrap();
        assert_eq!(answers.take("a1").unwrap(), json!(42));
        assert!(matches!(
            answers.take("a2"),
            Err(ProviderError::Rejected { code, .. }) if code == "INVALID_ARG_VALUE"
        ));
        assert!(matches!(
            answers.take("a9"),
            Err(ProviderError::Garbage { .. })
        ));
        // PHP's empty map.
        let mut empty = Answers::of(json!({"result": [], "result_error": []})).unwrap();
        assert!(empty.take("a0").is_err());
    }
}
