//! The connect and manage use cases behind the setup pages and the OAuth callback.

mod api_key;
mod authorize;
mod callback;
mod manage;
mod persist;
mod session;
mod view;

pub use api_key::{connect_with_api_key, ApiKeyInput};
pub use authorize::{start_authorization, AuthorizationStart};
pub use callback::{complete_authorization, CallbackParams};
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

/// Whether the caller's plan allows connecting `provider` next to what the tenant already has.
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
    caller.plan.check_connect(provider, &connected)
}
