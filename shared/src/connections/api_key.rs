//! `PUT /connections/{provider}` for providers that connect with an API key (Freshsales): the
//! account's domain is validated and normalised, the key is tried with one cheap call, and
//! only a working key is stored, encrypted like an OAuth token. It is never echoed back.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::persist::{store_connection, NewConnection};
use super::session::api_session;
use super::ConnectionView;
use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::identity::Caller;
use crate::registry::{AuthFacts, Provider};
use crate::services::Services;

/// The body. Not `Debug`: it holds the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub domain: String,
    api_key: String,
}

impl ApiKeyInput {
    pub fn new(domain: &str, api_key: &str) -> ApiKeyInput {
        ApiKeyInput {
            domain: domain.to_string(),
            api_key: api_key.to_string(),
        }
    }
}

/// Longest key accepted; Freshsales keys are about 22 characters.
const MAX_KEY_CHARS: usize = 200;

#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn connect_with_api_key(
    services: &Services,
    caller: &Caller,
    provider: Provider,
    input: ApiKeyInput,
) -> Result<ConnectionView, Error> {
    let implementation = super::implementation(provider)?;
    let facts = provider.facts().ok_or(Error::NotSupported(provider))?;
    if !matches!(facts.auth, AuthFacts::ApiKey) {
        return Err(Error::BadRequest(format!(
            "{} connects with OAuth: POST /connections/{provider}/authorize",
            facts.display_name
        )));
    }
    super::check_plan(services, caller, provider).await?;

    let mut account = implementation
        .account_for_domain(&input.domain)
        .map_err(Error::BadRequest)?;
    let key = SecretString::from(input.api_key.trim().to_string());
    // What infra/openapi.yaml promises: one word of printable ASCII (it goes in a header).
    let plausible = !key.expose_secret().is_empty()
        && key.expose_secret().len() <= MAX_KEY_CHARS
        && key.expose_secret().bytes().all(|b| b.is_ascii_graphic());
    if !plausible {
        return Err(Error::BadRequest(
            "the API key is empty or not a key (it must be one word of printable ASCII, at most 200 characters)"
                .into(),
        ));
    }
    let host = account.get("domain").cloned().unwrap_or_default();
    let session = api_session(services, implementation, &account, key.clone())?;
    let details = implementation
        .account_details(&session)
        .await
        .map_err(|e| refused_key(facts.display_name, &host, e))?;
    drop(session);
    account.extend(details);

    let credentials = Credentials {
        access_token: None,
        refresh_token: None,
        api_key: Some(key),
    };
    let sealed = services
        .vault
        .seal(&caller.tenant, provider, &credentials)
        .await?;
    let replaced = store_connection(
        services,
        NewConnection {
            tenant: &caller.tenant,
            provider,
            sealed,
            has_refresh_token: false,
            account,
            expires_at: None,
            claimed_plan: Some(caller.plan_claim()),
        },
    )
    .await?;
    tracing::info!(domain = %host, reconnect = replaced.is_some(), "API key checked and stored");
    super::callback::release_parked_after_connect(services, &caller.tenant, provider).await;
    let stored = services
        .store
        .get_connection(&caller.tenant, provider)
        .await?
        .ok_or_else(|| Error::Conflict("the connection was removed meanwhile".into()))?;
    Ok(ConnectionView::from(&stored))
}

/// What the tenant is told when the key check fails: what is wrong, never the key.
fn refused_key(name: &str, host: &str, error: ProviderError) -> Error {
    tracing::info!(error = %error, "the API key check failed");
    match error {
        ProviderError::Unauthorized { .. } | ProviderError::InvalidGrant { .. } => {
            Error::BadRequest(format!(
                "{name} refused the API key for {host}: copy it again from Settings > API Settings"
            ))
        }
        ProviderError::Rejected { status: 403, .. } => Error::BadRequest(format!(
            "the API key works but its user may not read {name}'s settings; use the key of a user who can manage contacts and deals"
        )),
        // The request was well formed; the account it names does not exist.
        ProviderError::Rejected { status: 404, .. } => {
            Error::NotFound(format!("a {name} account at {host}"))
        }
        error if error.is_retryable() => Error::Provider(error),
        error => Error::BadRequest(format!("{name} refused the key check: {error}")),
    }
}
