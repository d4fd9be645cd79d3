//! OAuth 2026-03 endpoints: the consent screen (`GET /oauth/authorize`), the
//! token endpoint (authorization-code with PKCE, refresh) and revocation,
//! plus bearer-token checks for the CRM API.
//!
//! Sources for the wire formats:
//! - OAuth 2026-03 OpenAPI spec (`PublicApiSpecs/Auth/Oauth/Rollouts/279897/2026-03/oauth.json`
//!   in HubSpot's public spec collection): token request fields, the
//!   `AccessTokenResponse` fields, the revoke form fields, the `Error` schema
//!   (`message`, `correlationId`, `category` required).
//! - HubSpot changelog "New OAuth v3 API Endpoints and Standardized Error
//!   Responses": OAuth errors now carry RFC 6749 `error`/`error_description`
//!   *and* the legacy `status`/`message` (example:
//!   `{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"..."}`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{
    correlation_id, hubspot_error, json_response, HubSpotSim, HubSpotSimConfig, SeededTokens,
    Shared, AUTHORIZE_PATH, AUTH_CODE_TTL, REVOKE_PATH, SIM_USER_ID, TOKEN_PATH,
};
use crate::sim::consent;
use crate::sim::oauth::{
    check_s256, Alphabet, AnswerShape, CodeRequest, Endpoints, Issued, OAuthFailure, OAuthPolicy,
    OAuthServer, Pkce, PkceProblem, Redemption, RefreshEcho, ScopeField, TokenFormat, TokenHost,
};
use crate::sim::recorder::decode_form;
use crate::sim::server::Reject;

pub use crate::sim::oauth::s256_challenge;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "HubSpot";

const AUTH_NOT_FOUND_MESSAGE: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

/// HubSpot's authorization server as data.
pub fn oauth_policy(config: &HubSpotSimConfig) -> OAuthPolicy {
    OAuthPolicy {
        code_lifetime: AUTH_CODE_TTL,
        pkce: Pkce::RequiredS256,
        // HubSpot's refresh tokens do not rotate; the other modes let the relay's refresh
        // machinery be tested against rotating providers.
        rotation: config.rotation,
        rotation_retires_access: true,
        revoking_access_revokes_grant: false,
        access_lifetime: Duration::from_secs(config.access_token_ttl_secs),
        code_format: TokenFormat::Uuid,
        // ~300 characters, opaque (HubSpot tells apps to allow up to 300).
        access_format: TokenFormat::random("C", 299, Alphabet::Base64Url),
        refresh_format: TokenFormat::Uuid,
        answer: AnswerShape {
            token_type: "bearer",
            expires_in: true,
            refresh_echo: RefreshEcho::Always,
            scope: ScopeField::List("scopes"),
        },
        endpoints: Endpoints {
            authorize_path: AUTHORIZE_PATH,
            token_host: TokenHost::Api,
            token_path: TOKEN_PATH,
            revoke_path: Some(REVOKE_PATH),
        },
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// Who a HubSpot grant belongs to: the installing user in a hub (portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Install {
    pub(super) hub_id: u64,
    pub(super) user_id: u64,
}

pub(super) struct AuthState {
    pub(super) server: OAuthServer<Install>,
    pub(super) deny_next_consent: bool,
}

impl AuthState {
    pub(super) fn new(config: &HubSpotSimConfig) -> Self {
        Self {
            server: OAuthServer::new(oauth_policy(config)),
            deny_next_consent: false,
        }
    }
}

/// Why a bearer token was refused.
pub(super) enum AuthFailure {
    Missing,
    Unknown,
    Revoked,
    Expired(Duration),
}

impl Shared {
    /// Resolve a request's bearer token to its hub.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<u64, Reject> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        self.check_access_token(token)
            .map_err(|failure| auth_failure_response(&failure).into())
    }

    pub(super) fn check_access_token(&self, token: Option<&str>) -> Result<u64, AuthFailure> {
        let token = token.ok_or(AuthFailure::Missing)?;
        match self.auth().server.check_access(token) {
            Ok(install) => Ok(install.hub_id),
            Err(OAuthFailure::AccessRevoked) => Err(AuthFailure::Revoked),
            Err(OAuthFailure::AccessExpired(ago)) => Err(AuthFailure::Expired(ago)),
            Err(_) => Err(AuthFailure::Unknown),
        }
    }

    /// Who is calling the token/revoke endpoint: form fields first (as the
    /// spec has them), HTTP Basic as a fallback.
    fn authenticate_client(
        &self,
        form: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<(), Reject> {
        let basic = basic_credentials(headers);
        let used_basic = basic.is_some();
        let (basic_id, basic_secret) = basic.unwrap_or_default();
        let client_id = form.get("client_id").cloned().unwrap_or(basic_id);
        let client_secret = form.get("client_secret").cloned().unwrap_or(basic_secret);

        // RFC 6749 §5.2: 401 (with WWW-Authenticate) when the client tried
        // the Authorization header, otherwise 400 (what HubSpot's legacy
        // endpoint returned for bad body credentials).
        let fail = |status: &str, description: &str| {
            let http = if used_basic {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut response = oauth_error(http, "invalid_client", status, description);
            if used_basic {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hubapi\""),
                );
            }
            Reject::from(response)
        };

        if client_id.is_empty() {
            return Err(fail("BAD_CLIENT_ID", "missing client_id"));
        }
        if client_id != self.config.client_id {
            return Err(fail("BAD_CLIENT_ID", "unknown client_id"));
        }
        if client_secret != self.config.client_secret {
            return Err(fail(
                "BAD_CLIENT_SECRET",
                "client_secret does not match client_id",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Test controls and inspection
// ---------------------------------------------------------------------------

impl HubSpotSim {
    /// The next `/oauth/authorize` that could otherwise succeed redirects with
    /// `error=access_denied` instead of a code.
    pub fn deny_next_consent(&self) {
        self.shared.auth().deny_next_consent = true;
    }

    /// Refresh tokens that still work, in issue order.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.shared.auth().server.live_refresh_tokens(|_| true)
    }

    /// Tokens revoked through the revoke endpoint, in revocation order: every
    /// refresh token revoked, plus any access token passed to it directly
    /// (access tokens revoked only as a consequence of their refresh token
    /// are not listed).
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.auth().server.revoked_tokens()
    }

    /// Every access token ever issued, in issue order (live or not).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.auth().server.issued_access_tokens()
    }

    /// Make every access token issued so far expired as of now.
    pub fn expire_access_tokens(&self) {
        self.shared.auth().server.expire_access(|_| true);
    }

    /// Make every outstanding authorization code expired as of now.
    pub fn expire_auth_codes(&self) {
        self.shared.auth().server.expire_codes();
    }

    /// Mint a refresh/access token pair as if a user had consented and the
    /// app had exchanged the code — for tests that start from an existing
    /// connection.
    pub fn seed_connection(&self, scopes: &[&str]) -> SeededTokens {
        self.seed_connection_in_hub(self.shared.config.hub_id, scopes)
    }

    /// [`HubSpotSim::seed_connection`] into another hub (portal), for tests
    /// with several HubSpot accounts: each hub has its own records and its
    /// own rate-limit windows.
    pub fn seed_connection_in_hub(&self, hub_id: u64, scopes: &[&str]) -> SeededTokens {
        let install = Install {
            hub_id,
            user_id: SIM_USER_ID,
        };
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let issued = self.shared.auth().server.seed_grant(
            &self.shared.config.client_id,
            install,
            scopes,
            true,
        );
        SeededTokens {
            refresh_token: issued.refresh_token.unwrap_or_default(),
            access_token: issued.access_token,
            expires_in: issued.expires_in,
            hub_id,
            user_id: SIM_USER_ID,
            scopes: issued.scopes,
        }
    }
}

// ---------------------------------------------------------------------------
// GET /oauth/authorize
// ---------------------------------------------------------------------------

/// Auto-consenting install screen. Validates the app and the redirect target,
/// then redirects with a single-use code bound to client, redirect URI and
/// the S256 PKCE challenge.
pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    // Errors that cannot be sent back to the app are shown to the user.
    let client_id = param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return consent::error_page(PRODUCT, "The app's client_id is missing or unknown.");
    }
    let redirect_uri = param("redirect_uri");
    let Ok(redirect_target) = url::Url::parse(redirect_uri) else {
        return consent::error_page(
            PRODUCT,
            "The redirect_uri is missing or not an absolute URL.",
        );
    };
    let state_param = param("state");
    if state_param.is_empty() {
        return consent::error_page(PRODUCT, "The state parameter is required.");
    }

    let deny = std::mem::take(&mut shared.auth().deny_next_consent);
    if deny {
        return consent::redirect_to(
            PRODUCT,
            &redirect_target,
            &[
                ("error", "access_denied"),
                ("error_description", "The user declined to install the app."),
                ("state", state_param),
            ],
        );
    }

    let challenge = param("code_challenge");
    let method = param("code_challenge_method");
    if let Err(problem) = check_s256(challenge, method) {
        let description = match problem {
            PkceProblem::MissingChallenge => "code_challenge is required",
            PkceProblem::MethodNotS256 => "code_challenge_method must be S256",
            PkceProblem::MalformedChallenge => "code_challenge must be 43 base64url characters",
        };
        return consent::redirect_to(
            PRODUCT,
            &redirect_target,
            &[
                ("error", "invalid_request"),
                ("error_description", description),
                ("state", state_param),
            ],
        );
    }

    let scopes: Vec<String> = param("scope")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let code = shared.auth().server.issue_code(CodeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        challenge: Some(challenge.to_owned()),
        scopes,
        subject: Install {
            hub_id: shared.config.hub_id,
            user_id: SIM_USER_ID,
        },
        with_refresh: true,
    });
    consent::redirect_to(
        PRODUCT,
        &redirect_target,
        &[("code", code.as_str()), ("state", state_param)],
    )
}

// ---------------------------------------------------------------------------
// POST /oauth/2026-03/token
// ---------------------------------------------------------------------------

/// Authorization-code (with PKCE) and refresh-token grants.
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Reject> {
    require_form(&headers)?;
    let form = decode_form(&body);
    shared.authenticate_client(&form, &headers)?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();

    Ok(match field("grant_type") {
        "authorization_code" => exchange_code(
            &shared,
            field("code"),
            field("redirect_uri"),
            field("code_verifier"),
        ),
        "refresh_token" => refresh(&shared, field("refresh_token")),
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_GRANT_TYPE",
            "missing grant_type",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "BAD_GRANT_TYPE",
            &format!("grant_type {other:?} is not supported by this simulator"),
        ),
    })
}

fn exchange_code(shared: &Shared, code: &str, redirect_uri: &str, verifier: &str) -> Response {
    if code.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_AUTH_CODE",
            "missing code",
        );
    }
    if redirect_uri.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_REDIRECT_URI",
            "missing redirect_uri",
        );
    }
    // Single use: a code is consumed by any redemption attempt that passed
    // client authentication, successful or not.
    let mut state = shared.auth();
    let result = state.server.exchange_code(Redemption {
        code,
        client_id: &shared.config.client_id,
        redirect_uri,
        verifier,
    });
    match result {
        Ok(issued) => token_response(&state.server, &issued, false),
        Err(OAuthFailure::RedirectMismatch) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "BAD_REDIRECT_URI",
            "redirect_uri does not match the one used in the authorization request",
        ),
        Err(failure) => {
            let description = match failure {
                OAuthFailure::ClientMismatch => "authorization code was issued to another client",
                OAuthFailure::VerifierMissing => "missing code_verifier",
                OAuthFailure::VerifierMismatch => "code_verifier does not match the code_challenge",
                _ => "authorization code is invalid, expired or already used",
            };
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "BAD_AUTH_CODE",
                description,
            )
        }
    }
}

fn refresh(shared: &Shared, refresh_token: &str) -> Response {
    if refresh_token.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_REFRESH_TOKEN",
            "missing refresh_token",
        );
    }
    let mut state = shared.auth();
    match state
        .server
        .refresh(refresh_token, &shared.config.client_id)
    {
        Ok(issued) => token_response(&state.server, &issued, true),
        Err(failure) => {
            let description = match failure {
                OAuthFailure::RefreshReused { .. } => "refresh token was already used",
                _ => "refresh token is invalid, expired or revoked",
            };
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "BAD_REFRESH_TOKEN",
                description,
            )
        }
    }
}

/// The policy's fields plus HubSpot's `token_use`, `hub_id` and `user_id`.
fn token_response(
    server: &OAuthServer<Install>,
    issued: &Issued<Install>,
    refreshed: bool,
) -> Response {
    let mut body = server.answer(issued, refreshed);
    body.insert("token_use".into(), json!("access_token"));
    body.insert("hub_id".into(), json!(issued.subject.hub_id));
    body.insert("user_id".into(), json!(issued.subject.user_id));
    let mut response = json_response(StatusCode::OK, &Value::Object(body));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------------------
// POST /oauth/2026-03/token/revoke
// ---------------------------------------------------------------------------

/// Revokes a refresh token and every access token issued from it. The spec
/// describes the operation as "Deletes/Revokes provided Refresh Token" and
/// defines no success body; like RFC 7009 §2.2 we answer 200 with an empty
/// body, also for tokens we do not know. An access token passed here is
/// revoked on its own.
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Reject> {
    require_form(&headers)?;
    let form = decode_form(&body);
    shared.authenticate_client(&form, &headers)?;
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    if token.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_REQUEST",
            "missing token",
        )
        .into());
    }

    // Unknown and already revoked tokens get the same 200 (RFC 7009 §2.2).
    let _ = shared.auth().server.revoke(token);
    Ok(StatusCode::OK.into_response())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))`, RFC 6749 §2.3.1.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_component(id), form_component(secret)))
}

fn form_component(raw: &str) -> String {
    url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn require_form(headers: &HeaderMap) -> Result<(), Reject> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(())
    } else {
        Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "BAD_REQUEST",
            "the request body must be application/x-www-form-urlencoded",
        )
        .into())
    }
}
/// OAuth endpoint error. HubSpot's standardized OAuth errors carry the RFC
/// 6749 fields (`error`, `error_description`) alongside the legacy ones
/// (`status` such as `BAD_REFRESH_TOKEN`, `message`); the spec's `Error`
/// schema also requires `correlationId` and `category`, so all six are sent.
fn oauth_error(http: StatusCode, error: &str, legacy_status: &str, description: &str) -> Response {
    json_response(
        http,
        &json!({
            "error": error,
            "error_description": description,
            "status": legacy_status,
            "message": description,
            "correlationId": correlation_id(),
            "category": "VALIDATION_ERROR",
        }),
    )
}

fn auth_failure_response(failure: &AuthFailure) -> Response {
    match failure {
        AuthFailure::Missing | AuthFailure::Unknown => hubspot_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            AUTH_NOT_FOUND_MESSAGE.to_owned(),
        ),
        AuthFailure::Revoked => hubspot_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The OAuth token used to make this call has been revoked.".to_owned(),
        ),
        AuthFailure::Expired(ago) => hubspot_error(
            StatusCode::UNAUTHORIZED,
            "EXPIRED_AUTHENTICATION",
            format!(
                "The OAuth token used to make this call expired {} minute(s) ago.",
                ago.as_secs() / 60
            ),
        ),
    }
}
