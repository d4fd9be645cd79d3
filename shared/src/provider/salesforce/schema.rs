//! What the push must know of an org: which fields Lead, Contact, Opportunity and Task have,
//! which are required, which values their picklists take, the Opportunity record types, and the
//! status a converted lead gets. Described in one composite call, then kept in the connection's
//! schema cache (TTL from `SCHEMA_CACHE_TTL_SECONDS`), so a push normally describes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::account::ORG_ID;
use super::api::{self, Subrequest};
use super::soql;
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::provider::Session;
use crate::registry::Provider;

/// The objects a push writes.
pub(super) const OBJECTS: [&str; 4] = ["Lead", "Contact", "Opportunity", "Task"];
/// The record type every org has; opportunities without a record type use its stages.
pub(super) const MASTER_RECORD_TYPE: &str = "012000000000000AAA";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct Field {
    pub name: String,
    /// Salesforce's type: `string`, `email`, `picklist`, `double`, `reference`...
    pub kind: String,
    pub required: bool,
    pub createable: bool,
    pub updateable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// Active picklist values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
}

impl Field {
    /// The kind as settings speak of it: `number`, `string` or `enumeration`.
    pub fn general_kind(&self) -> &'static str {
        match self.kind.as_str() {
            "double" | "int" | "long" | "currency" | "percent" => "number",
            "picklist" | "multipicklist" => "enumeration",
            "string" | "textarea" | "email" | "phone" | "url" => "string",
            _ => "other",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(super) struct RecordType {
    pub id: String,
    pub label: String,
    pub master: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct ObjectSchema {
    pub fields: Vec<Field>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_types: Vec<RecordType>,
}

impl ObjectSchema {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct Schema {
    pub objects: BTreeMap<String, ObjectSchema>,
    /// The `LeadStatus` whose `IsConverted` is true.
    pub converted_status: Option<String>,
}

impl Schema {
    pub fn object(&self, name: &str) -> &ObjectSchema {
        static EMPTY: ObjectSchema = ObjectSchema {
            fields: Vec::new(),
            record_types: Vec::new(),
        };
        self.objects.get(name).unwrap_or(&EMPTY)
    }
}

/// A field as `describe` lists it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribedField {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    nillable: bool,
    #[serde(default)]
    createable: bool,
    #[serde(default)]
    updateable: bool,
    #[serde(default)]
    defaulted_on_create: bool,
    #[serde(default)]
    length: usize,
    #[serde(default)]
    picklist_values: Vec<PicklistValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PicklistValue {
    value: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    default_value: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribedRecordType {
    record_type_id: String,
    name: String,
    #[serde(default)]
    active: bool,
    #[serde(default)]
    available: bool,
    #[serde(default)]
    master: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Described {
    fields: Vec<DescribedField>,
    #[serde(default)]
    record_type_infos: Vec<DescribedRecordType>,
}

fn object_from(described: Described) -> ObjectSchema {
    let fields = described
        .fields
        .into_iter()
        .map(|f| {
            let values: Vec<&PicklistValue> =
                f.picklist_values.iter().filter(|v| v.active).collect();
            Field {
                // Salesforce's own definition of a field a create must fill.
                required: !f.nillable
                    && f.createable
                    && !f.defaulted_on_create
                    && f.kind != "boolean",
                createable: f.createable,
                updateable: f.updateable,
                length: (f.length > 0).then_some(f.length),
                default_value: values
                    .iter()
                    .find(|v| v.default_value)
                    .map(|v| v.value.clone()),
                values: values.iter().map(|v| v.value.clone()).collect(),
                kind: f.kind,
                name: f.name,
            }
        })
        .collect();
    let record_types = described
        .record_type_infos
        .into_iter()
        .filter(|r| r.master || (r.active && r.available))
        .map(|r| RecordType {
            id: r.record_type_id,
            label: r.name,
            master: r.master,
        })
        .collect();
    ObjectSchema {
        fields,
        record_types,
    }
}

/// The cache key: per org, so a reconnect to another org never reads this one's fields.
fn cache_key(session: &Session<'_>) -> String {
    format!(
        "{}#objects",
        session
            .account
            .get(ORG_ID)
            .map(String::as_str)
            .unwrap_or("unknown")
    )
}

/// The org's schema and whether it was described just now (a cached one may be stale).
pub(super) async fn load(session: &Session<'_>) -> Result<(Schema, bool), ProviderError> {
    let key = cache_key(session);
    if let Some(cache) = &session.schema_cache {
        if let Some(text) = cache.load(&key).await {
            match serde_json::from_str(&text) {
                Ok(schema) => return Ok((schema, false)),
                Err(_) => {
                    tracing::warn!("the cached Salesforce schema is unreadable; describing again")
                }
            }
        }
    }
    let schema = describe(session).await?;
    if let Some(cache) = &session.schema_cache {
        if let Ok(text) = serde_json::to_string(&schema) {
            cache.save(&key, &text).await;
        }
    }
    Ok((schema, true))
}

/// Drops the cached schema: Salesforce said a field we knew of is not what we thought.
pub(super) async fn forget(session: &Session<'_>) {
    if let Some(cache) = &session.schema_cache {
        cache.forget(&cache_key(session)).await;
    }
}

/// Describes the four objects and reads the converted lead status, in one composite call.
async fn describe(session: &Session<'_>) -> Result<Schema, ProviderError> {
    let mut subrequests: Vec<Subrequest> = OBJECTS
        .iter()
        .map(|object| Subrequest {
            method: "GET",
            resource: format!("/sobjects/{object}/describe"),
            reference: object,
            body: None,
        })
        .collect();
    subrequests.push(Subrequest {
        method: "GET",
        resource: api::query_resource(soql::CONVERTED_STATUS),
        reference: "ConvertedStatus",
        body: None,
    });
    let results = api::composite(
        session,
        "schema.describe",
        false,
        subrequests,
        Idempotency::Safe,
    )
    .await?;
    let mut schema = Schema::default();
    for result in results {
        let reference = result.reference.clone();
        let body = result.into_result()?;
        if reference == "ConvertedStatus" {
            schema.converted_status = api::records(&body)
                .first()
                .and_then(|r| r.get("MasterLabel"))
                .and_then(Value::as_str)
                .map(str::to_string);
        } else {
            let described: Described =
                serde_json::from_value(body).map_err(|_| ProviderError::Garbage {
                    provider: Provider::Salesforce,
                    status: 200,
                    detail: format!("the {reference} description is unreadable"),
                })?;
            schema.objects.insert(reference, object_from(described));
        }
    }
    tracing::info!(
        objects = schema.objects.len(),
        "Salesforce objects described"
    );
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_means_not_nillable_createable_and_not_defaulted() {
        let described: Described = serde_json::from_value(serde_json::json!({
            "fields": [
                {"name": "LastName", "type": "string", "nillable": false, "createable": true, "updateable": true, "defaultedOnCreate": false, "length": 80},
                {"name": "Status", "type": "picklist", "nillable": false, "createable": true, "updateable": true, "defaultedOnCreate": true,
                 "picklistValues": [{"value": "Open", "active": true, "defaultValue": true}, {"value": "Old", "active": false, "defaultValue": false}]},
                {"name": "Id", "type": "id", "nillable": false, "createable": false, "updateable": false, "defaultedOnCreate": true},
                {"name": "DoNotCall", "type": "boolean", "nillable": false, "createable": true, "updateable": true, "defaultedOnCreate": false}
            ],
            "recordTypeInfos": [
                {"recordTypeId": "012000000000000AAA", "name": "Master", "active": true, "available": true, "master": true},
                {"recordTypeId": "0125g000000XYZAAA", "name": "Retired", "active": false, "available": true, "master": false}
            ]
        }))
        .unwrap();
        let object = object_from(described);
        assert!(object.field("LastName").unwrap().required);
        assert_eq!(object.field("LastName").unwrap().length, Some(80));
        let status = object.field("Status").unwrap();
        assert!(!status.required);
        assert_eq!(status.values, vec!["Open"]);
        assert_eq!(status.default_value.as_deref(), Some("Open"));
        assert!(!object.field("Id").unwrap().required);
        assert!(!object.field("DoNotCall").unwrap().required);
        assert_eq!(
            object.record_types.len(),
            1,
            "inactive record types are left out"
        );
    }
}
