//! Pushing many leads of one tenant to one destination in a few CRM calls.
//!
//! lead-push groups an invocation's messages by tenant and destination and hands each group to
//! [`super::CrmProvider::push_leads`] as a [`LeadBatch`]. The exactly-once rule of
//! [`super::progress`] still holds lead by lead; a batch only lets a provider store many leads'
//! progress in **one** write:
//!
//! 1. Before a batch create the provider cannot deduplicate, it notes an intent on every lead of
//!    the call ([`PushProgress::note_intent`]) and stores them all with [`LeadBatch::save`]
//!    (one store write for the batch, not one per lead).
//! 2. After the answer, it notes each new id ([`PushProgress::note_record`]) and saves again
//!    before the next CRM call.
//! 3. A per-record error inside a batch answer fails only that lead ([`LeadBatch::fail`]); its
//!    neighbours go on. A failure of the whole call (`Err` from `push_leads`) fails every lead
//!    still open, with what each one already made kept in its progress.
//!
//! Providers without a batch API keep the default `push_leads`, which pushes one lead after
//! the other through their `push_lead`, each lead's progress journaled as before.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ProviderError};
use crate::lead::Lead;
use crate::registry::Provider;

use super::{ProgressJournal, ProgressSnapshot, PushProgress};

/// Where a batch's progress is stored: every changed lead in one write.
#[async_trait]
pub trait BatchJournal: Send + Sync {
    /// Stores these leads' progress (index in the batch, snapshot), all or nothing.
    async fn save_many(&self, changed: &[(usize, ProgressSnapshot)]) -> Result<(), Error>;
}

/// One lead of a batch and what it has become in the CRM so far.
pub struct BatchLead<'a> {
    pub lead: &'a Lead,
    /// Journaled lead by lead (its own saves write this lead alone); batch providers change it
    /// with the `note_*` methods and store many leads at once with [`LeadBatch::save`].
    pub progress: PushProgress,
    outcome: Option<Result<(), ProviderError>>,
}

impl BatchLead<'_> {
    /// Whether this lead is still being pushed (it has not failed inside the batch).
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

/// The leads of one tenant going to one destination in one invocation.
pub struct LeadBatch<'a> {
    provider: Provider,
    leads: Vec<BatchLead<'a>>,
    /// What the journal holds for each lead, to write only what changed.
    stored: Vec<ProgressSnapshot>,
    journal: Option<Arc<dyn BatchJournal>>,
}

/// Routes one lead's own saves (the one-at-a-time path) to the batch journal.
struct OneLead {
    index: usize,
    journal: Arc<dyn BatchJournal>,
}

#[async_trait]
impl ProgressJournal for OneLead {
    async fn save(&self, progress: &ProgressSnapshot) -> Result<(), Error> {
        self.journal
            .save_many(&[(self.index, progress.clone())])
            .await
    }
}

impl<'a> LeadBatch<'a> {
    /// A batch whose progress is stored through `journal` as it changes.
    pub fn journaled(
        provider: Provider,
        leads: Vec<(&'a Lead, ProgressSnapshot)>,
        journal: Arc<dyn BatchJournal>,
    ) -> Self {
        Self::build(provider, leads, Some(journal))
    }

    /// A batch kept in memory only (tests, one-off calls).
    pub fn in_memory(provider: Provider, leads: Vec<(&'a Lead, ProgressSnapshot)>) -> Self {
        Self::build(provider, leads, None)
    }

    fn build(
        provider: Provider,
        leads: Vec<(&'a Lead, ProgressSnapshot)>,
        journal: Option<Arc<dyn BatchJournal>>,
    ) -> Self {
        let stored = leads.iter().map(|(_, s)| s.clone()).collect();
        let leads = leads
            .into_iter()
            .enumerate()
            .map(|(index, (lead, snapshot))| {
                let progress = match &journal {
                    Some(journal) => PushProgress::journaled(
                        snapshot,
                        provider,
                        Arc::new(OneLead {
                            index,
                            journal: journal.clone(),
                        }),
                    ),
                    None => PushProgress::resumed(snapshot),
                };
                BatchLead {
                    lead,
                    progress,
                    outcome: None,
                }
            })
            .collect();
        LeadBatch {
            provider,
            leads,
            stored,
            journal,
        }
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn len(&self) -> usize {
        self.leads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leads.is_empty()
    }

    /// Every lead, open or failed, by index.
    pub fn leads(&self) -> &[BatchLead<'a>] {
        &self.leads
    }

    pub fn lead_mut(&mut self, index: usize) -> &mut BatchLead<'a> {
        &mut self.leads[index]
    }

    /// The indexes of the leads still open, in batch order.
    pub fn open(&self) -> Vec<usize> {
        (0..self.leads.len())
            .filter(|&i| self.leads[i].is_open())
            .collect()
    }

    /// Fails one lead (a per-record error in a batch answer): later steps skip it, its
    /// neighbours go on. What it made before is kept in its progress.
    pub fn fail(&mut self, index: usize, error: ProviderError) {
        let lead = &mut self.leads[index];
        if lead.outcome.is_none() {
            lead.outcome = Some(Err(error));
        }
    }

    /// Stores, in one journal write, the progress of every lead that changed since it was last
    /// stored. Call before a batch create (after noting the intents) and after its answer
    /// (after noting the ids).
    pub async fn save(&mut self) -> Result<(), ProviderError> {
        let changed: Vec<(usize, ProgressSnapshot)> = self
            .leads
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.progress.snapshot()))
            .filter(|(i, snapshot)| *snapshot != self.stored[*i])
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        if let Some(journal) = &self.journal {
            journal.save_many(&changed).await.map_err(|source| {
                ProviderError::ProgressNotSaved {
                    provider: self.provider,
                    source: Box::new(source),
                }
            })?;
        }
        for (i, snapshot) in changed {
            self.stored[i] = snapshot;
        }
        Ok(())
    }

    /// Ends the batch: each lead's progress and outcome. A lead that did not fail inside the
    /// batch takes `whole` (the result of the provider's `push_leads`); a whole-call error is
    /// given to each open lead as its own copy.
    pub fn finish(
        self,
        whole: Result<(), ProviderError>,
    ) -> Vec<(PushProgress, Result<(), ProviderError>)> {
        let whole = whole.map_err(SharedFailure::from);
        self.leads
            .into_iter()
            .map(|lead| {
                let outcome = match lead.outcome {
                    Some(outcome) => outcome,
                    None => match &whole {
                        Ok(()) => Ok(()),
                        Err(failure) => Err(failure.copy()),
                    },
                };
                (lead.progress, outcome)
            })
            .collect()
    }
}

/// A whole-batch failure handed to every open lead. `ProviderError` is not `Clone` (it can
/// carry a `reqwest::Error`), so each lead gets an equivalent error of the same kind.
struct SharedFailure(ProviderError);

impl From<ProviderError> for SharedFailure {
    fn from(error: ProviderError) -> Self {
        SharedFailure(error)
    }
}

impl SharedFailure {
    fn copy(&self) -> ProviderError {
        copy_error(&self.0)
    }
}

/// An equivalent of `error` (same kind, same retryability, same message).
pub fn copy_error(error: &ProviderError) -> ProviderError {
    match error {
        ProviderError::Throttled {
            provider,
            retry_after,
        } => ProviderError::Throttled {
            provider: *provider,
            retry_after: *retry_after,
        },
        ProviderError::Unavailable { provider, status } => ProviderError::Unavailable {
            provider: *provider,
            status: *status,
        },
        ProviderError::Timeout { provider } => ProviderError::Timeout {
            provider: *provider,
        },
        // The source cannot be cloned: an unreachable provider stays an outage, retryable.
        ProviderError::Network { provider, .. } => ProviderError::Unavailable {
            provider: *provider,
            status: 0,
        },
        ProviderError::Unauthorized { provider, code } => ProviderError::Unauthorized {
            provider: *provider,
            code: code.clone(),
        },
        ProviderError::InvalidGrant { provider, code } => ProviderError::InvalidGrant {
            provider: *provider,
            code: code.clone(),
        },
        ProviderError::Rejected {
            provider,
            status,
            code,
            message,
        } => ProviderError::Rejected {
            provider: *provider,
            status: *status,
            code: code.clone(),
            message: message.clone(),
        },
        ProviderError::Garbage {
            provider,
            status,
            detail,
        } => ProviderError::Garbage {
            provider: *provider,
            status: *status,
            detail: detail.clone(),
        },
        ProviderError::ProgressNotSaved { provider, source } => ProviderError::ProgressNotSaved {
            provider: *provider,
            source: Box::new(Error::Busy(format!(
                "progress not saved ({})",
                if source.is_retryable() {
                    "retryable"
                } else {
                    "permanent"
                }
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Writes(Mutex<Vec<Vec<usize>>>);

    #[async_trait]
    impl BatchJournal for Writes {
        async fn save_many(&self, changed: &[(usize, ProgressSnapshot)]) -> Result<(), Error> {
            self.0
                .lock()
                .unwrap()
                .push(changed.iter().map(|(i, _)| *i).collect());
            Ok(())
        }
    }

    fn lead(id: &str) -> Lead {
        let body = serde_json::json!({
            "version": 1, "tenant_id": "tenant-a", "plan": "pro",
            "lead": {"id": id, "name": "Ada Lovelace", "email": format!("{id}@example.com"),
                     "stage": "qualified"},
            "occurred_at": "2026-11-28T04:00:00Z"
        });
        crate::lead::parse_message(&body.to_string())
            .expect("a valid lead")
            .lead
    }

    #[tokio::test]
    async fn intents_of_many_leads_are_stored_in_one_write_and_unchanged_leads_not_at_all() {
        let leads = [lead("a"), lead("b"), lead("c")];
        let writes = Arc::new(Writes::default());
        let mut batch = LeadBatch::journaled(
            Provider::Hubspot,
            leads
                .iter()
                .map(|l| (l, ProgressSnapshot::default()))
                .collect(),
            writes.clone(),
        );
        for i in [0, 2] {
            batch.lead_mut(i).progress.note_intent("deal");
        }
        batch.save().await.unwrap();
        batch.save().await.unwrap();
        assert_eq!(*writes.0.lock().unwrap(), vec![vec![0, 2]]);
    }

    #[tokio::test]
    async fn a_lead_failed_inside_the_batch_keeps_its_error_and_the_others_take_the_whole_result() {
        let leads = [lead("a"), lead("b")];
        let mut batch = LeadBatch::in_memory(
            Provider::Hubspot,
            leads
                .iter()
                .map(|l| (l, ProgressSnapshot::default()))
                .collect(),
        );
        batch.fail(
            1,
            ProviderError::Rejected {
                provider: Provider::Hubspot,
                status: 400,
                code: "VALIDATION_ERROR".into(),
                message: String::new(),
            },
        );
        assert_eq!(batch.open(), vec![0]);
        let outcomes = batch.finish(Ok(()));
        assert!(outcomes[0].1.is_ok());
        assert!(!outcomes[1].1.as_ref().unwrap_err().is_retryable());
    }
}
