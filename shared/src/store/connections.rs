//! Connection rows: one per tenant and provider.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{connection_sk, malformed, store_error, tenant_pk, Store, EXPIRY_BUCKET};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;
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

/// The pipeline leads go to, and which CRM stage each LeadRelay stage lands in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSettings {
    pub pipeline_id: String,
    pub stage_mapping: BTreeMap<LeadStage, String>,
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
    /// Access-token expiry, epoch seconds; also the sort key of the sparse expiry index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<i64>,
    /// Set with `token_expires_at` for refreshable connections only (sparse index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_bucket: Option<String>,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ConnectionSettings>,
    pub connected_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Who may refresh the tokens right now, and until when (see `acquire_refresh_lease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_lease_until: Option<i64>,
}

impl Connection {
    pub fn token_expiry(&self) -> Option<DateTime<Utc>> {
        self.token_expires_at
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    }
}

/// Expiry attributes for a token set: present only when there is something to refresh.
pub fn expiry_attributes(expires_at: Option<DateTime<Utc>>) -> (Option<i64>, Option<String>) {
    match expires_at {
        Some(at) => (Some(at.timestamp()), Some(EXPIRY_BUCKET.to_string())),
        None => (None, None),
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
            .map(|item| serde_dynamo::from_item(item).map_err(|e| malformed("connection", e).into()))
            .transpose()
    }

    /// All of a tenant's connections, oldest connection first.
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
                connections.push(serde_dynamo::from_item(item).map_err(|e| malformed("connection", e))?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        connections.sort_by_key(|c| c.connected_at);
        Ok(connections)
    }

    /// Writes a whole connection row. With `expected_version: None` the row must not exist;
    /// otherwise its stored version must match. Returns `false` when that condition failed.
    pub async fn put_connection(
        &self,
        connection: &Connection,
        expected_version: Option<u64>,
    ) -> Result<bool, Error> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(connection).map_err(|e| malformed("connection", e))?;
        item.extend(self.connection_key(&connection.tenant_id, connection.provider));
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

    /// Stores freshly refreshed credentials if nobody changed the row since `expected_version`.
    pub async fn update_tokens(
        &self,
        tenant: &TenantId,
        provider: Provider,
        expected_version: u64,
        credentials: &SealedCredentials,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, Error> {
        let (expires, bucket) = expiry_attributes(expires_at);
        let mut request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":creds", AttributeValue::S(credentials.as_base64().into()));
        request = match (expires, bucket) {
            (Some(at), Some(bucket)) => request
                .update_expression("SET credentials = :creds, version = version + :one, token_expires_at = :at, expiry_bucket = :bucket")
                .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
                .expression_attribute_values(":bucket", AttributeValue::S(bucket)),
            _ => request.update_expression(
                "SET credentials = :creds, version = version + :one REMOVE token_expires_at, expiry_bucket",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match store_error("UpdateItem", e) {
                None => Ok(false),
                Some(err) => Err(err.into()),
            },
        }
    }

    /// Saves pipeline and stage mapping; `false` when the row changed since `expected_version`.
    pub async fn save_settings(
        &self,
        tenant: &TenantId,
        provider: Provider,
        expected_version: u64,
        settings: &ConnectionSettings,
    ) -> Result<Option<Connection>, Error> {
        let value = serde_dynamo::to_attribute_value(settings).map_err(|e| malformed("settings", e))?;
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("version = :expected")
            .update_expression("SET settings = :settings, version = version + :one")
            .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":settings", value)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(
                serde_dynamo::from_item(output.attributes.unwrap_or_default())
                    .map_err(|e| malformed("connection", e))?,
            )),
            Err(e) => match store_error("UpdateItem", e) {
                None => Ok(None),
                Some(err) => Err(err.into()),
            },
        }
    }

    /// Marks a connection as needing the tenant to reconnect, with the reason and time.
    pub async fn mark_needs_reauth(
        &self,
        tenant: &TenantId,
        provider: Provider,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let last_error = serde_dynamo::to_attribute_value(LastError {
            at,
            message: reason.to_string(),
        })
        .map_err(|e| malformed("last_error", e))?;
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("attribute_exists(pk)")
            .update_expression(
                "SET #status = :status, last_error = :err, version = version + :one \
                 REMOVE token_expires_at, expiry_bucket, refresh_lease_owner, refresh_lease_until",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S("needs_reauth".into()))
            .expression_attribute_values(":err", last_error)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match store_error("UpdateItem", e) {
                None => Ok(()), // deleted meanwhile: nothing left to mark
                Some(err) => Err(err.into()),
            },
        }
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
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
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
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
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
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
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
        match result {
            Ok(output) => Ok(Some(
                serde_dynamo::from_item(output.attributes.unwrap_or_default())
                    .map_err(|e| malformed("connection", e))?,
            )),
            Err(e) => match store_error("UpdateItem", e) {
                None => Ok(None),
                Some(err) => Err(err.into()),
            },
        }
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
        credentials: &SealedCredentials,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, Error> {
        let (expires, bucket) = expiry_attributes(expires_at);
        let mut request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("refresh_lease_owner = :owner OR version = :version")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .expression_attribute_values(":version", AttributeValue::N(version_at_lease.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":creds", AttributeValue::S(credentials.as_base64().into()));
        request = match (expires, bucket) {
            (Some(at), Some(bucket)) => request
                .update_expression(
                    "SET credentials = :creds, version = version + :one, token_expires_at = :at, expiry_bucket = :bucket \
                     REMOVE refresh_lease_owner, refresh_lease_until",
                )
                .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
                .expression_attribute_values(":bucket", AttributeValue::S(bucket)),
            _ => request.update_expression(
                "SET credentials = :creds, version = version + :one \
                 REMOVE token_expires_at, expiry_bucket, refresh_lease_owner, refresh_lease_until",
            ),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match store_error("UpdateItem", e) {
                None => Ok(false),
                Some(err) => Err(err.into()),
            },
        }
    }

    /// Gives the refresh lease back without writing tokens (nothing to refresh, or it failed).
    pub async fn release_refresh_lease(
        &self,
        tenant: &TenantId,
        provider: Provider,
        owner: &str,
    ) -> Result<(), Error> {
        let request = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.connection_key(tenant, provider)))
            .condition_expression("refresh_lease_owner = :owner")
            .update_expression("REMOVE refresh_lease_owner, refresh_lease_until")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()));
        ignore_missing(request.send().await.map(|_| ()), "UpdateItem")
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
        match result {
            Ok(_) => Ok(true),
            Err(e) => match store_error("DeleteItem", e) {
                None => Ok(false),
                Some(err) => Err(err.into()),
            },
        }
    }
}

/// A conditional write whose row vanished meanwhile (a disconnect) has nothing left to do.
fn ignore_missing<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    result: Result<(), aws_sdk_dynamodb::error::SdkError<E, R>>,
    operation: &'static str,
) -> Result<(), Error> {
    match result {
        Ok(()) => Ok(()),
        Err(e) => match store_error(operation, e) {
            None => Ok(()),
            Some(err) => Err(err.into()),
        },
    }
}
