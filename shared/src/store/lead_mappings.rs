//! Lead mappings: which CRM records a LeadRelay lead became in one provider, so that a replayed
//! or updated lead updates those records instead of creating new ones.
//!
//! A push first *claims* the mapping (a lease with an expiry, taken with one conditional write),
//! records each CRM record id as soon as it exists, and releases the claim when done. A second
//! delivery of the same message meanwhile finds the claim and backs off, so two deliveries never
//! both create records; a crashed holder's claim expires.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{conditional, malformed, store_error, tenant_pk, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadMapping {
    pub tenant_id: TenantId,
    pub lead_id: String,
    pub provider: Provider,
    /// Record kind (`contact`, `deal`, `note`, `row`) to the CRM's id for it.
    #[serde(default)]
    pub records: BTreeMap<String, String>,
    /// The CRM stage the deal was last put in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Digest of the summary the note holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_digest: Option<String>,
    /// Digest of the lead content last pushed completely: an identical replay does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The result of trying to claim a lead for one provider.
#[derive(Debug)]
pub enum LeadClaim {
    /// This caller holds the claim until it releases it or the lease ends.
    Claimed(LeadMapping),
    /// Another delivery holds it.
    Busy { until: DateTime<Utc> },
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
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| malformed("lead mapping", e).into())
            })
            .transpose()
    }

    /// Claims a lead for `owner` until `until`, creating the mapping if it is new. Succeeds only
    /// when nobody holds an unexpired claim.
    pub async fn claim_lead(
        &self,
        tenant: &TenantId,
        lead_id: &str,
        provider: Provider,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeadClaim, Error> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant, lead_id, provider)))
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(lease_until) OR lease_until < :now",
            )
            .update_expression(
                "SET lease_owner = :owner, lease_until = :until, version = if_not_exists(version, :zero) + :one, \
                 tenant_id = :tenant, lead_id = :lead, provider = :provider, records = if_not_exists(records, :empty), updated_at = :at",
            )
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":until", AttributeValue::N(until.timestamp().to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.to_string()))
            .expression_attribute_values(":lead", AttributeValue::S(lead_id.to_string()))
            .expression_attribute_values(":provider", AttributeValue::S(provider.slug().to_string()))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":at", AttributeValue::S(now.to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Some(output) => Ok(LeadClaim::Claimed(
                serde_dynamo::from_item(output.attributes.unwrap_or_default())
                    .map_err(|e| malformed("lead mapping", e))?,
            )),
            None => {
                let until = self
                    .get_lead_mapping(tenant, lead_id, provider)
                    .await?
                    .and_then(|m| m.lease_until)
                    .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
                    .unwrap_or(now);
                Ok(LeadClaim::Busy { until })
            }
        }
    }

    /// Saves a claimed mapping (progress, or the final state with the claim released) if
    /// `owner` still holds the claim. Returns `false` when the claim was lost.
    pub async fn save_claimed_lead(
        &self,
        mapping: &LeadMapping,
        owner: &str,
    ) -> Result<bool, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(mapping).map_err(|e| malformed("lead mapping", e))?;
        item.extend(key(&mapping.tenant_id, &mapping.lead_id, mapping.provider));
        let result = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("lease_owner = :owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .send()
            .await;
        Ok(conditional("PutItem", result)?.is_some())
    }
}
