//! Token refresh, scheduled and lazy, one refresh per connection at a time.
//!
//! The scheduled job ([`run_scheduled`]) finds what is due in the sparse `by-refresh-due` index
//! and refreshes it; the push and setup paths refresh lazily ([`refresh`]) when a token is
//! about to expire or was rejected. Both go through the same lease (see `lease.rs`).

pub mod deadline;
mod lease;

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tracing::Instrument;

pub use lease::{
    expiring, mark_needs_reauth, refresh, require_active, rotating_refresh_budget,
    rotating_refresh_budget_with, RefreshCause, Refreshed, DOUBT_REASON, LEASE_SECONDS, WAIT_LIMIT,
};

use crate::error::Error;
use crate::services::Services;
use crate::store::{ConnectionStatus, DueConnection};

/// What one scheduled run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq, Clone, Copy)]
pub struct RefreshSummary {
    /// New tokens obtained and stored.
    pub refreshed: u32,
    /// Nothing to do after all: someone refreshed first, or the connection is gone or inactive.
    pub skipped: u32,
    /// Refresh failed (transient: retried next run or by the push path; `invalid_grant`: marked
    /// `needs_reauth`).
    pub failed: u32,
}

enum Outcome {
    Refreshed,
    Skipped,
    Failed,
}

/// Refreshes every connection due before `now + lookahead`, a bounded number at a time; one
/// failure never stops the others.
pub async fn run_scheduled(
    services: &Services,
    now: DateTime<Utc>,
) -> Result<RefreshSummary, Error> {
    let settings = &services.config.refresh;
    let horizon = now
        + chrono::Duration::from_std(settings.lookahead).unwrap_or(chrono::Duration::minutes(15));
    let started = Instant::now();
    let due = services.store.connections_due_for_refresh(horizon).await?;
    tracing::info!(due = due.len(), horizon = %horizon, "scheduled refresh starting");
    let outcomes: Vec<Outcome> = stream::iter(due)
        .map(|d| {
            let span = tracing::info_span!("scheduled_refresh", tenant = %d.tenant, provider = %d.provider);
            refresh_due(services, d, horizon).instrument(span)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let mut summary = RefreshSummary::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Refreshed => summary.refreshed += 1,
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Failed => summary.failed += 1,
        }
    }
    tracing::info!(
        refreshed = summary.refreshed,
        skipped = summary.skipped,
        failed = summary.failed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scheduled refresh done"
    );
    Ok(summary)
}

async fn refresh_due(services: &Services, due: DueConnection, horizon: DateTime<Utc>) -> Outcome {
    let connection = match services
        .store
        .get_connection(&due.tenant, due.provider)
        .await
    {
        Ok(Some(c)) if c.status == ConnectionStatus::Active => c,
        Ok(_) => return Outcome::Skipped,
        Err(error) => {
            tracing::warn!(error = %error, "could not load a due connection");
            return Outcome::Failed;
        }
    };
    match refresh(services, connection, RefreshCause::DueBefore(horizon)).await {
        Ok(Refreshed { minted: true, .. }) => Outcome::Refreshed,
        Ok(Refreshed { minted: false, .. }) => Outcome::Skipped,
        Err(Error::Busy(reason)) => {
            tracing::info!(reason = %reason, "another refresh holds the lease");
            Outcome::Skipped
        }
        Err(error) => {
            tracing::warn!(error = %error, retryable = error.is_retryable(), "scheduled refresh failed");
            Outcome::Failed
        }
    }
}
