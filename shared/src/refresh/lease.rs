//! One refresh per connection at a time, and never a rotated refresh token lost or presented
//! twice.
//!
//! The order of writes is what makes it safe:
//! 1. take the connection's refresh lease (a conditional write; it lapses after
//!    `LEASE_SECONDS`, longer than any function may run (checked against infra/template.yaml
//!    by a test), so a crashed holder cannot block forever and a live one never loses it);
//! 2. re-read the row under the lease: if another holder already refreshed, use its tokens; if
//!    a rotating refresh of the stored token is in doubt (its answer was lost, or its holder
//!    died mid-call: the lease lapsed with the in-flight mark still set), never present it —
//!    use the access token while it lives, then mark the connection `needs_reauth`;
//! 3. for a rotating refresh token, only with enough of the invocation left for the call's
//!    full timeout plus storing the answer (see `deadline.rs`), and after writing the
//!    in-flight mark: call the provider's token endpoint (only the lease holder ever presents
//!    the refresh token);
//! 4. store the new tokens — retried until the deadline, because a rotated refresh token exists
//!    nowhere else — with a write conditioned on still holding the lease (or, the lease having
//!    lapsed, on nobody having written since), releasing the lease in the same write; an answer
//!    lost, or tokens that could not be stored, leave the doubt recorded instead;
//! 5. only then use the new access token.
//!
//! Everyone else waits for the holder's write (never past the deadline) and reads the tokens
//! it stored. Status writes after a failed refresh apply only to the tokens that failed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::deadline;
use crate::credentials::Credentials;
use crate::error::{Error, ProviderError, StoreError};
use crate::events::LifecycleEvent;
use crate::metrics;
use crate::provider;
use crate::registry::RefreshTokenReuse;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus, RefreshMark, RefreshedRow, TokenSchedule};

/// Refresh when the access token has less than this left, so that a call started now does not
/// race the expiry.
const EXPIRY_MARGIN_SECONDS: i64 = 120;
/// How long a refresh lease lasts: longer than the longest function timeout (token-refresh's
/// 300 s; `tests/.../template_timeouts.rs` checks every function of infra/template.yaml), so a
/// lapsed lease means its holder is no longer running and cannot be presenting the refresh
/// token at the same time as the next holder.
pub const LEASE_SECONDS: i64 = 360;
/// How often a caller waiting for another's refresh looks again, and for how long at most
/// (less when the invocation's deadline comes sooner).
const WAIT_STEP: Duration = Duration::from_millis(100);
pub const WAIT_LIMIT: Duration = Duration::from_secs(15);
/// Time kept, before the deadline, for sealing and storing new tokens (each retried).
const STORE_RESERVE: Duration = Duration::from_secs(4);
/// Time kept, before the deadline, for the writes that end a refresh either way (recording a
/// doubt, giving the lease back) and for the caller's own answer.
const FINAL_WRITES: Duration = Duration::from_secs(2);
/// Without a known deadline (tests, tools): how long new tokens are retried into the store.
const STORE_RETRY_UNBOUNDED: Duration = Duration::from_secs(20);
/// Longest pause between two attempts to store new tokens.
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the tenant is told when a doubtful refresh leaves no working token.
pub const DOUBT_REASON: &str =
    "a refresh's answer was lost; the provider may have rotated the token — reconnect";

/// How much of the invocation a refresh of a rotating token needs before it may start: the
/// token call's full timeout (a rotating call is never resent), sealing and storing the answer
/// with their retries, and the final writes.
pub fn rotating_refresh_budget(config: &crate::config::Config) -> Duration {
    rotating_refresh_budget_with(config.http.request_timeout)
}

/// [`rotating_refresh_budget`] for a token-call timeout of `request_timeout`.
pub fn rotating_refresh_budget_with(request_timeout: Duration) -> Duration {
    request_timeout + STORE_RESERVE + FINAL_WRITES
}

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
/// stored tokens already answered the cause (someone else refreshed first), or when a refresh
/// in doubt leaves the current access token in use while it lives.
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

/// Marks the connection `needs_reauth` with the reason — only if it still holds the tokens of
/// `connection.version`, the ones that failed — and returns the matching error. When the row
/// changed meanwhile (a reconnect), nothing is marked and the caller is told to try again.
pub async fn mark_needs_reauth(
    services: &Services,
    connection: &Connection,
    reason: &str,
) -> Error {
    let provider = connection.provider;
    let since = Utc::now();
    match services
        .store
        .mark_needs_reauth_at_version(
            &connection.tenant_id,
            provider,
            connection.version,
            reason,
            since,
        )
        .await
    {
        // The row held the tokens that failed; announced only if it was active until now (a
        // connection already waiting for the tenant that fails again changes nothing).
        Ok(true) if connection.status == ConnectionStatus::Active => {
            announce_needs_reauth(services, connection, reason, since).await;
        }
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                reason = %reason,
                "the connection changed since its tokens failed; not marking it needs_reauth"
            );
            // Someone else may have marked it first (a waiter on the same doubt): say so.
            if let Ok(Some(current)) = services
                .store
                .get_connection(&connection.tenant_id, provider)
                .await
            {
                if let Err(inactive) = require_active(&current) {
                    return inactive;
                }
            }
            return Error::Busy(format!(
                "the {provider} connection changed while it was in use"
            ));
        }
        Err(store_error) => {
            tracing::error!(error = %store_error, "could not mark the connection needs_reauth");
        }
    }
    tracing::warn!(reason = %reason, "connection needs re-authorisation");
    Error::NeedsReauth {
        provider,
        reason: reason.to_string(),
    }
}

/// "Connection Needs Reauth", or "Connection Suspended" when the provider suspended the app for
/// the account (its code says so), and the metric.
async fn announce_needs_reauth(
    services: &Services,
    connection: &Connection,
    reason: &str,
    since: DateTime<Utc>,
) {
    let tenant = connection.tenant_id.as_str().to_string();
    let provider = connection.provider;
    metrics::count_for(
        Some(provider),
        metrics::CONNECTIONS_NEEDING_REAUTH,
        Some(&tenant),
    );
    let reason = reason.to_string();
    let event = if SUSPENSION_CODES.iter().any(|code| reason.contains(code)) {
        LifecycleEvent::ConnectionSuspended {
            tenant,
            provider,
            reason,
            since,
        }
    } else {
        LifecycleEvent::ConnectionNeedsReauth {
            tenant,
            provider,
            reason,
            since,
        }
    };
    services.events.publish(event).await;
}

/// Provider codes that mean the account's use of the app is suspended rather than its grant
/// revoked (Bitrix24: the app's paid period ended).
const SUSPENSION_CODES: [&str; 1] = ["PAYMENT_REQUIRED"];

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

/// What presenting this connection's refresh token twice would do.
fn reuse(connection: &Connection) -> RefreshTokenReuse {
    connection
        .provider
        .facts()
        .and_then(|f| f.oauth())
        .map_or(RefreshTokenReuse::Reusable, |o| o.refresh_token_reuse)
}

/// Whether a failed token call may have reached the provider and been acted on, its answer
/// lost: a timeout, a server error, a cut or reset connection, an unreadable answer. A refusal
/// (4xx), throttling, or a connection never made says the provider did not rotate anything.
fn answer_lost(error: &ProviderError) -> bool {
    match error {
        ProviderError::Timeout { .. }
        | ProviderError::Unavailable { .. }
        | ProviderError::Garbage { .. } => true,
        ProviderError::Network { source, .. } => !source.is_connect(),
        ProviderError::Throttled { .. }
        | ProviderError::Unauthorized { .. }
        | ProviderError::InvalidGrant { .. }
        | ProviderError::Rejected { .. }
        | ProviderError::ProgressNotSaved { .. } => false,
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
    let started = Instant::now();
    // Waiting ends early enough for the caller to answer before the invocation is killed.
    let wait_limit = deadline::cap(WAIT_LIMIT, FINAL_WRITES);
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
            // On the heap: the holder's state machine is large, and it runs inside every push.
            return Box::pin(refresh_holding_lease(services, current, &owner, &cause)).await;
        }
        if started.elapsed() + WAIT_STEP > wait_limit {
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

/// The stored refresh token may be dead and is never presented again: the connection lives on
/// its current access token while that lasts, then needs the tenant to reconnect.
async fn in_doubt(
    services: &Services,
    connection: Connection,
    credentials: Credentials,
    cause: &RefreshCause,
) -> Result<Refreshed, Error> {
    let alive = !matches!(cause, RefreshCause::Rejected(_))
        && credentials.access_token.is_some()
        && connection.token_expiry().is_some_and(|at| at > Utc::now());
    if alive {
        tracing::info!("a refresh is in doubt; using the current access token while it lives");
        return Ok(Refreshed {
            connection,
            credentials,
            minted: false,
        });
    }
    Err(mark_needs_reauth(services, &connection, DOUBT_REASON).await)
}

/// Records the doubt and gives the lease back in one write. If even that fails, the in-flight
/// mark stays with the lease, and whoever takes the lease after it lapses records the doubt.
async fn record_doubt(
    services: &Services,
    connection: &mut Connection,
    owner: &str,
    reason: String,
) {
    let mark = RefreshMark {
        version: connection.version,
        since: Utc::now(),
        reason,
    };
    tracing::warn!(
        event = "refresh_in_doubt",
        reason = %mark.reason,
        "a rotating refresh may have been acted on without its answer; its token will not be presented again"
    );
    match services
        .store
        .record_refresh_doubt(&connection.tenant_id, connection.provider, owner, &mark)
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!("the refresh lease was lost before the doubt was recorded"),
        Err(e) => tracing::error!(
            error = %e,
            "could not record the refresh doubt; the in-flight mark stands for it"
        ),
    }
    connection.refresh_in_flight = None;
    connection.refresh_lease_owner = None;
    connection.refresh_lease_until = None;
    connection.refresh_in_doubt = Some(mark);
}

/// Runs `attempt` until it succeeds or `until` passes, backing off between attempts. An attempt
/// still unanswered at `until` is abandoned: the SDK's own retries and backoff inside one attempt
/// (or a DynamoDB that does not answer) must not eat the time kept after `until` for the writes
/// that end the refresh. `operation` names the calls of one attempt, for the timeout's error.
async fn retry_until<T, F, Fut>(
    until: Instant,
    what: &str,
    operation: &'static str,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut pause = WAIT_STEP;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let answered = tokio::time::timeout_at(until.into(), attempt())
            .await
            .unwrap_or_else(|_| {
                Err(Error::Store(StoreError::Aws {
                    operation,
                    code: "Timeout".into(),
                    message: format!("{what}: no answer before the time kept for the final writes"),
                    retryable: true,
                }))
            });
        match answered {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() + pause < until => {
                tracing::warn!(error = %e, attempt = attempts, "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STORE_BACKOFF_MAX);
            }
            Err(e) => {
                tracing::warn!(error = %e, attempts, "{what} failed; giving up");
                return Err(e);
            }
        }
    }
}

async fn refresh_holding_lease(
    services: &Services,
    mut connection: Connection,
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
    let reuse = reuse(&connection);
    if reuse.rotates() && connection.refresh_in_flight.is_some() {
        // The lease lapsed (or was never given back) with a presentation unanswered: its holder
        // died mid-call, or could not store the answer. The provider may have rotated.
        record_doubt(
            services,
            &mut connection,
            owner,
            "a refresh was under way when its process ended; its answer was never recorded".into(),
        )
        .await;
    }
    if answered(&connection, &credentials, cause) {
        release().await;
        return Ok(Refreshed {
            connection,
            credentials,
            minted: false,
        });
    }
    if reuse.rotates() && connection.doubt().is_some() {
        release().await;
        return in_doubt(services, connection, credentials, cause).await;
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
    if reuse.rotates() {
        // A rotating call killed by the deadline after the provider acted would lose the new
        // token: start it only when the whole call and the store fit before the deadline.
        let budget = rotating_refresh_budget(&services.config);
        if !deadline::covers(budget) {
            release().await;
            tracing::warn!(
                event = "refresh_deferred_deadline",
                remaining_ms = deadline::remaining().map(|d| d.as_millis() as u64),
                budget_ms = budget.as_millis() as u64,
                "too close to the invocation's deadline to present a rotating refresh token"
            );
            return Err(Error::Busy(format!(
                "too little time left in this invocation to refresh the {provider} token"
            )));
        }
        let mark = RefreshMark {
            version: connection.version,
            since: Utc::now(),
            reason: String::new(),
        };
        match services
            .store
            .mark_refresh_in_flight(&tenant, provider, owner, &mark)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Busy(format!(
                    "the {provider} refresh lease was lost"
                )));
            }
            Err(e) => {
                release().await;
                return Err(e);
            }
        }
    }
    let answer = implementation.refresh_token(&oauth, &refresh_token).await;
    if answer.is_err() {
        metrics::count_for(
            Some(provider),
            metrics::REFRESH_FAILURES,
            Some(tenant.as_str()),
        );
    }
    let tokens = match answer {
        Ok(tokens) => tokens,
        Err(error @ ProviderError::InvalidGrant { .. }) => {
            return Err(mark_needs_reauth(services, &connection, &error.to_string()).await)
        }
        Err(error) if reuse.rotates() && answer_lost(&error) => {
            record_doubt(services, &mut connection, owner, error.to_string()).await;
            return match cause {
                // The push goes on with the access token it has while that lives.
                RefreshCause::Expiring => in_doubt(services, connection, credentials, cause).await,
                RefreshCause::Rejected(_) => {
                    Err(mark_needs_reauth(services, &connection, DOUBT_REASON).await)
                }
                RefreshCause::DueBefore(_) => Err(error.into()),
            };
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
    // stored before anything else happens, trying for as long as the invocation allows.
    let store_until = Instant::now() + deadline::cap(STORE_RETRY_UNBOUNDED, FINAL_WRITES);
    let stored = retry_until(
        store_until,
        "storing refreshed tokens",
        "Encrypt, UpdateItem",
        || async {
            let sealed = services.vault.seal(&tenant, provider, &fresh).await?;
            let written = services
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
                .await?;
            Ok((sealed, written))
        },
    )
    .await;
    let sealed = match stored {
        Ok((sealed, true)) => sealed,
        Ok((_, false)) => {
            // Someone wrote the row since (a reconnect replaced it): its tokens stand.
            tracing::error!("the refresh lease was taken over before the new tokens were stored");
            return Err(Error::Busy(format!(
                "the {provider} refresh lease was lost"
            )));
        }
        Err(error) => {
            // One event an alarm can match; no secret in it.
            tracing::error!(
                event = "refreshed_tokens_lost",
                tenant = %tenant,
                provider = %provider,
                rotated,
                error = %error,
                "the provider issued new tokens that could not be stored"
            );
            metrics::Record::for_provider(provider)
                .count(metrics::REFRESHED_TOKENS_LOST, 1)
                .count(metrics::REFRESH_FAILURES, 1)
                .property("tenant_id", tenant.as_str())
                .emit();
            if reuse.rotates() {
                // The row still holds the old, possibly rotated refresh token: nobody may
                // present it. Recording the doubt gives the lease back.
                record_doubt(
                    services,
                    &mut connection,
                    owner,
                    "new tokens were issued but could not be stored".into(),
                )
                .await;
            } else {
                release().await;
            }
            return Err(error);
        }
    };
    tracing::info!(expires_at = ?tokens.expires_at, rotated, "access token refreshed and stored");
    metrics::count_for(Some(provider), metrics::REFRESHES, Some(tenant.as_str()));
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
    stored.refresh_in_flight = None;
    stored.refresh_in_doubt = None;
    Ok(Refreshed {
        connection: stored,
        credentials: fresh,
        minted: true,
    })
}
