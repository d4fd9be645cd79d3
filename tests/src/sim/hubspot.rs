//! Stateful HubSpot simulator.
//!
//! One loopback server plays both `app.hubspot.com` (the consent screen at
//! `/oauth/authorize`) and `api.hubapi.com` (OAuth token endpoints and the CRM
//! API). It keeps real state: single-use PKCE-bound authorization codes,
//! non-rotating refresh tokens, expiring access tokens, revocation, and a
//! per-hub rolling rate limit.
//!
//! Sources for the wire formats (see the module-level notes on each handler):
//! - OAuth 2026-03 OpenAPI spec (`PublicApiSpecs/Auth/Oauth/Rollouts/279897/2026-03/oauth.json`
//!   in HubSpot's public spec collection): token request fields, the
//!   `AccessTokenResponse` fields, the revoke form fields, the `Error` schema
//!   (`message`, `correlationId`, `category` required).
//! - Pipelines 2026-03 OpenAPI spec (`PublicApiSpecs/CRM/Pipelines/Rollouts/145896/2026-03/pipelines.json`):
//!   `Pipeline`/`PipelineStage` shapes; ids, dates and metadata values are
//!   strings, `displayOrder` an integer, default pipelines have `createdAt` = epoch.
//! - HubSpot changelog "New OAuth v3 API Endpoints and Standardized Error
//!   Responses": OAuth errors now carry RFC 6749 `error`/`error_description`
//!   *and* the legacy `status`/`message` (example:
//!   `{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"..."}`).
//!
//! Routing is a plain [`Router`] over one shared state struct, so later
//! issues can add contacts/deals/notes/associations handlers next to
//! `pipelines` (authenticate with `Shared::authenticate`, meter with
//! `Shared::consume_rate`, add a [`Route`] variant and a [`Route::classify`]
//! arm).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::faults::{self, Fault, FaultOutcome, FaultQueue, FaultRoute};
use super::recorder::{self, decode_form, RecordedRequest, Recorder};
use super::server::{Reject, ServerHandle};

/// `GET`, liveness probe (never faulted).
pub const HEALTH_PATH: &str = "/health";
/// `GET`, the consent screen (app.hubspot.com).
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// `POST`, token endpoint (api.hubapi.com, date-versioned).
pub const TOKEN_PATH: &str = "/oauth/2026-03/token";
/// `POST`, same handler; the spec's operationId names `/oauth/v3/token`.
pub const TOKEN_PATH_V3: &str = "/oauth/v3/token";
/// `POST`, refresh-token revocation.
pub const REVOKE_PATH: &str = "/oauth/2026-03/token/revoke";
/// `GET`, deal pipelines (v3 path).
pub const PIPELINES_PATH: &str = "/crm/v3/pipelines/deals";
/// `GET`, same handler at the spec's date-versioned path.
pub const PIPELINES_PATH_2026: &str = "/crm/pipelines/2026-03/deals";

/// How long an authorization code stays redeemable.
pub const AUTH_CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// The user id reported for every consent.
pub const SIM_USER_ID: u64 = 71_234_567;

const RATE_MAX_HEADER: &str = "x-hubspot-ratelimit-max";
const RATE_REMAINING_HEADER: &str = "x-hubspot-ratelimit-remaining";
const RATE_INTERVAL_HEADER: &str = "x-hubspot-ratelimit-interval-milliseconds";

const AUTH_NOT_FOUND_MESSAGE: &str = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct HubSpotSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued access tokens (HubSpot: 1800).
    pub access_token_ttl_secs: u64,
    /// `(max requests, window)` per hub for CRM API calls
    /// (HubSpot free/starter OAuth apps: 110 per 10 s).
    pub rate_limit: (u32, Duration),
    /// The hub (portal) every consent installs into.
    pub hub_id: u64,
}

impl Default for HubSpotSimConfig {
    fn default() -> Self {
        Self {
            client_id: "demo-client-id".to_owned(),
            client_secret: "demo-client-secret".to_owned(),
            access_token_ttl_secs: 1800,
            rate_limit: (110, Duration::from_secs(10)),
            hub_id: 24_681_357,
        }
    }
}

/// Fault-injection targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /oauth/2026-03/token` (and `/oauth/v3/token`).
    Token,
    /// `POST /oauth/2026-03/token/revoke`.
    Revoke,
    /// `GET /crm/v3/pipelines/deals` (and `/crm/pipelines/2026-03/deals`).
    Pipelines,
    /// `GET /oauth/authorize`.
    Authorize,
    /// Every request except `/health`.
    Any,
}

impl FaultRoute for Route {
    fn is_wildcard(&self) -> bool {
        matches!(self, Route::Any)
    }
}

impl Route {
    /// The named route a request path belongs to (`None` for `/health` and
    /// unknown paths). The method is not considered.
    pub fn classify(path: &str) -> Option<Route> {
        match path {
            AUTHORIZE_PATH => Some(Route::Authorize),
            TOKEN_PATH | TOKEN_PATH_V3 => Some(Route::Token),
            REVOKE_PATH => Some(Route::Revoke),
            PIPELINES_PATH | PIPELINES_PATH_2026 => Some(Route::Pipelines),
            _ => None,
        }
    }
}

/// Tokens minted by [`HubSpotSim::seed_connection`] without the browser flow.
#[derive(Debug, Clone)]
pub struct SeededTokens {
    pub refresh_token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub hub_id: u64,
    pub user_id: u64,
    pub scopes: Vec<String>,
}

/// A running HubSpot simulator. Clones share the same server and state; the
/// server stops when the last clone is dropped or [`HubSpotSim::shutdown`] is
/// called.
#[derive(Clone)]
pub struct HubSpotSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for HubSpotSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotSim")
            .field("base_url", &self.base_url())
            .field("hub_id", &self.shared.config.hub_id)
            .finish_non_exhaustive()
    }
}

impl HubSpotSim {
    /// Start on `127.0.0.1` with a free port.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start(config: HubSpotSimConfig) -> HubSpotSim {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr, config)
            .await
            .expect("bind the HubSpot simulator on 127.0.0.1:0")
    }

    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(
        addr: SocketAddr,
        config: HubSpotSimConfig,
    ) -> std::io::Result<HubSpotSim> {
        let shared = Arc::new(Shared {
            config,
            recorder: Recorder::new(),
            faults: FaultQueue::new(),
            state: Mutex::new(AuthState::default()),
        });
        let server = ServerHandle::spawn(addr, router(shared.clone())).await?;
        Ok(HubSpotSim {
            shared,
            server: Arc::new(server),
        })
    }

    /// `http://127.0.0.1:PORT` — use it for both the app.hubspot.com and the
    /// api.hubapi.com base URLs.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn config(&self) -> &HubSpotSimConfig {
        &self.shared.config
    }

    /// Stop the server now (all clones). Idempotent.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Queue `fault` for the next request on `route` (FIFO, fires once).
    pub fn inject(&self, route: Route, fault: Fault) {
        self.shared.faults.push(route, fault);
    }

    /// Faults queued but not yet fired.
    pub fn pending_faults(&self) -> usize {
        self.shared.faults.pending()
    }

    /// Every request received so far, oldest first (faulted ones included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.all()
    }

    /// Requests with this method and exact path (query excluded).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.shared.recorder.count(method, path)
    }

    /// Forget recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// The next `/oauth/authorize` that could otherwise succeed redirects with
    /// `error=access_denied` instead of a code.
    pub fn deny_next_consent(&self) {
        self.shared.lock().deny_next_consent = true;
    }

    /// Refresh tokens that still work, in issue order.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        let state = self.shared.lock();
        state
            .refresh_order
            .iter()
            .filter(|t| state.refresh.get(*t).is_some_and(|g| !g.revoked))
            .cloned()
            .collect()
    }

    /// Tokens revoked through the revoke endpoint, in revocation order: every
    /// refresh token revoked, plus any access token passed to it directly
    /// (access tokens revoked only as a consequence of their refresh token
    /// are not listed).
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.lock().revoked.clone()
    }

    /// Every access token ever issued, in issue order (live or not).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.lock().access_order.clone()
    }

    /// Make every access token issued so far expired as of now.
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for grant in self.shared.lock().access.values_mut() {
            grant.expires_at = grant.expires_at.min(now);
        }
    }

    /// Make every outstanding authorization code expired as of now.
    pub fn expire_auth_codes(&self) {
        let now = Instant::now();
        for code in self.shared.lock().codes.values_mut() {
            code.expires_at = code.expires_at.min(now);
        }
    }

    /// Mint a refresh/access token pair as if a user had consented and the
    /// app had exchanged the code — for tests that start from an existing
    /// connection.
    pub fn seed_connection(&self, scopes: &[&str]) -> SeededTokens {
        let config = &self.shared.config;
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let mut state = self.shared.lock();
        let refresh_token = state.issue_refresh(RefreshGrant {
            client_id: config.client_id.clone(),
            hub_id: config.hub_id,
            user_id: SIM_USER_ID,
            scopes: scopes.clone(),
            revoked: false,
        });
        let access_token = state.issue_access(
            &refresh_token,
            config.hub_id,
            Duration::from_secs(config.access_token_ttl_secs),
        );
        SeededTokens {
            refresh_token,
            access_token,
            expires_in: config.access_token_ttl_secs,
            hub_id: config.hub_id,
            user_id: SIM_USER_ID,
            scopes,
        }
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// Everything the handlers share.
struct Shared {
    config: HubSpotSimConfig,
    recorder: Recorder,
    faults: FaultQueue<Route>,
    state: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    codes: HashMap<String, PendingCode>,
    refresh: HashMap<String, RefreshGrant>,
    refresh_order: Vec<String>,
    access: HashMap<String, AccessGrant>,
    access_order: Vec<String>,
    revoked: Vec<String>,
    /// Per-hub timestamps of metered requests inside the current window.
    windows: HashMap<u64, VecDeque<Instant>>,
    deny_next_consent: bool,
}

struct PendingCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scopes: Vec<String>,
    hub_id: u64,
    user_id: u64,
    expires_at: Instant,
}

struct RefreshGrant {
    client_id: String,
    hub_id: u64,
    user_id: u64,
    scopes: Vec<String>,
    revoked: bool,
}

struct AccessGrant {
    refresh_token: String,
    hub_id: u64,
    expires_at: Instant,
    revoked: bool,
}

impl AuthState {
    fn issue_refresh(&mut self, grant: RefreshGrant) -> String {
        // HubSpot refresh tokens are UUID-shaped.
        let token = uuid::Uuid::new_v4().to_string();
        self.refresh.insert(token.clone(), grant);
        self.refresh_order.push(token.clone());
        token
    }

    fn issue_access(&mut self, refresh_token: &str, hub_id: u64, ttl: Duration) -> String {
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
enum AuthFailure {
    Missing,
    Unknown,
    Revoked,
    Expired(Duration),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, AuthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolve a request's bearer token to its hub.
    fn authenticate(&self, headers: &HeaderMap) -> Result<u64, Reject> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        self.check_access_token(token)
            .map_err(|failure| auth_failure_response(&failure).into())
    }

    fn check_access_token(&self, token: Option<&str>) -> Result<u64, AuthFailure> {
        let token = token.ok_or(AuthFailure::Missing)?;
        let state = self.lock();
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

    /// Count one CRM API call against `hub_id`'s rolling window. `Ok` carries
    /// the remaining allowance; `Err` is the 429 to send.
    fn consume_rate(&self, hub_id: u64) -> Result<u32, Reject> {
        let (max, window) = self.config.rate_limit;
        let now = Instant::now();
        let mut state = self.lock();
        let hits = state.windows.entry(hub_id).or_default();
        while hits
            .front()
            .is_some_and(|oldest| now.duration_since(*oldest) >= window)
        {
            hits.pop_front();
        }
        if hits.len() >= max as usize {
            drop(state);
            return Err(self.throttle_response(hub_id).into());
        }
        hits.push_back(now);
        Ok(max.saturating_sub(hits.len() as u32))
    }

    /// HubSpot's ten-secondly rolling limit response.
    fn throttle_response(&self, hub_id: u64) -> Response {
        let body = json!({
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": "TEN_SECONDLY_ROLLING",
            // Opaque in HubSpot's responses; the exact format is not
            // documented, so this one is made up.
            "groupName": format!("publicapi:oauth:{}:{}", self.config.client_id, hub_id),
        });
        let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
        // No Retry-After: HubSpot documents X-HubSpot-RateLimit-* headers for
        // 429s, and no HubSpot source we found shows Retry-After on them.
        self.add_rate_headers(&mut response, 0);
        response
    }

    fn add_rate_headers(&self, response: &mut Response, remaining: u32) {
        let (max, window) = self.config.rate_limit;
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(RATE_MAX_HEADER),
            HeaderValue::from(max),
        );
        headers.insert(
            HeaderName::from_static(RATE_REMAINING_HEADER),
            HeaderValue::from(remaining),
        );
        headers.insert(
            HeaderName::from_static(RATE_INTERVAL_HEADER),
            HeaderValue::from(window.as_millis() as u64),
        );
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
// Router and interceptor
// ---------------------------------------------------------------------------

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(AUTHORIZE_PATH, get(authorize))
        .route(TOKEN_PATH, post(token))
        .route(TOKEN_PATH_V3, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(PIPELINES_PATH, get(pipelines))
        .route(PIPELINES_PATH_2026, get(pipelines))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), intercept))
        .with_state(shared)
}

/// Records every request, then fires the first queued fault for its route.
async fn intercept(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (recorded, request) = recorder::capture(request).await;
    let exempt = recorded.path == HEALTH_PATH;
    let route = Route::classify(&recorded.path);
    let bearer = recorded
        .header("authorization")
        .and_then(bearer_token)
        .map(str::to_owned);
    tracing::debug!(method = %recorded.method, path = %recorded.path, "hubspot sim request");
    shared.recorder.push(recorded);

    if !exempt {
        if let Some(fault) = shared.faults.take(route) {
            tracing::debug!(?route, ?fault, "hubspot sim firing fault");
            match faults::apply(fault).await {
                FaultOutcome::Continue => {}
                FaultOutcome::Respond(response) => return response,
                FaultOutcome::Throttle => {
                    let hub_id = shared
                        .check_access_token(bearer.as_deref())
                        .unwrap_or(shared.config.hub_id);
                    return shared.throttle_response(hub_id);
                }
            }
        }
    }
    next.run(request).await
}

async fn not_found() -> Response {
    hubspot_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Resource not found (HubSpot simulator: unknown path)".to_owned(),
    )
}

// ---------------------------------------------------------------------------
// GET /oauth/authorize
// ---------------------------------------------------------------------------

/// Auto-consenting install screen. Validates the app and the redirect target,
/// then redirects with a single-use code bound to client, redirect URI and
/// the S256 PKCE challenge.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();

    // Errors that cannot be sent back to the app are shown to the user.
    let client_id = param("client_id");
    if client_id.is_empty() || client_id != shared.config.client_id {
        return error_page("The app's client_id is missing or unknown.");
    }
    let redirect_uri = param("redirect_uri");
    let Ok(redirect_target) = url::Url::parse(redirect_uri) else {
        return error_page("The redirect_uri is missing or not an absolute URL.");
    };
    let state_param = param("state");
    if state_param.is_empty() {
        return error_page("The state parameter is required.");
    }

    let deny = std::mem::take(&mut shared.lock().deny_next_consent);
    if deny {
        return redirect_to(
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
        return redirect_to(
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
    shared.lock().codes.insert(
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
    redirect_to(&redirect_target, &[("code", &code), ("state", state_param)])
}

// ---------------------------------------------------------------------------
// POST /oauth/2026-03/token
// ---------------------------------------------------------------------------

/// Authorization-code (with PKCE) and refresh-token grants.
async fn token(
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

    let mut state = shared.lock();
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
    let mut state = shared.lock();
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
    let access_token = state.issue_access(refresh_token, hub_id, Duration::from_secs(ttl));
    drop(state);
    // HubSpot refresh tokens do not rotate: hand back the same one.
    token_response(&access_token, refresh_token, ttl, hub_id, user_id, &scopes)
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
async fn revoke(
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

    let mut state = shared.lock();
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
// GET /crm/v3/pipelines/deals
// ---------------------------------------------------------------------------

async fn pipelines(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    let hub_id = shared.authenticate(&headers)?;
    let remaining = shared.consume_rate(hub_id)?;
    let mut response = json_response(StatusCode::OK, &deal_pipelines(hub_id));
    shared.add_rate_headers(&mut response, remaining);
    Ok(response)
}

/// Two deal pipelines: HubSpot's default "Sales Pipeline" with its real
/// stage ids, and a custom pipeline with numeric ids derived from the hub.
pub fn deal_pipelines(hub_id: u64) -> Value {
    const EPOCH: &str = "1970-01-01T00:00:00Z";
    let default_stages = [
        (
            "appointmentscheduled",
            "Appointment Scheduled",
            "0.2",
            false,
        ),
        ("qualifiedtobuy", "Qualified To Buy", "0.4", false),
        (
            "presentationscheduled",
            "Presentation Scheduled",
            "0.6",
            false,
        ),
        (
            "decisionmakerboughtin",
            "Decision Maker Bought-In",
            "0.8",
            false,
        ),
        ("contractsent", "Contract Sent", "0.9", false),
        ("closedwon", "Closed Won", "1.0", true),
        ("closedlost", "Closed Lost", "0.0", true),
    ];
    let default_pipeline = pipeline_json(
        "default",
        "Sales Pipeline",
        0,
        EPOCH,
        EPOCH,
        default_stages
            .iter()
            .map(|(id, label, p, closed)| ((*id).to_owned(), *label, *p, *closed)),
    );

    let custom_id = 7_000_000 + hub_id % 1_000_000;
    let created = "2024-03-14T09:26:53.589Z";
    let updated = "2025-11-02T16:40:12.118Z";
    let custom_stages = [
        ("Discovery", "0.1", false),
        ("Proposal Sent", "0.5", false),
        ("Negotiation", "0.7", false),
        ("Won", "1.0", true),
        ("Lost", "0.0", true),
    ];
    let custom_pipeline = pipeline_json(
        &custom_id.to_string(),
        "Partner Pipeline",
        1,
        created,
        updated,
        custom_stages
            .iter()
            .enumerate()
            .map(|(i, (label, p, closed))| {
                (format!("{}{:02}", custom_id, i + 1), *label, *p, *closed)
            }),
    );
    json!({ "results": [default_pipeline, custom_pipeline] })
}

fn pipeline_json<'a>(
    id: &str,
    label: &str,
    display_order: i32,
    created_at: &str,
    updated_at: &str,
    stages: impl Iterator<Item = (String, &'a str, &'a str, bool)>,
) -> Value {
    let stages: Vec<Value> = stages
        .enumerate()
        .map(|(order, (stage_id, stage_label, probability, closed))| {
            json!({
                "id": stage_id,
                "label": stage_label,
                "displayOrder": order,
                "metadata": {
                    "isClosed": if closed { "true" } else { "false" },
                    "probability": probability,
                },
                "createdAt": created_at,
                "updatedAt": updated_at,
                "archived": false,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            })
        })
        .collect();
    json!({
        "id": id,
        "label": label,
        "displayOrder": display_order,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "archived": false,
        "stages": stages,
    })
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

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

fn bearer_token(value: &str) -> Option<&str> {
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

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// HubSpot API error body (`status`, `message`, `correlationId`, `category`).
fn hubspot_error(status: StatusCode, category: &str, message: String) -> Response {
    json_response(
        status,
        &json!({
            "status": "error",
            "message": message,
            "correlationId": correlation_id(),
            "category": category,
        }),
    )
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

fn redirect_to(target: &url::Url, pairs: &[(&str, &str)]) -> Response {
    let mut location = target.clone();
    {
        let mut query = location.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
    }
    match HeaderValue::from_str(location.as_str()) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page("The redirect_uri cannot be used as a Location header."),
    }
}

fn error_page(reason: &str) -> Response {
    let escaped = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!DOCTYPE html><html><head><title>HubSpot (simulator) - authorization error</title></head>\
             <body><h1>Authorization failed</h1><p>{escaped}</p></body></html>"
        )),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT: &str = "https://relay.example.test/oauth/callback?source=hubspot";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn verifier() -> String {
        let mut bytes = [0u8; 48];
        rand::thread_rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn creds(sim: &HubSpotSim) -> Vec<(&'static str, String)> {
        vec![
            ("client_id", sim.config().client_id.clone()),
            ("client_secret", sim.config().client_secret.clone()),
        ]
    }

    /// Runs the consent redirect and returns the query of the Location.
    async fn consent(
        sim: &HubSpotSim,
        http: &reqwest::Client,
        challenge: &str,
    ) -> HashMap<String, String> {
        let mut url = url::Url::parse(&format!("{}{}", sim.base_url(), AUTHORIZE_PATH)).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", &sim.config().client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair(
                "scope",
                "oauth crm.objects.deals.read crm.objects.contacts.write",
            )
            .append_pair("state", "st/ate+ with spaces&x=y")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 302);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("https://relay.example.test/oauth/callback?"),
            "{location}"
        );
        let location = url::Url::parse(location).unwrap();
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(query.get("source").map(String::as_str), Some("hubspot"));
        assert_eq!(
            query.get("state").map(String::as_str),
            Some("st/ate+ with spaces&x=y")
        );
        query
    }

    async fn exchange(
        sim: &HubSpotSim,
        http: &reqwest::Client,
        code: &str,
        verifier: &str,
    ) -> (u16, Value) {
        let mut form = creds(sim);
        form.extend([
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ]);
        let response = http
            .post(format!("{}{}", sim.base_url(), TOKEN_PATH))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn refresh_with(sim: &HubSpotSim, http: &reqwest::Client, token: &str) -> (u16, Value) {
        let mut form = creds(sim);
        form.extend([
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
        ]);
        let response = http
            .post(format!("{}{}", sim.base_url(), TOKEN_PATH))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn get_pipelines(
        sim: &HubSpotSim,
        http: &reqwest::Client,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = http.get(format!("{}{}", sim.base_url(), PIPELINES_PATH));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn connect(sim: &HubSpotSim, http: &reqwest::Client) -> Value {
        let verifier = verifier();
        let query = consent(sim, http, &s256_challenge(&verifier)).await;
        let (status, body) = exchange(sim, http, &query["code"], &verifier).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    #[tokio::test]
    async fn health_is_ok() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let text = client()
            .get(format!("{}/health", sim.base_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "ok");
    }

    #[tokio::test]
    async fn pkce_exchange_succeeds_with_the_right_verifier() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let body = connect(&sim, &http).await;

        let access = body["access_token"].as_str().unwrap();
        assert!(
            access.len() >= 250,
            "access token too short: {}",
            access.len()
        );
        assert!(access.len() <= 300);
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["token_use"], "access_token");
        assert_eq!(body["expires_in"], 1800);
        assert_eq!(body["hub_id"], sim.config().hub_id);
        assert_eq!(body["user_id"], SIM_USER_ID);
        assert_eq!(
            body["scopes"],
            json!([
                "oauth",
                "crm.objects.deals.read",
                "crm.objects.contacts.write"
            ])
        );
        assert_eq!(
            sim.live_refresh_tokens(),
            vec![body["refresh_token"].as_str().unwrap().to_owned()]
        );
        assert_eq!(sim.issued_access_tokens(), vec![access.to_owned()]);
        assert_eq!(sim.count("GET", AUTHORIZE_PATH), 1);
        assert_eq!(sim.count("post", TOKEN_PATH), 1);
        let token_request = sim
            .requests()
            .into_iter()
            .find(|r| r.path == TOKEN_PATH)
            .unwrap();
        assert_eq!(token_request.form()["grant_type"], "authorization_code");
        assert!(token_request
            .header("Content-Type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded"));
    }

    #[tokio::test]
    async fn pkce_exchange_fails_with_a_wrong_verifier() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let right = verifier();
        let query = consent(&sim, &http, &s256_challenge(&right)).await;

        let (status, body) = exchange(&sim, &http, &query["code"], &verifier()).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["status"], "BAD_AUTH_CODE");
        assert!(body["error_description"].is_string());
        assert!(body["message"].is_string());
        assert!(body["correlationId"].is_string());
        assert!(body["category"].is_string());
        assert!(sim.live_refresh_tokens().is_empty());

        // A failed attempt burns the code too.
        let (status, body) = exchange(&sim, &http, &query["code"], &right).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn codes_are_single_use_and_bound_to_redirect_uri() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let verifier = verifier();
        let query = consent(&sim, &http, &s256_challenge(&verifier)).await;
        let (status, _) = exchange(&sim, &http, &query["code"], &verifier).await;
        assert_eq!(status, 200);
        let (status, body) = exchange(&sim, &http, &query["code"], &verifier).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(sim.live_refresh_tokens().len(), 1);

        // Mismatched redirect_uri.
        let query = consent(&sim, &http, &s256_challenge(&verifier)).await;
        let mut form = creds(&sim);
        form.extend([
            ("grant_type", "authorization_code".to_owned()),
            ("code", query["code"].clone()),
            ("redirect_uri", "https://evil.example.test/cb".to_owned()),
            ("code_verifier", verifier.clone()),
        ]);
        let response = http
            .post(format!("{}{}", sim.base_url(), TOKEN_PATH))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["status"], "BAD_REDIRECT_URI");

        // Expired code.
        let query = consent(&sim, &http, &s256_challenge(&verifier)).await;
        sim.expire_auth_codes();
        let (status, body) = exchange(&sim, &http, &query["code"], &verifier).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
    }

    #[tokio::test]
    async fn client_credentials_are_checked_and_basic_auth_works() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let seeded = sim.seed_connection(&["oauth"]);
        let url = format!("{}{}", sim.base_url(), TOKEN_PATH);

        let response = http
            .post(&url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &seeded.refresh_token),
                ("client_id", "demo-client-id"),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");

        let response = http
            .post(&url)
            .basic_auth("demo-client-id", Some("wrong"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &seeded.refresh_token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));

        let response = http
            .post(&url)
            .basic_auth("demo-client-id", Some("demo-client-secret"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &seeded.refresh_token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        // JSON bodies are refused.
        let response = http
            .post(&url)
            .json(&json!({"grant_type": "refresh_token"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }

    #[tokio::test]
    async fn refresh_issues_new_access_token_and_keeps_refresh_token() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let first = connect(&sim, &http).await;
        let refresh_token = first["refresh_token"].as_str().unwrap();

        let (status, second) = refresh_with(&sim, &http, refresh_token).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["refresh_token"], refresh_token);
        assert_ne!(second["access_token"], first["access_token"]);
        assert_eq!(second["scopes"], first["scopes"]);
        assert_eq!(sim.issued_access_tokens().len(), 2);
        assert_eq!(sim.live_refresh_tokens(), vec![refresh_token.to_owned()]);

        // Both access tokens work until they expire.
        for token in sim.issued_access_tokens() {
            assert_eq!(get_pipelines(&sim, &http, Some(&token)).await.status(), 200);
        }

        let (status, body) = refresh_with(&sim, &http, "not-a-refresh-token").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
    }

    #[tokio::test]
    async fn revoke_kills_refresh_token_and_its_access_tokens() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let body = connect(&sim, &http).await;
        let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
        let access_token = body["access_token"].as_str().unwrap().to_owned();
        let other = sim.seed_connection(&["oauth"]);

        let mut form = creds(&sim);
        form.extend([
            ("token", refresh_token.clone()),
            ("token_type_hint", "refresh_token".to_owned()),
        ]);
        let response = http
            .post(format!("{}{}", sim.base_url(), REVOKE_PATH))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "");

        assert_eq!(sim.revoked_tokens(), vec![refresh_token.clone()]);
        assert_eq!(sim.live_refresh_tokens(), vec![other.refresh_token.clone()]);
        let (status, body) = refresh_with(&sim, &http, &refresh_token).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");

        let response = get_pipelines(&sim, &http, Some(&access_token)).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
        // The unrelated connection is untouched.
        assert_eq!(
            get_pipelines(&sim, &http, Some(&other.access_token))
                .await
                .status(),
            200
        );

        // Unknown tokens: still 200.
        let mut form = creds(&sim);
        form.push(("token", "never-issued".to_owned()));
        let response = http
            .post(format!("{}{}", sim.base_url(), REVOKE_PATH))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn pipelines_need_a_live_token() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();

        let response = get_pipelines(&sim, &http, None).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
        assert!(body["correlationId"].is_string());
        assert!(body["message"].is_string());

        assert_eq!(
            get_pipelines(&sim, &http, Some("bogus")).await.status(),
            401
        );

        let seeded = sim.seed_connection(&["crm.objects.deals.read"]);
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "110");
        assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "109");
        assert_eq!(
            response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
            "10000"
        );
        let body: Value = response.json().await.unwrap();
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["id"], "default");
        assert_eq!(results[0]["label"], "Sales Pipeline");
        let stage_ids: Vec<&str> = results[0]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            stage_ids,
            [
                "appointmentscheduled",
                "qualifiedtobuy",
                "presentationscheduled",
                "decisionmakerboughtin",
                "contractsent",
                "closedwon",
                "closedlost"
            ]
        );
        assert_eq!(results[0]["stages"][0]["metadata"]["probability"], "0.2");
        assert_eq!(results[0]["stages"][5]["metadata"]["isClosed"], "true");
        assert!(results[1]["id"].as_str().unwrap().parse::<u64>().is_ok());

        // Same data at the date-versioned path.
        let response = http
            .get(format!("{}{}", sim.base_url(), PIPELINES_PATH_2026))
            .bearer_auth(&seeded.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        sim.expire_access_tokens();
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");

        let (status, fresh) = refresh_with(&sim, &http, &seeded.refresh_token).await;
        assert_eq!(status, 200);
        let fresh_token = fresh["access_token"].as_str().unwrap();
        assert_eq!(
            get_pipelines(&sim, &http, Some(fresh_token)).await.status(),
            200
        );
    }

    #[tokio::test]
    async fn throttles_after_the_limit() {
        let sim = HubSpotSim::start(HubSpotSimConfig {
            rate_limit: (3, Duration::from_millis(400)),
            ..HubSpotSimConfig::default()
        })
        .await;
        let http = client();
        let seeded = sim.seed_connection(&["oauth"]);
        for expected_remaining in ["2", "1", "0"] {
            let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["x-hubspot-ratelimit-remaining"],
                expected_remaining
            );
        }
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "3");
        assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "0");
        assert_eq!(
            response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
            "400"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "RATE_LIMIT");
        assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
        assert_eq!(
            body["message"],
            "You have reached your ten_secondly_rolling limit."
        );
        assert!(body["correlationId"].is_string());
        assert!(body["groupName"].is_string());

        // The window rolls.
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            get_pipelines(&sim, &http, Some(&seeded.access_token))
                .await
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn a_queued_fault_fires_once() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let seeded = sim.seed_connection(&["oauth"]);

        sim.inject(
            Route::Token,
            Fault::Status(503, "{\"status\":\"error\"}".to_owned()),
        );
        sim.inject(Route::Token, Fault::Garbage);
        assert_eq!(sim.pending_faults(), 2);

        // Another route is unaffected.
        assert_eq!(
            get_pipelines(&sim, &http, Some(&seeded.access_token))
                .await
                .status(),
            200
        );

        let url = format!("{}{}", sim.base_url(), TOKEN_PATH);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", seeded.refresh_token.as_str()),
            ("client_id", "demo-client-id"),
            ("client_secret", "demo-client-secret"),
        ];
        let response = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 503);
        let response = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.json::<Value>().await.is_err(),
            "garbage must not parse"
        );
        let response = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.json::<Value>().await.unwrap()["access_token"].is_string());
        assert_eq!(sim.pending_faults(), 0);
        assert_eq!(sim.count("POST", TOKEN_PATH), 3);

        // Throttle via Any, then Delay.
        sim.inject(Route::Any, Fault::Throttle);
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("x-hubspot-ratelimit-max"));
        sim.inject(Route::Pipelines, Fault::Delay(Duration::from_millis(200)));
        let started = Instant::now();
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // Health is never faulted.
        sim.inject(Route::Any, Fault::Garbage);
        let response = http
            .get(format!("{}/health", sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
        assert_eq!(sim.pending_faults(), 1);
    }

    #[tokio::test]
    async fn consent_denial_and_bad_requests() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let http = client();
        let challenge = s256_challenge(&verifier());
        let authorize = |client_id: &str, with_state: bool| {
            let mut url =
                url::Url::parse(&format!("{}{}", sim.base_url(), AUTHORIZE_PATH)).unwrap();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("client_id", client_id)
                    .append_pair("redirect_uri", REDIRECT)
                    .append_pair("scope", "oauth")
                    .append_pair("code_challenge", &challenge)
                    .append_pair("code_challenge_method", "S256");
                if with_state {
                    q.append_pair("state", "abc");
                }
            }
            url
        };

        let response = http.get(authorize("nope", true)).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let response = http
            .get(authorize("demo-client-id", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);

        sim.deny_next_consent();
        let response = http
            .get(authorize("demo-client-id", true))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let location =
            url::Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(query["error"], "access_denied");
        assert_eq!(query["state"], "abc");
        assert!(query.contains_key("error_description"));
        assert!(!query.contains_key("code"));

        // Only the next consent is denied.
        let response = http
            .get(authorize("demo-client-id", true))
            .send()
            .await
            .unwrap();
        let location =
            url::Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        assert!(location.query_pairs().any(|(k, _)| k == "code"));
    }

    #[tokio::test]
    async fn dropping_the_last_handle_stops_the_server() {
        let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
        let addr = sim.addr();
        let clone = sim.clone();
        drop(sim);
        // Still served through the clone.
        let health = format!("http://{addr}/health");
        assert!(reqwest::get(&health).await.is_ok());
        drop(clone);
        let mut stopped = false;
        for _ in 0..50 {
            // A fresh client each time: no pooled connection to reuse.
            if reqwest::Client::new().get(&health).send().await.is_err() {
                stopped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            stopped,
            "server still answering after the last handle was dropped"
        );
    }
}
