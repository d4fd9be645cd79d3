//! Stateful HubSpot simulator.
//!
//! One loopback server plays both `app.hubspot.com` (the consent screen at
//! `/oauth/authorize`) and `api.hubapi.com` (OAuth token endpoints and the CRM
//! API). It keeps real state: single-use PKCE-bound authorization codes,
//! non-rotating refresh tokens, expiring access tokens, revocation, per-hub
//! rate limits, and per-hub CRM records (contacts, deals, notes and the
//! associations between them).
//!
//! Layout:
//! - [`oauth`] — consent screen, token and revoke endpoints, bearer checks;
//! - [`limits`] — the ten-secondly limit (with `X-HubSpot-RateLimit-*`
//!   headers) and the separate, header-less search limit;
//! - [`pipelines`] — deal pipelines;
//! - [`schema`] — property definitions, value validation, `/crm/properties/2026-09`;
//! - [`crm`] — the record store and the `/crm/objects/2026-09/...` handlers (batch
//!   create/upsert/read with per-input errors, associations), the portal's validation rules
//!   (enforced from 2026-09), plus
//!   the simulator-only `GET /_sim/state`.
//!
//! Every CRM endpoint authenticates with [`Shared::authenticate`] and is
//! metered through [`Shared::metered`] (or [`Shared::search_metered`] for the
//! search endpoints); each has a [`Route`] so tests can inject faults into it.

mod crm;
mod limits;
mod oauth;
mod pipelines;
mod rules;
mod schema;

#[cfg(test)]
mod crm_tests;
#[cfg(test)]
mod oauth_tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::faults::FaultRoute;
use super::recorder::RecordedRequest;
use super::shell::rate::RateWindow;
use super::shell::{intercepted, Call, Shell, SIM_PREFIX};

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};
pub use crm::SimObject;
pub use oauth::{oauth_policy, s256_challenge};
pub use pipelines::deal_pipelines;

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
/// HubSpot's date-based API version the simulated CRM endpoints answer on; the numbered
/// versions (`/crm/v3`, `/crm/v4`) answer 404, so nothing can still call them unnoticed.
pub const API_VERSION: &str = "2026-09";
/// `GET`, deal pipelines.
pub const PIPELINES_PATH: &str = "/crm/pipelines/2026-09/deals";
/// Prefix of the object endpoints: `{prefix}{contacts|deals|notes}[/...]` (associations too:
/// `{prefix}{type}/{id}/associations/...`).
pub const OBJECTS_PREFIX: &str = "/crm/objects/2026-09/";
/// Prefix of the properties endpoints: `{prefix}{object}[/{name}]`.
pub const PROPERTIES_PREFIX: &str = "/crm/properties/2026-09/";
/// `GET`, **simulator only** (HubSpot has no such endpoint): every record and
/// association of a hub as JSON, for the demo, which runs the simulator as a
/// separate process. No authentication, never rate limited, never faulted,
/// not recorded, not counted. `?hub_id=N` picks a hub (default: the
/// configured one).
pub const SIM_STATE_PATH: &str = "/_sim/state";

/// How long an authorization code stays redeemable.
pub const AUTH_CODE_TTL: Duration = Duration::from_secs(10 * 60);

/// The user id reported for every consent.
pub const SIM_USER_ID: u64 = 71_234_567;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct HubSpotSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued access tokens (HubSpot: 1800).
    pub access_token_ttl_secs: u64,
    /// `(max requests, window)` per hub for every authenticated CRM call
    /// except search (HubSpot's `TEN_SECONDLY_ROLLING` policy). Default
    /// 100 per 10 s, as the lead-push issue asks; HubSpot documents 110 for
    /// public OAuth apps on free/starter accounts, so the simulator is the
    /// stricter of the two.
    pub rate_limit: (u32, Duration),
    /// `(max requests, window)` per hub for the CRM search endpoints, which
    /// HubSpot meters separately (about 5 per second per account) and whose
    /// responses carry no `X-HubSpot-RateLimit-*` headers. The v3 specs mark
    /// the search operations `x-hubspot-rate-limit-exemptions:
    /// ["ten-secondly"]`, so searches do not count against `rate_limit`.
    pub search_rate_limit: (u32, Duration),
    /// The hub (portal) every consent installs into.
    pub hub_id: u64,
    /// Whether a refresh rotates the refresh token. HubSpot's do not ([`Rotation::Reusable`]);
    /// the other modes let the refresh machinery be tested against rotating providers (Zoho's
    /// plan, Bitrix24, Salesforce).
    pub rotation: Rotation,
    /// How long a new record stays invisible to search. HubSpot's search index lags writes by
    /// seconds (third-party reports; no official figure), while reads by id or by a unique
    /// `idProperty` see a record at once. Zero (the default) indexes at once.
    pub search_index_lag: Duration,
}

pub use crate::sim::oauth::Rotation;

impl Default for HubSpotSimConfig {
    fn default() -> Self {
        Self {
            client_id: "demo-client-id".to_owned(),
            client_secret: "demo-client-secret".to_owned(),
            access_token_ttl_secs: 1800,
            rate_limit: (100, Duration::from_secs(10)),
            search_rate_limit: (5, Duration::from_secs(1)),
            hub_id: 24_681_357,
            rotation: Rotation::Reusable,
            search_index_lag: Duration::ZERO,
        }
    }
}

/// Fault-injection targets. One request can belong to several routes (a
/// contact search is both [`Route::Contacts`] and [`Route::Search`]); a
/// queued fault fires on the first request it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /oauth/2026-03/token` (and `/oauth/v3/token`).
    Token,
    /// `POST /oauth/2026-03/token/revoke`.
    Revoke,
    /// `GET /crm/pipelines/2026-09/deals`.
    Pipelines,
    /// `GET /oauth/authorize`.
    Authorize,
    /// Every `/crm/objects/2026-09/contacts...` call except associations:
    /// batch upsert, batch create, batch read, create, update, read and search.
    Contacts,
    /// Every `/crm/objects/2026-09/deals...` call except associations (search included).
    Deals,
    /// Every `/crm/objects/2026-09/notes...` call except associations (search included).
    Notes,
    /// Only the search endpoints (`POST /crm/objects/2026-09/{type}/search`).
    Search,
    /// `/crm/properties/2026-09/...`.
    Properties,
    /// `/crm/objects/2026-09/{type}/{id}/associations/...` (default association, list).
    Associations,
    /// Every request except `/health` and the simulator's own `/_sim/`.
    Any,
}

impl FaultRoute for Route {
    const WILDCARD: Route = Route::Any;
}

impl Route {
    /// The most specific named route a request path belongs to (`None` for
    /// `/health`, `/_sim/...` and unknown paths). The method is not
    /// considered. Searches classify as [`Route::Search`]; see
    /// [`Route::applies_to`] for the full membership.
    pub fn classify(path: &str) -> Option<Route> {
        match path {
            AUTHORIZE_PATH => return Some(Route::Authorize),
            TOKEN_PATH | TOKEN_PATH_V3 => return Some(Route::Token),
            REVOKE_PATH => return Some(Route::Revoke),
            PIPELINES_PATH => return Some(Route::Pipelines),
            _ => {}
        }
        if path.starts_with(PROPERTIES_PREFIX) {
            return Some(Route::Properties);
        }
        if is_association_path(path) {
            return Some(Route::Associations);
        }
        let (object, rest) = object_path(path)?;
        if rest == "/search" {
            return Some(Route::Search);
        }
        Some(match object {
            schema::ObjectType::Contacts => Route::Contacts,
            schema::ObjectType::Deals => Route::Deals,
            schema::ObjectType::Notes => Route::Notes,
        })
    }

    /// Whether a fault queued for this route fires on a request to `path`.
    pub fn applies_to(self, path: &str) -> bool {
        if path == HEALTH_PATH || path.starts_with(SIM_PREFIX) {
            return false;
        }
        let object = object_path(path);
        match self {
            Route::Any => true,
            Route::Search => object.is_some_and(|(_, rest)| rest == "/search"),
            Route::Contacts => object.is_some_and(|(o, _)| o == schema::ObjectType::Contacts),
            Route::Deals => object.is_some_and(|(o, _)| o == schema::ObjectType::Deals),
            Route::Notes => object.is_some_and(|(o, _)| o == schema::ObjectType::Notes),
            named => Route::classify(path) == Some(named),
        }
    }
}

/// `/crm/objects/2026-09/{type}/{id}/associations/...`.
fn is_association_path(path: &str) -> bool {
    path.strip_prefix(OBJECTS_PREFIX)
        .is_some_and(|tail| tail.split('/').nth(2) == Some("associations"))
}

/// `/crm/objects/2026-09/{type}{rest}` with a known type → `(type, rest)`; association paths
/// are their own route.
fn object_path(path: &str) -> Option<(schema::ObjectType, &str)> {
    if is_association_path(path) {
        return None;
    }
    let tail = path.strip_prefix(OBJECTS_PREFIX)?;
    let (segment, rest) = match tail.find('/') {
        Some(at) => tail.split_at(at),
        None => (tail, ""),
    };
    Some((schema::ObjectType::parse(segment)?, rest))
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

crate::sim::shell::simulator! {
    /// A running HubSpot simulator. Clones share the same server and state; the
    /// server stops when the last clone is dropped or `shutdown` is
    /// called.
    ///
    /// Derefs to its shell for `base_url`, `inject`, `requests`, `count`, `clear_requests` and the rest
    /// of the shell's methods (`clear_requests` keeps the CRM call counter; see
    /// [`HubSpotSim::reset_crm_call_count`]).
    HubSpotSim {
        product: "HubSpot",
        config: HubSpotSimConfig,
        route: Route,
        request: RecordedRequest,
    }
}

impl HubSpotSim {
    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(
        addr: SocketAddr,
        config: HubSpotSimConfig,
    ) -> std::io::Result<HubSpotSim> {
        let shell = Shell::new();
        let shared = Arc::new(Shared {
            shell: shell.clone(),
            rate: RateWindow::new(config.rate_limit),
            search_rate: RateWindow::new(config.search_rate_limit),
            auth: Mutex::new(oauth::AuthState::new(&config)),
            config,
            crm: Mutex::new(crm::CrmStore::default()),
            schema: Mutex::new(schema::Schema::standard()),
            rules: Mutex::new(rules::Rules::default()),
            crm_calls: AtomicUsize::new(0),
        });
        let shell = shell.serve(addr, router(shared.clone())).await?;
        Ok(HubSpotSim { shared, shell })
    }

    // OAuth controls and inspection (deny_next_consent, seed_connection, ...) live in oauth.rs.

    // -- CRM inspection (the configured hub) --------------------------------

    /// Contacts of the configured hub, by ascending id.
    pub fn contacts(&self) -> Vec<SimObject> {
        self.objects_in_hub(self.shared.config.hub_id, "contacts")
    }

    /// Deals of the configured hub, by ascending id.
    pub fn deals(&self) -> Vec<SimObject> {
        self.objects_in_hub(self.shared.config.hub_id, "deals")
    }

    /// Notes of the configured hub, by ascending id.
    pub fn notes(&self) -> Vec<SimObject> {
        self.objects_in_hub(self.shared.config.hub_id, "notes")
    }

    /// Records of `object` (`contacts`, `deals`, `notes`; singular names and
    /// object type ids such as `0-1` work too) in any hub, by ascending id.
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn objects_in_hub(&self, hub_id: u64, object: &str) -> Vec<SimObject> {
        let object = schema::ObjectType::parse(object)
            .unwrap_or_else(|| panic!("unknown HubSpot object type {object:?}"));
        self.shared.crm_store().objects(hub_id, object)
    }

    /// Associations of one record of the configured hub, in both directions
    /// as HubSpot reports them: `(to object type, to id, association type
    /// id)`. A deal created with an inline deal→contact (3) association
    /// lists `("contacts", id, 3)`; that contact lists `("deals", id, 4)`.
    /// Object types come back plural (`contacts`, `deals`, `notes`).
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn associations(&self, from_type: &str, from_id: &str) -> Vec<(String, String, u32)> {
        let object = schema::ObjectType::parse(from_type)
            .unwrap_or_else(|| panic!("unknown HubSpot object type {from_type:?}"));
        self.shared
            .crm_store()
            .associations_of(self.shared.config.hub_id, object, from_id)
            .into_iter()
            .map(|(to, id, type_id)| (to.plural().to_owned(), id, type_id))
            .collect()
    }

    /// What is wrong with the records of the relay's lead `id`; `None` when it is one contact
    /// (by `email`), one deal (by its lead id property or by `deal_name`, so that a duplicate
    /// made without the lead id counts too, and carrying its lead id) and one note (with the
    /// relay's marker), linked together.
    pub fn lead_problem(&self, id: &str, email: &str, deal_name: &str) -> Option<String> {
        let contacts: Vec<_> = self
            .contacts()
            .into_iter()
            .filter(|c| c.properties.get("email").map(String::as_str) == Some(email))
            .collect();
        let deals: Vec<_> = self
            .deals()
            .into_iter()
            .filter(|d| {
                d.properties.get("leadrelay_lead_id").map(String::as_str) == Some(id)
                    || d.properties.get("dealname").map(String::as_str) == Some(deal_name)
            })
            .collect();
        let marker = format!("LeadRelay lead {id}<");
        let notes: Vec<_> = self
            .notes()
            .into_iter()
            .filter(|n| {
                n.properties
                    .get("hs_note_body")
                    .is_some_and(|b| b.contains(&marker))
            })
            .collect();
        if (contacts.len(), deals.len(), notes.len()) != (1, 1, 1) {
            return Some(format!(
                "{id}: {} contacts, {} deals, {} notes (want one each)",
                contacts.len(),
                deals.len(),
                notes.len()
            ));
        }
        if deals[0]
            .properties
            .get("leadrelay_lead_id")
            .map(String::as_str)
            != Some(id)
        {
            return Some(format!("{id}: the deal does not carry its lead id"));
        }
        let deal_links = self.associations("deals", &deals[0].id);
        let note_links = self.associations("notes", &notes[0].id);
        let linked = deal_links.contains(&("contacts".into(), contacts[0].id.clone(), 3))
            && note_links.contains(&("contacts".into(), contacts[0].id.clone(), 202))
            && note_links.contains(&("deals".into(), deals[0].id.clone(), 214));
        (!linked).then(|| format!("{id}: not linked: deal {deal_links:?}, note {note_links:?}"))
    }

    /// Create a contact in the configured hub as if it had always existed in
    /// HubSpot (no request, not counted, not rate limited) and return its id.
    /// `properties` is a JSON object of property name → value.
    ///
    /// # Panics
    /// If the properties are invalid (unknown property, bad option value…)
    /// or the email belongs to an existing contact.
    pub fn seed_contact(&self, properties: Value) -> String {
        crm::seed_contact(&self.shared, self.shared.config.hub_id, &properties)
            .unwrap_or_else(|problem| panic!("seed_contact: {problem}"))
    }

    /// Authenticated CRM calls received so far (every hub): requests to a
    /// `/crm/` path that carried a live access token, whatever their outcome
    /// (success, validation error, 429, injected fault). OAuth and
    /// unauthenticated requests are not counted.
    pub fn crm_call_count(&self) -> usize {
        self.shared.crm_calls.load(Ordering::SeqCst)
    }

    /// Start counting CRM calls from zero again.
    pub fn reset_crm_call_count(&self) {
        self.shared.crm_calls.store(0, Ordering::SeqCst);
    }

    /// Define a custom single-line text property on `object` (every hub),
    /// e.g. a lead-score property chosen in settings. Idempotent.
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn add_property(&self, object: &str, name: &str) {
        self.add_custom_property(object, name, &[]);
    }

    /// Define a custom enumeration (dropdown) property on `object` (every
    /// hub) whose values must be one of `options`. Replaces an earlier custom
    /// definition of the same name.
    ///
    /// # Panics
    /// On an unknown object type, or if `name` is a built-in property.
    pub fn add_enum_property(&self, object: &str, name: &str, options: &[&str]) {
        self.add_custom_property(object, name, options);
    }

    fn add_custom_property(&self, object: &str, name: &str, options: &[&str]) {
        let object = schema::ObjectType::parse(object)
            .unwrap_or_else(|| panic!("unknown HubSpot object type {object:?}"));
        self.shared
            .schema()
            .add_custom(object, name, options)
            .unwrap_or_else(|problem| panic!("add_property: {problem}"));
    }

    /// A portal rule (every hub): `property` of `object` required on the Create Record form,
    /// so from 2026-09 an API create without it is refused (`MISSING_REQUIRED_PROPERTY`).
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn require_on_create(&self, object: &str, property: &str) {
        let object = schema::ObjectType::parse(object)
            .unwrap_or_else(|| panic!("unknown HubSpot object type {object:?}"));
        self.shared
            .rules()
            .add(rules::WriteRule::on_create(object, property));
    }

    /// A portal rule (every hub): `property` of `object` required whenever `other` is
    /// `value` (HubSpot's example: `closedate` when `dealstage` is `closedwon`), on creates and
    /// updates (`MISSING_CONDITIONAL_REQUIRED_PROPERTY`).
    ///
    /// # Panics
    /// On an unknown object type.
    pub fn require_when(&self, object: &str, property: &str, other: &str, value: &str) {
        let object = schema::ObjectType::parse(object)
            .unwrap_or_else(|| panic!("unknown HubSpot object type {object:?}"));
        self.shared.rules().add(rules::WriteRule::conditional(
            object, property, other, value,
        ));
    }

    /// What `GET /_sim/state` returns for the configured hub.
    pub fn state_json(&self) -> Value {
        crm::state_json(&self.shared, self.shared.config.hub_id)
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

/// Everything the handlers share. Each mutex guards one concern and none is
/// held while taking another, so they cannot deadlock.
struct Shared {
    config: HubSpotSimConfig,
    shell: Arc<Shell<Route, RecordedRequest>>,
    /// The ten-secondly window of every CRM call except search, per hub.
    rate: RateWindow<u64>,
    /// The search endpoints' own window, per hub.
    search_rate: RateWindow<u64>,
    auth: Mutex<oauth::AuthState>,
    crm: Mutex<crm::CrmStore>,
    schema: Mutex<schema::Schema>,
    rules: Mutex<rules::Rules>,
    crm_calls: AtomicUsize,
}

impl Shared {
    fn auth(&self) -> MutexGuard<'_, oauth::AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn crm_store(&self) -> MutexGuard<'_, crm::CrmStore> {
        self.crm.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schema(&self) -> MutexGuard<'_, schema::Schema> {
        self.schema.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rules(&self) -> MutexGuard<'_, rules::Rules> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ---------------------------------------------------------------------------
// Router and interceptor
// ---------------------------------------------------------------------------

fn router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(AUTHORIZE_PATH, get(oauth::authorize))
        .route(TOKEN_PATH, post(oauth::token))
        .route(TOKEN_PATH_V3, post(oauth::token))
        .route(REVOKE_PATH, post(oauth::revoke))
        .route(PIPELINES_PATH, get(pipelines::pipelines))
        .route(
            "/crm/objects/2026-09/{object}",
            crm::object_post(crm::create),
        )
        .route(
            "/crm/objects/2026-09/{object}/search",
            post(crm::search_objects),
        )
        .route(
            "/crm/objects/2026-09/{object}/batch/upsert",
            crm::object_post(crm::upsert),
        )
        .route(
            "/crm/objects/2026-09/{object}/batch/create",
            crm::object_post(crm::create_many),
        )
        .route(
            "/crm/objects/2026-09/{object}/batch/read",
            crm::object_post(crm::read_many),
        )
        .route(
            "/crm/objects/2026-09/{object}/{id}",
            get(crm::read_object).patch(crm::update_object),
        )
        .route(
            "/crm/objects/2026-09/{from}/{from_id}/associations/default/{to}/{to_id}",
            axum::routing::put(crm::associate_default),
        )
        .route(
            "/crm/objects/2026-09/{from}/{from_id}/associations/{to}",
            get(crm::list_associations),
        )
        .route(
            "/crm/properties/2026-09/{object}",
            get(schema::list_properties).post(schema::create_property),
        )
        .route(
            "/crm/properties/2026-09/{object}/{name}",
            get(schema::read_property),
        )
        .route(SIM_STATE_PATH, get(crm::sim_state))
        .fallback(not_found);
    intercepted(router, shared, intercept)
}

/// Records every request, counts authenticated CRM calls, then fires the
/// first queued fault that applies to the request before normal handling.
async fn intercept(
    shared: Arc<Shared>,
    recorded: RecordedRequest,
    request: Request,
    next: Next,
) -> Response {
    let path = recorded.path.clone();
    let bearer = recorded
        .header("authorization")
        .and_then(oauth::bearer_token)
        .map(str::to_owned);
    let token_hub = shared.check_access_token(bearer.as_deref()).ok();
    if path.starts_with("/crm/") && token_hub.is_some() {
        shared.crm_calls.fetch_add(1, Ordering::SeqCst);
    }
    tracing::debug!(method = %recorded.method, path = %recorded.path, "hubspot sim request");
    let call = Call::new(recorded, &request);
    let applies = |route: &Route| route.applies_to(&path);
    let throttle = || {
        let hub_id = token_hub.unwrap_or(shared.config.hub_id);
        if Route::Search.applies_to(&path) {
            shared.search_throttle_response(hub_id)
        } else {
            shared.throttle_response(hub_id)
        }
    };
    let faultable = path != HEALTH_PATH;
    shared
        .shell
        .intercept(
            call,
            faultable.then_some(&applies as _),
            next.run(request),
            throttle,
            |_, _| {},
        )
        .await
}

async fn not_found() -> Response {
    hubspot_error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Resource not found (HubSpot simulator: unknown path)".to_owned(),
    )
}

// ---------------------------------------------------------------------------
// Helpers shared by the submodules
// ---------------------------------------------------------------------------

fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// HubSpot's timestamp format: RFC 3339, UTC, milliseconds, `Z`.
fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    super::shell::json_response(status, body, "application/json;charset=utf-8")
}

/// HubSpot API error body (`status`, `message`, `correlationId`, `category`).
fn hubspot_error(status: StatusCode, category: &str, message: String) -> Response {
    hubspot_error_with(status, category, message, BTreeMap::new())
}

/// [`hubspot_error`] with extra top-level fields (`errors`, `context`,
/// `subCategory`...).
fn hubspot_error_with(
    status: StatusCode,
    category: &str,
    message: String,
    extra: BTreeMap<&str, Value>,
) -> Response {
    let mut body = json!({
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    });
    if let Some(map) = body.as_object_mut() {
        for (key, value) in extra {
            map.insert(key.to_owned(), value);
        }
    }
    json_response(status, &body)
}
