//! Freshsales (Freshworks CRM): API-key connections to the account's own host (`domain.rs`),
//! contacts by upsert or lookup, deals in the chosen pipeline and stage, notes (`push.rs`).

pub mod domain;
mod mapping;
mod push;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::{CrmProvider, Pipeline, PushProgress, Session};
use crate::error::ProviderError;
use crate::lead::{ContactField, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::ConnectionSettings;

pub struct Freshsales;

#[async_trait]
impl CrmProvider for Freshsales {
    fn provider(&self) -> Provider {
        Provider::Freshsales
    }

    /// `Authorization: Token token=<key>`.
    fn auth_scheme(&self) -> &'static str {
        "Token token="
    }

    /// Freshsales has no OAuth: nothing comes from a token response.
    fn account_from_tokens(
        &self,
        _tokens: &TokenSet,
        _callback_params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Err(ProviderError::Rejected {
            provider: Provider::Freshsales,
            status: 0,
            code: "not_oauth".into(),
            message: "Freshsales connects with an API key".into(),
        })
    }

    /// `GET /selector/lead_sources`: a cheap call any working key may make, which also gives
    /// the account's lead source ids (cached on the connection; a lead's source is sent as the
    /// id of the source of the same name).
    async fn account_details(
        &self,
        session: &Session<'_>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let request = session.request("lead_sources.list", Method::GET, "/selector/lead_sources");
        let response = push::checked(session.http.send(request).await?)?;
        let sources: mapping::LeadSources = response.json()?;
        Ok(BTreeMap::from([(
            mapping::LEAD_SOURCE_IDS.to_string(),
            mapping::lead_source_cache(sources),
        )]))
    }

    fn account_for_domain(&self, input: &str) -> Result<BTreeMap<String, String>, String> {
        let parsed = domain::parse(input).map_err(|e| e.to_string())?;
        Ok(BTreeMap::from([(domain::DOMAIN.to_string(), parsed.host)]))
    }

    /// The account's own host, re-checked from the stored domain on every use.
    fn api_base(
        &self,
        _config: &crate::config::Config,
        default_base: Url,
        account: &BTreeMap<String, String>,
    ) -> Url {
        domain::stored(account)
            .map(|d| d.api_base)
            .unwrap_or(default_base)
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        list_pipelines(session).await
    }

    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
    ) -> Result<Option<String>, ProviderError> {
        let attribute = match field {
            ContactField::Email => "email",
            ContactField::Phone => "mobile_number",
        };
        push::lookup(session, attribute, value).await
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
}

/// `GET /selector/deal_pipelines`: every pipeline with its stages embedded.
pub(super) async fn list_pipelines(session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
    let request = session.request("pipelines.list", Method::GET, "/selector/deal_pipelines");
    let response = push::checked(session.http.send(request).await?)?;
    Ok(mapping::pipelines(response.json()?))
}
