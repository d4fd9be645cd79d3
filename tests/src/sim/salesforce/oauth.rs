//! Salesforce OAuth 2.0 web-server flow: the consent screen (PKCE S256
//! required), the token endpoint (authorization code, refresh with optional
//! rotation and revoke-on-reuse), revocation, and the session check used by
//! the REST and SOAP APIs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};

use super::{
    json_response, Host, SalesforceSimConfig, Shared, AUTHORIZE_PATH, REVOKE_PATH, TOKEN_PATH,
};
use crate::sim::consent;
use crate::sim::oauth::{
    check_s256, Alphabet, AnswerShape, CodeRequest, Endpoints, Issued, OAuthFailure, OAuthPolicy,
    OAuthServer, Pkce, PkceProblem, Redemption, RefreshEcho, ScopeField, TokenFormat, TokenHost,
};
use crate::sim::recorder::decode_form;

pub use crate::sim::oauth::s256_challenge;

/// How the consent screen's error pages name the product.
const PRODUCT: &str = "Salesforce";

/// Salesforce's authorization server as data.
pub fn oauth_policy(config: &SalesforceSimConfig) -> OAuthPolicy {
    OAuthPolicy {
        // Salesforce: 15 minutes.
        code_lifetime: Duration::from_secs(15 * 60),
        pkce: Pkce::RequiredS256,
        rotation: config.rotation,
        rotation_retires_access: false,
        revoking_access_revokes_grant: true,
        access_lifetime: Duration::from_secs(config.session_seconds),
        code_format: TokenFormat::random("aPrx", 60, Alphabet::Alnum),
        // `<15-character org id>!AR...`; the org's own id replaces this prefix.
        access_format: TokenFormat::random("00D000000000000!AR", 72, Alphabet::Alnum),
        refresh_format: TokenFormat::random("5Aep861", 64, Alphabet::Alnum),
        answer: AnswerShape {
            token_type: "Bearer",
            expires_in: false,
            refresh_echo: RefreshEcho::WhenRotated,
            scope: ScopeField::SpaceSeparated("scope"),
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

/// The shared OAuth server; a grant's subject is its org key.
pub(super) struct AuthState {
    server: OAuthServer<String>,
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
    pub(super) fn new(config: &SalesforceSimConfig) -> Self {
        let org_ids: HashMap<String, String> = config
            .orgs
            .iter()
            .map(|o| (o.key.clone(), o.org_id.clone()))
            .collect();
        let server = OAuthServer::new(oauth_policy(config)).with_access_prefix(move |org| {
            let org_id = org_ids
                .get(org)
                .map_or("00D000000000000AAA", String::as_str);
            format!("{}!AR", &org_id[..15.min(org_id.len())])
        });
        Self { server }
    }

    pub(super) fn counters(&self, org: &str) -> Counters {
        let counters = self.server.counters(|o| o == org);
        Counters {
            access_minted: counters.access_minted,
            refresh_calls: counters.refresh_calls,
            revoked_on_reuse: counters.revoked_on_reuse > 0,
            revocations: counters.revocations,
        }
    }

    /// A new grant with its first access and refresh tokens.
    pub(super) fn new_grant(
        &mut self,
        config: &SalesforceSimConfig,
        org: &str,
        scopes: Vec<String>,
    ) -> (String, String) {
        let issued = self
            .server
            .seed_grant(&config.client_id, org.to_owned(), scopes, true);
        (
            issued.access_token,
            issued.refresh_token.unwrap_or_default(),
        )
    }

    /// The org of a live, unexpired access token.
    pub(super) fn session_org(&self, token: &str) -> Option<String> {
        self.server.check_access(token).ok()
    }

    pub(super) fn expire_sessions(&mut self, org: &str) {
        self.server.expire_access(|o| o == org);
    }

    pub(super) fn live_refresh_tokens(&self, org: &str) -> usize {
        self.server.live_refresh_tokens(|o| o == org).len()
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
    match check_s256(challenge, param("code_challenge_method")) {
        Ok(()) => {}
        Err(PkceProblem::MissingChallenge) => {
            return error("invalid_request", "missing required code challenge")
        }
        Err(_) => return error("invalid_request", "invalid code challenge or method"),
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

    let code = shared.auth().server.issue_code(CodeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        challenge: Some(challenge.to_owned()),
        scopes,
        subject: org,
        with_refresh: true,
    });
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

/// Whether `org` signs in on `host`.
fn logs_in_at(shared: &Shared, org: &str, host: &str) -> bool {
    shared
        .config
        .orgs
        .iter()
        .any(|o| o.key == org && o.login_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
}

fn exchange_code(
    shared: &Shared,
    host: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Response {
    let redemption = Redemption {
        code,
        client_id: &shared.config.client_id,
        redirect_uri,
        verifier,
    };
    // A code is redeemed on a login host of its org.
    let result = shared
        .auth()
        .server
        .exchange_code_with(redemption, |org| logs_in_at(shared, org, host));
    match result {
        Ok(issued) => token_answer(shared, host, &issued, false),
        Err(OAuthFailure::CodeExpired) => {
            oauth_error("invalid_grant", "expired authorization code")
        }
        Err(OAuthFailure::RedirectMismatch) => {
            oauth_error("invalid_grant", "redirect_uri must match configuration")
        }
        Err(OAuthFailure::VerifierMissing | OAuthFailure::VerifierMismatch) => {
            oauth_error("invalid_grant", "invalid code verifier")
        }
        Err(_) => invalid_code(),
    }
}

fn refresh(shared: &Shared, host: &str, token: &str) -> Response {
    // A refresh token is redeemed on a login host of its org.
    let result = shared
        .auth()
        .server
        .refresh_with(token, &shared.config.client_id, |org| {
            logs_in_at(shared, org, host)
        });
    match result {
        Ok(issued) => token_answer(shared, host, &issued, true),
        Err(OAuthFailure::SubjectRefused) => oauth_error("invalid_grant", "authentication failure"),
        Err(_) => expired_token(),
    }
}

fn instance_host(shared: &Shared, org: &str) -> String {
    let store = shared.store();
    store
        .index(org)
        .map(|idx| store.orgs[idx].instance_host.clone())
        .unwrap_or_default()
}

/// The policy's fields plus Salesforce's `instance_url`, `id`, `issued_at` and `signature`.
fn token_answer(
    shared: &Shared,
    login_host: &str,
    issued: &Issued<String>,
    refreshed: bool,
) -> Response {
    let org = &issued.subject;
    let (org_id, user_id) = shared
        .config
        .orgs
        .iter()
        .find(|o| &o.key == org)
        .map(|o| (o.org_id.clone(), o.user_id.clone()))
        .unwrap_or_default();
    let instance_host = instance_host(shared, org);
    let mut signature = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut signature);
    let mut body = shared.auth().server.answer(issued, refreshed);
    body.insert(
        "instance_url".into(),
        json!(format!("https://{instance_host}")),
    );
    body.insert(
        "id".into(),
        json!(format!("https://{login_host}/id/{org_id}/{user_id}")),
    );
    body.insert(
        "issued_at".into(),
        json!(chrono::Utc::now().timestamp_millis().to_string()),
    );
    body.insert("signature".into(), json!(STANDARD.encode(signature)));
    json_response(StatusCode::OK, &Value::Object(body))
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
    match shared.auth().server.revoke(token) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => oauth_error("invalid_token", "invalid token"),
    }
}
