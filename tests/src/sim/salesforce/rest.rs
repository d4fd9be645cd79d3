//! The per-org record store and the REST API on the instance host:
//! `/services/data/vNN.N/` + `sobjects/{Object}/describe`, `sobjects/{Object}`
//! (create), `sobjects/{Object}/{id}` (read, update), `query?q=`,
//! `ui-api/object-info/{Object}/picklist-values/{recordTypeId}/{field}`, and
//! (in [`super::composite`]) `composite` and `composite/sobjects`. Also the
//! simulator-only `GET /_sim/state`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::schema::{self, ObjectSchema, Schema, WriteMode};
use super::soql::{self, Table};
use super::{
    composite, invalid_session, json_response, oauth, request_limit_exceeded, set_limit_info,
    AuthedOrg, Host, SfError, SfOrgConfig, SfRequest, Shared, SubRequests, DUPLICATE_RULE_HEADER,
    MASTER_RECORD_TYPE_ID, REST_PREFIX, SOAP_PREFIX,
};

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

/// One org's metadata, records and usage.
pub(crate) struct OrgState {
    pub(crate) config: SfOrgConfig,
    pub(crate) instance_host: String,
    pub(crate) schema: Schema,
    /// Object name → records in creation order.
    pub(crate) records: BTreeMap<String, Vec<Map<String, Value>>>,
    pub(crate) api_usage: u64,
    /// Objects whose standard duplicate rule is on.
    pub(crate) duplicate_rules: HashSet<String>,
    /// The admin's validation rules, checked on every create and update.
    pub(crate) validation_rules: Vec<ValidationRule>,
}

/// A validation rule as an admin would write one: a record of `object` whose `field` holds
/// `forbidden` (any case) is refused with `FIELD_CUSTOM_VALIDATION_EXCEPTION` and `message`.
#[derive(Debug, Clone)]
pub(crate) struct ValidationRule {
    pub(crate) object: String,
    pub(crate) field: String,
    pub(crate) forbidden: String,
    pub(crate) message: String,
}

/// The first validation rule `record` (the whole record after the write) breaks.
fn check_validation_rules(
    org: &OrgState,
    object: &str,
    record: &Map<String, Value>,
) -> Result<(), SfError> {
    let forbidden = |rule: &ValidationRule| {
        record
            .get(&rule.field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.to_lowercase().contains(&rule.forbidden.to_lowercase()))
    };
    match org
        .validation_rules
        .iter()
        .find(|r| r.object == object && forbidden(r))
    {
        Some(rule) => Err(
            SfError::bad("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message.clone())
                .with_fields(&[&rule.field]),
        ),
        None => Ok(()),
    }
}

pub(crate) struct Store {
    pub(crate) orgs: Vec<OrgState>,
    next_id: u64,
    last_created_ms: i64,
}

impl Store {
    pub(crate) fn new(orgs: &[SfOrgConfig]) -> Store {
        Store {
            orgs: orgs
                .iter()
                .map(|config| OrgState {
                    instance_host: config.instance_host.to_ascii_lowercase(),
                    config: config.clone(),
                    schema: Schema::standard(),
                    records: BTreeMap::new(),
                    api_usage: 0,
                    duplicate_rules: HashSet::new(),
                    validation_rules: Vec::new(),
                })
                .collect(),
            next_id: 0,
            last_created_ms: 0,
        }
    }

    pub(crate) fn index(&self, key: &str) -> Option<usize> {
        self.orgs.iter().position(|o| o.config.key == key)
    }

    pub(crate) fn index_or_panic(&self, key: &str) -> usize {
        self.index(key)
            .unwrap_or_else(|| panic!("unknown Salesforce org {key:?}"))
    }

    /// A new 18-character id with this key prefix.
    pub(crate) fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}5g{:010}AAA", self.next_id)
    }

    /// A strictly increasing `CreatedDate`.
    pub(crate) fn next_created(&mut self) -> String {
        let now = chrono::Utc::now().timestamp_millis();
        self.last_created_ms = now.max(self.last_created_ms + 1);
        chrono::DateTime::from_timestamp_millis(self.last_created_ms)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string()
    }

    /// Insert a record with defaults, a new id and `CreatedDate` (no checks).
    pub(crate) fn insert(
        &mut self,
        idx: usize,
        object: &ObjectSchema,
        mut fields: Map<String, Value>,
    ) -> String {
        schema::apply_defaults(object, &mut fields);
        let id = self.new_id(&object.key_prefix);
        let created = self.next_created();
        fields.insert("Id".into(), Value::String(id.clone()));
        fields
            .entry("CreatedDate")
            .or_insert(Value::String(created));
        self.orgs[idx]
            .records
            .entry(object.name.clone())
            .or_default()
            .push(fields);
        id
    }

    pub(crate) fn seed(
        &mut self,
        idx: usize,
        object: &str,
        fields: &Value,
    ) -> Result<String, String> {
        let schema = self.orgs[idx]
            .schema
            .object(object)
            .cloned()
            .ok_or_else(|| format!("unknown object {object:?}"))?;
        let Value::Object(map) = fields else {
            return Err("fields must be a JSON object".into());
        };
        let mut canonical = Map::new();
        for (key, value) in map {
            let field = schema
                .field(key)
                .ok_or_else(|| format!("no field {key:?} on {}", schema.name))?;
            canonical.insert(field.name.clone(), value.clone());
        }
        Ok(self.insert(idx, &schema, canonical))
    }
}

impl OrgState {
    pub(crate) fn get(&self, object: &str, id: &str) -> Option<&Map<String, Value>> {
        self.records
            .get(object)?
            .iter()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
    }

    pub(crate) fn get_mut(&mut self, object: &str, id: &str) -> Option<&mut Map<String, Value>> {
        self.records
            .get_mut(object)?
            .iter_mut()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
    }

    /// Every record of `object` with all describe fields and attributes.
    pub(crate) fn records_json(&self, object: &str) -> Vec<Value> {
        let schema = self
            .schema
            .object(object)
            .unwrap_or_else(|| panic!("unknown Salesforce object {object:?}"));
        self.records
            .get(&schema.name)
            .map(|rows| {
                rows.iter()
                    .map(|r| full_record(schema, r, "62.0"))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn state_json(&self) -> Value {
        let records: Map<String, Value> = self
            .schema
            .objects
            .keys()
            .map(|name| (name.clone(), Value::Array(self.records_json(name))))
            .collect();
        json!({
            "org": self.config.key,
            "orgId": self.config.org_id,
            "instanceHost": self.instance_host,
            "sandbox": self.config.sandbox,
            "apiUsage": self.api_usage,
            "records": records,
        })
    }
}

fn attributes(object: &str, id: &str, version: &str) -> Value {
    json!({
        "type": object,
        "url": format!("/services/data/v{version}/sobjects/{object}/{id}"),
    })
}

fn full_record(schema: &ObjectSchema, record: &Map<String, Value>, version: &str) -> Value {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("attributes".into(), attributes(&schema.name, id, version));
    for field in &schema.fields {
        out.insert(
            field.name.clone(),
            record.get(&field.name).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// HTTP entry point
// ---------------------------------------------------------------------------

/// `62.0` of `/services/data/v62.0/...` or `/services/Soap/u/62.0`.
pub(crate) fn version_of(path: &str) -> Option<String> {
    let raw = if let Some(rest) = path.strip_prefix(REST_PREFIX) {
        rest.split('/').next()?.strip_prefix('v')?
    } else {
        path.strip_prefix(SOAP_PREFIX)?.split('/').next()?
    };
    let (major, minor) = raw.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| raw.to_owned())
}

/// How a request is being served (top level or composite subrequest).
pub(crate) struct Ctx {
    pub(crate) version: String,
    pub(crate) allow_save: bool,
    pub(crate) host: String,
    pub(crate) org: String,
}

/// One answer of the dispatcher.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: u16,
    /// `Value::Null` for no body (204).
    pub(crate) body: Value,
    pub(crate) location: Option<String>,
}

impl Outcome {
    pub(crate) fn ok(status: u16, body: Value) -> Outcome {
        Outcome {
            status,
            body,
            location: None,
        }
    }

    pub(crate) fn error(error: &SfError) -> Outcome {
        Outcome::ok(error.status, error.array())
    }
}

fn allow_save(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split([',', ';'])
            .any(|part| part.trim().eq_ignore_ascii_case("allowSave=true"))
    })
}

pub(crate) fn allow_save_header(headers: &Value) -> bool {
    headers.as_object().is_some_and(|h| {
        h.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(DUPLICATE_RULE_HEADER) && allow_save(v.as_str()))
    })
}

/// Authenticate (bearer token on the org's current instance host), count
/// the call against the org's daily usage, and dispatch.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(Host(host)): Extension<Host>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(oauth::bearer);
    let Some((org, idx)) = token.and_then(|t| shared.session_org(t, &host)) else {
        return invalid_session();
    };
    let limit = shared.config.api_daily_limit;
    let mut store = shared.store();
    let used = store.orgs[idx].api_usage;
    if used + 1 > limit {
        drop(store);
        let mut response = request_limit_exceeded();
        set_limit_info(&mut response, used, limit);
        response.extensions_mut().insert(AuthedOrg(org));
        return response;
    }
    store.orgs[idx].api_usage = used + 1;

    let path = uri.path();
    let mut subs = Vec::new();
    let outcome = match version_of(path) {
        None => Outcome::error(&SfError::not_found()),
        Some(version) => {
            let rest = path
                .strip_prefix(REST_PREFIX)
                .and_then(|r| r.split_once('/'))
                .map_or("", |(_, rest)| rest);
            let parsed = if body.trim().is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_str::<Value>(&body)
            };
            match parsed {
                Err(error) => Outcome::error(&SfError::bad(
                    "JSON_PARSER_ERROR",
                    format!("Unexpected character in the request body: {error}"),
                )),
                Ok(body) => {
                    let ctx = Ctx {
                        version,
                        allow_save: allow_save(
                            headers
                                .get(DUPLICATE_RULE_HEADER)
                                .and_then(|v| v.to_str().ok()),
                        ),
                        host: host.clone(),
                        org: org.clone(),
                    };
                    dispatch(
                        &mut store,
                        idx,
                        &ctx,
                        method.as_str(),
                        rest,
                        uri.query().unwrap_or_default(),
                        &body,
                        Some(&mut subs),
                    )
                }
            }
        }
    };
    drop(store);
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut response = if outcome.body.is_null() {
        status.into_response()
    } else {
        json_response(status, &outcome.body)
    };
    set_limit_info(&mut response, used + 1, limit);
    response.extensions_mut().insert(AuthedOrg(org));
    if !subs.is_empty() {
        response.extensions_mut().insert(SubRequests(subs));
    }
    response
}

/// Serve one REST call on `org` (`rest` is the path after `vNN.N/`).
/// `subs` is `Some` at top level only (composite is allowed there).
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch(
    store: &mut Store,
    idx: usize,
    ctx: &Ctx,
    method: &str,
    rest: &str,
    query: &str,
    body: &Value,
    subs: Option<&mut Vec<SfRequest>>,
) -> Outcome {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (method, segments.as_slice()) {
        ("GET", ["sobjects", object, "describe"]) => describe(&store.orgs[idx], object),
        ("POST", ["sobjects", object]) => create(store, idx, ctx, object, body).map(|id| {
            let object = store.orgs[idx]
                .schema
                .object(object)
                .map(|o| o.name.clone())
                .unwrap_or_default();
            Outcome {
                status: 201,
                body: json!({"id": id, "success": true, "errors": []}),
                location: Some(format!(
                    "/services/data/v{}/sobjects/{object}/{id}",
                    ctx.version
                )),
            }
        }),
        ("GET", ["sobjects", object, id]) => read(&store.orgs[idx], ctx, object, id),
        ("PATCH", ["sobjects", object, id]) => {
            update(store, idx, object, id, body).map(|()| Outcome::ok(204, Value::Null))
        }
        ("GET", ["query"]) => run_query(&store.orgs[idx], ctx, query),
        ("POST", ["composite"]) => match subs {
            Some(subs) => Ok(composite::composite(store, idx, ctx, body, subs)),
            None => Err(SfError::bad(
                "INVALID_API_INPUT",
                "composite is not supported as a composite subrequest",
            )),
        },
        ("POST" | "PATCH", ["composite", "sobjects"]) => {
            composite::collections(store, idx, ctx, method == "PATCH", body)
        }
        ("GET", ["ui-api", "object-info", object, "picklist-values", record_type, field]) => {
            picklist_values(&store.orgs[idx], ctx, object, record_type, field)
        }
        (
            _,
            ["sobjects", _, "describe"]
            | ["sobjects", _]
            | ["sobjects", _, _]
            | ["query"]
            | ["composite"]
            | ["composite", "sobjects"],
        ) => Err(SfError::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed."),
        )),
        _ => Err(SfError::not_found()),
    };
    result.unwrap_or_else(|error| Outcome::error(&error))
}

fn object_schema<'a>(org: &'a OrgState, name: &str) -> Result<&'a ObjectSchema, SfError> {
    org.schema.object(name).ok_or_else(SfError::not_found)
}

fn describe(org: &OrgState, object: &str) -> Result<Outcome, SfError> {
    Ok(Outcome::ok(200, object_schema(org, object)?.describe()))
}

fn read(org: &OrgState, ctx: &Ctx, object: &str, id: &str) -> Result<Outcome, SfError> {
    let schema = object_schema(org, object)?;
    let record = org.get(&schema.name, id).ok_or_else(SfError::not_found)?;
    Ok(Outcome::ok(200, full_record(schema, record, &ctx.version)))
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, SfError> {
    body.as_object().ok_or_else(|| {
        SfError::bad(
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from the request body",
        )
    })
}

/// Validate and insert one record; returns its id.
pub(crate) fn create(
    store: &mut Store,
    idx: usize,
    ctx: &Ctx,
    object: &str,
    body: &Value,
) -> Result<String, SfError> {
    let schema = object_schema(&store.orgs[idx], object)?.clone();
    let fields = schema::check_write(&schema, body_object(body)?, WriteMode::Create)?;
    let org = &store.orgs[idx];
    check_record_type(&schema, &fields)?;
    check_references(org, &schema, &fields)?;
    check_validation_rules(org, &schema.name, &fields)?;
    if !ctx.allow_save {
        check_duplicates(org, &schema, &fields, &ctx.version)?;
    }
    Ok(store.insert(idx, &schema, fields))
}

/// Validate and apply one update.
pub(crate) fn update(
    store: &mut Store,
    idx: usize,
    object: &str,
    id: &str,
    body: &Value,
) -> Result<(), SfError> {
    let org = &store.orgs[idx];
    let schema = object_schema(org, object)?.clone();
    let existing = org.get(&schema.name, id).ok_or_else(SfError::not_found)?;
    if schema.name == "Lead" && existing.get("IsConverted") == Some(&Value::Bool(true)) {
        return Err(SfError::bad(
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead",
        ));
    }
    let fields = schema::check_write(&schema, body_object(body)?, WriteMode::Update)?;
    let mut merged = existing.clone();
    merged.extend(fields.clone());
    check_record_type(&schema, &merged)?;
    check_references(org, &schema, &fields)?;
    check_validation_rules(org, &schema.name, &merged)?;
    if let Some(record) = store.orgs[idx].get_mut(&schema.name, id) {
        record.extend(fields);
    }
    Ok(())
}

/// `RecordTypeId` must name the master or a record type of the object, and
/// an Opportunity's StageName must be one its record type offers.
fn check_record_type(schema: &ObjectSchema, fields: &Map<String, Value>) -> Result<(), SfError> {
    let Some(rt_id) = fields.get("RecordTypeId").and_then(Value::as_str) else {
        return Ok(());
    };
    if rt_id == MASTER_RECORD_TYPE_ID {
        return Ok(());
    }
    let Some(record_type) = schema.record_type(rt_id) else {
        return Err(SfError::bad(
            "INVALID_CROSS_REFERENCE_KEY",
            format!("Record Type ID: this ID value isn't valid for the user: {rt_id}"),
        )
        .with_fields(&["RecordTypeId"]));
    };
    if let (Some(stage), Some(field)) = (fields.get("StageName"), schema.field("StageName")) {
        let allowed = record_type.stage_values.is_empty()
            || stage
                .as_str()
                .is_some_and(|s| record_type.stage_values.iter().any(|v| v == s));
        if !allowed && !stage.is_null() {
            return Err(schema::restricted_picklist_error(field, stage));
        }
    }
    Ok(())
}

/// Every reference field (but RecordTypeId) must name an existing record of
/// an object it may point at.
fn check_references(
    org: &OrgState,
    schema: &ObjectSchema,
    fields: &Map<String, Value>,
) -> Result<(), SfError> {
    for field in schema
        .fields
        .iter()
        .filter(|f| f.field_type == "reference" && f.name != "RecordTypeId")
    {
        let Some(id) = fields.get(&field.name).and_then(Value::as_str) else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        let found = field
            .reference_to
            .iter()
            .any(|to| org.get(to, id).is_some());
        if !found {
            return Err(SfError::bad(
                "INVALID_CROSS_REFERENCE_KEY",
                format!("{}: id value of incorrect type: {id}", field.label),
            )
            .with_fields(&[&field.name]));
        }
    }
    Ok(())
}

fn check_duplicates(
    org: &OrgState,
    schema: &ObjectSchema,
    fields: &Map<String, Value>,
    version: &str,
) -> Result<(), SfError> {
    if !org.duplicate_rules.contains(&schema.name) {
        return Ok(());
    }
    let Some(email) = fields
        .get("Email")
        .and_then(Value::as_str)
        .filter(|e| !e.trim().is_empty())
    else {
        return Ok(());
    };
    let email = email.to_lowercase();
    let matches: Vec<Value> = org
        .records
        .get(&schema.name)
        .map(|rows| {
            rows.iter()
                .filter(|r| r.get("IsConverted") != Some(&Value::Bool(true)))
                .filter(|r| {
                    r.get("Email")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.to_lowercase() == email)
                })
                .map(|r| {
                    let id = r.get("Id").and_then(Value::as_str).unwrap_or_default();
                    json!({
                        "additionalInformation": [],
                        "fieldDiffs": [],
                        "matchConfidence": 100.0,
                        "record": {
                            "attributes": attributes(&schema.name, id, version),
                            "Id": id,
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if matches.is_empty() {
        return Ok(());
    }
    let (rule, match_rule) = if schema.name == "Lead" {
        (
            "Standard_Rule_for_Leads_with_Duplicate_Contacts",
            "Standard_Lead_Match_Rule_v1_0",
        )
    } else {
        (
            "Standard_Contact_Duplicate_Rule",
            "Standard_Contact_Match_Rule_v1_1",
        )
    };
    let mut error = SfError::bad("DUPLICATES_DETECTED", "Use one of these records?");
    error.extra.insert(
        "duplicateResut".into(),
        json!({
            "allowSave": false,
            "duplicateRule": rule,
            "duplicateRuleEntityType": schema.name,
            "errorMessage": "Use one of these records?",
            "matchResults": [{
                "entityType": schema.name,
                "matchEngine": "FuzzyMatchEngine",
                "matchRecords": matches,
                "rule": match_rule,
                "size": matches.len(),
                "success": true,
            }],
        }),
    );
    Err(error)
}

// ---------------------------------------------------------------------------
// Query
// ---------------------------------------------------------------------------

fn table(org: &OrgState, name: &str) -> Result<Table, SfError> {
    let setup = |name: &str, fields: &[(&str, &str)], rows| Table {
        name: name.to_owned(),
        fields: fields
            .iter()
            .map(|(f, t)| ((*f).to_owned(), (*t).to_owned()))
            .collect(),
        unfilterable: Vec::new(),
        rows,
    };
    if name.eq_ignore_ascii_case("LeadStatus") {
        return Ok(setup(
            "LeadStatus",
            &[
                ("Id", "id"),
                ("MasterLabel", "string"),
                ("ApiName", "string"),
                ("IsConverted", "boolean"),
                ("IsDefault", "boolean"),
                ("SortOrder", "int"),
            ],
            org.schema.lead_status_rows(),
        ));
    }
    if name.eq_ignore_ascii_case("OpportunityStage") {
        return Ok(setup(
            "OpportunityStage",
            &[
                ("Id", "id"),
                ("ApiName", "string"),
                ("MasterLabel", "string"),
                ("IsActive", "boolean"),
                ("IsClosed", "boolean"),
                ("IsWon", "boolean"),
                ("SortOrder", "int"),
                ("DefaultProbability", "double"),
            ],
            org.schema.opportunity_stage_rows(),
        ));
    }
    let Some(schema) = org.schema.object(name) else {
        return Err(SfError::bad(
            "INVALID_TYPE",
            format!(
                "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        ));
    };
    Ok(Table {
        name: schema.name.clone(),
        fields: schema
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.field_type.clone()))
            .collect(),
        unfilterable: schema
            .fields
            .iter()
            .filter(|f| !f.filterable())
            .map(|f| f.name.clone())
            .collect(),
        rows: org.records.get(&schema.name).cloned().unwrap_or_default(),
    })
}

fn run_query(org: &OrgState, ctx: &Ctx, query: &str) -> Result<Outcome, SfError> {
    let params: HashMap<String, String> = crate::sim::recorder::decode_form(query);
    let Some(text) = params.get("q") else {
        return Err(SfError::bad(
            "MALFORMED_QUERY",
            "A query string has to be specified",
        ));
    };
    let parsed = soql::parse(text)?;
    let table = table(org, &parsed.object)?;
    let rows = soql::run(&parsed, &table)?;
    let records: Vec<Value> = rows
        .into_iter()
        .map(|mut row| {
            let id = row
                .remove("_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut out = Map::new();
            out.insert(
                "attributes".into(),
                attributes(&table.name, &id, &ctx.version),
            );
            out.extend(row);
            Value::Object(out)
        })
        .collect();
    Ok(Outcome::ok(
        200,
        json!({"totalSize": records.len(), "done": true, "records": records}),
    ))
}

// ---------------------------------------------------------------------------
// UI API picklist values
// ---------------------------------------------------------------------------

fn picklist_values(
    org: &OrgState,
    ctx: &Ctx,
    object: &str,
    record_type: &str,
    field: &str,
) -> Result<Outcome, SfError> {
    let schema = object_schema(org, object)?;
    let field = schema
        .field(field)
        .filter(|f| f.field_type == "picklist")
        .ok_or_else(SfError::not_found)?;
    let values: Vec<String> = if record_type == MASTER_RECORD_TYPE_ID {
        field
            .picklist_values
            .iter()
            .filter(|v| v.active)
            .map(|v| v.value.clone())
            .collect()
    } else {
        let rt = schema
            .record_type(record_type)
            .ok_or_else(SfError::not_found)?;
        if field.name == "StageName" && !rt.stage_values.is_empty() {
            rt.stage_values.clone()
        } else {
            field
                .picklist_values
                .iter()
                .filter(|v| v.active)
                .map(|v| v.value.clone())
                .collect()
        }
    };
    let label_of = |value: &str| {
        field
            .picklist_values
            .iter()
            .find(|v| v.value == value)
            .map_or(value.to_owned(), |v| v.label.clone())
    };
    let item = |value: &str| {
        let attributes = if field.name == "StageName" {
            let (closed, won, probability) = schema::stage_info(value);
            json!({"closed": closed, "won": won, "defaultProbability": probability})
        } else {
            Value::Null
        };
        json!({
            "attributes": attributes,
            "label": label_of(value),
            "validFor": [],
            "value": value,
        })
    };
    let default = field
        .default_picklist_value()
        .filter(|d| values.iter().any(|v| v == d))
        .map_or(Value::Null, item);
    Ok(Outcome::ok(
        200,
        json!({
            "controllerValues": {},
            "defaultValue": default,
            "eTag": format!("{:x}", values.len() * 7919),
            "url": format!(
                "/services/data/v{}/ui-api/object-info/{}/picklist-values/{record_type}/{}",
                ctx.version, schema.name, field.name
            ),
            "values": values.iter().map(|v| item(v)).collect::<Vec<_>>(),
        }),
    ))
}

// ---------------------------------------------------------------------------
// GET /_sim/state
// ---------------------------------------------------------------------------

pub(crate) async fn sim_state(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let key = params
        .get("org")
        .cloned()
        .unwrap_or_else(|| shared.config.default_org.clone());
    let store = shared.store();
    match store.index(&key) {
        Some(idx) => json_response(StatusCode::OK, &store.orgs[idx].state_json()),
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!("unknown org {key:?}")}),
        ),
    }
}
