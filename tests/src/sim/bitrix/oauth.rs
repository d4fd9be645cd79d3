//! Bitrix24 application OAuth: the consent on the portal, the OAuth server's
//! `GET /oauth/token/` (authorization code, rotating single-use refresh
//! tokens with a lifetime) and the access-token check of the REST API.
//!
//! The bookkeeping (codes, grants, rotation, expiry) is the shared
//! [`OAuthServer`] under [`oauth_policy`], one per simulator, a grant's
//! subject being its portal's host. What is Bitrix24's own stays here: the
//! consent names the portal (`domain`, `member_id`, `server_domain`), the token
//! endpoint takes `GET` only, errors are `{"error","error_description"}`,
//! answers carry the portal's endpoints and `member_id`, a lapsed
//! subscription refuses both grants with `PAYMENT_REQUIRED`, uninstalling
//! the app kills every token of the portal, and the simulator's clock can
//! be moved on.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{
    b24_error, json_response, normalize_host, BitrixSim, BitrixSimConfig, Ctx, Shared,
    ACCESS_TOKEN_SECONDS, AUTHORIZE_PATH, CODE_TTL, DEFAULT_OAUTH_HOST, SCOPE, TOKEN_PATH,
};
use crate::sim::consent;
use crate::sim::oauth::{
    Alphabet, AnswerShape, CodeRequest, Endpoints, Issued, OAuthFailure, OAuthPolicy, OAuthServer,
    Pkce, Redemption, RefreshEcho, Rotation, ScopeField, TokenFormat, TokenHost,
};

const PRODUCT: &str = "Bitrix24";

/// Bitrix24's OAuth server as data.
pub fn oauth_policy(config: &BitrixSimConfig) -> OAuthPolicy {
    // 72 lower-case hex characters, like Bitrix24's codes and tokens.
    let b24_token = TokenFormat::random("", 72, Alphabet::HexLower);
    OAuthPolicy {
        code_lifetime: CODE_TTL,
        pkce: Pkce::NotSupported,
        rotation: Rotation::SingleUse {
            lifetime: config.refresh_token_ttl,
        },
        // The access tokens of a used refresh token keep working until they expire.
        rotation_retires_access: false,
        // No revocation endpoint; uninstalling the app is the only way out.
        revoking_access_revokes_grant: false,
        access_lifetime: Duration::from_secs(ACCESS_TOKEN_SECONDS),
        code_format: b24_token.clone(),
        access_format: b24_token.clone(),
        refresh_format: b24_token,
        answer: AnswerShape {
            // Bitrix24's answer names no token type.
            token_type: "",
            expires_in: true,
            refresh_echo: RefreshEcho::Always,
            scope: ScopeField::SpaceSeparated("scope"),
        },
        endpoints: Endpoints {
            authorize_path: AUTHORIZE_PATH,
            token_host: TokenHost::Accounts(DEFAULT_OAUTH_HOST),
            token_path: TOKEN_PATH,
            revoke_path: None,
        },
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// The token store; a grant's subject is its portal's host.
pub(crate) struct AuthState {
    server: OAuthServer<String>,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    /// Unknown, revoked (uninstalled) or of another portal.
    Invalid,
    Expired,
}

impl AuthState {
    pub(crate) fn new(config: &BitrixSimConfig) -> Self {
        Self {
            server: OAuthServer::new(oauth_policy(config)),
        }
    }

    /// Check an access token presented at `portal`.
    pub(crate) fn check_access(&self, token: &str, portal: &str) -> Result<(), AccessError> {
        match self.server.check_access(token) {
            Ok(owner) if owner == portal => Ok(()),
            // Only a portal's own expired token is "expired"; another's is invalid.
            Err(OAuthFailure::AccessExpired(_))
                if self
                    .server
                    .token_subject(token)
                    .is_some_and(|p| p == portal) =>
            {
                Err(AccessError::Expired)
            }
            _ => Err(AccessError::Invalid),
        }
    }

    /// Every token and pending code of `portal` dies.
    pub(crate) fn kill_portal(&mut self, portal: &str) {
        self.server.kill_grants(|p| p == portal);
    }

    /// Every access token of `portal` expires now.
    pub(crate) fn expire_access(&mut self, portal: &str) {
        self.server.expire_access(|p| p == portal);
    }

    /// The simulator's clock moved on: codes and tokens age with it.
    pub(crate) fn advance_clock(&mut self, by: Duration) {
        self.server.advance_clock(by);
    }
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
    let code = state.auth.server.issue_code(CodeRequest {
        client_id: client_id.to_owned(),
        // The token request names no redirect_uri: nothing to compare it with.
        redirect_uri: String::new(),
        challenge: None,
        scopes: vec![SCOPE.to_owned()],
        subject: host.clone(),
        with_refresh: true,
    });
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
    let client_id = ctx.param("client_id");
    if client_id != config.client_id || ctx.param("client_secret") != config.client_secret {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_client"}),
        );
    }
    match ctx.param("grant_type") {
        "authorization_code" => grant(shared, Grant::Code(ctx.param("code")), client_id),
        "refresh_token" => grant(
            shared,
            Grant::Refresh(ctx.param("refresh_token")),
            client_id,
        ),
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

/// Why the portal refused a grant that the OAuth server would have honoured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PortalRefusal {
    None,
    Gone,
    PaymentRequired,
}

/// Whether `portal` may receive tokens: it exists and its subscription is paid.
fn portal_check(portals: &[super::crm::Portal], portal: &str) -> PortalRefusal {
    match portals.iter().find(|p| p.host == portal) {
        None => PortalRefusal::Gone,
        Some(p) if p.payment_required => PortalRefusal::PaymentRequired,
        Some(_) => PortalRefusal::None,
    }
}

/// What a token request presents.
#[derive(Clone, Copy)]
enum Grant<'a> {
    Code(&'a str),
    Refresh(&'a str),
}

/// Either grant: the OAuth server decides, the portal may still refuse (gone,
/// or payment required) just before tokens are issued.
fn grant(shared: &Shared, grant: Grant<'_>, client_id: &str) -> Response {
    let unix_now = shared.unix_now();
    let mut guard = shared.state();
    let state = &mut *guard;
    let mut refusal = PortalRefusal::None;
    let admit = |portal: &String| {
        refusal = portal_check(&state.portals, portal);
        refusal == PortalRefusal::None
    };
    let server = &mut state.auth.server;
    let (result, invalid) = match grant {
        // Single use: a presented code is gone, whatever the outcome.
        Grant::Code(code) => (
            server.exchange_code_with(
                Redemption {
                    code,
                    client_id,
                    redirect_uri: "",
                    verifier: "",
                },
                admit,
            ),
            "Invalid authorization code",
        ),
        // Rotation: from here on the presented refresh token is dead.
        Grant::Refresh(token) => (
            server.refresh_with(token, client_id, admit),
            "Invalid refresh token",
        ),
    };
    let issued = match result {
        Ok(issued) => issued,
        Err(_) if refusal == PortalRefusal::PaymentRequired => return payment_required(),
        // Unknown, used, expired, or of an uninstalled app.
        Err(_) => return invalid_grant(invalid),
    };
    let Some(portal) = state.portal(&issued.subject) else {
        return invalid_grant(invalid);
    };
    let refreshed = matches!(grant, Grant::Refresh(_));
    if !refreshed {
        portal.installed = true;
    }
    let (member_id, oauth_server) = (portal.member_id.clone(), portal.oauth_server.clone());
    token_answer(
        &state.auth.server,
        &issued,
        refreshed,
        &member_id,
        &oauth_server,
        unix_now,
    )
}

/// The policy's fields plus Bitrix24's own: the absolute `expires`, the
/// OAuth server and portal endpoints, `member_id`, `status` and `user_id`.
fn token_answer(
    server: &OAuthServer<String>,
    issued: &Issued<String>,
    refreshed: bool,
    member_id: &str,
    oauth_server: &str,
    unix_now: f64,
) -> Response {
    let mut body = server.answer(issued, refreshed);
    let portal = &issued.subject;
    for (key, value) in [
        ("expires", json!(unix_now as u64 + issued.expires_in)),
        ("domain", json!(oauth_server)),
        (
            "server_endpoint",
            json!(format!("https://{oauth_server}/rest/")),
        ),
        ("status", json!("L")),
        ("client_endpoint", json!(format!("https://{portal}/rest/"))),
        ("member_id", json!(member_id)),
        ("user_id", json!(1)),
    ] {
        body.insert(key.into(), value);
    }
    json_response(StatusCode::OK, &Value::Object(body))
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

// ---------------------------------------------------------------------------
// BitrixSim's OAuth inspection and shortcuts
// ---------------------------------------------------------------------------

impl BitrixSim {
    /// `grant_type=refresh_token` calls (any outcome, faulted ones excluded).
    pub fn refresh_calls(&self) -> usize {
        self.shared.state().auth.server.refresh_attempts()
    }

    /// Refresh tokens of `portal` that would still be accepted.
    pub fn live_refresh_tokens(&self, portal: &str) -> usize {
        let portal = normalize_host(portal);
        self.shared
            .state()
            .auth
            .server
            .live_refresh_tokens(|p| *p == portal)
            .len()
    }

    /// Issue a grant (installing the app) without the browser; returns
    /// `(access_token, refresh_token)`.
    pub fn seed_tokens(&self, portal: &str) -> (String, String) {
        let portal = normalize_host(portal);
        let mut state = self.shared.state();
        state.portal_or_panic(&portal).installed = true;
        let issued = state.auth.server.seed_grant(
            &self.shared.config.client_id,
            portal,
            vec![SCOPE.to_owned()],
            true,
        );
        (
            issued.access_token,
            issued.refresh_token.unwrap_or_default(),
        )
    }
}
