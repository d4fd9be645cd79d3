//! Describe metadata of the simulated objects (Lead, Contact, Account,
//! Opportunity, Task), record types, the setup tables derived from picklists
//! (LeadStatus, OpportunityStage), and the field checks of a write.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{SfError, MASTER_RECORD_TYPE_ID};

/// One picklist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfPicklistValue {
    pub value: String,
    pub label: String,
    pub active: bool,
    pub default_value: bool,
}

/// One field as `describe` reports it. Build with [`SfField::new`] and the
/// chained setters; "required" in Salesforce terms is
/// `!nillable && createable && !defaulted_on_create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfField {
    pub name: String,
    pub label: String,
    /// `id, string, textarea, email, phone, picklist, double, int, currency,
    /// percent, boolean, date, datetime, reference, url`.
    pub field_type: String,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub defaulted_on_create: bool,
    pub custom: bool,
    /// Maximum characters of text-like fields (0 for others).
    pub length: u32,
    pub picklist_values: Vec<SfPicklistValue>,
    pub restricted_picklist: bool,
    /// Objects a reference field may point at.
    pub reference_to: Vec<String>,
}

impl SfField {
    /// A nillable, createable, updateable field; `custom` when the name ends
    /// with `__c`; `length` by type (string 255, textarea 32000, email 80,
    /// phone 40, url 255, picklist 255, id/reference 18).
    pub fn new(name: &str, label: &str, field_type: &str) -> SfField {
        let length = match field_type {
            "string" | "url" | "picklist" => 255,
            "textarea" => 32_000,
            "email" => 80,
            "phone" => 40,
            "id" | "reference" => 18,
            _ => 0,
        };
        SfField {
            name: name.to_owned(),
            label: label.to_owned(),
            field_type: field_type.to_owned(),
            nillable: true,
            createable: true,
            updateable: true,
            defaulted_on_create: false,
            custom: name.ends_with("__c"),
            length,
            picklist_values: Vec::new(),
            restricted_picklist: false,
            reference_to: Vec::new(),
        }
    }

    /// A `string` field of `length` characters.
    pub fn string(name: &str, label: &str, length: u32) -> SfField {
        SfField::new(name, label, "string").length(length)
    }

    /// A `double` field.
    pub fn double(name: &str, label: &str) -> SfField {
        SfField::new(name, label, "double")
    }

    /// An unrestricted picklist with these (active) values.
    pub fn picklist(name: &str, label: &str, values: &[&str]) -> SfField {
        SfField::new(name, label, "picklist").values(values)
    }

    /// A reference field to these objects.
    pub fn reference(name: &str, label: &str, to: &[&str]) -> SfField {
        let mut field = SfField::new(name, label, "reference");
        field.reference_to = to.iter().map(|s| (*s).to_owned()).collect();
        field
    }

    /// Replace the picklist values (all active, none default).
    pub fn values(mut self, values: &[&str]) -> SfField {
        self.picklist_values = values
            .iter()
            .map(|v| SfPicklistValue {
                value: (*v).to_owned(),
                label: (*v).to_owned(),
                active: true,
                default_value: false,
            })
            .collect();
        self
    }

    /// `nillable: false` (required unless defaulted or not createable).
    pub fn required(mut self) -> SfField {
        self.nillable = false;
        self
    }

    pub fn length(mut self, length: u32) -> SfField {
        self.length = length;
        self
    }

    /// `restrictedPicklist: true`.
    pub fn restricted(mut self) -> SfField {
        self.restricted_picklist = true;
        self
    }

    /// Mark a picklist value as the default; the field becomes
    /// `defaultedOnCreate`.
    pub fn default_value(mut self, value: &str) -> SfField {
        for v in &mut self.picklist_values {
            v.default_value = v.value == value;
        }
        self.defaulted_on_create = true;
        self
    }

    /// Neither createable nor updateable (system fields).
    pub fn read_only(mut self) -> SfField {
        self.createable = false;
        self.updateable = false;
        self
    }

    /// `defaultedOnCreate: true`.
    pub fn defaulted(mut self) -> SfField {
        self.defaulted_on_create = true;
        self
    }

    /// Salesforce's definition of a required field.
    pub fn is_required(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }

    fn is_text(&self) -> bool {
        matches!(
            self.field_type.as_str(),
            "string" | "textarea" | "email" | "phone" | "url" | "picklist"
        )
    }

    /// Whether SOQL may filter on the field: not on a long text area (a text area over 255
    /// characters), as `describe`'s `filterable` says.
    pub fn filterable(&self) -> bool {
        !(self.field_type == "textarea" && self.length > 255)
    }

    pub(crate) fn default_picklist_value(&self) -> Option<&str> {
        self.picklist_values
            .iter()
            .find(|v| v.default_value && v.active)
            .map(|v| v.value.as_str())
    }

    fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.field_type,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.defaulted_on_create,
            "custom": self.custom,
            "length": self.length,
            "calculated": false,
            "filterable": self.filterable(),
            "referenceTo": self.reference_to,
            "restrictedPicklist": self.restricted_picklist,
            "picklistValues": self.picklist_values.iter().map(|v| json!({
                "value": v.value,
                "label": v.label,
                "active": v.active,
                "defaultValue": v.default_value,
                "validFor": null,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A record type (beyond the master every object has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfRecordType {
    pub id: String,
    pub developer_name: String,
    pub name: String,
    /// Opportunity: the StageName values this record type offers.
    pub stage_values: Vec<String>,
}

/// One object's metadata.
#[derive(Debug, Clone)]
pub(crate) struct ObjectSchema {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) key_prefix: String,
    pub(crate) fields: Vec<SfField>,
    pub(crate) record_types: Vec<SfRecordType>,
}

impl ObjectSchema {
    pub(crate) fn field(&self, name: &str) -> Option<&SfField> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn upsert_field(&mut self, field: SfField) {
        match self.fields.iter_mut().find(|f| f.name == field.name) {
            Some(existing) => *existing = field,
            None => self.fields.push(field),
        }
    }

    pub(crate) fn record_type(&self, id: &str) -> Option<&SfRecordType> {
        self.record_types.iter().find(|rt| rt.id == id)
    }

    pub(crate) fn describe(&self) -> Value {
        let mut infos = vec![json!({
            "recordTypeId": MASTER_RECORD_TYPE_ID,
            "name": "Master",
            "developerName": "Master",
            "master": true,
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": self.record_types.is_empty(),
        })];
        for (i, rt) in self.record_types.iter().enumerate() {
            infos.push(json!({
                "recordTypeId": rt.id,
                "name": rt.name,
                "developerName": rt.developer_name,
                "master": false,
                "active": true,
                "available": true,
                "defaultRecordTypeMapping": i == 0,
            }));
        }
        json!({
            "name": self.name,
            "label": self.label,
            "keyPrefix": self.key_prefix,
            "custom": false,
            "createable": true,
            "updateable": true,
            "queryable": true,
            "fields": self.fields.iter().map(SfField::describe).collect::<Vec<_>>(),
            "recordTypeInfos": infos,
        })
    }
}

/// Every object of one org.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub(crate) objects: BTreeMap<String, ObjectSchema>,
}

impl Schema {
    pub(crate) fn standard() -> Schema {
        let mut objects = BTreeMap::new();
        for object in [lead(), contact(), account(), opportunity(), task()] {
            objects.insert(object.name.clone(), object);
        }
        Schema { objects }
    }

    /// The object by name (case-insensitive).
    pub(crate) fn object(&self, name: &str) -> Option<&ObjectSchema> {
        self.objects
            .values()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn object_mut(&mut self, name: &str) -> Option<&mut ObjectSchema> {
        self.objects
            .values_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn add_record_type(
        &mut self,
        object: &str,
        record_type: SfRecordType,
    ) -> Result<(), String> {
        let schema = self
            .object_mut(object)
            .ok_or_else(|| format!("unknown object {object:?}"))?;
        if let Some(stage) = schema.fields.iter_mut().find(|f| f.name == "StageName") {
            for value in &record_type.stage_values {
                if !stage.picklist_values.iter().any(|v| &v.value == value) {
                    stage.picklist_values.push(SfPicklistValue {
                        value: value.clone(),
                        label: value.clone(),
                        active: true,
                        default_value: false,
                    });
                }
            }
        }
        schema.record_types.retain(|rt| rt.id != record_type.id);
        schema.record_types.push(record_type);
        Ok(())
    }

    /// `LeadStatus` rows from the Lead Status picklist.
    pub(crate) fn lead_status_rows(&self) -> Vec<Map<String, Value>> {
        let values = self
            .object("Lead")
            .and_then(|o| o.field("Status"))
            .map(|f| f.picklist_values.clone())
            .unwrap_or_default();
        values
            .iter()
            .filter(|v| v.active)
            .enumerate()
            .map(|(i, v)| {
                row(json!({
                    "Id": setup_id(100 + i),
                    "MasterLabel": v.label,
                    "ApiName": v.value,
                    "IsConverted": is_converted_status(&v.value),
                    "IsDefault": v.default_value,
                    "SortOrder": i + 1,
                }))
            })
            .collect()
    }

    /// `OpportunityStage` rows from the StageName picklist.
    pub(crate) fn opportunity_stage_rows(&self) -> Vec<Map<String, Value>> {
        stage_values(self)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let (closed, won, probability) = stage_info(&v.value);
                row(json!({
                    "Id": setup_id(200 + i),
                    "ApiName": v.value,
                    "MasterLabel": v.label,
                    "IsActive": v.active,
                    "IsClosed": closed,
                    "IsWon": won,
                    "SortOrder": i + 1,
                    "DefaultProbability": probability,
                }))
            })
            .collect()
    }

    /// The first open, active stage by sort order.
    pub(crate) fn first_open_stage(&self) -> Option<String> {
        stage_values(self)
            .into_iter()
            .find(|v| v.active && !stage_info(&v.value).0)
            .map(|v| v.value)
    }
}

fn stage_values(schema: &Schema) -> Vec<SfPicklistValue> {
    schema
        .object("Opportunity")
        .and_then(|o| o.field("StageName"))
        .map(|f| f.picklist_values.clone())
        .unwrap_or_default()
}

fn row(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn setup_id(n: usize) -> String {
    format!("01J5g00000{n:05}AAA")
}

/// Whether a Lead Status value is a converted one.
pub(crate) fn is_converted_status(value: &str) -> bool {
    value.contains("Converted") && !value.contains("Not Converted")
}

/// `(closed, won, default probability)` of a stage.
pub(crate) fn stage_info(stage: &str) -> (bool, bool, u32) {
    match stage {
        "Prospecting" | "Qualification" => (false, false, 10),
        "Needs Analysis" => (false, false, 20),
        "Value Proposition" => (false, false, 50),
        "Id. Decision Makers" => (false, false, 60),
        "Perception Analysis" => (false, false, 70),
        "Proposal/Price Quote" => (false, false, 75),
        "Negotiation/Review" => (false, false, 90),
        "Closed Won" => (true, true, 100),
        "Closed Lost" => (true, false, 0),
        other if other.starts_with("Closed") => {
            let won = other.contains("Won");
            (true, won, if won { 100 } else { 0 })
        }
        _ => (false, false, 50),
    }
}

// ---------------------------------------------------------------------------
// Standard objects
// ---------------------------------------------------------------------------

const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

fn id_field() -> SfField {
    let mut id = SfField::new("Id", "Record ID", "id")
        .read_only()
        .defaulted();
    id.nillable = false;
    id
}

fn created_date() -> SfField {
    let mut field = SfField::new("CreatedDate", "Created Date", "datetime")
        .read_only()
        .defaulted();
    field.nillable = false;
    field
}

fn object(name: &str, label: &str, prefix: &str, fields: Vec<SfField>) -> ObjectSchema {
    ObjectSchema {
        name: name.to_owned(),
        label: label.to_owned(),
        key_prefix: prefix.to_owned(),
        fields,
        record_types: Vec::new(),
    }
}

fn lead() -> ObjectSchema {
    let mut is_converted = SfField::new("IsConverted", "Converted", "boolean")
        .read_only()
        .defaulted();
    is_converted.nillable = false;
    let converted_ref = |name: &str, label: &str, to: &str| {
        let mut field = SfField::reference(name, label, &[to]);
        field.createable = false;
        field.updateable = false;
        field
    };
    object(
        "Lead",
        "Lead",
        "00Q",
        vec![
            id_field(),
            SfField::string("FirstName", "First Name", 40),
            SfField::string("LastName", "Last Name", 80).required(),
            SfField::string("Company", "Company", 255).required(),
            SfField::new("Email", "Email", "email"),
            SfField::new("Phone", "Phone", "phone"),
            SfField::picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            SfField::picklist("Rating", "Rating", &["Hot", "Warm", "Cold"]),
            SfField::picklist(
                "Status",
                "Status",
                &[
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ],
            )
            .required()
            .restricted()
            .default_value("Open - Not Contacted"),
            SfField::new("Description", "Description", "textarea"),
            SfField::string("Country", "Country", 80),
            is_converted,
            converted_ref("ConvertedContactId", "Converted Contact ID", "Contact"),
            converted_ref("ConvertedAccountId", "Converted Account ID", "Account"),
            converted_ref(
                "ConvertedOpportunityId",
                "Converted Opportunity ID",
                "Opportunity",
            ),
            created_date(),
        ],
    )
}

fn contact() -> ObjectSchema {
    object(
        "Contact",
        "Contact",
        "003",
        vec![
            id_field(),
            SfField::string("FirstName", "First Name", 40),
            SfField::string("LastName", "Last Name", 80).required(),
            SfField::new("Email", "Email", "email"),
            SfField::new("Phone", "Business Phone", "phone"),
            SfField::reference("AccountId", "Account ID", &["Account"]),
            SfField::picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            SfField::new("Description", "Contact Description", "textarea"),
            created_date(),
        ],
    )
}

fn account() -> ObjectSchema {
    object(
        "Account",
        "Account",
        "001",
        vec![
            id_field(),
            SfField::string("Name", "Account Name", 255).required(),
            created_date(),
        ],
    )
}

fn opportunity() -> ObjectSchema {
    object(
        "Opportunity",
        "Opportunity",
        "006",
        vec![
            id_field(),
            SfField::string("Name", "Name", 120).required(),
            SfField::picklist("StageName", "Stage", STAGES)
                .required()
                .restricted(),
            SfField::new("CloseDate", "Close Date", "date").required(),
            SfField::reference("AccountId", "Account ID", &["Account"]),
            SfField::reference("ContactId", "Contact ID", &["Contact"]),
            SfField::reference("RecordTypeId", "Record Type ID", &["RecordType"]),
            SfField::new("Amount", "Amount", "currency"),
            SfField::picklist("LeadSource", "Lead Source", LEAD_SOURCES),
            SfField::new("Description", "Description", "textarea"),
            created_date(),
        ],
    )
}

fn task() -> ObjectSchema {
    object(
        "Task",
        "Task",
        "00T",
        vec![
            id_field(),
            SfField::string("Subject", "Subject", 255),
            SfField::new("Description", "Description", "textarea"),
            SfField::reference("WhoId", "Name ID", &["Contact", "Lead"]),
            SfField::reference("WhatId", "Related To ID", &["Account", "Opportunity"]),
            SfField::picklist(
                "Status",
                "Status",
                &["Not Started", "In Progress", "Completed"],
            )
            .required()
            .restricted()
            .default_value("Not Started"),
            SfField::picklist("Priority", "Priority", &["High", "Normal", "Low"])
                .required()
                .restricted()
                .default_value("Normal"),
            SfField::new("ActivityDate", "Due Date Only", "date"),
            created_date(),
        ],
    )
}

// ---------------------------------------------------------------------------
// Write checks
// ---------------------------------------------------------------------------

/// Create or update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Create,
    Update,
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Check a write body against the describe in Salesforce's order (unknown
/// field, not writable, restricted picklist, too long, required missing) and
/// return it keyed by canonical field names (`attributes` dropped).
pub(crate) fn check_write(
    object: &ObjectSchema,
    body: &Map<String, Value>,
    mode: WriteMode,
) -> Result<Map<String, Value>, SfError> {
    let mut fields: Vec<(&SfField, &Value)> = Vec::new();
    for (key, value) in body {
        if key == "attributes" {
            continue;
        }
        let Some(field) = object.field(key) else {
            return Err(SfError::bad(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", object.name),
            ));
        };
        fields.push((field, value));
    }
    for (field, _) in &fields {
        let writable = match mode {
            WriteMode::Create => field.createable,
            WriteMode::Update => field.updateable,
        };
        if !writable {
            let verb = if mode == WriteMode::Create {
                "create"
            } else {
                "update"
            };
            return Err(SfError::bad(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to {verb} fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    field.name
                ),
            )
            .with_fields(&[&field.name]));
        }
    }
    for (field, value) in &fields {
        if field.field_type != "picklist" || !field.restricted_picklist || value.is_null() {
            continue;
        }
        let ok = value.as_str().is_some_and(|v| {
            field
                .picklist_values
                .iter()
                .any(|p| p.active && p.value == v)
        });
        if !ok {
            return Err(restricted_picklist_error(field, value));
        }
    }
    for (field, value) in &fields {
        if let (true, Some(text)) = (field.is_text() && field.length > 0, value.as_str()) {
            if text.chars().count() > field.length as usize {
                return Err(SfError::bad(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length={})",
                        field.label,
                        text.chars().take(80).collect::<String>(),
                        field.length
                    ),
                )
                .with_fields(&[&field.name]));
            }
        }
    }
    let missing: Vec<&str> = object
        .fields
        .iter()
        .filter(|f| f.is_required() || (!f.nillable && mode == WriteMode::Update && f.updateable))
        .filter(|f| {
            let sent = fields
                .iter()
                .find(|(g, _)| g.name == f.name)
                .map(|(_, v)| *v);
            match (mode, sent) {
                (WriteMode::Create, None) => true,
                (_, Some(value)) => is_blank(value),
                (WriteMode::Update, None) => false,
            }
        })
        .map(|f| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(SfError::bad(
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
        )
        .with_fields(&missing));
    }
    Ok(fields
        .into_iter()
        .map(|(f, v)| (f.name.clone(), v.clone()))
        .collect())
}

pub(crate) fn restricted_picklist_error(field: &SfField, value: &Value) -> SfError {
    let shown = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    SfError::bad(
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        format!(
            "{}: bad value for restricted picklist field: {shown}",
            field.label
        ),
    )
    .with_fields(&[&field.name])
}

/// Values every new record gets when absent: picklist defaults and `false`
/// for booleans.
pub(crate) fn apply_defaults(object: &ObjectSchema, record: &mut Map<String, Value>) {
    for field in &object.fields {
        if record.get(&field.name).is_some_and(|v| !v.is_null()) {
            continue;
        }
        if field.field_type == "boolean" {
            record.insert(field.name.clone(), Value::Bool(false));
        } else if let Some(default) = field.default_picklist_value() {
            record.insert(field.name.clone(), Value::String(default.to_owned()));
        }
    }
}
