//! Object types, property definitions and value validation, and the
//! read-only `GET /crm/properties/2026-09/{object}[/{name}]` endpoints.
//!
//! HubSpot rejects writes to properties that do not exist on the object,
//! read-only properties and out-of-range enumeration values with a 400
//! `VALIDATION_ERROR` whose `message` embeds a JSON array of per-property
//! problems (`"Property values were not valid: [{\"isValid\":false,
//! \"message\":...,\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":...}]"`).
//! The simulator renders the same message and, in addition, the spec's
//! structured `errors[]` (`ErrorDetail`: `message`, `code`, `context`), so a
//! client can read the offending property name without parsing the message.
//!
//! The `Property` JSON shape follows the Properties v3 spec
//! (`PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json`,
//! schema `Property`: `name`, `label`, `type`, `fieldType`, `description`,
//! `groupName`, `options` required; list responses are
//! `CollectionResponsePropertyNoPaging` = `{results: [...]}`).
//!
//! Error codes `PROPERTY_DOESNT_EXIST`, `INVALID_OPTION`, `READ_ONLY_VALUE`
//! and `INVALID_EMAIL` are HubSpot's own; `INVALID_DATE`, `INVALID_NUMBER`,
//! `INVALID_OWNER`, `MAX_LENGTH_EXCEEDED` and `REQUIRED_PROPERTY` are the
//! simulator's names for checks HubSpot makes with wording we could not
//! confirm.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};

use super::pipelines::{pipeline_and_stage_labels, pipeline_stages};
use super::{hubspot_error, hubspot_error_with, iso, json_response, Shared};
use crate::sim::server::Reject;

/// HubSpot's limit on any string property value, in characters (the notes
/// guide states it for `hs_note_body`: "limited to 65,536 characters").
pub(super) const MAX_STRING_CHARS: usize = 65_536;

/// `createdAt`/`updatedAt` reported for built-in property definitions.
const BUILTIN_DEFINED_AT: &str = "2019-08-06T02:41:52.000Z";

/// The CRM object types the simulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum ObjectType {
    Contacts,
    Deals,
    Notes,
}

impl ObjectType {
    pub(super) const ALL: [ObjectType; 3] =
        [ObjectType::Contacts, ObjectType::Deals, ObjectType::Notes];

    /// Plural and singular names and HubSpot object type ids (`0-1`, `0-3`,
    /// `0-46`) are all accepted, case-insensitively.
    pub(super) fn parse(name: &str) -> Option<ObjectType> {
        match name.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            "notes" | "note" | "0-46" => Some(ObjectType::Notes),
            _ => None,
        }
    }

    pub(super) fn plural(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Deals => "deals",
            ObjectType::Notes => "notes",
        }
    }

    pub(super) fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Deals => "deal",
            ObjectType::Notes => "note",
        }
    }

    pub(super) fn type_id(self) -> &'static str {
        match self {
            ObjectType::Contacts => "0-1",
            ObjectType::Deals => "0-3",
            ObjectType::Notes => "0-46",
        }
    }

    /// Returned by reads and searches that name no `properties` (the v3
    /// objects spec: contacts `firstname`, `lastname`, `email`; deals
    /// `dealname`, `amount`, `closedate`, `pipeline`, `dealstage`).
    pub(super) fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &["email", "firstname", "lastname"],
            ObjectType::Deals => &["amount", "closedate", "dealname", "dealstage", "pipeline"],
            ObjectType::Notes => &[],
        }
    }

    /// Always returned, whatever `properties` asks for.
    pub(super) fn system_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &["createdate", "hs_object_id", "lastmodifieddate"],
            ObjectType::Deals => &["createdate", "hs_lastmodifieddate", "hs_object_id"],
            ObjectType::Notes => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        }
    }

    pub(super) fn created_property(self) -> &'static str {
        match self {
            ObjectType::Contacts | ObjectType::Deals => "createdate",
            ObjectType::Notes => "hs_createdate",
        }
    }

    pub(super) fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            ObjectType::Deals | ObjectType::Notes => "hs_lastmodifieddate",
        }
    }

    /// First record id handed out in a hub. The ranges differ per type so a
    /// deal id sent where a contact id belongs is a 404/400, not a silent hit.
    pub(super) fn first_id(self) -> u64 {
        match self {
            ObjectType::Contacts => 10_001,
            ObjectType::Deals => 20_000_001,
            ObjectType::Notes => 30_000_000_001,
        }
    }

    fn info_group(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contactinformation",
            ObjectType::Deals => "dealinformation",
            ObjectType::Notes => "engagement",
        }
    }
}

/// What values a property takes.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// `string` / `text`.
    Text,
    /// `string` / `textarea`.
    TextArea,
    /// `string` / `html`.
    Html,
    /// `string` / `text`, must look like an email address; stored lower-cased.
    Email,
    /// `string` / `phonenumber`; searches compare digits only.
    Phone,
    /// `number` / `number`.
    Number,
    /// `datetime` / `date`: Unix milliseconds, RFC 3339 or `YYYY-MM-DD`;
    /// stored as RFC 3339 UTC with milliseconds.
    DateTime,
    /// `enumeration` with fixed `(value, label)` options.
    Enum(Vec<(String, String)>),
    /// `enumeration` of HubSpot users (`referencedObjectType: OWNER`,
    /// `externalOptions: true`); any numeric owner id is accepted.
    Owner,
    /// `enumeration` whose options are the hub's deal pipelines.
    Pipeline,
    /// `enumeration` whose options are the hub's deal stages.
    DealStage,
    /// Read-only `number` (`hs_object_id`).
    RecordId,
    /// Read-only `datetime` (create/modify dates).
    ReadOnlyDateTime,
}

#[derive(Debug, Clone)]
pub(super) struct PropertyDef {
    pub(super) name: String,
    label: String,
    group: String,
    pub(super) kind: Kind,
    field_type: &'static str,
    hubspot_defined: bool,
    unique: bool,
    defined_at: String,
}

impl PropertyDef {
    fn builtin(name: &str, label: &str, group: &str, kind: Kind) -> PropertyDef {
        let field_type = match &kind {
            Kind::Text | Kind::Email => "text",
            Kind::TextArea => "textarea",
            Kind::Html => "html",
            Kind::Phone => "phonenumber",
            Kind::Number | Kind::RecordId => "number",
            Kind::DateTime | Kind::ReadOnlyDateTime => "date",
            Kind::Enum(_) | Kind::Owner | Kind::Pipeline => "select",
            Kind::DealStage => "radio",
        };
        PropertyDef {
            name: name.to_owned(),
            label: label.to_owned(),
            group: group.to_owned(),
            kind,
            field_type,
            hubspot_defined: true,
            unique: false,
            defined_at: BUILTIN_DEFINED_AT.to_owned(),
        }
    }

    fn radio(mut self) -> PropertyDef {
        self.field_type = "radio";
        self
    }

    fn unique(mut self) -> PropertyDef {
        self.unique = true;
        self
    }

    pub(super) fn read_only(&self) -> bool {
        matches!(self.kind, Kind::RecordId | Kind::ReadOnlyDateTime)
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Text | Kind::TextArea | Kind::Html | Kind::Email | Kind::Phone => "string",
            Kind::Number | Kind::RecordId => "number",
            Kind::DateTime | Kind::ReadOnlyDateTime => "datetime",
            Kind::Enum(_) | Kind::Owner | Kind::Pipeline | Kind::DealStage => "enumeration",
        }
    }

    /// The spec's `Property` object.
    fn to_json(&self, hub_id: u64) -> Value {
        let options: Vec<(String, String)> = match &self.kind {
            Kind::Enum(options) => options.clone(),
            Kind::Pipeline => pipeline_and_stage_labels(hub_id).0,
            Kind::DealStage => pipeline_and_stage_labels(hub_id).1,
            _ => Vec::new(),
        };
        let options: Vec<Value> = options
            .iter()
            .enumerate()
            .map(|(order, (value, label))| {
                json!({
                    "label": label,
                    "value": value,
                    "displayOrder": order,
                    "hidden": false,
                })
            })
            .collect();
        let mut body = json!({
            "name": self.name,
            "label": self.label,
            "type": self.type_name(),
            "fieldType": self.field_type,
            "description": "",
            "groupName": self.group,
            "options": options,
            "displayOrder": -1,
            "calculated": false,
            "externalOptions": matches!(self.kind, Kind::Owner),
            "hasUniqueValue": self.unique,
            "hidden": false,
            "formField": !self.read_only(),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only(),
            },
            "createdAt": self.defined_at,
            "updatedAt": self.defined_at,
            "archived": false,
        });
        if let Some(map) = body.as_object_mut() {
            if self.hubspot_defined {
                map.insert("hubspotDefined".to_owned(), Value::Bool(true));
            }
            if matches!(self.kind, Kind::Owner) {
                map.insert("referencedObjectType".to_owned(), json!("OWNER"));
            }
        }
        body
    }
}

/// One rejected property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PropertyProblem {
    pub(super) name: String,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl PropertyProblem {
    pub(super) fn new(name: &str, code: &'static str, message: String) -> PropertyProblem {
        PropertyProblem {
            name: name.to_owned(),
            code,
            message,
        }
    }
}

impl std::fmt::Display for PropertyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}: {})", self.message, self.code, self.name)
    }
}

/// Most custom unique-value properties one object type may have in a hub
/// (https://developers.hubspot.com/changelog/unique-properties-for-contacts: ten per object,
/// "similar to the other object types").
pub(super) const MAX_UNIQUE_PROPERTIES: usize = 10;

/// Property definitions per object type: the standard ones and those the simulator's
/// `add_property` defines are shared by every hub; those created through
/// `POST /crm/properties/2026-09/{object}` belong to the hub that created them.
pub(super) struct Schema {
    defs: BTreeMap<ObjectType, BTreeMap<String, PropertyDef>>,
    hub_defs: BTreeMap<(u64, ObjectType), BTreeMap<String, PropertyDef>>,
}

fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(value, label)| ((*value).to_owned(), (*label).to_owned()))
        .collect()
}

impl Schema {
    /// HubSpot's standard properties that the relay may touch.
    pub(super) fn standard() -> Schema {
        use Kind::*;
        let b = PropertyDef::builtin;
        let lead_status = options(&[
            ("NEW", "New"),
            ("OPEN", "Open"),
            ("IN_PROGRESS", "In Progress"),
            ("OPEN_DEAL", "Open Deal"),
            ("UNQUALIFIED", "Unqualified"),
            ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
            ("CONNECTED", "Connected"),
            ("BAD_TIMING", "Bad Timing"),
        ]);
        let lifecycle = options(&[
            ("subscriber", "Subscriber"),
            ("lead", "Lead"),
            ("marketingqualifiedlead", "Marketing Qualified Lead"),
            ("salesqualifiedlead", "Sales Qualified Lead"),
            ("opportunity", "Opportunity"),
            ("customer", "Customer"),
            ("evangelist", "Evangelist"),
            ("other", "Other"),
        ]);
        let deal_type = options(&[
            ("newbusiness", "New Business"),
            ("existingbusiness", "Existing Business"),
        ]);
        let ci = "contactinformation";
        let di = "dealinformation";
        let en = "engagement";
        let contacts = vec![
            b("email", "Email", ci, Email).unique(),
            b("firstname", "First Name", ci, Text),
            b("lastname", "Last Name", ci, Text),
            b("phone", "Phone Number", ci, Phone),
            b("mobilephone", "Mobile Phone Number", ci, Phone),
            b(
                "hs_lead_status",
                "Lead Status",
                "sales_properties",
                Enum(lead_status),
            )
            .radio(),
            b("lifecyclestage", "Lifecycle Stage", ci, Enum(lifecycle)).radio(),
            b("company", "Company Name", ci, Text),
            b("website", "Website URL", ci, Text),
            b("city", "City", ci, Text),
            b("country", "Country/Region", ci, Text),
            b("jobtitle", "Job Title", ci, Text),
            b("message", "Message", ci, TextArea),
            b("hubspot_owner_id", "Contact owner", ci, Owner),
            b("hs_object_id", "Record ID", ci, RecordId),
            b("createdate", "Create Date", ci, ReadOnlyDateTime),
            b(
                "lastmodifieddate",
                "Last Modified Date",
                ci,
                ReadOnlyDateTime,
            ),
        ];
        let deals = vec![
            b("dealname", "Deal Name", di, Text),
            b("pipeline", "Pipeline", di, Pipeline),
            b("dealstage", "Deal Stage", di, DealStage),
            b("amount", "Amount", di, Number),
            b("closedate", "Close Date", di, DateTime),
            b("dealtype", "Deal Type", di, Enum(deal_type)).radio(),
            b("description", "Deal Description", di, TextArea),
            b("hubspot_owner_id", "Deal owner", di, Owner),
            b("hs_object_id", "Record ID", di, RecordId),
            b("createdate", "Create Date", di, ReadOnlyDateTime),
            b(
                "hs_lastmodifieddate",
                "Last Modified Date",
                di,
                ReadOnlyDateTime,
            ),
        ];
        let notes = vec![
            b("hs_note_body", "Note body", en, Html),
            b("hs_timestamp", "Activity date", en, DateTime),
            b("hubspot_owner_id", "Activity assigned to", en, Owner),
            b("hs_attachment_ids", "Attachment IDs", en, Text),
            b("hs_object_id", "Record ID", en, RecordId),
            b("hs_createdate", "Create date", en, ReadOnlyDateTime),
            b(
                "hs_lastmodifieddate",
                "Last modified date",
                en,
                ReadOnlyDateTime,
            ),
        ];
        let index = |list: Vec<PropertyDef>| {
            list.into_iter()
                .map(|def| (def.name.clone(), def))
                .collect::<BTreeMap<_, _>>()
        };
        Schema {
            defs: BTreeMap::from([
                (ObjectType::Contacts, index(contacts)),
                (ObjectType::Deals, index(deals)),
                (ObjectType::Notes, index(notes)),
            ]),
            hub_defs: BTreeMap::new(),
        }
    }

    pub(super) fn get(&self, object: ObjectType, name: &str) -> Option<&PropertyDef> {
        self.defs.get(&object)?.get(name)
    }

    /// The definition `hub_id` sees: its own properties first, then the shared ones.
    pub(super) fn lookup(
        &self,
        hub_id: u64,
        object: ObjectType,
        name: &str,
    ) -> Option<&PropertyDef> {
        self.hub_defs
            .get(&(hub_id, object))
            .and_then(|m| m.get(name))
            .or_else(|| self.get(object, name))
    }

    fn all(&self, hub_id: u64, object: ObjectType) -> impl Iterator<Item = &PropertyDef> {
        let own = self.hub_defs.get(&(hub_id, object));
        self.defs
            .get(&object)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |d| own.is_none_or(|own| !own.contains_key(&d.name)))
            .chain(own.into_iter().flat_map(|m| m.values()))
    }

    /// Names of the custom unique-value properties `hub_id` has on `object`: values the store
    /// must keep unique, and `idProperty` names reads and updates accept.
    pub(super) fn unique_custom(&self, hub_id: u64, object: ObjectType) -> Vec<String> {
        self.all(hub_id, object)
            .filter(|d| d.unique && !d.hubspot_defined)
            .map(|d| d.name.clone())
            .collect()
    }

    /// `POST /crm/properties/2026-09/{object}` for `hub_id`: the `PropertyCreate` body checked as
    /// HubSpot does (`name`, `label`, `type`, `fieldType`, `groupName` required), a name that
    /// exists is 409, an eleventh unique property is refused. Only `string`/`text`,
    /// `string`/`textarea` and `number`/`number` are supported by the simulator.
    pub(super) fn create_in_hub(
        &mut self,
        hub_id: u64,
        object: ObjectType,
        body: &Value,
    ) -> Result<Value, Reject> {
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let missing: Vec<&str> = ["name", "label", "type", "fieldType", "groupName"]
            .into_iter()
            .filter(|name| field(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(bad_property(format!(
                "Invalid input JSON: missing required fields: {}",
                missing.join(", ")
            )));
        }
        let name = field("name").unwrap_or_default();
        let (kind, field_type) = match (field("type"), field("fieldType")) {
            (Some("string"), Some("text")) => (Kind::Text, "text"),
            (Some("string"), Some("textarea")) => (Kind::TextArea, "textarea"),
            (Some("number"), Some("number")) => (Kind::Number, "number"),
            (kind, field_type) => {
                return Err(bad_property(format!(
                    "type {kind:?} with fieldType {field_type:?} is not supported by the simulator"
                )))
            }
        };
        let group = field("groupName").unwrap_or_default();
        if !self.all(hub_id, object).any(|d| d.group == group) {
            return Err(bad_property(format!(
                "property group {group} does not exist for {}",
                object.plural()
            )));
        }
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(bad_property(format!(
                "{name} is not a valid property name: lower-case letters, digits and _ only"
            )));
        }
        if self.lookup(hub_id, object, name).is_some() {
            return Err(hubspot_error(
                StatusCode::CONFLICT,
                "OBJECT_ALREADY_EXISTS",
                format!("Property named '{name}' already exists."),
            )
            .into());
        }
        let unique = body.get("hasUniqueValue").and_then(Value::as_bool) == Some(true);
        if unique && self.unique_custom(hub_id, object).len() >= MAX_UNIQUE_PROPERTIES {
            return Err(bad_property(format!(
                "{} already has {MAX_UNIQUE_PROPERTIES} unique value properties, the most allowed",
                object.plural()
            )));
        }
        let mut def = PropertyDef::builtin(name, field("label").unwrap_or_default(), group, kind);
        def.field_type = field_type;
        def.hubspot_defined = false;
        def.unique = unique;
        def.defined_at = iso(Utc::now());
        let json = def.to_json(hub_id);
        self.hub_defs
            .entry((hub_id, object))
            .or_default()
            .insert(name.to_owned(), def);
        Ok(json)
    }

    /// Define (or redefine) a custom text property, or an enumeration when
    /// `option_values` is non-empty.
    pub(super) fn add_custom(
        &mut self,
        object: ObjectType,
        name: &str,
        option_values: &[&str],
    ) -> Result<(), String> {
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!(
                "{name:?} is not a valid internal property name (lower-case letters, digits, _)"
            ));
        }
        if self.get(object, name).is_some_and(|d| d.hubspot_defined) {
            return Err(format!(
                "{name:?} is a built-in {} property",
                object.singular()
            ));
        }
        let kind = if option_values.is_empty() {
            Kind::Text
        } else {
            Kind::Enum(
                option_values
                    .iter()
                    .map(|v| ((*v).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let mut def = PropertyDef::builtin(name, name, object.info_group(), kind);
        def.hubspot_defined = false;
        def.defined_at = iso(Utc::now());
        self.defs
            .entry(object)
            .or_default()
            .insert(name.to_owned(), def);
        Ok(())
    }

    /// Check one value written to `name` and return it as stored (dates
    /// normalised to RFC 3339, emails lower-cased). An empty string clears a
    /// value and is always accepted for writable properties.
    pub(super) fn check(
        &self,
        object: ObjectType,
        hub_id: u64,
        name: &str,
        value: &str,
    ) -> Result<String, PropertyProblem> {
        let Some(def) = self.lookup(hub_id, object, name) else {
            return Err(PropertyProblem::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
        };
        if def.read_only() {
            return Err(PropertyProblem::new(
                name,
                "READ_ONLY_VALUE",
                format!("Property \"{name}\" is a read only property; its value cannot be set."),
            ));
        }
        if value.is_empty() {
            return Ok(String::new());
        }
        match &def.kind {
            Kind::Text | Kind::TextArea | Kind::Html | Kind::Phone => {
                check_length(name, value).map(|()| value.to_owned())
            }
            Kind::Email => {
                check_length(name, value)?;
                let email = value.trim().to_lowercase();
                if is_plausible_email(&email) {
                    Ok(email)
                } else {
                    Err(PropertyProblem::new(
                        name,
                        "INVALID_EMAIL",
                        format!("Email address {value} is invalid"),
                    ))
                }
            }
            Kind::Number => match value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(value.trim().to_owned()),
                _ => Err(PropertyProblem::new(
                    name,
                    "INVALID_NUMBER",
                    format!("{value} was not a valid number."),
                )),
            },
            Kind::DateTime => parse_datetime(value).map(iso).ok_or_else(|| {
                PropertyProblem::new(
                    name,
                    "INVALID_DATE",
                    format!(
                        "{value} is not a valid date/time: use Unix milliseconds or ISO 8601 (e.g. 2025-01-31T12:00:00Z)"
                    ),
                )
            }),
            Kind::Owner => {
                if value.chars().all(|c| c.is_ascii_digit()) {
                    Ok(value.to_owned())
                } else {
                    Err(PropertyProblem::new(
                        name,
                        "INVALID_OWNER",
                        format!("{value} is not a valid owner id"),
                    ))
                }
            }
            Kind::Enum(options) => {
                one_of(name, value, options.iter().map(|(v, _)| v.as_str()))
            }
            Kind::Pipeline => {
                let pipelines = pipeline_stages(hub_id);
                one_of(name, value, pipelines.iter().map(|(id, _)| id.as_str()))
            }
            Kind::DealStage => {
                let pipelines = pipeline_stages(hub_id);
                one_of(
                    name,
                    value,
                    pipelines
                        .iter()
                        .flat_map(|(_, stages)| stages.iter().map(String::as_str)),
                )
            }
            Kind::RecordId | Kind::ReadOnlyDateTime => unreachable!("read-only handled above"),
        }
    }

    /// Check every value; all problems are reported together, as HubSpot does.
    pub(super) fn check_all(
        &self,
        object: ObjectType,
        hub_id: u64,
        properties: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Vec<PropertyProblem>> {
        let mut checked = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, value) in properties {
            match self.check(object, hub_id, name, value) {
                Ok(value) => {
                    checked.insert(name.clone(), value);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(checked)
        } else {
            Err(problems)
        }
    }
}

fn check_length(name: &str, value: &str) -> Result<(), PropertyProblem> {
    let chars = value.chars().count();
    if chars > MAX_STRING_CHARS {
        Err(PropertyProblem::new(
            name,
            "MAX_LENGTH_EXCEEDED",
            format!(
                "Property \"{name}\" is {chars} characters long; the limit is {MAX_STRING_CHARS}"
            ),
        ))
    } else {
        Ok(())
    }
}

fn one_of<'a>(
    name: &str,
    value: &str,
    allowed: impl Iterator<Item = &'a str>,
) -> Result<String, PropertyProblem> {
    let allowed: Vec<&str> = allowed.collect();
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(PropertyProblem::new(
            name,
            "INVALID_OPTION",
            format!(
                "{value} was not one of the allowed options: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

/// `local@domain.tld`, no whitespace.
pub(super) fn is_plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

/// Unix milliseconds, RFC 3339, or a plain `YYYY-MM-DD` (midnight UTC).
pub(super) fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        let millis: i64 = value.parse().ok()?;
        return Utc.timestamp_millis_opt(millis).single();
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Some(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The 400 HubSpot sends for rejected property values.
pub(super) fn property_errors_response(problems: &[PropertyProblem]) -> Response {
    hubspot_error_with(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        problems_message(problems),
        BTreeMap::from([("errors", Value::Array(problem_details(problems)))]),
    )
}

/// The top-level `message` of a validation refusal: HubSpot's "Property values were not
/// valid: [...]" with each problem embedded as JSON.
pub(super) fn problems_message(problems: &[PropertyProblem]) -> String {
    let embedded: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({
                "isValid": false,
                "message": p.message,
                "error": p.code,
                "name": p.name,
                "localizedErrorMessage": p.message,
            })
        })
        .collect();
    format!("Property values were not valid: {}", Value::Array(embedded))
}

/// The `errors` of a validation refusal: `code`, `message`, `context.propertyName` (the
/// shape of HubSpot's 2026-09 write-validation errors).
pub(super) fn problem_details(problems: &[PropertyProblem]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| {
            json!({
                "message": p.message,
                "code": p.code,
                "context": { "propertyName": [p.name] },
            })
        })
        .collect()
}

/// 400 for an object type the simulator does not know.
pub(super) fn unknown_object_type(object: &str) -> Reject {
    hubspot_error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        format!("Unable to infer object type from: {object}"),
    )
    .into()
}

// ---------------------------------------------------------------------------
// GET /crm/properties/2026-09/{object}[/{name}]
// ---------------------------------------------------------------------------

pub(super) async fn list_properties(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    headers: HeaderMap,
) -> Response {
    shared.metered(&headers, |hub_id| {
        let object = ObjectType::parse(&object).ok_or_else(|| unknown_object_type(&object))?;
        let results: Vec<Value> = shared
            .schema()
            .all(hub_id, object)
            .map(|def| def.to_json(hub_id))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "results": results }),
        ))
    })
}

pub(super) async fn read_property(
    State(shared): State<Arc<Shared>>,
    Path((object, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    shared.metered(&headers, |hub_id| {
        let object_type = ObjectType::parse(&object).ok_or_else(|| unknown_object_type(&object))?;
        let found = shared
            .schema()
            .lookup(hub_id, object_type, &name)
            .map(|def| def.to_json(hub_id));
        match found {
            Some(body) => Ok(json_response(StatusCode::OK, &body)),
            None => Err(hubspot_error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!(
                    "Unable to find property {name} for object type {}",
                    object_type.type_id()
                ),
            )
            .into()),
        }
    })
}

pub(super) async fn create_property(
    State(shared): State<Arc<Shared>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    shared.metered(&headers, |hub_id| {
        let object = ObjectType::parse(&object).ok_or_else(|| unknown_object_type(&object))?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| bad_property(format!("Invalid input JSON: {e}")))?;
        let created = shared.schema().create_in_hub(hub_id, object, &body)?;
        Ok(json_response(StatusCode::CREATED, &created))
    })
}

fn bad_property(message: String) -> Reject {
    hubspot_error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_parse_every_spelling() {
        for (name, expected) in [
            ("contacts", ObjectType::Contacts),
            ("Contact", ObjectType::Contacts),
            ("0-1", ObjectType::Contacts),
            ("deals", ObjectType::Deals),
            ("0-3", ObjectType::Deals),
            ("notes", ObjectType::Notes),
            ("0-46", ObjectType::Notes),
        ] {
            assert_eq!(ObjectType::parse(name), Some(expected), "{name}");
        }
        assert_eq!(ObjectType::parse("companies"), None);
    }

    #[test]
    fn values_are_checked_and_normalised() {
        let schema = Schema::standard();
        let hub = 1;
        let c = ObjectType::Contacts;
        assert_eq!(
            schema.check(c, hub, "email", " Ana@Example.COM ").unwrap(),
            "ana@example.com"
        );
        assert_eq!(
            schema.check(c, hub, "email", "nope").unwrap_err().code,
            "INVALID_EMAIL"
        );
        assert_eq!(
            schema
                .check(c, hub, "hs_lead_status", "new")
                .unwrap_err()
                .code,
            "INVALID_OPTION"
        );
        assert_eq!(
            schema.check(c, hub, "hs_lead_status", "NEW").unwrap(),
            "NEW"
        );
        assert_eq!(schema.check(c, hub, "hs_lead_status", "").unwrap(), "");
        assert_eq!(
            schema.check(c, hub, "lead_score", "9").unwrap_err().code,
            "PROPERTY_DOESNT_EXIST"
        );
        assert_eq!(
            schema.check(c, hub, "hs_object_id", "1").unwrap_err().code,
            "READ_ONLY_VALUE"
        );
        let n = ObjectType::Notes;
        assert_eq!(
            schema
                .check(n, hub, "hs_timestamp", "1700000000000")
                .unwrap(),
            "2023-11-14T22:13:20.000Z"
        );
        assert_eq!(
            schema
                .check(n, hub, "hs_timestamp", "2025-01-31T12:00:00+03:00")
                .unwrap(),
            "2025-01-31T09:00:00.000Z"
        );
        assert_eq!(
            schema
                .check(n, hub, "hs_timestamp", "yesterday")
                .unwrap_err()
                .code,
            "INVALID_DATE"
        );
        let long = "é".repeat(MAX_STRING_CHARS + 1);
        assert_eq!(
            schema
                .check(n, hub, "hs_note_body", &long)
                .unwrap_err()
                .code,
            "MAX_LENGTH_EXCEEDED"
        );
        assert!(schema
            .check(n, hub, "hs_note_body", &"é".repeat(MAX_STRING_CHARS))
            .is_ok());
        let d = ObjectType::Deals;
        assert_eq!(
            schema.check(d, hub, "dealstage", "closedwon").unwrap(),
            "closedwon"
        );
        assert_eq!(
            schema.check(d, hub, "pipeline", "nope").unwrap_err().code,
            "INVALID_OPTION"
        );
        assert_eq!(schema.check(d, hub, "amount", "12.5").unwrap(), "12.5");
        assert_eq!(
            schema.check(d, hub, "amount", "lots").unwrap_err().code,
            "INVALID_NUMBER"
        );
    }

    #[test]
    fn custom_properties() {
        let mut schema = Schema::standard();
        let c = ObjectType::Contacts;
        schema.add_custom(c, "lead_score", &[]).unwrap();
        assert_eq!(schema.check(c, 1, "lead_score", "87").unwrap(), "87");
        schema
            .add_custom(c, "lead_source", &["whatsapp", "web"])
            .unwrap();
        assert_eq!(
            schema.check(c, 1, "lead_source", "fax").unwrap_err().code,
            "INVALID_OPTION"
        );
        assert!(schema.add_custom(c, "email", &[]).is_err());
        assert!(schema.add_custom(c, "Lead Score", &[]).is_err());
    }
}
