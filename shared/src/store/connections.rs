//! Connection rows: one per tenant and provider.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{conditional, connection_sk, malformed, store_error, tenant_pk, Store, REFRESH_BUCKET};
use crate::error::Error;
use crate::identity::TenantId;
use crate::lead::{Lead, LeadField};
use crate::registry::{Provider, ScheduledRefresh};
use crate::stage::LeadStage;
use crate::vault::SealedCredentials;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    /// The provider refused the grant; the tenant must reconnect.
    NeedsReauth,
    Disconnected,
}

/// The pipeline leads go to, which CRM stage each LeadRelay stage lands in, and the contact
/// properties (chosen by the tenant) that receive the lead's source and score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSettings {
    pub pipeline_id: String,
    pub stage_mapping: BTreeMap<LeadStage, String>,
    /// Where the CRM separates leads from contacts (Zoho, Salesforce): the LeadRelay stage at
    /// which the CRM lead is converted into a contact and a deal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert_at: Option<LeadStage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_property: Option<ContactProperty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_property: Option<ContactProperty>,
    /// LeadRelay fields the tenant sends to fields of its own choosing (Salesforce custom
    /// fields), each checked against the CRM's description when saved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub field_mapping: BTreeMap<LeadField, ContactProperty>,
    /// Google Sheets: the tab rows go to (`pipeline_id` holds the spreadsheet's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Google Sheets: that tab's numeric id (`gid`), so a link to a row opens the right tab.
    /// Settings saved before it was kept have none (their links open the spreadsheet's first tab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet_gid: Option<i64>,
}

impl ConnectionSettings {
    /// The properties the tenant chose for the lead's source and score, with the values to
    /// write there. A value a dropdown does not offer is left out rather than failing the push.
    pub fn source_and_score(
        &self,
        source: Option<&str>,
        score: Option<u8>,
    ) -> Vec<(String, String)> {
        let mut chosen = Vec::new();
        if let (Some(property), Some(source)) = (&self.source_property, source) {
            if let Some(value) = property.value_for(source) {
                chosen.push((property.name.clone(), value));
            }
        }
        if let (Some(property), Some(score)) = (&self.score_property, score) {
            if let Some(value) = property.value_for_score(score) {
                chosen.push((property.name.clone(), value));
            }
        }
        chosen
    }

    /// The tenant's mapped fields with the lead's values, in the form each field takes: a
    /// number for a number field, the matching option for a dropdown (or nothing when none
    /// matches, so a dropdown never fails a push), text otherwise.
    pub fn mapped_values(&self, lead: &Lead) -> Vec<(String, serde_json::Value)> {
        let mut values = Vec::new();
        for (field, property) in &self.field_mapping {
            let Some(text) = field.text_of(lead) else {
                continue;
            };
            let value = match (field, property.kind.as_deref()) {
                (LeadField::Score, _) => lead.score.and_then(|s| property.value_for_score(s)),
                _ => property.value_for(&text),
            };
            let Some(value) = value else {
                continue;
            };
            let json = match property.kind.as_deref() {
                Some("number") => value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number),
                _ => Some(serde_json::Value::String(value)),
            };
            if let Some(json) = json {
                values.push((property.name.clone(), json));
            }
        }
        values
    }
}

/// A contact property of the tenant's CRM, as checked when the settings were saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProperty {
    pub name: String,
    /// The values an enumeration property accepts (empty: any value). A lead's value is written
    /// only when it matches one, so a dropdown never makes a push fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// The kind of value it holds (`number`, `string`, `enumeration`), where that decides how a
    /// value is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl ContactProperty {
    /// The value to write for `value`: itself for a free property, the matching option
    /// (case-insensitively) for an enumeration, or nothing.
    pub fn value_for(&self, value: &str) -> Option<String> {
        if self.options.is_empty() {
            return Some(value.to_string());
        }
        self.options
            .iter()
            .find(|option| option.eq_ignore_ascii_case(value.trim()))
            .cloned()
    }

    /// The value to write for a 0–100 score: the number for a free property, else the option
    /// that spells it, else the temperature option for its band (Hot from 70, Warm from 40,
    /// Cold below: a common way of customising a rating dropdown), else nothing.
    pub fn value_for_score(&self, score: u8) -> Option<String> {
        let number = score.to_string();
        if let Some(value) = self.value_for(&number) {
            return Some(value);
        }
        let band = match score {
            70.. => "Hot",
            40..=69 => "Warm",
            _ => "Cold",
        };
        self.value_for(band)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// A stored connection. Its credentials stay sealed until the vault opens them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Connection {
    pub tenant_id: TenantId,
    pub provider: Provider,
    pub status: ConnectionStatus,
    pub credentials: SealedCredentials,
    /// Non-secret facts about the connected account (HubSpot `hub_id`, data centre, ...).
    #[serde(default)]
    pub account: BTreeMap<String, String>,
    /// Access-token expiry, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
    /// When the scheduled job must refresh, epoch seconds: the sort key of the sparse index
    /// `by-refresh-due`. Present only on connections with something to refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_due_at: Option<i64>,
    /// The index's partition key, set together with `refresh_due_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_bucket: Option<String>,
    /// When the current tokens were obtained (connect or refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<DateTime<Utc>>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ConnectionSettings>,
    /// When the current tokens' connection was made: a reconnect resets it (parking compares it).
    pub connected_at: DateTime<Utc>,
    /// When this provider was first connected for the tenant: a reconnect keeps it, so the CRM
    /// a downgraded Pro tenant keeps does not change by reconnecting (rows written before it
    /// existed fall back to `connected_at`; see [`Connection::first_connected`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_connected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Backfill progress, added to by `Store::record_backfill_progress` (read it with
    /// [`Connection::backfill`]); absent until a backfill lead was pushed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_pushed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_failed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_last_pushed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Who may refresh the tokens right now, and until when (see `acquire_refresh_lease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lease_until: Option<i64>,
    /// A rotating refresh token is being presented under the lease: a lease found lapsed with
    /// this still set means its holder died mid-call (or could not store the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_in_flight: Option<RefreshMark>,
    /// A rotating refresh's answer was lost: the stored refresh token may be dead, so it is
    /// never presented again; the access token is used while it lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_in_doubt: Option<RefreshMark>,
}

/// What the refresh protocol notes about a token version (see `refresh/lease.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshMark {
    /// The connection's `version` when the mark was written (for the record).
    pub version: u64,
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Connection {
    /// The order a plan's keep rule goes by: first connection, kept across reconnects.
    pub fn first_connected(&self) -> DateTime<Utc> {
        self.first_connected_at.unwrap_or(self.connected_at)
    }

    pub fn token_expiry(&self) -> Option<DateTime<Utc>> {
        self.token_expires_at
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    }

    /// The doubt about the stored tokens, if a rotating refresh of them lost its answer. Every
    /// write of new tokens removes it, so its presence alone says the stored refresh token may
    /// be dead (a settings save bumps `version` without touching tokens).
    pub fn doubt(&self) -> Option<&RefreshMark> {
        self.refresh_in_doubt.as_ref()
    }
}

/// What a refresh writes to a connection row.
pub struct RefreshedRow<'a> {
    pub credentials: &'a SealedCredentials,
    pub schedule: TokenSchedule,
    /// Account facts the refresh changed (Salesforce's instance), if any.
    pub account: Option<&'a BTreeMap<String, String>>,
}

/// When a token set expires and when the scheduled job must refresh it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenSchedule {
    pub token_expires_at: Option<i64>,
    pub refresh_due_at: Option<i64>,
}

impl TokenSchedule {
    /// Due at the access token's expiry, or earlier where the provider's refresh tokens die of
    /// idleness (Bitrix24: 28 days): then at three quarters of that lifetime, so an idle
    /// connection is kept alive well before it would die. Nothing is due without a refresh token.
    pub fn for_tokens(
        provider: Provider,
        expires_at: Option<DateTime<Utc>>,
        has_refresh_token: bool,
        obtained_at: DateTime<Utc>,
    ) -> TokenSchedule {
        let oauth = provider.facts().and_then(|f| f.oauth());
        let idle_lifetime = oauth.and_then(|o| o.refresh_token_idle_lifetime);
        let mut schedule = Self::compute(expires_at, has_refresh_token, obtained_at, idle_lifetime);
        // Where the provider asks not to be refreshed on a timer, only the keep-alive is
        // scheduled; a push refreshes the access token when it needs one.
        if oauth.is_some_and(|o| o.scheduled_refresh == ScheduledRefresh::KeepAliveOnly) {
            let keep_alive = Self::compute(None, has_refresh_token, obtained_at, idle_lifetime);
            schedule.refresh_due_at = keep_alive.refresh_due_at;
        }
        schedule
    }

    fn compute(
        expires_at: Option<DateTime<Utc>>,
        has_refresh_token: bool,
        obtained_at: DateTime<Utc>,
        idle_lifetime: Option<std::time::Duration>,
    ) -> TokenSchedule {
        let token_expires_at = expires_at.map(|t| t.timestamp());
        if !has_refresh_token {
            return TokenSchedule {
                token_expires_at,
                refresh_due_at: None,
            };
        }
        let idle_deadline =
            idle_lifetime.map(|life| obtained_at.timestamp() + (life.as_secs() as i64) * 3 / 4);
        let refresh_due_at = match (token_expires_at, idle_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        TokenSchedule {
            token_expires_at,
            refresh_due_at,
        }
    }

    /// The refresh index partition this schedule is written to for `tenant` and `provider`:
    /// none when nothing is due, else the connection's shard (`Store::refresh_bucket_for`).
    fn bucket(&self, store: &Store, tenant: &TenantId, provider: Provider) -> Option<String> {
        self.refresh_due_at
            .map(|_| store.refresh_bucket_for(tenant, provider))
    }
}

impl Store {
    /// `OAUTH#<shard>`, the shard a stable hash (FNV-1a, not std's randomly seeded one) of
    /// tenant and provider modulo the shard count: the same connection always lands in the
    /// same shard, and tenants spread evenly over them.
    pub fn refresh_bucket_for(&self, tenant: &TenantId, provider: Provider) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in tenant
            .to_string()
            .bytes()
            .chain(*b"#")
            .chain(provider.slug().bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{REFRESH_BUCKET}#{}", hash % u64::from(self.refresh_shards))
    }

    /// Every partition of the refresh index that may hold due rows: each shard, then the
    /// legacy unsharded bucket (rows move out of it at their next token write).
    pub fn refresh_buckets(&self) -> Vec<String> {
        (0..self.refresh_shards)
            .map(|shard| format!("{REFRESH_BUCKET}#{shard}"))
            .chain([REFRESH_BUCKET.to_string()])
            .collect()
    }
}

impl Store {
    fn connection_key(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(tenant_pk(tenant))),
            ("sk".to_string(), AttributeValue::S(connection_sk(provider))),
        ])
    }

    /// An UpdateItem on one connection row.
    fn update_connection(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
    }

    pub async fn get_connection(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<Option<Connection>, Error> {
        let output = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", e).expect("GetItem has no condition"))?;
        output
            .item
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|e| malformed("connection", e).into())
            })
            .transpose()
    }

    /// All of a tenant's connections, first connected first (ties by provider, so the order is
    /// the same on every read).
    pub async fn list_connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, Error> {
        let mut connections: Vec<Connection> = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(tenant_pk(tenant)))
                .expression_attribute_values(":prefix", AttributeValue::S("CONN#".into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("Query", e).expect("Query has no condition"))?;
            for item in output.items.unwrap_or_default() {
                connections
                    .push(serde_dynamo::from_item(item).map_err(|e| malformed("connection", e))?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        connections.sort_by_key(|c| (c.first_connected(), c.provider.slug()));
        Ok(connections)
    }

    /// Writes a whole connection row. With `expected_version: None` the row must not exist;
    /// otherwise its stored version must match. Returns `false` when that condition failed.
    pub async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<bool, Error> {
        let item = self.connection_item(connection)?;
        let mut request = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        request = match expected_version {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        Ok(conditional("PutItem", request.send().await)?.is_some())
    }

    fn connection_item(
        &self,
        connection: &Connection,
    ) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(connection).map_err(|e| malformed("connection", e))?;
        item.extend(self.connection_key(&connection.tenant_id, connection.provider));
        // The store, not the caller, decides the refresh index shard.
        if connection.refresh_due_at.is_some() {
            let bucket = self.refresh_bucket_for(&connection.tenant_id, connection.provider);
            item.insert("refresh_bucket".into(), AttributeValue::S(bucket));
        }
        Ok(item)
    }

    /// Writes a whole connection row as [`Store::put_connection`] does, in one transaction with
    /// the tenant item's counter going from `tenant_version` to the next: the write happens only
    /// if no plan change and no other connection write came in since the caller read the tenant
    /// item (then its connections), so a plan check made on that read still holds. Returns
    /// `false` when either condition failed (or another transaction raced it): read again.
    pub async fn put_connection_in_slot(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
        tenant_version: u64,
    ) -> Result<bool, Error> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let item = self.connection_item(connection)?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        let mut counter = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.tenant_item_key(&connection.tenant_id)))
            .update_expression("SET version = if_not_exists(version, :zero) + :one")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        counter = if tenant_version == 0 {
            counter.condition_expression("attribute_not_exists(version)")
        } else {
            counter
                .condition_expression("version = :seen")
                .expression_attribute_values(":seen", AttributeValue::N(tenant_version.to_string()))
        };
        let built = |e: aws_sdk_dynamodb::error::BuildError| malformed("transaction", e);
        let result = self
            .ddb
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(counter.build().map_err(built)?)
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .put(put.build().map_err(built)?)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error),
                    Some("TransactionCanceledException") | Some("TransactionConflictException")
                ) =>
            {
                Ok(false)
            }
            Err(error) => match store_error("TransactWriteItems", error) {
                Some(error) => Err(error.into()),
                None => Ok(false),
            },
        }
    }

    /// Stores freshly refreshed credentials if nobody changed the row since `expected_version`.
    pub async fn update_tokens(
        &self,
        tenant: &TenantId,
        provider: Provider,
        expected_version: u64,
        credentials: &SealedCredentials,
        schedule: TokenSchedule,
    ) -> Result<bool, Error> {
        let mut request = self
            .update_connection(tenant, provider)
            .condition_expression("version = :expected")
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":creds",
                AttributeValue::S(credentials.as_base64().into()),
            );
        let (update, values) = schedule_update(
            "SET credentials = :creds, version = version + :one",
            schedule,
            schedule.bucket(self, tenant, provider),
            "",
        );
        request = values
            .into_iter()
            .fold(request.update_expression(update), |r, (k, v)| {
                r.expression_attribute_values(k, v)
            });
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Saves pipeline and stage mapping; `false` when the row changed since `expected_version`.
    pub async fn save_settings(
        &self,
        tenant: &TenantId,
        provider: Provider,
        expected_version: u64,
        settings: &ConnectionSettings,
        account: &BTreeMap<String, String>,
    ) -> Result<Option<Connection>, Error> {
        let value =
            serde_dynamo::to_attribute_value(settings).map_err(|e| malformed("settings", e))?;
        let account =
            serde_dynamo::to_attribute_value(account).map_err(|e| malformed("account", e))?;
        let result = self
            .update_connection(tenant, provider)
            .condition_expression("version = :expected")
            .update_expression(
                "SET settings = :settings, account = :account, version = version + :one",
            )
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_version.to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":settings", value)
            .expression_attribute_values(":account", account)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        conditional("UpdateItem", result)?
            .map(|output| connection_from(output.attributes))
            .transpose()
    }

    /// Marks a connection as needing the tenant to reconnect, with the reason and time,
    /// whatever tokens it holds (an operator's or a test's write; the refresh path uses
    /// [`Store::mark_needs_reauth_at_version`]).
    pub async fn mark_needs_reauth(
        &self,
        tenant: &TenantId,
        provider: Provider,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.write_needs_reauth(tenant, provider, None, reason, at)
            .await
            .map(|_| ())
    }

    /// Marks a connection `needs_reauth` only if it still holds the tokens of `version`, the
    /// ones that failed: a reconnect that replaced the row meanwhile keeps the new connection
    /// active. Returns `false` when the row changed (or is gone).
    pub async fn mark_needs_reauth_at_version(
        &self,
        tenant: &TenantId,
        provider: Provider,
        version: u64,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.write_needs_reauth(tenant, provider, Some(version), reason, at)
            .await
    }

    async fn write_needs_reauth(
        &self,
        tenant: &TenantId,
        provider: Provider,
        version: Option<u64>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let last_error = serde_dynamo::to_attribute_value(LastError {
            at,
            message: reason.to_string(),
        })
        .map_err(|e| malformed("last_error", e))?;
        let mut request = self
            .update_connection(tenant, provider)
            .update_expression(
                "SET #status = :status, last_error = :err, version = version + :one \
                 REMOVE refresh_due_at, refresh_bucket, refresh_lease_owner, refresh_lease_until, \
                 refresh_in_flight",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S("needs_reauth".into()))
            .expression_attribute_values(":err", last_error)
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        request = match version {
            Some(v) => request
                .condition_expression("version = :failed")
                .expression_attribute_values(":failed", AttributeValue::N(v.to_string())),
            None => request.condition_expression("attribute_exists(pk)"),
        };
        // A row deleted or replaced meanwhile has nothing left to mark.
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Records a successful push: `last_sync_at` now, `last_error` cleared. Does not bump the
    /// version: it changes nothing a token or settings writer depends on.
    pub async fn record_sync_success(
        &self,
        tenant: &TenantId,
        provider: Provider,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let request = self
            .update_connection(tenant, provider)
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET last_sync_at = :at REMOVE last_error")
            .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339()));
        ignore_missing(request.send().await.map(|_| ()), "UpdateItem")
    }

    /// Records a failed push in `last_error` (no version bump, as above).
    pub async fn record_sync_failure(
        &self,
        tenant: &TenantId,
        provider: Provider,
        at: DateTime<Utc>,
        message: &str,
    ) -> Result<(), Error> {
        let last_error = serde_dynamo::to_attribute_value(LastError {
            at,
            message: message.to_string(),
        })
        .map_err(|e| malformed("last_error", e))?;
        let request = self
            .update_connection(tenant, provider)
            .condition_expression("attribute_exists(pk)")
            .update_expression("SET last_error = :err")
            .expression_attribute_values(":err", last_error);
        ignore_missing(request.send().await.map(|_| ()), "UpdateItem")
    }

    /// Takes the connection's refresh lease for `owner` until `until`, if nobody holds an
    /// unexpired one. Returns the row as it stands with the lease taken, or `None` when busy.
    /// The lease does not bump the version: readers keep their tokens valid.
    pub async fn acquire_refresh_lease(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Connection>, Error> {
        let result = self
            .update_connection(tenant, provider)
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(refresh_lease_until) OR refresh_lease_until < :now)",
            )
            .update_expression("SET refresh_lease_owner = :owner, refresh_lease_until = :until")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":until", AttributeValue::N(until.timestamp().to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        conditional("UpdateItem", result)?
            .map(|output| connection_from(output.attributes))
            .transpose()
    }

    /// Stores refreshed credentials and releases the lease, if `owner` still holds it or, its
    /// lease having lapsed, nobody has written since (`version` unchanged). Returns `false`
    /// when another writer took over.
    pub async fn store_refreshed_tokens(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
        version_at_lease: u64,
        refreshed: RefreshedRow<'_>,
    ) -> Result<bool, Error> {
        let RefreshedRow {
            credentials,
            schedule,
            account,
        } = refreshed;
        let mut request = self
            .update_connection(tenant, provider)
            .condition_expression("refresh_lease_owner = :owner OR version = :version")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(
                ":version",
                AttributeValue::N(version_at_lease.to_string()),
            )
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":creds",
                AttributeValue::S(credentials.as_base64().into()),
            );
        let set = match account {
            Some(account) => {
                let value = serde_dynamo::to_attribute_value(account)
                    .map_err(|e| malformed("account", e))?;
                request = request.expression_attribute_values(":account", value);
                "SET credentials = :creds, account = :account, version = version + :one"
            }
            None => "SET credentials = :creds, version = version + :one",
        };
        let (update, values) = schedule_update(
            set,
            schedule,
            schedule.bucket(self, tenant, provider),
            "refresh_lease_owner, refresh_lease_until, refresh_in_flight, refresh_in_doubt",
        );
        request = values
            .into_iter()
            .fold(request.update_expression(update), |r, (k, v)| {
                r.expression_attribute_values(k, v)
            });
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Gives the refresh lease back without writing tokens (nothing to refresh, or it failed
    /// in a way that says the provider did not act), with any in-flight mark.
    pub async fn release_refresh_lease(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
    ) -> Result<(), Error> {
        let request = self
            .update_connection(tenant, provider)
            .condition_expression("refresh_lease_owner = :owner")
            .update_expression("REMOVE refresh_lease_owner, refresh_lease_until, refresh_in_flight")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()));
        ignore_missing(request.send().await.map(|_| ()), "UpdateItem")
    }

    /// Notes, under `owner`'s lease, that a rotating refresh token is about to be presented.
    /// Only a token write (which stores its answer) or a release (its outcome known) clears it.
    /// Returns `false` when the lease was lost meanwhile.
    pub async fn mark_refresh_in_flight(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
        mark: &RefreshMark,
    ) -> Result<bool, Error> {
        let value =
            serde_dynamo::to_attribute_value(mark).map_err(|e| malformed("refresh mark", e))?;
        let request = self
            .update_connection(tenant, provider)
            .condition_expression("refresh_lease_owner = :owner")
            .update_expression("SET refresh_in_flight = :mark")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":mark", value);
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Records that a rotating refresh may have been acted on without our knowing its answer,
    /// and gives the lease back in the same write, so that nobody presents the stored refresh
    /// token again. Only new tokens (a refresh's or a reconnect's) clear it, not a version bump
    /// (a settings save). Returns `false` when `owner`'s lease was lost meanwhile.
    pub async fn record_refresh_doubt(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
        doubt: &RefreshMark,
    ) -> Result<bool, Error> {
        let value =
            serde_dynamo::to_attribute_value(doubt).map_err(|e| malformed("refresh mark", e))?;
        let request = self
            .update_connection(tenant, provider)
            .condition_expression("refresh_lease_owner = :owner")
            .update_expression(
                "SET refresh_in_doubt = :doubt \
                 REMOVE refresh_in_flight, refresh_lease_owner, refresh_lease_until",
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":doubt", value);
        Ok(conditional("UpdateItem", request.send().await)?.is_some())
    }

    /// Deletes a connection row; `false` if there was none.
    pub async fn delete_connection(
        &self,
        tenant: &TenantId,
        provider: Provider,
    ) -> Result<bool, Error> {
        let result = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        Ok(conditional("DeleteItem", result)?.is_some())
    }
}

/// The row an UpdateItem returned (`ReturnValues: ALL_NEW`).
fn connection_from(
    attributes: Option<HashMap<String, AttributeValue>>,
) -> Result<Connection, Error> {
    serde_dynamo::from_item(attributes.unwrap_or_default())
        .map_err(|e| malformed("connection", e).into())
}

/// A conditional write whose row vanished meanwhile (a disconnect) has nothing left to do.
fn ignore_missing<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    result: Result<(), aws_sdk_dynamodb::error::SdkError<E, R>>,
    operation: &'static str,
) -> Result<(), Error> {
    conditional(operation, result).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_refreshable_token_is_due_when_it_expires() {
        let s = TokenSchedule::compute(Some(at(1_800)), true, at(0), None);
        assert_eq!(
            (s.token_expires_at, s.refresh_due_at),
            (Some(1_800), Some(1_800))
        );
    }

    #[test]
    fn nothing_is_due_without_a_refresh_token() {
        let s = TokenSchedule::compute(Some(at(1_800)), false, at(0), None);
        assert_eq!((s.token_expires_at, s.refresh_due_at), (Some(1_800), None));
        let key = TokenSchedule::compute(None, false, at(0), None);
        assert_eq!(key, TokenSchedule::default());
    }

    #[test]
    fn a_refresh_token_that_dies_of_idleness_is_kept_alive_well_before() {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        // Bitrix24: access tokens live an hour, refresh tokens 28 idle days. The access expiry
        // comes first; with no access expiry at all, three quarters of 28 days (21) does.
        let s = TokenSchedule::compute(Some(at(3_600)), true, at(0), Some(days(28)));
        assert_eq!(s.refresh_due_at, Some(3_600));
        let s = TokenSchedule::compute(None, true, at(0), Some(days(28)));
        assert_eq!(s.refresh_due_at, Some(21 * 86_400));
    }

    #[test]
    fn bitrix24_is_only_kept_alive_on_schedule_its_access_tokens_refresh_when_used() {
        let hour = Some(at(3_600));
        let bitrix = TokenSchedule::for_tokens(Provider::Bitrix24, hour, true, at(0));
        assert_eq!(bitrix.token_expires_at, Some(3_600));
        assert_eq!(bitrix.refresh_due_at, Some(21 * 86_400));
        let google = TokenSchedule::for_tokens(Provider::GoogleSheets, hour, true, at(0));
        assert_eq!(google.refresh_due_at, Some(3_600));
    }
}

/// The update expression for new tokens: `set` plus the schedule's attributes (set, or removed
/// when there is nothing to schedule) plus `also_remove`.
fn schedule_update(
    set: &str,
    schedule: TokenSchedule,
    bucket: Option<String>,
    also_remove: &str,
) -> (String, HashMap<String, AttributeValue>) {
    let mut sets = vec![set.to_string(), "refreshed_at = :refreshed".into()];
    let mut removes: Vec<String> = Vec::new();
    let mut values = HashMap::from([(
        ":refreshed".to_string(),
        AttributeValue::S(Utc::now().to_rfc3339()),
    )]);
    match schedule.token_expires_at {
        Some(at) => {
            sets.push("token_expires_at = :expires".into());
            values.insert(":expires".into(), AttributeValue::N(at.to_string()));
        }
        None => removes.push("token_expires_at".into()),
    }
    match (schedule.refresh_due_at, bucket) {
        (Some(due), Some(bucket)) => {
            sets.push("refresh_due_at = :due, refresh_bucket = :bucket".into());
            values.insert(":due".into(), AttributeValue::N(due.to_string()));
            values.insert(":bucket".into(), AttributeValue::S(bucket));
        }
        _ => removes.push("refresh_due_at, refresh_bucket".into()),
    }
    if !also_remove.is_empty() {
        removes.push(also_remove.to_string());
    }
    let mut expression = sets.join(", ");
    if !removes.is_empty() {
        expression.push_str(" REMOVE ");
        expression.push_str(&removes.join(", "));
    }
    (expression, values)
}

/// A connection id found in the refresh index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueConnection {
    pub tenant: TenantId,
    pub provider: Provider,
    pub refresh_due_at: i64,
}

/// A position in one partition of the refresh index: the keys of an index row, which is
/// what DynamoDB takes as `ExclusiveStartKey`. Identifiers only, nothing secret: it travels
/// in shard messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexCursor {
    pub refresh_due_at: i64,
    pub pk: String,
    pub sk: String,
}

/// One row of the refresh index: the connection, or why it could not be read (a tenant or
/// provider that does not parse), with the row's position either way.
#[derive(Clone, Debug)]
pub struct DueRow {
    pub due: Result<DueConnection, String>,
    pub cursor: IndexCursor,
}

/// One page of a refresh index partition, earliest due first.
#[derive(Clone, Debug, Default)]
pub struct DuePage {
    pub rows: Vec<DueRow>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<IndexCursor>,
}

impl Store {
    /// Up to `limit` rows of partition `bucket` due at or before `before`, after `after`:
    /// one Query with `Limit` and `ExclusiveStartKey`, so a caller pages through a shard
    /// without holding it in memory. A row that does not parse is returned as such, never
    /// as an error: one bad row must not stop the schedule for everyone.
    pub async fn due_page(
        &self,
        bucket: &str,
        before: DateTime<Utc>,
        after: Option<&IndexCursor>,
        limit: i32,
    ) -> Result<DuePage, Error> {
        let start = after.map(|c| {
            HashMap::from([
                (
                    "refresh_bucket".to_string(),
                    AttributeValue::S(bucket.to_string()),
                ),
                (
                    "refresh_due_at".to_string(),
                    AttributeValue::N(c.refresh_due_at.to_string()),
                ),
                ("pk".to_string(), AttributeValue::S(c.pk.clone())),
                ("sk".to_string(), AttributeValue::S(c.sk.clone())),
            ])
        });
        let output = self
            .ddb
            .query()
            .table_name(&self.table)
            .index_name(super::REFRESH_INDEX)
            .key_condition_expression("refresh_bucket = :bucket AND refresh_due_at <= :before")
            .expression_attribute_values(":bucket", AttributeValue::S(bucket.to_string()))
            .expression_attribute_values(
                ":before",
                AttributeValue::N(before.timestamp().to_string()),
            )
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error("Query", e).expect("Query has no condition"))?;
        let rows: Vec<DueRow> = output
            .items
            .unwrap_or_default()
            .iter()
            .map(due_row)
            .collect();
        // The last row's keys are the next start: the same as LastEvaluatedKey, and present
        // only when DynamoDB says there may be more.
        let next = output
            .last_evaluated_key
            .and_then(|_| rows.last().map(|r| r.cursor.clone()));
        Ok(DuePage { rows, next })
    }
}

fn due_row(item: &HashMap<String, AttributeValue>) -> DueRow {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        _ => None,
    };
    let pk = text("pk").unwrap_or_default();
    let sk = text("sk").unwrap_or_default();
    let at = text("refresh_due_at").and_then(|n| n.parse::<i64>().ok());
    let cursor = IndexCursor {
        refresh_due_at: at.unwrap_or_default(),
        pk: pk.clone(),
        sk: sk.clone(),
    };
    let tenant = pk
        .strip_prefix("TENANT#")
        .ok_or("key is not a tenant's")
        .and_then(|t| TenantId::parse(t).map_err(|_| "tenant id does not parse"));
    let provider = sk
        .strip_prefix("CONN#")
        .ok_or("key is not a connection's")
        .and_then(|p| p.parse::<Provider>().map_err(|_| "unknown provider"));
    let due = match (tenant, provider, at) {
        (Ok(tenant), Ok(provider), Some(refresh_due_at)) => Ok(DueConnection {
            tenant,
            provider,
            refresh_due_at,
        }),
        (Err(why), _, _) | (_, Err(why), _) => Err(why.to_string()),
        (_, _, None) => Err("refresh_due_at is missing".to_string()),
    };
    DueRow { due, cursor }
}
