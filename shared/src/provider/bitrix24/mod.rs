//! Bitrix24: OAuth on the tenant's portal with tokens from Bitrix24's OAuth server
//! (`portal.rs`), REST calls with the token in the body (`api.rs`), and the push of a lead as a
//! contact, a deal and a timeline comment (`push.rs`), many leads at once with `batch`
//! (`batch.rs`).

mod api;
mod batch;
mod portal;
mod push;

use std::collections::BTreeMap;

use async_trait::async_trait;
use url::Url;

use super::{CrmProvider, LeadBatch, LoginChoice, Pipeline, PushProgress, Session};
use crate::config::Config;
use crate::error::ProviderError;
use crate::lead::{ContactField, Lead};
use crate::oauth::TokenSet;
use crate::registry::{Provider, BITRIX24};
use crate::store::ConnectionSettings;

pub struct Bitrix24;

#[async_trait]
impl CrmProvider for Bitrix24 {
    fn provider(&self) -> Provider {
        Provider::Bitrix24
    }

    /// The consent happens on the tenant's portal, which the setup page must name.
    fn login_origin(&self, choice: &LoginChoice) -> Result<Option<Url>, String> {
        if choice.environment.is_some() || choice.my_domain.is_some() {
            return Err(
                "Bitrix24 takes only the portal: {\"portal\": \"acme.bitrix24.com\"}".into(),
            );
        }
        let portal = choice
            .portal
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                "Bitrix24 needs the portal's address: {\"portal\": \"acme.bitrix24.com\"}"
                    .to_string()
            })?;
        portal::portal_origin(portal).map(Some)
    }

    /// The OAuth server the callback names (`server_domain`), if it is one of Bitrix24's.
    fn token_origin_from_callback(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Url>, ProviderError> {
        params
            .get("server_domain")
            .map(|host| portal::oauth_server_origin(host))
            .transpose()
    }

    /// `domain` must be the portal chosen at authorize, `server_domain` one of Bitrix24's
    /// OAuth servers, `member_id` an id's shape (it is compared with the tokens' afterwards).
    fn check_callback_hosts(
        &self,
        params: &BTreeMap<String, String>,
        login_origin: Option<&Url>,
    ) -> Result<(), String> {
        portal::check_callback(params, login_origin)
    }

    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
        callback_params: &BTreeMap<String, String>,
        login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let server = match callback_params.get("server_domain") {
            Some(host) => portal::oauth_server_origin(host)?,
            None => default_oauth_server(),
        };
        portal::from_tokens(tokens, callback_params, login_origin, &server)
    }

    fn account_after_refresh(
        &self,
        account: &BTreeMap<String, String>,
        tokens: &TokenSet,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        Ok(portal::after_refresh(account, tokens))
    }

    /// `https://{portal}/rest`: the endpoint the OAuth server named, checked again.
    fn api_base(
        &self,
        _config: &Config,
        default_base: Url,
        account: &BTreeMap<String, String>,
    ) -> Url {
        portal::stored_rest_endpoint(account).unwrap_or(default_base)
    }

    fn token_origin(&self, account: &BTreeMap<String, String>) -> Option<Url> {
        portal::stored_oauth_server(account)
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        push::pipelines(session).await
    }

    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
    ) -> Result<Option<String>, ProviderError> {
        push::find_contact(session, field, value).await
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

    /// Four `batch` calls for up to 50 leads' commands each (find, contacts, deals, comments).
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        batch::push_leads(session, settings, batch).await
    }
}

/// The registry's OAuth server, where a callback names none.
fn default_oauth_server() -> Url {
    let token_url = Url::parse(BITRIX24.oauth().expect("OAuth").token_url).expect("registry URL");
    portal::oauth_server_origin(token_url.host_str().unwrap_or_default())
        .expect("the registry's server is listed")
}
