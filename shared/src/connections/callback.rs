use std::collections::BTreeMap;

use chrono::Utc;
use secrecy::SecretString;
use tracing::field;
use url::Url;

use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::oauth::TokenSet;
use crate::oauth::{state, OAuthClient};
use crate::provider::CrmProvider;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, PendingConnection};

/// The callback's query string. Not `Debug`: the code is a secret.
#[derive(Default)]
pub struct CallbackParams {
    pub code: Option<SecretString>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// Every other parameter (Zoho's `location` and `accounts-server`); nothing secret.
    pub extras: BTreeMap<String, String>,
}

/// Why a callback did not connect; the `reason` sent back to the setup page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    AccessDenied,
    AuthorizationFailed,
    State(&'static str),
    MissingCode,
    UntrustedAccountsServer,
    CallbackHostMismatch,
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
            Failure::UntrustedAccountsServer => "untrusted_accounts_server",
            Failure::CallbackHostMismatch => "callback_host_mismatch",
            Failure::TokenExchangeFailed => "token_exchange_failed",
            Failure::ProviderUnavailable => "provider_unavailable",
            Failure::Internal => "internal",
        }
    }
}

/// `GET /oauth/{provider}/callback`. Always ends in a redirect to the configured setup page,
/// never anywhere else: `status=consented&completion_code=...` when the consent's tokens are
/// kept as a pending connection (the setup page then posts the code, with the signed-in user's
/// JWT, to `POST /connections/{provider}/complete`), or `status=error&reason=...`. Nothing is
/// connected here: the browser that comes back is not proof of who started the flow.
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
            Ok(completion_code) => {
                query
                    .append_pair("status", "consented")
                    .append_pair("completion_code", &completion_code);
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
) -> Result<String, Failure> {
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
    // A callback naming an accounts server that is not the provider's never gets a code sent
    // to it.
    let token_origin = implementation
        .token_origin_from_callback(&params.extras)
        .map_err(|error| {
            tracing::warn!(error = %error, "the callback named an accounts server we do not trust");
            Failure::UntrustedAccountsServer
        })?;
    // The login host chosen on the setup page (validated then, and kept with the state)
    // outranks anything the callback's query could say, where it is also the token host.
    let login_origin = pending
        .login_origin
        .as_deref()
        .map(Url::parse)
        .transpose()
        .map_err(|_| Failure::Internal)?;
    // Every parameter naming a host or an account agrees with the state and the registry, or
    // the code goes nowhere.
    implementation
        .check_callback_hosts(&params.extras, login_origin.as_ref())
        .map_err(|why| {
            tracing::warn!(why = %why, "the callback's hosts do not match the authorization");
            Failure::CallbackHostMismatch
        })?;
    let mut oauth = OAuthClient::new(provider, &services.config, &services.http)
        .map_err(|_| Failure::ProviderUnavailable)?;
    let token_origin = if oauth.facts().tokens_at_login_host {
        login_origin.clone().or(token_origin)
    } else {
        token_origin
    };
    if let Some(origin) = &token_origin {
        oauth = oauth.at_origin(origin);
    }
    let tokens = oauth
        .exchange_code(&code, pending.pkce_verifier.as_ref())
        .await
        .map_err(exchange_failure)?;
    let account = match account_of(
        services,
        &pending.tenant,
        implementation,
        &tokens,
        &params.extras,
        login_origin.as_ref(),
    )
    .await
    {
        Ok(account) => account,
        Err(error) => {
            forget_unusable_grant(&oauth, tokens.refresh_token.as_ref()).await;
            return Err(exchange_failure(error));
        }
    };
    let credentials = Credentials {
        access_token: Some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        api_key: None,
    };
    let sealed = match services
        .vault
        .seal(&pending.tenant, provider, &credentials)
        .await
    {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::error!(error = %e, "could not encrypt the new credentials");
            forget_unusable_grant(&oauth, credentials.refresh_token.as_ref()).await;
            return Err(Failure::Internal);
        }
    };
    // Kept until the user who started the flow confirms it with their JWT (complete.rs); the
    // sweep revokes it if nobody does in time.
    let completion_code = state::new_state();
    let ttl = chrono::Duration::from_std(services.config.oauth_state_ttl)
        .unwrap_or_else(|_| chrono::Duration::minutes(10));
    let row = PendingConnection {
        tenant: pending.tenant.clone(),
        subject: pending.subject.clone(),
        provider,
        sealed,
        has_refresh_token: credentials.refresh_token.is_some(),
        account,
        token_expires_at: tokens.expires_at,
        expires_at: Utc::now() + ttl,
    };
    if let Err(error) = services
        .store
        .put_pending_connection(&state::state_key(&completion_code), &row)
        .await
    {
        // Unlike a connection's write, a failed put of a fresh random key stored nothing a
        // user could complete: the grant would be held by nobody.
        tracing::error!(error = %error, "could not keep the pending connection");
        forget_unusable_grant(&oauth, credentials.refresh_token.as_ref()).await;
        return Err(Failure::Internal);
    }
    tracing::info!(
        ciphertext_bytes = row.sealed.len(),
        "consent kept as a pending connection"
    );
    Ok(completion_code)
}

/// The tenant connected `provider` again: the leads parked while its connection needed the
/// tenant go to the lead queue now, oldest first. The same account or another one alike: the
/// lead mappings are keyed by account, so in another account they are new leads. A failure
/// does not fail the connect (the connection is stored); what was not sent stays parked for
/// the next connect, within its time to live.
pub(super) async fn release_parked_after_connect(
    services: &Services,
    tenant: &crate::identity::TenantId,
    provider: Provider,
) {
    if let Err(error) = crate::push::release_parked(services, tenant, provider).await {
        tracing::error!(error = %error, "parked leads could not all be released; the rest wait for the next connect");
    }
}

/// The account facts to keep: from the token response and the callback, then from the
/// provider's API where it takes a call (which also proves the new token works).
async fn account_of(
    services: &Services,
    tenant: &crate::identity::TenantId,
    implementation: &'static dyn CrmProvider,
    tokens: &TokenSet,
    callback_params: &BTreeMap<String, String>,
    login_origin: Option<&Url>,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let mut account = implementation.account_from_tokens(tokens, callback_params, login_origin)?;
    let session = super::session::api_session(
        services,
        implementation,
        &account,
        tokens.access_token.clone(),
    )
    .map_err(|_| ProviderError::Garbage {
        provider: implementation.provider(),
        status: 0,
        detail: "no API base for this provider".into(),
    })?
    // What the provider describes now (Salesforce's objects, afresh: the account may have
    // changed since an earlier connect) serves the first push too.
    .with_schema_cache(
        crate::store::SchemaCache::new(
            &services.store,
            tenant,
            implementation.provider(),
            services.config.schema_cache_ttl,
        )
        .refreshing(),
    );
    let details = implementation.account_details(&session).await?;
    drop(session);
    account.extend(details);
    Ok(account)
}

/// A reconnect replaced `previous`. Where the provider keeps only so many refresh tokens per
/// user and silently deletes the oldest (Zoho), the replaced one is revoked so that it never
/// pushes out a token that is still in use.
pub(super) async fn revoke_replaced(
    services: &Services,
    previous: &Connection,
    current: &Credentials,
) {
    let wanted = previous
        .provider
        .facts()
        .and_then(|f| f.oauth())
        .is_some_and(|o| o.revoke_replaced_refresh_token);
    if wanted {
        let revoked =
            super::revoke_stored_grant(services, previous, current.refresh_token.as_ref()).await;
        tracing::info!(revoked, "the replaced refresh token was handled");
    }
}

/// Tokens were issued but will not be kept: revoke them rather than leave a live grant that
/// nobody holds (and that counts against the provider's per-user cap).
async fn forget_unusable_grant(oauth: &OAuthClient<'_>, refresh_token: Option<&SecretString>) {
    if let Some(token) = refresh_token {
        if let Err(error) = oauth.revoke(token).await {
            tracing::warn!(error = %error, "could not revoke tokens that were not stored");
        }
    }
}

fn exchange_failure(error: ProviderError) -> Failure {
    tracing::warn!(error = %error, "token exchange failed");
    // An unreadable token answer is transient for a push, but a code is single use: this
    // consent is over either way, and the page says the exchange failed.
    let garbled = matches!(error, ProviderError::Garbage { .. });
    if error.is_retryable() && !garbled {
        Failure::ProviderUnavailable
    } else {
        Failure::TokenExchangeFailed
    }
}
