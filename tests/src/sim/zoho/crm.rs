//! The CRM API (`/crm/v8/...`, also `/crm/v7/...`): one org per (data
//! centre, user) with its own Leads, Contacts, Deals, Accounts and Notes;
//! upsert with duplicate check, insert, update, read, delete, search, notes,
//! lead conversion; API credits per org; and the simulator-only
//! `GET /_sim/state`.
//!
//! Answers follow Zoho's envelope: per-record results in `{"data":[...]}`
//! (HTTP 200 or 201 when all succeed, 207 when mixed, 400 when all fail) and
//! request-level errors as one bare `{"code","details","message","status"}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::schema::{
    invalid_data, is_blank, mandatory_not_found, Module, ZohoPipeline, ZohoSchema,
};
use super::{
    dc, invalid_url_pattern, json_response, record_error, too_many_requests, zoho_error, Shared,
    Target, ZohoDc,
};
use crate::sim::server::Reject;

/// Most records one write request may carry.
pub const MAX_RECORDS: usize = 100;
/// API credits a lead conversion costs (every other call costs 1).
pub const CONVERT_CREDITS: u32 = 5;

const INVALID_ID_MESSAGE: &str = "the related id given seems to be invalid";

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

/// What a note is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoParent {
    /// `Leads`, `Contacts`, `Deals` or `Accounts`.
    pub module: String,
    pub id: String,
}

/// A snapshot of one stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct ZohoRecord {
    pub id: String,
    /// `Leads`, `Contacts`, `Deals`, `Accounts` or `Notes`.
    pub module: &'static str,
    /// The user whose org holds the record.
    pub user: String,
    pub org_id: String,
    /// Field api name → value, as written (system fields not included).
    pub fields: Map<String, Value>,
    /// Leads only: converted into a contact (and maybe a deal and account).
    pub converted: bool,
    /// Notes only: the record the note is on.
    pub parent: Option<ZohoParent>,
    pub created_time: String,
    pub modified_time: String,
}

impl ZohoRecord {
    pub fn field(&self, api_name: &str) -> Option<&Value> {
        self.fields.get(api_name)
    }

    /// A text field's value.
    pub fn text(&self, api_name: &str) -> Option<&str> {
        self.fields.get(api_name).and_then(Value::as_str)
    }
}

#[derive(Default)]
pub(super) struct CrmStore {
    orgs: BTreeMap<(String, String), Org>,
    ids: IdGen,
    next_org: u64,
}

#[derive(Default)]
pub(super) struct IdGen {
    next: u64,
}

impl IdGen {
    /// 19-digit ids, increasing, so that string order is creation order.
    fn next(&mut self) -> String {
        self.next += 1;
        (5_725_767_000_001_000_000u64 + self.next).to_string()
    }
}

pub(super) struct Org {
    pub(super) id: String,
    zgid: String,
    user_id: String,
    user: String,
    records: BTreeMap<Module, BTreeMap<String, Stored>>,
    pub(super) credits_used: u64,
}

#[derive(Clone)]
struct Stored {
    id: String,
    fields: Map<String, Value>,
    converted: bool,
    /// Leads only: `$converted_detail` once converted (contact, deal, account).
    converted_detail: Option<Value>,
    parent: Option<ZohoParent>,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
}

impl CrmStore {
    /// The org of `user` in `dc`, created on first use.
    pub(super) fn org_mut(&mut self, dc: &str, user: &str) -> &mut Org {
        self.org_and_ids(dc, user).0
    }

    fn org_and_ids(&mut self, dc: &str, user: &str) -> (&mut Org, &mut IdGen) {
        let key = (dc.to_owned(), user.to_owned());
        if !self.orgs.contains_key(&key) {
            self.next_org += 1;
            let n = self.next_org;
            self.orgs.insert(
                key.clone(),
                Org {
                    id: format!("6000{n:07}"),
                    zgid: format!("7000{n:07}"),
                    user_id: format!("5725767000000{:06}", 400_000 + n),
                    user: user.to_owned(),
                    records: BTreeMap::new(),
                    credits_used: 0,
                },
            );
        }
        let org = self
            .orgs
            .get_mut(&key)
            .unwrap_or_else(|| unreachable!("the org was just inserted"));
        (org, &mut self.ids)
    }

    pub(super) fn org(&self, dc: &str, user: &str) -> Option<&Org> {
        self.orgs.get(&(dc.to_owned(), user.to_owned()))
    }

    fn orgs_of<'a>(&'a self, dc: &'a str) -> impl Iterator<Item = &'a Org> + 'a {
        self.orgs
            .iter()
            .filter(move |((org_dc, _), _)| org_dc == dc)
            .map(|(_, org)| org)
    }

    pub(super) fn snapshot(&self, dc: &str, module: Module) -> Vec<ZohoRecord> {
        let mut records: Vec<ZohoRecord> = self
            .orgs_of(dc)
            .flat_map(|org| {
                org.records
                    .get(&module)
                    .into_iter()
                    .flat_map(|table| table.values())
                    .map(move |stored| org.snapshot(module, stored))
            })
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }

    pub(super) fn delete(&mut self, dc: &str, module: Module, id: &str) -> bool {
        let keys: Vec<(String, String)> = self
            .orgs
            .keys()
            .filter(|(org_dc, _)| org_dc == dc)
            .cloned()
            .collect();
        keys.into_iter().any(|key| {
            self.orgs
                .get_mut(&key)
                .is_some_and(|org| org.remove(module, id))
        })
    }
}

impl Org {
    fn table(&mut self, module: Module) -> &mut BTreeMap<String, Stored> {
        self.records.entry(module).or_default()
    }

    fn get(&self, module: Module, id: &str) -> Option<&Stored> {
        self.records.get(&module).and_then(|t| t.get(id))
    }

    /// A record that can be written to or read: converted leads cannot.
    fn usable(&self, module: Module, id: &str) -> Option<&Stored> {
        self.get(module, id).filter(|s| !s.converted)
    }

    /// Delete a record (and the notes on it).
    fn remove(&mut self, module: Module, id: &str) -> bool {
        let removed = self.table(module).remove(id).is_some();
        if removed && module != Module::Notes {
            self.table(Module::Notes).retain(|_, note| {
                note.parent
                    .as_ref()
                    .is_none_or(|p| !(p.module == module.name() && p.id == id))
            });
        }
        removed
    }

    fn create(
        &mut self,
        ids: &mut IdGen,
        module: Module,
        fields: Map<String, Value>,
        parent: Option<ZohoParent>,
    ) -> Stored {
        let now = Utc::now();
        let stored = Stored {
            id: ids.next(),
            fields,
            converted: false,
            converted_detail: None,
            parent,
            created: now,
            modified: now,
        };
        self.table(module).insert(stored.id.clone(), stored.clone());
        stored
    }

    /// Fields present overwrite, `null` clears, absent ones stay.
    fn merge(&mut self, module: Module, id: &str, fields: Map<String, Value>) -> Option<Stored> {
        let stored = self.table(module).get_mut(id)?;
        for (key, value) in fields {
            if value.is_null() {
                stored.fields.remove(&key);
            } else {
                stored.fields.insert(key, value);
            }
        }
        stored.modified = Utc::now();
        Some(stored.clone())
    }

    fn display_name(&self) -> String {
        let local = self.user.split('@').next().unwrap_or(&self.user);
        let mut chars = local.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().chain(chars).collect()
        })
    }

    fn by(&self) -> Value {
        json!({"name": self.display_name(), "id": self.user_id})
    }

    fn owner(&self) -> Value {
        json!({"name": self.display_name(), "id": self.user_id, "email": self.user})
    }

    fn snapshot(&self, module: Module, stored: &Stored) -> ZohoRecord {
        ZohoRecord {
            id: stored.id.clone(),
            module: module.name(),
            user: self.user.clone(),
            org_id: self.id.clone(),
            fields: stored.fields.clone(),
            converted: stored.converted,
            parent: stored.parent.clone(),
            created_time: zoho_time(stored.created),
            modified_time: zoho_time(stored.modified),
        }
    }

    /// The record as `GET /{module}/{id}` shows it.
    fn record_json(&self, module: Module, stored: &Stored) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), json!(stored.id));
        if module != Module::Notes {
            map.insert("Owner".into(), self.owner());
        }
        for (key, value) in &stored.fields {
            map.insert(key.clone(), value.clone());
        }
        if matches!(module, Module::Leads | Module::Contacts) {
            map.insert("Full_Name".into(), json!(full_name(&stored.fields)));
        }
        if let Some(parent) = &stored.parent {
            map.insert(
                "Parent_Id".into(),
                json!({"module": {"api_name": parent.module}, "id": parent.id}),
            );
        }
        if module == Module::Leads {
            map.insert("$converted".into(), json!(stored.converted));
            map.insert(
                "$converted_detail".into(),
                stored.converted_detail.clone().unwrap_or_else(|| json!({})),
            );
        }
        map.insert("Created_Time".into(), json!(zoho_time(stored.created)));
        map.insert("Modified_Time".into(), json!(zoho_time(stored.modified)));
        map.insert("Created_By".into(), self.by());
        map.insert("Modified_By".into(), self.by());
        Value::Object(map)
    }

    fn success(&self, stored: &Stored, message: &str) -> Value {
        json!({
            "code": "SUCCESS",
            "details": {
                "id": stored.id,
                "Modified_Time": zoho_time(stored.modified),
                "Modified_By": self.by(),
                "Created_Time": zoho_time(stored.created),
                "Created_By": self.by(),
            },
            "message": message,
            "status": "success",
        })
    }
}

/// Zoho's timestamp: ISO 8601 with seconds and an offset.
fn zoho_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn full_name(fields: &Map<String, Value>) -> String {
    let part = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
    };
    [part("First_Name"), part("Last_Name")]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored fields of a request record: simulator-ignored keys dropped.
fn writable(record: &Map<String, Value>) -> Map<String, Value> {
    record
        .iter()
        .filter(|(key, _)| !key.starts_with('$') && !matches!(key.as_str(), "id" | "Layout"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn without_nulls(mut fields: Map<String, Value>) -> Map<String, Value> {
    fields.retain(|_, value| !value.is_null());
    fields
}

/// A record a test makes Zoho refuse (see `ZohoSim::refuse_records`).
pub(super) struct Refusal {
    pub(super) module: Module,
    pub(super) field: String,
    pub(super) contains: String,
    pub(super) code: String,
}

impl Shared {
    /// The per-record error for the record at `index` of a write to `module`, if a refusal
    /// names it.
    fn refusal(&self, module: Module, item: &Value, index: usize) -> Option<Value> {
        self.refusals()
            .iter()
            .find(|r| {
                r.module == module
                    && item
                        .get(&r.field)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.contains(&r.contains))
            })
            .map(|r| {
                record_error(
                    &r.code,
                    json!({"api_name": r.field, "json_path": format!("$.data[{index}].{}", r.field)}),
                    "the record was refused",
                )
            })
    }
}

// ---------------------------------------------------------------------------
// Authentication, credits and request helpers
// ---------------------------------------------------------------------------

impl Shared {
    /// Version check, authentication (401 `INVALID_TOKEN`), then `cost` API
    /// credits from the caller's org (429 `TOO_MANY_REQUESTS`), then `handle`
    /// with the caller's user.
    pub(super) fn api(
        &self,
        headers: &HeaderMap,
        target: &Target,
        version: &str,
        cost: u32,
        handle: impl FnOnce(&str) -> Result<Response, Reject>,
    ) -> Response {
        let run = || {
            check_version(version)?;
            let user = self.authenticate(headers, target)?;
            self.spend(target.dc.code, &user, cost)?;
            handle(&user)
        };
        run().unwrap_or_else(IntoResponse::into_response)
    }

    fn spend(&self, dc: &str, user: &str, cost: u32) -> Result<(), Reject> {
        let mut store = self.crm_store();
        let org = store.org_mut(dc, user);
        self.credits
            .take_cost(&(dc.to_owned(), user.to_owned()), cost)
            .map_err(|_| too_many_requests())?;
        org.credits_used += u64::from(cost);
        Ok(())
    }
}

pub(super) fn check_version(version: &str) -> Result<(), Reject> {
    match version {
        "v8" | "v7" => Ok(()),
        _ => Err(invalid_url_pattern().into()),
    }
}

pub(super) fn invalid_module() -> Reject {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        json!({"resource_path_index": 0}),
        "the module name given seems to be invalid",
    )
    .into()
}

/// The modules of records that notes can be on.
const RECORDS: &[Module] = &[
    Module::Leads,
    Module::Contacts,
    Module::Deals,
    Module::Accounts,
];

/// The modules that take inserts and updates by id.
const WRITABLE: &[Module] = &[
    Module::Leads,
    Module::Contacts,
    Module::Deals,
    Module::Accounts,
    Module::Notes,
];

fn api_module(name: &str, allowed: &[Module]) -> Result<Module, Reject> {
    Module::parse(name)
        .filter(|m| allowed.contains(m))
        .ok_or_else(invalid_module)
}

/// `{"data":[...], ...}` → the items and the whole object.
fn parse_body(body: &str) -> Result<(Vec<Value>, Map<String, Value>), Reject> {
    let Ok(Value::Object(whole)) = serde_json::from_str::<Value>(body) else {
        return Err(zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            json!({}),
            "the input json is not valid",
        )
        .into());
    };
    let items = match whole.get("data") {
        Some(Value::Array(items)) if !items.is_empty() => items.clone(),
        _ => {
            return Err(zoho_error(
                StatusCode::BAD_REQUEST,
                "MANDATORY_NOT_FOUND",
                json!({"api_name": "data", "json_path": "$.data"}),
                "required field not found",
            )
            .into())
        }
    };
    if items.len() > MAX_RECORDS {
        return Err(zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            json!({"limit": MAX_RECORDS, "api_name": "data", "json_path": "$.data"}),
            "limit exceeded",
        )
        .into());
    }
    Ok((items, whole))
}

/// Per-record results: `all_ok` when every record succeeded, 207 when some
/// did, 400 when none did.
fn results(items: Vec<Value>, all_ok: StatusCode) -> Response {
    let ok = items.iter().filter(|i| i["status"] == "success").count();
    let status = if ok == items.len() {
        all_ok
    } else if ok == 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::MULTI_STATUS
    };
    json_response(status, &json!({ "data": items }))
}

fn failed(item: Value) -> Reject {
    results(vec![item], StatusCode::OK).into()
}

fn invalid_id(json_path: &str) -> Value {
    record_error(
        "INVALID_DATA",
        json!({"api_name": "id", "json_path": json_path}),
        INVALID_ID_MESSAGE,
    )
}

fn mapping_mismatch(json_path: &str) -> Value {
    record_error(
        "MAPPING_MISMATCH",
        json!({"mapped_field": "Pipeline", "api_name": "Stage", "json_path": json_path}),
        "Pipeline doesn't contain the Stage",
    )
}

/// A deal's Stage must belong to its Pipeline (or, without one, to some pipeline).
fn stage_problem(
    pipelines: &[ZohoPipeline],
    pipeline: Option<&str>,
    stage: Option<&str>,
    json_path: &str,
) -> Option<Value> {
    let stage = stage?;
    match pipeline.and_then(|p| pipelines.iter().find(|x| x.actual_value == p)) {
        Some(pipeline) => (!pipeline.has_stage(stage)).then(|| mapping_mismatch(json_path)),
        None => (!pipelines.iter().any(|p| p.has_stage(stage)))
            .then(|| invalid_data("Stage", json_path, None)),
    }
}

/// A checked request record and, if it were inserted, what it would lack.
struct Checked {
    record: Map<String, Value>,
    missing_on_insert: Option<Value>,
}

fn check_item(
    schema: &ZohoSchema,
    module: Module,
    item: &Value,
    index: usize,
) -> Result<Checked, Value> {
    let path = format!("$.data[{index}]");
    let Some(record) = item.as_object() else {
        return Err(record_error(
            "INVALID_DATA",
            json!({"json_path": path}),
            "invalid data",
        ));
    };
    schema.validate(module, record, &path)?;
    let missing_on_insert = schema.missing_mandatory(module, record, &path);
    Ok(Checked {
        record: record.clone(),
        missing_on_insert,
    })
}

/// Each request record checked, or its error: a refusal a test set up, else `check_item`'s.
fn check_items(
    shared: &Shared,
    schema: &ZohoSchema,
    module: Module,
    items: &[Value],
) -> Vec<Result<Checked, Value>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match shared.refusal(module, item, i) {
            Some(refused) => Err(refused),
            None => check_item(schema, module, item, i),
        })
        .collect()
}

fn str_field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str)
}

/// Duplicate-check equality: Email ignores case, other fields compare exactly.
fn same_value(field: &str, stored: Option<&Value>, wanted: &str) -> bool {
    let Some(stored) = stored.and_then(Value::as_str) else {
        return false;
    };
    if field == "Email" {
        stored.eq_ignore_ascii_case(wanted)
    } else {
        stored == wanted
    }
}

// ---------------------------------------------------------------------------
// GET /crm/v8/org
// ---------------------------------------------------------------------------

pub(super) async fn org(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let mut store = shared.crm_store();
        let org = store.org_mut(target.dc.code, user);
        let body = json!({"org": [{
            "id": org.id,
            "company_name": shared.config.company_name,
            "country_code": target.dc.country_code(),
            "zgid": org.zgid,
            "primary_email": org.user,
            "domain_name": format!("org{}", org.id),
        }]});
        Ok(json_response(StatusCode::OK, &body))
    })
}

// ---------------------------------------------------------------------------
// POST /crm/v8/{module}/upsert
// ---------------------------------------------------------------------------

pub(super) async fn upsert(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, &[Module::Leads, Module::Contacts])?;
        let (items, whole) = parse_body(&body)?;
        let schema = shared.schema().clone();
        let duplicate_fields =
            duplicate_check_fields(&schema, module, whole.get("duplicate_check_fields"))?;
        let checked = check_items(&shared, &schema, module, &items);

        let mut store = shared.crm_store();
        let (org, ids) = store.org_and_ids(target.dc.code, user);
        let answers = checked
            .into_iter()
            .map(|checked| match checked {
                Err(error) => error,
                Ok(checked) => upsert_one(org, ids, module, checked, &duplicate_fields),
            })
            .collect();
        Ok(results(answers, StatusCode::OK))
    })
}

fn duplicate_check_fields(
    schema: &ZohoSchema,
    module: Module,
    given: Option<&Value>,
) -> Result<Vec<String>, Reject> {
    let bad = || -> Reject {
        zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            json!({"api_name": "duplicate_check_fields", "json_path": "$.duplicate_check_fields"}),
            "invalid data",
        )
        .into()
    };
    match given {
        None | Some(Value::Null) => Ok(vec!["Email".to_owned()]),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| {
                name.as_str()
                    .filter(|n| schema.field(module, n).is_some())
                    .map(str::to_owned)
                    .ok_or_else(bad)
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn upsert_one(
    org: &mut Org,
    ids: &mut IdGen,
    module: Module,
    checked: Checked,
    duplicate_fields: &[String],
) -> Value {
    let record = checked.record;
    let found = duplicate_fields.iter().find_map(|field| {
        let wanted = str_field(&record, field).filter(|v| !v.trim().is_empty())?;
        org.records
            .get(&module)?
            .values()
            .filter(|stored| !stored.converted)
            .find(|stored| same_value(field, stored.fields.get(field), wanted))
            .map(|stored| (stored.id.clone(), field.clone()))
    });
    let (stored, action, duplicate_field) = match found {
        Some((id, field)) => match org.merge(module, &id, writable(&record)) {
            Some(stored) => (stored, "update", Value::from(field)),
            None => return invalid_id("$.data[0].id"),
        },
        None => {
            if let Some(missing) = checked.missing_on_insert {
                return missing;
            }
            let stored = org.create(ids, module, without_nulls(writable(&record)), None);
            (stored, "insert", Value::Null)
        }
    };
    let message = if action == "insert" {
        "record added"
    } else {
        "record updated"
    };
    let mut answer = org.success(&stored, message);
    answer["action"] = Value::from(action);
    answer["duplicate_field"] = duplicate_field;
    answer
}

// ---------------------------------------------------------------------------
// POST /crm/v8/{module} (insert; Notes create)
// ---------------------------------------------------------------------------

pub(super) async fn insert(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, WRITABLE)?;
        let (items, _) = parse_body(&body)?;
        let schema = shared.schema().clone();
        if module == Module::Notes {
            return Ok(create_notes(
                &shared,
                &schema,
                target.dc.code,
                user,
                &items,
                None,
            ));
        }
        let checked: Vec<Result<Checked, Value>> = check_items(&shared, &schema, module, &items)
            .into_iter()
            .enumerate()
            .map(|(i, checked)| {
                let checked = checked?;
                if let Some(missing) = checked.missing_on_insert {
                    return Err(missing);
                }
                if module == Module::Deals {
                    let fields = &checked.record;
                    if let Some(problem) = stage_problem(
                        &schema.pipelines,
                        str_field(fields, "Pipeline"),
                        str_field(fields, "Stage"),
                        &format!("$.data[{i}].Stage"),
                    ) {
                        return Err(problem);
                    }
                }
                Ok(checked)
            })
            .collect();
        let mut store = shared.crm_store();
        let (org, ids) = store.org_and_ids(target.dc.code, user);
        let answers = checked
            .into_iter()
            .map(|checked| match checked {
                Err(error) => error,
                Ok(checked) => {
                    let stored =
                        org.create(ids, module, without_nulls(writable(&checked.record)), None);
                    org.success(&stored, "record added")
                }
            })
            .collect();
        Ok(results(answers, StatusCode::CREATED))
    })
}

// ---------------------------------------------------------------------------
// PUT/GET/DELETE /crm/v8/{module}/{id}
// ---------------------------------------------------------------------------

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, WRITABLE)?;
        let (items, _) = parse_body(&body)?;
        let schema = shared.schema().clone();
        let checked = check_item(&schema, module, &items[0], 0).map_err(failed)?;
        let mut store = shared.crm_store();
        let org = store.org_mut(target.dc.code, user);
        let answer = update_one(org, &schema, module, &id, checked, 0).map_err(failed)?;
        Ok(results(vec![answer], StatusCode::OK))
    })
}

/// The record `id` of `module` updated with the checked record at `index` of the request: a
/// note stays on its record, a deal's stage must be one of its pipeline's. Its answer.
fn update_one(
    org: &mut Org,
    schema: &ZohoSchema,
    module: Module,
    id: &str,
    mut checked: Checked,
    index: usize,
) -> Result<Value, Value> {
    let id_path = format!("$.data[{index}].id");
    let Some(current) = org.usable(module, id) else {
        return Err(invalid_id(&id_path));
    };
    if module == Module::Notes {
        // A note stays on its record.
        checked.record.remove("Parent_Id");
        checked.record.remove("se_module");
    }
    if module == Module::Deals {
        let fields = &checked.record;
        if fields.contains_key("Stage") || fields.contains_key("Pipeline") {
            let pipeline = str_field(fields, "Pipeline").or(str_field(&current.fields, "Pipeline"));
            let stage = str_field(fields, "Stage").or(str_field(&current.fields, "Stage"));
            let stage_path = format!("$.data[{index}].Stage");
            if let Some(problem) = stage_problem(&schema.pipelines, pipeline, stage, &stage_path) {
                return Err(problem);
            }
        }
    }
    let stored = org
        .merge(module, id, writable(&checked.record))
        .ok_or_else(|| invalid_id(&id_path))?;
    Ok(org.success(&stored, "record updated"))
}

/// `PUT /crm/v8/{module}`: many records updated by the `id` each carries, one result per
/// record (a missing or unknown id is that record's `INVALID_DATA id`). Leads, Contacts and
/// Notes (a note stays on its record).
pub(super) async fn update_many(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, &[Module::Leads, Module::Contacts, Module::Notes])?;
        let (items, _) = parse_body(&body)?;
        let schema = shared.schema().clone();
        let checked = check_items(&shared, &schema, module, &items);
        let mut store = shared.crm_store();
        let org = store.org_mut(target.dc.code, user);
        let answers = checked
            .into_iter()
            .enumerate()
            .map(|(i, checked)| {
                let checked = checked?;
                let Some(id) = str_field(&checked.record, "id").map(str::to_owned) else {
                    return Err(mandatory_not_found("id", &format!("$.data[{i}].id")));
                };
                update_one(org, &schema, module, &id, checked, i)
            })
            .map(|answer: Result<Value, Value>| answer.unwrap_or_else(|error| error))
            .collect();
        Ok(results(answers, StatusCode::OK))
    })
}

/// `?converted=true|false|both` picks converted leads, unconverted ones (the default) or
/// either, as Zoho's records API does; a record outside the choice answers 204.
pub(super) async fn read(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = Module::parse(&module).ok_or_else(invalid_module)?;
        let wanted = |converted: bool| match params.get("converted").map(String::as_str) {
            Some("true") => converted,
            Some("both") => true,
            _ => !converted,
        };
        let store = shared.crm_store();
        let found = store.org(target.dc.code, user).and_then(|org| {
            let stored = org.get(module, &id).filter(|s| wanted(s.converted))?;
            Some((org, stored))
        });
        Ok(match found {
            Some((org, stored)) => json_response(
                StatusCode::OK,
                &json!({"data": [org.record_json(module, stored)]}),
            ),
            None => StatusCode::NO_CONTENT.into_response(),
        })
    })
}

pub(super) async fn delete(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = Module::parse(&module).ok_or_else(invalid_module)?;
        let mut store = shared.crm_store();
        let org = store.org_mut(target.dc.code, user);
        if org.usable(module, &id).is_none() || !org.remove(module, &id) {
            return Err(failed(invalid_id("$.data[0].id")));
        }
        let item = json!({
            "code": "SUCCESS",
            "details": {"id": id},
            "message": "record deleted",
            "status": "success",
        });
        Ok(results(vec![item], StatusCode::OK))
    })
}

// ---------------------------------------------------------------------------
// GET /crm/v8/{module}/search
// ---------------------------------------------------------------------------

/// `?email=`, `?phone=`, `?word=` or a one-condition
/// `?criteria=(Field:equals|starts_with:value)`; unconverted records only.
pub(super) async fn search(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, RECORDS)?;
        let matcher = search_matcher(&params)?;
        let store = shared.crm_store();
        let Some(org) = store.org(target.dc.code, user) else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        let found: Vec<Value> = org
            .records
            .get(&module)
            .into_iter()
            .flat_map(|table| table.values())
            .filter(|stored| !stored.converted && matcher(&stored.fields))
            .map(|stored| org.record_json(module, stored))
            .collect();
        if found.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let info = json!({
            "per_page": 200,
            "count": found.len(),
            "page": 1,
            "more_records": false,
        });
        Ok(json_response(
            StatusCode::OK,
            &json!({"data": found, "info": info}),
        ))
    })
}

type Matcher = Box<dyn Fn(&Map<String, Value>) -> bool>;

fn search_matcher(params: &HashMap<String, String>) -> Result<Matcher, Reject> {
    let param = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    if let Some(email) = param("email") {
        return Ok(Box::new(move |f| {
            same_value("Email", f.get("Email"), &email)
        }));
    }
    if let Some(phone) = param("phone") {
        return Ok(Box::new(move |f| {
            same_value("Phone", f.get("Phone"), &phone)
                || same_value("Mobile", f.get("Mobile"), &phone)
        }));
    }
    if let Some(word) = param("word") {
        let word = word.to_lowercase();
        return Ok(Box::new(move |f| {
            f.values()
                .filter_map(Value::as_str)
                .any(|v| v.to_lowercase().contains(&word))
        }));
    }
    if let Some(criteria) = param("criteria") {
        let inner = criteria
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')');
        let mut parts = inner.splitn(3, ':');
        if let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) {
            let (field, value) = (field.to_owned(), value.to_owned());
            match op {
                "equals" => {
                    return Ok(Box::new(move |f| same_value(&field, f.get(&field), &value)))
                }
                "starts_with" => {
                    return Ok(Box::new(move |f| {
                        str_field(f, &field).is_some_and(|v| v.starts_with(value.as_str()))
                    }))
                }
                _ => {}
            }
        }
        return Err(zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
            json!({"param_name": "criteria"}),
            "invalid query formed (the simulator supports one equals/starts_with condition)",
        )
        .into());
    }
    Err(zoho_error(
        StatusCode::BAD_REQUEST,
        "REQUIRED_PARAM_MISSING",
        json!({"param": ["criteria", "email", "phone", "word"]}),
        "One of the expected parameter is missing",
    )
    .into())
}

// ---------------------------------------------------------------------------
// Notes: POST /crm/v8/Notes, POST /crm/v8/{module}/{id}/Notes
// ---------------------------------------------------------------------------

pub(super) async fn add_note(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, RECORDS)?;
        let (items, _) = parse_body(&body)?;
        let schema = shared.schema().clone();
        Ok(create_notes(
            &shared,
            &schema,
            target.dc.code,
            user,
            &items,
            Some((module, id)),
        ))
    })
}

/// `GET /crm/v8/{module}/{id}/Notes?fields=...&page=&per_page=`: the record's notes, oldest
/// first, 200 at most a page; `fields` is mandatory (Zoho's v6+ notes API); 204 when none.
pub(super) async fn list_notes(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |user| {
        let module = api_module(&module, RECORDS)?;
        let Some(fields) = params.get("fields").filter(|f| !f.trim().is_empty()) else {
            return Err(zoho_error(
                StatusCode::BAD_REQUEST,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "fields"}),
                "One of the expected parameter is missing",
            )
            .into());
        };
        let number = |name: &str, default: usize| {
            params
                .get(name)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let per_page = number("per_page", 200).clamp(1, 200);
        let page = number("page", 1).max(1);
        let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
        let store = shared.crm_store();
        let Some(org) = store.org(target.dc.code, user) else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        if org.usable(module, &id).is_none() {
            return Err(zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                json!({"api_name": "id"}),
                INVALID_ID_MESSAGE,
            )
            .into());
        }
        let notes: Vec<&Stored> = org
            .records
            .get(&Module::Notes)
            .into_iter()
            .flat_map(|t| t.values())
            .filter(|note| {
                note.parent
                    .as_ref()
                    .is_some_and(|p| p.module == module.name() && p.id == id)
            })
            .collect();
        let shown: Vec<Value> = notes
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|note| {
                let full = org.record_json(Module::Notes, note);
                let mut map = Map::new();
                map.insert("id".into(), json!(note.id));
                for name in &wanted {
                    if let Some(value) = full.get(*name) {
                        map.insert((*name).to_owned(), value.clone());
                    }
                }
                Value::Object(map)
            })
            .collect();
        if shown.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let info = json!({
            "per_page": per_page,
            "count": shown.len(),
            "page": page,
            "more_records": notes.len() > page * per_page,
        });
        Ok(json_response(
            StatusCode::OK,
            &json!({"data": shown, "info": info}),
        ))
    })
}

fn create_notes(
    shared: &Shared,
    schema: &ZohoSchema,
    dc: &str,
    user: &str,
    items: &[Value],
    path_parent: Option<(Module, String)>,
) -> Response {
    let refused: Vec<Option<Value>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| shared.refusal(Module::Notes, item, i))
        .collect();
    let mut store = shared.crm_store();
    let (org, ids) = store.org_and_ids(dc, user);
    let answers = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if let Some(refused) = &refused[i] {
                return refused.clone();
            }
            let path = format!("$.data[{i}]");
            let Some(record) = item.as_object() else {
                return record_error("INVALID_DATA", json!({"json_path": path}), "invalid data");
            };
            let mut fields = record.clone();
            let parent_given = fields.remove("Parent_Id");
            let module_given = fields
                .remove("se_module")
                .or_else(|| fields.remove("$se_module"));
            if let Err(error) = schema.validate(Module::Notes, &fields, &path) {
                return error;
            }
            if fields.get("Note_Content").is_none_or(is_blank) {
                return mandatory_not_found("Note_Content", &format!("{path}.Note_Content"));
            }
            let parent_path = format!("{path}.Parent_Id");
            let parent = match &path_parent {
                Some((module, id)) => Some((Some(*module), id.clone())),
                None => note_parent(parent_given.as_ref(), module_given.as_ref()),
            };
            let Some((module, id)) = parent else {
                return mandatory_not_found("Parent_Id", &parent_path);
            };
            let parent_ok = module
                .filter(|m| *m != Module::Notes)
                .filter(|m| org.usable(*m, &id).is_some());
            let Some(module) = parent_ok else {
                return record_error(
                    "INVALID_DATA",
                    json!({"api_name": "Parent_Id", "json_path": parent_path}),
                    INVALID_ID_MESSAGE,
                );
            };
            let parent = ZohoParent {
                module: module.name().to_owned(),
                id,
            };
            let stored = org.create(
                ids,
                Module::Notes,
                without_nulls(writable(&fields)),
                Some(parent),
            );
            org.success(&stored, "record added")
        })
        .collect();
    results(answers, StatusCode::CREATED)
}

/// `Parent_Id: {"module": {"api_name"}, "id"}`, or the older
/// `Parent_Id: "id"` with `se_module`. `None` when no id was given; a module
/// of `None` is an unknown one.
fn note_parent(
    parent: Option<&Value>,
    se_module: Option<&Value>,
) -> Option<(Option<Module>, String)> {
    let parent = parent?;
    let id = match parent {
        Value::String(id) => id.clone(),
        Value::Object(object) => match object.get("id")? {
            Value::String(id) => id.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        },
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    let module_name = parent
        .get("module")
        .and_then(|m| m.get("api_name").or(Some(m)))
        .and_then(Value::as_str)
        .or_else(|| se_module.and_then(Value::as_str))
        .unwrap_or_default();
    Some((Module::parse(module_name), id))
}

// ---------------------------------------------------------------------------
// POST /crm/v8/Leads/{id}/actions/convert
// ---------------------------------------------------------------------------

pub(super) async fn convert(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path((version, module, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.api(&headers, &target, &version, CONVERT_CREDITS, |user| {
        api_module(&module, &[Module::Leads])?;
        let options = if body.trim().is_empty() {
            Map::new()
        } else {
            let (items, _) = parse_body(&body)?;
            match &items[0] {
                Value::Object(options) => options.clone(),
                _ => return Err(failed(invalid_data("data", "$.data[0]", None))),
            }
        };
        let schema = shared.schema().clone();

        let mut store = shared.crm_store();
        let (org, ids) = store.org_and_ids(target.dc.code, user);
        let Some(lead) = org.get(Module::Leads, &id).cloned() else {
            return Err(failed(invalid_id("$.data[0].id")));
        };
        if lead.converted {
            return Err(zoho_error(
                StatusCode::BAD_REQUEST,
                "ID_ALREADY_CONVERTED",
                json!({"resource_path_index": 1}),
                "id already converted",
            )
            .into());
        }
        let deal = conversion_deal(&schema, options.get("Deals")).map_err(failed)?;
        let existing = |module: Module, key: &str| -> Result<Option<Stored>, Reject> {
            let Some(wanted) = options.get(key).filter(|v| !v.is_null()) else {
                return Ok(None);
            };
            let id = wanted.get("id").and_then(Value::as_str).unwrap_or_default();
            org.get(module, id).cloned().map(Some).ok_or_else(|| {
                failed(record_error(
                    "INVALID_DATA",
                    json!({"api_name": key, "json_path": format!("$.data[0].{key}")}),
                    INVALID_ID_MESSAGE,
                ))
            })
        };
        let existing_contact = existing(Module::Contacts, "Contacts")?;
        let existing_account = existing(Module::Accounts, "Accounts")?;
        let overwrite = options.get("overwrite").and_then(Value::as_bool) == Some(true);

        let lead_text = |name: &str| {
            str_field(&lead.fields, name)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_owned)
        };
        let account = match existing_account {
            Some(account) => Some(account),
            None => lead_text("Company").map(|company| {
                let fields = Map::from_iter([("Account_Name".to_owned(), json!(company))]);
                org.create(ids, Module::Accounts, fields, None)
            }),
        };
        let account_ref = account.as_ref().map(|a| {
            json!({"name": str_field(&a.fields, "Account_Name").unwrap_or_default(), "id": a.id})
        });

        let mut person = Map::new();
        for name in ["First_Name", "Last_Name", "Email", "Phone", "Lead_Source"] {
            if let Some(value) = lead.fields.get(name) {
                person.insert(name.to_owned(), value.clone());
            }
        }
        if let Some(account_ref) = &account_ref {
            person.insert("Account_Name".to_owned(), account_ref.clone());
        }
        let contact = match existing_contact {
            Some(contact) if overwrite => org
                .merge(Module::Contacts, &contact.id, person)
                .unwrap_or(contact),
            Some(contact) => contact,
            None => org.create(ids, Module::Contacts, person, None),
        };
        let contact_ref = json!({"name": full_name(&contact.fields), "id": contact.id});

        let deal_ref = deal.map(|mut fields| {
            fields.insert("Contact_Name".to_owned(), contact_ref.clone());
            if let Some(account_ref) = &account_ref {
                fields.insert("Account_Name".to_owned(), account_ref.clone());
            }
            if let (false, Some(source)) = (fields.contains_key("Lead_Source"), lead.fields.get("Lead_Source")) {
                fields.insert("Lead_Source".to_owned(), source.clone());
            }
            let stored = org.create(ids, Module::Deals, fields, None);
            json!({"name": str_field(&stored.fields, "Deal_Name").unwrap_or_default(), "id": stored.id})
        });

        if let Some(stored) = org.table(Module::Leads).get_mut(&id) {
            stored.converted = true;
            stored.modified = Utc::now();
            stored.converted_detail = Some(json!({
                "contact": contact_ref,
                "deal": deal_ref,
                "account": account_ref,
                "converted_date_time": zoho_time(stored.modified),
            }));
        }
        for note in org.table(Module::Notes).values_mut() {
            let on_lead = note
                .parent
                .as_ref()
                .is_some_and(|p| p.module == Module::Leads.name() && p.id == id);
            if on_lead {
                note.parent = Some(ZohoParent {
                    module: Module::Contacts.name().to_owned(),
                    id: contact.id.clone(),
                });
            }
        }

        let item = json!({
            "code": "SUCCESS",
            "details": {
                "Contacts": contact_ref,
                "Deals": deal_ref,
                "Accounts": account_ref,
            },
            "message": "The record has been converted successfully",
            "status": "success",
        });
        Ok(results(vec![item], StatusCode::OK))
    })
}

/// The `Deals` object of a conversion: Deal_Name, Closing_Date, Stage and
/// Pipeline required, fields valid, Stage in Pipeline.
fn conversion_deal(
    schema: &ZohoSchema,
    given: Option<&Value>,
) -> Result<Option<Map<String, Value>>, Value> {
    let deal = match given {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(deal)) => deal,
        Some(_) => return Err(invalid_data("Deals", "$.data[0].Deals", None)),
    };
    for name in ["Deal_Name", "Closing_Date", "Stage", "Pipeline"] {
        if deal.get(name).is_none_or(is_blank) {
            return Err(mandatory_not_found(
                name,
                &format!("$.data[0].Deals.{name}"),
            ));
        }
    }
    schema.validate(Module::Deals, deal, "$.data[0].Deals")?;
    if let Some(problem) = stage_problem(
        &schema.pipelines,
        str_field(deal, "Pipeline"),
        str_field(deal, "Stage"),
        "$.data[0].Stage",
    ) {
        return Err(problem);
    }
    Ok(Some(without_nulls(writable(deal))))
}

// ---------------------------------------------------------------------------
// GET /_sim/state (simulator only) and test seeding
// ---------------------------------------------------------------------------

pub(super) async fn sim_state(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let code = params
        .get("dc")
        .cloned()
        .unwrap_or_else(|| shared.config.default_dc.clone());
    match dc(&code) {
        Some(dc) => json_response(StatusCode::OK, &state_json(&shared, dc)),
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("unknown data centre {code:?}")}),
        ),
    }
}

/// Everything of one data centre, for the demo and for debugging.
pub(super) fn state_json(shared: &Shared, dc: &ZohoDc) -> Value {
    let tokens = shared.auth().state_json(dc.code);
    let store = shared.crm_store();
    let orgs: Vec<Value> = store
        .orgs_of(dc.code)
        .map(|org| {
            json!({
                "id": org.id,
                "user": org.user,
                "company_name": shared.config.company_name,
                "credits_used": org.credits_used,
            })
        })
        .collect();
    let mut body = json!({
        "simulator": "Zoho CRM simulator state (not a Zoho API)",
        "dc": dc.code,
        "accounts_server": dc.accounts_server(),
        "api_domain": dc.api_domain(),
        "orgs": orgs,
        "tokens": tokens,
    });
    for module in Module::ALL {
        let mut list: Vec<(String, Value)> = store
            .orgs_of(dc.code)
            .flat_map(|org| {
                org.records
                    .get(&module)
                    .into_iter()
                    .flat_map(|t| t.values())
                    .map(move |stored| {
                        let mut json = org.record_json(module, stored);
                        json["$org_user"] = json!(org.user);
                        (stored.id.clone(), json)
                    })
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        body[module.name().to_ascii_lowercase()] =
            Value::Array(list.into_iter().map(|(_, v)| v).collect());
    }
    body
}

/// Insert a lead without a request (validated like an insert).
pub(super) fn seed_lead(
    shared: &Shared,
    dc: &str,
    user: &str,
    fields: &Value,
) -> Result<String, String> {
    let schema = shared.schema().clone();
    let checked = check_item(&schema, Module::Leads, fields, 0).map_err(|e| e.to_string())?;
    if let Some(missing) = checked.missing_on_insert {
        return Err(missing.to_string());
    }
    let mut store = shared.crm_store();
    let (org, ids) = store.org_and_ids(dc, user);
    let stored = org.create(
        ids,
        Module::Leads,
        without_nulls(writable(&checked.record)),
        None,
    );
    Ok(stored.id)
}
