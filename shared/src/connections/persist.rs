//! Writing a newly connected account's row, whether it came through OAuth or an API key.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::error::Error;
use crate::events::LifecycleEvent;
use crate::identity::TenantId;
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
}

/// Stores the new connection, replacing any previous one. Returns the replaced row.
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
    } = new;
    let obtained_at = Utc::now();
    let schedule = TokenSchedule::for_tokens(provider, expires_at, has_refresh_token, obtained_at);

    // A concurrent refresh may bump the row's version between our read and write: re-read and
    // write again, a bounded number of times.
    for _ in 0..3 {
        let existing = services.store.get_connection(tenant, provider).await?;
        let same_account = existing.as_ref().is_some_and(|e| e.account == account);
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
            connected_at: Utc::now(),
            last_sync_at: existing.as_ref().and_then(|e| e.last_sync_at),
            last_error: None,
            refresh_lease_owner: None,
            refresh_lease_until: None,
            refresh_in_flight: None,
            refresh_in_doubt: None,
        };
        if services
            .store
            .put_connection(&connection, existing.as_ref().map(|e| e.version))
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
    }
    Err(Error::Conflict(
        "the connection kept changing while it was being replaced".into(),
    ))
}
