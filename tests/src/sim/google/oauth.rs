//! Google OAuth 2.0 for web-server apps: the consent screen (PKCE S256
//! required), the token endpoint (authorization code; refresh without
//! rotation), revocation, and the bearer check of the Sheets API.
//!
//! As at Google, a code exchange returns a refresh token only when the
//! consent asked for `access_type=offline` and either the user had not
//! consented offline before or `prompt=consent` forced the screen again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{json_response, Ctx, Shared, ACCESS_TOKEN_SECONDS, DEFAULT_USER, SPREADSHEETS_SCOPE};
use crate::sim::consent;
use crate::sim::recorder::decode_form;

const PRODUCT: &str = "Google";
/// How long an authorization code stays redeemable.
const CODE_TTL: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct AuthState {
    codes: HashMap<String, PendingCode>,
    grants: Vec<Grant>,
    /// Refresh token → grant index.
    refresh: HashMap<String, usize>,
    access: HashMap<String, Access>,
    /// Users who consented to offline access (until every grant is revoked).
    offline_consent: HashSet<String>,
    pub(super) refresh_calls: usize,
    pub(super) revocations: usize,
}

struct PendingCode {
    user: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    with_refresh: bool,
    expires_at: Instant,
}

struct Grant {
    user: String,
    scope: String,
    has_refresh: bool,
    live: bool,
}

struct Access {
    user: String,
    grant: usize,
    expires_at: Instant,
    live: bool,
}

impl AuthState {
    /// A new grant and its first access token (and refresh token when offline).
    pub(super) fn new_grant(
        &mut self,
        user: &str,
        scope: String,
        offline: bool,
    ) -> (String, Option<String>) {
        let user = user.to_ascii_lowercase();
        self.grants.push(Grant {
            user: user.clone(),
            scope,
            has_refresh: offline,
            live: true,
        });
        let grant = self.grants.len() - 1;
        let refresh = offline.then(|| {
            let token = format!("1//0{}", random_b64(100));
            self.refresh.insert(token.clone(), grant);
            self.offline_consent.insert(user);
            token
        });
        (self.mint_access(grant), refresh)
    }

    fn mint_access(&mut self, grant: usize) -> String {
        let token = format!("ya29.a0{}", random_b64(160));
        self.access.insert(
            token.clone(),
            Access {
                user: self.grants[grant].user.clone(),
                grant,
                expires_at: Instant::now() + Duration::from_secs(ACCESS_TOKEN_SECONDS),
                live: true,
            },
        );
        token
    }

    /// The user of a live, unexpired access token.
    pub(super) fn session_user(&self, token: &str) -> Option<String> {
        let access = self.access.get(token)?;
        let live = access.live
            && Instant::now() < access.expires_at
            && self.grants.get(access.grant).is_some_and(|g| g.live);
        live.then(|| access.user.clone())
    }

    pub(super) fn expire_sessions(&mut self, user: &str) {
        let user = user.to_ascii_lowercase();
        for access in self.access.values_mut() {
            if access.user == user {
                access.live = false;
            }
        }
    }

    pub(super) fn live_refresh_tokens(&self, user: &str) -> usize {
        self.grants
            .iter()
            .filter(|g| g.live && g.has_refresh && g.user.eq_ignore_ascii_case(user))
            .count()
    }

    fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].live = false;
        for access in self.access.values_mut() {
            if access.grant == grant {
                access.live = false;
            }
        }
        let user = self.grants[grant].user.clone();
        if self.live_refresh_tokens(&user) == 0 {
            self.offline_consent.remove(&user);
        }
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
    if ctx.param("code_challenge_method") != "S256" || !is_s256_challenge(challenge) {
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
        let code = format!("4/0{}", random_b64(70));
        let mut auth = shared.auth();
        let with_refresh = offline && (forced || !auth.offline_consent.contains(&user));
        if offline {
            auth.offline_consent.insert(user.clone());
        }
        auth.codes.insert(
            code.clone(),
            PendingCode {
                user,
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.to_owned(),
                scope: scope.clone(),
                with_refresh,
                expires_at: Instant::now() + CODE_TTL,
            },
        );
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
    // Single use: a presented code is gone, whatever the outcome.
    let Some(pending) = auth.codes.remove(code) else {
        return oauth_error("invalid_grant", "Malformed auth code.");
    };
    if Instant::now() >= pending.expires_at {
        return oauth_error("invalid_grant", "Bad Request");
    }
    if pending.redirect_uri != redirect_uri {
        return oauth_error("redirect_uri_mismatch", "Bad Request");
    }
    if verifier.is_empty() {
        return oauth_error("invalid_grant", "Missing code verifier.");
    }
    if s256_challenge(verifier) != pending.challenge {
        return oauth_error("invalid_grant", "Invalid code verifier.");
    }
    let (access, refresh) =
        auth.new_grant(&pending.user, pending.scope.clone(), pending.with_refresh);
    let mut body = json!({
        "access_token": access,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": pending.scope,
        "token_type": "Bearer",
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = json!(refresh);
    }
    json_response(StatusCode::OK, &body)
}

fn refresh(shared: &Shared, token: &str) -> Response {
    let mut auth = shared.auth();
    auth.refresh_calls += 1;
    let grant = match auth.refresh.get(token) {
        Some(&grant) if auth.grants[grant].live => grant,
        _ => return oauth_error("invalid_grant", "Token has been expired or revoked."),
    };
    let access = auth.mint_access(grant);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": auth.grants[grant].scope,
            "token_type": "Bearer",
        }),
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
    let grant = auth
        .refresh
        .get(token)
        .copied()
        .or_else(|| auth.access.get(token).map(|a| a.grant));
    match grant {
        Some(grant) if auth.grants[grant].live => {
            auth.revoke_grant(grant);
            auth.revocations += 1;
            json_response(StatusCode::OK, &json!({}))
        }
        _ => oauth_error("invalid_token", "Token expired or revoked"),
    }
}

// ---------------------------------------------------------------------------
// Token material
// ---------------------------------------------------------------------------

/// `len` URL-safe characters of randomness.
fn random_b64(len: usize) -> String {
    let mut buffer = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut buffer);
    let mut out = URL_SAFE_NO_PAD.encode(buffer);
    out.truncate(len);
    out
}

/// BASE64URL-NOPAD(SHA256(verifier)), RFC 7636 §4.2.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
