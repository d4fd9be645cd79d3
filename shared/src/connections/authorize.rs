use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Error;
use crate::identity::Caller;
use crate::oauth::{state, OAuthClient};
use crate::provider::LoginChoice;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::PendingAuthorization;

#[derive(Debug, Serialize)]
pub struct AuthorizationStart {
    pub authorize_url: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /connections/{provider}/authorize`: checks the plan, stores a single-use state (and
/// PKCE verifier, the chosen login host, and the starting user's JWT `sub`, `subject`) and
/// returns the provider's consent URL.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn start_authorization(
    services: &Services,
    caller: &Caller,
    subject: &str,
    provider: Provider,
    login: &LoginChoice,
) -> Result<AuthorizationStart, Error> {
    let implementation = super::implementation(provider)?;
    if let Some(facts) = provider.facts().filter(|f| f.oauth().is_none()) {
        return Err(Error::BadRequest(format!(
            "{} connects with an API key, not OAuth: PUT /connections/{provider}",
            facts.display_name
        )));
    }
    let login_origin = implementation
        .login_origin(login)
        .map_err(Error::BadRequest)?;
    let mut oauth = OAuthClient::new(provider, &services.config, &services.http)?;
    if let Some(origin) = &login_origin {
        oauth = oauth.at_login_origin(origin);
    }
    super::check_plan(services, caller, provider).await?;

    let state = state::new_state();
    let request = oauth.authorize(&state);
    let ttl = chrono::Duration::from_std(services.config.oauth_state_ttl)
        .unwrap_or_else(|_| chrono::Duration::minutes(10));
    let expires_at = Utc::now() + ttl;
    services
        .store
        .put_pending_authorization(
            &state::state_key(&state),
            &PendingAuthorization {
                tenant: caller.tenant.clone(),
                subject: subject.to_string(),
                provider,
                pkce_verifier: request.pkce_verifier,
                expires_at,
                login_origin: login_origin.map(|o| o.to_string()),
            },
        )
        .await?;
    tracing::info!("authorization started");
    Ok(AuthorizationStart {
        authorize_url: request.url.to_string(),
        expires_at,
    })
}
