//! What a lead has become in one CRM so far, written down as it is made.
//!
//! The rule every provider's push follows (it is what makes a push killed between any two CRM
//! calls, or a create whose answer was lost, safe to deliver again):
//!
//! 1. A create the provider cannot deduplicate by itself is announced first with
//!    [`PushProgress::intend`]. The intent is stored before the call is sent.
//! 2. When the next attempt finds that intent without a record id ([`PushProgress::in_doubt`]),
//!    the create may have happened: the provider looks the record up (by the marker or external
//!    id it carries) before creating it.
//! 3. Every CRM write's result is stored before the next CRM call: [`PushProgress::record`] for a
//!    new id, [`PushProgress::save`] after a stage or summary change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ProviderError};
use crate::registry::Provider;

/// Where a push's progress is stored (the lead mapping, under the push's claim).
#[async_trait]
pub trait ProgressJournal: Send + Sync {
    async fn save(&self, progress: &ProgressSnapshot) -> Result<(), Error>;
}

/// The stored part of [`PushProgress`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    pub records: BTreeMap<String, String>,
    pub stage: Option<String>,
    pub summary_digest: Option<String>,
    pub intents: BTreeSet<String>,
}

/// What a lead has become in one CRM so far; see the module documentation for how providers
/// must use it.
#[derive(Clone, Default)]
pub struct PushProgress {
    /// Record kind (`contact`, `deal`, `note`, ...) to the CRM's id.
    pub records: BTreeMap<String, String>,
    /// The CRM stage the deal is in.
    pub stage: Option<String>,
    /// Digest of the summary the note holds (see [`super::text_digest`]).
    pub summary_digest: Option<String>,
    /// Kinds whose create was sent without its answer being recorded.
    intents: BTreeSet<String>,
    journal: Option<(Provider, Arc<dyn ProgressJournal>)>,
}

impl fmt::Debug for PushProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushProgress")
            .field("records", &self.records)
            .field("stage", &self.stage)
            .field("summary_digest", &self.summary_digest)
            .field("intents", &self.intents)
            .field("journaled", &self.journal.is_some())
            .finish()
    }
}

impl PartialEq for PushProgress {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot() == other.snapshot()
    }
}

impl PushProgress {
    /// Progress resumed from what was stored, written back to `journal` as it changes.
    pub fn journaled(
        snapshot: ProgressSnapshot,
        provider: Provider,
        journal: Arc<dyn ProgressJournal>,
    ) -> Self {
        let mut progress = Self::resumed(snapshot);
        progress.journal = Some((provider, journal));
        progress
    }

    /// Progress resumed from a snapshot, kept in memory only (tests, one-off calls).
    pub fn resumed(snapshot: ProgressSnapshot) -> Self {
        PushProgress {
            records: snapshot.records,
            stage: snapshot.stage,
            summary_digest: snapshot.summary_digest,
            intents: snapshot.intents,
            journal: None,
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            records: self.records.clone(),
            stage: self.stage.clone(),
            summary_digest: self.summary_digest.clone(),
            intents: self.intents.clone(),
        }
    }

    /// Whether a create of `kind` was sent before and its answer never recorded: the record
    /// may exist, so it must be looked up before it is created again.
    pub fn in_doubt(&self, kind: &str) -> bool {
        self.intents.contains(kind) && !self.records.contains_key(kind)
    }

    /// Stores that a create of `kind` is about to be sent. Call right before a create that the
    /// provider cannot deduplicate by itself.
    pub async fn intend(&mut self, kind: &str) -> Result<(), ProviderError> {
        if self.intents.insert(kind.to_string()) {
            self.save().await?;
        }
        Ok(())
    }

    /// Stores the id of a record of `kind` (created, or found again) and clears its intent.
    pub async fn record(&mut self, kind: &str, id: impl Into<String>) -> Result<(), ProviderError> {
        let id = id.into();
        let changed = self.records.get(kind) != Some(&id) || self.intents.contains(kind);
        self.records.insert(kind.to_string(), id);
        self.intents.remove(kind);
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    /// Notes, in memory only, that a create of `kind` is about to be sent: a batch provider
    /// notes it on every lead of a batch call, then stores them all with
    /// [`super::LeadBatch::save`] before sending.
    pub fn note_intent(&mut self, kind: &str) {
        self.intents.insert(kind.to_string());
    }

    /// Notes, in memory only, the id of a record of `kind` and clears its intent; stored for
    /// the whole batch by [`super::LeadBatch::save`] before the next CRM call.
    pub fn note_record(&mut self, kind: &str, id: impl Into<String>) {
        self.records.insert(kind.to_string(), id.into());
        self.intents.remove(kind);
    }

    /// Forgets, in memory only, a record of `kind` or the intent to create one (a batch answer
    /// refused that record, or a batch lookup found no record a lost create made); stored for
    /// the whole batch by [`super::LeadBatch::save`].
    pub fn note_forget(&mut self, kind: &str) {
        self.records.remove(kind);
        self.intents.remove(kind);
    }

    /// Forgets a record of `kind` (it was found gone, or merged into another) and stores that.
    pub async fn forget(&mut self, kind: &str) -> Result<(), ProviderError> {
        let changed = self.records.remove(kind).is_some() | self.intents.remove(kind);
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    /// Stores the progress as it stands (after a stage move or a summary update).
    pub async fn save(&mut self) -> Result<(), ProviderError> {
        let Some((provider, journal)) = &self.journal else {
            return Ok(());
        };
        journal
            .save(&self.snapshot())
            .await
            .map_err(|source| ProviderError::ProgressNotSaved {
                provider: *provider,
                source: Box::new(source),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Memory(Mutex<Vec<ProgressSnapshot>>);

    #[async_trait]
    impl ProgressJournal for Memory {
        async fn save(&self, progress: &ProgressSnapshot) -> Result<(), Error> {
            self.0.lock().unwrap().push(progress.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_intent_is_stored_before_the_create_and_cleared_with_the_id() {
        let memory = Arc::new(Memory::default());
        let mut progress = PushProgress::journaled(
            ProgressSnapshot::default(),
            Provider::Hubspot,
            memory.clone(),
        );
        progress.intend("deal").await.unwrap();
        assert!(progress.in_doubt("deal"));
        progress.record("deal", "42").await.unwrap();
        assert!(!progress.in_doubt("deal"));
        let saved = memory.0.lock().unwrap().clone();
        assert_eq!(saved.len(), 2, "one write for the intent, one for the id");
        assert!(saved[0].intents.contains("deal") && saved[0].records.is_empty());
        assert!(saved[1].intents.is_empty() && saved[1].records["deal"] == "42");
    }

    #[tokio::test]
    async fn recording_what_is_already_known_writes_nothing() {
        let memory = Arc::new(Memory::default());
        let mut snapshot = ProgressSnapshot::default();
        snapshot.records.insert("contact".into(), "7".into());
        let mut progress = PushProgress::journaled(snapshot, Provider::Hubspot, memory.clone());
        progress.record("contact", "7").await.unwrap();
        progress.intend("note").await.unwrap();
        progress.intend("note").await.unwrap();
        assert_eq!(memory.0.lock().unwrap().len(), 1);
    }
}
