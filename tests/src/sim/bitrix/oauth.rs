//! Bitrix24 application OAuth: the consent on the portal, the OAuth server's
//! `GET /oauth/token/` (authorization code, rotating single-use refresh
//! tokens) and the access-token check of the REST API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use rand::Rng;
use serde_json::json;

use super::{
    b24_error, json_response, normalize_host, Ctx, Shared, ACCESS_TOKEN_SECONDS, CODE_TTL, SCOPE,
};
use crate::sim::consent;

const PRODUCT: &str = "Bitrix24";

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(crate) struct AuthState {
    codes: HashMap<String, PendingCode>,
    access: HashMap<String, Token>,
    refresh: HashMap<String, Token>,
    pub(crate) refresh_calls: usize,
}

struct PendingCode {
    portal: String,
    client_id: String,
    expires_at: Instant,
}

struct Token {
    portal: String,
    expires_at: Instant,
    live: bool,
}

impl Token {
    fn usable(&self, now: Instant) -> bool {
        self.live && now < self.expires_at
    }
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// Unknown, revoked (uninstalled) or of another portal.
    Invalid,
    Expired,
}

impl AuthState {
    /// A new access and refresh token for `portal`.
    pub(crate) fn issue(
        &mut self,
        portal: &str,
        now: Instant,
        refresh_ttl: Duration,
    ) -> (String, String) {
        let access = random_token();
        let refresh = random_token();
        self.access.insert(
            access.clone(),
            Token {
                portal: portal.to_owned(),
                expires_at: now + Duration::from_secs(ACCESS_TOKEN_SECONDS),
                live: true,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Token {
                portal: portal.to_owned(),
                expires_at: now + refresh_ttl,
                live: true,
            },
        );
        (access, refresh)
    }

    /// Check an access token presented at `portal`.
    pub(crate) fn check_access(
        &self,
        token: &str,
        portal: &str,
        now: Instant,
    ) -> Result<(), AccessError> {
        match self.access.get(token) {
            Some(t) if t.live && t.portal == portal => {
                if now < t.expires_at {
                    Ok(())
                } else {
                    Err(AccessError::Expired)
                }
            }
            _ => Err(AccessError::Invalid),
        }
    }

    /// Every token and pending code of `portal` dies.
    pub(crate) fn kill_portal(&mut self, portal: &str) {
        for token in self.access.values_mut().chain(self.refresh.values_mut()) {
            if token.portal == portal {
                token.live = false;
            }
        }
        self.codes.retain(|_, code| code.portal != portal);
    }

    /// Every access token of `portal` expires at `now`.
    pub(crate) fn expire_access(&mut self, portal: &str, now: Instant) {
        for token in self.access.values_mut() {
            if token.portal == portal && token.expires_at > now {
                token.expires_at = now;
            }
        }
    }

    pub(crate) fn live_refresh_tokens(&self, portal: &str, now: Instant) -> usize {
        self.refresh
            .values()
            .filter(|t| t.portal == portal && t.usable(now))
            .count()
    }
}

/// 72 lower-case hex characters, like Bitrix24's tokens.
fn random_token() -> String {
    let mut rng = rand::thread_rng();
    (0..72)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

// ---------------------------------------------------------------------------
// GET /oauth/authorize/
// ---------------------------------------------------------------------------

/// Auto-consenting consent screen. Simulator-only parameters:
/// `sim_portal=<host>` (default: the request's host when it is a portal,
/// else the first portal added) and `sim_deny=1`.
pub(super) fn authorize(shared: &Shared, ctx: &Ctx) -> Response {
    let client_id = ctx.param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return consent::error_page(PRODUCT, "Application not found (unknown client_id).");
    }
    if !matches!(ctx.param("response_type"), "" | "code") {
        return consent::error_page(PRODUCT, "Unsupported response_type (expected code).");
    }
    let redirect = match ctx.param("redirect_uri") {
        "" => shared.config.redirect_uri.clone().unwrap_or_default(),
        given => given.to_owned(),
    };
    let target = match url::Url::parse(&redirect) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => {
            return consent::error_page(
                PRODUCT,
                "The redirect_uri is missing or not an absolute http(s) URL.",
            )
        }
    };
    let now = shared.now();
    let mut state = shared.state();
    let portal = match ctx.param("sim_portal") {
        "" => state
            .portals
            .iter()
            .find(|p| p.host == ctx.host)
            .or(state.portals.first()),
        named => {
            let named = normalize_host(named);
            state.portals.iter().find(|p| p.host == named)
        }
    };
    let Some(portal) = portal else {
        return consent::error_page(PRODUCT, "No such portal in the simulator.");
    };
    let (host, member_id, server) = (
        portal.host.clone(),
        portal.member_id.clone(),
        portal.oauth_server.clone(),
    );
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if ctx.param("sim_deny") == "1" {
        pairs.push(("error", "access_denied".to_owned()));
        if let Some(st) = ctx.query.get("state") {
            pairs.push(("state", st.clone()));
        }
        return consent::redirect_to(PRODUCT, &target, &pairs);
    }
    let code = random_token();
    state.auth.codes.insert(
        code.clone(),
        PendingCode {
            portal: host.clone(),
            client_id: client_id.to_owned(),
            expires_at: now + CODE_TTL,
        },
    );
    pairs.push(("code", code));
    if let Some(st) = ctx.query.get("state") {
        pairs.push(("state", st.clone()));
    }
    pairs.push(("domain", host));
    pairs.push(("member_id", member_id));
    pairs.push(("scope", SCOPE.to_owned()));
    pairs.push(("server_domain", server));
    consent::redirect_to(PRODUCT, &target, &pairs)
}

// ---------------------------------------------------------------------------
// GET /oauth/token/
// ---------------------------------------------------------------------------

/// Both grants, parameters in the query string. Any method but `GET` is 405.
pub(super) fn token(shared: &Shared, ctx: &Ctx) -> Response {
    if ctx.method != "GET" {
        return b24_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "GET expected",
        );
    }
    let config = &shared.config;
    if ctx.param("client_id") != config.client_id
        || ctx.param("client_secret") != config.client_secret
    {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client"}),
        );
    }
    match ctx.param("grant_type") {
        "authorization_code" => exchange(shared, ctx.param("code"), ctx.param("client_id")),
        "refresh_token" => refresh(shared, ctx.param("refresh_token")),
        "" => b24_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing grant_type",
        ),
        _ => b24_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant_type",
        ),
    }
}

fn exchange(shared: &Shared, code: &str, client_id: &str) -> Response {
    let now = shared.now();
    let unix_now = shared.unix_now();
    let mut state = shared.state();
    // Single use: a presented code is gone, whatever the outcome.
    let pending = match state.auth.codes.remove(code) {
        Some(p) if now < p.expires_at && p.client_id == client_id => p,
        _ => return invalid_grant("Invalid authorization code"),
    };
    let Some(portal) = state.portal(&pending.portal) else {
        return invalid_grant("Invalid authorization code");
    };
    if portal.payment_required {
        return payment_required();
    }
    portal.installed = true;
    let (host, member_id, server) = (
        portal.host.clone(),
        portal.member_id.clone(),
        portal.oauth_server.clone(),
    );
    let (access, refresh) = state
        .auth
        .issue(&host, now, shared.config.refresh_token_ttl);
    token_answer(&access, &refresh, &host, &member_id, &server, unix_now)
}

fn refresh(shared: &Shared, presented: &str) -> Response {
    let now = shared.now();
    let unix_now = shared.unix_now();
    let mut state = shared.state();
    state.auth.refresh_calls += 1;
    let host = match state.auth.refresh.get(presented) {
        Some(t) if t.usable(now) => t.portal.clone(),
        _ => return invalid_grant("Invalid refresh token"),
    };
    let Some(portal) = state.portal(&host) else {
        return invalid_grant("Invalid refresh token");
    };
    if portal.payment_required {
        return payment_required();
    }
    let (member_id, server) = (portal.member_id.clone(), portal.oauth_server.clone());
    // Rotation: the presented refresh token is dead from now on.
    if let Some(old) = state.auth.refresh.get_mut(presented) {
        old.live = false;
    }
    let (access, refresh) = state
        .auth
        .issue(&host, now, shared.config.refresh_token_ttl);
    token_answer(&access, &refresh, &host, &member_id, &server, unix_now)
}

fn token_answer(
    access: &str,
    refresh: &str,
    portal: &str,
    member_id: &str,
    oauth_server: &str,
    unix_now: f64,
) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "expires": unix_now as u64 + ACCESS_TOKEN_SECONDS,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": SCOPE,
            "domain": oauth_server,
            "server_endpoint": format!("https://{oauth_server}/rest/"),
            "status": "L",
            "client_endpoint": format!("https://{portal}/rest/"),
            "member_id": member_id,
            "user_id": 1,
            "refresh_token": refresh,
        }),
    )
}

fn invalid_grant(description: &str) -> Response {
    b24_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn payment_required() -> Response {
    b24_error(
        StatusCode::BAD_REQUEST,
        "PAYMENT_REQUIRED",
        "Payment required",
    )
}
