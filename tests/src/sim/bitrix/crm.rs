//! One portal's CRM (contacts, deals, timeline comments, deal pipelines) and
//! the REST methods on it, behind the checks every REST call goes through
//! (auth, payment, plan, rate limit).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::oauth::AccessError;
use super::params::{self, as_id, param, scalar_string, text};
use super::{
    b24_error, json_response, query_limit_exceeded, BitrixComment, BitrixRecord, Ctx, Shared,
    DEFAULT_OAUTH_HOST, MAX_FINDBYCOMM_VALUES,
};
use crate::sim::server::Reject;

/// `crmEntityTypeId` of deals (the only type `crm.category.list` serves).
const DEAL_ENTITY_TYPE_ID: i64 = 2;
/// The error code of an unknown REST method (answered 404).
const METHOD_NOT_FOUND: &str = "ERROR_METHOD_NOT_FOUND";
/// Multi-value fields: arrays of `{ID, VALUE_TYPE, VALUE, TYPE_ID}`.
const MULTI_FIELDS: [&str; 4] = ["PHONE", "EMAIL", "WEB", "IM"];
/// The default pipeline's stages: (status id, name, semantics).
const DEFAULT_STAGES: [(&str, &str, Option<&str>); 7] = [
    ("NEW", "New", None),
    ("PREPARATION", "Preparing documents", None),
    ("PREPAYMENT_INVOICE", "Invoice", None),
    ("EXECUTING", "In progress", None),
    ("FINAL_INVOICE", "Final invoice", None),
    ("WON", "Deal won", Some("S")),
    ("LOSE", "Deal lost", Some("F")),
];

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

pub(crate) struct Portal {
    pub(crate) host: String,
    pub(crate) member_id: String,
    pub(crate) oauth_server: String,
    pub(crate) payment_required: bool,
    pub(crate) rest_denied: bool,
    pub(crate) installed: bool,
    /// Texts a portal rule refuses: an add whose field values contain one answers
    /// `INVALID_ARG_VALUE` (as a required field or a business rule would).
    pub(crate) refused: Vec<String>,
    app_id: i64,
    contacts: BTreeMap<i64, Map<String, Value>>,
    deals: BTreeMap<i64, Map<String, Value>>,
    comments: BTreeMap<i64, BitrixComment>,
    categories: Vec<Category>,
    next_contact: i64,
    next_deal: i64,
    next_comment: i64,
    next_multifield: i64,
    next_status_row: i64,
    next_category: i64,
}

struct Category {
    id: i64,
    name: String,
    sort: i64,
    stages: Vec<Stage>,
}

struct Stage {
    /// The row id of `crm.status.list`.
    row: i64,
    status_id: String,
    name: String,
    sort: i64,
    semantics: Option<String>,
}

impl Category {
    fn entity_id(&self) -> String {
        match self.id {
            0 => "DEAL_STAGE".to_owned(),
            n => format!("DEAL_STAGE_{n}"),
        }
    }

    fn stage(&self, status_id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.status_id == status_id)
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "sort": self.sort,
            "entityTypeId": DEAL_ENTITY_TYPE_ID,
            "isDefault": if self.id == 0 { "Y" } else { "N" },
        })
    }

    fn stage_json(&self, stage: &Stage) -> Value {
        json!({
            "ID": stage.row.to_string(),
            "ENTITY_ID": self.entity_id(),
            "STATUS_ID": stage.status_id,
            "NAME": stage.name,
            "SORT": stage.sort,
            "SEMANTICS": stage.semantics,
            "CATEGORY_ID": self.id.to_string(),
        })
    }
}

impl Portal {
    pub(crate) fn new(host: &str) -> Portal {
        let mut rng = rand::thread_rng();
        let member_id: String = (0..32)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect();
        let mut portal = Portal {
            host: host.to_owned(),
            member_id,
            oauth_server: DEFAULT_OAUTH_HOST.to_owned(),
            payment_required: false,
            rest_denied: false,
            installed: false,
            refused: Vec::new(),
            app_id: rng.gen_range(10..1000),
            contacts: BTreeMap::new(),
            deals: BTreeMap::new(),
            comments: BTreeMap::new(),
            categories: Vec::new(),
            next_contact: 1,
            next_deal: 1,
            next_comment: 1,
            next_multifield: 1,
            next_status_row: 1,
            next_category: 0,
        };
        portal.add_category("General", &[]);
        portal
    }

    /// A pipeline with `stages` (the default seven when empty).
    pub(crate) fn add_category(
        &mut self,
        name: &str,
        stages: &[(&str, &str, Option<&str>)],
    ) -> i64 {
        let id = self.next_category;
        self.next_category += 1;
        let stages = if stages.is_empty() {
            &DEFAULT_STAGES[..]
        } else {
            stages
        };
        let stages = stages
            .iter()
            .enumerate()
            .map(|(index, (suffix, stage_name, semantics))| {
                let row = self.next_status_row;
                self.next_status_row += 1;
                Stage {
                    row,
                    status_id: match id {
                        0 => (*suffix).to_owned(),
                        n => format!("C{n}:{suffix}"),
                    },
                    name: (*stage_name).to_owned(),
                    sort: (index as i64 + 1) * 10,
                    semantics: semantics.map(str::to_owned),
                }
            })
            .collect();
        self.categories.push(Category {
            id,
            name: name.to_owned(),
            sort: (id + 1) * 100,
            stages,
        });
        id
    }

    fn category(&self, id: i64) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    pub(crate) fn seed_contact(&mut self, fields: &Value, date: &str) -> Result<i64, String> {
        let fields = fields
            .as_object()
            .ok_or_else(|| "fields must be a JSON object".to_owned())?;
        self.add_contact(fields, date).map_err(|(_, text)| text)
    }

    pub(crate) fn contact_records(&self) -> Vec<BitrixRecord> {
        self.contacts
            .iter()
            .map(|(id, record)| BitrixRecord {
                id: *id,
                fields: contact_view(record),
            })
            .collect()
    }

    pub(crate) fn deal_records(&self) -> Vec<BitrixRecord> {
        self.deals
            .iter()
            .map(|(id, record)| BitrixRecord {
                id: *id,
                fields: record.clone(),
            })
            .collect()
    }

    pub(crate) fn comment_records(&self) -> Vec<BitrixComment> {
        self.comments.values().cloned().collect()
    }

    pub(crate) fn state_json(&self) -> Value {
        json!({
            "portal": self.host,
            "member_id": self.member_id,
            "oauth_server": self.oauth_server,
            "installed": self.installed,
            "payment_required": self.payment_required,
            "rest_denied": self.rest_denied,
            "categories": self.categories.iter().map(|c| {
                let mut category = c.json();
                category["stages"] = Value::Array(
                    c.stages.iter().map(|s| c.stage_json(s)).collect(),
                );
                category
            }).collect::<Vec<_>>(),
            "contacts": self.contacts.values().map(|r| Value::Object(contact_view(r))).collect::<Vec<_>>(),
            "deals": self.deals.values().map(|r| Value::Object(r.clone())).collect::<Vec<_>>(),
            "comments": self.comments.values().map(comment_json).collect::<Vec<_>>(),
        })
    }

    /// A portal rule's refusal of fields holding a refused text.
    fn check_refused(&self, fields: &Map<String, Value>) -> Result<(), FieldError> {
        let all = Value::Object(fields.clone()).to_string();
        match self.refused.iter().find(|text| all.contains(text.as_str())) {
            Some(text) => Err(invalid_arg(&format!(
                "A portal rule refuses records holding {text:?}"
            ))),
            None => Ok(()),
        }
    }

    // -- contacts -------------------------------------------------------------

    fn add_contact(&mut self, fields: &Map<String, Value>, date: &str) -> Result<i64, FieldError> {
        let mut record = Map::new();
        for key in [
            "NAME",
            "SECOND_NAME",
            "LAST_NAME",
            "POST",
            "TYPE_ID",
            "SOURCE_ID",
            "SOURCE_DESCRIPTION",
            "COMMENTS",
        ] {
            record.insert(key.to_owned(), Value::Null);
        }
        for key in ["ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID"] {
            record.insert(key.to_owned(), json!("1"));
        }
        record.insert("OPENED".to_owned(), json!("Y"));
        record.insert("DATE_CREATE".to_owned(), json!(date));
        self.apply_contact_fields(&mut record, fields)?;
        let id = self.next_contact;
        self.next_contact += 1;
        record.insert("ID".to_owned(), json!(id.to_string()));
        record.insert("DATE_MODIFY".to_owned(), json!(date));
        self.contacts.insert(id, record);
        Ok(id)
    }

    /// Write `fields` into `record` (multi-fields merged as Bitrix24 does).
    fn apply_contact_fields(
        &mut self,
        record: &mut Map<String, Value>,
        fields: &Map<String, Value>,
    ) -> Result<(), FieldError> {
        for (key, value) in fields {
            let key = key.to_ascii_uppercase();
            if matches!(key.as_str(), "ID" | "DATE_CREATE" | "DATE_MODIFY") {
                continue;
            }
            if MULTI_FIELDS.contains(&key.as_str()) {
                let mut current = match record.get(&key) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                self.merge_multi(&mut current, &key, value)?;
                record.insert(key, Value::Array(current));
            } else {
                record.insert(key, scalar_string(value));
            }
        }
        Ok(())
    }

    /// Without `ID`: append. With the `ID` of a value: replace its `VALUE`
    /// and/or `VALUE_TYPE` (an empty `VALUE` deletes it). Other `ID`s are ignored.
    fn merge_multi(
        &mut self,
        current: &mut Vec<Value>,
        type_id: &str,
        incoming: &Value,
    ) -> Result<(), FieldError> {
        let entries: Vec<Value> = match incoming {
            Value::Array(items) => items.clone(),
            Value::Object(map) if map.keys().any(|k| k.eq_ignore_ascii_case("VALUE")) => {
                vec![incoming.clone()]
            }
            Value::Object(map) => map.values().cloned().collect(),
            Value::Null => Vec::new(),
            scalar => vec![json!({"VALUE": scalar})],
        };
        for entry in entries {
            let entry = match entry {
                Value::Object(map) => map
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_uppercase(), v))
                    .collect::<Map<_, _>>(),
                scalar => {
                    let mut map = Map::new();
                    map.insert("VALUE".to_owned(), scalar);
                    map
                }
            };
            let value = entry.get("VALUE").map(text).unwrap_or_default();
            let value = value.trim().to_owned();
            let value_type = entry
                .get("VALUE_TYPE")
                .map(text)
                .filter(|t| !t.is_empty())
                .map(|t| t.to_ascii_uppercase());
            if !value.is_empty() && type_id == "EMAIL" && !valid_email(&value) {
                return Err(invalid_arg(&format!("Invalid e-mail address: {value}")));
            }
            if let Some(id) = entry.get("ID").and_then(as_id) {
                let id = id.to_string();
                let Some(index) = current.iter().position(|v| v["ID"] == json!(id)) else {
                    continue;
                };
                let has_value = entry.contains_key("VALUE");
                if has_value && value.is_empty() {
                    current.remove(index);
                    continue;
                }
                if has_value {
                    current[index]["VALUE"] = json!(value);
                }
                if let Some(value_type) = value_type {
                    current[index]["VALUE_TYPE"] = json!(value_type);
                }
            } else if !value.is_empty() {
                let id = self.next_multifield;
                self.next_multifield += 1;
                current.push(json!({
                    "ID": id.to_string(),
                    "VALUE_TYPE": value_type.unwrap_or_else(|| "WORK".to_owned()),
                    "VALUE": value,
                    "TYPE_ID": type_id,
                }));
            }
        }
        Ok(())
    }

    // -- deals ------------------------------------------------------------------

    /// Check `CONTACT_ID` / `CONTACT_IDS` of deal fields.
    fn check_deal_contacts(&self, fields: &Map<String, Value>) -> Result<(), FieldError> {
        let mut ids = Vec::new();
        if let Some(value) = field(fields, "CONTACT_ID") {
            if !is_blank(value) {
                ids.push(as_id(value).ok_or_else(|| invalid_arg("CONTACT_ID is not valid"))?);
            }
        }
        if let Some(Value::Array(values)) = field(fields, "CONTACT_IDS") {
            for value in values {
                ids.push(as_id(value).ok_or_else(|| invalid_arg("CONTACT_IDS is not valid"))?);
            }
        }
        match ids
            .into_iter()
            .find(|id| *id != 0 && !self.contacts.contains_key(id))
        {
            Some(id) => Err(invalid_arg(&format!(
                "CONTACT_ID: contact with ID {id} is not found"
            ))),
            None => Ok(()),
        }
    }

    /// The stage a deal of `category` gets from `fields` (the first stage
    /// when `STAGE_ID` is absent; `None` when absent and `keep` is true).
    fn resolve_stage(
        &self,
        category: i64,
        fields: &Map<String, Value>,
        keep: bool,
    ) -> Result<Option<(String, &'static str)>, FieldError> {
        let category = self.category(category).ok_or_else(|| {
            invalid_arg(&format!("CATEGORY_ID: category {category} is not found"))
        })?;
        let requested = field(fields, "STAGE_ID").map(text).unwrap_or_default();
        let stage = if requested.is_empty() {
            if keep {
                return Ok(None);
            }
            category
                .stages
                .iter()
                .min_by_key(|s| s.sort)
                .ok_or_else(|| invalid_arg("CATEGORY_ID: the category has no stages"))?
        } else {
            category.stage(&requested).ok_or_else(|| {
                invalid_arg(&format!(
                    "STAGE_ID: stage '{requested}' does not belong to the deal category {}",
                    category.id
                ))
            })?
        };
        let semantic = match stage.semantics.as_deref() {
            Some("S") => "S",
            Some("F") => "F",
            _ => "P",
        };
        Ok(Some((stage.status_id.clone(), semantic)))
    }

    fn add_deal(&mut self, fields: &Map<String, Value>, date: &str) -> Result<i64, FieldError> {
        let category = match field(fields, "CATEGORY_ID") {
            Some(value) if !is_blank(value) => {
                as_id(value).ok_or_else(|| invalid_arg("CATEGORY_ID is not valid"))?
            }
            _ => 0,
        };
        let (stage, semantic) = self
            .resolve_stage(category, fields, false)?
            .unwrap_or_default();
        self.check_deal_contacts(fields)?;
        let id = self.next_deal;
        self.next_deal += 1;
        let mut record = Map::new();
        for key in [
            "TITLE",
            "TYPE_ID",
            "CONTACT_ID",
            "OPPORTUNITY",
            "CURRENCY_ID",
            "SOURCE_ID",
            "SOURCE_DESCRIPTION",
            "COMMENTS",
        ] {
            record.insert(key.to_owned(), Value::Null);
        }
        record.insert("ASSIGNED_BY_ID".to_owned(), json!("1"));
        record.insert("OPENED".to_owned(), json!("Y"));
        record.insert("DATE_CREATE".to_owned(), json!(date));
        write_deal_fields(&mut record, fields);
        record.insert("ID".to_owned(), json!(id.to_string()));
        record.insert("CATEGORY_ID".to_owned(), json!(category.to_string()));
        set_stage(&mut record, stage, semantic);
        if record.get("TITLE").is_none_or(is_blank) {
            record.insert("TITLE".to_owned(), json!(format!("Deal #{id}")));
        }
        record.insert("DATE_MODIFY".to_owned(), json!(date));
        self.deals.insert(id, record);
        Ok(id)
    }

    fn update_deal(
        &mut self,
        id: i64,
        fields: &Map<String, Value>,
        date: &str,
    ) -> Result<(), FieldError> {
        let category = match self.deals.get(&id) {
            Some(deal) => deal.get("CATEGORY_ID").and_then(as_id).unwrap_or_default(),
            None => return Err(not_found()),
        };
        let stage = self.resolve_stage(category, fields, true)?;
        self.check_deal_contacts(fields)?;
        let Some(record) = self.deals.get_mut(&id) else {
            return Err(not_found());
        };
        write_deal_fields(record, fields);
        if let Some((stage, semantic)) = stage {
            set_stage(record, stage, semantic);
        }
        record.insert("DATE_MODIFY".to_owned(), json!(date));
        Ok(())
    }

    // -- comments ---------------------------------------------------------------

    fn owner_exists(&self, entity_type: &str, entity_id: i64) -> bool {
        match entity_type {
            "deal" => self.deals.contains_key(&entity_id),
            "contact" => self.contacts.contains_key(&entity_id),
            _ => false,
        }
    }
}

fn write_deal_fields(record: &mut Map<String, Value>, fields: &Map<String, Value>) {
    for (key, value) in fields {
        let key = key.to_ascii_uppercase();
        match key.as_str() {
            "ID" | "CATEGORY_ID" | "STAGE_ID" | "STAGE_SEMANTIC_ID" | "CLOSED" | "DATE_CREATE"
            | "DATE_MODIFY" => {}
            "OPPORTUNITY" => {
                let amount = text(value).trim().parse::<f64>().ok();
                let stored = match amount {
                    Some(amount) => json!(format!("{amount:.2}")),
                    None => scalar_string(value),
                };
                record.insert(key, stored);
            }
            _ => {
                record.insert(key, scalar_string(value));
            }
        }
    }
}

fn set_stage(record: &mut Map<String, Value>, stage: String, semantic: &str) {
    record.insert("STAGE_ID".to_owned(), json!(stage));
    record.insert("STAGE_SEMANTIC_ID".to_owned(), json!(semantic));
    record.insert(
        "CLOSED".to_owned(),
        json!(if semantic == "P" { "N" } else { "Y" }),
    );
}

/// A contact as `crm.contact.get` answers it: `HAS_PHONE`/`HAS_EMAIL`
/// computed, empty multi-fields left out.
fn contact_view(record: &Map<String, Value>) -> Map<String, Value> {
    let mut view = record.clone();
    for key in MULTI_FIELDS {
        if view
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            view.remove(key);
        }
    }
    let has = |key: &str| if view.contains_key(key) { "Y" } else { "N" };
    let (phone, email) = (has("PHONE"), has("EMAIL"));
    view.insert("HAS_PHONE".to_owned(), json!(phone));
    view.insert("HAS_EMAIL".to_owned(), json!(email));
    view
}

fn comment_json(comment: &BitrixComment) -> Value {
    json!({
        "ID": comment.id.to_string(),
        "ENTITY_TYPE": comment.entity_type,
        "ENTITY_ID": comment.entity_id.to_string(),
        "COMMENT": comment.comment,
        "AUTHOR_ID": "1",
    })
}

/// A field of a `fields` object, case-insensitively.
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    param(fields, name)
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(char::is_whitespace)
}

// ---------------------------------------------------------------------------
// POST /rest/{method}
// ---------------------------------------------------------------------------

/// A field-level error: (error code, description), answered as 400.
type FieldError = (String, String);

fn invalid_arg(description: &str) -> FieldError {
    ("INVALID_ARG_VALUE".to_owned(), description.to_owned())
}

fn not_found() -> FieldError {
    ("NOT_FOUND".to_owned(), "Not found".to_owned())
}

/// A method's answer: the `result` and, for lists, the `total` and the `start` of the next page.
struct Answer {
    result: Value,
    total: Option<usize>,
    next: Option<usize>,
}

impl From<Value> for Answer {
    fn from(result: Value) -> Self {
        Answer {
            result,
            total: None,
            next: None,
        }
    }
}

/// Most commands one `batch` call may hold.
pub(crate) const MAX_BATCH_COMMANDS: usize = 50;

/// Records a list method serves at once: 50, whatever the request asks.
const LIST_PAGE: usize = 50;

/// The list methods' common part, over `records` (each with its `ID`): equality `filter` on
/// stored fields (an optional `=` prefix on a key), `order` by one field (`ID` compared as a
/// number), `select` (every field but `hidden` ones by default or with `*`), and pages of 50
/// from `start`, with `next` and `total` beside the `result`.
fn list(
    records: Vec<Map<String, Value>>,
    params: &Map<String, Value>,
    hidden: &[&str],
) -> Result<Answer, FieldError> {
    let filter = param(params, "filter")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut conditions = Vec::new();
    for (key, wanted) in &filter {
        let key = key.strip_prefix('=').unwrap_or(key).to_ascii_uppercase();
        if key.starts_with(|c: char| !c.is_ascii_alphabetic()) {
            return Err(invalid_arg(&format!(
                "filter operation on {key} is not supported by the simulator"
            )));
        }
        conditions.push((key, text(wanted)));
    }
    let mut matching: Vec<Map<String, Value>> = records
        .into_iter()
        .filter(|record| {
            conditions.iter().all(|(key, wanted)| {
                record
                    .get(key)
                    .is_some_and(|have| !have.is_null() && text(have) == *wanted)
            })
        })
        .collect();
    let order = param(params, "order")
        .and_then(Value::as_object)
        .and_then(|order| order.iter().next())
        .map(|(key, direction)| {
            (
                key.to_ascii_uppercase(),
                text(direction).eq_ignore_ascii_case("DESC"),
            )
        });
    let (order_key, descending) = order.unwrap_or_else(|| ("ID".to_owned(), false));
    matching.sort_by(|a, b| {
        let (a, b) = (
            a.get(&order_key).cloned().unwrap_or(Value::Null),
            b.get(&order_key).cloned().unwrap_or(Value::Null),
        );
        let ordering = match (as_id(&a), as_id(&b)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => text(&a).cmp(&text(&b)),
        };
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    let select: Vec<String> = match param(params, "select") {
        Some(Value::Array(fields)) => fields
            .iter()
            .map(|f| text(f).to_ascii_uppercase())
            .collect(),
        _ => Vec::new(),
    };
    let everything = select.is_empty() || select.iter().any(|f| f == "*");
    let total = matching.len();
    let start = param(params, "start")
        .and_then(|s| text(s).trim().parse::<usize>().ok())
        .unwrap_or(0);
    let page: Vec<Value> = matching
        .into_iter()
        .skip(start)
        .take(LIST_PAGE)
        .map(|record| {
            let shown = record
                .into_iter()
                .filter(|(key, _)| {
                    key == "ID"
                        || select.contains(key)
                        || (everything && !hidden.contains(&key.as_str()))
                })
                .collect();
            Value::Object(shown)
        })
        .collect();
    let next = (start + page.len() < total).then_some(start + LIST_PAGE);
    Ok(Answer {
        result: Value::Array(page),
        total: Some(total),
        next,
    })
}

pub(super) fn rest(shared: &Shared, ctx: &Ctx, method: &str) -> Response {
    checked_rest(shared, ctx, method).unwrap_or_else(IntoResponse::into_response)
}

fn checked_rest(shared: &Shared, ctx: &Ctx, method: &str) -> Result<Response, Reject> {
    let started = wall_seconds();
    let params = params::request_params(&ctx.raw_query, &ctx.body).map_err(|description| {
        b24_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &description)
    })?;
    let date = shared.date_string();
    let mut state = shared.state();
    let state = &mut *state;
    let Some(portal) = state.portals.iter_mut().find(|p| p.host == ctx.host) else {
        return Err(b24_error(
            StatusCode::NOT_FOUND,
            "PORTAL_NOT_FOUND",
            &format!("No Bitrix24 portal at {}", ctx.host),
        )
        .into());
    };
    let token = param(&params, "auth").map(text).unwrap_or_default();
    if token.is_empty() {
        return Err(b24_error(
            StatusCode::UNAUTHORIZED,
            "NO_AUTH_FOUND",
            "Wrong authorization data",
        )
        .into());
    }
    match state.auth.check_access(&token, &portal.host) {
        Ok(()) => {}
        Err(AccessError::Invalid) => {
            return Err(b24_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "Unable to authenticate user",
            )
            .into())
        }
        Err(AccessError::Expired) => {
            return Err(b24_error(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                "The access token provided has expired.",
            )
            .into())
        }
    }
    if portal.payment_required {
        return Err(b24_error(
            StatusCode::PAYMENT_REQUIRED,
            "PAYMENT_REQUIRED",
            "Payment required",
        )
        .into());
    }
    if portal.rest_denied {
        return Err(b24_error(
            StatusCode::UNAUTHORIZED,
            "ACCESS_DENIED",
            "REST is available only on commercial plans",
        )
        .into());
    }
    if shared.rate.take(&portal.host).is_err() {
        return Err(query_limit_exceeded().into());
    }
    let answer = call(portal, method, &params, &date).map_err(|(code, description)| {
        let status = if code == METHOD_NOT_FOUND {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        b24_error(status, &code, &description)
    })?;
    let finished = wall_seconds();
    let mut body = json!({
        "result": answer.result,
        "time": {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": finished - started,
            "date_start": date,
            "date_finish": date,
            "operating": 0,
        },
    });
    if let Some(next) = answer.next {
        body["next"] = json!(next);
    }
    if let Some(total) = answer.total {
        body["total"] = json!(total);
    }
    Ok(json_response(StatusCode::OK, &body))
}

fn wall_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn call(
    portal: &mut Portal,
    method: &str,
    params: &Map<String, Value>,
    date: &str,
) -> Result<Answer, FieldError> {
    match method {
        "batch" => batch(portal, params, date).map(Answer::from),
        "crm.duplicate.findbycomm" => find_by_comm(portal, params).map(Answer::from),
        "crm.contact.add" => {
            let fields = fields_param(params)?;
            portal.check_refused(fields)?;
            portal.add_contact(fields, date).map(|id| json!(id).into())
        }
        "crm.contact.update" => {
            let id = id_param(params)?;
            let fields = fields_param(params)?;
            let mut record = portal.contacts.get(&id).cloned().ok_or_else(not_found)?;
            portal.apply_contact_fields(&mut record, fields)?;
            record.insert("DATE_MODIFY".to_owned(), json!(date));
            portal.contacts.insert(id, record);
            Ok(json!(true).into())
        }
        "crm.contact.get" => {
            let id = id_param(params)?;
            let record = portal.contacts.get(&id).ok_or_else(not_found)?;
            Ok(Value::Object(contact_view(record)).into())
        }
        "crm.deal.add" => {
            let fields = fields_param(params)?;
            portal.check_refused(fields)?;
            portal.add_deal(fields, date).map(|id| json!(id).into())
        }
        "crm.deal.update" => {
            let id = id_param(params)?;
            let fields = fields_param(params)?;
            portal.update_deal(id, fields, date)?;
            Ok(json!(true).into())
        }
        "crm.deal.get" => {
            let id = id_param(params)?;
            let record = portal.deals.get(&id).ok_or_else(not_found)?;
            Ok(Value::Object(record.clone()).into())
        }
        "crm.deal.list" => {
            let deals = portal.deals.values().cloned().collect();
            list(deals, params, &[])
        }
        "crm.contact.list" => {
            let contacts = portal.contacts.values().map(contact_view).collect();
            list(contacts, params, &MULTI_FIELDS)
        }
        "crm.timeline.comment.list" => {
            let filter = param(params, "filter")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            // Both are mandatory in the filter (crm-timeline-comment-list).
            let entity_id = param(&filter, "ENTITY_ID").and_then(as_id);
            let entity_type = param(&filter, "ENTITY_TYPE").map(text);
            if entity_id.is_none() || entity_type.as_deref().is_none_or(str::is_empty) {
                return Err(invalid_arg(
                    "ENTITY_ID and ENTITY_TYPE are required in the filter",
                ));
            }
            let comments = portal
                .comments
                .values()
                .map(|c| match comment_json(c) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                })
                .collect();
            list(comments, params, &["FILES"])
        }
        "crm.timeline.comment.add" => comment_add(portal, params).map(|id| json!(id).into()),
        "crm.timeline.comment.update" => {
            let id = id_param(params)?;
            let fields = fields_param(params)?;
            let comment = comment_text(fields)?;
            let entry = portal.comments.get_mut(&id).ok_or_else(not_found)?;
            entry.comment = comment;
            entry.updates += 1;
            Ok(json!(true).into())
        }
        "crm.category.list" => {
            let entity_type = param(params, "entityTypeId")
                .and_then(as_id)
                .ok_or_else(|| invalid_arg("entityTypeId is required"))?;
            if entity_type != DEAL_ENTITY_TYPE_ID {
                return Err(invalid_arg(&format!(
                    "entityTypeId {entity_type} is not supported by the simulator"
                )));
            }
            let mut categories: Vec<&Category> = portal.categories.iter().collect();
            categories.sort_by_key(|c| (c.sort, c.id));
            let list: Vec<Value> = categories.iter().map(|c| c.json()).collect();
            Ok(Answer {
                total: Some(list.len()),
                result: json!({ "categories": list }),
                next: None,
            })
        }
        "crm.status.list" => {
            let wanted = param(params, "filter")
                .and_then(Value::as_object)
                .and_then(|filter| param(filter, "ENTITY_ID"))
                .map(text);
            let mut rows: Vec<(i64, i64, Value)> = Vec::new();
            for category in &portal.categories {
                if wanted
                    .as_deref()
                    .is_some_and(|w| !w.eq_ignore_ascii_case(&category.entity_id()))
                {
                    continue;
                }
                for stage in &category.stages {
                    rows.push((stage.sort, stage.row, category.stage_json(stage)));
                }
            }
            rows.sort_by_key(|(sort, row, _)| (*sort, *row));
            let list: Vec<Value> = rows.into_iter().map(|(_, _, v)| v).collect();
            Ok(Answer {
                total: Some(list.len()),
                result: Value::Array(list),
                next: None,
            })
        }
        "app.info" => Ok(json!({
            "ID": portal.app_id,
            "CODE": super::APP_CODE,
            "STATUS": "L",
            "INSTALLED": portal.installed,
            "PAYMENT_EXPIRED": "N",
            "DAYS": null,
        })
        .into()),
        _ => Err((METHOD_NOT_FOUND.to_owned(), "Method not found!".to_owned())),
    }
}

/// `batch`: up to [`MAX_BATCH_COMMANDS`] commands (`cmd`, keyed by name or index), each
/// `method?query` with PHP-style parameters, run in order on the portal. Each command's
/// `result` or error lands under its key in `result` / `result_error`; `halt` truthy stops at
/// the first error. The whole batch is one request for the rate limit (checked once before
/// this runs). `$result[...]` references are not resolved (the relay sends none).
fn batch(
    portal: &mut Portal,
    params: &Map<String, Value>,
    date: &str,
) -> Result<Value, FieldError> {
    let commands: Vec<(String, String)> = match param(params, "cmd") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), text(v)))
            .collect(),
        _ => return Err(invalid_arg("cmd is required")),
    };
    if commands.len() > MAX_BATCH_COMMANDS {
        return Err(invalid_arg(&format!(
            "Max batch length exceeded: at most {MAX_BATCH_COMMANDS} commands"
        )));
    }
    let halt =
        param(params, "halt").is_some_and(|h| matches!(text(h).as_str(), "1" | "true" | "Y"));
    let mut results = Map::new();
    let mut errors = Map::new();
    let mut totals = Map::new();
    let mut nexts = Map::new();
    let mut times = Map::new();
    for (key, line) in commands {
        let (method, query) = line.split_once('?').unwrap_or((line.as_str(), ""));
        let method = method.trim_end_matches(".json").to_ascii_lowercase();
        let answer = if method == "batch" {
            Err(invalid_arg("Batch call is not allowed inside a batch"))
        } else {
            call(portal, &method, &params::php_form(query), date)
        };
        match answer {
            Ok(answer) => {
                results.insert(key.clone(), answer.result);
                if let Some(total) = answer.total {
                    totals.insert(key.clone(), json!(total));
                }
                if let Some(next) = answer.next {
                    nexts.insert(key.clone(), json!(next));
                }
                times.insert(key, json!({"operating": 0}));
            }
            Err((code, description)) => {
                errors.insert(
                    key,
                    json!({"error": code, "error_description": description}),
                );
                if halt {
                    break;
                }
            }
        }
    }
    // PHP writes an empty map as an empty array.
    let php = |map: Map<String, Value>| {
        if map.is_empty() {
            json!([])
        } else {
            Value::Object(map)
        }
    };
    Ok(json!({
        "result": php(results),
        "result_error": php(errors),
        "result_total": php(totals),
        "result_next": php(nexts),
        "result_time": php(times),
    }))
}

fn fields_param(params: &Map<String, Value>) -> Result<&Map<String, Value>, FieldError> {
    param(params, "fields")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_arg("Parameter 'fields' must be array."))
}

fn id_param(params: &Map<String, Value>) -> Result<i64, FieldError> {
    param(params, "id")
        .and_then(as_id)
        .filter(|id| *id > 0)
        .ok_or_else(|| invalid_arg("ID is not defined or invalid."))
}

fn comment_text(fields: &Map<String, Value>) -> Result<String, FieldError> {
    let comment = field(fields, "COMMENT").map(text).unwrap_or_default();
    if comment.trim().is_empty() {
        return Err(invalid_arg("COMMENT: the comment is empty"));
    }
    Ok(comment)
}

fn comment_add(portal: &mut Portal, params: &Map<String, Value>) -> Result<i64, FieldError> {
    let fields = fields_param(params)?;
    let entity_type = field(fields, "ENTITY_TYPE")
        .map(text)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(
        entity_type.as_str(),
        "deal" | "contact" | "lead" | "company"
    ) {
        return Err(invalid_arg("ENTITY_TYPE is not defined or not supported"));
    }
    let entity_id = field(fields, "ENTITY_ID")
        .and_then(as_id)
        .unwrap_or_default();
    if !portal.owner_exists(&entity_type, entity_id) {
        return Err((
            "OWNER_NOT_FOUND".to_owned(),
            format!("Owner {entity_type} {entity_id} is not found"),
        ));
    }
    let comment = comment_text(fields)?;
    let id = portal.next_comment;
    portal.next_comment += 1;
    portal.comments.insert(
        id,
        BitrixComment {
            id,
            entity_type,
            entity_id,
            comment,
            updates: 0,
        },
    );
    Ok(id)
}

/// `crm.duplicate.findbycomm`: `{"CONTACT":[ids]}`, or `[]` when nothing matched.
fn find_by_comm(portal: &Portal, params: &Map<String, Value>) -> Result<Value, FieldError> {
    let kind = param(params, "type")
        .map(text)
        .unwrap_or_default()
        .to_ascii_uppercase();
    if kind.is_empty() {
        return Err((
            "Communication type is not defined".to_owned(),
            "Communication type is not defined.".to_owned(),
        ));
    }
    if kind != "EMAIL" && kind != "PHONE" {
        return Err(invalid_arg(&format!(
            "Communication type '{kind}' is not supported"
        )));
    }
    let entity_type = param(params, "entity_type")
        .map(text)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let values: Vec<String> = match param(params, "values") {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::Object(map)) => map.values().map(text).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => return Err(invalid_arg("Values are not defined")),
    };
    if values.len() > MAX_FINDBYCOMM_VALUES {
        return Err(invalid_arg(&format!(
            "Too many values: at most {MAX_FINDBYCOMM_VALUES} are allowed"
        )));
    }
    if !matches!(entity_type.as_str(), "" | "CONTACT") {
        // Only contacts are stored: leads and companies never match.
        return Ok(json!([]));
    }
    let normalize = |value: &str| -> String {
        if kind == "EMAIL" {
            value.trim().to_lowercase()
        } else {
            value.chars().filter(char::is_ascii_digit).collect()
        }
    };
    let wanted: Vec<String> = values
        .iter()
        .map(|v| normalize(v))
        .filter(|v| !v.is_empty())
        .collect();
    let ids: Vec<i64> = portal
        .contacts
        .iter()
        .filter(|(_, record)| {
            record
                .get(&kind)
                .and_then(Value::as_array)
                .is_some_and(|items| {
                    items.iter().any(|item| {
                        let have = normalize(item["VALUE"].as_str().unwrap_or_default());
                        !have.is_empty() && wanted.contains(&have)
                    })
                })
        })
        .map(|(id, _)| *id)
        .collect();
    if ids.is_empty() {
        Ok(json!([]))
    } else {
        Ok(json!({ "CONTACT": ids }))
    }
}
