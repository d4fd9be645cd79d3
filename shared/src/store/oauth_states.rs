//! Pending authorizations: one row per OAuth `state`, stored under the state's hash, single use,
//! with a TTL. Consuming a state leaves a tombstone (until the TTL removes it) so that a replay
//! is told apart from a forgery.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{malformed, store_error, Store};
use crate::error::{Error, StateError};
use crate::identity::TenantId;
use crate::registry::Provider;

/// What the callback needs to finish a connect. The tenant comes from here, never from the
/// callback's query string.
pub struct PendingAuthorization {
    pub tenant: TenantId,
    /// The JWT `sub` of the user who started it: only that user can complete the connect.
    pub subject: String,
    pub provider: Provider,
    pub pkce_verifier: Option<SecretString>,
    pub expires_at: DateTime<Utc>,
    /// The login host chosen on the setup page (a Salesforce sandbox or My Domain), already
    /// validated; the code is exchanged there.
    pub login_origin: Option<String>,
}

/// How long a consumed state's tombstone outlives its expiry.
const TOMBSTONE_SECONDS: i64 = 24 * 3600;

fn key(state_key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "pk".to_string(),
            AttributeValue::S(format!("STATE#{state_key}")),
        ),
        ("sk".to_string(), AttributeValue::S("STATE".into())),
    ])
}

impl Store {
    pub async fn put_pending_authorization(
        &self,
        state_key: &str,
        pending: &PendingAuthorization,
    ) -> Result<(), Error> {
        let mut item = key(state_key);
        item.insert(
            "tenant_id".into(),
            AttributeValue::S(pending.tenant.to_string()),
        );
        item.insert("subject".into(), AttributeValue::S(pending.subject.clone()));
        item.insert(
            "provider".into(),
            AttributeValue::S(pending.provider.slug().into()),
        );
        item.insert(
            "expires_at".into(),
            AttributeValue::N(pending.expires_at.timestamp().to_string()),
        );
        item.insert(
            "ttl".into(),
            AttributeValue::N((pending.expires_at.timestamp() + TOMBSTONE_SECONDS).to_string()),
        );
        if let Some(origin) = &pending.login_origin {
            item.insert("login_origin".into(), AttributeValue::S(origin.clone()));
        }
        if let Some(verifier) = &pending.pkce_verifier {
            item.insert(
                "pkce_verifier".into(),
                AttributeValue::S(verifier.expose_secret().to_string()),
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
                    .unwrap_or_else(|| malformed("oauth state", "state collision"))
            })?;
        Ok(())
    }

    /// Consumes a state atomically: exactly one caller gets the pending authorization; the
    /// verifier is removed in the same write. Expired states are consumed too, then refused.
    pub async fn consume_pending_authorization(
        &self,
        state_key: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingAuthorization, Error> {
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(state_key)))
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(consumed_at)")
            .update_expression("SET consumed_at = :now REMOVE pkce_verifier")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(output) => output.attributes.unwrap_or_default(),
            Err(e) => {
                if let Some(err) = store_error("UpdateItem", e) {
                    return Err(err.into());
                }
                let existing = self
                    .ddb
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(key(state_key)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| store_error("GetItem", e).expect("GetItem has no condition"))?;
                return Err(match existing.item {
                    Some(_) => StateError::AlreadyUsed.into(),
                    None => StateError::Unknown.into(),
                });
            }
        };
        let text = |name: &str| match old.get(name) {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            Some(AttributeValue::N(n)) => Some(n.clone()),
            _ => None,
        };
        let tenant = TenantId::parse(&text("tenant_id").unwrap_or_default())
            .map_err(|_| malformed("oauth state", "tenant_id"))?;
        let subject = text("subject").ok_or_else(|| malformed("oauth state", "subject"))?;
        let provider = text("provider")
            .and_then(|p| p.parse::<Provider>().ok())
            .ok_or_else(|| malformed("oauth state", "provider"))?;
        let expires_at = text("expires_at")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
            .ok_or_else(|| malformed("oauth state", "expires_at"))?;
        if expires_at <= now {
            return Err(StateError::Expired.into());
        }
        Ok(PendingAuthorization {
            tenant,
            subject,
            provider,
            pkce_verifier: text("pkce_verifier").map(SecretString::from),
            expires_at,
            login_origin: text("login_origin"),
        })
    }
}
