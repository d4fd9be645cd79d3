//! Modules, fields, picklists, layouts and deal pipelines, the
//! `/crm/v8/settings/{fields,layouts,pipeline}` endpoints, and record
//! validation against the field definitions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::crm::invalid_module;
use super::{json_response, record_error, zoho_error, Shared, Target};
use crate::sim::server::Reject;

/// Zoho's empty picklist choice.
pub const NONE_CHOICE: &str = "-None-";

/// The modules the simulator stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Module {
    Leads,
    Contacts,
    Deals,
    Accounts,
    Notes,
}

impl Module {
    pub(crate) const ALL: [Module; 5] = [
        Module::Leads,
        Module::Contacts,
        Module::Deals,
        Module::Accounts,
        Module::Notes,
    ];

    /// Module api names compare case-insensitively, as in Zoho's URLs.
    pub(crate) fn parse(name: &str) -> Option<Module> {
        Module::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Module::Leads => "Leads",
            Module::Contacts => "Contacts",
            Module::Deals => "Deals",
            Module::Accounts => "Accounts",
            Module::Notes => "Notes",
        }
    }

    fn layout_id(self) -> &'static str {
        match self {
            Module::Leads => "5725767000000091055",
            Module::Contacts => "5725767000000091033",
            Module::Deals => "5725767000000091023",
            Module::Accounts => "5725767000000091001",
            Module::Notes => "5725767000000091077",
        }
    }
}

/// One field definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoField {
    pub api_name: String,
    pub label: String,
    /// `text`, `textarea`, `email`, `phone`, `picklist`, `integer`,
    /// `currency`, `double`, `date`, `boolean`, `lookup`, `website`.
    pub data_type: String,
    pub system_mandatory: bool,
    pub custom_field: bool,
    /// Maximum characters (text types) or digits (numbers).
    pub length: usize,
    /// Actual values of a picklist (`-None-` included); empty otherwise.
    /// Display values equal actual values, except where `display_values` says.
    pub picklist: Vec<String>,
    /// `(actual, display)` pairs where they differ.
    pub display_values: Vec<(String, String)>,
    pub id: String,
}

impl ZohoField {
    pub fn new(api_name: &str, label: &str, data_type: &str, length: usize) -> ZohoField {
        ZohoField {
            api_name: api_name.to_owned(),
            label: label.to_owned(),
            data_type: data_type.to_owned(),
            system_mandatory: false,
            custom_field: false,
            length,
            picklist: Vec::new(),
            display_values: Vec::new(),
            id: field_id(api_name),
        }
    }

    pub fn text(api_name: &str, label: &str, length: usize) -> ZohoField {
        Self::new(api_name, label, "text", length)
    }

    pub fn textarea(api_name: &str, label: &str) -> ZohoField {
        Self::new(api_name, label, "textarea", 32_000)
    }

    pub fn integer(api_name: &str, label: &str) -> ZohoField {
        Self::new(api_name, label, "integer", 9)
    }

    /// A picklist whose values are `-None-` followed by `values`.
    pub fn picklist(api_name: &str, label: &str, values: &[&str]) -> ZohoField {
        let mut field = Self::new(api_name, label, "picklist", 120);
        field.picklist = std::iter::once(NONE_CHOICE)
            .chain(values.iter().copied())
            .map(str::to_owned)
            .collect();
        field
    }

    pub fn mandatory(mut self) -> ZohoField {
        self.system_mandatory = true;
        self
    }

    /// Marks the field custom (`custom_field: true`).
    pub fn custom(mut self) -> ZohoField {
        self.custom_field = true;
        self
    }

    fn display_of<'a>(&'a self, actual: &'a str) -> &'a str {
        self.display_values
            .iter()
            .find(|(a, _)| a == actual)
            .map_or(actual, |(_, d)| d.as_str())
    }

    fn to_json(&self, picklist: &[(String, String)]) -> Value {
        let values: Vec<Value> = picklist
            .iter()
            .enumerate()
            .map(|(i, (actual, display))| {
                json!({
                    "display_value": display,
                    "actual_value": actual,
                    "id": field_id(&format!("{}/{actual}", self.api_name)),
                    "sequence_number": i + 1,
                    "type": "used",
                })
            })
            .collect();
        json!({
            "api_name": self.api_name,
            "field_label": self.label,
            "display_label": self.label,
            "data_type": self.data_type,
            "json_type": json_type(&self.data_type),
            "system_mandatory": self.system_mandatory,
            "custom_field": self.custom_field,
            "length": self.length,
            "read_only": false,
            "visible": true,
            "id": self.id,
            "pick_list_values": values,
        })
    }
}

fn json_type(data_type: &str) -> &'static str {
    match data_type {
        "integer" => "integer",
        "currency" | "double" => "double",
        "boolean" => "boolean",
        "lookup" => "jsonobject",
        _ => "string",
    }
}

/// A stable, Zoho-looking numeric id derived from a name.
fn field_id(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("5725767000000{:06}", hash % 1_000_000)
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoStage {
    pub display_value: String,
    /// What a deal's `Stage` holds.
    pub actual_value: String,
    /// `Open`, `Closed Won` or `Closed Lost`.
    pub forecast_type: String,
    pub id: String,
}

impl ZohoStage {
    pub fn new(display_value: &str, actual_value: &str, forecast_type: &str) -> ZohoStage {
        ZohoStage {
            display_value: display_value.to_owned(),
            actual_value: actual_value.to_owned(),
            forecast_type: forecast_type.to_owned(),
            id: field_id(&format!("stage/{actual_value}")),
        }
    }

    /// An `Open` stage whose display and actual values are `name`.
    pub fn open(name: &str) -> ZohoStage {
        Self::new(name, name, "Open")
    }
}

/// A deal pipeline (of the Deals module's only layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZohoPipeline {
    pub display_value: String,
    /// What a deal's `Pipeline` holds.
    pub actual_value: String,
    pub default: bool,
    pub id: String,
    pub stages: Vec<ZohoStage>,
}

impl ZohoPipeline {
    pub fn new(
        display_value: &str,
        actual_value: &str,
        default: bool,
        stages: Vec<ZohoStage>,
    ) -> ZohoPipeline {
        ZohoPipeline {
            display_value: display_value.to_owned(),
            actual_value: actual_value.to_owned(),
            default,
            id: field_id(&format!("pipeline/{actual_value}")),
            stages,
        }
    }

    pub fn has_stage(&self, actual_value: &str) -> bool {
        self.stages.iter().any(|s| s.actual_value == actual_value)
    }

    fn to_json(&self) -> Value {
        let maps: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let category = match stage.forecast_type.as_str() {
                    "Closed Won" => "Closed",
                    "Closed Lost" => "Omitted",
                    _ => "Pipeline",
                };
                json!({
                    "display_value": stage.display_value,
                    "actual_value": stage.actual_value,
                    "id": stage.id,
                    "sequence_number": i + 1,
                    "forecast_type": stage.forecast_type,
                    "forecast_category": {"name": category, "id": field_id(category)},
                })
            })
            .collect();
        json!({
            "display_value": self.display_value,
            "actual_value": self.actual_value,
            "default": self.default,
            "id": self.id,
            "child_available": false,
            "parent": null,
            "maps": maps,
        })
    }
}

/// Every org's field definitions and pipelines.
#[derive(Debug, Clone)]
pub struct ZohoSchema {
    pub leads: Vec<ZohoField>,
    pub contacts: Vec<ZohoField>,
    pub deals: Vec<ZohoField>,
    pub accounts: Vec<ZohoField>,
    pub notes: Vec<ZohoField>,
    /// The Deals layout's pipelines, the default first.
    pub pipelines: Vec<ZohoPipeline>,
}

const LEAD_SOURCES: [&str; 12] = [
    "Advertisement",
    "Chat",
    "Cold Call",
    "Employee Referral",
    "External Referral",
    "Facebook",
    "Partner",
    "Public Relations",
    "Web Download",
    "Web Research",
    "X (Twitter)",
    "WhatsApp",
];

impl ZohoSchema {
    /// Zoho CRM's standard fields (a subset) plus two custom Leads fields
    /// (`Lead_Score__c`, integer; `Channel__c`, text), and two pipelines:
    /// "Standard (Standard)" and "Enterprise".
    pub fn standard() -> ZohoSchema {
        let leads = vec![
            ZohoField::text("First_Name", "First Name", 40),
            ZohoField::text("Last_Name", "Last Name", 80).mandatory(),
            ZohoField::new("Email", "Email", "email", 100),
            ZohoField::new("Phone", "Phone", "phone", 30),
            ZohoField::new("Mobile", "Mobile", "phone", 30),
            ZohoField::text("Company", "Company", 200),
            ZohoField::picklist("Lead_Source", "Lead Source", &LEAD_SOURCES),
            ZohoField::picklist(
                "Rating",
                "Rating",
                &[
                    "Acquired",
                    "Active",
                    "Market Failed",
                    "Project Cancelled",
                    "Shut Down",
                ],
            ),
            ZohoField::picklist(
                "Lead_Status",
                "Lead Status",
                &[
                    "Attempted to Contact",
                    "Contact in Future",
                    "Contacted",
                    "Junk Lead",
                    "Lost Lead",
                    "Not Contacted",
                    "Pre-Qualified",
                    "Not Qualified",
                ],
            ),
            ZohoField::textarea("Description", "Description"),
            ZohoField::integer("Lead_Score__c", "Lead Score").custom(),
            ZohoField::text("Channel__c", "Channel", 255).custom(),
        ];
        let contacts = vec![
            ZohoField::text("First_Name", "First Name", 40),
            ZohoField::text("Last_Name", "Last Name", 80).mandatory(),
            ZohoField::new("Email", "Email", "email", 100),
            ZohoField::new("Phone", "Phone", "phone", 30),
            ZohoField::new("Mobile", "Mobile", "phone", 30),
            ZohoField::picklist("Lead_Source", "Lead Source", &LEAD_SOURCES),
            ZohoField::new("Account_Name", "Account Name", "lookup", 0),
            ZohoField::textarea("Description", "Description"),
        ];
        let deals = vec![
            ZohoField::text("Deal_Name", "Deal Name", 120).mandatory(),
            ZohoField::new("Amount", "Amount", "currency", 16),
            ZohoField::new("Closing_Date", "Closing Date", "date", 0).mandatory(),
            // Values come from the pipelines.
            ZohoField::new("Pipeline", "Pipeline", "picklist", 120).mandatory(),
            ZohoField::new("Stage", "Stage", "picklist", 120).mandatory(),
            ZohoField::new("Contact_Name", "Contact Name", "lookup", 0),
            ZohoField::new("Account_Name", "Account Name", "lookup", 0),
            ZohoField::picklist("Lead_Source", "Lead Source", &LEAD_SOURCES),
            ZohoField::textarea("Description", "Description"),
        ];
        let accounts = vec![
            ZohoField::text("Account_Name", "Account Name", 200).mandatory(),
            ZohoField::new("Phone", "Phone", "phone", 30),
            ZohoField::new("Website", "Website", "website", 255),
            ZohoField::textarea("Description", "Description"),
        ];
        let notes = vec![
            ZohoField::text("Note_Title", "Note Title", 120),
            ZohoField::textarea("Note_Content", "Note Content").mandatory(),
            ZohoField::new("Parent_Id", "Parent ID", "lookup", 0).mandatory(),
        ];
        let standard = ZohoPipeline::new(
            "Standard",
            "Standard (Standard)",
            true,
            vec![
                ZohoStage::open("Qualification"),
                ZohoStage::open("Needs Analysis"),
                ZohoStage::open("Value Proposition"),
                ZohoStage::new("Identify Decision Makers", "Id. Decision Makers", "Open"),
                ZohoStage::open("Proposal/Price Quote"),
                ZohoStage::open("Negotiation/Review"),
                ZohoStage::new("Closed Won", "Closed Won", "Closed Won"),
                ZohoStage::new("Closed Lost", "Closed Lost", "Closed Lost"),
                ZohoStage::new(
                    "Closed-Lost to Competition",
                    "Closed-Lost to Competition",
                    "Closed Lost",
                ),
            ],
        );
        let enterprise = ZohoPipeline::new(
            "Enterprise",
            "Enterprise",
            false,
            vec![
                ZohoStage::open("Discovery"),
                ZohoStage::open("Solution Design"),
                ZohoStage::open("Security Review"),
                ZohoStage::new("Won", "Won", "Closed Won"),
                ZohoStage::new("Lost", "Lost", "Closed Lost"),
            ],
        );
        ZohoSchema {
            leads,
            contacts,
            deals,
            accounts,
            notes,
            pipelines: vec![standard, enterprise],
        }
    }

    pub(crate) fn fields(&self, module: Module) -> &[ZohoField] {
        match module {
            Module::Leads => &self.leads,
            Module::Contacts => &self.contacts,
            Module::Deals => &self.deals,
            Module::Accounts => &self.accounts,
            Module::Notes => &self.notes,
        }
    }

    fn fields_mut(&mut self, module: &str) -> Result<&mut Vec<ZohoField>, String> {
        Ok(match Module::parse(module) {
            Some(Module::Leads) => &mut self.leads,
            Some(Module::Contacts) => &mut self.contacts,
            Some(Module::Deals) => &mut self.deals,
            Some(Module::Accounts) => &mut self.accounts,
            Some(Module::Notes) => &mut self.notes,
            None => return Err(format!("unknown module {module:?}")),
        })
    }

    pub(crate) fn field(&self, module: Module, api_name: &str) -> Option<&ZohoField> {
        self.fields(module).iter().find(|f| f.api_name == api_name)
    }

    pub fn pipeline(&self, actual_value: &str) -> Option<&ZohoPipeline> {
        self.pipelines
            .iter()
            .find(|p| p.actual_value == actual_value)
    }

    pub fn default_pipeline(&self) -> Option<&ZohoPipeline> {
        self.pipelines
            .iter()
            .find(|p| p.default)
            .or_else(|| self.pipelines.first())
    }

    pub(crate) fn add_picklist_value(
        &mut self,
        module: &str,
        field: &str,
        value: &str,
    ) -> Result<(), String> {
        let fields = self.fields_mut(module)?;
        let field = fields
            .iter_mut()
            .find(|f| f.api_name == field)
            .ok_or_else(|| format!("no field {field:?} in {module}"))?;
        if field.data_type != "picklist" {
            return Err(format!("{} is not a picklist", field.api_name));
        }
        if !field.picklist.iter().any(|v| v == value) {
            field.picklist.push(value.to_owned());
        }
        Ok(())
    }

    pub(crate) fn add_field(&mut self, module: &str, field: ZohoField) -> Result<(), String> {
        let fields = self.fields_mut(module)?;
        match fields.iter_mut().find(|f| f.api_name == field.api_name) {
            Some(existing) => *existing = field,
            None => fields.push(field),
        }
        Ok(())
    }

    pub(crate) fn add_pipeline(&mut self, pipeline: ZohoPipeline) {
        if pipeline.default {
            for other in &mut self.pipelines {
                other.default = false;
            }
        }
        match self
            .pipelines
            .iter_mut()
            .find(|p| p.actual_value == pipeline.actual_value)
        {
            Some(existing) => *existing = pipeline,
            None => self.pipelines.push(pipeline),
        }
    }

    /// `(actual, display)` values of a picklist; a deal's Pipeline and Stage
    /// list the pipelines' values.
    fn picklist_of(&self, module: Module, field: &ZohoField) -> Vec<(String, String)> {
        if module == Module::Deals && field.api_name == "Pipeline" {
            return self
                .pipelines
                .iter()
                .map(|p| (p.actual_value.clone(), p.display_value.clone()))
                .collect();
        }
        if module == Module::Deals && field.api_name == "Stage" {
            let mut values: Vec<(String, String)> = Vec::new();
            for stage in self.pipelines.iter().flat_map(|p| &p.stages) {
                if !values.iter().any(|(a, _)| *a == stage.actual_value) {
                    values.push((stage.actual_value.clone(), stage.display_value.clone()));
                }
            }
            return values;
        }
        field
            .picklist
            .iter()
            .map(|v| (v.clone(), field.display_of(v).to_owned()))
            .collect()
    }

    /// Check the fields present in `record` (one item of a request's `data`,
    /// at `json_path` such as `$.data[0]`). Absent mandatory fields are the
    /// caller's concern (they only matter on insert); a deal's Stage is
    /// checked against its pipeline by the caller too. The error is a Zoho
    /// error item.
    pub(crate) fn validate(
        &self,
        module: Module,
        record: &Map<String, Value>,
        json_path: &str,
    ) -> Result<(), Value> {
        for (key, value) in record {
            if is_ignored_key(key) {
                continue;
            }
            let path = format!("{json_path}.{key}");
            let Some(field) = self.field(module, key) else {
                return Err(invalid_data(key, &path, None));
            };
            check_value(self, module, field, value, &path)?;
        }
        Ok(())
    }

    /// The first mandatory field an insert lacks (or holds blank).
    pub(crate) fn missing_mandatory(
        &self,
        module: Module,
        record: &Map<String, Value>,
        json_path: &str,
    ) -> Option<Value> {
        self.fields(module)
            .iter()
            .filter(|f| f.system_mandatory)
            .find(|f| record.get(&f.api_name).is_none_or(is_blank))
            .map(|f| mandatory_not_found(&f.api_name, &format!("{json_path}.{}", f.api_name)))
    }
}

/// Keys Zoho accepts on a record without a field definition.
fn is_ignored_key(key: &str) -> bool {
    key.starts_with('$') || matches!(key, "id" | "Owner" | "Layout" | "Tag")
}

pub(crate) fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn check_value(
    schema: &ZohoSchema,
    module: Module,
    field: &ZohoField,
    value: &Value,
    path: &str,
) -> Result<(), Value> {
    let name = field.api_name.as_str();
    if is_blank(value) {
        if field.system_mandatory {
            return Err(mandatory_not_found(name, path));
        }
        return Ok(());
    }
    let expected =
        |data_type: &str| invalid_data(name, path, Some(json!({"expected_data_type": data_type})));
    match field.data_type.as_str() {
        "text" | "textarea" | "email" | "phone" | "website" => {
            let Some(text) = value.as_str() else {
                return Err(expected(&field.data_type));
            };
            if text.chars().count() > field.length {
                return Err(invalid_data(
                    name,
                    path,
                    Some(json!({"maximum_length": field.length})),
                ));
            }
            if field.data_type == "email" && !looks_like_email(text) {
                return Err(expected("email"));
            }
        }
        "picklist" => {
            let Some(text) = value.as_str() else {
                return Err(expected("picklist"));
            };
            // A deal's Stage is checked against its pipeline by the caller.
            let is_stage = module == Module::Deals && name == "Stage";
            if !is_stage
                && !schema
                    .picklist_of(module, field)
                    .iter()
                    .any(|(actual, _)| actual == text)
            {
                return Err(invalid_data(name, path, None));
            }
        }
        "integer" => {
            let fits = value
                .as_i64()
                .is_some_and(|n| n.unsigned_abs().to_string().len() <= field.length.max(1));
            if !fits {
                return Err(expected("integer"));
            }
        }
        "currency" | "double" if !value.is_number() => {
            return Err(expected(&field.data_type));
        }
        "boolean" if !value.is_boolean() => {
            return Err(expected("boolean"));
        }
        "date" => {
            let valid = value
                .as_str()
                .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
            if !valid {
                return Err(expected("date"));
            }
        }
        "lookup" => {
            let valid = match value {
                Value::Object(object) => object
                    .get("id")
                    .is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty()) || id.is_u64()),
                Value::String(id) => !id.is_empty(),
                _ => false,
            };
            if !valid {
                return Err(expected("jsonobject"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `local@domain.tld`, no spaces, one `@`.
pub(crate) fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !text.chars().any(char::is_whitespace)
        && domain
            .split_once('.')
            .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty() && !tld.ends_with('.'))
}

pub(crate) fn invalid_data(api_name: &str, json_path: &str, extra: Option<Value>) -> Value {
    let mut details = json!({"api_name": api_name, "json_path": json_path});
    if let (Some(Value::Object(extra)), Some(map)) = (extra, details.as_object_mut()) {
        map.extend(extra);
    }
    record_error("INVALID_DATA", details, "invalid data")
}

pub(crate) fn mandatory_not_found(api_name: &str, json_path: &str) -> Value {
    record_error(
        "MANDATORY_NOT_FOUND",
        json!({"api_name": api_name, "json_path": json_path}),
        "required field not found",
    )
}

// ---------------------------------------------------------------------------
// GET /crm/v8/settings/...
// ---------------------------------------------------------------------------

fn required_param(name: &str) -> Reject {
    zoho_error(
        StatusCode::BAD_REQUEST,
        "REQUIRED_PARAM_MISSING",
        json!({"param_name": name}),
        &format!("{name} param is missing"),
    )
    .into()
}

fn module_param(params: &HashMap<String, String>) -> Result<Module, Reject> {
    let name = params.get("module").map(String::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(required_param("module"));
    }
    Module::parse(name).ok_or_else(|| {
        Reject::from(zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            json!({"param_name": "module"}),
            "the module name given seems to be invalid",
        ))
    })
}

/// `GET /crm/v8/settings/fields?module=`.
pub(super) async fn fields(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |_| {
        let module = module_param(&params)?;
        let schema = shared.schema();
        let fields: Vec<Value> = schema
            .fields(module)
            .iter()
            .map(|f| f.to_json(&schema.picklist_of(module, f)))
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "fields": fields })))
    })
}

/// `GET /crm/v8/settings/layouts?module=`: one active "Standard" layout.
pub(super) async fn layouts(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |_| {
        let module = module_param(&params)?;
        if module == Module::Notes {
            return Err(invalid_module());
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"layouts": [{
                "id": module.layout_id(),
                "name": "Standard",
                "display_label": "Standard",
                "status": "active",
                "visible": true,
            }]}),
        ))
    })
}

/// `GET /crm/v8/settings/pipeline?layout_id=` (the Deals layout's id).
pub(super) async fn pipeline(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shared.api(&headers, &target, &version, 1, |_| {
        let layout = params
            .get("layout_id")
            .map(String::as_str)
            .unwrap_or_default();
        if layout != Module::Deals.layout_id() {
            return Err(zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                json!({"param_name": "layout_id"}),
                "the layout_id given seems to be invalid",
            )
            .into());
        }
        let schema = shared.schema();
        if schema.pipelines.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let pipelines: Vec<Value> = schema.pipelines.iter().map(ZohoPipeline::to_json).collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "pipeline": pipelines }),
        ))
    })
}
