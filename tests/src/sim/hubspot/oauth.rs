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
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{correlation_id, hubspot_error, json_response, Shared, AUTH_CODE_TTL, SIM_USER_ID};
use crate::sim::consent;
use crate::sim::recorder::decode_form;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "HubSpot";
use crate::sim::server::Reject;

const AUTH_NOT_FOUND_MESSAGE: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct AuthState {
    pub(super) codes: HashMap<String, PendingCode>,
    pub(super) refresh: HashMap<String, RefreshGrant>,
    pub(super) refresh_order: Vec<String>,
    pub(super) access: HashMap<String, AccessGrant>,
    pub(super) access_order: Vec<String>,
    pub(super) revoked: Vec<String>,
    pub(super) deny_next_consent: bool,
}

pub(super) struct PendingCode {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) scopes: Vec<String>,
    pub(super) hub_id: u64,
    pub(super) user_id: u64,
    pub(super) expires_at: Instant,
}

pub(super) struct RefreshGrant {
    pub(super) client_id: String,
    pub(super) hub_id: u64,
    pub(super) user_id: u64,
    pub(super) scopes: Vec<String>,
    pub(super) revoked: bool,
    /// The token that replaced this one when a rotating refresh retired it.
    pub(super) rotated_to: Option<String>,
}

pub(super) struct AccessGrant {
    pub(super) refresh_token: String,
    pub(super) hub_id: u64,
    pub(super) expires_at: Instant,
    pub(super) revoked: bool,
}

impl AuthState {
    pub(super) fn issue_refresh(&mut self, grant: RefreshGrant) -> String {
        // HubSpot refresh tokens are UUID-shaped.
        let token = uuid::Uuid::new_v4().to_string();
        self.refresh.insert(token.clone(), grant);
        self.refresh_order.push(token.clone());
        token
    }

    pub(super) fn issue_access(
        &mut self,
        refresh_token: &str,
        hub_id: u64,
        ttl: Duration,
    ) -> String {
        let token = new_access_token();
        self.access.insert(
            token.clone(),
            AccessGrant {
                refresh_token: refresh_token.to_owned(),
                hub_id,
                expires_at: Instant::now() + ttl,
                revoked: false,
            },
        );
        self.access_order.push(token.clone());
        token
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
        let state = self.auth();
        let grant = state.access.get(token).ok_or(AuthFailure::Unknown)?;
        if grant.revoked {
            return Err(AuthFailure::Revoked);
        }
        let now = Instant::now();
        if now >= grant.expires_at {
            return Err(AuthFailure::Expired(now - grant.expires_at));
        }
        Ok(grant.hub_id)
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
    let pkce_problem = if challenge.is_empty() {
        Some("code_challenge is required")
    } else if method != "S256" {
        Some("code_challenge_method must be S256")
    } else if !is_s256_challenge(challenge) {
        Some("code_challenge must be 43 base64url characters")
    } else {
        None
    };
    if let Some(description) = pkce_problem {
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
    let code = uuid::Uuid::new_v4().to_string();
    shared.auth().codes.insert(
        code.clone(),
        PendingCode {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: challenge.to_owned(),
            scopes,
            hub_id: shared.config.hub_id,
            user_id: SIM_USER_ID,
            expires_at: Instant::now() + AUTH_CODE_TTL,
        },
    );
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
    let bad_code = |description: &str| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "BAD_AUTH_CODE",
            description,
        )
    };

    let mut state = shared.auth();
    // Single use: a code is consumed by any redemption attempt that passed
    // client authentication, successful or not.
    let Some(pending) = state.codes.remove(code) else {
        return bad_code("authorization code is invalid, expired or already used");
    };
    if Instant::now() >= pending.expires_at {
        return bad_code("authorization code is invalid, expired or already used");
    }
    if pending.client_id != shared.config.client_id {
        return bad_code("authorization code was issued to another client");
    }
    if pending.redirect_uri != redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "BAD_REDIRECT_URI",
            "redirect_uri does not match the one used in the authorization request",
        );
    }
    if verifier.is_empty() {
        return bad_code("missing code_verifier");
    }
    if !is_valid_verifier(verifier) || s256_challenge(verifier) != pending.code_challenge {
        return bad_code("code_verifier does not match the code_challenge");
    }

    let refresh_token = state.issue_refresh(RefreshGrant {
        client_id: pending.client_id,
        hub_id: pending.hub_id,
        user_id: pending.user_id,
        scopes: pending.scopes.clone(),
        revoked: false,
        rotated_to: None,
    });
    let ttl = shared.config.access_token_ttl_secs;
    let access_token = state.issue_access(&refresh_token, pending.hub_id, Duration::from_secs(ttl));
    drop(state);
    token_response(
        &access_token,
        &refresh_token,
        ttl,
        pending.hub_id,
        pending.user_id,
        &pending.scopes,
    )
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
    let reused = state
        .refresh
        .get(refresh_token)
        .and_then(|g| g.rotated_to.clone());
    if let Some(successor) = reused {
        if shared.config.rotation == super::Rotation::RotateAndRevokeOnReuse {
            // Reuse of a retired token: revoke the whole chain, as Salesforce does.
            let mut next = Some(successor);
            while let Some(token) = next {
                next = state.refresh.get_mut(&token).and_then(|g| {
                    g.revoked = true;
                    g.rotated_to.clone()
                });
                for access in state
                    .access
                    .values_mut()
                    .filter(|a| a.refresh_token == token)
                {
                    access.revoked = true;
                }
            }
        }
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "BAD_REFRESH_TOKEN",
            "refresh token was already used",
        );
    }
    let usable = state
        .refresh
        .get(refresh_token)
        .filter(|g| !g.revoked && g.client_id == shared.config.client_id)
        .map(|g| (g.hub_id, g.user_id, g.scopes.clone()));
    let Some((hub_id, user_id, scopes)) = usable else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "BAD_REFRESH_TOKEN",
            "refresh token is invalid, expired or revoked",
        );
    };
    let ttl = shared.config.access_token_ttl_secs;
    if shared.config.rotation == super::Rotation::Never {
        let access_token = state.issue_access(refresh_token, hub_id, Duration::from_secs(ttl));
        drop(state);
        // HubSpot refresh tokens do not rotate: hand back the same one.
        return token_response(&access_token, refresh_token, ttl, hub_id, user_id, &scopes);
    }
    let client_id = shared.config.client_id.clone();
    let successor = state.issue_refresh(RefreshGrant {
        client_id,
        hub_id,
        user_id,
        scopes: scopes.clone(),
        revoked: false,
        rotated_to: None,
    });
    if let Some(old) = state.refresh.get_mut(refresh_token) {
        old.revoked = true;
        old.rotated_to = Some(successor.clone());
    }
    // The retired token's access tokens die with it (Bitrix24, Salesforce).
    for access in state
        .access
        .values_mut()
        .filter(|a| a.refresh_token == refresh_token)
    {
        access.revoked = true;
    }
    let access_token = state.issue_access(&successor, hub_id, Duration::from_secs(ttl));
    drop(state);
    token_response(&access_token, &successor, ttl, hub_id, user_id, &scopes)
}

fn token_response(
    access_token: &str,
    refresh_token: &str,
    expires_in: u64,
    hub_id: u64,
    user_id: u64,
    scopes: &[String],
) -> Response {
    let body = json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in": expires_in,
        "token_type": "bearer",
        "token_use": "access_token",
        "hub_id": hub_id,
        "user_id": user_id,
        "scopes": scopes,
    });
    let mut response = json_response(StatusCode::OK, &body);
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

    let mut state = shared.auth();
    let state = &mut *state;
    if let Some(grant) = state.refresh.get_mut(token) {
        if !grant.revoked {
            grant.revoked = true;
            state.revoked.push(token.to_owned());
        }
        for access in state.access.values_mut() {
            if access.refresh_token == token {
                access.revoked = true;
            }
        }
    } else if let Some(access) = state.access.get_mut(token) {
        if !access.revoked {
            access.revoked = true;
            state.revoked.push(token.to_owned());
        }
    }
    Ok(StatusCode::OK.into_response())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// ~300 characters, opaque, like HubSpot's access tokens (HubSpot tells apps
/// to allow up to 300).
fn new_access_token() -> String {
    let mut bytes = [0u8; 224];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("C{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// BASE64URL-NOPAD(SHA256(verifier)), RFC 7636 §4.2.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

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
