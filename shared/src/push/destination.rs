//! Pushing leads to one destination, exactly once in effect, many leads at a time.
//!
//! Each lead's mapping in the connection's CRM account is claimed first (conditional writes,
//! one transaction for the batch), so a second delivery of the same message backs off instead
//! of creating records twice. Every CRM
//! record id, and every intent to create one, is written to the mapping as the push goes (see
//! [`crate::provider::PushProgress`]), so a push killed after any CRM call resumes on the next
//! delivery. An identical replay is recognised by its digest and costs no CRM call; a message
//! older than the newest one started for the lead is stale and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::Lane;
use crate::connections::open_connection;
use crate::error::{Error, ProviderError, StoreError};
use crate::lead::{Lead, LeadMessage};
use crate::provider::{copy_error, BatchJournal, LeadBatch, ProgressSnapshot};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{ClaimRequest, Connection, LeadKey, LeadMapping, PushFailure, Store};

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

/// One lead of a destination's batch: the winning message of its lead in this invocation.
struct Slot<'m> {
    message: &'m LeadMessage,
    digest: String,
}

/// Pushes `messages` (one tenant's, all bound for this destination) to the destination of
/// `connection`, a row of the tenant read just before. Returns one result per message, in order.
///
/// The protocol of one lead, for many leads at once: the mappings read in one `BatchGetItem`,
/// replays and stale messages settled without a claim, the rest claimed in one transaction
/// (with `newest_at`, written before any CRM call), the connection opened once, the provider's
/// `push_leads` journaling through one transaction per save, and every claim released in one
/// transaction with its outcome. Two messages of one lead: the newest `occurred_at` is pushed
/// (of two at the same instant, the later one in the batch), the other is stale behind it.
pub(super) async fn push_many(
    services: &Services,
    lane: Lane,
    messages: &[&LeadMessage],
    connection: Connection,
) -> Vec<Result<DestinationOutcome, Error>> {
    // The push's state machine (claims, refresh, the provider's calls) is large: kept on the
    // heap, so destinations joined together never run a worker's stack out.
    Box::pin(push_claimed(services, lane, messages, connection)).await
}

async fn push_claimed(
    services: &Services,
    lane: Lane,
    messages: &[&LeadMessage],
    connection: Connection,
) -> Vec<Result<DestinationOutcome, Error>> {
    let all_fail = |error: Error| messages.iter().map(|_| Err(copy_err(&error))).collect();
    let Some(first) = messages.first() else {
        return Vec::new();
    };
    let tenant = &first.tenant_id;
    let provider = connection.provider;
    let account = match (provider, account_of(&connection)) {
        (_, Ok(account)) => account,
        // Google Sheets without a chosen spreadsheet: the push says so itself.
        (Provider::GoogleSheets, Err(_)) => String::from("unset"),
        (_, Err(error)) => return all_fail(error),
    };

    // One slot per lead: its newest message (ties: the later one in the batch).
    let mut slots: Vec<Slot<'_>> = Vec::new();
    let mut slot_of: Vec<usize> = Vec::with_capacity(messages.len());
    for message in messages {
        match slots
            .iter()
            .position(|s| s.message.lead.id == message.lead.id)
        {
            Some(n) => {
                if message.occurred_at >= slots[n].message.occurred_at {
                    slots[n] = Slot {
                        message,
                        digest: message.lead.digest(),
                    };
                }
                slot_of.push(n);
            }
            None => {
                slot_of.push(slots.len());
                slots.push(Slot {
                    message,
                    digest: message.lead.digest(),
                });
            }
        }
    }
    let keys: Vec<LeadKey<'_>> = slots
        .iter()
        .map(|s| LeadKey {
            tenant,
            provider,
            account: &account,
            lead_id: &s.message.lead.id,
        })
        .collect();

    // Fast path: replays and stale messages need neither a claim nor a CRM call.
    let read = match services.store.get_lead_mappings(&keys).await {
        Ok(read) => read,
        Err(error) => return all_fail(error),
    };
    let mut results: Vec<Option<Result<DestinationOutcome, Error>>> =
        slots.iter().map(|_| None).collect();
    let mut to_claim: Vec<usize> = Vec::new();
    for (n, slot) in slots.iter().enumerate() {
        let at = slot.message.occurred_at;
        let outcome = read[n]
            .as_ref()
            .and_then(|existing| settled(existing, at, &slot.digest).map(|o| (existing, o)));
        match outcome {
            Some((existing, outcome)) => {
                let mut result = Ok(outcome.clone());
                if outcome == DestinationOutcome::AlreadyPushed && existing.newest_at < Some(at) {
                    // The same content at a later instant is the newest version now.
                    if let Err(error) = services.store.advance_newest(keys[n], at).await {
                        result = Err(error);
                    }
                }
                results[n] = Some(result);
            }
            None => to_claim.push(n),
        }
    }

    if !to_claim.is_empty() {
        let pushed =
            claim_and_push(services, lane, connection, &slots, &keys, &read, &to_claim).await;
        for (n, result) in to_claim.iter().zip(pushed) {
            results[*n] = Some(result);
        }
    }

    // Each message takes its lead's result; an older message of the same lead is stale behind
    // the one pushed, and one of the same instant changed nothing more.
    let results: Vec<Result<DestinationOutcome, Error>> = results
        .into_iter()
        .map(|r| r.expect("every slot has a result"))
        .collect();
    messages
        .iter()
        .zip(&slot_of)
        .map(|(message, &n)| {
            let winner = slots[n].message;
            if std::ptr::eq(*message, winner) {
                return copy_result(&results[n]);
            }
            match &results[n] {
                Ok(_) if message.occurred_at < winner.occurred_at => {
                    Ok(DestinationOutcome::Stale {
                        newest_at: winner.occurred_at,
                    })
                }
                Ok(_) => Ok(DestinationOutcome::AlreadyPushed),
                Err(error) => Err(copy_err(error)),
            }
        })
        .collect()
}

/// Claims the leads in `to_claim` (positions in `slots`), pushes those claimed in one batch,
/// and releases them. One result per position of `to_claim`.
async fn claim_and_push(
    services: &Services,
    lane: Lane,
    connection: Connection,
    slots: &[Slot<'_>],
    keys: &[LeadKey<'_>],
    read: &[Option<LeadMapping>],
    to_claim: &[usize],
) -> Vec<Result<DestinationOutcome, Error>> {
    let provider = connection.provider;
    let tenant = connection.tenant_id.clone();
    let owner = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let requests: Vec<ClaimRequest<'_>> = to_claim
        .iter()
        .map(|&n| ClaimRequest {
            key: keys[n],
            read: read[n].as_ref(),
            at: slots[n].message.occurred_at,
        })
        .collect();
    let claimed = match services
        .store
        .claim_leads(
            &requests,
            &owner,
            now,
            now + chrono::Duration::seconds(CLAIM_SECONDS),
        )
        .await
    {
        Ok(claimed) => claimed,
        Err(error) => return to_claim.iter().map(|_| Err(copy_err(&error))).collect(),
    };
    let mut results: Vec<Option<Result<DestinationOutcome, Error>>> =
        to_claim.iter().map(|_| None).collect();
    // (position in to_claim, its claimed mapping)
    let mut held: Vec<(usize, LeadMapping)> = Vec::new();
    for (k, mapping) in claimed.into_iter().enumerate() {
        match mapping {
            Some(mapping) => held.push((k, mapping)),
            None => {
                results[k] = Some(Err(Error::Busy(format!(
                    "another delivery is pushing this lead to {provider}"
                ))))
            }
        }
    }
    if held.is_empty() {
        return results.into_iter().map(|r| r.expect("set")).collect();
    }

    let leads: Vec<&Lead> = held
        .iter()
        .map(|(k, _)| &slots[to_claim[*k]].message.lead)
        .collect();
    let snapshots: Vec<ProgressSnapshot> = held.iter().map(|(_, m)| snapshot_of(m)).collect();
    let journal = Arc::new(BatchMappingJournal {
        store: services.store.clone(),
        owner,
        mappings: Mutex::new(held.iter().map(|(_, m)| m.clone()).collect()),
    });
    let pushed = push_with_session(
        services,
        lane,
        connection,
        leads.iter().copied().zip(snapshots).collect(),
        journal.clone(),
    )
    .await;

    // Saved whether each push succeeded or not: what was created before a failure must be
    // found by the retry, not created again. How each attempt ended travels in the releasing
    // write: no write of its own.
    let mut outcomes: Vec<Result<DestinationOutcome, Error>> = Vec::new();
    {
        let mut mappings = journal.mappings.lock().await;
        for ((n, (snapshot, result)), mapping) in
            pushed.into_iter().enumerate().zip(mappings.iter_mut())
        {
            apply(mapping, &snapshot);
            note_outcome(mapping, &result);
            if result.is_ok() {
                mapping.pushed_digest = Some(slots[to_claim[held[n].0]].digest.clone());
            }
            mapping.lease_owner = None;
            mapping.lease_until = None;
            mapping.version += 1;
            mapping.updated_at = Some(Utc::now());
            outcomes.push(result.map(|()| DestinationOutcome::Pushed {
                records: snapshot.records,
            }));
        }
        let mut pending: Vec<usize> = (0..mappings.len()).collect();
        while !pending.is_empty() {
            let batch: Vec<&LeadMapping> = pending.iter().map(|&i| &mappings[i]).collect();
            match journal
                .store
                .save_claimed_leads(&batch, &journal.owner)
                .await
            {
                Ok(lost) if lost.is_empty() => pending.clear(),
                Ok(lost) => {
                    // Written again without the leads whose claim lapsed: those are retried.
                    for &p in &lost {
                        outcomes[pending[p]] = Err(Error::Busy(
                            "the claim on this lead lapsed before the push was recorded".into(),
                        ));
                    }
                    pending = pending
                        .iter()
                        .enumerate()
                        .filter(|(p, _)| !lost.contains(p))
                        .map(|(_, &i)| i)
                        .collect();
                }
                Err(error) => {
                    for &i in &pending {
                        outcomes[i] = Err(copy_err(&error));
                    }
                    pending.clear();
                }
            }
        }
    }

    // The destination's sync status, once for the batch (twice when some leads landed and
    // some failed: the last success and the last error both hold).
    let now = Utc::now();
    if outcomes.iter().any(|r| r.is_ok()) {
        if let Err(e) = services
            .store
            .record_sync_success(&tenant, provider, now)
            .await
        {
            tracing::warn!(error = %e, "could not record the sync status");
        }
    }
    if let Some(error) = outcomes.iter().find_map(|r| r.as_ref().err()) {
        if let Err(e) = services
            .store
            .record_sync_failure(&tenant, provider, now, &error.to_string())
            .await
        {
            tracing::warn!(error = %e, "could not record the sync status");
        }
    }
    if lane == Lane::Backfill {
        // Retried failures are not counted: they are pushed (and counted) later, or end
        // in the DLQ as failed then.
        let pushed = outcomes.iter().filter(|r| r.is_ok()).count() as u32;
        let failed = outcomes
            .iter()
            .filter(|r| {
                r.as_ref()
                    .is_err_and(|e| !e.is_retryable() && !matches!(e, Error::NeedsReauth { .. }))
            })
            .count() as u32;
        if let Err(e) = services
            .store
            .record_backfill_progress(&tenant, provider, pushed, failed, now)
            .await
        {
            tracing::warn!(error = %e, "could not record the backfill's progress");
        }
    }

    for ((k, _), outcome) in held.iter().zip(outcomes) {
        results[*k] = Some(outcome);
    }
    results.into_iter().map(|r| r.expect("set")).collect()
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

fn snapshot_of(mapping: &LeadMapping) -> ProgressSnapshot {
    ProgressSnapshot {
        records: mapping.records.clone(),
        stage: mapping.stage.clone(),
        summary_digest: mapping.summary_digest.clone(),
        intents: mapping.intents.clone(),
    }
}

/// Notes in the mapping how the attempt ended, for the sync status: a success clears the
/// failure and dead-letter marks; a failure counts itself and says whether the lead will be
/// tried again without anyone acting.
fn note_outcome(mapping: &mut LeadMapping, result: &Result<(), Error>) {
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

fn apply(mapping: &mut LeadMapping, snapshot: &ProgressSnapshot) {
    mapping.records = snapshot.records.clone();
    mapping.stage = snapshot.stage.clone();
    mapping.summary_digest = snapshot.summary_digest.clone();
    mapping.intents = snapshot.intents.clone();
}

/// Writes a batch's progress into its claimed lead mappings: every changed lead in one
/// transaction, each put conditioned on the batch still holding that lead's claim.
struct BatchMappingJournal {
    store: Store,
    owner: String,
    /// By index in the batch.
    mappings: Mutex<Vec<LeadMapping>>,
}

#[async_trait]
impl BatchJournal for BatchMappingJournal {
    async fn save_many(&self, changed: &[(usize, ProgressSnapshot)]) -> Result<(), Error> {
        let mut mappings = self.mappings.lock().await;
        let now = Utc::now();
        let next: Vec<LeadMapping> = changed
            .iter()
            .map(|(i, snapshot)| {
                let mut mapping = mappings[*i].clone();
                apply(&mut mapping, snapshot);
                mapping.version += 1;
                mapping.updated_at = Some(now);
                mapping
            })
            .collect();
        let lost = self
            .store
            .save_claimed_leads(&next.iter().collect::<Vec<_>>(), &self.owner)
            .await?;
        if !lost.is_empty() {
            return Err(Error::Busy(
                "the claim on a lead lapsed before its progress was recorded".into(),
            ));
        }
        for ((i, _), mapping) in changed.iter().zip(next) {
            mappings[*i] = mapping;
        }
        Ok(())
    }
}

/// Opens the connection once and pushes the batch through the connection's
/// refresh-once-on-401 call. One (progress, result) per lead, in order.
async fn push_with_session(
    services: &Services,
    lane: Lane,
    connection: Connection,
    leads: Vec<(&Lead, ProgressSnapshot)>,
    journal: Arc<BatchMappingJournal>,
) -> Vec<(ProgressSnapshot, Result<(), Error>)> {
    let provider = connection.provider;
    let untouched = |leads: Vec<(&Lead, ProgressSnapshot)>, error: &Error| {
        leads
            .into_iter()
            .map(|(_, snapshot)| (snapshot, Err(copy_err(error))))
            .collect()
    };
    let open = match open_connection(services, connection).await {
        Ok(open) => open,
        Err(error) => return untouched(leads, &error),
    };
    // A backfill takes only the capacity live leads leave of the account's rate limit.
    let mut open = open.with_lane(lane);
    let implementation = open.implementation;
    let settings = open.connection.settings.clone();
    let mut batch = LeadBatch::journaled(provider, leads, journal);
    let whole = {
        // Borrowed inputs travel in the call's state, which outlives each attempt.
        let mut state = (&mut batch, settings.as_ref());
        open.call(&mut state, |session, (batch, settings)| {
            implementation.push_leads(session, *settings, batch)
        })
        .await
    };
    // A whole-call failure reaches every lead still open; one that failed inside the batch
    // keeps its own error.
    let open_leads = batch.open();
    let (whole_error, whole_provider) = match whole {
        Ok(()) => (None, Ok(())),
        Err(Error::Provider(error)) => (None, Err(error)),
        Err(error) => (Some(error), Ok(())),
    };
    batch
        .finish(whole_provider)
        .into_iter()
        .enumerate()
        .map(|(i, (progress, result))| {
            let result = match (&whole_error, result) {
                (Some(error), _) if open_leads.contains(&i) => Err(copy_err(error)),
                // The journal's own failure, surfaced through the provider's call: report the
                // store.
                (_, Err(ProviderError::ProgressNotSaved { source, .. })) => Err(*source),
                (_, Err(error)) => Err(Error::Provider(error)),
                (_, Ok(())) => Ok(()),
            };
            (progress.snapshot(), result)
        })
        .collect()
}

fn copy_result(result: &Result<DestinationOutcome, Error>) -> Result<DestinationOutcome, Error> {
    match result {
        Ok(outcome) => Ok(outcome.clone()),
        Err(error) => Err(copy_err(error)),
    }
}

/// An equivalent of `error` for another message of the batch (`Error` is not `Clone`): the
/// same kind where it matters to the outcome (throttling, reconnect, retryability).
pub(super) fn copy_err(error: &Error) -> Error {
    match error {
        Error::Provider(error) => Error::Provider(copy_error(error)),
        Error::NeedsReauth { provider, reason } => Error::NeedsReauth {
            provider: *provider,
            reason: reason.clone(),
        },
        Error::Busy(reason) => Error::Busy(reason.clone()),
        Error::NotSupported(provider) => Error::NotSupported(*provider),
        Error::Store(StoreError::Aws {
            operation,
            code,
            message,
            retryable,
        }) => Error::Store(StoreError::Aws {
            operation,
            code: code.clone(),
            message: message.clone(),
            retryable: *retryable,
        }),
        other if other.is_retryable() => Error::Busy(other.to_string()),
        other => Error::Conflict(other.to_string()),
    }
}
