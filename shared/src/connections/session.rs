use chrono::Utc;
use secrecy::SecretString;

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

/// An active connection with its credentials opened (and refreshed if they were about to
/// expire).
pub struct OpenConnection<'a> {
    pub connection: Connection,
    pub implementation: &'static dyn CrmProvider,
    services: &'a Services,
    credentials: Credentials,
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

    /// Records that the provider no longer accepts this connection, and says so.
    pub async fn needs_reauth(&self, error: &ProviderError) -> Error {
        let provider = self.connection.provider;
        let reason = error.to_string();
        if let Err(store_error) = self
            .services
            .store
            .mark_needs_reauth(&self.connection.tenant_id, provider, &reason, Utc::now())
            .await
        {
            tracing::error!(error = %store_error, "could not mark the connection needs_reauth");
        }
        tracing::warn!(reason = %reason, "connection needs re-authorisation");
        Error::NeedsReauth { provider, reason }
    }
}

/// Loads a tenant's connection, opens its credentials and refreshes an access token that is
/// (nearly) expired. A refresh whose write loses to another writer uses the winner's tokens.
#[tracing::instrument(skip_all, fields(tenant = %tenant, provider = %provider))]
pub async fn open_session<'a>(
    services: &'a Services,
    tenant: &TenantId,
    provider: Provider,
) -> Result<OpenConnection<'a>, Error> {
    let implementation = super::implementation(provider)?;
    for _ in 0..3 {
        let connection = services
            .store
            .get_connection(tenant, provider)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
        if connection.status != ConnectionStatus::Active {
            return Err(Error::NeedsReauth {
                provider,
                reason: connection
                    .last_error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "the connection is not active".into()),
            });
        }
        let credentials = services
            .vault
            .open(tenant, provider, &connection.credentials)
            .await?;
        let expiring = connection
            .token_expiry()
            .is_some_and(|at| (at - Utc::now()).num_seconds() < EXPIRY_MARGIN_SECONDS);
        let mut open = OpenConnection {
            connection,
            implementation,
            services,
            credentials,
        };
        if !expiring {
            return Ok(open);
        }
        if refresh(&mut open).await? {
            return Ok(open);
        }
        // Someone else refreshed first: read their tokens.
    }
    Err(Error::Conflict(format!("the {provider} connection is changing too fast")))
}

/// Refreshes and stores the new tokens; `Ok(false)` when another writer got there first.
async fn refresh(open: &mut OpenConnection<'_>) -> Result<bool, Error> {
    let services = open.services;
    let provider = open.connection.provider;
    let tenant = open.connection.tenant_id.clone();
    let refresh_token = open.credentials.refresh_token.clone().ok_or_else(|| Error::NeedsReauth {
        provider,
        reason: "no refresh token is stored".into(),
    })?;
    let oauth = OAuthClient::new(provider, &services.config, &services.http)?;
    let tokens = match open.implementation.refresh_token(&oauth, &refresh_token).await {
        Ok(tokens) => tokens,
        Err(error @ ProviderError::InvalidGrant { .. }) => return Err(open.needs_reauth(&error).await),
        Err(error) => return Err(error.into()),
    };
    let credentials = Credentials {
        access_token: Some(tokens.access_token),
        // Keep the stored refresh token unless the provider sent a new one.
        refresh_token: tokens.refresh_token.or(Some(refresh_token)),
        api_key: None,
    };
    let sealed = services.vault.seal(&tenant, provider, &credentials).await?;
    let stored = services
        .store
        .update_tokens(&tenant, provider, open.connection.version, &sealed, tokens.expires_at)
        .await?;
    if stored {
        tracing::info!(expires_at = ?tokens.expires_at, "access token refreshed");
        open.connection.version += 1;
        open.connection.credentials = sealed;
        open.connection.token_expires_at = tokens.expires_at.map(|t| t.timestamp());
        open.credentials = credentials;
    }
    Ok(stored)
}
