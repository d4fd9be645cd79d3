//! Stateful Zoho CRM simulator.
//!
//! One loopback server plays every Zoho data centre: the accounts servers
//! (`accounts.zoho.com`, `accounts.zoho.com.au`, ...) and the API domains
//! (`www.zohoapis.com`, `www.zohoapis.eu`, ...). The relay's HTTP client, in
//! local mode, sends every Zoho request to this origin and names the host it
//! meant in `X-Forwarded-Host`; requests without that header (the browser
//! following the authorize URL, a client without multi-DC support) are taken
//! to be for the US hosts, which answer both OAuth and API paths.
//!
//! Every code, token and org belongs to one data centre; presenting it on
//! another DC's host fails as Zoho does (`invalid_code` at the token endpoint,
//! `INVALID_TOKEN` on the API).
//!
//! Layout:
//! - [`oauth`] — consent screen, token and revoke endpoints, Zoho's token caps;
//! - [`schema`] — modules, fields, picklists, layouts and pipelines
//!   (`/crm/v8/settings/...`) and record validation;
//! - [`crm`] — per-org record store, the `/crm/v8/...` record handlers
//!   (upsert, update, read, search, notes, convert), API credits, and the
//!   simulator-only `GET /_sim/state`.

mod crm;
mod oauth;
mod schema;

#[cfg(test)]
mod crm_tests;
#[cfg(test)]
mod oauth_tests;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::faults::FaultRoute;
use super::recorder::{normalize_host, Logged, RecordedRequest};
use super::shell::rate::RateWindow;
use super::shell::{intercepted, Call, Shell, SIM_PREFIX};
use super::Rotation;

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};
pub use crm::{ZohoParent, ZohoRecord};
pub use oauth::{oauth_policy, s256_challenge};
pub use schema::{ZohoField, ZohoPipeline, ZohoSchema, ZohoStage};

/// `GET`, liveness probe (never faulted, any host).
pub const HEALTH_PATH: &str = "/health";
/// `GET`, the consent screen (accounts hosts).
pub const AUTHORIZE_PATH: &str = "/oauth/v2/auth";
/// `POST`, token endpoint (accounts hosts).
pub const TOKEN_PATH: &str = "/oauth/v2/token";
/// `POST ?token=`, refresh-token revocation (accounts hosts).
pub const REVOKE_PATH: &str = "/oauth/v2/token/revoke";
/// Prefix of the CRM API (API hosts); `/crm/v7/` is served by the same handlers.
pub const API_PREFIX: &str = "/crm/v8";
/// `GET`, **simulator only**: everything of one data centre as JSON
/// (`?dc=au`, default the configured `default_dc`). No authentication, not
/// recorded, never faulted, never metered.
pub const SIM_STATE_PATH: &str = "/_sim/state";
/// The header naming the host a locally routed request was meant for.
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";

/// The user every consent signs in as unless the browser adds `sim_user=`.
pub const DEFAULT_USER: &str = "alice@example.com";

/// Zoho's body when too many access tokens are requested for a refresh token
/// (HTTP 200).
pub const ACCESS_DENIED_DESCRIPTION: &str =
    "You have made too many requests continuously. Please try again after some time.";

/// One Zoho data centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZohoDc {
    /// `location` code Zoho sends back on consent: `us`, `eu`, `in`, `au`, `jp`, `ca`, `cn`, `sa`.
    pub code: &'static str,
    pub accounts_host: &'static str,
    pub api_host: &'static str,
}

impl ZohoDc {
    /// `https://accounts...` as the consent redirect's `accounts-server`.
    pub fn accounts_server(&self) -> String {
        format!("https://{}", self.accounts_host)
    }

    /// `https://www.zohoapis...` as the token response's `api_domain`.
    pub fn api_domain(&self) -> String {
        format!("https://{}", self.api_host)
    }

    fn country_code(&self) -> &'static str {
        match self.code {
            "eu" => "DE",
            "in" => "IN",
            "au" => "AU",
            "jp" => "JP",
            "ca" => "CA",
            "cn" => "CN",
            "sa" => "SA",
            _ => "US",
        }
    }
}

/// Every data centre the simulator plays, US first.
pub const ZOHO_DCS: [ZohoDc; 8] = [
    ZohoDc {
        code: "us",
        accounts_host: "accounts.zoho.com",
        api_host: "www.zohoapis.com",
    },
    ZohoDc {
        code: "eu",
        accounts_host: "accounts.zoho.eu",
        api_host: "www.zohoapis.eu",
    },
    ZohoDc {
        code: "in",
        accounts_host: "accounts.zoho.in",
        api_host: "www.zohoapis.in",
    },
    ZohoDc {
        code: "au",
        accounts_host: "accounts.zoho.com.au",
        api_host: "www.zohoapis.com.au",
    },
    ZohoDc {
        code: "jp",
        accounts_host: "accounts.zoho.jp",
        api_host: "www.zohoapis.jp",
    },
    ZohoDc {
        code: "ca",
        accounts_host: "accounts.zohocloud.ca",
        api_host: "www.zohoapis.ca",
    },
    ZohoDc {
        code: "cn",
        accounts_host: "accounts.zoho.com.cn",
        api_host: "www.zohoapis.com.cn",
    },
    ZohoDc {
        code: "sa",
        accounts_host: "accounts.zoho.sa",
        api_host: "www.zohoapis.sa",
    },
];

/// The data centre with this location code (case-insensitive).
pub fn dc(code: &str) -> Option<&'static ZohoDc> {
    ZOHO_DCS.iter().find(|d| d.code.eq_ignore_ascii_case(code))
}

fn dc_or_panic(code: &str) -> &'static ZohoDc {
    dc(code).unwrap_or_else(|| panic!("unknown Zoho data centre {code:?}"))
}

/// Which of a data centre's hosts a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Accounts,
    Api,
    /// No `X-Forwarded-Host`: the US hosts, which answer both.
    Unnamed,
}

/// The host a request was meant for, resolved from `X-Forwarded-Host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) dc: &'static ZohoDc,
    pub(crate) kind: HostKind,
}

impl Target {
    fn accounts(&self) -> bool {
        matches!(self.kind, HostKind::Accounts | HostKind::Unnamed)
    }

    fn api(&self) -> bool {
        matches!(self.kind, HostKind::Api | HostKind::Unnamed)
    }
}

/// `Some(Ok)` for a known Zoho host, `Some(Err(host))` for any other named
/// host, `None` when no host was named.
fn resolve_host(forwarded: Option<&str>) -> Option<Result<Target, String>> {
    let host = normalize_host(forwarded?);
    let found = ZOHO_DCS.iter().find_map(|dc| {
        if dc.accounts_host == host {
            Some(Target {
                dc,
                kind: HostKind::Accounts,
            })
        } else if dc.api_host == host {
            Some(Target {
                dc,
                kind: HostKind::Api,
            })
        } else {
            None
        }
    });
    Some(found.ok_or(host))
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct ZohoSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued access tokens (Zoho: 3600).
    pub access_token_ttl_secs: u64,
    /// How long an authorization code stays redeemable (Zoho: 3 minutes).
    pub code_ttl: Duration,
    /// Whether a refresh hands out a new refresh token. Zoho's documented
    /// behaviour is [`Rotation::Reusable`] (the refresh answer carries no
    /// `refresh_token`); `Rotating` plays the product plan's claim (each
    /// refresh answers a new refresh token and the old one is refused); with
    /// `RotatingReuseRevokesGrant`, presenting a rotated-out token also
    /// revokes the grant: its successors and their access tokens.
    pub rotation: Rotation,
    /// Where a consent without `sim_dc=` puts the account (`"us"`).
    pub default_dc: String,
    /// Who a consent without `sim_user=` signs in as.
    pub default_user: String,
    /// `(max, window)`: access tokens one refresh token may mint through
    /// refresh calls (Zoho: 10 per 10 minutes; beyond it the token endpoint
    /// answers `"Access Denied"` until the window has room again).
    pub token_mint_limit: (u32, Duration),
    /// Live access tokens per refresh token (Zoho: 15); minting one more
    /// invalidates the oldest.
    pub max_live_access_tokens: usize,
    /// Refresh tokens per user per client (Zoho: 20); one more consent
    /// deletes the oldest with its access tokens.
    pub max_refresh_tokens: usize,
    /// `(credits, window)` of API credits per org; most calls cost 1, a lead
    /// conversion 5. Beyond it: 429 `TOO_MANY_REQUESTS`.
    pub api_credits: (u32, Duration),
    /// The org's `company_name` (every org).
    pub company_name: String,
    /// Fields, picklists, layouts and pipelines of every org. Tests may
    /// extend [`ZohoSchema::standard`] here or later with
    /// [`ZohoSim::add_picklist_value`] and friends.
    pub schema: ZohoSchema,
}

impl Default for ZohoSimConfig {
    fn default() -> Self {
        Self {
            client_id: "demo-zoho-client-id".to_owned(),
            client_secret: "demo-zoho-client-secret".to_owned(),
            access_token_ttl_secs: 3600,
            code_ttl: Duration::from_secs(180),
            rotation: Rotation::Reusable,
            default_dc: "us".to_owned(),
            default_user: DEFAULT_USER.to_owned(),
            token_mint_limit: (10, Duration::from_secs(600)),
            max_live_access_tokens: 15,
            max_refresh_tokens: 20,
            api_credits: (1000, Duration::from_secs(60)),
            company_name: "Zylker Traders".to_owned(),
            schema: ZohoSchema::standard(),
        }
    }
}

/// Fault-injection targets. A queued fault fires on the first request it
/// applies to (see [`ZohoRoute::applies_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZohoRoute {
    /// `GET /oauth/v2/auth`.
    Authorize,
    /// `POST /oauth/v2/token`.
    Token,
    /// `POST /oauth/v2/token/revoke`.
    Revoke,
    /// `GET /crm/v8/org`.
    Org,
    /// Every `/crm/v8/Leads...` call (upsert, update, read, search, insert)
    /// except conversion and notes under a lead.
    Leads,
    /// Only `POST /crm/v8/Leads/upsert` (also matched by [`ZohoRoute::Leads`]).
    Upsert,
    /// Every `/crm/v8/Contacts...` call except notes under a contact.
    Contacts,
    /// Every `/crm/v8/Deals...` call except notes under a deal.
    Deals,
    /// `/crm/v8/Notes...` and `/crm/v8/{Module}/{id}/Notes`.
    Notes,
    /// `POST /crm/v8/Leads/{id}/actions/convert`.
    Convert,
    /// `/crm/v8/settings/...` (fields, layouts, pipelines).
    Settings,
    /// Every request except `/health` and `/_sim/...`.
    Any,
}

impl FaultRoute for ZohoRoute {
    const WILDCARD: ZohoRoute = ZohoRoute::Any;
}

/// `/crm/v7|v8/{rest}` → the segments of `rest`.
fn api_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path
        .strip_prefix("/crm/v8/")
        .or_else(|| path.strip_prefix("/crm/v7/"))?;
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

impl ZohoRoute {
    /// Whether a fault queued for this route fires on a request to `path`.
    pub fn applies_to(self, path: &str) -> bool {
        if path == HEALTH_PATH || path.starts_with(SIM_PREFIX) {
            return false;
        }
        if self == ZohoRoute::Any {
            return true;
        }
        match path {
            AUTHORIZE_PATH => return self == ZohoRoute::Authorize,
            TOKEN_PATH => return self == ZohoRoute::Token,
            REVOKE_PATH => return self == ZohoRoute::Revoke,
            _ => {}
        }
        let Some(segments) = api_segments(path) else {
            return false;
        };
        let module = segments.first().map(|m| m.to_ascii_lowercase());
        let module = module.as_deref().unwrap_or_default();
        let is_convert = segments.len() == 4
            && segments[2] == "actions"
            && segments[3] == "convert"
            && module == "leads";
        let is_notes = module == "notes" || (segments.len() == 3 && segments[2] == "Notes");
        match self {
            ZohoRoute::Org => module == "org",
            ZohoRoute::Settings => module == "settings",
            ZohoRoute::Convert => is_convert,
            ZohoRoute::Notes => is_notes,
            ZohoRoute::Upsert => {
                module == "leads" && segments.len() == 2 && segments[1] == "upsert"
            }
            ZohoRoute::Leads => module == "leads" && !is_convert && !is_notes,
            ZohoRoute::Contacts => module == "contacts" && !is_notes,
            ZohoRoute::Deals => module == "deals" && !is_notes,
            ZohoRoute::Authorize | ZohoRoute::Token | ZohoRoute::Revoke | ZohoRoute::Any => false,
        }
    }
}

/// A recorded request with the host it was meant for.
#[derive(Debug, Clone)]
pub struct ZohoRequest {
    pub request: RecordedRequest,
    /// The effective host: `X-Forwarded-Host` (lower-cased, port dropped), or
    /// `accounts.zoho.com` / `www.zohoapis.com` for an unnamed host (by path).
    pub host: String,
    /// The data centre of that host (`None` for a host that is not Zoho's).
    pub dc: Option<&'static str>,
}

impl Deref for ZohoRequest {
    type Target = RecordedRequest;

    fn deref(&self) -> &RecordedRequest {
        &self.request
    }
}

impl Logged for ZohoRequest {
    fn method(&self) -> &str {
        &self.request.method
    }

    fn path(&self) -> &str {
        &self.request.path
    }
}

impl ZohoRequest {
    fn from_recorded(request: RecordedRequest) -> Self {
        let (host, dc) = match resolve_host(request.header(FORWARDED_HOST_HEADER)) {
            Some(Ok(target)) => {
                let host = match target.kind {
                    HostKind::Accounts => target.dc.accounts_host,
                    _ => target.dc.api_host,
                };
                (host.to_owned(), Some(target.dc.code))
            }
            Some(Err(other)) => (other, None),
            None => {
                let us = &ZOHO_DCS[0];
                let host = if request.path.starts_with("/oauth/") {
                    us.accounts_host
                } else {
                    us.api_host
                };
                (host.to_owned(), Some(us.code))
            }
        };
        ZohoRequest { request, host, dc }
    }
}

/// Tokens minted by [`ZohoSim::seed_connection`] without the browser flow.
#[derive(Debug, Clone)]
pub struct ZohoSeededTokens {
    pub refresh_token: String,
    pub access_token: String,
    pub expires_in: u64,
    /// `https://www.zohoapis...` of the DC.
    pub api_domain: String,
    /// `https://accounts...` of the DC.
    pub accounts_server: String,
    pub dc: &'static str,
    pub user: String,
}

crate::sim::shell::simulator! {
    /// A running Zoho simulator. Clones share the same server and state; the
    /// server stops when the last clone is dropped or `shutdown` is
    /// called.
    ///
    /// Derefs to its shell for `base_url`, `inject`, `requests` (with each request's effective host and
    /// DC), `count` (any host), `clear_requests` and the rest of the shell's
    /// methods.
    ZohoSim {
        product: "Zoho",
        config: ZohoSimConfig,
        route: ZohoRoute,
        request: ZohoRequest,
    }
}

impl ZohoSim {
    /// Start on `addr` (port 0 picks a free port).
    ///
    /// # Panics
    /// If `default_dc` is not a DC code.
    pub async fn start_on(addr: SocketAddr, config: ZohoSimConfig) -> std::io::Result<ZohoSim> {
        dc_or_panic(&config.default_dc);
        let shell = Shell::new();
        let shared = Arc::new(Shared {
            schema: Mutex::new(config.schema.clone()),
            shell: shell.clone(),
            credits: RateWindow::new(config.api_credits),
            auth: Mutex::new(oauth::AuthState::new(&config)),
            config,
            crm: Mutex::new(crm::CrmStore::default()),
            refusals: Mutex::new(Vec::new()),
        });
        let shell = shell.serve(addr, router(shared.clone())).await?;
        Ok(ZohoSim { shared, shell })
    }

    // -- faults and requests ------------------------------------------------

    /// The next `POST /Leads/upsert` answers HTTP `status` with
    /// `{"data":[item]}` instead of being handled (build `item` with
    /// [`record_error`]; a 200/207 with an error item is what Zoho sends
    /// when some records fail).
    pub fn fail_next_upsert(&self, status: u16, item: Value) {
        self.inject(
            ZohoRoute::Upsert,
            Fault::Status(status, data_envelope(&[item])),
        );
    }

    /// From now on, every record of `module` (`Leads`, `Notes`, ...) written by an upsert,
    /// insert or notes create whose text field `field` contains `contains` is refused on its
    /// own with the per-record error `code` (naming `field`), as Zoho refuses one record of a
    /// multi-record call; the call's other records are handled as usual.
    ///
    /// # Panics
    /// On an unknown module.
    pub fn refuse_records(&self, module: &str, field: &str, contains: &str, code: &str) {
        let module = schema::Module::parse(module)
            .unwrap_or_else(|| panic!("unknown Zoho module {module:?}"));
        self.shared.refusals().push(crm::Refusal {
            module,
            field: field.to_owned(),
            contains: contains.to_owned(),
            code: code.to_owned(),
        });
    }

    /// Requests with this method and path that reached data centre `dc`.
    pub fn count_on(&self, dc: &str, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.dc == Some(dc) && r.method.eq_ignore_ascii_case(method) && r.path == path)
            .count()
    }

    // OAuth inspection and shortcuts: in `oauth.rs`.

    // -- CRM inspection and seeding -----------------------------------------

    /// Leads (converted ones included) of every org in `dc`, by id.
    pub fn leads(&self, dc_code: &str) -> Vec<ZohoRecord> {
        self.records(dc_code, "Leads")
    }

    pub fn contacts(&self, dc_code: &str) -> Vec<ZohoRecord> {
        self.records(dc_code, "Contacts")
    }

    pub fn deals(&self, dc_code: &str) -> Vec<ZohoRecord> {
        self.records(dc_code, "Deals")
    }

    pub fn accounts(&self, dc_code: &str) -> Vec<ZohoRecord> {
        self.records(dc_code, "Accounts")
    }

    /// Notes of every org in `dc`, by id; `parent` names the record each is on.
    pub fn notes(&self, dc_code: &str) -> Vec<ZohoRecord> {
        self.records(dc_code, "Notes")
    }

    /// Records of a module (`Leads`, `Contacts`, `Deals`, `Accounts`, `Notes`)
    /// in every org of `dc`, by id.
    ///
    /// # Panics
    /// On an unknown DC or module.
    pub fn records(&self, dc_code: &str, module: &str) -> Vec<ZohoRecord> {
        let dc = dc_or_panic(dc_code);
        let module = schema::Module::parse(module)
            .unwrap_or_else(|| panic!("unknown Zoho module {module:?}"));
        self.shared.crm_store().snapshot(dc.code, module)
    }

    /// One record by id in any org of `dc`.
    pub fn record(&self, dc_code: &str, module: &str, id: &str) -> Option<ZohoRecord> {
        self.records(dc_code, module)
            .into_iter()
            .find(|r| r.id == id)
    }

    /// Create an unconverted lead in `user`'s org of `dc` (default user when
    /// `None`) as if it had always been there: no request, no credits. `fields`
    /// is a JSON object of api name → value; it is validated like an insert.
    ///
    /// # Panics
    /// On an unknown DC or invalid fields.
    pub fn seed_lead(&self, dc_code: &str, user: Option<&str>, fields: Value) -> String {
        let dc = dc_or_panic(dc_code);
        let user = user.unwrap_or(&self.shared.config.default_user);
        crm::seed_lead(&self.shared, dc.code, user, &fields)
            .unwrap_or_else(|problem| panic!("seed_lead: {problem}"))
    }

    /// Delete a record as if someone had deleted it in Zoho.
    pub fn delete_record(&self, dc_code: &str, module: &str, id: &str) -> bool {
        let dc = dc_or_panic(dc_code);
        let module = schema::Module::parse(module)
            .unwrap_or_else(|| panic!("unknown Zoho module {module:?}"));
        self.shared.crm_store().delete(dc.code, module, id)
    }

    /// API credits spent in `user`'s org of `dc` so far (all time).
    pub fn credits_used(&self, dc_code: &str, user: &str) -> u64 {
        self.shared
            .crm_store()
            .org(dc_code, user)
            .map_or(0, |org| org.credits_used)
    }

    /// The org id of `user` in `dc` (created on first use).
    pub fn org_id(&self, dc_code: &str, user: &str) -> String {
        let dc = dc_or_panic(dc_code);
        self.shared.crm_store().org_mut(dc.code, user).id.clone()
    }

    // -- schema changes -----------------------------------------------------

    /// Add a picklist value (actual = display value) to a field of `module`.
    ///
    /// # Panics
    /// On an unknown module or field, or a field that is not a picklist.
    pub fn add_picklist_value(&self, module: &str, field: &str, value: &str) {
        self.shared
            .schema()
            .add_picklist_value(module, field, value)
            .unwrap_or_else(|problem| panic!("add_picklist_value: {problem}"));
    }

    /// Add (or replace, by api name) a field of `module`.
    ///
    /// # Panics
    /// On an unknown module.
    pub fn add_field(&self, module: &str, field: ZohoField) {
        self.shared
            .schema()
            .add_field(module, field)
            .unwrap_or_else(|problem| panic!("add_field: {problem}"));
    }

    /// Add (or replace, by actual value) a deal pipeline.
    pub fn add_pipeline(&self, pipeline: ZohoPipeline) {
        self.shared.schema().add_pipeline(pipeline);
    }

    /// What `GET /_sim/state?dc=` returns.
    pub fn state_json(&self, dc_code: &str) -> Value {
        crm::state_json(&self.shared, dc_or_panic(dc_code))
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

/// Everything the handlers share. Each mutex guards one concern and none is
/// held while taking another.
struct Shared {
    config: ZohoSimConfig,
    shell: Arc<Shell<ZohoRoute, ZohoRequest>>,
    /// API credits per `(dc, user)` org.
    credits: RateWindow<(String, String)>,
    auth: Mutex<oauth::AuthState>,
    crm: Mutex<crm::CrmStore>,
    schema: Mutex<ZohoSchema>,
    /// Records every write refuses one by one (see [`ZohoSim::refuse_records`]).
    refusals: Mutex<Vec<crm::Refusal>>,
}

impl Shared {
    fn auth(&self) -> MutexGuard<'_, oauth::AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn crm_store(&self) -> MutexGuard<'_, crm::CrmStore> {
        self.crm.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schema(&self) -> MutexGuard<'_, ZohoSchema> {
        self.schema.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusals(&self) -> MutexGuard<'_, Vec<crm::Refusal>> {
        self.refusals.lock().unwrap_or_else(|e| e.into_inner())
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
        .route(REVOKE_PATH, post(oauth::revoke))
        .route("/crm/{version}/org", get(crm::org))
        .route("/crm/{version}/settings/layouts", get(schema::layouts))
        .route("/crm/{version}/settings/pipeline", get(schema::pipeline))
        .route("/crm/{version}/settings/fields", get(schema::fields))
        .route(
            "/crm/{version}/{module}",
            post(crm::insert).put(crm::update_many),
        )
        .route("/crm/{version}/{module}/upsert", post(crm::upsert))
        .route("/crm/{version}/{module}/search", get(crm::search))
        .route(
            "/crm/{version}/{module}/{id}",
            get(crm::read).put(crm::update).delete(crm::delete),
        )
        .route(
            "/crm/{version}/{module}/{id}/Notes",
            get(crm::list_notes).post(crm::add_note),
        )
        .route(
            "/crm/{version}/{module}/{id}/actions/convert",
            post(crm::convert),
        )
        .route(SIM_STATE_PATH, get(crm::sim_state))
        .fallback(not_found);
    intercepted(router, shared, intercept)
}

/// Records every request, resolves the effective host (OAuth paths answer
/// only on accounts hosts, API paths only on API hosts; the resolved
/// [`Target`] is handed to the handlers as a request extension), and fires the
/// first queued fault that applies to a request on the right host.
async fn intercept(
    shared: Arc<Shared>,
    recorded: RecordedRequest,
    mut request: Request,
    next: Next,
) -> Response {
    let path = recorded.path.clone();
    let target = resolve_host(recorded.header(FORWARDED_HOST_HEADER));
    tracing::debug!(method = %recorded.method, %path, ?target, "zoho sim request");
    let call = Call::new(ZohoRequest::from_recorded(recorded), &request);
    let is_oauth = path.starts_with("/oauth/");
    let is_api = path.starts_with("/crm/");
    let target = match target {
        None => Some(Target {
            dc: &ZOHO_DCS[0],
            kind: HostKind::Unnamed,
        }),
        Some(Ok(target)) => Some(target),
        Some(Err(_)) => None,
    }
    .filter(|t| (!is_oauth || t.accounts()) && (!is_api || t.api()));
    // Health answers on any host; a wrong host is refused before any fault.
    let faultable = path != HEALTH_PATH && target.is_some();
    if let Some(target) = target {
        request.extensions_mut().insert(target);
    }
    let handle = async move {
        if target.is_none() && path != HEALTH_PATH {
            return invalid_url_pattern();
        }
        next.run(request).await
    };
    let path = call.entry.path.clone();
    let applies = |route: &ZohoRoute| route.applies_to(&path);
    let throttle = || {
        if is_oauth {
            oauth::access_denied()
        } else {
            too_many_requests()
        }
    };
    shared
        .shell
        .intercept(
            call,
            faultable.then_some(&applies as _),
            handle,
            throttle,
            |_, _| {},
        )
        .await
}

async fn not_found() -> Response {
    invalid_url_pattern()
}

// ---------------------------------------------------------------------------
// Helpers shared by the submodules
// ---------------------------------------------------------------------------

fn invalid_url_pattern() -> Response {
    zoho_error(
        StatusCode::NOT_FOUND,
        "INVALID_URL_PATTERN",
        json!({}),
        "Please check if the URL trying to access is a correct one",
    )
}

fn too_many_requests() -> Response {
    zoho_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        json!({}),
        "The API credit limit of the organization has been exceeded. Please try again later.",
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    super::shell::json_response(status, body, "application/json;charset=UTF-8")
}

/// A top-level Zoho error body.
fn zoho_error(status: StatusCode, code: &str, details: Value, message: &str) -> Response {
    json_response(status, &record_error(code, details, message))
}

/// One Zoho error item: `{"code","details","message","status":"error"}`, as
/// a per-record result in `{"data":[...]}` or as a whole error body.
pub fn record_error(code: &str, details: Value, message: &str) -> Value {
    json!({
        "code": code,
        "details": details,
        "message": message,
        "status": "error",
    })
}

/// `{"data":[items...]}` as text, for [`Fault::Status`] bodies.
pub fn data_envelope(items: &[Value]) -> String {
    json!({ "data": items }).to_string()
}
