//! The `CrmProvider` trait and one module per provider. A provider module holds that provider's
//! endpoints, field mapping and quirks and nothing else: HTTP, retries, auth headers and token
//! handling are shared.

mod batch;
pub mod bitrix24;
pub mod freshsales;
pub mod google_sheets;
pub mod hubspot;
pub mod links;
mod progress;
pub mod salesforce;
pub mod zoho;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::SecretString;
use serde::Serialize;
use url::Url;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::http::{HttpClient, OutboundRequest};
use crate::lead::{ContactField, ContactQuery, Lead};
use crate::oauth::{OAuthClient, TokenSet};
use crate::registry::Provider;
use crate::store::ConnectionSettings;
pub use batch::{copy_error, BatchJournal, BatchLead, LeadBatch};
pub use progress::{ProgressJournal, ProgressSnapshot, PushProgress};

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

/// A contact property as the provider describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyInfo {
    /// The provider's type name (`string`, `number`, `enumeration`, ...).
    pub kind: String,
    /// Allowed values, for enumerations.
    pub options: Vec<String>,
}

/// What a CRM calls a person's fields.
pub struct PersonFields {
    pub last_name: &'static str,
    pub first_name: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
}

/// The lead's name, email and phone under a CRM's field names. Absent values are left out so
/// they never blank what the CRM already holds. A nameless lead's placeholder last name
/// (`Unknown`) is written only with `placeholder_allowed`: never over a real name on a record
/// found by email or phone.
pub fn person_fields(
    lead: &Lead,
    names: &PersonFields,
    placeholder_allowed: bool,
) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    let nameless = lead
        .warnings
        .contains(&crate::lead::LeadWarning::NameMissing);
    if !nameless || placeholder_allowed {
        fields.insert(names.last_name.into(), lead.last_name.clone().into());
    }
    let values = [
        (names.first_name, &lead.first_name),
        (names.email, &lead.email),
        (names.phone, &lead.phone),
    ];
    for (name, value) in values {
        if let Some(value) = value {
            fields.insert(name.into(), value.clone().into());
        }
    }
    fields
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

/// The pipeline and stage for a lead's new deal: the tenant's mapping for the lead's stage,
/// else the first open stage of the tenant's pipeline (or of the account's first pipeline
/// without settings), read live.
pub async fn deal_stage(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
) -> Result<(String, String), ProviderError> {
    if let Some(settings) = settings {
        if let Some(stage) = settings.stage_mapping.get(&lead.stage) {
            return Ok((settings.pipeline_id.clone(), stage.clone()));
        }
    }
    let implementation = for_provider(session.provider).ok_or(ProviderError::Rejected {
        provider: session.provider,
        status: 0,
        code: "not_built".into(),
        message: "no implementation for this provider".into(),
    })?;
    let pipelines = implementation.get_pipelines(session).await?;
    default_stage(
        session.provider,
        &pipelines,
        settings.map(|s| s.pipeline_id.as_str()),
    )
}

/// The first open stage of the named pipeline (or of the first pipeline without one).
fn default_stage(
    provider: Provider,
    pipelines: &[Pipeline],
    pipeline_id: Option<&str>,
) -> Result<(String, String), ProviderError> {
    let pipeline = match pipeline_id {
        Some(id) => pipelines.iter().find(|p| p.id == id),
        None => pipelines.first(),
    }
    .ok_or_else(|| ProviderError::Rejected {
        provider,
        status: 404,
        code: "PIPELINE_NOT_FOUND".into(),
        message: "the configured pipeline no longer exists".into(),
    })?;
    let stage = pipeline
        .stages
        .iter()
        .find(|s| !s.is_closed)
        .or(pipeline.stages.first())
        .ok_or_else(|| ProviderError::Rejected {
            provider,
            status: 404,
            code: "PIPELINE_HAS_NO_STAGES".into(),
            message: "the pipeline has no stages".into(),
        })?;
    Ok((pipeline.id.clone(), stage.id.clone()))
}

/// Where the setup page asks the user to log in, for providers with several login hosts
/// (Salesforce: production, sandbox, or the org's My Domain; Bitrix24: the tenant's portal).
/// Body of the authorize route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginChoice {
    /// `production` (the default) or `sandbox`.
    #[serde(default)]
    pub environment: Option<String>,
    /// The org's own login host (`acme.my.salesforce.com`), where its admin requires it.
    #[serde(default)]
    pub my_domain: Option<String>,
    /// The Bitrix24 portal (`acme.bitrix24.com`, or its URL as the browser shows it).
    #[serde(default)]
    pub portal: Option<String>,
}

impl LoginChoice {
    pub fn is_empty(&self) -> bool {
        self.environment.is_none() && self.my_domain.is_none() && self.portal.is_none()
    }
}

/// An authenticated conversation with one tenant's account at one provider.
pub struct Session<'a> {
    pub provider: Provider,
    pub http: &'a HttpClient,
    pub api_base: Url,
    pub account: &'a BTreeMap<String, String>,
    /// Where a provider keeps what it described of the account (Salesforce's objects), when
    /// the session serves a stored connection.
    pub schema_cache: Option<crate::store::SchemaCache<'a>>,
    /// The account and lane every request of this session takes rate-limit capacity as
    /// (sessions of stored connections; see `crate::ratelimit`).
    pub rate: Option<crate::ratelimit::RateTag>,
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
            schema_cache: None,
            rate: None,
            access_token,
            auth_scheme,
        }
    }

    /// The same session with a schema cache.
    pub fn with_schema_cache(mut self, cache: crate::store::SchemaCache<'a>) -> Self {
        self.schema_cache = Some(cache);
        self
    }

    /// The same session, its requests taking capacity from `tag`'s shared rate limit.
    pub fn with_rate_limit(mut self, tag: crate::ratelimit::RateTag) -> Self {
        self.rate = Some(tag);
        self
    }

    /// An authorized request to `path` on the API base's own origin (another API family of the
    /// same host, such as Salesforce's SOAP endpoint).
    pub fn request_on_origin(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
    ) -> OutboundRequest {
        let mut url = self.api_base.clone();
        url.set_path(path);
        url.set_query(None);
        OutboundRequest::new(self.provider, operation, method, url)
            .rate_limited(self.rate.clone())
            .authorization(self.auth_scheme, &self.access_token)
    }

    /// The access token itself, for a protocol that carries it in the body rather than a
    /// header (Salesforce SOAP's `sessionId`). Never log what this is put into.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// A request to `path` under the account's API base without an `Authorization` header, for
    /// an API that takes the token among its parameters (Bitrix24's `auth`). Never log what the
    /// token is put into.
    pub fn unauthenticated_request(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
    ) -> OutboundRequest {
        let mut url = self.api_base.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        OutboundRequest::new(self.provider, operation, method, url).rate_limited(self.rate.clone())
    }

    /// An authorized request to `path` under the account's API base.
    pub fn request(&self, operation: &'static str, method: Method, path: &str) -> OutboundRequest {
        self.unauthenticated_request(operation, method, path)
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

    /// Where to exchange the code, for providers whose callback names the user's own
    /// accounts server (Zoho's data centres): `params` are the callback's query parameters
    /// beyond `code`, `state` and `error`. A host that is not the provider's is refused here,
    /// before any code is sent to it. `None`: the registry's token endpoint.
    fn token_origin_from_callback(
        &self,
        _params: &BTreeMap<String, String>,
    ) -> Result<Option<Url>, ProviderError> {
        Ok(None)
    }

    /// Checks every callback parameter that names a host or an account against what the
    /// state recorded at authorize (`login_origin`) and the registry's allow-lists, before the
    /// code goes anywhere. `Err` says which parameter did not match (never its value).
    fn check_callback_hosts(
        &self,
        _params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The login origin for a consent, from the setup page's choice (Salesforce: sandbox, or
    /// the org's My Domain), checked to be the provider's; `None`: the registry's. Providers
    /// with one login host refuse any choice.
    fn login_origin(&self, choice: &LoginChoice) -> Result<Option<Url>, String> {
        if choice.is_empty() {
            Ok(None)
        } else {
            Err(format!(
                "{} has one login host; send no body",
                self.provider()
            ))
        }
    }

    /// Non-secret account facts to keep from a token response and the callback's extra
    /// parameters (account id, data centre, instance URL). `login_origin` is where the code was
    /// exchanged when that was not the registry's host. Refusing them refuses the connect.
    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
        callback_params: &BTreeMap<String, String>,
        login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError>;

    /// The account facts after a refresh, where a refresh answer can change them (Salesforce
    /// names the instance again, and an org that migrated has a new one); `None`: unchanged.
    fn account_after_refresh(
        &self,
        _account: &BTreeMap<String, String>,
        _tokens: &TokenSet,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        Ok(None)
    }

    /// For API-key providers: the account facts (its own host) from the domain the tenant
    /// pasted, or why that domain is refused.
    fn account_for_domain(&self, _domain: &str) -> Result<BTreeMap<String, String>, String> {
        Err(format!(
            "{} does not connect with an API key",
            self.provider()
        ))
    }

    /// The API base for a connected account (per data centre or instance where that varies,
    /// with the configured API version where the provider versions its paths).
    fn api_base(
        &self,
        _config: &Config,
        default_base: Url,
        _account: &BTreeMap<String, String>,
    ) -> Url {
        default_base
    }

    /// The connected account's own token and revocation origin, where that varies.
    fn token_origin(&self, _account: &BTreeMap<String, String>) -> Option<Url> {
        None
    }

    /// The OAuth client for a connected account: this deployment's app, on the account's own
    /// accounts server where the provider has several.
    fn oauth_client<'a>(
        &self,
        config: &'a Config,
        http: &'a HttpClient,
        account: &BTreeMap<String, String>,
    ) -> Result<OAuthClient<'a>, Error> {
        let client = OAuthClient::new(self.provider(), config, http)?;
        Ok(match self.token_origin(account) {
            Some(origin) => client.at_origin(&origin),
            None => client,
        })
    }

    /// The lead properties that receive the source and score when the tenant names none
    /// (Zoho: `Lead_Source`, `Rating`), each used only where the account has it.
    fn default_lead_properties(&self) -> (Option<&'static str>, Option<&'static str>) {
        (None, None)
    }

    /// Whether settings may send LeadRelay fields to fields the tenant names (Salesforce's
    /// custom fields); each is checked with [`CrmProvider::describe_contact_property`].
    fn maps_lead_fields(&self) -> bool {
        false
    }

    /// Whether a lead can be converted (Zoho, Salesforce: Lead into Contact and Deal), so that
    /// settings may name the stage at which that happens.
    fn converts_leads(&self) -> bool {
        false
    }

    /// Account facts that take an API call to learn (Zoho's organisation id), asked once
    /// right after the code exchange; the call also proves the new token works.
    async fn account_details(
        &self,
        _session: &Session<'_>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(BTreeMap::new())
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
    ) -> Result<Option<String>, ProviderError> {
        for (field, value) in query.criteria() {
            if let Some(id) = self.find_contact(session, field, value).await? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The id of an existing contact whose `field` equals `value`, if any.
    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
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

    /// Pushes a batch of one tenant's leads (one settings, one session) with the provider's
    /// batch APIs; see [`batch`](LeadBatch) for the rules. A per-record error fails that lead
    /// alone ([`LeadBatch::fail`]); `Err` fails every lead still open. The default pushes one
    /// lead after the other through [`CrmProvider::push_lead`].
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        for index in batch.open() {
            let item = batch.lead_mut(index);
            let lead = item.lead;
            if let Err(error) = self
                .push_lead(session, lead, settings, &mut item.progress)
                .await
            {
                // A lost token or an outage concerns every lead: stop and let the caller
                // refresh or retry; a refusal of this lead's data is this lead's alone.
                if error.is_retryable() || is_session_error(&error) {
                    return Err(error);
                }
                batch.fail(index, error);
            }
        }
        Ok(())
    }

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

/// Whether an error concerns the session (its token), not one lead.
pub fn is_session_error(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::Unauthorized { .. } | ProviderError::InvalidGrant { .. }
    )
}

/// The implementation for a provider, where one is built.
pub fn for_provider(provider: Provider) -> Option<&'static dyn CrmProvider> {
    match provider {
        Provider::Hubspot => Some(&hubspot::HubSpot),
        Provider::Zoho => Some(&zoho::Zoho),
        Provider::Freshsales => Some(&freshsales::Freshsales),
        Provider::Salesforce => Some(&salesforce::Salesforce),
        Provider::Bitrix24 => Some(&bitrix24::Bitrix24),
        Provider::GoogleSheets => Some(&google_sheets::GoogleSheets),
    }
}
