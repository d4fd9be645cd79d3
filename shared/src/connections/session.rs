//! Opening a connection for API calls: its credentials decrypted, its access token refreshed
//! first when it is about to expire (or after the provider rejected it), under the connection's
//! refresh lease so that one refresh happens at a time.

use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::identity::TenantId;
use crate::oauth::OAuthClient;
use crate::provider::{CrmProvider, Session};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus};

/// Refresh when the access token has less than this left, so that a call started now does not
/// race the expiry.
const EXPIRY_MARGIN_SECONDS: i64 = 120;
/// How long a refresh lease lasts: longer than a token call with all its retries.
const LEASE_SECONDS: i64 = 60;
/// How often a caller waiting for another's refresh looks again, and for how long at most.
const WAIT_STEP: Duration = Duration::from_millis(250);
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// Attempts to store tokens that the provider has already issued: the new refresh token may be
/// the only copy in the world.
const STORE_ATTEMPTS: u32 = 5;

/// An active connection with its credentials opened.
pub struct OpenConnection<'a> {
    pub connection: Connection,
    pub implementation: &'static dyn CrmProvider,
    services: &'a Services,
    credentials: Credentials,
}

/// Why a refresh is wanted: the token is (nearly) expired, or the provider refused this token.
enum RefreshCause {
    Expiring,
    Rejected(SecretString),
}

impl<'a> OpenConnection<'a> {
    /// A session for API calls on this connection.
    pub fn session(&self) -> Result<Session<'_>, Error> {
        let provider = self.connection.provider;
        let facts = provider.facts().ok_or(Error::NotSupported(provider))?;
        let token: SecretString = self
            .credentials
            .access_token
            .clone()
            .or_else(|| self.credentials.api_key.clone())
            .ok_or_else(|| Error::NeedsReauth {
                provider,
                reason: "no usable credential is stored".into(),
            })?;
        let default_base = self.services.config.provider_url(provider, facts.api_base);
        Ok(Session::new(
            provider,
            &self.services.http,
            self.implementation.api_base(default_base, &self.connection.account),
            &self.connection.account,
            token,
            self.implementation.auth_scheme(),
        ))
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The provider refused the current access token: refresh once (unless someone already
    /// did) so the caller can retry with the new one.
    pub async fn refresh_after_rejection(&mut self) -> Result<(), Error> {
        let rejected = self.credentials.access_token.clone().ok_or_else(|| Error::NeedsReauth {
            provider: self.connection.provider,
            reason: "no access token is stored".into(),
        })?;
        refresh_under_lease(self, RefreshCause::Rejected(rejected)).await
    }

    /// Records that the provider no longer accepts this connection, and says so.
    pub async fn needs_reauth(&self, error: &ProviderError) -> Error {
        mark_needs_reauth(self.services, &self.connection, &error.to_string()).await
    }
}

async fn mark_needs_reauth(services: &Services, connection: &Connection, reason: &str) -> Error {
    let provider = connection.provider;
    if let Err(store_error) = services
        .store
        .mark_needs_reauth(&connection.tenant_id, provider, reason, Utc::now())
        .await
    {
        tracing::error!(error = %store_error, "could not mark the connection needs_reauth");
    }
    tracing::warn!(reason = %reason, "connection needs re-authorisation");
    Error::NeedsReauth {
        provider,
        reason: reason.to_string(),
    }
}

fn expiring(connection: &Connection) -> bool {
    connection
        .token_expiry()
        .is_some_and(|at| (at - Utc::now()).num_seconds() < EXPIRY_MARGIN_SECONDS)
}

fn require_active(connection: &Connection) -> Result<(), Error> {
    if connection.status == ConnectionStatus::Active {
        return Ok(());
    }
    Err(Error::NeedsReauth {
        provider: connection.provider,
        reason: connection
            .last_error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "the connection is not active".into()),
    })
}

/// Loads a tenant's connection, opens its credentials and refreshes an access token that is
/// (nearly) expired.
#[tracing::instrument(skip_all, fields(tenant = %tenant, provider = %provider))]
pub async fn open_session<'a>(
    services: &'a Services,
    tenant: &TenantId,
    provider: Provider,
) -> Result<OpenConnection<'a>, Error> {
    let implementation = super::implementation(provider)?;
    let connection = services
        .store
        .get_connection(tenant, provider)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
    require_active(&connection)?;
    let credentials = services
        .vault
        .open(tenant, provider, &connection.credentials)
        .await?;
    let needs_refresh = expiring(&connection);
    let mut open = OpenConnection {
        connection,
        implementation,
        services,
        credentials,
    };
    if needs_refresh {
        refresh_under_lease(&mut open, RefreshCause::Expiring).await?;
    }
    Ok(open)
}

/// Whether the stored row already answers the cause (someone else refreshed meanwhile).
fn already_fresh(connection: &Connection, credentials: &Credentials, cause: &RefreshCause) -> bool {
    match cause {
        RefreshCause::Expiring => !expiring(connection),
        RefreshCause::Rejected(rejected) => credentials
            .access_token
            .as_ref()
            .is_some_and(|current| current.expose_secret() != rejected.expose_secret()),
    }
}

/// One refresh per connection at a time. The lease holder re-reads the row (someone may have
/// refreshed before it got the lease), refreshes at the provider, and stores the new tokens —
/// retrying the store, since a rotated refresh token exists nowhere else — before anyone uses
/// them. Everyone else waits for the holder's write and uses its tokens.
async fn refresh_under_lease(open: &mut OpenConnection<'_>, cause: RefreshCause) -> Result<(), Error> {
    let services = open.services;
    let tenant = open.connection.tenant_id.clone();
    let provider = open.connection.provider;
    let owner = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    loop {
        let now = Utc::now();
        let leased = services
            .store
            .acquire_refresh_lease(&tenant, provider, &owner, now, now + chrono::Duration::seconds(LEASE_SECONDS))
            .await?;
        match leased {
            Some(connection) => return refresh_holding_lease(open, connection, &owner, &cause).await,
            None => {
                if started.elapsed() > WAIT_LIMIT {
                    return Err(Error::Busy(format!("a refresh of the {provider} connection is taking long")));
                }
                tokio::time::sleep(WAIT_STEP).await;
                let current = services
                    .store
                    .get_connection(&tenant, provider)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
                require_active(&current)?;
                if current.version != open.connection.version {
                    let credentials = services.vault.open(&tenant, provider, &current.credentials).await?;
                    if already_fresh(&current, &credentials, &cause) {
                        open.connection = current;
                        open.credentials = credentials;
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn refresh_holding_lease(
    open: &mut OpenConnection<'_>,
    connection: Connection,
    owner: &str,
    cause: &RefreshCause,
) -> Result<(), Error> {
    let services = open.services;
    let tenant = connection.tenant_id.clone();
    let provider = connection.provider;
    let release = || async {
        if let Err(e) = services.store.release_refresh_lease(&tenant, provider, owner).await {
            tracing::warn!(error = %e, "could not release the refresh lease; it will lapse");
        }
    };
    if let Err(e) = require_active(&connection) {
        release().await;
        return Err(e);
    }
    let credentials = match services.vault.open(&tenant, provider, &connection.credentials).await {
        Ok(c) => c,
        Err(e) => {
            release().await;
            return Err(e.into());
        }
    };
    if already_fresh(&connection, &credentials, cause) {
        release().await;
        open.connection = connection;
        open.credentials = credentials;
        return Ok(());
    }
    let Some(refresh_token) = credentials.refresh_token.clone() else {
        release().await;
        return Err(mark_needs_reauth(services, &connection, "no refresh token is stored").await);
    };
    let oauth = OAuthClient::new(provider, &services.config, &services.http)?;
    let tokens = match open.implementation.refresh_token(&oauth, &refresh_token).await {
        Ok(tokens) => tokens,
        Err(error @ ProviderError::InvalidGrant { .. }) => {
            return Err(mark_needs_reauth(services, &connection, &error.to_string()).await)
        }
        Err(error) => {
            release().await;
            return Err(error.into());
        }
    };
    let fresh = Credentials {
        access_token: Some(tokens.access_token),
        // Whenever the provider sends a refresh token it replaces ours; otherwise ours stays.
        refresh_token: tokens.refresh_token.or(Some(refresh_token)),
        api_key: None,
    };
    let mut attempt = 0;
    let sealed = loop {
        attempt += 1;
        match services.vault.seal(&tenant, provider, &fresh).await {
            Ok(sealed) => break sealed,
            Err(e) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "sealing refreshed tokens failed; retrying");
                tokio::time::sleep(WAIT_STEP * attempt).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match services
            .store
            .store_refreshed_tokens(&tenant, provider, owner, connection.version, &sealed, tokens.expires_at)
            .await
        {
            Ok(true) => break,
            Ok(false) => {
                tracing::error!("the refresh lease was taken over before the new tokens were stored");
                return Err(Error::Busy(format!("the {provider} refresh lease was lost")));
            }
            Err(e) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "storing refreshed tokens failed; retrying");
                tokio::time::sleep(WAIT_STEP * attempt).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "refreshed tokens could not be stored");
                return Err(e);
            }
        }
    }
    tracing::info!(expires_at = ?tokens.expires_at, "access token refreshed");
    let mut stored = connection;
    stored.version += 1;
    stored.credentials = sealed;
    stored.token_expires_at = tokens.expires_at.map(|t| t.timestamp());
    stored.refresh_lease_owner = None;
    stored.refresh_lease_until = None;
    open.connection = stored;
    open.credentials = fresh;
    Ok(())
}
