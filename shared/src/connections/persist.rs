//! Writing a newly connected account's row, whether it came through OAuth or an API key.
//!
//! The plan is checked here again, against the tenant's other connections as they stand, and
//! the row is written in one transaction with the tenant item's counter (see
//! `Store::put_connection_in_slot`): of two concurrent connects of a Pro tenant's CRMs exactly
//! one is stored; the other is refused `plan_required` and its new tokens are revoked.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::error::Error;
use crate::events::LifecycleEvent;
use crate::identity::TenantId;
use crate::plan::PlanClaim;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus, TokenSchedule};
use crate::vault::SealedCredentials;

pub(super) struct NewConnection<'a> {
    pub tenant: &'a TenantId,
    pub provider: Provider,
    pub sealed: SealedCredentials,
    pub has_refresh_token: bool,
    pub account: BTreeMap<String, String>,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    /// The signed-in caller's plan (its JWT claim, as of its `iat`), if the flow has one. The
    /// plan billing stored wins over it when it changed later (`plan::effective`); with
    /// neither, the plan cannot be re-checked here (a flow without a signed-in user, for a
    /// tenant billing never reported).
    pub claimed_plan: Option<PlanClaim>,
}

/// Stores the new connection, replacing any previous one, if the tenant's plan allows it next
/// to its other connections. Returns the replaced row. A refusal (`Error::PlanRequired`) has
/// revoked the new tokens at the provider: nobody keeps them.
pub(super) async fn store_connection(
    services: &Services,
    new: NewConnection<'_>,
) -> Result<Option<Connection>, Error> {
    let NewConnection {
        tenant,
        provider,
        sealed,
        has_refresh_token,
        account,
        expires_at,
        claimed_plan,
    } = new;
    let obtained_at = Utc::now();
    let schedule = TokenSchedule::for_tokens(provider, expires_at, has_refresh_token, obtained_at);

    // A concurrent refresh may bump the row's version, and a concurrent connect or plan change
    // the tenant item's, between our reads and write: read both again and write again, a
    // bounded number of times.
    let mut last = None;
    for _ in 0..3 {
        // The tenant item first: a connect committed after this read fails our transaction,
        // one committed before it is in the (consistent) listing below.
        let record = services.store.get_tenant_record(tenant).await?;
        let connections = services.store.list_connections(tenant).await?;
        let existing = connections.iter().find(|c| c.provider == provider).cloned();
        let same_account = existing.as_ref().is_some_and(|e| e.account == account);
        let now = Utc::now();
        let connection = Connection {
            tenant_id: tenant.clone(),
            provider,
            status: ConnectionStatus::Active,
            credentials: sealed.clone(),
            account: account.clone(),
            token_expires_at: schedule.token_expires_at,
            refresh_due_at: schedule.refresh_due_at,
            refresh_bucket: schedule
                .refresh_due_at
                .map(|_| crate::store::REFRESH_BUCKET.to_string()),
            refreshed_at: Some(obtained_at),
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            // Pipelines belong to the account: keep the mapping only when it is the same one.
            settings: existing
                .as_ref()
                .filter(|_| same_account)
                .and_then(|e| e.settings.clone()),
            connected_at: now,
            // Kept across reconnects: it decides which CRM a downgraded tenant keeps.
            first_connected_at: Some(existing.as_ref().map_or(now, |e| e.first_connected())),
            last_sync_at: existing.as_ref().and_then(|e| e.last_sync_at),
            // A reconnect keeps the backfill's counts (see `Store::record_backfill_progress`).
            backfill_pushed: existing.as_ref().and_then(|e| e.backfill_pushed),
            backfill_failed: existing.as_ref().and_then(|e| e.backfill_failed),
            backfill_last_pushed_at: existing.as_ref().and_then(|e| e.backfill_last_pushed_at),
            last_error: None,
            refresh_lease_owner: None,
            refresh_lease_until: None,
            refresh_in_flight: None,
            refresh_in_doubt: None,
        };
        let plan = match claimed_plan {
            Some(claimed) => Some(claimed.against(record.plan)),
            None => record.plan.map(|stored| stored.plan),
        };
        if let Some(plan) = plan {
            let others: Vec<Provider> = connections
                .iter()
                .filter(|c| c.status != ConnectionStatus::Disconnected)
                .map(|c| c.provider)
                .collect();
            if let Err(refusal) = plan.check_connect(provider, &others) {
                tracing::info!(plan = %plan, "connect refused at completion: the plan does not allow it");
                revoke_unkept(services, &connection, existing.as_ref()).await;
                return Err(refusal.into());
            }
        }
        if services
            .store
            .put_connection_in_slot(
                &connection,
                existing.as_ref().map(|e| e.version),
                record.version,
            )
            .await?
        {
            tracing::info!(
                ciphertext_bytes = sealed.len(),
                reconnect = existing.is_some(),
                "connection stored"
            );
            services
                .events
                .publish(LifecycleEvent::ConnectionConnected {
                    tenant: tenant.as_str().to_string(),
                    provider,
                    reconnect: existing.is_some(),
                    account: connection.account,
                })
                .await;
            return Ok(existing);
        }
        last = Some((connection, existing));
    }
    // Every attempt's transaction was cancelled: nothing of ours was written.
    if let Some((connection, existing)) = last {
        revoke_unkept(services, &connection, existing.as_ref()).await;
    }
    Err(Error::Conflict(
        "the connection kept changing while it was being replaced".into(),
    ))
}

/// New tokens that will not be stored are revoked at the provider rather than dropped live;
/// not when the provider handed back the refresh token the stored row still holds.
async fn revoke_unkept(services: &Services, unkept: &Connection, stored: Option<&Connection>) {
    let still_in_use = match stored {
        Some(stored) => services
            .vault
            .open(&stored.tenant_id, stored.provider, &stored.credentials)
            .await
            .ok()
            .and_then(|c| c.refresh_token),
        None => None,
    };
    let revoked = super::revoke_stored_grant(services, unkept, still_in_use.as_ref()).await;
    tracing::info!(revoked, "the refused connection's tokens were handled");
}
