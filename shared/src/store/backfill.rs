//! A backfill's progress per connection: how many historic leads were pushed and failed, and
//! when the last one was pushed. Kept on the connection item itself (`backfill_pushed`,
//! `backfill_failed`, `backfill_last_pushed_at`), so `GET /connections` reads it with the
//! connection and nothing else.
//!
//! Counters are added to with `ADD`, so concurrent lead-push invocations never lose each
//! other's counts, and the write does not bump the connection's `version`: like
//! `record_sync_success`, it changes nothing a token or settings writer depends on. A
//! reconnect (a whole-row write) carries the counts over from the row it read; counts added
//! between that read and its write are lost, which only understates the progress shown.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{conditional, connection_sk, tenant_pk, Connection, Store};
use crate::error::Error;
use crate::identity::TenantId;
use crate::registry::Provider;

/// What `GET /connections` shows of a connection's backfill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BackfillProgress {
    pub pushed: u64,
    pub failed: u64,
    /// When a backfill lead was last pushed; `None` while every one failed.
    pub last_pushed_at: Option<DateTime<Utc>>,
}

impl Connection {
    /// The backfill's progress, if a backfill lead was ever pushed or failed here.
    pub fn backfill(&self) -> Option<BackfillProgress> {
        if self.backfill_pushed.is_none()
            && self.backfill_failed.is_none()
            && self.backfill_last_pushed_at.is_none()
        {
            return None;
        }
        Some(BackfillProgress {
            pushed: self.backfill_pushed.unwrap_or(0),
            failed: self.backfill_failed.unwrap_or(0),
            last_pushed_at: self.backfill_last_pushed_at,
        })
    }
}

impl Store {
    /// Adds `pushed` and `failed` backfill leads to the connection's counts and, when some
    /// were pushed, sets `last_pushed_at` to `at`. One UpdateItem; no version bump. A
    /// connection that no longer exists has nothing to record (`Ok`).
    pub async fn record_backfill_progress(
        &self,
        tenant: &TenantId,
        provider: Provider,
        pushed: u32,
        failed: u32,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        if pushed == 0 && failed == 0 {
            return Ok(());
        }
        let mut values = HashMap::from([
            (":pushed".to_string(), AttributeValue::N(pushed.to_string())),
            (":failed".to_string(), AttributeValue::N(failed.to_string())),
        ]);
        let mut expression = "ADD backfill_pushed :pushed, backfill_failed :failed".to_string();
        if pushed > 0 {
            expression.push_str(" SET backfill_last_pushed_at = :at");
            values.insert(":at".into(), AttributeValue::S(at.to_rfc3339()));
        }
        let result = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(tenant_pk(tenant)))
            .key("sk", AttributeValue::S(connection_sk(provider)))
            .condition_expression("attribute_exists(pk)")
            .update_expression(expression)
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        if conditional("UpdateItem", result)?.is_none() {
            tracing::info!(provider = %provider, "backfill progress not recorded: the connection is gone");
        }
        Ok(())
    }
}
