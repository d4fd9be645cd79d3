//! One refresh per connection at a time, and never a rotated refresh token lost.
//!
//! The order of writes is what makes it safe:
//! 1. take the connection's refresh lease (a conditional write; it lapses after
//!    `LEASE_SECONDS`, longer than any function may run, so a crashed holder cannot block
//!    forever and a live one never loses it);
//! 2. re-read the row under the lease: if another holder already refreshed, use its tokens;
//! 3. call the provider's token endpoint (only the lease holder ever presents the refresh token);
//! 4. store the new tokens — retried on failure, because a rotated refresh token exists nowhere
//!    else — with a write conditioned on still holding the lease (or, the lease having lapsed,
//!    on nobody having written since), releasing the lease in the same write;
//! 5. only then use the new access token.
//!
//! Everyone else waits for the holder's write and reads the tokens it stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::credentials::Credentials;
use crate::error::{Error, ProviderError};
use crate::provider;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus, RefreshedRow, TokenSchedule};

/// Refresh when the access token has less than this left, so that a call started now does not
/// race the expiry.
const EXPIRY_MARGIN_SECONDS: i64 = 120;
/// How long a refresh lease lasts: longer than the longest function timeout (token-refresh's
/// 300 s in the template), so a lapsed lease means its holder is no longer running and cannot
/// be presenting the refresh token at the same time as the next holder.
const LEASE_SECONDS: i64 = 360;
/// How often a caller waiting for another's refresh looks again, and for how long at most.
const WAIT_STEP: Duration = Duration::from_millis(100);
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// Attempts to store tokens the provider has already issued.
const STORE_ATTEMPTS: u32 = 6;

/// Why a refresh is wanted.
pub enum RefreshCause {
    /// The access token is (nearly) expired.
    Expiring,
    /// The provider refused this access token.
    Rejected(SecretString),
    /// The scheduled job: the connection's refresh is due before this time.
    DueBefore(DateTime<Utc>),
}

/// The connection after a refresh, with its opened credentials. `minted` is false when the
/// stored tokens already answered the cause (someone else refreshed first).
pub struct Refreshed {
    pub connection: Connection,
    pub credentials: Credentials,
    pub minted: bool,
}

pub fn expiring(connection: &Connection, now: DateTime<Utc>) -> bool {
    connection
        .token_expiry()
        .is_some_and(|at| (at - now).num_seconds() < EXPIRY_MARGIN_SECONDS)
}

pub fn require_active(connection: &Connection) -> Result<(), Error> {
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

/// Marks the connection `needs_reauth` with the reason, and returns the matching error.
pub async fn mark_needs_reauth(
    services: &Services,
    connection: &Connection,
    reason: &str,
) -> Error {
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

/// How long to wait before this connection may mint another access token, where the provider
/// caps how often that may happen (Zoho blocks a refresh token for the rest of a 10-minute
/// window after 10 mints). Only a rejected token can ask for that: an expiring one was minted
/// an access-token lifetime ago, but a provider that keeps rejecting fresh tokens would
/// otherwise have every push mint another.
fn too_soon_to_mint(connection: &Connection, now: DateTime<Utc>) -> Option<Duration> {
    let interval = connection
        .provider
        .facts()
        .and_then(|f| f.oauth())
        .and_then(|o| o.min_refresh_interval)?;
    let since = (now - connection.refreshed_at?)
        .to_std()
        .unwrap_or_default();
    interval.checked_sub(since).filter(|left| !left.is_zero())
}

/// Whether the stored row already answers the cause.
fn answered(connection: &Connection, credentials: &Credentials, cause: &RefreshCause) -> bool {
    match cause {
        RefreshCause::Expiring => !expiring(connection, Utc::now()),
        RefreshCause::Rejected(rejected) => credentials
            .access_token
            .as_ref()
            .is_some_and(|current| current.expose_secret() != rejected.expose_secret()),
        RefreshCause::DueBefore(horizon) => connection
            .refresh_due_at
            .is_none_or(|due| due > horizon.timestamp()),
    }
}

/// Refreshes `connection` for `cause` under its lease, or waits for whoever holds the lease and
/// takes the tokens it stored.
pub async fn refresh(
    services: &Services,
    connection: Connection,
    cause: RefreshCause,
) -> Result<Refreshed, Error> {
    let tenant = connection.tenant_id.clone();
    let provider = connection.provider;
    let owner = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    let seen_version = connection.version;
    loop {
        let now = Utc::now();
        let leased = services
            .store
            .acquire_refresh_lease(
                &tenant,
                provider,
                &owner,
                now,
                now + chrono::Duration::seconds(LEASE_SECONDS),
            )
            .await?;
        if let Some(current) = leased {
            return refresh_holding_lease(services, current, &owner, &cause).await;
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(Error::Busy(format!(
                "a refresh of the {provider} connection is taking long"
            )));
        }
        tokio::time::sleep(WAIT_STEP).await;
        let current = services
            .store
            .get_connection(&tenant, provider)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
        require_active(&current)?;
        if current.version != seen_version {
            let credentials = services
                .vault
                .open(&tenant, provider, &current.credentials)
                .await?;
            if answered(&current, &credentials, &cause) {
                return Ok(Refreshed {
                    connection: current,
                    credentials,
                    minted: false,
                });
            }
        }
    }
}

async fn refresh_holding_lease(
    services: &Services,
    connection: Connection,
    owner: &str,
    cause: &RefreshCause,
) -> Result<Refreshed, Error> {
    let tenant = connection.tenant_id.clone();
    let provider = connection.provider;
    let release = || async {
        if let Err(e) = services
            .store
            .release_refresh_lease(&tenant, provider, owner)
            .await
        {
            tracing::warn!(error = %e, "could not release the refresh lease; it will lapse");
        }
    };
    let opened = match require_active(&connection) {
        Ok(()) => services
            .vault
            .open(&tenant, provider, &connection.credentials)
            .await
            .map_err(Error::from),
        Err(e) => Err(e),
    };
    let credentials = match opened {
        Ok(c) => c,
        Err(e) => {
            release().await;
            return Err(e);
        }
    };
    if answered(&connection, &credentials, cause) {
        release().await;
        return Ok(Refreshed {
            connection,
            credentials,
            minted: false,
        });
    }
    let Some(refresh_token) = credentials.refresh_token.clone() else {
        return Err(mark_needs_reauth(services, &connection, "no refresh token is stored").await);
    };
    let rejected = matches!(cause, RefreshCause::Rejected(_));
    if let Some(wait) = too_soon_to_mint(&connection, Utc::now()).filter(|_| rejected) {
        release().await;
        tracing::warn!(
            wait_ms = wait.as_millis() as u64,
            "refresh wanted again too soon; the provider caps how often tokens are minted"
        );
        return Err(ProviderError::Throttled {
            provider,
            retry_after: Some(wait),
        }
        .into());
    }
    let implementation = match provider::for_provider(provider) {
        Some(i) => i,
        None => {
            release().await;
            return Err(Error::NotSupported(provider));
        }
    };
    let oauth =
        match implementation.oauth_client(&services.config, &services.http, &connection.account) {
            Ok(o) => o,
            Err(e) => {
                release().await;
                return Err(e);
            }
        };
    let tokens = match implementation.refresh_token(&oauth, &refresh_token).await {
        Ok(tokens) => tokens,
        Err(error @ ProviderError::InvalidGrant { .. }) => {
            return Err(mark_needs_reauth(services, &connection, &error.to_string()).await)
        }
        Err(error) => {
            release().await;
            return Err(error.into());
        }
    };
    let rotated = tokens.refresh_token.is_some();
    // A refresh answer may move the account (Salesforce: an org migrated to another instance).
    // Whatever it says, the new tokens are stored: a refused answer only keeps the old facts.
    let account = match implementation.account_after_refresh(&connection.account, &tokens) {
        Ok(account) => account.filter(|a| a != &connection.account),
        Err(error) => {
            tracing::error!(error = %error, "the refresh answer named account facts we refuse; keeping the stored ones");
            None
        }
    };
    let fresh = Credentials {
        access_token: Some(tokens.access_token),
        // Whenever the provider sends a refresh token it replaces ours; otherwise ours stays.
        refresh_token: tokens.refresh_token.or(Some(refresh_token)),
        api_key: None,
    };
    let obtained_at = Utc::now();
    let schedule = TokenSchedule::for_tokens(provider, tokens.expires_at, true, obtained_at);

    // From here on the provider may have retired the old refresh token: the new one must be
    // stored before anything else happens.
    let mut attempt = 0;
    let sealed = loop {
        attempt += 1;
        match services.vault.seal(&tenant, provider, &fresh).await {
            Ok(sealed) => break sealed,
            Err(e) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "sealing refreshed tokens failed; retrying");
                tokio::time::sleep(WAIT_STEP * 2u32.pow(attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "refreshed tokens could not be sealed");
                return Err(e.into());
            }
        }
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match services
            .store
            .store_refreshed_tokens(
                &tenant,
                provider,
                owner,
                connection.version,
                RefreshedRow {
                    credentials: &sealed,
                    schedule,
                    account: account.as_ref(),
                },
            )
            .await
        {
            Ok(true) => break,
            Ok(false) => {
                tracing::error!(
                    "the refresh lease was taken over before the new tokens were stored"
                );
                return Err(Error::Busy(format!(
                    "the {provider} refresh lease was lost"
                )));
            }
            Err(e) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "storing refreshed tokens failed; retrying");
                tokio::time::sleep(WAIT_STEP * 2u32.pow(attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "refreshed tokens could not be stored");
                return Err(e);
            }
        }
    }
    tracing::info!(expires_at = ?tokens.expires_at, rotated, "access token refreshed and stored");
    let mut stored = connection;
    if let Some(account) = account {
        tracing::info!("account facts changed with the refresh");
        stored.account = account;
    }
    stored.version += 1;
    stored.credentials = sealed;
    stored.token_expires_at = schedule.token_expires_at;
    stored.refresh_due_at = schedule.refresh_due_at;
    stored.refreshed_at = Some(obtained_at);
    stored.refresh_lease_owner = None;
    stored.refresh_lease_until = None;
    Ok(Refreshed {
        connection: stored,
        credentials: fresh,
        minted: true,
    })
}
