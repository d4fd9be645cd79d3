use chrono::Utc;
use secrecy::SecretString;
use tracing::field;
use url::Url;

use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::oauth::{state, OAuthClient};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus, TokenSchedule};

/// The callback's query string. Not `Debug`: the code is a secret.
#[derive(Default)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// Why a callback did not connect; the `reason` sent back to the setup page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    AccessDenied,
    AuthorizationFailed,
    State(&'static str),
    MissingCode,
    TokenExchangeFailed,
    ProviderUnavailable,
    Internal,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::AccessDenied => "access_denied",
            Failure::AuthorizationFailed => "authorization_failed",
            Failure::State(reason) => reason,
            Failure::MissingCode => "missing_code",
            Failure::TokenExchangeFailed => "token_exchange_failed",
            Failure::ProviderUnavailable => "provider_unavailable",
            Failure::Internal => "internal",
        }
    }
}

/// `GET /oauth/{provider}/callback`. Always ends in a redirect to the configured setup page,
/// with `status=connected` or `status=error&reason=...`; never anywhere else.
#[tracing::instrument(skip_all, fields(provider = provider_slug, tenant = field::Empty))]
pub async fn complete_authorization(
    services: &Services,
    provider_slug: &str,
    params: CallbackParams,
) -> Url {
    let provider = provider_slug.parse::<Provider>().ok();
    let outcome = match provider {
        Some(provider) => connect(services, provider, params).await,
        None => Err(Failure::ProviderUnavailable),
    };
    let mut target = services.config.setup_page_url.clone();
    {
        let mut query = target.query_pairs_mut();
        if let Some(p) = provider {
            query.append_pair("provider", p.slug());
        }
        match outcome {
            Ok(()) => {
                query.append_pair("status", "connected");
            }
            Err(failure) => {
                tracing::warn!(reason = failure.reason(), "connect failed");
                query
                    .append_pair("status", "error")
                    .append_pair("reason", failure.reason());
            }
        }
    }
    target
}

async fn connect(
    services: &Services,
    provider: Provider,
    params: CallbackParams,
) -> Result<(), Failure> {
    let state_value = params
        .state
        .filter(|s| !s.is_empty())
        .ok_or(Failure::State("invalid_state"))?;
    let pending = services
        .store
        .consume_pending_authorization(&state::state_key(&state_value), Utc::now())
        .await
        .map_err(|e| match e {
            Error::State(s) => Failure::State(s.reason()),
            other => {
                tracing::error!(error = %other, "could not consume the OAuth state");
                Failure::Internal
            }
        })?;
    tracing::Span::current().record("tenant", field::display(&pending.tenant));
    if pending.provider != provider {
        return Err(Failure::State("state_provider_mismatch"));
    }
    if let Some(error) = params.error {
        return Err(if error == "access_denied" {
            Failure::AccessDenied
        } else {
            Failure::AuthorizationFailed
        });
    }
    let code = params.code.ok_or(Failure::MissingCode)?;

    let implementation =
        super::implementation(provider).map_err(|_| Failure::ProviderUnavailable)?;
    let oauth = OAuthClient::new(provider, &services.config, &services.http)
        .map_err(|_| Failure::ProviderUnavailable)?;
    let tokens = oauth
        .exchange_code(&code, pending.pkce_verifier.as_ref())
        .await
        .map_err(exchange_failure)?;
    let account = implementation
        .account_from_tokens(&tokens)
        .map_err(exchange_failure)?;
    let credentials = Credentials {
        access_token: Some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        api_key: None,
    };
    let sealed = services
        .vault
        .seal(&pending.tenant, provider, &credentials)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not encrypt the new credentials");
            Failure::Internal
        })?;
    let obtained_at = Utc::now();
    let schedule = TokenSchedule::for_tokens(
        provider,
        tokens.expires_at,
        credentials.refresh_token.is_some(),
        obtained_at,
    );

    // A concurrent refresh may bump the row's version between our read and write: re-read and
    // write again, a bounded number of times.
    for _ in 0..3 {
        let existing = services
            .store
            .get_connection(&pending.tenant, provider)
            .await
            .map_err(internal)?;
        let same_account = existing.as_ref().is_some_and(|e| e.account == account);
        let connection = Connection {
            tenant_id: pending.tenant.clone(),
            provider,
            status: ConnectionStatus::Active,
            credentials: sealed.clone(),
            account: account.clone(),
            token_expires_at: schedule.token_expires_at,
            refresh_due_at: schedule.refresh_due_at,
            refresh_bucket: schedule
                .refresh_due_at
                .map(|_| crate::store::REFRESH_BUCKET.to_string()),
            refreshed_at: Some(obtained_at),
            version: existing.as_ref().map_or(1, |e| e.version + 1),
            // Pipelines belong to the account: keep the mapping only when it is the same one.
            settings: existing
                .as_ref()
                .filter(|_| same_account)
                .and_then(|e| e.settings.clone()),
            connected_at: Utc::now(),
            last_sync_at: existing.as_ref().and_then(|e| e.last_sync_at),
            last_error: None,
            refresh_lease_owner: None,
            refresh_lease_until: None,
        };
        if services
            .store
            .put_connection(&connection, existing.as_ref().map(|e| e.version))
            .await
            .map_err(internal)?
        {
            tracing::info!(
                ciphertext_bytes = sealed.len(),
                reconnect = existing.is_some(),
                "connection stored"
            );
            return Ok(());
        }
    }
    tracing::error!("connection row kept changing under the callback");
    Err(Failure::Internal)
}

fn exchange_failure(error: ProviderError) -> Failure {
    tracing::warn!(error = %error, "token exchange failed");
    if error.is_retryable() {
        Failure::ProviderUnavailable
    } else {
        Failure::TokenExchangeFailed
    }
}

fn internal(error: Error) -> Failure {
    tracing::error!(error = %error, "storage failed during connect");
    Failure::Internal
}
