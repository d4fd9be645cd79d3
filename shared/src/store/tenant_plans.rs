//! The tenant item (`TENANT#<tenant>` / `PLAN`): the plan billing last reported and a write
//! counter.
//!
//! `version` goes up with every plan change and every connection write (see
//! [`Store::put_connection_in_slot`]), so a connect that checked the plan against the tenant's
//! other connections can make its write conditional on nothing of that having changed since.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::{conditional, malformed, store_error, tenant_pk, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::plan::{Plan, StoredPlan};

pub(crate) const PLAN_SK: &str = "PLAN";

/// The tenant item as read: the stored plan (none before billing's first event) and the
/// counter a connection write is conditioned on (0 before the item exists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub plan: Option<StoredPlan>,
    pub version: u64,
}

impl Store {
    pub(crate) fn tenant_item_key(&self, tenant: &TenantId) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(tenant_pk(tenant))),
            ("sk".to_string(), AttributeValue::S(PLAN_SK.to_string())),
        ])
    }

    /// The tenant item, read consistently.
    pub async fn get_tenant_record(&self, tenant: &TenantId) -> Result<TenantRecord, Error> {
        let output = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.tenant_item_key(tenant)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e).expect("GetItem has no condition"))?;
        let Some(item) = output.item else {
            return Ok(TenantRecord {
                plan: None,
                version: 0,
            });
        };
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
            _ => None,
        };
        let version = number("version").unwrap_or(0).max(0) as u64;
        let plan = match (item.get("plan"), number("changed_at_ms")) {
            (Some(AttributeValue::S(plan)), Some(ms)) => Some(StoredPlan {
                plan: plan
                    .parse::<Plan>()
                    .map_err(|_| malformed("tenant plan", format!("unknown plan {plan:?}")))?,
                changed_at: DateTime::<Utc>::from_timestamp_millis(ms)
                    .ok_or_else(|| malformed("tenant plan", "changed_at out of range"))?,
            }),
            _ => None,
        };
        Ok(TenantRecord { plan, version })
    }

    /// The stored plan alone (what a push needs).
    pub async fn get_tenant_plan(&self, tenant: &TenantId) -> Result<Option<StoredPlan>, Error> {
        Ok(self.get_tenant_record(tenant).await?.plan)
    }

    /// Records billing's plan change, unless a change at the same or a later `changed_at` is
    /// stored already: events arrive out of order and more than once, and an older one must
    /// never overwrite a newer one. Returns whether it was written.
    pub async fn record_plan_change(
        &self,
        tenant: &TenantId,
        plan: Plan,
        changed_at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.tenant_item_key(tenant)))
            .condition_expression("attribute_not_exists(changed_at_ms) OR changed_at_ms < :ms")
            .update_expression(
                "SET #plan = :plan, changed_at = :at, changed_at_ms = :ms, \
                 version = if_not_exists(version, :zero) + :one",
            )
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(
                ":plan",
                AttributeValue::S(plan.name().to_ascii_lowercase()),
            )
            .expression_attribute_values(":at", AttributeValue::S(changed_at.to_rfc3339()))
            .expression_attribute_values(
                ":ms",
                AttributeValue::N(changed_at.timestamp_millis().to_string()),
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        Ok(conditional("UpdateItem", result)?.is_some())
    }
}
