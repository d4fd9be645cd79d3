//! What the setup page sees of a connection: status and settings, never a credential.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::registry::Provider;
use crate::store::{BackfillProgress, Connection, ConnectionSettings, ConnectionStatus, LastError};

#[derive(Debug, Serialize)]
pub struct ConnectionView {
    pub provider: Provider,
    pub status: ConnectionStatus,
    pub connected_at: DateTime<Utc>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub account: BTreeMap<String, String>,
    pub settings: Option<ConnectionSettings>,
    pub version: u64,
    /// Leads waiting for this connection to be reconnected (see `crate::push::release_parked`).
    pub parked_leads: usize,
    /// The tenant's plan no longer allows this connection (a downgrade): it is kept but not
    /// pushed to, and works again after an upgrade (see `Plan::allowed_destinations`).
    pub suspended_by_plan: bool,
    /// Historic leads pushed and failed through the backfill lane, and when one was last
    /// pushed; null when no backfill ran for this connection.
    pub backfill: Option<BackfillProgress>,
}

impl From<&Connection> for ConnectionView {
    fn from(c: &Connection) -> Self {
        ConnectionView {
            provider: c.provider,
            status: c.status,
            connected_at: c.connected_at,
            last_sync_at: c.last_sync_at,
            last_error: c.last_error.clone(),
            token_expires_at: c.token_expiry(),
            account: c.account.clone(),
            settings: c.settings.clone(),
            version: c.version,
            parked_leads: 0,
            suspended_by_plan: false,
            backfill: c.backfill(),
        }
    }
}

impl ConnectionView {
    /// The views of a tenant's connections with their parked-lead counts (one query) and
    /// whether the tenant's plan (`plan::effective`) suspends them. `connections` come first connected first (as
    /// `Store::list_connections` returns them): the order the keep rule goes by.
    pub(crate) async fn with_parked_counts(
        services: &crate::services::Services,
        caller: &crate::identity::Caller,
        connections: &[Connection],
    ) -> Result<Vec<ConnectionView>, crate::error::Error> {
        let tenant = &caller.tenant;
        let stored = services.store.get_tenant_plan(tenant).await?;
        let plan = caller.plan_claim().against(stored);
        let counts = services
            .store
            .count_parked_leads(tenant, Utc::now())
            .await?;
        let connected: Vec<Provider> = connections
            .iter()
            .filter(|c| c.status != ConnectionStatus::Disconnected)
            .map(|c| c.provider)
            .collect();
        let allowed = plan.allowed_destinations(&connected);
        Ok(connections
            .iter()
            .map(|c| ConnectionView {
                parked_leads: counts.get(&c.provider).copied().unwrap_or(0),
                suspended_by_plan: connected.contains(&c.provider)
                    && !allowed.contains(&c.provider),
                ..ConnectionView::from(c)
            })
            .collect())
    }
}
