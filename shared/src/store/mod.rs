//! DynamoDB, single table. Keys:
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | connection | `TENANT#<tenant>` | `CONN#<provider>` |
//! | OAuth state | `STATE#<sha256 of the state>` | `STATE` |
//! | pending connection | `PENDING#<sha256 of the completion code>` | `PENDING` |
//! | lead mapping | `TENANT#<tenant>` | `LEAD#<lead id>#<provider>` |
//! | described schema | `TENANT#<tenant>` | `SCHEMA#<provider>#<org>#<name>` |
//! | tenant plan and write counter | `TENANT#<tenant>` | `PLAN` |
//! | shared rate limit of a CRM account (`crate::ratelimit`) | `RATE#<provider>#<account>` | `RATE` |
//!
//! Every access to tenant data is keyed by the tenant, and every write that can race is
//! conditional (versions, `attribute_not_exists`).

mod backfill;
mod connections;
mod lead_mappings;
mod oauth_states;
mod parked_leads;
mod pending_connections;
mod schema_cache;
mod tenant_plans;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use backfill::BackfillProgress;
pub use connections::{
    Connection, ConnectionSettings, ConnectionStatus, ContactProperty, DueConnection, DuePage,
    DueRow, IndexCursor, LastError, RefreshMark, RefreshedRow, TokenSchedule,
};
pub use lead_mappings::{
    mapping_account, ClaimRequest, DeadLettered, LeadClaim, LeadKey, LeadMapping, PushFailure,
};
pub use oauth_states::PendingAuthorization;
pub use parked_leads::ParkedLead;
pub use pending_connections::{PendingConnection, PENDING_BUCKET};
pub use schema_cache::SchemaCache;
pub use tenant_plans::TenantRecord;

use crate::error::StoreError;
use crate::identity::TenantId;
use crate::registry::Provider;

/// Name of the sparse index on `refresh_due_at` (see `infra/template.yaml`).
pub const REFRESH_INDEX: &str = "by-refresh-due";
/// Prefix of the refresh index's partition values: a connection with something to refresh
/// carries `OAUTH#<shard>` (see [`Store::refresh_bucket_for`]). Rows written before the index
/// was sharded carry `OAUTH` itself, the legacy bucket, which is still read (see
/// [`Store::refresh_buckets`]) until every such row has been rewritten.
pub const REFRESH_BUCKET: &str = "OAUTH";
/// Shards of the refresh index unless configured (`REFRESH_SHARDS`): a DynamoDB partition
/// takes ~1,000 writes/s, and each shard is one SQS message (one walker) per scheduled run.
pub const DEFAULT_REFRESH_SHARDS: u32 = 16;

#[derive(Clone)]
pub struct Store {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    refresh_shards: u32,
}

impl Store {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Store {
            ddb,
            table: table.into(),
            refresh_shards: DEFAULT_REFRESH_SHARDS,
        }
    }

    /// The refresh index's shard count (`REFRESH_SHARDS`). It may grow (rows keep their shard
    /// and every shard below the count is read) but never shrink: rows in a dropped shard
    /// would not be found until their next write.
    pub fn with_refresh_shards(mut self, shards: u32) -> Self {
        self.refresh_shards = shards.max(1);
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

pub(crate) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub(crate) fn connection_sk(provider: Provider) -> String {
    format!("CONN#{}", provider.slug())
}

/// A failed DynamoDB call, or `None` when it failed only because its condition did not hold.
pub(crate) fn store_error<E: ProvideErrorMetadata, R>(
    operation: &'static str,
    error: SdkError<E, R>,
) -> Option<StoreError> {
    if error.code() == Some("ConditionalCheckFailedException") {
        return None;
    }
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some("ProvisionedThroughputExceededException")
                | Some("ThrottlingException")
                | Some("RequestLimitExceeded")
                | Some("InternalServerError")
                | Some("TransactionConflictException")
        ),
        _ => false,
    };
    Some(StoreError::Aws {
        operation,
        code: error.code().unwrap_or("dispatch").to_string(),
        message: error.message().unwrap_or("").chars().take(200).collect(),
        retryable,
    })
}

/// A conditional write's outcome: `Some(output)` when written, `None` when its condition did
/// not hold; any other failure is an error.
pub(crate) fn conditional<T, E: ProvideErrorMetadata, R>(
    operation: &'static str,
    result: Result<T, SdkError<E, R>>,
) -> Result<Option<T>, crate::error::Error> {
    match result {
        Ok(output) => Ok(Some(output)),
        Err(e) => match store_error(operation, e) {
            None => Ok(None),
            Some(err) => Err(err.into()),
        },
    }
}

pub(crate) fn malformed(what: &'static str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Malformed {
        what,
        detail: error.to_string(),
    }
}
