//! Pushing one lead to one destination, exactly once in effect.
//!
//! The lead mapping of the connection's CRM account is claimed first (one conditional write), so
//! a second delivery of the same message backs off instead of creating records twice. Every CRM
//! record id, and every intent to create one, is written to the mapping as the push goes (see
//! [`crate::provider::PushProgress`]), so a push killed after any CRM call resumes on the next
//! delivery. An identical replay is recognised by its digest and costs no CRM call; a message
//! older than the newest one started for the lead is stale and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::connections::open_connection;
use crate::error::Error;
use crate::lead::LeadMessage;
use crate::provider::{ProgressJournal, ProgressSnapshot, PushProgress};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, LeadClaim, LeadKey, LeadMapping, PushFailure, Store};

/// A claim outlives one lead-push invocation (the function's timeout), so a live holder never
/// loses it; a crashed holder's claim lapses before SQS redelivers the message.
const CLAIM_SECONDS: i64 = 180;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationOutcome {
    /// The CRM records the lead is now in.
    Pushed { records: BTreeMap<String, String> },
    /// The same content was pushed before: nothing was sent.
    AlreadyPushed,
    /// A newer message of this lead was applied (or started) before: nothing was sent.
    Stale { newest_at: DateTime<Utc> },
}

/// Whether a message is older than the newest one started for its lead. Messages are ordered
/// by `occurred_at`; of two with the same instant the later delivery applies (the lead pipeline
/// stamps every version of a lead with its own time, so a tie is the same version sent again).
fn is_stale(mapping: &LeadMapping, at: DateTime<Utc>) -> bool {
    mapping.newest_at.is_some_and(|newest| at < newest)
}

/// The CRM account `connection` writes into, which scopes its lead mappings.
pub(crate) fn account_of(connection: &Connection) -> Result<String, Error> {
    crate::store::mapping_account(connection)
}

/// Pushes to the destination of `connection`, a row of the lead's tenant read just before.
pub(super) async fn push(
    services: &Services,
    message: &LeadMessage,
    connection: Connection,
) -> Result<DestinationOutcome, Error> {
    // The push's state machine (claim, refresh, the provider's calls) is large: kept on the
    // heap, so a batch of destinations joined together never runs a worker's stack out.
    Box::pin(push_claimed(services, message, connection)).await
}

async fn push_claimed(
    services: &Services,
    message: &LeadMessage,
    connection: Connection,
) -> Result<DestinationOutcome, Error> {
    let provider = connection.provider;
    let lead = &message.lead;
    let digest = lead.digest();
    let at = message.occurred_at;
    let account = match (provider, account_of(&connection)) {
        (_, Ok(account)) => account,
        // Google Sheets without a chosen spreadsheet: the push says so itself.
        (Provider::GoogleSheets, Err(_)) => String::from("unset"),
        (_, Err(error)) => return Err(error),
    };
    let key = LeadKey {
        tenant: &message.tenant_id,
        provider,
        account: &account,
        lead_id: &lead.id,
    };

    // Fast path: a replay or a stale message needs neither a claim nor a CRM call.
    if let Some(existing) = services.store.get_lead_mapping(key).await? {
        if let Some(outcome) = settled(&existing, at, &digest) {
            if outcome == DestinationOutcome::AlreadyPushed && existing.newest_at < Some(at) {
                // The same content at a later instant is the newest version now.
                services.store.advance_newest(key, at).await?;
            }
            return Ok(outcome);
        }
    }

    let owner = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let mapping = match services
        .store
        .claim_lead(
            key,
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
    let journal = Arc::new(MappingJournal {
        store: services.store.clone(),
        owner,
        mapping: Mutex::new(*mapping),
    });
    {
        let mut mapping = journal.mapping.lock().await;
        if let Some(outcome) = settled(&mapping, at, &digest) {
            if outcome == DestinationOutcome::AlreadyPushed {
                mapping.newest_at = mapping.newest_at.max(Some(at));
            }
            drop(mapping);
            journal.release(None).await?;
            return Ok(outcome);
        }
        // Written before the first CRM call: from here on an older message is stale, even if
        // this push never completes.
        mapping.newest_at = Some(at);
        journal.write(&mut mapping).await?;
    }
    let snapshot = journal.snapshot().await;
    let mut progress = PushProgress::journaled(snapshot, provider, journal.clone());

    let result = push_with_session(services, message, connection, &mut progress).await;
    let result = match result {
        // The journal's own failure, surfaced through the provider's call: report the store.
        Err(Error::Provider(crate::error::ProviderError::ProgressNotSaved { source, .. })) => {
            Err(*source)
        }
        other => other,
    };

    // Saved whether the push succeeded or not: what was created before a failure must be found
    // by the retry, not created again.
    journal.absorb(&progress).await;
    // How this attempt ended travels in the releasing write: no write of its own.
    journal.note_outcome(&result).await;
    let pushed = result.as_ref().ok().map(|()| digest);
    journal.release(pushed).await?;

    let now = Utc::now();
    let tenant = &message.tenant_id;
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

/// The outcome for a message that needs no CRM call: an identical replay of what was pushed,
/// or a message older than the newest one started.
fn settled(mapping: &LeadMapping, at: DateTime<Utc>, digest: &str) -> Option<DestinationOutcome> {
    if is_stale(mapping, at) {
        let newest_at = mapping.newest_at.unwrap_or(at);
        tracing::info!(
            occurred_at = %at,
            newest_at = %newest_at,
            "stale message: a newer one of this lead was applied; acknowledging it unchanged"
        );
        return Some(DestinationOutcome::Stale { newest_at });
    }
    if mapping.pushed_digest.as_deref() == Some(digest) && mapping.intents.is_empty() {
        tracing::info!("identical lead already pushed; skipping");
        return Some(DestinationOutcome::AlreadyPushed);
    }
    None
}

/// Writes a push's progress into its claimed lead mapping as the push goes.
struct MappingJournal {
    store: Store,
    owner: String,
    mapping: Mutex<LeadMapping>,
}

impl MappingJournal {
    async fn snapshot(&self) -> ProgressSnapshot {
        let mapping = self.mapping.lock().await;
        ProgressSnapshot {
            records: mapping.records.clone(),
            stage: mapping.stage.clone(),
            summary_digest: mapping.summary_digest.clone(),
            intents: mapping.intents.clone(),
        }
    }

    async fn absorb(&self, progress: &PushProgress) {
        let snapshot = progress.snapshot();
        let mut mapping = self.mapping.lock().await;
        apply(&mut mapping, &snapshot);
    }

    /// Notes in the mapping how the attempt ended, for the sync status: a success clears the
    /// failure and dead-letter marks; a failure counts itself and says whether the lead will be
    /// tried again without anyone acting.
    async fn note_outcome(&self, result: &Result<(), Error>) {
        let mut mapping = self.mapping.lock().await;
        let now = Utc::now();
        match result {
            Ok(()) => {
                mapping.pushed_at = Some(now);
                mapping.last_failure = None;
                mapping.dead_lettered = None;
            }
            Err(error) => {
                let attempts = mapping.last_failure.as_ref().map_or(0, |f| f.attempts) + 1;
                mapping.last_failure = Some(PushFailure {
                    reason: error.to_string().chars().take(1000).collect(),
                    at: now,
                    attempts,
                    will_retry: error.is_retryable() || matches!(error, Error::NeedsReauth { .. }),
                });
                // A failure after a redrive is a new attempt: the DLQ mark no longer holds.
                mapping.dead_lettered = None;
            }
        }
    }

    /// Saves the mapping and gives the claim up in the same write; `pushed` marks the content
    /// as completely pushed.
    async fn release(&self, pushed: Option<String>) -> Result<(), Error> {
        let mut mapping = self.mapping.lock().await;
        if pushed.is_some() {
            mapping.pushed_digest = pushed;
        }
        mapping.lease_owner = None;
        mapping.lease_until = None;
        self.write(&mut mapping).await
    }

    async fn write(&self, mapping: &mut LeadMapping) -> Result<(), Error> {
        mapping.version += 1;
        mapping.updated_at = Some(Utc::now());
        if self.store.save_claimed_lead(mapping, &self.owner).await? {
            Ok(())
        } else {
            Err(Error::Busy(
                "the claim on this lead lapsed before the push was recorded".into(),
            ))
        }
    }
}

fn apply(mapping: &mut LeadMapping, snapshot: &ProgressSnapshot) {
    mapping.records = snapshot.records.clone();
    mapping.stage = snapshot.stage.clone();
    mapping.summary_digest = snapshot.summary_digest.clone();
    mapping.intents = snapshot.intents.clone();
}

#[async_trait]
impl ProgressJournal for MappingJournal {
    async fn save(&self, progress: &ProgressSnapshot) -> Result<(), Error> {
        let mut mapping = self.mapping.lock().await;
        apply(&mut mapping, progress);
        self.write(&mut mapping).await
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
