//! The `CrmProvider` trait and one module per provider. A provider module holds that provider's
//! endpoints, field mapping and quirks and nothing else: HTTP, retries, auth headers and token
//! handling are shared.

pub mod hubspot;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::SecretString;
use serde::Serialize;
use url::Url;

use crate::credentials::Credentials;
use crate::error::ProviderError;
use crate::http::{HttpClient, OutboundRequest};
use crate::lead::{ContactQuery, Lead};
use crate::oauth::{OAuthClient, TokenSet};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// A deal pipeline (or the provider's equivalent) and its stages, for the setup page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub stages: Vec<PipelineStage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PipelineStage {
    pub id: String,
    pub label: String,
    pub display_order: i64,
    pub is_closed: bool,
}

/// What a lead has become in one CRM so far. The push fills it in as each record is created, so
/// that a push interrupted halfway resumes instead of creating a record twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushProgress {
    /// Record kind (`contact`, `deal`, `note`, ...) to the CRM's id.
    pub records: BTreeMap<String, String>,
    /// The CRM stage the deal is in.
    pub stage: Option<String>,
    /// Digest of the summary the note holds (see [`text_digest`]).
    pub summary_digest: Option<String>,
}

/// A contact property as the provider describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyInfo {
    /// The provider's type name (`string`, `number`, `enumeration`, ...).
    pub kind: String,
    /// Allowed values, for enumerations.
    pub options: Vec<String>,
}

/// A short stable digest of a text, to tell whether a CRM already holds it.
pub fn text_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An authenticated conversation with one tenant's account at one provider.
pub struct Session<'a> {
    pub provider: Provider,
    pub http: &'a HttpClient,
    pub api_base: Url,
    pub account: &'a BTreeMap<String, String>,
    access_token: SecretString,
    auth_scheme: &'static str,
}

impl<'a> Session<'a> {
    pub fn new(
        provider: Provider,
        http: &'a HttpClient,
        api_base: Url,
        account: &'a BTreeMap<String, String>,
        access_token: SecretString,
        auth_scheme: &'static str,
    ) -> Self {
        Session {
            provider,
            http,
            api_base,
            account,
            access_token,
            auth_scheme,
        }
    }

    /// An authorized request to `path` under the account's API base.
    pub fn request(&self, operation: &'static str, method: Method, path: &str) -> OutboundRequest {
        let mut url = self.api_base.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        OutboundRequest::new(self.provider, operation, method, url)
            .authorization(self.auth_scheme, &self.access_token)
    }
}

/// What every destination can do. Connect (the code exchange) is generic OAuth; a provider adds
/// what it keeps from the token response.
#[async_trait]
pub trait CrmProvider: Send + Sync {
    fn provider(&self) -> Provider;

    /// The `Authorization` scheme of its API (`Bearer`, `Zoho-oauthtoken`, `Token token=`...).
    fn auth_scheme(&self) -> &'static str {
        "Bearer"
    }

    /// Non-secret account facts to keep from a token response (account id, data centre,
    /// instance URL). Refusing a response here refuses the connect.
    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
    ) -> Result<BTreeMap<String, String>, ProviderError>;

    /// The API base for a connected account (per data centre or instance where that varies).
    fn api_base(&self, default_base: Url, _account: &BTreeMap<String, String>) -> Url {
        default_base
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError>;

    /// Describes a contact property, or `None` when the account has no such property. Providers
    /// without tenant-chosen properties answer `None` for every name.
    async fn describe_contact_property(
        &self,
        _session: &Session<'_>,
        _name: &str,
    ) -> Result<Option<PropertyInfo>, ProviderError> {
        Ok(None)
    }

    /// Duplicate detection: the id of an existing contact matching the query, if any.
    async fn search_contact(
        &self,
        session: &Session<'_>,
        query: &ContactQuery,
    ) -> Result<Option<String>, ProviderError>;

    /// Creates or updates the lead's contact; returns its id.
    async fn sync_contact(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        existing_id: Option<&str>,
    ) -> Result<String, ProviderError>;

    /// Pushes a lead: contact, deal in the mapped pipeline and stage, the summary as a note.
    /// Records what exists in `progress` as it goes; what `progress` already names is updated,
    /// never created again.
    async fn push_lead(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError>;

    async fn refresh_token(
        &self,
        oauth: &OAuthClient<'_>,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, ProviderError> {
        oauth.refresh(refresh_token).await
    }

    /// Revokes the grant at the provider; `Ok(false)` when the provider cannot revoke.
    async fn revoke(
        &self,
        oauth: &OAuthClient<'_>,
        credentials: &Credentials,
    ) -> Result<bool, ProviderError> {
        match &credentials.refresh_token {
            Some(token) => oauth.revoke(token).await,
            None => Ok(false),
        }
    }
}

/// The implementation for a provider, where one is built.
pub fn for_provider(provider: Provider) -> Option<&'static dyn CrmProvider> {
    match provider {
        Provider::Hubspot => Some(&hubspot::HubSpot),
        _ => None,
    }
}
