//! Lead mappings: which CRM records a LeadRelay lead became in one CRM account, so that a
//! replayed or updated lead updates those records instead of creating new ones.
//!
//! Keyed `TENANT#<tenant>` / `LEAD#<provider>#<account>#<lead id>`: a mapping belongs to the CRM
//! account (portal, org, domain, spreadsheet) it was made in, so a reconnect to another account
//! starts afresh there, and a disconnect finds the provider's mappings with one `Query` on the
//! tenant's partition.
//!
//! A push first *claims* the mapping (a lease with an expiry, taken with one conditional write),
//! writes each CRM record id (or the intent to create one) as it goes, and releases the claim
//! when done. A second delivery of the same message meanwhile finds the claim and backs off, so
//! two deliveries never both create records; a crashed holder's claim expires.
//!
//! The mapping also says how the lead's last push there ended, for `GET /leads/{id}/sync`:
//! `pushed_at` (written with the completed push), `last_failure` (written by the releasing write
//! of a failed push, no extra write) and `dead_lettered` (one conditional update when the
//! message goes to the DLQ). A success clears both marks in the same releasing write.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Connection;
use super::{conditional, malformed, store_error, tenant_pk, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::{AccountIdentity, Provider};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadMapping {
    pub tenant_id: TenantId,
    pub lead_id: String,
    pub provider: Provider,
    /// The CRM account the records live in (see [`crate::registry::AccountIdentity`]).
    pub account: String,
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
    /// Record kinds whose create was sent but whose id was never written down: the next push
    /// looks them up before creating them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub intents: BTreeSet<String>,
    /// `occurred_at` of the newest message a push was started for (or found already pushed);
    /// older messages are stale. Epoch milliseconds, so that a condition can compare it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "chrono::serde::ts_milliseconds_option"
    )]
    pub newest_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// When the content in `pushed_digest` was completely pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<DateTime<Utc>>,
    /// How the last push attempt failed, until a push succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<PushFailure>,
    /// The message was sent to the DLQ after this destination failed, until a push succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<DeadLettered>,
}

/// A failed push attempt to one destination. `reason` is an error's display text, which never
/// holds a secret (see `crate::http::redact`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushFailure {
    pub reason: String,
    pub at: DateTime<Utc>,
    /// Failed attempts in a row at this destination.
    pub attempts: u32,
    /// Whether the lead will be tried again without anyone acting: a retryable error (SQS
    /// delivers the message again) or a connection that needs reconnecting (the lead is parked).
    pub will_retry: bool,
}

/// The message was dead-lettered with this reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettered {
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// The result of trying to claim a lead for one provider.
#[derive(Debug)]
pub enum LeadClaim {
    /// This caller holds the claim until it releases it or the lease ends.
    Claimed(Box<LeadMapping>),
    /// Another delivery holds it.
    Busy { until: DateTime<Utc> },
}

/// Where one lead's mapping in one CRM account lives.
#[derive(Clone, Copy, Debug)]
pub struct LeadKey<'a> {
    pub tenant: &'a TenantId,
    pub provider: Provider,
    pub account: &'a str,
    pub lead_id: &'a str,
}

fn provider_prefix(provider: Provider) -> String {
    format!("LEAD#{}#", provider.slug())
}

fn key(lead: LeadKey<'_>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(tenant_pk(lead.tenant))),
        (
            "sk".to_string(),
            AttributeValue::S(format!(
                "{}{}#{}",
                provider_prefix(lead.provider),
                lead.account,
                lead.lead_id
            )),
        ),
    ])
}

impl Store {
    pub async fn get_lead_mapping(&self, lead: LeadKey<'_>) -> Result<Option<LeadMapping>, Error> {
        let output = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(lead)))
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
        lead: LeadKey<'_>,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<LeadClaim, Error> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lead)))
            .condition_expression(
                "attribute_not_exists(pk) OR attribute_not_exists(lease_until) OR lease_until < :now",
            )
            .update_expression(
                "SET lease_owner = :owner, lease_until = :until, version = if_not_exists(version, :zero) + :one, \
                 tenant_id = :tenant, lead_id = :lead, provider = :provider, account = :account, records = if_not_exists(records, :empty), updated_at = :at",
            )
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":until", AttributeValue::N(until.timestamp().to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":tenant", AttributeValue::S(lead.tenant.to_string()))
            .expression_attribute_values(":lead", AttributeValue::S(lead.lead_id.to_string()))
            .expression_attribute_values(":provider", AttributeValue::S(lead.provider.slug().to_string()))
            .expression_attribute_values(":account", AttributeValue::S(lead.account.to_string()))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":at", AttributeValue::S(now.to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional("UpdateItem", result)? {
            Some(output) => Ok(LeadClaim::Claimed(Box::new(
                serde_dynamo::from_item(output.attributes.unwrap_or_default())
                    .map_err(|e| malformed("lead mapping", e))?,
            ))),
            None => {
                let until = self
                    .get_lead_mapping(lead)
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
        item.extend(key(mapping.key()));
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

    /// Moves the newest `occurred_at` of an existing mapping forward to `at` (never back), for a
    /// message that needed no push: a later message older than it is then stale.
    pub async fn advance_newest(&self, lead: LeadKey<'_>, at: DateTime<Utc>) -> Result<(), Error> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lead)))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(newest_at) OR newest_at < :at)",
            )
            .update_expression("SET newest_at = :at")
            .expression_attribute_values(
                ":at",
                AttributeValue::N(at.timestamp_millis().to_string()),
            )
            .send()
            .await;
        conditional("UpdateItem", result)?;
        Ok(())
    }

    /// Marks a mapping whose last push failed as dead-lettered. Written only when the mapping
    /// exists, no push holds it and its last attempt failed: a push in flight, or one that has
    /// succeeded since, decides the status instead. Returns whether it was written.
    pub async fn mark_dead_lettered(
        &self,
        lead: LeadKey<'_>,
        mark: &DeadLettered,
    ) -> Result<bool, Error> {
        let value =
            serde_dynamo::to_attribute_value(mark).map_err(|e| malformed("dead letter mark", e))?;
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lead)))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(lease_owner) AND attribute_exists(last_failure)",
            )
            .update_expression("SET dead_lettered = :mark")
            .expression_attribute_values(":mark", value)
            .send()
            .await;
        Ok(conditional("UpdateItem", result)?.is_some())
    }

    /// Every mapping of `lead_id` at `provider`, in whichever accounts it was pushed to.
    pub async fn lead_mappings_of(
        &self,
        tenant: &TenantId,
        provider: Provider,
        lead_id: &str,
    ) -> Result<Vec<LeadMapping>, Error> {
        let items = self
            .provider_mapping_items(tenant, provider, |query| {
                query
                    .filter_expression("lead_id = :lead")
                    .expression_attribute_values(":lead", AttributeValue::S(lead_id.to_string()))
                    .consistent_read(true)
            })
            .await?;
        items
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| malformed("lead mapping", e).into())
            })
            .collect()
    }

    /// Deletes every lead mapping of `tenant` at `provider`, in every account: one `Query` on
    /// the tenant's partition by key prefix, then batched deletes. Returns how many went.
    pub async fn delete_lead_mappings(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<usize, Error> {
        let keys = self
            .provider_mapping_items(tenant, provider, |query| {
                query.projection_expression("pk, sk")
            })
            .await?;
        for chunk in keys.chunks(25) {
            self.delete_keys(chunk.to_vec()).await?;
        }
        Ok(keys.len())
    }

    /// Every item of the tenant's partition under `LEAD#<provider>#`, all pages; `shape` adds a
    /// filter or a projection to the query.
    async fn provider_mapping_items(
        &self,
        tenant: &TenantId,
        provider: Provider,
        shape: impl Fn(
            aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let query = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
                .expression_attribute_values(
                    ":prefix",
                    AttributeValue::S(provider_prefix(provider)),
                )
                .set_exclusive_start_key(start.take());
            let page = shape(query)
                .send()
                .await
                .map_err(|e| store_error("Query", e).expect("Query has no condition"))?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// One `BatchWriteItem` of deletes, resending what DynamoDB hands back unprocessed.
    async fn delete_keys(&self, keys: Vec<HashMap<String, AttributeValue>>) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
        let mut requests: Vec<WriteRequest> = keys
            .into_iter()
            .map(|k| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(k))
                            .build()
                            .expect("key is set"),
                    )
                    .build()
            })
            .collect();
        for _ in 0..8 {
            if requests.is_empty() {
                return Ok(());
            }
            let output = self
                .ddb
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| store_error("BatchWriteItem", e).expect("no condition"))?;
            requests = output
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(crate::error::StoreError::Aws {
                operation: "BatchWriteItem",
                code: "UnprocessedItems".into(),
                message: format!("{} deletes left unprocessed", requests.len()),
                retryable: true,
            }
            .into())
        }
    }
}

/// One lead of a batch claim: its key, the mapping read just before (`None`: no mapping yet)
/// and the `occurred_at` the push starts for.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    pub key: LeadKey<'a>,
    pub read: Option<&'a LeadMapping>,
    pub at: DateTime<Utc>,
}

impl ClaimRequest<'_> {
    fn read_version(&self) -> Option<u64> {
        self.read.map(|m| m.version)
    }
}

/// DynamoDB's limits: 100 keys per `BatchGetItem`, 100 actions per `TransactWriteItems`.
const BATCH_GET: usize = 100;
const TRANSACTION: usize = 100;

impl Store {
    /// The mappings of many leads, read with `BatchGetItem` (strongly consistent, 100 keys a
    /// call, unprocessed keys sent again). Aligned with `leads`: `None` where there is none.
    pub async fn get_lead_mappings(
        &self,
        leads: &[LeadKey<'_>],
    ) -> Result<Vec<Option<LeadMapping>>, Error> {
        let mut found: HashMap<(String, String), LeadMapping> = HashMap::new();
        for chunk in leads.chunks(BATCH_GET) {
            let mut keys: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(|lead| key(*lead)).collect();
            for attempt in 0..8 {
                if keys.is_empty() {
                    break;
                }
                if attempt > 0 {
                    // DynamoDB hands keys back when it is short of capacity: a short pause first.
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| malformed("batch get", e))?;
                let output = self
                    .ddb
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem", e).expect("no condition"))?;
                for item in output
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let mapping: LeadMapping =
                        serde_dynamo::from_item(item).map_err(|e| malformed("lead mapping", e))?;
                    let k = key(mapping.key());
                    found.insert(item_key(&k), mapping);
                }
                keys = output
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !keys.is_empty() {
                return Err(crate::error::StoreError::Aws {
                    operation: "BatchGetItem",
                    code: "UnprocessedKeys".into(),
                    message: format!("{} keys left unprocessed", keys.len()),
                    retryable: true,
                }
                .into());
            }
        }
        Ok(leads
            .iter()
            .map(|lead| found.remove(&item_key(&key(*lead))))
            .collect())
    }

    /// Claims many leads for `owner` until `until`, each in one conditional write of a
    /// `TransactWriteItems` (100 a call), and writes each one's `newest_at` in the same write:
    /// the claim holds only if nobody holds an unexpired claim **and** the mapping is still the
    /// version read (so what was read is what the push resumes from); a lead read as new is
    /// claimed only if its mapping still does not exist. A lead whose condition
    /// failed is busy; the others are claimed again without it. Returns, aligned with `leads`,
    /// the claimed mapping or `None` (busy).
    pub async fn claim_leads(
        &self,
        leads: &[ClaimRequest<'_>],
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Option<LeadMapping>>, Error> {
        let mut claimed: Vec<Option<LeadMapping>> = vec![None; leads.len()];
        let indexes: Vec<usize> = (0..leads.len()).collect();
        for chunk in indexes.chunks(TRANSACTION) {
            let mut pending: Vec<usize> = chunk.to_vec();
            while !pending.is_empty() {
                let items = pending
                    .iter()
                    .map(|&i| claim_action(&self.table, &leads[i], owner, now, until))
                    .collect::<Result<Vec<_>, Error>>()?;
                match self.transact("claim", items).await? {
                    Transacted::Written => {
                        for &i in &pending {
                            claimed[i] = Some(claimed_mapping(&leads[i], owner, now, until));
                        }
                        pending.clear();
                    }
                    Transacted::Refused(refused) => {
                        let before = pending.len();
                        pending = pending
                            .iter()
                            .enumerate()
                            .filter(|(n, _)| !refused.contains(n))
                            .map(|(_, &i)| i)
                            .collect();
                        if pending.len() == before {
                            // No reason named a lead: nothing can be told apart; all busy.
                            pending.clear();
                        }
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// Saves claimed mappings (progress, or the final state with the claim released) in one
    /// `TransactWriteItems` per 100, each put conditioned on `owner` still holding the claim.
    /// All or nothing per call: returns the positions (in `mappings`) whose claim was lost, and
    /// when that is not empty nothing of their call was written.
    pub async fn save_claimed_leads(
        &self,
        mappings: &[&LeadMapping],
        owner: &str,
    ) -> Result<Vec<usize>, Error> {
        let mut lost = Vec::new();
        for (c, chunk) in mappings.chunks(TRANSACTION).enumerate() {
            let items = chunk
                .iter()
                .map(|mapping| claimed_put(&self.table, mapping, owner))
                .collect::<Result<Vec<_>, Error>>()?;
            if let Transacted::Refused(refused) = self.transact("save", items).await? {
                if refused.is_empty() {
                    lost.extend((0..chunk.len()).map(|n| c * TRANSACTION + n));
                }
                lost.extend(refused.into_iter().map(|n| c * TRANSACTION + n));
            }
        }
        Ok(lost)
    }

    /// One `TransactWriteItems`. A cancellation for failed conditions is an answer (which
    /// actions' conditions failed, by position); a cancellation for a conflict with another
    /// transaction, or for throttling, is a retryable store error.
    async fn transact(
        &self,
        purpose: &'static str,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<Transacted, Error> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let result = self
            .ddb
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Transacted::Written),
            Err(error) => error,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None"))
                .collect();
            let only_conditions = codes
                .iter()
                .all(|c| *c == "None" || *c == "ConditionalCheckFailed");
            if only_conditions {
                return Ok(Transacted::Refused(
                    codes
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| **c == "ConditionalCheckFailed")
                        .map(|(n, _)| n)
                        .collect(),
                ));
            }
            tracing::warn!(purpose, reasons = ?codes, "lead mapping transaction cancelled");
            return Err(crate::error::StoreError::Aws {
                operation: "TransactWriteItems",
                code: "TransactionCanceledException".into(),
                message: format!("cancelled: {}", codes.join(", ")),
                retryable: true,
            }
            .into());
        }
        Err(store_error("TransactWriteItems", error)
            .expect("a failed condition cancels the transaction")
            .into())
    }
}

/// How a transaction ended: written, or refused because these actions' conditions failed
/// (positions in the call; empty when DynamoDB named none).
enum Transacted {
    Written,
    Refused(Vec<usize>),
}

fn item_key(key: &HashMap<String, AttributeValue>) -> (String, String) {
    let text = |name: &str| match key.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    (text("pk"), text("sk"))
}

fn claim_action(
    table: &str,
    lead: &ClaimRequest<'_>,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, Error> {
    let Some(read) = lead.read else {
        // A new lead's claimed mapping is known whole: one conditional put of it writes what
        // the update below would, without an update expression for DynamoDB (or moto, where
        // that is ten times the cost of a put) to evaluate per item.
        return mapping_put(
            table,
            &claimed_mapping(lead, owner, now, until),
            "attribute_not_exists(pk)",
            None,
        );
    };
    let values = HashMap::from([
        (
            ":now".to_string(),
            AttributeValue::N(now.timestamp().to_string()),
        ),
        (
            ":until".into(),
            AttributeValue::N(until.timestamp().to_string()),
        ),
        (":owner".into(), AttributeValue::S(owner.to_string())),
        (
            ":tenant".into(),
            AttributeValue::S(lead.key.tenant.to_string()),
        ),
        (
            ":lead".into(),
            AttributeValue::S(lead.key.lead_id.to_string()),
        ),
        (
            ":provider".into(),
            AttributeValue::S(lead.key.provider.slug().to_string()),
        ),
        (
            ":account".into(),
            AttributeValue::S(lead.key.account.to_string()),
        ),
        (":empty".into(), AttributeValue::M(HashMap::new())),
        (":at".into(), AttributeValue::S(now.to_rfc3339())),
        (
            ":newest".into(),
            AttributeValue::N(lead.at.timestamp_millis().to_string()),
        ),
        (
            ":next".into(),
            AttributeValue::N((read.version + 1).to_string()),
        ),
        (":read".into(), AttributeValue::N(read.version.to_string())),
    ]);
    // Unchanged since it was read, and no live claim on it.
    let condition = "version = :read AND (attribute_not_exists(lease_until) OR lease_until < :now)";
    let update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .set_key(Some(key(lead.key)))
        .condition_expression(condition)
        .update_expression(
            "SET lease_owner = :owner, lease_until = :until, version = :next, tenant_id = :tenant, \
             lead_id = :lead, provider = :provider, account = :account, \
             records = if_not_exists(records, :empty), updated_at = :at, newest_at = :newest",
        )
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(|e| malformed("claim", e))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .update(update)
        .build())
}

/// What a claim's update leaves in the mapping: the one read with the claim's changes, or a
/// new one.
fn claimed_mapping(
    lead: &ClaimRequest<'_>,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> LeadMapping {
    if let Some(read) = lead.read {
        let mut mapping = read.clone();
        mapping.lease_owner = Some(owner.to_string());
        mapping.lease_until = Some(until.timestamp());
        mapping.version = read.version + 1;
        mapping.updated_at = Some(now);
        mapping.newest_at = Some(lead.at);
        return mapping;
    }
    LeadMapping {
        tenant_id: lead.key.tenant.clone(),
        lead_id: lead.key.lead_id.to_string(),
        provider: lead.key.provider,
        account: lead.key.account.to_string(),
        records: BTreeMap::new(),
        stage: None,
        summary_digest: None,
        pushed_digest: None,
        intents: BTreeSet::new(),
        newest_at: Some(lead.at),
        lease_owner: Some(owner.to_string()),
        lease_until: Some(until.timestamp()),
        version: lead.read_version().unwrap_or(0) + 1,
        updated_at: Some(now),
        pushed_at: None,
        last_failure: None,
        dead_lettered: None,
    }
}

fn claimed_put(
    table: &str,
    mapping: &LeadMapping,
    owner: &str,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, Error> {
    mapping_put(
        table,
        mapping,
        "lease_owner = :owner",
        Some((":owner", AttributeValue::S(owner.to_string()))),
    )
}

/// A transaction's put of the whole `mapping` on `condition` (with its one value, if any).
fn mapping_put(
    table: &str,
    mapping: &LeadMapping,
    condition: &str,
    value: Option<(&str, AttributeValue)>,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, Error> {
    let mut item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(mapping).map_err(|e| malformed("lead mapping", e))?;
    item.extend(key(mapping.key()));
    let mut put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition);
    if let Some((name, value)) = value {
        put = put.expression_attribute_values(name, value);
    }
    let put = put.build().map_err(|e| malformed("lead mapping", e))?;
    Ok(aws_sdk_dynamodb::types::TransactWriteItem::builder()
        .put(put)
        .build())
}

/// The CRM account `connection` writes into, which scopes its lead mappings: the account fact
/// the registry names (portal, org, domain), or the spreadsheet and tab chosen in the settings.
pub fn mapping_account(connection: &Connection) -> Result<String, Error> {
    let identity = connection
        .provider
        .facts()
        .map(|f| f.account_identity)
        .ok_or(Error::NotSupported(connection.provider))?;
    let account = match identity {
        AccountIdentity::AccountFact(fact) => connection.account.get(fact).cloned(),
        AccountIdentity::Spreadsheet => connection
            .settings
            .as_ref()
            .map(|s| format!("{}!{}", s.pipeline_id, s.sheet.as_deref().unwrap_or(""))),
    };
    account
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::NeedsReauth {
            provider: connection.provider,
            reason: "the connection does not name the account it writes into".into(),
        })
}

impl LeadMapping {
    pub fn key(&self) -> LeadKey<'_> {
        LeadKey {
            tenant: &self.tenant_id,
            provider: self.provider,
            account: &self.account,
            lead_id: &self.lead_id,
        }
    }
}
