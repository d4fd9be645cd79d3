//! Opening a connection for API calls: its credentials decrypted, its access token refreshed
//! first when it is about to expire (or after the provider rejected it). Refreshes go through
//! [`crate::refresh`], under the connection's refresh lease.

use chrono::Utc;
use futures::future::BoxFuture;
use secrecy::SecretString;

use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::identity::TenantId;
use crate::provider::{CrmProvider, Session};
use crate::push::Lane;
use crate::ratelimit::{RateKey, RateTag};
use crate::refresh::{self, RefreshCause};
use crate::registry::AccountIdentity;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::Connection;

/// An active connection with its credentials opened.
pub struct OpenConnection<'a> {
    pub connection: Connection,
    pub implementation: &'static dyn CrmProvider,
    services: &'a Services,
    credentials: Credentials,
    /// Which lane's share of the account's rate limit this connection's calls take.
    lane: Lane,
}

impl<'a> OpenConnection<'a> {
    /// The same connection, its calls taking capacity as `lane` (live by default): a backfill
    /// takes only what live leads leave of the account's rate limit.
    pub fn with_lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }

    /// The lane this connection's calls take capacity as.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// A session for API calls on this connection.
    pub fn session(&self) -> Result<Session<'_>, Error> {
        let provider = self.connection.provider;
        let token: SecretString = self
            .credentials
            .access_token
            .clone()
            .or_else(|| self.credentials.api_key.clone())
            .ok_or_else(|| Error::NeedsReauth {
                provider,
                reason: "no usable credential is stored".into(),
            })?;
        let session = api_session(
            self.services,
            self.implementation,
            &self.connection.account,
            token,
        )?;
        Ok(session
            .with_schema_cache(crate::store::SchemaCache::new(
                &self.services.store,
                &self.connection.tenant_id,
                provider,
                self.services.config.schema_cache_ttl,
            ))
            .with_rate_limit(RateTag {
                key: rate_key(&self.connection),
                lane: self.lane,
            }))
    }

    /// Runs one provider call on this connection. If the provider rejects the access token, it
    /// is refreshed once under the refresh lease (unless someone already did) and the call made
    /// again; a second rejection, or a dead grant, marks the connection `needs_reauth`.
    /// `state` is handed to each attempt (a push's progress, or `()`).
    pub async fn call<A, T>(
        &mut self,
        state: &mut A,
        call: impl for<'s> Fn(&'s Session<'s>, &'s mut A) -> BoxFuture<'s, Result<T, ProviderError>>,
    ) -> Result<T, Error> {
        let mut refreshed = false;
        loop {
            let session = self.session()?;
            let result = call(&session, state).await;
            drop(session);
            if matches!(result, Err(ProviderError::Unauthorized { .. })) {
                // The opened credentials were refused: never serve them from the cache again.
                self.services
                    .vault
                    .forget(&self.connection.tenant_id, self.connection.provider);
            }
            match result {
                Ok(value) => return Ok(value),
                // An API key cannot be refreshed: a refused key needs the tenant.
                Err(ProviderError::Unauthorized { .. })
                    if !refreshed && self.credentials.refresh_token.is_some() =>
                {
                    tracing::info!("the provider rejected the access token; refreshing once");
                    self.refresh_after_rejection().await?;
                    refreshed = true;
                }
                Err(
                    error @ (ProviderError::Unauthorized { .. }
                    | ProviderError::InvalidGrant { .. }),
                ) => return Err(self.needs_reauth(&error).await),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The provider refused the current access token: refresh once (unless someone already
    /// did) so the caller can retry with the new one.
    async fn refresh_after_rejection(&mut self) -> Result<(), Error> {
        let rejected = self
            .credentials
            .access_token
            .clone()
            .ok_or_else(|| Error::NeedsReauth {
                provider: self.connection.provider,
                reason: "no access token is stored".into(),
            })?;
        let refreshed = refresh::refresh(
            self.services,
            self.connection.clone(),
            RefreshCause::Rejected(rejected),
        )
        .await?;
        self.connection = refreshed.connection;
        self.credentials = refreshed.credentials;
        Ok(())
    }

    /// Records that the provider no longer accepts this connection, and says so.
    async fn needs_reauth(&self, error: &ProviderError) -> Error {
        refresh::mark_needs_reauth(self.services, &self.connection, &error.to_string()).await
    }
}

/// The account the provider meters a connection's calls under: the CRM account the registry
/// names (hub, org, portal, domain). Google meters Sheets per user, and a connection is one
/// user's grant, so it is keyed by the tenant, as is a row without its account fact.
pub fn rate_key(connection: &Connection) -> RateKey {
    let provider = connection.provider;
    let account = match provider.facts().map(|f| f.account_identity) {
        Some(AccountIdentity::AccountFact(fact)) => connection.account.get(fact).cloned(),
        _ => None,
    };
    RateKey::new(
        provider,
        account.unwrap_or_else(|| format!("tenant:{}", connection.tenant_id)),
    )
}

/// A session on `account`'s API base (the registry's, moved for local runs, or the account's
/// own data centre or instance) with `token`.
pub(crate) fn api_session<'a>(
    services: &'a Services,
    implementation: &'static dyn CrmProvider,
    account: &'a std::collections::BTreeMap<String, String>,
    token: SecretString,
) -> Result<Session<'a>, Error> {
    let provider = implementation.provider();
    let facts = provider.facts().ok_or(Error::NotSupported(provider))?;
    let default_base = services.config.provider_url(provider, facts.api_base);
    Ok(Session::new(
        provider,
        &services.http,
        implementation.api_base(&services.config, default_base, account),
        account,
        token,
        implementation.auth_scheme(),
    ))
}

/// Loads a tenant's connection, opens its credentials and refreshes an access token that is
/// (nearly) expired.
#[tracing::instrument(skip_all, fields(tenant = %tenant, provider = %provider))]
pub async fn open_session<'a>(
    services: &'a Services,
    tenant: &TenantId,
    provider: Provider,
) -> Result<OpenConnection<'a>, Error> {
    let connection = services
        .store
        .get_connection(tenant, provider)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
    open_connection(services, connection).await
}

/// Opens a connection row the caller has already read (lead push lists them all first).
pub async fn open_connection(
    services: &Services,
    connection: Connection,
) -> Result<OpenConnection<'_>, Error> {
    let tenant = &connection.tenant_id;
    let provider = connection.provider;
    let implementation = super::implementation(provider)?;
    refresh::require_active(&connection)?;
    if refresh::expiring(&connection, Utc::now()) {
        let refreshed = refresh::refresh(services, connection, RefreshCause::Expiring).await?;
        return Ok(OpenConnection {
            connection: refreshed.connection,
            implementation,
            services,
            credentials: refreshed.credentials,
            lane: Lane::Live,
        });
    }
    let credentials = services
        .vault
        .open(tenant, provider, &connection.credentials)
        .await?;
    Ok(OpenConnection {
        connection,
        implementation,
        services,
        credentials,
        lane: Lane::Live,
    })
}
