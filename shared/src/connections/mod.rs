//! The connect and manage use cases behind the setup pages and the OAuth callback.

mod api_key;
mod authorize;
mod callback;
mod complete;
mod manage;
mod persist;
mod session;
mod view;

pub use api_key::{connect_with_api_key, ApiKeyInput};
pub use authorize::{start_authorization, AuthorizationStart};
pub use callback::{complete_authorization, CallbackParams};
pub use complete::{complete_connection, sweep_pending_connections, Completed, Swept};
pub use manage::{
    disconnect, list_connections, list_pipelines, save_settings, Disconnected, SettingsInput,
};
pub use session::{open_connection, open_session, OpenConnection};
pub use view::ConnectionView;

use crate::error::Error;
use crate::provider::{self, CrmProvider};
use crate::registry::Provider;

/// The implementation for a provider, or a clear "not available yet".
pub(crate) fn implementation(provider: Provider) -> Result<&'static dyn CrmProvider, Error> {
    provider::for_provider(provider).ok_or(Error::NotSupported(provider))
}

/// Whether the tenant's plan allows connecting `provider` next to what it already has: the
/// caller's claim unless billing's stored plan says otherwise (`plan::effective`), so a JWT
/// issued before a downgrade does not start a flow the completion would refuse.
async fn check_plan(
    services: &crate::services::Services,
    caller: &crate::identity::Caller,
    provider: Provider,
) -> Result<(), Error> {
    let connected: Vec<Provider> = services
        .store
        .list_connections(&caller.tenant)
        .await?
        .iter()
        .filter(|c| c.status != crate::store::ConnectionStatus::Disconnected)
        .map(|c| c.provider)
        .collect();
    let stored = services.store.get_tenant_plan(&caller.tenant).await?;
    let plan = caller.plan_claim().against(stored);
    Ok(plan.check_connect(provider, &connected)?)
}

/// Revokes a stored connection's grant at the provider, best effort: its credentials are
/// opened and the provider asked to revoke them, unless the refresh token is `still_in_use`
/// (a reconnect that got the same one back). Returns whether the provider revoked; failures
/// are logged, never raised: the caller goes on either way.
async fn revoke_stored_grant(
    services: &crate::services::Services,
    connection: &crate::store::Connection,
    still_in_use: Option<&secrecy::SecretString>,
) -> bool {
    use secrecy::ExposeSecret;
    let provider = connection.provider;
    let Some(implementation) = provider::for_provider(provider) else {
        return false;
    };
    // API-key providers have no OAuth client, and nothing to revoke.
    let Ok(oauth) =
        implementation.oauth_client(&services.config, &services.http, &connection.account)
    else {
        return false;
    };
    let credentials = match services
        .vault
        .open(&connection.tenant_id, provider, &connection.credentials)
        .await
    {
        Ok(credentials) => credentials,
        Err(error) => {
            tracing::warn!(error = %error, "credentials could not be opened to revoke");
            return false;
        }
    };
    let same = credentials
        .refresh_token
        .as_ref()
        .zip(still_in_use)
        .is_some_and(|(old, current)| old.expose_secret() == current.expose_secret());
    if same {
        return false;
    }
    match implementation.revoke(&oauth, &credentials).await {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(error = %error, "revocation at the provider failed");
            false
        }
    }
}
