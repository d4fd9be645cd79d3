//! Zoho Accounts OAuth: the consent screen (`GET /oauth/v2/auth`), the token
//! endpoint (authorization code with optional PKCE, refresh) and revocation
//! (`POST /oauth/v2/token/revoke?token=`), plus the access-token check of the
//! CRM API (`Authorization: Zoho-oauthtoken ...`).
//!
//! The bookkeeping (codes, grants, rotation, expiry) is the shared
//! [`OAuthServer`] under [`oauth_policy`]. What is Zoho's own stays here:
//! - every code and token belongs to one data centre, and another DC's
//!   accounts server has never heard of it;
//! - the consent redirect names the DC (`location`, `accounts-server`);
//! - token-endpoint errors are HTTP 200 with `{"error": ...}`;
//! - a refresh token is issued for offline access only, and to a user who
//!   already holds one only when consent was prompted;
//! - three caps, configurable: access tokens minted per refresh token per
//!   window, live access tokens per refresh token, refresh tokens per user.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Query, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::{
    dc, dc_or_panic, json_response, zoho_error, Shared, Target, ZohoSeededTokens, ZohoSim,
    ZohoSimConfig, ACCESS_DENIED_DESCRIPTION, AUTHORIZE_PATH, REVOKE_PATH, TOKEN_PATH,
};
use crate::sim::consent;
use crate::sim::oauth::{
    is_s256_challenge, Alphabet, AnswerShape, CodeRequest, Endpoints, Issued, OAuthFailure,
    OAuthPolicy, OAuthServer, Pkce, Redemption, RefreshEcho, ScopeField, TokenFormat, TokenHost,
};
use crate::sim::recorder::decode_form;
use crate::sim::server::Reject;

pub use crate::sim::oauth::s256_challenge;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "Zoho Accounts";

/// Zoho's OAuth server as data. The caps are Zoho's own rules and stay in
/// [`AuthState`].
pub fn oauth_policy(config: &ZohoSimConfig) -> OAuthPolicy {
    // `1000.` and hex, the shape of Zoho's codes and tokens.
    let zoho_token = TokenFormat::random("1000.", 64, Alphabet::HexLower);
    OAuthPolicy {
        code_lifetime: config.code_ttl,
        pkce: Pkce::Optional,
        rotation: config.rotation,
        // A rotation leaves the retired token's access tokens working until they expire.
        rotation_retires_access: false,
        // The revoke endpoint takes refresh tokens only.
        revoking_access_revokes_grant: false,
        access_lifetime: Duration::from_secs(config.access_token_ttl_secs),
        code_format: zoho_token.clone(),
        access_format: zoho_token.clone(),
        refresh_format: zoho_token,
        answer: AnswerShape {
            token_type: "Bearer",
            expires_in: true,
            refresh_echo: RefreshEcho::WhenRotated,
            scope: ScopeField::Omitted,
        },
        endpoints: Endpoints {
            authorize_path: AUTHORIZE_PATH,
            token_host: TokenHost::Login,
            token_path: TOKEN_PATH,
            revoke_path: Some(REVOKE_PATH),
        },
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// Who a Zoho grant belongs to: a user of one data centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ZohoSubject {
    pub(super) dc: &'static str,
    pub(super) user: String,
}

pub(super) struct AuthState {
    server: OAuthServer<ZohoSubject>,
    /// `grant_type=refresh_token` calls received (any outcome).
    refresh_calls: usize,
    deny_next_consent: bool,
    /// When each access token was minted by a refresh call, per presented
    /// refresh token, inside the window.
    mints: HashMap<String, VecDeque<Instant>>,
}

impl AuthState {
    pub(super) fn new(config: &ZohoSimConfig) -> Self {
        Self {
            server: OAuthServer::new(oauth_policy(config)),
            refresh_calls: 0,
            deny_next_consent: false,
            mints: HashMap::new(),
        }
    }

    /// Zoho's caps after tokens were issued: beyond `max_refresh_tokens` live
    /// refresh tokens of the user the oldest is deleted with its access
    /// tokens; beyond `max_live_access_tokens` live access tokens of the
    /// refresh token the oldest stops working.
    fn enforce_caps(&mut self, config: &ZohoSimConfig, issued: &Issued<ZohoSubject>) {
        let Some(refresh_token) = &issued.refresh_token else {
            return;
        };
        let live = self
            .server
            .live_refresh_tokens(|subject| *subject == issued.subject);
        let excess = live.len().saturating_sub(config.max_refresh_tokens.max(1));
        for oldest in live.iter().take(excess) {
            self.server.invalidate(oldest);
        }
        let live: Vec<String> = self
            .server
            .access_tokens_via(refresh_token)
            .into_iter()
            .filter(|t| self.server.access_live(t))
            .collect();
        let excess = live
            .len()
            .saturating_sub(config.max_live_access_tokens.max(1));
        for oldest in live.iter().take(excess) {
            self.server.invalidate(oldest);
        }
    }

    /// The token figures of one data centre in `GET /_sim/state`.
    pub(super) fn state_json(&self, dc: &str) -> Value {
        json!({
            "access_tokens_minted": self.server.counters(|s| s.dc == dc).access_minted,
            "live_refresh_tokens": self.server.live_refresh_tokens(|s| s.dc == dc).len(),
            "refresh_calls_all_dcs": self.refresh_calls,
        })
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
        let subject = token
            .and_then(|t| self.auth().server.check_access(t).ok())
            .filter(|subject| subject.dc == target.dc.code);
        match subject {
            Some(subject) => Ok(subject.user),
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
    let redirect = |mut pairs: Vec<(&'static str, String)>| {
        if let Some(state) = state_param {
            pairs.push(("state", state.to_owned()));
        }
        consent::redirect_to(PRODUCT, &redirect_target, &pairs)
    };
    let refuse = |error: &str| redirect(vec![("error", error.to_owned())]);

    let deny = std::mem::take(&mut shared.auth().deny_next_consent) || param("sim_deny") == "1";
    if deny {
        return refuse("access_denied");
    }
    if param("response_type") != "code" {
        return refuse("unsupported_response_type");
    }
    let scopes: Vec<String> = param("scope")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return refuse("invalid_scope");
    }
    let challenge = match param("code_challenge") {
        "" => None,
        challenge => {
            if param("code_challenge_method") != "S256" || !is_s256_challenge(challenge) {
                return refuse("invalid_request");
            }
            Some(challenge.to_owned())
        }
    };

    let subject = ZohoSubject { dc: dc.code, user };
    let code = {
        let mut state = shared.auth();
        // A refresh token for offline access only, and to a user who already
        // holds one for this client only when consent was prompted.
        let with_refresh = param("access_type") == "offline"
            && (param("prompt") == "consent"
                || state
                    .server
                    .live_refresh_tokens(|s| *s == subject)
                    .is_empty());
        state.server.issue_code(CodeRequest {
            client_id: client_id.to_owned(),
            redirect_uri: param("redirect_uri").to_owned(),
            challenge,
            scopes,
            subject,
            with_refresh,
        })
    };
    let accounts_server = match param("sim_accounts_server") {
        "" => dc.accounts_server(),
        forged => forged.to_owned(),
    };
    redirect(vec![
        ("code", code),
        ("location", dc.code.to_owned()),
        ("accounts-server", accounts_server),
    ])
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
            Redemption {
                code: field("code"),
                client_id: field("client_id"),
                redirect_uri: field("redirect_uri"),
                verifier: field("code_verifier"),
            },
        ),
        "refresh_token" => refresh(&shared, &target, field("refresh_token")),
        _ => oauth_error("unsupported_grant_type"),
    }
}

fn exchange_code(shared: &Shared, target: &Target, redemption: Redemption<'_>) -> Response {
    let config = &shared.config;
    let mut state = shared.auth();
    // Another DC's accounts server has never heard of the code: it stays
    // redeemable where it was issued.
    if state
        .server
        .code_subject(redemption.code)
        .is_none_or(|subject| subject.dc != target.dc.code)
    {
        return oauth_error("invalid_code");
    }
    let issued = match state.server.exchange_code(redemption) {
        Ok(issued) => issued,
        Err(OAuthFailure::RedirectMismatch) => return oauth_error("invalid_redirect_uri"),
        // Unknown, expired, another client's, or a PKCE failure.
        Err(_) => return oauth_error("invalid_code"),
    };
    state.enforce_caps(config, &issued);
    let answer = token_response(&state.server, &issued, false, target);
    drop(state);
    shared
        .crm_store()
        .org_mut(issued.subject.dc, &issued.subject.user);
    answer
}

fn refresh(shared: &Shared, target: &Target, refresh_token: &str) -> Response {
    let config = &shared.config;
    let mut guard = shared.auth();
    let state = &mut *guard;
    // Another DC's accounts server does not know the token: no reuse
    // detection, no mint, nothing.
    if state
        .server
        .token_subject(refresh_token)
        .is_none_or(|subject| subject.dc != target.dc.code)
    {
        return oauth_error("invalid_code");
    }
    let mut throttled = false;
    let result = state
        .server
        .refresh_with(refresh_token, &config.client_id, |_| {
            throttled = !take_mint(&mut state.mints, refresh_token, config.token_mint_limit);
            !throttled
        });
    let issued = match result {
        Ok(issued) => issued,
        Err(OAuthFailure::SubjectRefused) if throttled => return access_denied(),
        // Unknown, revoked, deleted by a cap, or rotated out.
        Err(_) => return oauth_error("invalid_code"),
    };
    state.enforce_caps(config, &issued);
    token_response(&state.server, &issued, true, target)
}

/// Room in the presented refresh token's mint window, taken when there is
/// some (Zoho: 10 access tokens per refresh token per 10 minutes).
fn take_mint(
    mints: &mut HashMap<String, VecDeque<Instant>>,
    refresh_token: &str,
    (max, window): (u32, Duration),
) -> bool {
    let now = Instant::now();
    let mints = mints.entry(refresh_token.to_owned()).or_default();
    while mints
        .front()
        .is_some_and(|at| now.duration_since(*at) >= window)
    {
        mints.pop_front();
    }
    if mints.len() >= max as usize {
        return false;
    }
    mints.push_back(now);
    true
}

fn token_response(
    server: &OAuthServer<ZohoSubject>,
    issued: &Issued<ZohoSubject>,
    refreshed: bool,
    target: &Target,
) -> Response {
    let mut body = server.answer(issued, refreshed);
    body.insert("api_domain".into(), json!(target.dc.api_domain()));
    json_response(StatusCode::OK, &Value::Object(body))
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

/// Revokes a live refresh token of this DC and its access tokens.
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
    let known = state.server.refresh_live(token)
        && state
            .server
            .token_subject(token)
            .is_some_and(|subject| subject.dc == target.dc.code);
    if !known || state.server.revoke(token).is_err() {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"status": "failure", "error": "invalid_token"}),
        );
    }
    json_response(StatusCode::OK, &json!({"status": "success"}))
}

// ---------------------------------------------------------------------------
// ZohoSim's OAuth inspection and shortcuts
// ---------------------------------------------------------------------------

impl ZohoSim {
    /// The next consent that could otherwise succeed redirects with
    /// `error=access_denied` (as `sim_deny=1` does).
    pub fn deny_next_consent(&self) {
        self.shared.auth().deny_next_consent = true;
    }

    /// Mint a refresh/access token pair for `user` in `dc` as if the user had
    /// consented (offline, with consent) and the app had exchanged the code.
    /// Counts against the user's refresh-token cap; does not count as a
    /// refresh call.
    ///
    /// # Panics
    /// On an unknown DC code.
    pub fn seed_connection(&self, dc_code: &str, user: &str) -> ZohoSeededTokens {
        let dc = dc_or_panic(dc_code);
        let config = &self.shared.config;
        let subject = ZohoSubject {
            dc: dc.code,
            user: user.to_owned(),
        };
        let mut auth = self.shared.auth();
        let issued = auth
            .server
            .seed_grant(&config.client_id, subject, Vec::new(), true);
        auth.enforce_caps(config, &issued);
        drop(auth);
        self.shared.crm_store().org_mut(dc.code, user);
        ZohoSeededTokens {
            refresh_token: issued.refresh_token.unwrap_or_default(),
            access_token: issued.access_token,
            expires_in: issued.expires_in,
            api_domain: dc.api_domain(),
            accounts_server: dc.accounts_server(),
            dc: dc.code,
            user: user.to_owned(),
        }
    }

    /// Access tokens minted so far (code exchanges, refreshes and seeds).
    pub fn access_tokens_minted(&self) -> usize {
        self.shared.auth().server.issued_access_tokens().len()
    }

    /// Access tokens minted from this refresh token (exchange and refreshes).
    pub fn access_tokens_minted_for(&self, refresh_token: &str) -> usize {
        self.shared
            .auth()
            .server
            .access_tokens_via(refresh_token)
            .len()
    }

    /// Every access token ever issued, in issue order (live or not).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.auth().server.issued_access_tokens()
    }

    /// Whether this access token would be accepted on its DC right now.
    pub fn is_access_token_live(&self, token: &str) -> bool {
        self.shared.auth().server.access_live(token)
    }

    /// `grant_type=refresh_token` calls received (any outcome).
    pub fn refresh_calls(&self) -> usize {
        self.shared.auth().refresh_calls
    }

    /// Live refresh tokens of `user` in `dc`, oldest first.
    pub fn live_refresh_tokens(&self, dc_code: &str, user: &str) -> Vec<String> {
        self.shared
            .auth()
            .server
            .live_refresh_tokens(|s| s.dc == dc_code && s.user == user)
    }

    /// Whether this refresh token still works.
    pub fn is_refresh_token_live(&self, token: &str) -> bool {
        self.shared.auth().server.refresh_live(token)
    }

    /// Refresh tokens revoked through the revoke endpoint, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.auth().server.revoked_tokens()
    }

    /// Make every access token issued so far expired as of now.
    pub fn expire_access_tokens(&self) {
        self.shared.auth().server.expire_access(|_| true);
    }

    /// Make every outstanding authorization code expired as of now.
    pub fn expire_auth_codes(&self) {
        self.shared.auth().server.expire_codes();
    }

    /// Forget every refresh token's mint window (as if ten minutes passed).
    pub fn reset_token_mint_windows(&self) {
        self.shared.auth().mints.clear();
    }
}
