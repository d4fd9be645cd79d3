//! CRM records per hub — contacts, deals, notes — and the associations
//! between them, behind the date-based (2026-09) object endpoints:
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /crm/objects/2026-09/contacts/batch/upsert` | 200 `BatchResponseSimplePublicUpsertObject` |
//! | `POST /crm/objects/2026-09/{type}/batch/create` | 201 `BatchResponseSimplePublicObject`; 207 with per-input `errors` when inputs carry `objectWriteTraceId` |
//! | `POST /crm/objects/2026-09/{type}/batch/read` | 200, or 207 with the ids not found in `errors` |
//! | `POST /crm/objects/2026-09/{type}` | 201 `SimplePublicObject` (inline `associations` recorded) |
//! | `PATCH /crm/objects/2026-09/{type}/{id}` | 200 `SimplePublicObject` |
//! | `GET /crm/objects/2026-09/{type}/{id}` | 200 `SimplePublicObjectWithAssociations` |
//! | `POST /crm/objects/2026-09/{type}/search` | 200 `CollectionResponseWithTotalSimplePublicObject` |
//!
//! Shapes from the v3 specs (`PublicApiSpecs/CRM/{Contacts,Deals,Notes}/Rollouts/424/v3/*.json`):
//! - `SimplePublicObject`: `id`, `properties`, `createdAt`, `updatedAt`
//!   required, `archived` optional; property values are strings or null.
//! - `BatchResponseSimplePublicUpsertObject`: `status` (`COMPLETE`),
//!   `results`, `startedAt`, `completedAt` required; each result is a
//!   `SimplePublicUpsertObject` = `SimplePublicObject` + required `new: bool`.
//! - `SimplePublicObjectBatchInputUpsert`: `id` and `properties` required,
//!   `idProperty` optional. Batches are capped at 100 inputs (HubSpot's docs).
//! - `SimplePublicObjectWithAssociations.associations`: map of object type →
//!   `{results: [{id, type}]}` (`type` such as `deal_to_contact`).
//! - The create operation is documented in the spec as `200` with a
//!   `CreatedResponseSimplePublicObject` wrapper (`createdResourceId`,
//!   `entity`), while HubSpot's API reference pages, SDKs and the live API
//!   answer `201 Created` with the plain object; the simulator does the latter.
//!
//! Behaviour beyond the shapes (see the module docs of `schema` for property
//! validation):
//! - Contacts are unique by email, case-insensitively; emails are stored
//!   lower-cased. Creating a contact whose email exists is 409 `CONFLICT`
//!   `"Contact already exists. Existing ID: N"` (HubSpot's wording).
//! - Batch upsert with `idProperty: "email"` creates or updates by email.
//!   Any other `idProperty` is 400 "Unable to perform update/upsert by
//!   non-unique 0-1 property …" (HubSpot's wording for non-unique properties
//!   such as `hs_object_id`). Without `idProperty` the `id` is a record id:
//!   HubSpot's behaviour there is poorly documented (its batch *update*
//!   silently does nothing for an email in `id`), so the simulator updates
//!   existing record ids and rejects unknown ones with a 400 that says to send
//!   `idProperty`, which makes the mistake loud in tests.
//! - Deals need `dealstage`; `pipeline` defaults to `default`; the stage must
//!   belong to the deal's pipeline (on create and on update).
//! - Notes need `hs_timestamp`.
//! - Inline associations need `HUBSPOT_DEFINED` type ids valid for the pair
//!   and an existing target; HubSpot-defined associations are two-way, so a
//!   deal→contact (3) association also shows as contact→deal (4).
//! - Search is metered by the separate search limit, matches `EQ`, `NEQ`,
//!   `IN`, `NOT_IN`, `HAS_PROPERTY`, `NOT_HAS_PROPERTY` and `CONTAINS_TOKEN`;
//!   string comparisons ignore case and phone numbers compare digits only
//!   (`+974 5555 1234` equals `+97455551234`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::pipelines::pipeline_stages;
use super::schema::{
    parse_datetime, property_errors_response, unknown_object_type, Kind, ObjectType, PropertyDef,
    PropertyProblem,
};
use super::{hubspot_error, iso, json_response, Shared};
use crate::sim::recorder::decode_form;
use crate::sim::server::Reject;

/// Most inputs one batch call accepts.
pub const MAX_BATCH_INPUTS: usize = 100;
/// Most results one search page returns (`PublicObjectSearchRequest.limit`).
pub const MAX_SEARCH_LIMIT: usize = 200;
/// Most filter groups one search accepts (the spec: "Up to 6 groups").
pub const MAX_FILTER_GROUPS: usize = 6;

/// A CRM record as stored by the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimObject {
    /// Record id (numeric, as a string, like HubSpot's).
    pub id: String,
    /// Every property with a value, system ones included (`hs_object_id`,
    /// `createdate`/`hs_createdate`, `lastmodifieddate`/`hs_lastmodifieddate`).
    /// Dates are RFC 3339 UTC with milliseconds, emails lower-case.
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// HubSpot-defined association types between the stored object types:
/// `(from, to, type id, type id of the reverse direction)`. Deal→contact 3
/// and note→contact 202 per PROVIDERS.md; note→deal 214 and the reverse ids
/// per HubSpot's association type table (the v4 associations spec does not
/// enumerate type ids).
const ASSOCIATION_TYPES: &[(ObjectType, ObjectType, u32, u32)] = &[
    (ObjectType::Deals, ObjectType::Contacts, 3, 4),
    (ObjectType::Contacts, ObjectType::Deals, 4, 3),
    (ObjectType::Notes, ObjectType::Contacts, 202, 201),
    (ObjectType::Contacts, ObjectType::Notes, 201, 202),
    (ObjectType::Notes, ObjectType::Deals, 214, 213),
    (ObjectType::Deals, ObjectType::Notes, 213, 214),
];

/// `(target type, reverse type id)` of a HubSpot-defined type id used from
/// `from`.
fn association_target(from: ObjectType, type_id: u32) -> Option<(ObjectType, u32)> {
    ASSOCIATION_TYPES
        .iter()
        .find(|(f, _, id, _)| *f == from && *id == type_id)
        .map(|(_, to, _, reverse)| (*to, *reverse))
}

/// One association as created (the reverse direction is derived).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: ObjectType,
    from_id: u64,
    to: ObjectType,
    to_id: u64,
    type_id: u32,
}

/// Every hub's records.
#[derive(Default)]
pub(super) struct CrmStore {
    hubs: HashMap<u64, HubRecords>,
}

#[derive(Default)]
struct HubRecords {
    objects: BTreeMap<ObjectType, BTreeMap<u64, SimObject>>,
    last_ids: BTreeMap<ObjectType, u64>,
    edges: Vec<Edge>,
}

impl CrmStore {
    fn hub(&mut self, hub_id: u64) -> &mut HubRecords {
        self.hubs.entry(hub_id).or_default()
    }

    pub(super) fn objects(&self, hub_id: u64, object: ObjectType) -> Vec<SimObject> {
        self.hubs
            .get(&hub_id)
            .and_then(|hub| hub.objects.get(&object))
            .map(|table| table.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn associations_of(
        &self,
        hub_id: u64,
        object: ObjectType,
        id: &str,
    ) -> Vec<(ObjectType, String, u32)> {
        let (Some(hub), Ok(id)) = (self.hubs.get(&hub_id), id.parse::<u64>()) else {
            return Vec::new();
        };
        hub.associations_of(object, id)
    }
}

impl HubRecords {
    fn record(&self, object: ObjectType, id: u64) -> Option<&SimObject> {
        self.objects.get(&object)?.get(&id)
    }

    fn exists(&self, object: ObjectType, id: &str) -> Option<u64> {
        let id = id.trim().parse::<u64>().ok()?;
        self.record(object, id).map(|_| id)
    }

    fn contact_by_email(&self, email: &str) -> Option<u64> {
        let email = email.trim().to_lowercase();
        self.objects
            .get(&ObjectType::Contacts)?
            .iter()
            .find(|(_, record)| record.properties.get("email") == Some(&email))
            .map(|(id, _)| *id)
    }

    /// The record of `object` whose `property` holds `value`.
    fn by_value(&self, object: ObjectType, property: &str, value: &str) -> Option<u64> {
        self.objects
            .get(&object)?
            .iter()
            .find(|(_, record)| record.properties.get(property).map(String::as_str) == Some(value))
            .map(|(id, _)| *id)
    }

    /// Refuses a write that would give a unique-value property a value another record of the
    /// same type holds (HubSpot enforces `hasUniqueValue` on create and update).
    fn check_unique(
        &self,
        object: ObjectType,
        unique: &[String],
        properties: &BTreeMap<String, String>,
        except: Option<u64>,
    ) -> Result<(), Reject> {
        let problems = self.unique_problems(object, unique, properties, except);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(rejected(problems))
        }
    }

    /// What [`HubRecords::check_unique`] refuses, as problems.
    fn unique_problems(
        &self,
        object: ObjectType,
        unique: &[String],
        properties: &BTreeMap<String, String>,
        except: Option<u64>,
    ) -> Vec<PropertyProblem> {
        unique
            .iter()
            .filter_map(|name| {
                let value = properties.get(name).filter(|v| !v.is_empty())?;
                let holder = self.by_value(object, name, value)?;
                (Some(holder) != except).then(|| {
                    // The wording third-party code shows for a taken unique value (HubSpot
                    // does not document it); the code is the simulator's name.
                    PropertyProblem::new(
                        name,
                        "DUPLICATE_UNIQUE_VALUE",
                        format!("{name} already has that value: {value}"),
                    )
                })
            })
            .collect()
    }

    /// Store a new record with `properties` (already validated; empty values
    /// dropped) and the system properties.
    fn insert(
        &mut self,
        object: ObjectType,
        properties: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> u64 {
        let last = self.last_ids.entry(object).or_insert(object.first_id() - 1);
        *last += 1;
        let id = *last;
        let mut record = SimObject {
            id: id.to_string(),
            properties: properties
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
            created_at: now,
            updated_at: now,
        };
        let stamp = iso(now);
        record
            .properties
            .insert(object.created_property().to_owned(), stamp.clone());
        record
            .properties
            .insert(object.modified_property().to_owned(), stamp);
        record
            .properties
            .insert("hs_object_id".to_owned(), id.to_string());
        self.objects.entry(object).or_default().insert(id, record);
        id
    }

    /// Merge validated `properties` into a record; empty values clear.
    fn update(
        &mut self,
        object: ObjectType,
        id: u64,
        properties: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) {
        let Some(record) = self.objects.get_mut(&object).and_then(|t| t.get_mut(&id)) else {
            return;
        };
        for (name, value) in properties {
            if value.is_empty() {
                record.properties.remove(&name);
            } else {
                record.properties.insert(name, value);
            }
        }
        record.updated_at = now;
        record
            .properties
            .insert(object.modified_property().to_owned(), iso(now));
    }

    fn associate(&mut self, edge: Edge) {
        let duplicate = self.edges.iter().any(|e| {
            (e.from == edge.from
                && e.from_id == edge.from_id
                && e.to == edge.to
                && e.to_id == edge.to_id)
                || (e.from == edge.to
                    && e.from_id == edge.to_id
                    && e.to == edge.from
                    && e.to_id == edge.from_id)
        });
        if !duplicate {
            self.edges.push(edge);
        }
    }

    /// Both directions, sorted by target type then id.
    fn associations_of(&self, object: ObjectType, id: u64) -> Vec<(ObjectType, String, u32)> {
        let mut found = BTreeSet::new();
        for edge in &self.edges {
            if edge.from == object && edge.from_id == id {
                found.insert((edge.to, edge.to_id, edge.type_id));
            }
            if edge.to == object && edge.to_id == id {
                let reverse = association_target(edge.from, edge.type_id)
                    .map(|(_, reverse)| reverse)
                    .unwrap_or(edge.type_id);
                found.insert((edge.from, edge.from_id, reverse));
            }
        }
        found
            .into_iter()
            .map(|(to, to_id, type_id)| (to, to_id.to_string(), type_id))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Input parsing
// ---------------------------------------------------------------------------

fn bad_request(message: impl Into<String>) -> Reject {
    hubspot_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message.into()).into()
}

fn record_not_found() -> Reject {
    hubspot_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "resource not found".to_owned(),
    )
    .into()
}

fn rejected(problems: Vec<PropertyProblem>) -> Reject {
    property_errors_response(&problems).into()
}

fn parse_body(body: &[u8]) -> Result<Value, Reject> {
    serde_json::from_slice(body).map_err(|error| {
        bad_request(format!(
            "Invalid input JSON on line {}, column {}: {error}",
            error.line(),
            error.column()
        ))
    })
}

/// The object type a path names.
fn object_type(name: &str) -> Result<ObjectType, Reject> {
    ObjectType::parse(name).ok_or_else(|| unknown_object_type(name))
}

/// A batch request's `inputs`: an array of at most [`MAX_BATCH_INPUTS`].
fn batch_inputs(input: &Value) -> Result<&Vec<Value>, Reject> {
    let Some(items) = input.get("inputs").and_then(Value::as_array) else {
        return Err(bad_request("Invalid input JSON: `inputs` must be an array"));
    };
    if items.len() > MAX_BATCH_INPUTS {
        return Err(bad_request(format!(
            "Batch input has {} inputs; at most {MAX_BATCH_INPUTS} are allowed per request",
            items.len()
        )));
    }
    Ok(items)
}

/// The `id` of the batch input at `index`.
fn input_id(item: &Value, index: usize) -> Result<String, Reject> {
    item.get("id").and_then(id_text).ok_or_else(|| {
        bad_request(format!(
            "Invalid input JSON: inputs[{index}].id is required"
        ))
    })
}

/// A batch answer (`BatchResponse…`): `status`, `results` and the times, with `status`; with
/// `errors`, 207 and the errors.
fn batch_answer(
    started: DateTime<Utc>,
    results: Vec<Value>,
    errors: Vec<Value>,
    status: StatusCode,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(Utc::now()),
    });
    if errors.is_empty() {
        return json_response(status, &body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    json_response(StatusCode::MULTI_STATUS, &body)
}

/// 400 for an `idProperty` that is not a unique-value property of `object`.
fn non_unique(hub_id: u64, object: ObjectType, property: &str) -> Reject {
    bad_request(format!(
        "Unable to perform update/upsert by non-unique {} property {property} in portal ID {hub_id}",
        object.type_id()
    ))
}

/// A `properties` object as name → string. Numbers and booleans are taken
/// as their text, `null` as "clear"; nested values are refused.
fn string_properties(
    value: Option<&Value>,
    field: &str,
) -> Result<BTreeMap<String, String>, Reject> {
    let Some(value) = value else {
        return Err(bad_request(format!(
            "Invalid input JSON: `{field}` is required"
        )));
    };
    let Some(map) = value.as_object() else {
        return Err(bad_request(format!(
            "Invalid input JSON: `{field}` must be an object of property name to value"
        )));
    };
    let mut properties = BTreeMap::new();
    for (name, value) in map {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => String::new(),
            Value::Array(_) | Value::Object(_) => {
                return Err(bad_request(format!(
                    "Invalid input JSON: the value of property `{name}` must be a string"
                )))
            }
        };
        properties.insert(name.clone(), text);
    }
    Ok(properties)
}

/// An `id`-like JSON value: strings as they are, integers as text.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) if number.is_u64() => Some(number.to_string()),
        _ => None,
    }
}

/// One inline association: target id and `(category, type id)` pairs.
struct AssociationInput {
    to_id: String,
    types: Vec<(String, u32)>,
}

fn association_inputs(value: Option<&Value>) -> Result<Vec<AssociationInput>, Reject> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_array() else {
        return Err(bad_request(
            "Invalid input JSON: `associations` must be an array",
        ));
    };
    let mut inputs = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(to_id) = item.pointer("/to/id").and_then(id_text) else {
            return Err(bad_request(format!(
                "Invalid input JSON: associations[{index}].to.id is required"
            )));
        };
        let Some(types) = item
            .get("types")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty())
        else {
            return Err(bad_request(format!(
                "Invalid input JSON: associations[{index}].types must be a non-empty array"
            )));
        };
        let mut parsed = Vec::new();
        for spec in types {
            let category = spec
                .get("associationCategory")
                .and_then(Value::as_str)
                .unwrap_or("HUBSPOT_DEFINED")
                .to_owned();
            let Some(type_id) = spec
                .get("associationTypeId")
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok())
            else {
                return Err(bad_request(format!(
                    "Invalid input JSON: associations[{index}].types[].associationTypeId must be an integer"
                )));
            };
            parsed.push((category, type_id));
        }
        inputs.push(AssociationInput {
            to_id,
            types: parsed,
        });
    }
    Ok(inputs)
}

/// Validate inline associations against the store: `(target type, target id, type id)`;
/// the refusal as its message (a single create's 400, or a batch input's own error).
fn association_edges(
    records: &HubRecords,
    from: ObjectType,
    inputs: &[AssociationInput],
) -> Result<Vec<Edge>, String> {
    let mut edges = Vec::new();
    for input in inputs {
        for (category, type_id) in &input.types {
            if category != "HUBSPOT_DEFINED" {
                return Err(format!(
                    "association type {category}/{type_id} does not exist for {} associations in this account (the simulator only knows HUBSPOT_DEFINED types)",
                    from.singular()
                ));
            }
            let Some((to, _)) = association_target(from, *type_id) else {
                let valid: Vec<String> = ASSOCIATION_TYPES
                    .iter()
                    .filter(|(f, _, _, _)| *f == from)
                    .map(|(_, to, id, _)| {
                        format!("{id} ({}_to_{})", from.singular(), to.singular())
                    })
                    .collect();
                return Err(format!(
                    "{type_id} is not a valid HUBSPOT_DEFINED association type from {}; valid: {}",
                    from.singular(),
                    valid.join(", ")
                ));
            };
            let Some(to_id) = records.exists(to, &input.to_id) else {
                return Err(format!(
                    "One or more associations are invalid: {} {} does not exist (association type {type_id} is {}_to_{})",
                    to.singular(),
                    input.to_id,
                    from.singular(),
                    to.singular()
                ));
            };
            edges.push(Edge {
                from,
                from_id: 0,
                to,
                to_id,
                type_id: *type_id,
            });
        }
    }
    Ok(edges)
}

/// Schema-check `properties` (schema lock only).
fn checked(
    shared: &Shared,
    object: ObjectType,
    hub_id: u64,
    properties: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Reject> {
    shared
        .schema()
        .check_all(object, hub_id, properties)
        .map_err(rejected)
}

fn missing_problem(name: &str) -> PropertyProblem {
    PropertyProblem::new(
        name,
        "REQUIRED_PROPERTY",
        format!("Property \"{name}\" is required"),
    )
}

fn missing(name: &str) -> Reject {
    rejected(vec![missing_problem(name)])
}

fn required_problem(properties: &BTreeMap<String, String>, name: &str) -> Option<PropertyProblem> {
    properties
        .get(name)
        .is_none_or(|v| v.is_empty())
        .then(|| missing_problem(name))
}

/// The stage must be one of the pipeline's stages.
fn check_stage(hub_id: u64, pipeline: &str, stage: &str) -> Result<(), Reject> {
    match stage_problem(hub_id, pipeline, stage) {
        None => Ok(()),
        Some(problem) => Err(rejected(vec![problem])),
    }
}

fn stage_problem(hub_id: u64, pipeline: &str, stage: &str) -> Option<PropertyProblem> {
    let pipelines = pipeline_stages(hub_id);
    let Some((_, stages)) = pipelines.iter().find(|(id, _)| id == pipeline) else {
        return Some(PropertyProblem::new(
            "pipeline",
            "INVALID_OPTION",
            format!(
                "{pipeline} was not one of the allowed options: [{}]",
                pipelines
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if stages.iter().any(|s| s == stage) {
        None
    } else {
        Some(PropertyProblem::new(
            "dealstage",
            "INVALID_OPTION",
            format!(
                "{stage} is not a stage of pipeline {pipeline}; allowed options: [{}]",
                stages.join(", ")
            ),
        ))
    }
}

fn conflict(existing: u64) -> Reject {
    hubspot_error(
        StatusCode::CONFLICT,
        "CONFLICT",
        format!("Contact already exists. Existing ID: {existing}"),
    )
    .into()
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// A record as `SimplePublicObject`. `select`: `None` for every stored
/// property, or the property names to report (plus the system ones), with
/// `null` for those without a value.
fn object_json(object: ObjectType, record: &SimObject, select: Option<&[String]>) -> Value {
    let properties: Map<String, Value> = match select {
        None => record
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
        Some(names) => names
            .iter()
            .map(String::as_str)
            .chain(object.system_properties().iter().copied())
            .map(|name| {
                let value = record
                    .properties
                    .get(name)
                    .map_or(Value::Null, |v| Value::String(v.clone()));
                (name.to_owned(), value)
            })
            .collect(),
    };
    json!({
        "id": record.id,
        "properties": properties,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": false,
    })
}

/// The properties a request body's `properties` list selects (the defaults when none).
fn selected_in_body(
    shared: &Shared,
    hub_id: u64,
    object: ObjectType,
    input: &Value,
) -> Vec<String> {
    let requested: Vec<String> = input
        .get("properties")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    selected_properties(shared, hub_id, object, &requested)
}

/// Names from a `properties` list that exist on `object` (unknown ones are
/// ignored, as HubSpot documents), or the object's defaults when none.
fn selected_properties(
    shared: &Shared,
    hub_id: u64,
    object: ObjectType,
    requested: &[String],
) -> Vec<String> {
    if requested.is_empty() {
        return object
            .default_properties()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    }
    let schema = shared.schema();
    requested
        .iter()
        .filter(|name| schema.lookup(hub_id, object, name).is_some())
        .cloned()
        .collect()
}

/// Comma-separated and repeated query values (`?properties=a,b&properties=c`).
fn query_list(query: &str, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// POST /crm/objects/2026-09/{type}[/batch/create|upsert|read]
// ---------------------------------------------------------------------------

/// A `POST` on an object type's path, metered as one call and answered by `answer` (given the
/// portal, the type named in the path and the body).
pub(super) fn object_post(
    answer: fn(&Shared, u64, &str, &[u8]) -> Result<Response, Reject>,
) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>,
              Path(object): Path<String>,
              headers: HeaderMap,
              body: Bytes| async move {
            shared.metered(&headers, |hub_id| answer(&shared, hub_id, &object, &body))
        },
    )
}

pub(super) fn create(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    body: &[u8],
) -> Result<Response, Reject> {
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let (properties, associations) = create_input(&input)?;
    let properties =
        validate_create(shared, hub_id, object, properties).map_err(InputError::reject)?;
    let unique = shared.schema().unique_custom(hub_id, object);
    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    let id = insert_new(records, object, &unique, properties, &associations)
        .map_err(InputError::reject)?;
    let record = records.record(object, id).expect("just inserted");
    Ok(json_response(
        StatusCode::CREATED,
        &object_json(object, record, None),
    ))
}

/// Why one create input was refused: on its own (a single create) the answer's status and
/// body; inside a batch create, one entry of the answer's `errors`.
enum InputError {
    Problems(Vec<PropertyProblem>),
    Invalid(String),
    Conflict(u64),
}

impl InputError {
    fn reject(self) -> Reject {
        match self {
            InputError::Problems(problems) => rejected(problems),
            InputError::Invalid(message) => bad_request(message),
            InputError::Conflict(existing) => conflict(existing),
        }
    }

    /// One entry of a multi-status batch answer's `errors`, naming its input by the
    /// `objectWriteTraceId` the input carried (HubSpot's "multi-status errors" for the
    /// batch create endpoints); the details as in a single write's refusal.
    fn batch_error(&self, trace_id: &str) -> Value {
        let (category, message, details) = match self {
            InputError::Problems(problems) => (
                "VALIDATION_ERROR",
                super::schema::problems_message(problems),
                super::schema::problem_details(problems),
            ),
            InputError::Invalid(message) => ("VALIDATION_ERROR", message.clone(), Vec::new()),
            InputError::Conflict(existing) => (
                "CONFLICT",
                format!("Contact already exists. Existing ID: {existing}"),
                Vec::new(),
            ),
        };
        json!({
            "status": "error",
            "category": category,
            "message": message,
            "context": { "objectWriteTraceId": [trace_id] },
            "errors": details,
        })
    }
}

/// `properties` and inline `associations` of one create input (a malformed input refuses
/// the whole request, as HubSpot's JSON parsing does).
fn create_input(
    input: &Value,
) -> Result<(BTreeMap<String, String>, Vec<AssociationInput>), Reject> {
    let properties = string_properties(input.get("properties"), "properties")?;
    let associations = association_inputs(input.get("associations"))?;
    Ok((properties, associations))
}

/// Schema, object and portal-rule checks of a new record's properties (schema and rules
/// locks only); the properties as they will be stored.
fn validate_create(
    shared: &Shared,
    hub_id: u64,
    object: ObjectType,
    properties: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut properties = shared
        .schema()
        .check_all(object, hub_id, &properties)
        .map_err(InputError::Problems)?;
    let problem = match object {
        ObjectType::Notes => required_problem(&properties, "hs_timestamp"),
        ObjectType::Deals => required_problem(&properties, "dealstage").or_else(|| {
            let pipeline = properties.entry("pipeline".to_owned()).or_default();
            if pipeline.is_empty() {
                "default".clone_into(pipeline);
            }
            stage_problem(hub_id, &properties["pipeline"], &properties["dealstage"])
        }),
        ObjectType::Contacts => None,
    };
    if let Some(problem) = problem {
        return Err(InputError::Problems(vec![problem]));
    }
    let broken = shared.rules().broken(object, &properties, true);
    if !broken.is_empty() {
        return Err(InputError::Problems(broken));
    }
    Ok(properties)
}

/// Inserts a validated new record with its inline associations, after the checks that need
/// the store (unique values, contact email, association targets).
fn insert_new(
    records: &mut HubRecords,
    object: ObjectType,
    unique: &[String],
    properties: BTreeMap<String, String>,
    associations: &[AssociationInput],
) -> Result<u64, InputError> {
    let problems = records.unique_problems(object, unique, &properties, None);
    if !problems.is_empty() {
        return Err(InputError::Problems(problems));
    }
    if object == ObjectType::Contacts {
        if let Some(existing) = properties
            .get("email")
            .filter(|e| !e.is_empty())
            .and_then(|email| records.contact_by_email(email))
        {
            return Err(InputError::Conflict(existing));
        }
    }
    let edges = association_edges(records, object, associations).map_err(InputError::Invalid)?;
    let id = records.insert(object, properties, Utc::now());
    for edge in edges {
        records.associate(Edge {
            from_id: id,
            ..edge
        });
    }
    Ok(id)
}

// ---------------------------------------------------------------------------
// POST /crm/objects/2026-09/{type}/batch/create
// ---------------------------------------------------------------------------

/// Up to [`MAX_BATCH_INPUTS`] creates in one request (metered as one). When every input
/// carries an `objectWriteTraceId`, HubSpot answers per input: the records made (each with
/// its trace id) and, with status 207, an `errors` entry per refused input naming its trace
/// id. Without trace ids a refused input refuses the whole batch and nothing is made.
pub(super) fn create_many(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    body: &[u8],
) -> Result<Response, Reject> {
    let started = Utc::now();
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let items = batch_inputs(&input)?;
    let traces: Vec<Option<String>> = items
        .iter()
        .map(|item| item.get("objectWriteTraceId").and_then(id_text))
        .collect();
    let multi_status = traces.iter().all(Option::is_some);
    let mut prepared = Vec::with_capacity(items.len());
    for item in items {
        let (properties, associations) = create_input(item)?;
        let valid = validate_create(shared, hub_id, object, properties);
        if !multi_status {
            let properties = valid.map_err(InputError::reject)?;
            prepared.push((Ok(properties), associations));
        } else {
            prepared.push((valid, associations));
        }
    }
    let unique = shared.schema().unique_custom(hub_id, object);
    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    if !multi_status {
        // All or nothing: every input must pass the store's checks before one is written.
        for (valid, associations) in &prepared {
            let Ok(properties) = valid else { continue };
            if let Some(existing) = (object == ObjectType::Contacts)
                .then(|| {
                    properties
                        .get("email")
                        .and_then(|e| records.contact_by_email(e))
                })
                .flatten()
            {
                return Err(conflict(existing));
            }
            let problems = records.unique_problems(object, &unique, properties, None);
            if !problems.is_empty() {
                return Err(rejected(problems));
            }
            association_edges(records, object, associations).map_err(bad_request)?;
        }
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for ((valid, associations), trace) in prepared.into_iter().zip(&traces) {
        let made = valid
            .and_then(|properties| insert_new(records, object, &unique, properties, &associations));
        match made {
            Ok(id) => {
                let record = records.record(object, id).expect("just inserted");
                let mut result = object_json(object, record, None);
                if let Some(trace) = trace {
                    result["objectWriteTraceId"] = json!(trace);
                }
                results.push(result);
            }
            Err(error) => match trace {
                Some(trace) => errors.push(error.batch_error(trace)),
                None => return Err(error.reject()),
            },
        }
    }
    drop(store);
    Ok(batch_answer(started, results, errors, StatusCode::CREATED))
}

// ---------------------------------------------------------------------------
// POST /crm/objects/2026-09/{type}/batch/upsert
// ---------------------------------------------------------------------------

/// How an upsert input names its record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum UpsertKey {
    Email(String),
    RecordId(String),
}

pub(super) fn upsert(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    body: &[u8],
) -> Result<Response, Reject> {
    let started = Utc::now();
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let items = batch_inputs(&input)?;

    let mut keyed = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let id = input_id(item, index)?;
        let properties = string_properties(item.get("properties"), "properties")?;
        let key = match item.get("idProperty").and_then(Value::as_str) {
            Some("email") if object == ObjectType::Contacts => {
                let email = id.trim().to_lowercase();
                if !super::schema::is_plausible_email(&email) {
                    problems.push(PropertyProblem::new(
                        "email",
                        "INVALID_EMAIL",
                        format!("Email address {id} is invalid"),
                    ));
                }
                if let Some(other) = properties.get("email").filter(|e| !e.is_empty()) {
                    if other.trim().to_lowercase() != email {
                        return Err(bad_request(format!(
                            "inputs[{index}]: properties.email ({other}) differs from the id ({id}) used with idProperty email (the simulator does not change emails through upsert)"
                        )));
                    }
                }
                UpsertKey::Email(email)
            }
            Some(other) => return Err(non_unique(hub_id, object, other)),
            None if object == ObjectType::Contacts => UpsertKey::RecordId(id.trim().to_owned()),
            None => {
                return Err(bad_request(format!(
                    "Upserting {} needs an idProperty naming a unique-value property",
                    object.plural()
                )))
            }
        };
        match shared.schema().check_all(object, hub_id, &properties) {
            Ok(valid) => keyed.push((key, valid)),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(rejected(problems));
    }
    let mut seen = BTreeSet::new();
    let duplicates: Vec<String> = keyed
        .iter()
        .filter(|(key, _)| !seen.insert(key.clone()))
        .map(|(key, _)| match key {
            UpsertKey::Email(v) | UpsertKey::RecordId(v) => v.clone(),
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(bad_request(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            duplicates.join(", ")
        )));
    }

    // A copy, so no lock is held while taking another.
    let rules = shared.rules().clone();
    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    // Resolve every input before writing anything: the batch is all or nothing.
    let mut plan = Vec::with_capacity(keyed.len());
    let mut broken = Vec::new();
    for (key, properties) in keyed {
        let existing = match &key {
            UpsertKey::Email(email) => records.contact_by_email(email),
            UpsertKey::RecordId(id) => match records.exists(object, id) {
                Some(id) => Some(id),
                None => {
                    return Err(bad_request(format!(
                        "No {} has record ID {id}. Without idProperty, upsert identifies records by record ID and cannot create them; send \"idProperty\": \"email\" to create or update by email",
                        object.singular()
                    )))
                }
            },
        };
        // The portal's rules (2026-09): a new record's as on create, an existing one's after
        // the merge.
        let mut effective = existing
            .and_then(|id| records.record(object, id))
            .map(|record| record.properties.clone())
            .unwrap_or_default();
        effective.extend(properties.clone());
        if let UpsertKey::Email(email) = &key {
            effective.insert("email".to_owned(), email.clone());
        }
        broken.extend(rules.broken(object, &effective, existing.is_none()));
        plan.push((key, existing, properties));
    }
    if !broken.is_empty() {
        return Err(rejected(broken));
    }
    let now = Utc::now();
    let mut results = Vec::with_capacity(plan.len());
    for (key, existing, mut properties) in plan {
        let (id, new) = match existing {
            Some(id) => {
                records.update(object, id, properties, now);
                (id, false)
            }
            None => {
                if let UpsertKey::Email(email) = key {
                    properties.insert("email".to_owned(), email);
                }
                (records.insert(object, properties, now), true)
            }
        };
        let record = records.record(object, id).expect("just written");
        let mut result = object_json(object, record, None);
        result["new"] = Value::Bool(new);
        results.push(result);
    }
    drop(store);
    Ok(batch_answer(started, results, Vec::new(), StatusCode::OK))
}

// ---------------------------------------------------------------------------
// PATCH /crm/objects/2026-09/{type}/{id}
// ---------------------------------------------------------------------------

pub(super) async fn update_object(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    shared.metered(&headers, |hub_id| {
        update(&shared, hub_id, &object, &id, &query, &body)
    })
}

/// Find the record a path id names: a record id, or a contact email with
/// `?idProperty=email`.
fn locate(
    records: &HubRecords,
    hub_id: u64,
    object: ObjectType,
    id: &str,
    query: &str,
    unique: &[String],
) -> Result<u64, Reject> {
    let id_property = decode_form(query).remove("idProperty");
    match id_property.as_deref() {
        None | Some("hs_object_id") => records.exists(object, id).ok_or_else(record_not_found),
        Some("email") if object == ObjectType::Contacts => {
            records.contact_by_email(id).ok_or_else(record_not_found)
        }
        // A custom unique-value property: read and update by it (a read by id, strongly
        // consistent, unlike search).
        Some(name) if unique.iter().any(|u| u == name) => records
            .by_value(object, name, id)
            .ok_or_else(record_not_found),
        Some(other) => Err(non_unique(hub_id, object, other)),
    }
}

fn update(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    id: &str,
    query: &str,
    body: &[u8],
) -> Result<Response, Reject> {
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let properties = string_properties(input.get("properties"), "properties")?;
    let properties = checked(shared, object, hub_id, &properties)?;
    let unique = shared.schema().unique_custom(hub_id, object);
    let rules = shared.rules().clone();

    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    let record_id = locate(records, hub_id, object, id, query, &unique)?;
    records.check_unique(object, &unique, &properties, Some(record_id))?;
    let current = &records
        .record(object, record_id)
        .expect("located")
        .properties;
    let mut effective = current.clone();
    effective.extend(properties.clone());
    let broken = rules.broken(object, &effective, false);
    if !broken.is_empty() {
        return Err(rejected(broken));
    }
    match object {
        ObjectType::Contacts => {
            if let Some(email) = properties.get("email").filter(|e| !e.is_empty()) {
                if let Some(existing) = records.contact_by_email(email) {
                    if existing != record_id {
                        return Err(conflict(existing));
                    }
                }
            }
        }
        ObjectType::Deals => {
            let effective = |name: &str| {
                properties
                    .get(name)
                    .or_else(|| current.get(name))
                    .cloned()
                    .unwrap_or_default()
            };
            if properties.contains_key("pipeline") || properties.contains_key("dealstage") {
                let stage = effective("dealstage");
                if stage.is_empty() {
                    return Err(missing("dealstage"));
                }
                let pipeline = effective("pipeline");
                let pipeline = if pipeline.is_empty() {
                    "default".to_owned()
                } else {
                    pipeline
                };
                check_stage(hub_id, &pipeline, &stage)?;
            }
        }
        ObjectType::Notes => {
            if properties.get("hs_timestamp").is_some_and(String::is_empty) {
                return Err(missing("hs_timestamp"));
            }
        }
    }
    records.update(object, record_id, properties, Utc::now());
    let record = records.record(object, record_id).expect("located");
    Ok(json_response(
        StatusCode::OK,
        &object_json(object, record, None),
    ))
}

// ---------------------------------------------------------------------------
// GET /crm/objects/2026-09/{type}/{id}
// ---------------------------------------------------------------------------

pub(super) async fn read_object(
    State(shared): State<Arc<Shared>>,
    Path((object, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    shared.metered(&headers, |hub_id| {
        read(&shared, hub_id, &object, &id, &query)
    })
}

fn read(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    id: &str,
    query: &str,
) -> Result<Response, Reject> {
    let object = object_type(object)?;
    let select = selected_properties(shared, hub_id, object, &query_list(query, "properties"));
    let unique = shared.schema().unique_custom(hub_id, object);
    let wanted: Vec<ObjectType> = query_list(query, "associations")
        .iter()
        .filter_map(|name| ObjectType::parse(name))
        .collect();
    if decode_form(query).get("archived").map(String::as_str) == Some("true") {
        // Nothing is ever archived in the simulator.
        return Err(record_not_found());
    }

    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    let record_id = locate(records, hub_id, object, id, query, &unique)?;
    let record = records.record(object, record_id).expect("located");
    let mut body = object_json(object, record, Some(&select));
    if !wanted.is_empty() {
        let linked = records.associations_of(object, record_id);
        let mut map = Map::new();
        for target in wanted {
            let results: Vec<Value> = linked
                .iter()
                .filter(|(to, _, _)| *to == target)
                .map(|(to, to_id, _)| {
                    json!({
                        "id": to_id,
                        "type": format!("{}_to_{}", object.singular(), to.singular()),
                    })
                })
                .collect();
            // HubSpot leaves out types with no associations.
            if !results.is_empty() {
                map.insert(target.plural().to_owned(), json!({ "results": results }));
            }
        }
        if !map.is_empty() {
            body["associations"] = Value::Object(map);
        }
    }
    Ok(json_response(StatusCode::OK, &body))
}

// ---------------------------------------------------------------------------
// POST /crm/objects/2026-09/{type}/search
// ---------------------------------------------------------------------------

pub(super) async fn search_objects(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.search_metered(&headers, |hub_id| search(&shared, hub_id, &object, &body))
}

struct Filter {
    property: String,
    operator: String,
    values: Vec<String>,
    def: Option<PropertyDef>,
}

const SEARCH_OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
];

fn parse_filters(
    shared: &Shared,
    hub_id: u64,
    object: ObjectType,
    input: &Value,
) -> Result<Vec<Vec<Filter>>, Reject> {
    let groups = match input.get("filterGroups") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(groups)) => groups,
        Some(_) => {
            return Err(bad_request(
                "Invalid input JSON: `filterGroups` must be an array",
            ))
        }
    };
    if groups.len() > MAX_FILTER_GROUPS {
        return Err(bad_request(format!(
            "Too many filter groups: {} (at most {MAX_FILTER_GROUPS})",
            groups.len()
        )));
    }
    let schema = shared.schema();
    let mut parsed = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let filters = group
            .get("filters")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                bad_request(format!(
                    "Invalid input JSON: filterGroups[{g}].filters must be an array"
                ))
            })?;
        let mut list = Vec::new();
        for (f, filter) in filters.iter().enumerate() {
            let field = |name: &str| filter.get(name).and_then(Value::as_str).map(str::to_owned);
            let Some(property) = field("propertyName") else {
                return Err(bad_request(format!(
                    "Invalid input JSON: filterGroups[{g}].filters[{f}].propertyName is required"
                )));
            };
            let operator = field("operator").unwrap_or_default();
            if !SEARCH_OPERATORS.contains(&operator.as_str()) {
                return Err(bad_request(format!(
                    "filterGroups[{g}].filters[{f}]: operator {operator:?} is not supported by the simulator (supported: {})",
                    SEARCH_OPERATORS.join(", ")
                )));
            }
            let def = schema.lookup(hub_id, object, &property).cloned();
            if def.is_none() {
                return Err(bad_request(format!(
                    "There was a problem with the request: property {property} does not exist on {}",
                    object.plural()
                )));
            }
            let mut values: Vec<String> = filter
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(scalar_text).collect())
                .unwrap_or_default();
            if let Some(value) = filter.get("value").and_then(scalar_text) {
                values.push(value);
            }
            let needs_value = !operator.ends_with("HAS_PROPERTY");
            if needs_value && values.is_empty() {
                return Err(bad_request(format!(
                    "filterGroups[{g}].filters[{f}]: operator {operator} needs a value"
                )));
            }
            list.push(Filter {
                property,
                operator,
                values,
                def,
            });
        }
        parsed.push(list);
    }
    Ok(parsed)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// HubSpot-style equality of a stored value and a filter value.
fn same_value(def: Option<&PropertyDef>, stored: &str, wanted: &str) -> bool {
    match def.map(|d| &d.kind) {
        Some(Kind::Phone) => {
            let stored = digits(stored);
            !stored.is_empty() && stored == digits(wanted)
        }
        Some(Kind::Number | Kind::RecordId) => {
            match (stored.trim().parse::<f64>(), wanted.trim().parse::<f64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => stored.trim() == wanted.trim(),
            }
        }
        Some(Kind::DateTime | Kind::ReadOnlyDateTime) => {
            match (parse_datetime(stored), parse_datetime(wanted)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        _ => stored.trim().to_lowercase() == wanted.trim().to_lowercase(),
    }
}

fn filter_matches(filter: &Filter, record: &SimObject) -> bool {
    let stored = record
        .properties
        .get(&filter.property)
        .map(String::as_str)
        .filter(|v| !v.is_empty());
    let def = filter.def.as_ref();
    let any_equal = || stored.is_some_and(|s| filter.values.iter().any(|v| same_value(def, s, v)));
    match filter.operator.as_str() {
        "EQ" | "IN" => any_equal(),
        "NEQ" | "NOT_IN" => !any_equal(),
        "HAS_PROPERTY" => stored.is_some(),
        "NOT_HAS_PROPERTY" => stored.is_none(),
        "CONTAINS_TOKEN" => stored.is_some_and(|s| {
            let s = s.to_lowercase();
            filter
                .values
                .iter()
                .any(|v| s.contains(&v.trim_matches('*').to_lowercase()))
        }),
        _ => false,
    }
}

fn search(shared: &Shared, hub_id: u64, object: &str, body: &[u8]) -> Result<Response, Reject> {
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let groups = parse_filters(shared, hub_id, object, &input)?;
    let limit = match input.get("limit") {
        None | Some(Value::Null) => 10,
        Some(value) => value
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| bad_request("Invalid input JSON: `limit` must be an integer"))?,
    };
    if limit > MAX_SEARCH_LIMIT {
        return Err(bad_request(format!(
            "limit {limit} is too large; the maximum is {MAX_SEARCH_LIMIT}"
        )));
    }
    let offset = match input.get("after") {
        None | Some(Value::Null) => 0,
        Some(value) => scalar_text(value)
            .and_then(|text| text.parse::<usize>().ok())
            .ok_or_else(|| {
                bad_request(
                    "Invalid input JSON: `after` must be a paging cursor from a previous response",
                )
            })?,
    };
    let select = selected_in_body(shared, hub_id, object, &input);

    let store = shared.crm_store();
    let indexed_before =
        Utc::now() - chrono::Duration::from_std(shared.config.search_index_lag).unwrap_or_default();
    let all: Vec<SimObject> = store
        .objects(hub_id, object)
        .into_iter()
        .filter(|record| record.created_at <= indexed_before)
        .collect();
    drop(store);
    let matching: Vec<&SimObject> = all
        .iter()
        .filter(|record| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|group| group.iter().all(|filter| filter_matches(filter, record)))
        })
        .collect();
    let total = matching.len();
    let results: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|record| object_json(object, record, Some(&select)))
        .collect();
    let mut body = json!({ "total": total, "results": results });
    let next = offset + limit;
    if next < total {
        body["paging"] = json!({ "next": { "after": next.to_string() } });
    }
    Ok(json_response(StatusCode::OK, &body))
}

// ---------------------------------------------------------------------------
// GET /_sim/state (simulator only) and test seeding
// ---------------------------------------------------------------------------

pub(super) async fn sim_state(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let hub_id = decode_form(&query.unwrap_or_default())
        .get("hub_id")
        .and_then(|h| h.parse().ok())
        .unwrap_or(shared.config.hub_id);
    json_response(StatusCode::OK, &state_json(&shared, hub_id))
}

/// Every record and association of a hub, for the demo and for debugging.
pub(super) fn state_json(shared: &Shared, hub_id: u64) -> Value {
    let store = shared.crm_store();
    let mut body = json!({
        "simulator": "HubSpot simulator state (not a HubSpot API)",
        "hubId": hub_id,
        "crmCalls": shared.crm_calls.load(std::sync::atomic::Ordering::SeqCst),
    });
    for object in ObjectType::ALL {
        let list: Vec<Value> = store
            .objects(hub_id, object)
            .iter()
            .map(|record| object_json(object, record, None))
            .collect();
        body[object.plural()] = Value::Array(list);
    }
    let associations: Vec<Value> = store
        .hubs
        .get(&hub_id)
        .map(|hub| {
            hub.edges
                .iter()
                .map(|edge| {
                    json!({
                        "fromType": edge.from.plural(),
                        "fromId": edge.from_id.to_string(),
                        "toType": edge.to.plural(),
                        "toId": edge.to_id.to_string(),
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": edge.type_id,
                        "type": format!("{}_to_{}", edge.from.singular(), edge.to.singular()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    body["associations"] = Value::Array(associations);
    body
}

/// [`super::HubSpotSim::seed_contact`]: validated like a create, no request.
pub(super) fn seed_contact(
    shared: &Shared,
    hub_id: u64,
    properties: &Value,
) -> Result<String, String> {
    let object = ObjectType::Contacts;
    let properties = string_properties(Some(properties), "properties")
        .map_err(|_| "properties must be a JSON object of property name to string".to_owned())?;
    let properties = shared
        .schema()
        .check_all(object, hub_id, &properties)
        .map_err(|problems| {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    if let Some(existing) = properties
        .get("email")
        .filter(|e| !e.is_empty())
        .and_then(|email| records.contact_by_email(email))
    {
        return Err(format!(
            "a contact with email {} already exists (id {existing})",
            properties["email"]
        ));
    }
    Ok(records.insert(object, properties, Utc::now()).to_string())
}

// ---------------------------------------------------------------------------
// PUT /crm/objects/2026-09/{from}/{fromId}/associations/default/{to}/{toId}
// ---------------------------------------------------------------------------

/// Creates the default (unlabeled, HUBSPOT_DEFINED) association between two existing records,
/// as HubSpot's v4 "associate records without a label" endpoint does.
pub(super) async fn associate_default(
    State(shared): State<Arc<Shared>>,
    Path((from, from_id, to, to_id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.metered(&headers, |hub_id| {
        let from = object_type(&from)?;
        let to = object_type(&to)?;
        let (_, _, type_id, _) = ASSOCIATION_TYPES
            .iter()
            .find(|(f, t, _, _)| *f == from && *t == to)
            .copied()
            .ok_or_else(|| bad_request(format!("no default association from {} to {}", from.plural(), to.plural())))?;
        let mut store = shared.crm_store();
        let records = store.hub(hub_id);
        let from_id = records.exists(from, &from_id).ok_or_else(record_not_found)?;
        let to_id = records.exists(to, &to_id).ok_or_else(record_not_found)?;
        records.associate(Edge {
            from,
            from_id,
            to,
            to_id,
            type_id,
        });
        let now = iso(Utc::now());
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "status": "COMPLETE",
                "results": [{
                    "from": { "id": from_id.to_string() },
                    "to": { "id": to_id.to_string() },
                    "associationSpec": { "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }
                }],
                "startedAt": now,
                "completedAt": now
            }),
        ))
    })
}

// ---------------------------------------------------------------------------
// GET /crm/objects/2026-09/{from}/{fromId}/associations/{to}
// ---------------------------------------------------------------------------

/// Most associations one page of the v4 list returns.
pub const MAX_ASSOCIATIONS_PAGE: usize = 500;

/// Lists a record's associations to one object type, as HubSpot's v4 "List" does
/// (`CollectionResponseMultiAssociatedObjectWithLabel`: `results[]` of `toObjectId` (a number)
/// and `associationTypes[]` of `category`, `typeId`, `label`; `paging.next.after` when more
/// remain; `limit` at most 500).
pub(super) async fn list_associations(
    State(shared): State<Arc<Shared>>,
    Path((from, from_id, to)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = decode_form(&query.unwrap_or_default());
    shared.metered(&headers, |hub_id| {
        let from = object_type(&from)?;
        let to = object_type(&to)?;
        let limit = match query.get("limit") {
            None => MAX_ASSOCIATIONS_PAGE,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_ASSOCIATIONS_PAGE).contains(n))
                .ok_or_else(|| {
                    bad_request(format!("limit must be 1 to {MAX_ASSOCIATIONS_PAGE}"))
                })?,
        };
        let offset = match query.get("after") {
            None => 0,
            Some(text) => text.parse::<usize>().map_err(|_| {
                bad_request("`after` must be a paging cursor from a previous response")
            })?,
        };
        let mut store = shared.crm_store();
        let records = store.hub(hub_id);
        let id = records
            .exists(from, &from_id)
            .ok_or_else(record_not_found)?;
        let mut grouped: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for (target, to_id, type_id) in records.associations_of(from, id) {
            if target == to {
                grouped
                    .entry(to_id.parse().expect("stored ids are numbers"))
                    .or_default()
                    .push(type_id);
            }
        }
        let total = grouped.len();
        let results: Vec<Value> = grouped
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(to_id, types)| {
                let types: Vec<Value> = types
                    .into_iter()
                    .map(|type_id| {
                        json!({ "category": "HUBSPOT_DEFINED", "typeId": type_id, "label": null })
                    })
                    .collect();
                json!({ "toObjectId": to_id, "associationTypes": types })
            })
            .collect();
        let mut body = json!({ "results": results });
        if offset + limit < total {
            body["paging"] = json!({ "next": { "after": (offset + limit).to_string() } });
        }
        Ok(json_response(StatusCode::OK, &body))
    })
}

// ---------------------------------------------------------------------------
// POST /crm/objects/2026-09/{type}/batch/read
// ---------------------------------------------------------------------------

/// Reads records by id (`BatchReadInputSimplePublicObjectId`: `inputs[].id`, `properties`,
/// optional `idProperty`). Ids that name no record are left out and reported in `errors` with
/// a 207, as HubSpot's batch answers do.
pub(super) fn read_many(
    shared: &Shared,
    hub_id: u64,
    object: &str,
    body: &[u8],
) -> Result<Response, Reject> {
    let started = Utc::now();
    let object = object_type(object)?;
    let input = parse_body(body)?;
    let items = batch_inputs(&input)?;
    let select = selected_in_body(shared, hub_id, object, &input);
    let unique = shared.schema().unique_custom(hub_id, object);
    let id_property = input.get("idProperty").and_then(Value::as_str);
    let query = id_property
        .map(|p| format!("idProperty={p}"))
        .unwrap_or_default();
    let mut store = shared.crm_store();
    let records = store.hub(hub_id);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let id = input_id(item, index)?;
        match locate(records, hub_id, object, &id, &query, &unique) {
            Ok(found) => {
                let record = records.record(object, found).expect("located");
                results.push(object_json(object, record, Some(&select)));
            }
            Err(_) => missing.push(id),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", object.singular()),
            "context": { "ids": missing },
        })]
    };
    Ok(batch_answer(started, results, errors, StatusCode::OK))
}
