//! HubSpot: OAuth on the 2026-03 endpoints (registry), deal pipelines from
//! `GET /crm/v3/pipelines/deals` (spec `CRM/Pipelines/Rollouts/145896/2026-03/pipelines.json`).
//! Lead push (contacts batch upsert, deals and notes with inline associations) arrives with the
//! lead-push issue.

mod mapping;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;

use super::{CrmProvider, Pipeline, PushedRecords, Session};
use crate::error::ProviderError;
use crate::lead::{ContactQuery, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::{ConnectionSettings, LeadMapping};

pub struct HubSpot;

#[async_trait]
impl CrmProvider for HubSpot {
    fn provider(&self) -> Provider {
        Provider::Hubspot
    }

    /// HubSpot's token response names the portal (`hub_id`); a response without one is not a
    /// HubSpot install we can use.
    fn account_from_tokens(&self, tokens: &TokenSet) -> Result<BTreeMap<String, String>, ProviderError> {
        mapping::account_from_token_extras(&tokens.extras).ok_or(ProviderError::Garbage {
            provider: Provider::Hubspot,
            status: 200,
            detail: "token response has no hub_id".into(),
        })
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        let response = session
            .http
            .send(session.request("pipelines.list", Method::GET, "/crm/v3/pipelines/deals"))
            .await?
            .error_for_status()?;
        let body: mapping::PipelinesResponse = response.json()?;
        Ok(mapping::pipelines(body))
    }

    async fn search_contact(
        &self,
        _session: &Session<'_>,
        _query: &ContactQuery,
    ) -> Result<Option<String>, ProviderError> {
        Err(not_yet("search_contact"))
    }

    async fn sync_contact(
        &self,
        _session: &Session<'_>,
        _lead: &Lead,
        _existing_id: Option<&str>,
    ) -> Result<String, ProviderError> {
        Err(not_yet("sync_contact"))
    }

    async fn push_lead(
        &self,
        _session: &Session<'_>,
        _lead: &Lead,
        _settings: Option<&ConnectionSettings>,
        _previous: Option<&LeadMapping>,
    ) -> Result<PushedRecords, ProviderError> {
        Err(not_yet("push_lead"))
    }
}

/// Lead push is the next issue's work; until then the trait answers plainly instead of
/// pretending.
fn not_yet(operation: &'static str) -> ProviderError {
    ProviderError::NotImplemented {
        provider: Provider::Hubspot,
        operation,
    }
}
