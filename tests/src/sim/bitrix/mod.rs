//! Stateful Bitrix24 simulator: the OAuth 2.0 flow of a Bitrix24 application
//! (consent on the portal, GET token endpoint on the OAuth server, rotating
//! refresh tokens) and the CRM REST subset the relay uses.
//!
//! One loopback server plays every host; the host a request is meant for comes
//! from `X-Forwarded-Host`, else `Host`:
//! - portals added with [`BitrixSim::add_portal`] (e.g. `acme.bitrix24.com`):
//!   `POST /rest/{method}` (also `/rest/{method}.json`, and `GET`);
//! - the OAuth servers `oauth.bitrix.info` (default), `oauth.bitrix.com`,
//!   `oauth.bitrix24.tech` (one token store): `GET /oauth/token/`;
//! - any host: `GET /oauth/authorize/` (the consent screen; the browser is sent
//!   straight to the simulator, so the portal is named by `sim_portal=<host>`
//!   and defaults to the first portal added).
//!
//! Layout: [`oauth`] (codes, tokens, consent, token endpoint), [`crm`] (portal
//! store, REST methods), [`params`] (request parameters: JSON or PHP-style forms).

mod crm;
mod oauth;
mod params;

#[cfg(test)]
mod crm_tests;
#[cfg(test)]
mod oauth_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};

use super::faults::FaultRoute;
use super::recorder::{self, decode_form, normalize_host, HostRequest};
use super::shell::rate::RateWindow;
use super::shell::{Call, Shell, SIM_PREFIX};

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};
pub use oauth::oauth_policy;

/// The default OAuth server (named in the consent's `server_domain`).
pub const DEFAULT_OAUTH_HOST: &str = "oauth.bitrix.info";
/// Every OAuth server host the simulator knows out of the box (one token store).
pub const OAUTH_HOSTS: [&str; 3] = [
    DEFAULT_OAUTH_HOST,
    "oauth.bitrix.com",
    "oauth.bitrix24.tech",
];
/// `GET`, any host: the consent screen (also without the trailing slash).
pub const AUTHORIZE_PATH: &str = "/oauth/authorize/";
/// `GET`, OAuth host: both grants, parameters in the query string (also
/// without the trailing slash).
pub const TOKEN_PATH: &str = "/oauth/token/";
/// Prefix of the REST paths on a portal host.
pub const REST_PREFIX: &str = "/rest/";
/// `GET`, any host: liveness probe (never faulted).
pub const HEALTH_PATH: &str = "/health";
/// `GET ?portal=<host>`, **simulator only**: a portal's CRM data as JSON.
pub const SIM_STATE_PATH: &str = "/_sim/state";
/// The header naming the host a locally routed request was meant for.
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";
/// Lifetime of an access token (`expires_in`), seconds.
pub const ACCESS_TOKEN_SECONDS: u64 = 3600;
/// Lifetime of an authorization code.
pub const CODE_TTL: Duration = Duration::from_secs(30);
/// The scope every grant carries.
pub const SCOPE: &str = "crm";
/// `app.info`'s `CODE`.
pub const APP_CODE: &str = "leadrelay";
/// Most values one `crm.duplicate.findbycomm` call may look up.
pub const MAX_FINDBYCOMM_VALUES: usize = 20;

/// Simulator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitrixSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// REST requests one portal may make in any sliding 1 s window (then 503
    /// `QUERY_LIMIT_EXCEEDED`).
    pub requests_per_second: u32,
    /// How long a refresh token lives after it was issued.
    pub refresh_token_ttl: Duration,
    /// Where the consent redirects when the request names no `redirect_uri`.
    pub redirect_uri: Option<String>,
}

impl Default for BitrixSimConfig {
    fn default() -> Self {
        Self {
            client_id: "test-bitrix-client-id".to_owned(),
            client_secret: "test-bitrix-client-secret".to_owned(),
            requests_per_second: 50,
            refresh_token_ttl: Duration::from_secs(28 * 24 * 60 * 60),
            redirect_uri: None,
        }
    }
}

/// Fault-injection targets (each queued fault fires once, FIFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitrixRoute {
    /// Every request except `/health` and `/_sim/...`.
    Any,
    /// `GET /oauth/authorize/`.
    Authorize,
    /// `/oauth/token/` (any grant).
    Token,
    /// Every REST call.
    AnyRest,
    /// REST calls of one method (compared case-insensitively, e.g.
    /// `Rest("crm.contact.add")`).
    Rest(&'static str),
}

impl BitrixRoute {
    /// True when a fault queued for this route applies to `endpoint`.
    fn applies_to(&self, endpoint: &Endpoint) -> bool {
        match (self, endpoint) {
            (BitrixRoute::Any, Endpoint::Health) => false,
            (BitrixRoute::Any, _) => true,
            (BitrixRoute::Authorize, Endpoint::Authorize) => true,
            (BitrixRoute::Token, Endpoint::Token) => true,
            (BitrixRoute::AnyRest, Endpoint::Rest { .. }) => true,
            (BitrixRoute::Rest(name), Endpoint::Rest { method }) => {
                name.eq_ignore_ascii_case(method)
            }
            _ => false,
        }
    }
}

impl FaultRoute for BitrixRoute {
    const WILDCARD: BitrixRoute = BitrixRoute::Any;
}

/// One request as the simulator saw it: its host is `X-Forwarded-Host`, else
/// `Host`; `rest_method` names a REST call's method.
pub type BitrixRequest = HostRequest<BitrixDetails>;

/// What the Bitrix24 simulator adds to a logged request.
#[derive(Debug, Clone, Default)]
pub struct BitrixDetails {
    /// The REST method (lower-cased, without `.json`) of a `/rest/...` request.
    pub rest_method: Option<String>,
}

impl BitrixRequest {
    /// The parameters a REST method sees: the query string merged with the
    /// body (JSON, or a PHP-style form such as `fields[NAME]=Ada`).
    pub fn params(&self) -> Map<String, Value> {
        let body = match &self.body {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        params::request_params(&self.query, &body).unwrap_or_default()
    }

    /// True for a REST call.
    pub fn is_rest(&self) -> bool {
        self.rest_method.is_some()
    }
}

/// A contact or a deal as `crm.contact.get` / `crm.deal.get` would answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct BitrixRecord {
    pub id: i64,
    /// Every field, `ID` included; scalars are strings, multi-fields (`PHONE`,
    /// `EMAIL`) arrays of `{ID, VALUE_TYPE, VALUE, TYPE_ID}`.
    pub fields: Map<String, Value>,
}

/// A timeline comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitrixComment {
    pub id: i64,
    /// `"deal"` or `"contact"`.
    pub entity_type: String,
    pub entity_id: i64,
    pub comment: String,
    /// How many times `crm.timeline.comment.update` changed it.
    pub updates: usize,
}

crate::sim::shell::simulator! {
    /// A running Bitrix24 simulator. Clones share the same server and state.
    ///
    /// Derefs to its shell for `base_url`, `inject` (`Fault::Throttle` answers Bitrix24's 503
    /// `QUERY_LIMIT_EXCEEDED`), `requests`, `clear_requests` and the rest of the
    /// shell's methods.
    BitrixSim {
        product: "Bitrix24",
        config: BitrixSimConfig,
        route: BitrixRoute,
        request: BitrixRequest,
    }
}

impl BitrixSim {
    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: BitrixSimConfig) -> std::io::Result<BitrixSim> {
        let shell = Shell::new();
        let auth = oauth::AuthState::new(&config);
        let shared = Arc::new(Shared {
            shell: shell.clone(),
            rate: RateWindow::new((config.requests_per_second, Duration::from_secs(1))),
            config,
            clock_offset: Mutex::new(Duration::ZERO),
            state: Mutex::new(SimState {
                portals: Vec::new(),
                auth,
            }),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let shell = shell.serve(addr, router).await?;
        Ok(BitrixSim { shared, shell })
    }

    // -- requests -------------------------------------------------------------

    /// REST requests addressed to `portal` so far (any outcome: rejected,
    /// throttled and faulted ones included).
    pub fn rest_calls(&self, portal: &str) -> usize {
        self.rest_methods(portal).len()
    }

    /// The REST methods called on `portal` so far, in order (lower-cased).
    pub fn rest_methods(&self, portal: &str) -> Vec<String> {
        let portal = normalize_host(portal);
        self.requests()
            .into_iter()
            .filter(|r| r.host == portal)
            .filter_map(|r| r.rest_method.clone())
            .collect()
    }

    // -- portals --------------------------------------------------------------

    /// Add a portal (idempotent); returns its `member_id`.
    pub fn add_portal(&self, host: &str) -> String {
        self.shared.state().add_portal(&normalize_host(host))
    }

    /// The `member_id` of `portal`.
    ///
    /// # Panics
    /// On an unknown portal (as every per-portal method below).
    pub fn member_id(&self, portal: &str) -> String {
        self.with_portal(portal, |p| p.member_id.clone())
    }

    /// Make `portal` use another OAuth server (named in its consent's
    /// `server_domain` and its token answers); the host is accepted as an
    /// OAuth host from now on.
    pub fn set_oauth_server(&self, portal: &str, oauth_host: &str) {
        let oauth_host = normalize_host(oauth_host);
        self.with_portal(portal, |p| p.oauth_server = oauth_host);
    }

    /// The OAuth server `portal` uses.
    pub fn oauth_server(&self, portal: &str) -> String {
        self.with_portal(portal, |p| p.oauth_server.clone())
    }

    /// A portal whose subscription lapsed: REST answers 402, both grants 400
    /// `PAYMENT_REQUIRED`.
    pub fn set_payment_required(&self, portal: &str, on: bool) {
        self.with_portal(portal, |p| p.payment_required = on);
    }

    /// A plan without REST: every REST call answers 401 `ACCESS_DENIED`.
    pub fn set_rest_denied(&self, portal: &str, on: bool) {
        self.with_portal(portal, |p| p.rest_denied = on);
    }

    /// A portal rule from now on: `crm.contact.add` and `crm.deal.add` (alone or inside a
    /// `batch`) refuse fields holding `text` with `INVALID_ARG_VALUE`.
    pub fn refuse_records_with(&self, portal: &str, text: &str) {
        self.with_portal(portal, |p| p.refused.push(text.to_owned()));
    }

    /// The portal's admin removes the app: every token of the portal dies
    /// (REST answers `invalid_token`, refresh answers `invalid_grant`).
    pub fn uninstall_app(&self, portal: &str) {
        let portal = normalize_host(portal);
        let mut state = self.shared.state();
        state.portal_or_panic(&portal).installed = false;
        state.auth.kill_portal(&portal);
    }

    /// Every access token of `portal` expires now (`expired_token`); refresh
    /// tokens stay valid.
    pub fn expire_access_tokens(&self, portal: &str) {
        let portal = normalize_host(portal);
        let mut state = self.shared.state();
        state.portal_or_panic(&portal);
        state.auth.expire_access(&portal);
    }

    /// Move the simulator's clock forward (token and code expiry, `expires`,
    /// record dates; not the rate limit window).
    pub fn advance_clock(&self, by: Duration) {
        *self.shared.clock_offset() += by;
        self.shared.state().auth.advance_clock(by);
    }

    // OAuth inspection and shortcuts: in `oauth.rs`.

    // -- data -------------------------------------------------------------------

    /// Every contact of `portal`, by id.
    pub fn contacts(&self, portal: &str) -> Vec<BitrixRecord> {
        self.with_portal(portal, |p| p.contact_records())
    }

    /// Every deal of `portal`, by id.
    pub fn deals(&self, portal: &str) -> Vec<BitrixRecord> {
        self.with_portal(portal, |p| p.deal_records())
    }

    /// Every timeline comment of `portal`, by id.
    pub fn comments(&self, portal: &str) -> Vec<BitrixComment> {
        self.with_portal(portal, |p| p.comment_records())
    }

    /// Add a contact as `crm.contact.add` would (e.g.
    /// `json!({"NAME": "Ada", "EMAIL": [{"VALUE": "ada@example.com"}]})`); returns its id.
    ///
    /// # Panics
    /// When the fields are rejected.
    pub fn seed_contact(&self, portal: &str, fields: Value) -> i64 {
        let date = self.shared.date_string();
        self.with_portal(portal, |p| {
            p.seed_contact(&fields, &date)
                .unwrap_or_else(|e| panic!("seed_contact rejected {fields}: {e}"))
        })
    }

    /// A deal pipeline with these stages (`(status id suffix, name,
    /// semantics None|"S"|"F")`, sorted as given; the default seven stages
    /// when empty); returns its category id. Stage ids are `C<id>:<suffix>`.
    pub fn add_category(
        &self,
        portal: &str,
        name: &str,
        stages: &[(&str, &str, Option<&str>)],
    ) -> i64 {
        self.with_portal(portal, |p| p.add_category(name, stages))
    }

    /// What `GET /_sim/state?portal=<host>` returns: the portal's settings,
    /// categories with their stages, contacts, deals and comments.
    pub fn state_json(&self, portal: &str) -> Value {
        self.with_portal(portal, |p| p.state_json())
    }

    fn with_portal<T>(&self, portal: &str, f: impl FnOnce(&mut crm::Portal) -> T) -> T {
        let portal = normalize_host(portal);
        f(self.shared.state().portal_or_panic(&portal))
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

/// Everything the handlers share. `state` is the only lock held for long;
/// `clock_offset` and `requests` are never held while taking another lock.
struct Shared {
    config: BitrixSimConfig,
    shell: Arc<Shell<BitrixRoute, BitrixRequest>>,
    /// REST calls per portal host in any sliding second.
    rate: RateWindow<String>,
    clock_offset: Mutex<Duration>,
    state: Mutex<SimState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clock_offset(&self) -> MutexGuard<'_, Duration> {
        self.clock_offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The simulator's wall clock, seconds since the epoch.
    fn unix_now(&self) -> f64 {
        let wall = SystemTime::now() + *self.clock_offset();
        wall.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    }

    /// The simulator's wall clock as Bitrix24 writes dates (`2024-05-01T12:00:00+00:00`).
    fn date_string(&self) -> String {
        let offset = chrono::Duration::from_std(*self.clock_offset()).unwrap_or_default();
        (chrono::Utc::now() + offset)
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    }
}

/// Portals and the token store, behind one lock.
pub(crate) struct SimState {
    /// In the order added (the first is the consent's default).
    pub(crate) portals: Vec<crm::Portal>,
    pub(crate) auth: oauth::AuthState,
}

impl SimState {
    fn add_portal(&mut self, host: &str) -> String {
        if let Some(portal) = self.portal(host) {
            return portal.member_id.clone();
        }
        let portal = crm::Portal::new(host);
        let member_id = portal.member_id.clone();
        self.portals.push(portal);
        member_id
    }

    pub(crate) fn portal(&mut self, host: &str) -> Option<&mut crm::Portal> {
        self.portals.iter_mut().find(|p| p.host == host)
    }

    fn portal_or_panic(&mut self, host: &str) -> &mut crm::Portal {
        match self.portals.iter().position(|p| p.host == host) {
            Some(index) => &mut self.portals[index],
            None => panic!("unknown Bitrix24 portal {host:?} (add it with add_portal)"),
        }
    }
}

/// What a handler gets: the request, already buffered.
pub(crate) struct Ctx {
    /// The effective host.
    pub(crate) host: String,
    pub(crate) method: String,
    /// Raw query string.
    pub(crate) raw_query: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) body: String,
}

impl Ctx {
    pub(crate) fn param(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// What a request is, from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Health,
    Authorize,
    Token,
    Rest { method: String },
    NotFound,
}

impl Endpoint {
    fn of(method: &str, path: &str) -> Endpoint {
        match (method, path) {
            (_, HEALTH_PATH) => Endpoint::Health,
            ("GET", "/oauth/authorize" | AUTHORIZE_PATH) => Endpoint::Authorize,
            (_, "/oauth/token" | TOKEN_PATH) => Endpoint::Token,
            _ => match path.strip_prefix(REST_PREFIX).and_then(rest_method_name) {
                Some(method) => Endpoint::Rest { method },
                None => Endpoint::NotFound,
            },
        }
    }
}

/// `crm.contact.add` from `crm.contact.add`, `crm.contact.add.json` or
/// `crm.contact.add/` (lower-cased); `None` for anything with a `/` inside.
fn rest_method_name(tail: &str) -> Option<String> {
    let tail = tail.trim_end_matches('/');
    let name = tail.strip_suffix(".json").unwrap_or(tail);
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    valid.then(|| name.to_ascii_lowercase())
}

fn effective_host(forwarded: Option<&str>, host: Option<&str>) -> String {
    normalize_host(forwarded.or(host).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// The one handler: record, fault, dispatch
// ---------------------------------------------------------------------------

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if request.uri().path().starts_with(SIM_PREFIX) {
        let query = decode_form(request.uri().query().unwrap_or_default());
        return sim_route(&shared, request.uri().path(), &query);
    }
    let (recorded, request) = recorder::capture(request).await;
    let host = effective_host(
        recorded.header(FORWARDED_HOST_HEADER),
        recorded.header("host"),
    );
    let endpoint = Endpoint::of(&recorded.method, &recorded.path);
    tracing::debug!(method = %recorded.method, path = %recorded.path, %host, "bitrix sim request");
    let rest_method = match &endpoint {
        Endpoint::Rest { method } => Some(method.clone()),
        _ => None,
    };
    let entry = BitrixRequest::new(&recorded, host.clone(), BitrixDetails { rest_method });
    let ctx = Ctx {
        host,
        method: recorded.method.clone(),
        raw_query: recorded.query.clone(),
        query: recorded.query_params(),
        body: recorded.body,
    };
    let faultable = endpoint != Endpoint::Health;
    let applies = {
        let endpoint = endpoint.clone();
        move |r: &BitrixRoute| r.applies_to(&endpoint)
    };
    let run = {
        let shared = shared.clone();
        async move { dispatch(&shared, &endpoint, &ctx) }
    };
    shared
        .shell
        .intercept(
            Call::new(entry, &request),
            faultable.then_some(&applies as _),
            run,
            query_limit_exceeded,
            |entry, response| entry.status = Some(response.status().as_u16()),
        )
        .await
}

fn dispatch(shared: &Shared, endpoint: &Endpoint, ctx: &Ctx) -> Response {
    match endpoint {
        Endpoint::Health => "ok".into_response(),
        Endpoint::Authorize => oauth::authorize(shared, ctx),
        Endpoint::Token => oauth::token(shared, ctx),
        Endpoint::Rest { method } => crm::rest(shared, ctx, method),
        Endpoint::NotFound => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

fn sim_route(shared: &Shared, path: &str, query: &HashMap<String, String>) -> Response {
    if path != SIM_STATE_PATH {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let mut state = shared.state();
    let portal = match query.get("portal") {
        Some(host) => state.portal(&normalize_host(host)),
        None => state.portals.first_mut(),
    };
    match portal {
        Some(portal) => json_response(StatusCode::OK, &portal.state_json()),
        None => b24_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "No such portal in the simulator",
        ),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the submodules
// ---------------------------------------------------------------------------

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    super::shell::json_response(status, body, "application/json; charset=utf-8")
}

/// Bitrix24's error envelope `{"error","error_description"}`.
pub(crate) fn b24_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// The per-portal rate limit's answer (also what `Fault::Throttle` renders).
pub(crate) fn query_limit_exceeded() -> Response {
    b24_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "QUERY_LIMIT_EXCEEDED",
        "Too many requests",
    )
}
