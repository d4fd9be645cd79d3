//! What a provider described of a tenant's account (Salesforce's objects, fields and picklists),
//! kept so that pushes do not describe it again on every lead. One item per tenant, provider
//! and key, under the tenant's partition; DynamoDB's TTL removes items nobody reads any more.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use super::{store_error, tenant_pk, Store};
use crate::identity::TenantId;
use crate::registry::Provider;

/// How long past its freshness an item stays in the table before DynamoDB's TTL removes it.
const EXPIRY_GRACE_SECONDS: i64 = 7 * 24 * 3600;

/// The schema cache of one tenant's connection to one provider.
#[derive(Clone)]
pub struct SchemaCache<'a> {
    store: &'a Store,
    tenant: &'a TenantId,
    provider: Provider,
    ttl: Duration,
    /// Written, never read: a connect describes the account afresh.
    write_only: bool,
}

impl<'a> SchemaCache<'a> {
    pub fn new(store: &'a Store, tenant: &'a TenantId, provider: Provider, ttl: Duration) -> Self {
        SchemaCache {
            store,
            tenant,
            provider,
            ttl,
            write_only: false,
        }
    }

    /// The same cache, never read from: what the caller describes replaces what it holds.
    pub fn refreshing(mut self) -> Self {
        self.write_only = true;
        self
    }

    fn key(&self, name: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(tenant_pk(self.tenant))),
            (
                "sk".to_string(),
                AttributeValue::S(format!("SCHEMA#{}#{name}", self.provider.slug())),
            ),
        ])
    }

    /// The stored text under `name` if it is younger than the TTL. A failed read is a miss:
    /// the caller describes again, which costs a call but loses nothing.
    pub async fn load(&self, name: &str) -> Option<String> {
        if self.write_only {
            return None;
        }
        let output = match self
            .store
            .ddb
            .get_item()
            .table_name(&self.store.table)
            .set_key(Some(self.key(name)))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let error = store_error("GetItem", e);
                tracing::warn!(error = ?error.map(|e| e.to_string()), "schema cache read failed; describing again");
                return None;
            }
        };
        let item = output.item?;
        let fetched_at = match item.get("fetched_at") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().ok()?,
            _ => return None,
        };
        if Utc::now().timestamp() - fetched_at >= self.ttl.as_secs() as i64 {
            return None;
        }
        match item.get("body") {
            Some(AttributeValue::S(body)) => Some(body.clone()),
            _ => None,
        }
    }

    /// Stores `body` under `name`. A failed write is logged: the next push describes again.
    pub async fn save(&self, name: &str, body: &str) {
        let now = Utc::now().timestamp();
        let mut item = self.key(name);
        item.insert("body".into(), AttributeValue::S(body.to_string()));
        item.insert("fetched_at".into(), AttributeValue::N(now.to_string()));
        item.insert(
            "ttl".into(),
            AttributeValue::N((now + self.ttl.as_secs() as i64 + EXPIRY_GRACE_SECONDS).to_string()),
        );
        if let Err(e) = self
            .store
            .ddb
            .put_item()
            .table_name(&self.store.table)
            .set_item(Some(item))
            .send()
            .await
        {
            let error = store_error("PutItem", e);
            tracing::warn!(error = ?error.map(|e| e.to_string()), "schema cache write failed");
        }
    }

    /// Drops `name`, so that the next use describes the account again (the provider said a
    /// field we knew of is gone).
    pub async fn forget(&self, name: &str) {
        if let Err(e) = self
            .store
            .ddb
            .delete_item()
            .table_name(&self.store.table)
            .set_key(Some(self.key(name)))
            .send()
            .await
        {
            let error = store_error("DeleteItem", e);
            tracing::warn!(error = ?error.map(|e| e.to_string()), "schema cache delete failed");
        }
    }
}
