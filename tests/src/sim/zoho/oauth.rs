//! Zoho Accounts OAuth: the consent screen (`GET /oauth/v2/auth`), the token
//! endpoint (authorization code with optional PKCE, refresh) and revocation
//! (`POST /oauth/v2/token/revoke?token=`), plus the access-token check of the
//! CRM API (`Authorization: Zoho-oauthtoken ...`).
//!
//! Zoho answers token-endpoint errors with HTTP 200 and an OAuth-style body
//! (`{"error":"invalid_code"}`), and enforces three caps, all configurable
//! here: access tokens minted per refresh token per window, live access tokens
//! per refresh token, and refresh tokens per user per client.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    dc, json_response, zoho_error, Rotation, Shared, Target, ZohoSimConfig,
    ACCESS_DENIED_DESCRIPTION,
};
use crate::sim::consent;
use crate::sim::recorder::decode_form;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "Zoho Accounts";
use crate::sim::server::Reject;

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
    /// Refresh tokens revoked through the revoke endpoint.
    pub(super) revoked: Vec<String>,
    pub(super) refresh_calls: usize,
    pub(super) deny_next_consent: bool,
}

pub(super) struct PendingCode {
    client_id: String,
    redirect_uri: String,
    dc: &'static str,
    user: String,
    challenge: Option<String>,
    offline: bool,
    prompt_consent: bool,
    scopes: Vec<String>,
    pub(super) expires_at: Instant,
}

pub(super) struct RefreshGrant {
    pub(super) dc: &'static str,
    pub(super) user: String,
    pub(super) scopes: Vec<String>,
    /// False once revoked, deleted by the per-user cap, or rotated out.
    pub(super) live: bool,
    /// The token that replaced this one when a rotating refresh retired it.
    pub(super) rotated_to: Option<String>,
    /// When each access token was minted by a refresh call, inside the window.
    pub(super) mints: VecDeque<Instant>,
}

pub(super) struct AccessGrant {
    pub(super) dc: &'static str,
    pub(super) user: String,
    pub(super) refresh_token: Option<String>,
    pub(super) expires_at: Instant,
    pub(super) revoked: bool,
}

impl AccessGrant {
    fn live(&self, now: Instant) -> bool {
        !self.revoked && now < self.expires_at
    }
}

impl AuthState {
    /// A new refresh token for `user` in `dc`. When the user already holds
    /// `max_refresh_tokens` live ones, the oldest is deleted with its access
    /// tokens (Zoho's 20-per-user rule).
    pub(super) fn issue_refresh(
        &mut self,
        config: &ZohoSimConfig,
        dc: &'static str,
        user: &str,
        scopes: Vec<String>,
    ) -> String {
        let live = self.live_refresh_of(dc, user);
        let excess = (live.len() + 1).saturating_sub(config.max_refresh_tokens.max(1));
        for oldest in live.into_iter().take(excess) {
            self.kill_refresh(&oldest);
        }
        let token = new_token();
        self.refresh.insert(
            token.clone(),
            RefreshGrant {
                dc,
                user: user.to_owned(),
                scopes,
                live: true,
                rotated_to: None,
                mints: VecDeque::new(),
            },
        );
        self.refresh_order.push(token.clone());
        token
    }

    /// A new access token. When its refresh token already has
    /// `max_live_access_tokens` live ones, the oldest stops working.
    pub(super) fn issue_access(
        &mut self,
        config: &ZohoSimConfig,
        dc: &'static str,
        user: &str,
        refresh_token: Option<&str>,
    ) -> String {
        let now = Instant::now();
        if let Some(refresh) = refresh_token {
            let live: Vec<String> = self
                .access_order
                .iter()
                .filter(|t| {
                    self.access
                        .get(*t)
                        .is_some_and(|a| a.refresh_token.as_deref() == Some(refresh) && a.live(now))
                })
                .cloned()
                .collect();
            let excess = (live.len() + 1).saturating_sub(config.max_live_access_tokens.max(1));
            for oldest in live.iter().take(excess) {
                if let Some(grant) = self.access.get_mut(oldest) {
                    grant.revoked = true;
                }
            }
        }
        let token = new_token();
        self.access.insert(
            token.clone(),
            AccessGrant {
                dc,
                user: user.to_owned(),
                refresh_token: refresh_token.map(str::to_owned),
                expires_at: now + Duration::from_secs(config.access_token_ttl_secs),
                revoked: false,
            },
        );
        self.access_order.push(token.clone());
        token
    }

    /// The refresh token stops working, and so do its access tokens.
    fn kill_refresh(&mut self, token: &str) {
        if let Some(grant) = self.refresh.get_mut(token) {
            grant.live = false;
        }
        for access in self.access.values_mut() {
            if access.refresh_token.as_deref() == Some(token) {
                access.revoked = true;
            }
        }
    }

    pub(super) fn live_refresh_of(&self, dc: &str, user: &str) -> Vec<String> {
        self.refresh_order
            .iter()
            .filter(|t| {
                self.refresh
                    .get(*t)
                    .is_some_and(|g| g.live && g.dc == dc && g.user == user)
            })
            .cloned()
            .collect()
    }

    pub(super) fn refresh_live(&self, token: &str) -> bool {
        self.refresh.get(token).is_some_and(|g| g.live)
    }

    pub(super) fn access_live(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|a| a.live(Instant::now()))
    }
}

impl Shared {
    /// The user whose org a CRM call works on, or the 401 to send: the token
    /// must be live and belong to the DC whose API host was called.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
        target: &Target,
    ) -> Result<String, Reject> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(zoho_token);
        let state = self.auth();
        let grant = token
            .and_then(|t| state.access.get(t))
            .filter(|a| a.live(Instant::now()) && a.dc == target.dc.code);
        match grant {
            Some(grant) => Ok(grant.user.clone()),
            None => Err(zoho_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                json!({}),
                "invalid oauth token",
            )
            .into()),
        }
    }
}

/// `Zoho-oauthtoken <token>` → the token.
pub(super) fn zoho_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("zoho-oauthtoken") && !token.is_empty()).then_some(token)
}

// ---------------------------------------------------------------------------
// GET /oauth/v2/auth
// ---------------------------------------------------------------------------

/// Auto-consenting consent screen. Simulator-only query parameters:
/// `sim_dc` (the DC the account lives in), `sim_user`, `sim_deny=1`,
/// `sim_accounts_server` (a forged `accounts-server` in the redirect).
pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    let client_id = param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return consent::error_page(
            PRODUCT,
            "Invalid Client: the client_id is missing or unknown.",
        );
    }
    let Ok(redirect_target) = url::Url::parse(param("redirect_uri")) else {
        return consent::error_page(
            PRODUCT,
            "Invalid Redirect Uri: the redirect_uri is missing or not absolute.",
        );
    };
    let dc_code = match param("sim_dc") {
        "" => shared.config.default_dc.as_str(),
        code => code,
    };
    let Some(dc) = dc(dc_code) else {
        return consent::error_page(PRODUCT, "Unknown data centre in sim_dc.");
    };
    let user = match param("sim_user") {
        "" => shared.config.default_user.clone(),
        user => user.to_owned(),
    };
    let state_param = params.get("state").map(String::as_str);
    let with_state = |mut pairs: Vec<(&'static str, String)>| {
        if let Some(state) = state_param {
            pairs.push(("state", state.to_owned()));
        }
        pairs
    };

    let deny = std::mem::take(&mut shared.auth().deny_next_consent) || param("sim_deny") == "1";
    if deny {
        return consent::redirect_to(
            PRODUCT,
            &redirect_target,
            &with_state(vec![("error", "access_denied".to_owned())]),
        );
    }
    if param("response_type") != "code" {
        return consent::redirect_to(
            PRODUCT,
            &redirect_target,
            &with_state(vec![("error", "unsupported_response_type".to_owned())]),
        );
    }
    let scopes: Vec<String> = param("scope")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return consent::redirect_to(
            PRODUCT,
            &redirect_target,
            &with_state(vec![("error", "invalid_scope".to_owned())]),
        );
    }
    let challenge = match param("code_challenge") {
        "" => None,
        challenge => {
            if param("code_challenge_method") != "S256" || !is_s256_challenge(challenge) {
                return consent::redirect_to(
                    PRODUCT,
                    &redirect_target,
                    &with_state(vec![("error", "invalid_request".to_owned())]),
                );
            }
            Some(challenge.to_owned())
        }
    };

    let code = format!("1000.{}.{}", random_hex(16), random_hex(16));
    shared.auth().codes.insert(
        code.clone(),
        PendingCode {
            client_id: client_id.to_owned(),
            redirect_uri: param("redirect_uri").to_owned(),
            dc: dc.code,
            user,
            challenge,
            offline: param("access_type") == "offline",
            prompt_consent: param("prompt") == "consent",
            scopes,
            expires_at: Instant::now() + shared.config.code_ttl,
        },
    );
    let accounts_server = match param("sim_accounts_server") {
        "" => dc.accounts_server(),
        forged => forged.to_owned(),
    };
    consent::redirect_to(
        PRODUCT,
        &redirect_target,
        &with_state(vec![
            ("code", code),
            ("location", dc.code.to_owned()),
            ("accounts-server", accounts_server),
        ]),
    )
}

// ---------------------------------------------------------------------------
// POST /oauth/v2/token
// ---------------------------------------------------------------------------

/// Authorization-code and refresh-token grants. Parameters come from the
/// query string and the form body (the body wins).
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let mut params = decode_form(&query.unwrap_or_default());
    params.extend(decode_form(&body));
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    let grant_type = field("grant_type");
    if grant_type == "refresh_token" {
        shared.auth().refresh_calls += 1;
    }
    if grant_type.is_empty() {
        return oauth_error("invalid_request");
    }
    if field("client_id") != shared.config.client_id
        || field("client_secret") != shared.config.client_secret
    {
        return oauth_error("invalid_client");
    }
    match grant_type {
        "authorization_code" => exchange_code(
            &shared,
            &target,
            field("code"),
            field("redirect_uri"),
            field("code_verifier"),
        ),
        "refresh_token" => refresh(&shared, &target, field("refresh_token")),
        _ => oauth_error("unsupported_grant_type"),
    }
}

fn exchange_code(
    shared: &Shared,
    target: &Target,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Response {
    let config = &shared.config;
    let mut state = shared.auth();
    // Another DC's accounts server has never heard of the code: it stays
    // redeemable where it was issued.
    if state
        .codes
        .get(code)
        .is_none_or(|pending| pending.dc != target.dc.code)
    {
        return oauth_error("invalid_code");
    }
    let Some(pending) = state.codes.remove(code) else {
        return oauth_error("invalid_code");
    };
    if Instant::now() >= pending.expires_at || pending.client_id != config.client_id {
        return oauth_error("invalid_code");
    }
    if pending.redirect_uri != redirect_uri {
        return oauth_error("invalid_redirect_uri");
    }
    if let Some(challenge) = &pending.challenge {
        if verifier.is_empty() || s256_challenge(verifier) != *challenge {
            return oauth_error("invalid_code");
        }
    }

    let dc = target.dc;
    // Zoho issues a refresh token for offline access only, and to a user who
    // already holds one for this client only when consent was prompted.
    let gives_refresh = pending.offline
        && (pending.prompt_consent || state.live_refresh_of(dc.code, &pending.user).is_empty());
    let refresh_token =
        gives_refresh.then(|| state.issue_refresh(config, dc.code, &pending.user, pending.scopes));
    let access_token = state.issue_access(config, dc.code, &pending.user, refresh_token.as_deref());
    drop(state);
    shared.crm_store().org_mut(dc.code, &pending.user);
    token_response(
        &access_token,
        refresh_token.as_deref(),
        &dc.api_domain(),
        config.access_token_ttl_secs,
    )
}

fn refresh(shared: &Shared, target: &Target, refresh_token: &str) -> Response {
    let config = &shared.config;
    let mut state = shared.auth();
    let Some(grant) = state
        .refresh
        .get(refresh_token)
        .filter(|g| g.dc == target.dc.code)
    else {
        return oauth_error("invalid_code");
    };
    if let Some(successor) = grant.rotated_to.clone() {
        if config.rotation == Rotation::RotateAndRevokeOnReuse {
            // Reuse of a retired token: the whole chain after it dies.
            let mut next = Some(successor);
            while let Some(token) = next {
                next = state.refresh.get(&token).and_then(|g| g.rotated_to.clone());
                state.kill_refresh(&token);
            }
        }
        return oauth_error("invalid_code");
    }
    if !grant.live {
        return oauth_error("invalid_code");
    }
    let (dc, user) = (grant.dc, grant.user.clone());

    let (max, window) = config.token_mint_limit;
    let now = Instant::now();
    let Some(grant) = state.refresh.get_mut(refresh_token) else {
        return oauth_error("invalid_code");
    };
    while grant
        .mints
        .front()
        .is_some_and(|at| now.duration_since(*at) >= window)
    {
        grant.mints.pop_front();
    }
    if grant.mints.len() >= max as usize {
        return access_denied();
    }
    grant.mints.push_back(now);

    let api_domain = target.dc.api_domain();
    if config.rotation == Rotation::Never {
        let access = state.issue_access(config, dc, &user, Some(refresh_token));
        return token_response(&access, None, &api_domain, config.access_token_ttl_secs);
    }
    // Rotation: the presented token retires (its access tokens keep working
    // until they expire) and a new one takes its place.
    let scopes = state
        .refresh
        .get(refresh_token)
        .map(|g| g.scopes.clone())
        .unwrap_or_default();
    if let Some(old) = state.refresh.get_mut(refresh_token) {
        old.live = false;
    }
    let successor = state.issue_refresh(config, dc, &user, scopes);
    if let Some(old) = state.refresh.get_mut(refresh_token) {
        old.rotated_to = Some(successor.clone());
    }
    let access = state.issue_access(config, dc, &user, Some(&successor));
    token_response(
        &access,
        Some(&successor),
        &api_domain,
        config.access_token_ttl_secs,
    )
}

fn token_response(
    access_token: &str,
    refresh_token: Option<&str>,
    api_domain: &str,
    expires_in: u64,
) -> Response {
    let mut body = json!({
        "access_token": access_token,
        "api_domain": api_domain,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = Value::from(refresh_token);
    }
    json_response(StatusCode::OK, &body)
}

/// Zoho's token-endpoint error: HTTP 200 with `{"error": ...}`.
fn oauth_error(error: &str) -> Response {
    json_response(StatusCode::OK, &json!({ "error": error }))
}

/// Too many access tokens for one refresh token (HTTP 200).
pub(super) fn access_denied() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "error": "Access Denied",
            "error_description": ACCESS_DENIED_DESCRIPTION,
        }),
    )
}

// ---------------------------------------------------------------------------
// POST /oauth/v2/token/revoke?token=
// ---------------------------------------------------------------------------

/// Revokes a refresh token of this DC and its access tokens.
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    Extension(target): Extension<Target>,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let mut params = decode_form(&body);
    params.extend(decode_form(&query.unwrap_or_default()));
    let token = params.get("token").map(String::as_str).unwrap_or_default();
    let mut state = shared.auth();
    let known = state
        .refresh
        .get(token)
        .is_some_and(|g| g.live && g.dc == target.dc.code);
    if !known {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"status": "failure", "error": "invalid_token"}),
        );
    }
    state.kill_refresh(token);
    state.revoked.push(token.to_owned());
    json_response(StatusCode::OK, &json!({"status": "success"}))
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `1000.<32 hex>.<32 hex>`, the shape of Zoho's tokens.
fn new_token() -> String {
    format!("1000.{}.{}", random_hex(16), random_hex(16))
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buffer);
    buffer.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
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
