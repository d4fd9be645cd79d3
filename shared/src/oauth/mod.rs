//! OAuth 2.0 on the `oauth2` crate: authorize URLs with state and PKCE, code exchange, refresh;
//! revocation (RFC 7009 form) through the shared HTTP client. Every request goes out through
//! [`HttpClient`], so token calls obey the same timeouts, throttling and redaction rules.

pub mod state;
pub mod token;

use std::future::Future;
use std::sync::Arc;

use chrono::Utc;
use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, Scope,
    StandardRevocableToken, TokenUrl,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::config::secrets::OAuthApps;
use crate::config::{Config, OAuthAppCredentials};
use crate::error::{Error, ProviderError};
use crate::http::{HttpClient, Idempotency, OAuthTransport, OutboundRequest};
use crate::registry::{OAuthFacts, Provider, RevokeStyle};
pub use token::TokenSet;
use token::{classify_token_error, ProviderTokenResponse, TokenEndpointError};

type Oauth2Client = oauth2::Client<
    TokenEndpointError,
    ProviderTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The OAuth endpoints of one provider (for one data centre or login host, where those vary),
/// with this deployment's app credentials.
pub struct OAuthClient<'a> {
    provider: Provider,
    facts: &'static OAuthFacts,
    /// The app credentials as read when this client was made.
    app: Arc<OAuthAppCredentials>,
    /// Where newer ones come from after the provider refuses these.
    apps: &'a OAuthApps,
    http: &'a HttpClient,
    redirect_uri: Url,
    authorize_url: Url,
    token_url: Url,
    revoke_url: Option<Url>,
    /// Access-token lifetime when a token response gives none.
    assumed_lifetime: Option<std::time::Duration>,
    /// `<PROVIDER>_ENDPOINT_URL`, where the browser is sent instead in local runs.
    local_origin: Option<Url>,
}

/// What the browser is sent to, and the PKCE verifier to keep for the callback.
pub struct AuthorizeRequest {
    pub url: Url,
    pub pkce_verifier: Option<SecretString>,
}

impl<'a> OAuthClient<'a> {
    /// The provider's registry endpoints (moved to `<PROVIDER>_ENDPOINT_URL` when set).
    pub fn new(
        provider: Provider,
        config: &'a Config,
        http: &'a HttpClient,
    ) -> Result<Self, Error> {
        let facts = provider
            .facts()
            .and_then(|f| f.oauth())
            .ok_or(Error::NotSupported(provider))?;
        let app = config
            .oauth_apps
            .get(provider)
            .ok_or(Error::NotSupported(provider))?;
        Ok(OAuthClient {
            provider,
            facts,
            app,
            apps: &config.oauth_apps,
            http,
            redirect_uri: config.redirect_uri(provider),
            authorize_url: config.provider_url(provider, facts.authorize_url),
            token_url: config.provider_url(provider, facts.token_url),
            revoke_url: facts.revoke_url.map(|u| config.provider_url(provider, u)),
            assumed_lifetime: config.assumed_token_lifetime(provider),
            local_origin: config.endpoint_overrides.get(&provider).cloned(),
        })
    }

    pub fn facts(&self) -> &'static OAuthFacts {
        self.facts
    }

    /// The same client with its endpoints on `origin`: a connection's own accounts server
    /// (Zoho's data centres) or login host (a Salesforce sandbox or My Domain), validated before.
    /// In local runs the browser still goes to the simulator (server calls are moved by the
    /// HTTP client, which names the meant host).
    pub fn at_origin(mut self, origin: &Url) -> Self {
        self = self.authorize_at(origin);
        self.token_url = crate::config::moved_to(origin, &self.token_url);
        self.revoke_url = self
            .revoke_url
            .map(|url| crate::config::moved_to(origin, &url));
        self
    }

    /// The same client for a connection's own login host: every endpoint there, or only the
    /// consent page where the provider's tokens come from elsewhere
    /// ([`OAuthFacts::tokens_at_login_host`]).
    pub fn at_login_origin(self, origin: &Url) -> Self {
        if self.facts.tokens_at_login_host {
            self.at_origin(origin)
        } else {
            self.authorize_at(origin)
        }
    }

    /// The same client with only its consent page on `origin`.
    fn authorize_at(mut self, origin: &Url) -> Self {
        let authorize = crate::config::moved_to(origin, &self.authorize_url);
        self.authorize_url = match &self.local_origin {
            Some(local) => crate::config::moved_to(local, &authorize),
            None => authorize,
        };
        self
    }

    fn client(&self) -> Oauth2Client {
        self.client_for(&self.app)
    }

    fn client_for(&self, app: &OAuthAppCredentials) -> Oauth2Client {
        oauth2::Client::new(ClientId::new(app.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                app.client_secret.expose_secret().to_string(),
            ))
            .set_auth_type(AuthType::RequestBody)
            .set_auth_uri(AuthUrl::from_url(self.authorize_url.clone()))
            .set_token_uri(TokenUrl::from_url(self.token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(self.redirect_uri.clone()))
    }

    /// Runs `call` with this client's app credentials; if the provider refuses them
    /// (`invalid_client`), reads the app secret again ([`OAuthApps::reread_after_refusal`]) and,
    /// when that gives other credentials (a rotated secret), runs `call` once more with those.
    /// A second try is safe even for single-use codes and rotating refresh tokens: a server
    /// authenticates the client before it looks at the grant (RFC 6749 §5.2), so a refused
    /// client used up nothing.
    async fn with_app<T, F, Fut>(&self, call: F) -> Result<T, ProviderError>
    where
        F: Fn(Arc<OAuthAppCredentials>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        match call(self.app.clone()).await {
            Err(refused) if refuses_client(&refused) => {
                match self
                    .apps
                    .reread_after_refusal(self.provider, &self.app)
                    .await
                {
                    Some(fresh) => call(fresh).await,
                    None => Err(refused),
                }
            }
            other => other,
        }
    }

    fn transport(&self, operation: &'static str, idempotency: Idempotency) -> OAuthTransport {
        OAuthTransport {
            http: self.http.clone(),
            provider: self.provider,
            operation,
            idempotency,
            token_request: self.facts.token_request,
        }
    }

    /// The provider's consent URL for `state`, with a fresh PKCE challenge where supported.
    pub fn authorize(&self, state: &str) -> AuthorizeRequest {
        let client = self.client();
        let state_value = state.to_string();
        let mut request = client.authorize_url(move || CsrfToken::new(state_value));
        request = if self.facts.scope_separator == " " {
            request.add_scopes(self.facts.scopes.iter().map(|s| Scope::new(s.to_string())))
        } else {
            request.add_extra_param("scope", self.facts.scopes.join(self.facts.scope_separator))
        };
        for (name, value) in self.facts.authorize_params {
            request = request.add_extra_param(*name, *value);
        }
        let mut pkce_verifier = None;
        if self.facts.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(SecretString::from(verifier.secret().clone()));
        }
        let (url, _) = request.url();
        AuthorizeRequest { url, pkce_verifier }
    }

    /// Exchanges an authorization code. Never retried after it may have reached the provider:
    /// a code is single use.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet, ProviderError> {
        let response = self
            .with_app(|app| async move {
                let client = self.client_for(&app);
                let transport = self.transport("token.exchange", Idempotency::Unsafe);
                let mut request =
                    client.exchange_code(AuthorizationCode::new(code.expose_secret().to_string()));
                if let Some(verifier) = pkce_verifier {
                    request = request.set_pkce_verifier(PkceCodeVerifier::new(
                        verifier.expose_secret().to_string(),
                    ));
                }
                request
                    .request_async(&transport)
                    .await
                    .map_err(|e| classify_token_error(self.provider, e))
            })
            .await?;
        Ok(TokenSet::from_response(
            response,
            self.assumed_lifetime,
            Utc::now(),
        ))
    }

    /// Refreshes an access token. For providers that rotate refresh tokens a repeated refresh
    /// could burn the grant, so those are not retried once sent.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        let idempotency = if self.facts.rotates_refresh_tokens {
            Idempotency::Unsafe
        } else {
            Idempotency::Safe
        };
        let token = RefreshToken::new(refresh_token.expose_secret().to_string());
        let token = &token;
        let response = self
            .with_app(|app| async move {
                let client = self.client_for(&app);
                let transport = self.transport("token.refresh", idempotency);
                client
                    .exchange_refresh_token(token)
                    .request_async(&transport)
                    .await
                    .map_err(|e| classify_token_error(self.provider, e))
            })
            .await?;
        Ok(TokenSet::from_response(
            response,
            self.assumed_lifetime,
            Utc::now(),
        ))
    }

    /// Revokes a refresh token at the provider, in the provider's [`RevokeStyle`]: an RFC 7009
    /// form with the client credentials in the body (HubSpot's 2026-03 endpoint), or the token
    /// in the query (Zoho). Returns `false` when the provider has no revocation endpoint.
    pub async fn revoke(&self, refresh_token: &SecretString) -> Result<bool, ProviderError> {
        let Some(url) = self.revoke_url.clone() else {
            return Ok(false);
        };
        let url = &url;
        self.with_app(
            |app| async move { self.revoke_with(&app, url.clone(), refresh_token).await },
        )
        .await?;
        Ok(true)
    }

    async fn revoke_with(
        &self,
        app: &OAuthAppCredentials,
        mut url: Url,
        refresh_token: &SecretString,
    ) -> Result<(), ProviderError> {
        let request = match self.facts.revoke_style {
            RevokeStyle::Rfc7009Form => {
                OutboundRequest::new(self.provider, "token.revoke", Method::POST, url).form(vec![
                    ("token", refresh_token.expose_secret().to_string()),
                    ("token_type_hint", "refresh_token".into()),
                    ("client_id", app.client_id.clone()),
                    (
                        "client_secret",
                        app.client_secret.expose_secret().to_string(),
                    ),
                ])
            }
            RevokeStyle::TokenInQuery => {
                url.query_pairs_mut()
                    .append_pair("token", refresh_token.expose_secret());
                OutboundRequest::new(self.provider, "token.revoke", Method::POST, url)
            }
        }
        .idempotency(Idempotency::Safe);
        let response = self.http.send(request).await?;
        if response.is_success() {
            return Ok(());
        }
        let body: TokenEndpointError = response.json().unwrap_or_default();
        Err(ProviderError::Rejected {
            provider: self.provider,
            status: response.status,
            code: body.code(),
            message: "the revocation endpoint refused the request".into(),
        })
    }
}

/// The provider refused this deployment's client credentials: `invalid_client` (RFC 6749
/// §5.2, what every supported provider answers for a wrong client id or secret), or HubSpot's
/// own codes for it where an answer carries only those.
fn refuses_client(error: &ProviderError) -> bool {
    match error {
        ProviderError::Unauthorized { code, .. } | ProviderError::Rejected { code, .. } => {
            matches!(
                code.as_str(),
                "invalid_client" | "BAD_CLIENT_ID" | "BAD_CLIENT_SECRET"
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_client_credentials_asks_for_the_secret_again() {
        let unauthorized = |code: &str| ProviderError::Unauthorized {
            provider: Provider::Hubspot,
            code: code.into(),
        };
        let rejected = |code: &str| ProviderError::Rejected {
            provider: Provider::Zoho,
            status: 400,
            code: code.into(),
            message: String::new(),
        };
        assert!(refuses_client(&unauthorized("invalid_client")));
        assert!(refuses_client(&rejected("invalid_client")));
        assert!(refuses_client(&rejected("BAD_CLIENT_SECRET")));
        // The grant, not the client: reconnecting is the cure, a new secret is not.
        assert!(!refuses_client(&ProviderError::InvalidGrant {
            provider: Provider::Hubspot,
            code: "invalid_grant".into(),
        }));
        // Allowed to authenticate but not to use this grant type: the secret is right.
        assert!(!refuses_client(&unauthorized("unauthorized_client")));
        assert!(!refuses_client(&ProviderError::Timeout {
            provider: Provider::Hubspot
        }));
    }
}
