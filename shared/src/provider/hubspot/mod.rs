//! HubSpot: OAuth on the 2026-03 endpoints (registry); every CRM call on the date-based API
//! version in [`paths::API_VERSION`]: deal pipelines from `GET /crm/pipelines/{version}/deals`
//! (shape: spec `CRM/Pipelines/Rollouts/145896/2026-03/pipelines.json`).
//! Lead push: contacts batch upsert, deals and notes with inline associations, one lead
//! (`push.rs`) or many in a few batch calls (`batch.rs`).

mod batch;
mod mapping;
pub mod paths;
mod push;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::{CrmProvider, LeadBatch, Pipeline, PropertyInfo, PushProgress, Session};
use crate::error::ProviderError;
use crate::lead::{ContactField, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::ConnectionSettings;

pub struct HubSpot;

#[async_trait]
impl CrmProvider for HubSpot {
    fn provider(&self) -> Provider {
        Provider::Hubspot
    }

    /// HubSpot's token response names the portal (`hub_id`); a response without one is not a
    /// HubSpot install we can use.
    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
        _callback_params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        mapping::account_from_token_extras(&tokens.extras).ok_or(ProviderError::Garbage {
            provider: Provider::Hubspot,
            status: 200,
            detail: "token response has no hub_id".into(),
        })
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        list_pipelines(session).await
    }

    /// `GET /crm/properties/{version}/contacts/{name}` (shape checked: spec
    /// `CRM/Properties/Rollouts/145899/v3/properties.json`: `type`, and `options[].value`).
    async fn describe_contact_property(
        &self,
        session: &Session<'_>,
        name: &str,
    ) -> Result<Option<PropertyInfo>, ProviderError> {
        let path = paths::property("contacts", name);
        let response = session
            .http
            .send(session.request("properties.read", Method::GET, &path))
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        let body: mapping::PropertyResponse = response.error_for_status()?.json()?;
        Ok(Some(mapping::property_info(body)))
    }

    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
    ) -> Result<Option<String>, ProviderError> {
        let property = match field {
            ContactField::Email => "email",
            ContactField::Phone => "phone",
        };
        push::search_by(session, property, value).await
    }

    async fn sync_contact(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        existing_id: Option<&str>,
    ) -> Result<String, ProviderError> {
        push::sync_contact(session, lead, existing_id).await
    }

    async fn push_lead(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError> {
        push::push_lead(session, lead, settings, progress).await
    }

    /// Many leads in a few batch calls (`batch.rs`): for 10 new leads with email, one contacts
    /// upsert, at most one pipelines read, one deals create and one notes create.
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        batch::push_leads(session, settings, batch).await
    }
}

async fn list_pipelines(session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
    let response = session
        .http
        .send(session.request("pipelines.list", Method::GET, &paths::deal_pipelines()))
        .await?
        .error_for_status()?;
    let body: mapping::PipelinesResponse = response.json()?;
    Ok(mapping::pipelines(body))
}
