//! Parked leads: lead messages that could not go to a connection because it needs the tenant
//! (`needs_reauth`), kept until the tenant reconnects or their time to live ends.
//!
//! Keyed `TENANT#<tenant>` / `PARK#<provider>#<occurred_at, epoch ms, 13 digits>#<lead id>`: the
//! tenant's partition, one provider's parked leads found with one `Query`, in `occurred_at`
//! order. The item holds the original message body, so a release re-sends exactly what came in.
//! `ttl` (epoch seconds) lets DynamoDB delete it after the limit; as DynamoDB deletes expired
//! items only eventually, every read here also filters them out.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{conditional, malformed, store_error, tenant_pk, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;

const PREFIX: &str = "PARK#";

/// One parked lead message for one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedLead {
    pub tenant_id: TenantId,
    pub provider: Provider,
    pub lead_id: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub occurred_at: DateTime<Utc>,
    /// The SQS message body as it arrived.
    pub body: String,
    /// Why it was parked (an error's display text: never a secret).
    pub reason: String,
    pub parked_at: DateTime<Utc>,
    /// When DynamoDB may delete it, epoch seconds.
    pub ttl: i64,
}

impl ParkedLead {
    /// The item's sort key: the provider's prefix, then `occurred_at` so that a query returns
    /// the oldest first.
    pub fn sort_key(&self) -> String {
        format!(
            "{}{:013}#{}",
            provider_prefix(self.provider),
            self.occurred_at.timestamp_millis().max(0),
            self.lead_id
        )
    }
}

fn provider_prefix(provider: Provider) -> String {
    format!("{PREFIX}{}#", provider.slug())
}

fn key(tenant: &TenantId, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(tenant_pk(tenant))),
        ("sk".to_string(), AttributeValue::S(sk)),
    ])
}

impl Store {
    /// Parks a lead. A message parked again (SQS delivered it twice) keeps its first item, so
    /// its time to live counts from when it was first parked.
    pub async fn park_lead(&self, lead: &ParkedLead) -> Result<(), Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(lead).map_err(|e| malformed("parked lead", e))?;
        item.extend(key(&lead.tenant_id, lead.sort_key()));
        let result = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional("PutItem", result)?;
        Ok(())
    }

    /// A tenant's live parked leads for `provider`, oldest `occurred_at` first, at most `limit`.
    pub async fn parked_leads(
        &self,
        tenant: &TenantId,
        provider: Provider,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ParkedLead>, Error> {
        let mut leads = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(provider_prefix(provider)),
                )
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error("Query", e).expect("Query has no condition"))?;
            for item in page.items.unwrap_or_default() {
                leads.push(serde_dynamo::from_item(item).map_err(|e| malformed("parked lead", e))?);
                if leads.len() >= limit {
                    return Ok(leads);
                }
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(leads),
            }
        }
    }

    /// How many live parked leads a tenant has, per provider (one query over the tenant's
    /// `PARK#` items).
    pub async fn count_parked_leads(
        &self,
        tenant: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<HashMap<Provider, usize>, Error> {
        let mut counts = HashMap::new();
        let mut start = None;
        loop {
            let page = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .filter_expression("#ttl > :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
                .expression_attribute_values(":prefix", AttributeValue::S(PREFIX.into()))
                .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
                .projection_expression("sk")
                .select(Select::SpecificAttributes)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error("Query", e).expect("Query has no condition"))?;
            for item in page.items.unwrap_or_default() {
                let provider = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| sk.strip_prefix(PREFIX))
                    .and_then(|rest| rest.split('#').next())
                    .and_then(|slug| slug.parse::<Provider>().ok());
                // An item of a provider this build does not know is not counted anywhere.
                if let Some(provider) = provider {
                    *counts.entry(provider).or_insert(0) += 1;
                }
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(counts),
            }
        }
    }

    /// Removes a parked lead (released, or taken back).
    pub async fn delete_parked_lead(&self, lead: &ParkedLead) -> Result<(), Error> {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&lead.tenant_id, lead.sort_key())))
            .send()
            .await
            .map_err(|e| store_error("DeleteItem", e).expect("DeleteItem has no condition"))?;
        Ok(())
    }
}
