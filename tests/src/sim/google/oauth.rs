//! Google OAuth 2.0 for web-server apps: the consent screen (PKCE S256
//! required), the token endpoint (authorization code; refresh without
//! rotation), revocation, and the bearer check of the Sheets API.
//!
//! As at Google, a code exchange returns a refresh token only when the
//! consent asked for `access_type=offline` and either the user had not
//! consented offline before or `prompt=consent` forced the screen again.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{
    json_response, Ctx, GoogleSimConfig, Shared, ACCESS_TOKEN_SECONDS, AUTHORIZE_PATH,
    DEFAULT_USER, OAUTH2_HOST, REVOKE_PATH, SPREADSHEETS_SCOPE, TOKEN_PATH,
};
use crate::sim::consent;
use crate::sim::oauth::{
    check_s256, Alphabet, AnswerShape, CodeRequest, Endpoints, Issued, OAuthFailure, OAuthPolicy,
    OAuthServer, Pkce, Redemption, RefreshEcho, Rotation, ScopeField, TokenFormat, TokenHost,
};
use crate::sim::recorder::decode_form;

pub use crate::sim::oauth::s256_challenge;

const PRODUCT: &str = "Google";

/// Google's authorization server as data.
pub fn oauth_policy() -> OAuthPolicy {
    OAuthPolicy {
        code_lifetime: Duration::from_secs(10 * 60),
        pkce: Pkce::RequiredS256,
        rotation: Rotation::Reusable,
        rotation_retires_access: false,
        revoking_access_revokes_grant: true,
        access_lifetime: Duration::from_secs(ACCESS_TOKEN_SECONDS),
        code_format: TokenFormat::random("4/0", 70, Alphabet::Base64Url),
        access_format: TokenFormat::random("ya29.a0", 160, Alphabet::Base64Url),
        refresh_format: TokenFormat::random("1//0", 100, Alphabet::Base64Url),
        answer: AnswerShape {
            token_type: "Bearer",
            expires_in: true,
            refresh_echo: RefreshEcho::WhenRotated,
            scope: ScopeField::SpaceSeparated("scope"),
        },
        endpoints: Endpoints {
            authorize_path: AUTHORIZE_PATH,
            token_host: TokenHost::Accounts(OAUTH2_HOST),
            token_path: TOKEN_PATH,
            revoke_path: Some(REVOKE_PATH),
        },
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// The shared OAuth server (a grant's subject is its user's lower-case
/// email) and Google's memory of offline consents.
pub(super) struct AuthState {
    server: OAuthServer<String>,
    /// Users who consented to offline access (until every grant is revoked).
    offline_consent: HashSet<String>,
    /// The app seeded grants belong to.
    client_id: String,
}

impl AuthState {
    pub(super) fn new(config: &GoogleSimConfig) -> Self {
        Self {
            server: OAuthServer::new(oauth_policy()),
            offline_consent: HashSet::new(),
            client_id: config.client_id.clone(),
        }
    }

    /// A new grant and its first access token (and refresh token when offline).
    pub(super) fn new_grant(
        &mut self,
        user: &str,
        scope: String,
        offline: bool,
    ) -> (String, Option<String>) {
        let user = user.to_ascii_lowercase();
        if offline {
            self.offline_consent.insert(user.clone());
        }
        let scopes = scope.split_whitespace().map(str::to_owned).collect();
        let issued = self
            .server
            .seed_grant(&self.client_id, user, scopes, offline);
        (issued.access_token, issued.refresh_token)
    }

    /// The user of a live, unexpired access token.
    pub(super) fn session_user(&self, token: &str) -> Option<String> {
        self.server.check_access(token).ok()
    }

    pub(super) fn expire_sessions(&mut self, user: &str) {
        let user = user.to_ascii_lowercase();
        self.server.expire_access(|u| *u == user);
    }

    pub(super) fn live_refresh_tokens(&self, user: &str) -> usize {
        self.server
            .live_refresh_tokens(|u| u.eq_ignore_ascii_case(user))
            .len()
    }

    /// `grant_type=refresh_token` calls, any outcome.
    pub(super) fn refresh_calls(&self) -> usize {
        self.server.refresh_attempts()
    }

    /// Successful revocations.
    pub(super) fn revocations(&self) -> usize {
        self.server.counters(|_| true).revocations
    }
}

/// The token of an `Authorization: Bearer ...` header.
pub(super) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

// ---------------------------------------------------------------------------
// GET accounts.google.com/o/oauth2/v2/auth
// ---------------------------------------------------------------------------

/// Auto-consenting consent screen. Simulator-only parameters:
/// `sim_user=<email>` (default [`DEFAULT_USER`]) and `sim_deny=1`.
/// Malformed requests get Google's error page (no redirect).
pub(super) fn authorize(shared: &Shared, ctx: &Ctx) -> Response {
    let client_id = ctx.param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return consent::error_page(
            PRODUCT,
            "Error 401: invalid_client. The OAuth client was not found.",
        );
    }
    let redirect_uri = ctx.param("redirect_uri");
    let target =
        match url::Url::parse(redirect_uri) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => return consent::error_page(
                PRODUCT,
                "Error 400: redirect_uri_mismatch. The redirect_uri is missing or not absolute.",
            ),
        };
    if ctx.param("response_type") != "code" {
        return consent::error_page(
            PRODUCT,
            "Error 400: invalid_request. Required parameter is missing or unsupported: response_type",
        );
    }
    let challenge = ctx.param("code_challenge");
    if check_s256(challenge, ctx.param("code_challenge_method")).is_err() {
        return consent::error_page(
            PRODUCT,
            "Error 400: invalid_request. code_challenge with code_challenge_method=S256 is required",
        );
    }
    let scopes: Vec<&str> = ctx.param("scope").split_whitespace().collect();
    if !scopes.contains(&SPREADSHEETS_SCOPE) {
        return consent::error_page(
            PRODUCT,
            "Error 400: invalid_scope. The spreadsheets scope is required.",
        );
    }
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if ctx.param("sim_deny") == "1" {
        pairs.push(("error", "access_denied".to_owned()));
    } else {
        let user = match ctx.param("sim_user") {
            "" => DEFAULT_USER.to_owned(),
            user => user.to_ascii_lowercase(),
        };
        let offline = ctx.param("access_type") == "offline";
        let forced = ctx
            .param("prompt")
            .split_whitespace()
            .any(|p| p == "consent");
        let scope = scopes.join(" ");
        let mut auth = shared.auth();
        let with_refresh = offline && (forced || !auth.offline_consent.contains(&user));
        if offline {
            auth.offline_consent.insert(user.clone());
        }
        let code = auth.server.issue_code(CodeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: Some(challenge.to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            subject: user,
            with_refresh,
        });
        pairs.push(("code", code));
        pairs.push(("scope", scope));
    }
    if let Some(state) = ctx.query.get("state") {
        pairs.push(("state", state.clone()));
    }
    consent::redirect_to(PRODUCT, &target, &pairs)
}

// ---------------------------------------------------------------------------
// POST oauth2.googleapis.com/token
// ---------------------------------------------------------------------------

pub(super) fn token(shared: &Shared, ctx: &Ctx) -> Response {
    let mut form = decode_form(&ctx.body);
    if let Some((id, secret)) = ctx.authorization.as_deref().and_then(basic_credentials) {
        form.entry("client_id".into()).or_insert(id);
        form.entry("client_secret".into()).or_insert(secret);
    }
    let param = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let config = &shared.config;
    if param("client_id") != config.client_id || param("client_secret") != config.client_secret {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client", "error_description": "Unauthorized"}),
        );
    }
    match param("grant_type") {
        "authorization_code" => exchange(
            shared,
            param("code"),
            param("redirect_uri"),
            param("code_verifier"),
        ),
        "refresh_token" => refresh(shared, param("refresh_token")),
        "" => oauth_error("invalid_request", "Missing required parameter: grant_type"),
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
}

fn exchange(shared: &Shared, code: &str, redirect_uri: &str, verifier: &str) -> Response {
    let mut auth = shared.auth();
    let result = auth.server.exchange_code(Redemption {
        code,
        client_id: &shared.config.client_id,
        redirect_uri,
        verifier,
    });
    match result {
        Ok(issued) => token_answer(&auth.server, &issued, false),
        Err(OAuthFailure::CodeExpired) => oauth_error("invalid_grant", "Bad Request"),
        Err(OAuthFailure::RedirectMismatch) => oauth_error("redirect_uri_mismatch", "Bad Request"),
        Err(OAuthFailure::VerifierMissing) => {
            oauth_error("invalid_grant", "Missing code verifier.")
        }
        Err(OAuthFailure::VerifierMismatch) => {
            oauth_error("invalid_grant", "Invalid code verifier.")
        }
        Err(_) => oauth_error("invalid_grant", "Malformed auth code."),
    }
}

fn refresh(shared: &Shared, token: &str) -> Response {
    let mut auth = shared.auth();
    match auth.server.refresh(token, &shared.config.client_id) {
        Ok(issued) => token_answer(&auth.server, &issued, true),
        Err(_) => oauth_error("invalid_grant", "Token has been expired or revoked."),
    }
}

/// Google's answer is the policy's fields and nothing else.
fn token_answer(
    server: &OAuthServer<String>,
    issued: &Issued<String>,
    refreshed: bool,
) -> Response {
    json_response(
        StatusCode::OK,
        &Value::Object(server.answer(issued, refreshed)),
    )
}

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

// ---------------------------------------------------------------------------
// POST oauth2.googleapis.com/revoke
// ---------------------------------------------------------------------------

/// Revokes the grant of a refresh or access token (`token=` in the form
/// body or the query string) and every token of that grant.
pub(super) fn revoke(shared: &Shared, ctx: &Ctx) -> Response {
    let mut params = ctx.query.clone();
    params.extend(decode_form(&ctx.body));
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let mut auth = shared.auth();
    match auth.server.revoke(token) {
        Ok(user) => {
            // A user without a refresh token is asked for offline consent again.
            if auth.live_refresh_tokens(&user) == 0 {
                auth.offline_consent.remove(&user);
            }
            json_response(StatusCode::OK, &json!({}))
        }
        Err(_) => oauth_error("invalid_token", "Token expired or revoked"),
    }
}
