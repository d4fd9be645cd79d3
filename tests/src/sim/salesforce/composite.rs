//! `POST composite` (sequential subrequests with `@{ref.path}` references
//! and allOrNone rollback) and `POST|PATCH composite/sobjects` (sObject
//! collections create/update).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::rest::{self, allow_save_header, version_of, Ctx, Outcome, Store};
use super::{SfDetails, SfError, SfRequest, REST_PREFIX};

/// Most subrequests one composite may carry.
pub const MAX_COMPOSITE_SUBREQUESTS: usize = 25;
/// Most records one collections call may carry.
pub const MAX_COLLECTION_RECORDS: usize = 200;

fn invalid_input(message: impl Into<String>) -> SfError {
    SfError::bad("INVALID_API_INPUT", message)
}

struct Sub {
    method: String,
    url: String,
    reference_id: String,
    body: Value,
    headers: Value,
}

fn parse_subs(body: &Value) -> Result<(bool, Vec<Sub>), SfError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_input("The composite request body must be an object"))?;
    let all_or_none = object
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let items = object
        .get("compositeRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_input("compositeRequest is required"))?;
    if items.is_empty() {
        return Err(invalid_input("compositeRequest must not be empty"));
    }
    if items.len() > MAX_COMPOSITE_SUBREQUESTS {
        return Err(invalid_input(format!(
            "Limit Exceeded: the composite request has {} subrequests; at most {MAX_COMPOSITE_SUBREQUESTS} are allowed",
            items.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut subs = Vec::new();
    for item in items {
        let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
        let (Some(method), Some(url), Some(reference_id)) =
            (text("method"), text("url"), text("referenceId"))
        else {
            return Err(invalid_input(
                "Each subrequest needs a method, a url and a referenceId",
            ));
        };
        if !seen.insert(reference_id.clone()) {
            return Err(invalid_input(format!(
                "Duplicate ReferenceId provided in the request: {reference_id}"
            )));
        }
        subs.push(Sub {
            method: method.to_ascii_uppercase(),
            url,
            reference_id,
            body: item.get("body").cloned().unwrap_or(Value::Null),
            headers: item.get("httpHeaders").cloned().unwrap_or(Value::Null),
        });
    }
    Ok((all_or_none, subs))
}

/// Every `@{...}` in `text`: `(start, end_exclusive, inner)`.
fn find_refs(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("@{").map(|s| s + from) {
        let Some(close) = text[start..].find('}').map(|c| c + start) else {
            break;
        };
        out.push((start, close + 1, text[start + 2..close].to_owned()));
        from = close + 1;
    }
    out
}

fn ref_name(inner: &str) -> &str {
    inner.split(['.', '[']).next().unwrap_or_default()
}

fn refs_in_value(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.extend(find_refs(s).into_iter().map(|(_, _, i)| i)),
        Value::Array(items) => items.iter().for_each(|v| refs_in_value(v, out)),
        Value::Object(map) => map.values().for_each(|v| refs_in_value(v, out)),
        _ => {}
    }
}

/// The value `ref.path[0].Field` points at in earlier results.
fn lookup(done: &HashMap<String, Value>, inner: &str) -> Result<Value, SfError> {
    let unknown = || {
        invalid_input(format!(
            "Invalid reference specified. No value for {inner} found in {}. Provided referenceId ({}) must be a valid referenceId from a previous subrequest.",
            ref_name(inner),
            ref_name(inner)
        ))
    };
    let mut value = done.get(ref_name(inner)).ok_or_else(unknown)?;
    let path = &inner[ref_name(inner).len()..];
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        let mut parts = segment.split('[');
        let name = parts.next().unwrap_or_default();
        if !name.is_empty() {
            value = value.get(name).ok_or_else(unknown)?;
        }
        for index in parts {
            let index: usize = index.trim_end_matches(']').parse().map_err(|_| unknown())?;
            value = value.get(index).ok_or_else(unknown)?;
        }
    }
    if value.is_null() {
        return Err(unknown());
    }
    Ok(value.clone())
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn substitute_str(text: &str, done: &HashMap<String, Value>) -> Result<Value, SfError> {
    let refs = find_refs(text);
    if let [(0, end, inner)] = refs.as_slice() {
        if *end == text.len() {
            return lookup(done, inner);
        }
    }
    let mut out = String::new();
    let mut last = 0;
    for (start, end, inner) in refs {
        out.push_str(&text[last..start]);
        out.push_str(&as_text(&lookup(done, &inner)?));
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(Value::String(out))
}

fn substitute(value: &Value, done: &HashMap<String, Value>) -> Result<Value, SfError> {
    Ok(match value {
        Value::String(s) => substitute_str(s, done)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, done))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, done)?)))
                .collect::<Result<Map<_, _>, SfError>>()?,
        ),
        other => other.clone(),
    })
}

/// Run a composite request; always answers 200 with `compositeResponse`
/// unless the envelope itself is invalid (400 error array).
pub(crate) fn composite(
    store: &mut Store,
    idx: usize,
    ctx: &Ctx,
    body: &Value,
    recorded: &mut Vec<SfRequest>,
) -> Outcome {
    let (all_or_none, subs) = match parse_subs(body) {
        Ok(parsed) => parsed,
        Err(error) => return Outcome::error(&error),
    };
    let snapshot = store.orgs[idx].records.clone();
    let mut results: Vec<Option<Outcome>> = vec![None; subs.len()];
    let mut done: HashMap<String, Value> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut first_failure: Option<usize> = None;

    for (i, sub) in subs.iter().enumerate() {
        if all_or_none && first_failure.is_some() {
            break;
        }
        let mut used = find_refs(&sub.url)
            .into_iter()
            .map(|(_, _, inner)| inner)
            .collect::<Vec<_>>();
        refs_in_value(&sub.body, &mut used);
        let outcome = if used.iter().any(|r| failed.contains(ref_name(r))) {
            Outcome::error(&SfError::processing_halted())
        } else {
            run_sub(store, idx, ctx, sub, &done, recorded)
        };
        if outcome.status >= 400 {
            failed.insert(sub.reference_id.clone());
            if first_failure.is_none() {
                first_failure = Some(i);
            }
        } else {
            done.insert(sub.reference_id.clone(), outcome.body.clone());
        }
        results[i] = Some(outcome);
    }

    if let (true, Some(failing)) = (all_or_none, first_failure) {
        store.orgs[idx].records = snapshot;
        for (i, result) in results.iter_mut().enumerate() {
            if i != failing {
                *result = Some(Outcome::error(&SfError::processing_halted()));
            }
        }
    }

    let items: Vec<Value> = subs
        .iter()
        .zip(results)
        .map(|(sub, outcome)| {
            let outcome = outcome.unwrap_or_else(|| Outcome::error(&SfError::processing_halted()));
            let headers = match &outcome.location {
                Some(location) => json!({"Location": location}),
                None => json!({}),
            };
            json!({
                "body": outcome.body,
                "httpHeaders": headers,
                "httpStatusCode": outcome.status,
                "referenceId": sub.reference_id,
            })
        })
        .collect();
    Outcome::ok(200, json!({ "compositeResponse": items }))
}

fn run_sub(
    store: &mut Store,
    idx: usize,
    ctx: &Ctx,
    sub: &Sub,
    done: &HashMap<String, Value>,
    recorded: &mut Vec<SfRequest>,
) -> Outcome {
    let resolved = substitute_str(&sub.url, done)
        .map(|u| as_text(&u))
        .and_then(|url| Ok((url, substitute(&sub.body, done)?)));
    let (url, body) = match resolved {
        Ok(resolved) => resolved,
        Err(error) => return Outcome::error(&error),
    };
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let outcome = match (version_of(path), path.strip_prefix(REST_PREFIX)) {
        (Some(version), Some(rest)) => {
            let rest = rest.split_once('/').map_or("", |(_, r)| r);
            let sub_ctx = Ctx {
                version,
                allow_save: ctx.allow_save || allow_save_header(&sub.headers),
                host: ctx.host.clone(),
                org: ctx.org.clone(),
            };
            rest::dispatch(store, idx, &sub_ctx, &sub.method, rest, query, &body, None)
        }
        _ => Outcome::error(&SfError::not_found()),
    };
    let mut headers = std::collections::BTreeMap::new();
    if let Some(map) = sub.headers.as_object() {
        for (k, v) in map {
            headers.insert(k.to_ascii_lowercase(), as_text(v));
        }
    }
    recorded.push(SfRequest {
        host: ctx.host.clone(),
        method: sub.method.clone(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
        status: Some(outcome.status),
        extra: SfDetails {
            limit_info: None,
            sub: true,
            reference_id: Some(sub.reference_id.clone()),
            org: Some(ctx.org.clone()),
        },
    });
    outcome
}

// ---------------------------------------------------------------------------
// sObject collections
// ---------------------------------------------------------------------------

/// `POST` (create) or `PATCH` (update by `Id`) `composite/sobjects`.
pub(crate) fn collections(
    store: &mut Store,
    idx: usize,
    ctx: &Ctx,
    update: bool,
    body: &Value,
) -> Result<Outcome, SfError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid_input("The request body must be an object"))?;
    let all_or_none = object
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let records = object
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_input("records is required"))?;
    if records.len() > MAX_COLLECTION_RECORDS {
        return Err(SfError::bad(
            "EXCEEDED_ID_LIMIT",
            format!("record limit reached. cannot submit more than {MAX_COLLECTION_RECORDS} records into this call"),
        ));
    }
    let snapshot = store.orgs[idx].records.clone();
    let mut results: Vec<(Option<String>, Result<(), SfError>)> = Vec::new();
    for record in records {
        let mut fields = record.as_object().cloned().unwrap_or_default();
        let object_type = fields
            .remove("attributes")
            .and_then(|a| a.get("type").and_then(Value::as_str).map(str::to_owned));
        let Some(object_type) = object_type else {
            results.push((
                None,
                Err(SfError::bad(
                    "INVALID_TYPE",
                    "Must specify a type for the record",
                )),
            ));
            continue;
        };
        if update {
            let id_key = fields
                .keys()
                .find(|k| k.eq_ignore_ascii_case("Id"))
                .cloned();
            let id = id_key
                .and_then(|k| fields.remove(&k))
                .and_then(|v| v.as_str().map(str::to_owned));
            let Some(id) = id else {
                results.push((
                    None,
                    Err(SfError::bad(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                    )),
                ));
                continue;
            };
            let outcome = rest::update(store, idx, &object_type, &id, &Value::Object(fields))
                .map_err(|e| {
                    if e.code == "NOT_FOUND" {
                        SfError::bad("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                    } else {
                        e
                    }
                });
            results.push((Some(id), outcome));
        } else {
            match rest::create(store, idx, ctx, &object_type, &Value::Object(fields)) {
                Ok(id) => results.push((Some(id), Ok(()))),
                Err(error) => results.push((None, Err(error))),
            }
        }
    }
    let any_failed = results.iter().any(|(_, r)| r.is_err());
    if all_or_none && any_failed {
        store.orgs[idx].records = snapshot;
    }
    let rolled_back = SfError::bad(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
    );
    let items: Vec<Value> = results
        .into_iter()
        .map(|(id, result)| {
            let shown_id = if update { id.clone() } else { None };
            match result {
                Ok(()) if all_or_none && any_failed => {
                    let mut item =
                        json!({"success": false, "errors": [rolled_back.collection_error()]});
                    if let Some(id) = shown_id {
                        item["id"] = Value::String(id);
                    }
                    item
                }
                Ok(()) => json!({"id": id, "success": true, "errors": []}),
                Err(error) => {
                    let mut item = json!({"success": false, "errors": [error.collection_error()]});
                    if let Some(id) = shown_id {
                        item["id"] = Value::String(id);
                    }
                    item
                }
            }
        })
        .collect();
    Ok(Outcome::ok(200, Value::Array(items)))
}
