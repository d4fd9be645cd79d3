//! Lead mappings: which CRM records a LeadRelay lead became in one provider, so that a replayed
//! or updated lead updates those records instead of creating new ones.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{malformed, store_error, tenant_pk, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadMapping {
    pub tenant_id: TenantId,
    pub lead_id: String,
    pub provider: Provider,
    /// Record kind (`contact`, `deal`, `note`, `row`) to the CRM's id for it.
    pub records: BTreeMap<String, String>,
    /// Stage the CRM record was last moved to, to detect stage changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

fn key(tenant: &TenantId, lead_id: &str, provider: Provider) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(tenant_pk(tenant))),
        (
            "sk".to_string(),
            AttributeValue::S(format!("LEAD#{lead_id}#{}", provider.slug())),
        ),
    ])
}

impl Store {
    pub async fn get_lead_mapping(
        &self,
        tenant: &TenantId,
        lead_id: &str,
        provider: Provider,
    ) -> Result<Option<LeadMapping>, Error> {
        let output = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id, provider)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e).expect("GetItem has no condition"))?;
        output
            .item
            .map(|item| serde_dynamo::from_item(item).map_err(|e| malformed("lead mapping", e).into()))
            .transpose()
    }

    /// Writes a mapping: new when `expected_version` is `None`, else only over that version.
    /// Returns `false` when someone else wrote first.
    pub async fn put_lead_mapping(
        &self,
        mapping: &LeadMapping,
        expected_version: Option<u64>,
    ) -> Result<bool, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(mapping).map_err(|e| malformed("lead mapping", e))?;
        item.extend(key(&mapping.tenant_id, &mapping.lead_id, mapping.provider));
        let mut request = self.ddb.put_item().table_name(&self.table).set_item(Some(item));
        request = match expected_version {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match store_error("PutItem", e) {
                None => Ok(false),
                Some(err) => Err(err.into()),
            },
        }
    }
}
