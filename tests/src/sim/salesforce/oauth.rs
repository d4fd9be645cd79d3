//! Salesforce OAuth 2.0 web-server flow: the consent screen (PKCE S256
//! required), the token endpoint (authorization code, refresh with optional
//! rotation and revoke-on-reuse), revocation, and the session check used by
//! the REST and SOAP APIs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Extension, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{json_response, Host, Rotation, SalesforceSimConfig, Shared};
use crate::sim::consent;
use crate::sim::recorder::decode_form;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "Salesforce";
/// How long an authorization code stays redeemable (Salesforce: 15 minutes).
const CODE_TTL: Duration = Duration::from_secs(15 * 60);

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct AuthState {
    codes: HashMap<String, PendingCode>,
    grants: Vec<Grant>,
    /// Every refresh token ever issued (current or rotated out) → grant index.
    refresh: HashMap<String, usize>,
    access: HashMap<String, Access>,
    counters: HashMap<String, Counters>,
}

struct PendingCode {
    org: String,
    redirect_uri: String,
    challenge: String,
    scopes: Vec<String>,
    expires_at: Instant,
}

struct Grant {
    org: String,
    scopes: Vec<String>,
    current_refresh: String,
    live: bool,
}

struct Access {
    org: String,
    grant: usize,
    expires_at: Instant,
    live: bool,
}

/// Per-org OAuth counters.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub(super) access_minted: usize,
    pub(super) refresh_calls: usize,
    pub(super) revoked_on_reuse: bool,
    pub(super) revocations: usize,
}

impl AuthState {
    pub(super) fn counters(&self, org: &str) -> Counters {
        self.counters.get(org).copied().unwrap_or_default()
    }

    fn counters_mut(&mut self, org: &str) -> &mut Counters {
        self.counters.entry(org.to_owned()).or_default()
    }

    /// A new grant with its first refresh and access tokens.
    pub(super) fn new_grant(
        &mut self,
        config: &SalesforceSimConfig,
        org: &str,
        scopes: Vec<String>,
    ) -> (String, String) {
        let refresh = refresh_token();
        self.grants.push(Grant {
            org: org.to_owned(),
            scopes,
            current_refresh: refresh.clone(),
            live: true,
        });
        let grant = self.grants.len() - 1;
        self.refresh.insert(refresh.clone(), grant);
        let access = self.mint_access(config, grant);
        (access, refresh)
    }

    fn mint_access(&mut self, config: &SalesforceSimConfig, grant: usize) -> String {
        let org = self.grants[grant].org.clone();
        let org_id = config
            .orgs
            .iter()
            .find(|o| o.key == org)
            .map_or("00D000000000000AAA", |o| o.org_id.as_str());
        let token = format!("{}!AR{}", &org_id[..15.min(org_id.len())], random_b64(72));
        self.access.insert(
            token.clone(),
            Access {
                org: org.clone(),
                grant,
                expires_at: Instant::now() + Duration::from_secs(config.session_seconds),
                live: true,
            },
        );
        self.counters_mut(&org).access_minted += 1;
        token
    }

    fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].live = false;
        for access in self.access.values_mut() {
            if access.grant == grant {
                access.live = false;
            }
        }
    }

    /// The org of a live, unexpired access token.
    pub(super) fn session_org(&self, token: &str) -> Option<String> {
        let access = self.access.get(token)?;
        let live = access.live
            && Instant::now() < access.expires_at
            && self.grants.get(access.grant).is_some_and(|g| g.live);
        live.then(|| access.org.clone())
    }

    pub(super) fn expire_sessions(&mut self, org: &str) {
        for access in self.access.values_mut() {
            if access.org == org {
                access.live = false;
            }
        }
    }

    pub(super) fn live_refresh_tokens(&self, org: &str) -> usize {
        self.grants
            .iter()
            .filter(|g| g.live && g.org == org)
            .count()
    }
}

/// The token of an `Authorization: Bearer ...` (or `OAuth ...`) header.
pub(super) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

// ---------------------------------------------------------------------------
// GET /services/oauth2/authorize
// ---------------------------------------------------------------------------

/// Auto-consenting consent screen. Simulator-only parameters: `sim_org=<key>`
/// (default: the org whose login host was named, else `default_org`) and
/// `sim_deny=1`.
pub(super) async fn authorize(
    State(shared): State<Arc<Shared>>,
    Extension(Host(host)): Extension<Host>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    let client_id = param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return consent::error_page(
            PRODUCT,
            "OAUTH_EC_APP_NOT_FOUND: the client_id is missing or unknown.",
        );
    }
    let redirect_uri = param("redirect_uri");
    let Ok(target) = url::Url::parse(redirect_uri) else {
        return consent::error_page(
            PRODUCT,
            "redirect_uri_mismatch: the redirect_uri is missing or not absolute.",
        );
    };
    let org = match param("sim_org") {
        "" => shared
            .config
            .orgs
            .iter()
            .find(|o| o.login_hosts.contains(&host) && host != super::DEFAULT_LOGIN_HOST)
            .map_or(shared.config.default_org.clone(), |o| o.key.clone()),
        key => key.to_owned(),
    };
    if !shared.config.orgs.iter().any(|o| o.key == org) {
        return consent::error_page(PRODUCT, "Unknown org in sim_org.");
    }
    let state = params.get("state").cloned();
    let redirect = |pairs: Vec<(&'static str, String)>| {
        let mut pairs = pairs;
        if let Some(state) = &state {
            pairs.push(("state", state.clone()));
        }
        consent::redirect_to(PRODUCT, &target, &pairs)
    };
    let error = |code: &str, description: &str| {
        redirect(vec![
            ("error", code.to_owned()),
            ("error_description", description.to_owned()),
        ])
    };

    if param("response_type") != "code" {
        return error("unsupported_response_type", "response type not supported");
    }
    let challenge = param("code_challenge");
    if challenge.is_empty() {
        return error("invalid_request", "missing required code challenge");
    }
    if param("code_challenge_method") != "S256" || !is_s256_challenge(challenge) {
        return error("invalid_request", "invalid code challenge or method");
    }
    let scopes: Vec<String> = param("scope")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|s| s == "api") || !scopes.iter().any(|s| s == "refresh_token") {
        return error("invalid_scope", "the requested scope is not allowed");
    }
    if param("sim_deny") == "1" {
        return error("access_denied", "end-user denied authorization");
    }

    let code = format!("aPrx{}", random_b64(60));
    shared.auth().codes.insert(
        code.clone(),
        PendingCode {
            org,
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.to_owned(),
            scopes,
            expires_at: Instant::now() + CODE_TTL,
        },
    );
    redirect(vec![("code", code)])
}

// ---------------------------------------------------------------------------
// POST /services/oauth2/token
// ---------------------------------------------------------------------------

/// Authorization-code and refresh-token grants (form body).
pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(Host(host)): Extension<Host>,
    body: String,
) -> Response {
    let form = decode_form(&body);
    let param = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let grant_type = param("grant_type");
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    let config = &shared.config;
    if param("client_id") != config.client_id || param("client_secret") != config.client_secret {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    if grant_type == "authorization_code" {
        exchange_code(
            &shared,
            &host,
            param("code"),
            param("redirect_uri"),
            param("code_verifier"),
        )
    } else {
        refresh(&shared, &host, param("refresh_token"))
    }
}

fn exchange_code(
    shared: &Shared,
    host: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Response {
    let config = &shared.config;
    let mut auth = shared.auth();
    // Single use: a presented code is gone, whatever the outcome.
    let Some(pending) = auth.codes.remove(code) else {
        return invalid_code();
    };
    if Instant::now() >= pending.expires_at {
        return oauth_error("invalid_grant", "expired authorization code");
    }
    let Some(org_cfg) = config.orgs.iter().find(|o| o.key == pending.org) else {
        return invalid_code();
    };
    if !org_cfg
        .login_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return invalid_code();
    }
    if pending.redirect_uri != redirect_uri {
        return oauth_error("invalid_grant", "redirect_uri must match configuration");
    }
    if verifier.is_empty() || s256_challenge(verifier) != pending.challenge {
        return oauth_error("invalid_grant", "invalid code verifier");
    }
    let scopes = pending.scopes.clone();
    let (access, refresh) = auth.new_grant(config, &pending.org, scopes.clone());
    drop(auth);
    let instance = instance_host(shared, &pending.org);
    token_answer(host, org_cfg, &instance, &access, Some(&refresh), &scopes)
}

fn refresh(shared: &Shared, host: &str, token: &str) -> Response {
    let config = &shared.config;
    let mut auth = shared.auth();
    let Some(&grant) = auth.refresh.get(token) else {
        return expired_token();
    };
    let org = auth.grants[grant].org.clone();
    auth.counters_mut(&org).refresh_calls += 1;
    if !auth.grants[grant].live {
        return expired_token();
    }
    if auth.grants[grant].current_refresh != token {
        // A rotated-out token.
        if config.rotation == Rotation::RotateAndRevokeOnReuse {
            auth.revoke_grant(grant);
            auth.counters_mut(&org).revoked_on_reuse = true;
        }
        return expired_token();
    }
    let Some(org_cfg) = config.orgs.iter().find(|o| o.key == org) else {
        return expired_token();
    };
    if !org_cfg
        .login_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return oauth_error("invalid_grant", "authentication failure");
    }
    let new_refresh = match config.rotation {
        Rotation::Never => None,
        Rotation::Rotate | Rotation::RotateAndRevokeOnReuse => {
            let next = refresh_token();
            auth.refresh.insert(next.clone(), grant);
            auth.grants[grant].current_refresh = next.clone();
            Some(next)
        }
    };
    let access = auth.mint_access(config, grant);
    let scopes = auth.grants[grant].scopes.clone();
    drop(auth);
    let instance = instance_host(shared, &org);
    token_answer(
        host,
        org_cfg,
        &instance,
        &access,
        new_refresh.as_deref(),
        &scopes,
    )
}

fn instance_host(shared: &Shared, org: &str) -> String {
    let store = shared.store();
    store
        .index(org)
        .map(|idx| store.orgs[idx].instance_host.clone())
        .unwrap_or_default()
}

fn token_answer(
    login_host: &str,
    org: &super::SfOrgConfig,
    instance_host: &str,
    access: &str,
    refresh: Option<&str>,
    scopes: &[String],
) -> Response {
    let issued_at = chrono::Utc::now().timestamp_millis().to_string();
    let mut signature = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut signature);
    let mut body = json!({
        "access_token": access,
        "instance_url": format!("https://{instance_host}"),
        "id": format!("https://{login_host}/id/{}/{}", org.org_id, org.user_id),
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": STANDARD.encode(signature),
        "scope": scopes.join(" "),
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = Value::String(refresh.to_owned());
    }
    json_response(StatusCode::OK, &body)
}

fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn invalid_code() -> Response {
    oauth_error("invalid_grant", "invalid authorization code")
}

fn expired_token() -> Response {
    oauth_error("invalid_grant", "expired access/refresh token")
}

// ---------------------------------------------------------------------------
// POST /services/oauth2/revoke
// ---------------------------------------------------------------------------

/// Revokes the grant of a refresh or access token (`token=` in the form body
/// or the query string).
pub(super) async fn revoke(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let mut params = decode_form(query.as_deref().unwrap_or_default());
    params.extend(decode_form(&body));
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
            let org = auth.grants[grant].org.clone();
            auth.counters_mut(&org).revocations += 1;
            StatusCode::OK.into_response()
        }
        _ => oauth_error("invalid_token", "invalid token"),
    }
}

// ---------------------------------------------------------------------------
// Token material
// ---------------------------------------------------------------------------

fn refresh_token() -> String {
    format!("5Aep861{}", random_b64(64))
}

/// `len` URL-safe characters of randomness.
fn random_b64(len: usize) -> String {
    let mut buffer = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut buffer);
    let mut out = URL_SAFE_NO_PAD.encode(buffer).replace(['-', '_'], "x");
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
