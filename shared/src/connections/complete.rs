//! `POST /connections/{provider}/complete`: the second half of an OAuth connect. The callback
//! kept the consent's tokens as a pending connection and sent the browser to the setup page
//! with a one-time completion code; the setup page posts that code with the signed-in user's
//! JWT. The connection is stored only when that JWT's tenant and `sub` are the ones that
//! started the authorization. Anything else (another user, another tenant, another provider,
//! an expired code) revokes the consent's tokens at the provider: nobody will hold them.
//! Threat model: docs/connect-security.md.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::callback::{release_parked_after_connect, revoke_replaced};
use super::persist::{store_connection, NewConnection};
use crate::error::Error;
use crate::identity::Caller;
use crate::oauth::state;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::PendingConnection;

#[derive(Debug, Serialize)]
pub struct Completed {
    pub provider: Provider,
    /// Always `connected`.
    pub status: &'static str,
    /// The tenant had this provider connected before; the new account replaced it.
    pub reconnect: bool,
}

/// Completes a pending connection for the caller, whose JWT `sub` is `subject`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn complete_connection(
    services: &Services,
    caller: &Caller,
    subject: &str,
    provider: Provider,
    completion_code: &str,
) -> Result<Completed, Error> {
    if completion_code.is_empty() || completion_code.len() > 128 {
        return Err(Error::BadRequest(
            "completion_code must be the code the callback gave the setup page".into(),
        ));
    }
    // Taken (deleted) before anything else: whatever follows, the code never works twice.
    let pending = services
        .store
        .take_pending_connection(&state::state_key(completion_code))
        .await?
        .ok_or_else(|| Error::NotFound("completion code (unknown, used or expired)".into()))?;
    let same_user = pending.tenant == caller.tenant && pending.subject == subject;
    if !same_user || pending.provider != provider {
        tracing::warn!(
            same_user,
            same_provider = pending.provider == provider,
            "a completion code was presented by someone other than who started the flow; revoking its tokens"
        );
        revoke_pending(services, &pending).await;
        return Err(Error::Unauthorized(
            "the completion code belongs to an authorization another user started",
        ));
    }
    if pending.expires_at <= Utc::now() {
        revoke_pending(services, &pending).await;
        return Err(Error::NotFound("completion code (expired)".into()));
    }
    let has_refresh_token = pending.has_refresh_token;
    let new_row = NewConnection {
        tenant: &pending.tenant,
        provider,
        sealed: pending.sealed.clone(),
        has_refresh_token,
        account: pending.account.clone(),
        expires_at: pending.token_expires_at,
        // Checked again in persist against the tenant's other connections, atomically.
        claimed_plan: Some(caller.plan_claim()),
    };
    // A failed write is not proof that nothing was stored, so the tokens are not revoked on
    // it (that could kill a connection that did get stored).
    let previous = store_connection(services, new_row).await?;
    if let Some(previous) = &previous {
        match services
            .vault
            .open(&pending.tenant, provider, &pending.sealed)
            .await
        {
            Ok(current) => revoke_replaced(services, previous, &current).await,
            Err(error) => {
                tracing::warn!(error = %error, "the new credentials could not be opened to compare with the replaced ones")
            }
        }
    }
    release_parked_after_connect(services, &pending.tenant, provider).await;
    Ok(Completed {
        provider,
        status: "connected",
        reconnect: previous.is_some(),
    })
}

/// What the sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Pending connections taken and deleted.
    pub deleted: usize,
    /// Of those, how many the provider confirmed revoking.
    pub revoked: usize,
}

/// Revokes and deletes pending connections that expired at or before `now` (nobody completed
/// them in time). A DynamoDB TTL alone would delete the row but leave the grant alive at the
/// provider. Runs with the token-refresh schedule; bounded per run, the rest wait for the next.
pub async fn sweep_pending_connections(
    services: &Services,
    now: DateTime<Utc>,
) -> Result<Swept, Error> {
    let mut swept = Swept::default();
    for code_key in services.store.expired_pending_connections(now, 100).await? {
        // Taken like a completion: if the user completes in the same instant, one of the
        // two gets the row, never both.
        let Some(pending) = services.store.take_pending_connection(&code_key).await? else {
            continue;
        };
        swept.deleted += 1;
        if revoke_pending(services, &pending).await {
            swept.revoked += 1;
        }
    }
    if swept.deleted > 0 {
        tracing::info!(
            deleted = swept.deleted,
            revoked = swept.revoked,
            "abandoned consents revoked"
        );
    }
    Ok(swept)
}

/// Revokes a pending connection's grant at the provider, best effort. Returns whether the
/// provider revoked it.
async fn revoke_pending(services: &Services, pending: &PendingConnection) -> bool {
    let Some(implementation) = crate::provider::for_provider(pending.provider) else {
        return false;
    };
    let Ok(oauth) = implementation.oauth_client(&services.config, &services.http, &pending.account)
    else {
        return false;
    };
    let credentials = match services
        .vault
        .open(&pending.tenant, pending.provider, &pending.sealed)
        .await
    {
        Ok(credentials) => credentials,
        Err(error) => {
            tracing::warn!(error = %error, "pending credentials could not be opened to revoke");
            return false;
        }
    };
    match implementation.revoke(&oauth, &credentials).await {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(error = %error, "revocation of a pending consent failed");
            false
        }
    }
}
