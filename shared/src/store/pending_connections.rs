//! Pending connections: tokens from a consent that the user who started it has not confirmed
//! yet. One row per completion code, stored under the code's hash (the code itself is never
//! stored), sealed like a connection under `{tenant_id, provider}`, short-lived. Taking one is
//! a conditional delete: exactly one caller gets it, so a code completes at most once.
//!
//! The rows sit in the refresh index under their own partition (`PENDING`), which the refresh
//! schedule never reads, so the sweep finds the expired ones without a scan.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::{malformed, store_error, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;
use crate::vault::SealedCredentials;

/// The refresh index partition of pending connections.
pub const PENDING_BUCKET: &str = "PENDING";
/// How long an expired row outlives its expiry before DynamoDB's TTL may delete it; the sweep
/// takes (and revokes) it long before.
const TTL_GRACE_SECONDS: i64 = 24 * 3600;

/// A consent's tokens, waiting for their user.
#[derive(Clone, Debug)]
pub struct PendingConnection {
    pub tenant: TenantId,
    /// The JWT `sub` of the user who started the authorization.
    pub subject: String,
    pub provider: Provider,
    pub sealed: SealedCredentials,
    pub has_refresh_token: bool,
    pub account: BTreeMap<String, String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}

fn key(code_key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S(format!("PENDING#{code_key}")),
        ),
        ("sk".to_string(), AttributeValue::S("PENDING".into())),
    ])
}

impl Store {
    pub async fn put_pending_connection(
        &self,
        code_key: &str,
        pending: &PendingConnection,
    ) -> Result<(), Error> {
        let mut item = key(code_key);
        let account = serde_json::to_string(&pending.account)
            .map_err(|e| malformed("pending connection", e))?;
        let expires = pending.expires_at.timestamp();
        item.extend([
            (
                "tenant_id".to_string(),
                AttributeValue::S(pending.tenant.to_string()),
            ),
            (
                "subject".to_string(),
                AttributeValue::S(pending.subject.clone()),
            ),
            (
                "provider".to_string(),
                AttributeValue::S(pending.provider.slug().into()),
            ),
            (
                "credentials".to_string(),
                AttributeValue::S(pending.sealed.as_base64().into()),
            ),
            (
                "has_refresh_token".to_string(),
                AttributeValue::Bool(pending.has_refresh_token),
            ),
            ("account".to_string(), AttributeValue::S(account)),
            (
                "expires_at".to_string(),
                AttributeValue::N(expires.to_string()),
            ),
            (
                "refresh_bucket".to_string(),
                AttributeValue::S(PENDING_BUCKET.into()),
            ),
            (
                "refresh_due_at".to_string(),
                AttributeValue::N(expires.to_string()),
            ),
            (
                "ttl".to_string(),
                AttributeValue::N((expires + TTL_GRACE_SECONDS).to_string()),
            ),
        ]);
        if let Some(at) = pending.token_expires_at {
            item.insert(
                "token_expires_at".into(),
                AttributeValue::N(at.timestamp().to_string()),
            );
        }
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| {
                store_error("PutItem", e)
                    .unwrap_or_else(|| malformed("pending connection", "code collision"))
            })?;
        Ok(())
    }

    /// Takes the pending connection stored under `code_key`: deletes it and returns what it
    /// held, or `None` when there is none (unknown, already taken, or swept).
    pub async fn take_pending_connection(
        &self,
        code_key: &str,
    ) -> Result<Option<PendingConnection>, Error> {
        let result = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(code_key)))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(e) => {
                return match store_error("DeleteItem", e) {
                    Some(err) => Err(err.into()),
                    None => Ok(None),
                }
            }
        };
        parse(&old).map(Some)
    }

    /// The code keys of pending connections that expired at or before `before`, up to `limit`.
    pub async fn expired_pending_connections(
        &self,
        before: DateTime<Utc>,
        limit: i32,
    ) -> Result<Vec<String>, Error> {
        // The same index walk as the refresh schedule's, on the pending connections' bucket.
        let page = self.due_page(PENDING_BUCKET, before, None, limit).await?;
        Ok(page
            .rows
            .iter()
            .filter_map(|row| row.cursor.pk.strip_prefix("PENDING#").map(str::to_string))
            .collect())
    }
}

fn parse(item: &HashMap<String, AttributeValue>) -> Result<PendingConnection, Error> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        Some(AttributeValue::N(n)) => Some(n.clone()),
        _ => None,
    };
    let time = |name: &str| {
        text(name)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
    };
    let bad = |field: &'static str| Error::from(malformed("pending connection", field));
    Ok(PendingConnection {
        tenant: TenantId::parse(&text("tenant_id").unwrap_or_default())
            .map_err(|_| bad("tenant_id"))?,
        subject: text("subject").ok_or_else(|| bad("subject"))?,
        provider: text("provider")
            .and_then(|p| p.parse::<Provider>().ok())
            .ok_or_else(|| bad("provider"))?,
        sealed: SealedCredentials::from_base64(
            text("credentials").ok_or_else(|| bad("credentials"))?,
        ),
        has_refresh_token: matches!(
            item.get("has_refresh_token"),
            Some(AttributeValue::Bool(true))
        ),
        account: text("account")
            .and_then(|a| serde_json::from_str(&a).ok())
            .ok_or_else(|| bad("account"))?,
        token_expires_at: time("token_expires_at"),
        expires_at: time("expires_at").ok_or_else(|| bad("expires_at"))?,
    })
}
