//! Pushing one lead to one destination, exactly once in effect.
//!
//! The lead mapping is claimed first (one conditional write), so a second delivery of the same
//! message backs off instead of creating records twice; each CRM record id is saved as soon as
//! the push returns, and an identical replay is recognised by its digest and costs no CRM call.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::connections::open_connection;
use crate::error::Error;
use crate::lead::LeadMessage;
use crate::provider::PushProgress;
use crate::services::Services;
use crate::store::{Connection, LeadClaim, LeadMapping};

/// A claim outlives one lead-push invocation (the function's timeout), so a live holder never
/// loses it; a crashed holder's claim lapses before SQS redelivers the message.
const CLAIM_SECONDS: i64 = 180;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationOutcome {
    /// The CRM records the lead is now in.
    Pushed { records: BTreeMap<String, String> },
    /// The same content was pushed before: nothing was sent.
    AlreadyPushed,
}

/// Pushes to the destination of `connection`, a row of the lead's tenant read just before.
pub(super) async fn push(
    services: &Services,
    message: &LeadMessage,
    connection: Connection,
) -> Result<DestinationOutcome, Error> {
    let provider = connection.provider;
    let tenant = &message.tenant_id;
    let lead = &message.lead;
    let digest = lead.digest();

    // Fast path: an identical replay needs neither a claim nor a CRM call.
    if let Some(existing) = services
        .store
        .get_lead_mapping(tenant, &lead.id, provider)
        .await?
    {
        if existing.pushed_digest.as_deref() == Some(digest.as_str())
            && existing.lease_owner.is_none()
        {
            tracing::info!("identical lead already pushed; skipping");
            return Ok(DestinationOutcome::AlreadyPushed);
        }
    }

    let owner = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let mut mapping = match services
        .store
        .claim_lead(
            tenant,
            &lead.id,
            provider,
            &owner,
            now,
            now + chrono::Duration::seconds(CLAIM_SECONDS),
        )
        .await?
    {
        LeadClaim::Claimed(mapping) => mapping,
        LeadClaim::Busy { until } => {
            return Err(Error::Busy(format!(
                "another delivery is pushing this lead to {provider} (claim until {until})"
            )))
        }
    };
    if mapping.pushed_digest.as_deref() == Some(digest.as_str()) {
        release(services, &mut mapping, &owner).await?;
        return Ok(DestinationOutcome::AlreadyPushed);
    }

    let mut progress = PushProgress {
        records: mapping.records.clone(),
        stage: mapping.stage.clone(),
        summary_digest: mapping.summary_digest.clone(),
    };
    let result = push_with_session(services, message, connection, &mut progress).await;

    mapping.records = progress.records.clone();
    mapping.stage = progress.stage.clone();
    mapping.summary_digest = progress.summary_digest.clone();
    if result.is_ok() {
        mapping.pushed_digest = Some(digest);
    }
    // Saved whether the push succeeded or not: records created before a failure must be reused
    // by the retry, not created again.
    release(services, &mut mapping, &owner).await?;

    let now = Utc::now();
    let recorded = match &result {
        Ok(()) => {
            services
                .store
                .record_sync_success(tenant, provider, now)
                .await
        }
        Err(error) => {
            services
                .store
                .record_sync_failure(tenant, provider, now, &error.to_string())
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not record the sync status");
    }
    result.map(|()| DestinationOutcome::Pushed {
        records: progress.records,
    })
}

/// Saves the mapping and gives the claim up in the same write.
async fn release(services: &Services, mapping: &mut LeadMapping, owner: &str) -> Result<(), Error> {
    mapping.lease_owner = None;
    mapping.lease_until = None;
    mapping.version += 1;
    mapping.updated_at = Some(Utc::now());
    if services.store.save_claimed_lead(mapping, owner).await? {
        Ok(())
    } else {
        Err(Error::Busy(
            "the claim on this lead lapsed before the push was recorded".into(),
        ))
    }
}

/// Opens the connection and pushes, through the connection's refresh-once-on-401 call.
async fn push_with_session(
    services: &Services,
    message: &LeadMessage,
    connection: Connection,
    progress: &mut PushProgress,
) -> Result<(), Error> {
    let mut open = open_connection(services, connection).await?;
    let implementation = open.implementation;
    let settings = open.connection.settings.clone();
    // Borrowed inputs travel in the call's state, which outlives each attempt.
    let mut state = (progress, &message.lead, settings.as_ref());
    open.call(&mut state, |session, (progress, lead, settings)| {
        implementation.push_lead(session, lead, *settings, progress)
    })
    .await
}
