//! Stateful Google simulator: OAuth 2.0 (consent screen, token, revoke) and
//! the Sheets API v4 subset the relay uses.
//!
//! One loopback server plays three hosts, named by `X-Forwarded-Host` (a
//! request without it goes to the host that serves its path: the relay's
//! configuration moves registry URLs here without naming a host):
//! - `accounts.google.com`: `GET /o/oauth2/v2/auth` (consent screen);
//! - `oauth2.googleapis.com`: `POST /token`, `POST /revoke`;
//! - `sheets.googleapis.com`: `/v4/spreadsheets/...`.
//!
//! Layout: [`oauth`] (grants, tokens, consent), [`a1`] (A1 notation),
//! [`sheets`] (spreadsheet store, cells, the values API, quota).

mod a1;
mod oauth;
mod sheets;

#[cfg(test)]
mod oauth_tests;
#[cfg(test)]
mod sheets_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::faults::FaultRoute;
use super::recorder::{self, decode_form, normalize_host, HostRequest};
use super::shell::rate::RateWindow;
use super::shell::{Call, Shell, SIM_PREFIX};

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};
pub use oauth::{oauth_policy, s256_challenge};
pub use sheets::Cell;

/// The consent screen's host (and the host of a request without `X-Forwarded-Host`).
pub const ACCOUNTS_HOST: &str = "accounts.google.com";
/// The token and revocation host.
pub const OAUTH2_HOST: &str = "oauth2.googleapis.com";
/// The Sheets API host.
pub const SHEETS_HOST: &str = "sheets.googleapis.com";
/// `GET` on the accounts host: the consent screen.
pub const AUTHORIZE_PATH: &str = "/o/oauth2/v2/auth";
/// `POST` on the OAuth host: code and refresh-token grants.
pub const TOKEN_PATH: &str = "/token";
/// `POST` on the OAuth host (form or query `token=`): revocation.
pub const REVOKE_PATH: &str = "/revoke";
/// Prefix of the Sheets API paths.
pub const SPREADSHEETS_PREFIX: &str = "/v4/spreadsheets/";
/// `GET`, any host: liveness probe (never faulted).
pub const HEALTH_PATH: &str = "/health";
/// `GET ?spreadsheet={id}`, **simulator only**: every sheet's rows as JSON.
pub const SIM_STATE_PATH: &str = "/_sim/state";
/// The header naming the host a locally routed request was meant for.
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";
/// The only scope the consent screen insists on.
pub const SPREADSHEETS_SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";
/// Lifetime of an access token (`expires_in`), seconds.
pub const ACCESS_TOKEN_SECONDS: u64 = 3599;
/// The user a consent without `sim_user=` signs in as.
pub const DEFAULT_USER: &str = "owner@example.com";

/// Simulator settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Sheets API requests one user may make in any 60 s window (then 429).
    pub per_user_per_minute: u32,
}

impl Default for GoogleSimConfig {
    fn default() -> Self {
        Self {
            client_id: "demo-google-client-id.apps.googleusercontent.com".to_owned(),
            client_secret: "demo-google-client-secret".to_owned(),
            per_user_per_minute: 60,
        }
    }
}

/// Fault-injection targets (each queued fault fires once, FIFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoogleRoute {
    /// Every request except `/health` and `/_sim/...`.
    Any,
    /// `POST oauth2.googleapis.com/token`.
    Token,
    /// `POST oauth2.googleapis.com/revoke`.
    Revoke,
    /// `GET /v4/spreadsheets/{id}`.
    SpreadsheetGet,
    /// `GET /v4/spreadsheets/{id}/values/{range}`.
    ValuesGet,
    /// `POST /v4/spreadsheets/{id}/values/{range}:append`.
    ValuesAppend,
    /// `PUT /v4/spreadsheets/{id}/values/{range}`.
    ValuesUpdate,
    /// `POST /v4/spreadsheets/{id}/values:batchUpdate`.
    ValuesBatchUpdate,
}

impl FaultRoute for GoogleRoute {
    const WILDCARD: GoogleRoute = GoogleRoute::Any;
}

/// One request as the simulator saw it: its host is `X-Forwarded-Host`, or
/// the host that serves its path; `user` is the user a Sheets API request was
/// authenticated as.
pub type GoogleRequest = HostRequest<GoogleDetails>;

/// What the Google simulator adds to a logged request.
#[derive(Debug, Clone, Default)]
pub struct GoogleDetails {
    /// The user a Sheets API request was authenticated as.
    pub user: Option<String>,
}

impl GoogleRequest {
    /// True for a request to the Sheets API host.
    pub fn is_api(&self) -> bool {
        self.host == SHEETS_HOST
    }
}

/// Tokens minted by [`GoogleSim::seed_connection`] without the browser flow.
#[derive(Debug, Clone)]
pub struct GoogleSeededTokens {
    pub access_token: String,
    pub refresh_token: String,
}

crate::sim::shell::simulator! {
    /// A running Google simulator. Clones share the same server and state.
    ///
    /// Derefs to its shell for `base_url`, `inject` (`Fault::Throttle` answers Google's 429
    /// `RESOURCE_EXHAUSTED`, no `Retry-After`), `requests`, `clear_requests` and
    /// the rest of the shell's methods.
    GoogleSim {
        product: "Google",
        config: GoogleSimConfig,
        route: GoogleRoute,
        request: GoogleRequest,
    }
}

impl GoogleSim {
    /// Start on `addr` (port 0 picks a free port).
    pub async fn start_on(addr: SocketAddr, config: GoogleSimConfig) -> std::io::Result<GoogleSim> {
        let shell = Shell::new();
        let shared = Arc::new(Shared {
            auth: Mutex::new(oauth::AuthState::new(&config)),
            shell: shell.clone(),
            quota: RateWindow::new((config.per_user_per_minute, Duration::from_secs(60))),
            config,
            store: Mutex::new(sheets::Store::default()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let shell = shell.serve(addr, router).await?;
        Ok(GoogleSim { shared, shell })
    }

    // -- requests -------------------------------------------------------------

    /// The Sheets API requests so far (any outcome, faulted ones included).
    pub fn api_requests(&self) -> Vec<GoogleRequest> {
        self.requests().into_iter().filter(|r| r.is_api()).collect()
    }

    /// How many Sheets API requests have been made.
    pub fn api_calls(&self) -> usize {
        self.shell.shell().log().count_where(GoogleRequest::is_api)
    }

    // -- OAuth --------------------------------------------------------------

    /// Mint an offline grant for `user` (spreadsheets scope) without the browser.
    pub fn seed_connection(&self, user: &str) -> GoogleSeededTokens {
        let (access_token, refresh_token) =
            self.shared
                .auth()
                .new_grant(user, SPREADSHEETS_SCOPE.to_owned(), true);
        GoogleSeededTokens {
            access_token,
            refresh_token: refresh_token.unwrap_or_default(),
        }
    }

    /// Kill every access token of `user` (refresh tokens stay valid).
    pub fn expire_sessions(&self, user: &str) {
        self.shared.auth().expire_sessions(user);
    }

    /// Successful calls to `/revoke`.
    pub fn revocations(&self) -> usize {
        self.shared.auth().revocations()
    }

    /// `grant_type=refresh_token` calls (any outcome, faulted ones excluded).
    pub fn refresh_calls(&self) -> usize {
        self.shared.auth().refresh_calls()
    }

    /// Live refresh tokens of `user`.
    pub fn live_refresh_tokens(&self, user: &str) -> usize {
        self.shared.auth().live_refresh_tokens(user)
    }

    /// Forget every user's quota usage.
    pub fn reset_quota(&self) {
        self.shared.quota.clear();
    }

    // -- data ---------------------------------------------------------------

    /// A new spreadsheet owned by `owner` with these tabs (`Sheet1` when
    /// empty); returns its 44-character id.
    pub fn add_spreadsheet(&self, owner: &str, title: &str, sheets: &[&str]) -> String {
        self.shared.store().add(owner, title, sheets)
    }

    /// Like [`GoogleSim::add_spreadsheet`], with an id chosen by the caller (the demo's).
    pub fn add_spreadsheet_with_id(&self, owner: &str, id: &str, title: &str, sheets: &[&str]) {
        self.shared.store().add_with_id(owner, id, title, sheets);
    }

    /// Give `email` edit access to spreadsheet `id`.
    ///
    /// # Panics
    /// On an unknown id.
    pub fn share(&self, id: &str, email: &str) {
        self.shared.store().get_or_panic(id).share(email);
    }

    /// Add a tab to spreadsheet `id`; returns its `sheetId`.
    pub fn add_sheet(&self, id: &str, title: &str) -> i64 {
        self.shared.store().get_or_panic(id).add_sheet(title)
    }

    /// Replace the content of one tab.
    pub fn seed_rows(&self, id: &str, sheet: &str, rows: Vec<Vec<Cell>>) {
        self.shared
            .store()
            .get_or_panic(id)
            .sheet_or_panic(sheet)
            .set_rows(rows);
    }

    /// The content of one tab up to its last non-empty row, each row without
    /// trailing empty cells (an empty tab gives an empty `Vec`).
    ///
    /// # Panics
    /// On an unknown spreadsheet or tab.
    pub fn rows(&self, id: &str, sheet: &str) -> Vec<Vec<Cell>> {
        self.shared
            .store()
            .get_or_panic(id)
            .sheet_or_panic(sheet)
            .trimmed_rows()
    }

    /// One cell by 0-based row and column (`row 0, col 0` is `A1`).
    pub fn cell(&self, id: &str, sheet: &str, row: usize, col: usize) -> Cell {
        self.shared
            .store()
            .get_or_panic(id)
            .sheet_or_panic(sheet)
            .cell(row, col)
    }

    /// One cell by A1 reference within a tab (`cell_a1(id, "Sheet1", "B2")`).
    ///
    /// # Panics
    /// When `a1` is not a single cell reference.
    pub fn cell_a1(&self, id: &str, sheet: &str, a1: &str) -> Cell {
        let (row, col) = a1::cell_ref(a1).unwrap_or_else(|| panic!("not a cell: {a1:?}"));
        self.cell(id, sheet, row, col)
    }

    /// What `GET /_sim/state?spreadsheet={id}` returns.
    pub fn state_json(&self, id: &str) -> Value {
        self.shared.store().get_or_panic(id).state_json()
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

/// Everything the handlers share. No mutex is held while taking another.
struct Shared {
    config: GoogleSimConfig,
    shell: Arc<Shell<GoogleRoute, GoogleRequest>>,
    auth: Mutex<oauth::AuthState>,
    store: Mutex<sheets::Store>,
    /// Sheets API requests per user per minute.
    quota: RateWindow<String>,
}

impl Shared {
    fn auth(&self) -> MutexGuard<'_, oauth::AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, sheets::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a handler gets: the request, already buffered.
pub(crate) struct Ctx {
    pub(crate) query: HashMap<String, String>,
    pub(crate) authorization: Option<String>,
    pub(crate) body: String,
}

impl Ctx {
    pub(crate) fn param(&self, name: &str) -> &str {
        self.query.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// The user a handler authenticated the request as (response extension).
#[derive(Debug, Clone)]
pub(crate) struct AuthedUser(pub(crate) String);

/// What a request is, from its host, method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Health,
    Authorize,
    Token,
    Revoke,
    SpreadsheetGet {
        id: String,
    },
    ValuesGet {
        id: String,
        range: String,
    },
    ValuesAppend {
        id: String,
        range: String,
    },
    ValuesUpdate {
        id: String,
        range: String,
    },
    ValuesBatchUpdate {
        id: String,
    },
    /// A Sheets path this simulator does not implement (JSON 404).
    SheetsNotFound,
    NotFound,
}

impl Endpoint {
    fn of(host: &str, method: &str, path: &str) -> Endpoint {
        if path == HEALTH_PATH {
            return Endpoint::Health;
        }
        match (host, method, path) {
            (ACCOUNTS_HOST, "GET", AUTHORIZE_PATH | "/o/oauth2/auth") => Endpoint::Authorize,
            (OAUTH2_HOST, "POST", TOKEN_PATH) => Endpoint::Token,
            (OAUTH2_HOST, "POST" | "GET", REVOKE_PATH) => Endpoint::Revoke,
            (SHEETS_HOST, _, _) => Endpoint::sheets(method, path),
            _ => Endpoint::NotFound,
        }
    }

    fn sheets(method: &str, path: &str) -> Endpoint {
        let Some(rest) = path.strip_prefix(SPREADSHEETS_PREFIX) else {
            return Endpoint::SheetsNotFound;
        };
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let id = a1::percent_decode(id);
        if id.is_empty() {
            return Endpoint::SheetsNotFound;
        }
        if tail.is_empty() {
            return match method {
                "GET" => Endpoint::SpreadsheetGet { id },
                _ => Endpoint::SheetsNotFound,
            };
        }
        if tail == "values:batchUpdate" {
            return match method {
                "POST" => Endpoint::ValuesBatchUpdate { id },
                _ => Endpoint::SheetsNotFound,
            };
        }
        let Some(range) = tail.strip_prefix("values/") else {
            return Endpoint::SheetsNotFound;
        };
        let range = a1::percent_decode(range);
        match (method, range.strip_suffix(":append")) {
            ("POST", Some(range)) => Endpoint::ValuesAppend {
                id,
                range: range.to_owned(),
            },
            (_, Some(_)) => Endpoint::SheetsNotFound,
            ("GET", None) => Endpoint::ValuesGet { id, range },
            ("PUT", None) => Endpoint::ValuesUpdate { id, range },
            _ => Endpoint::SheetsNotFound,
        }
    }

    /// The fault route it belongs to.
    fn route(&self) -> Option<GoogleRoute> {
        match self {
            Endpoint::Token => Some(GoogleRoute::Token),
            Endpoint::Revoke => Some(GoogleRoute::Revoke),
            Endpoint::SpreadsheetGet { .. } => Some(GoogleRoute::SpreadsheetGet),
            Endpoint::ValuesGet { .. } => Some(GoogleRoute::ValuesGet),
            Endpoint::ValuesAppend { .. } => Some(GoogleRoute::ValuesAppend),
            Endpoint::ValuesUpdate { .. } => Some(GoogleRoute::ValuesUpdate),
            Endpoint::ValuesBatchUpdate { .. } => Some(GoogleRoute::ValuesBatchUpdate),
            _ => None,
        }
    }
}

/// The host a request was meant for: `X-Forwarded-Host`, or (for the relay's registry URLs,
/// which the configuration moves here without naming a host, and for the browser) the host
/// that serves the path.
fn effective_host(forwarded: Option<&str>, path: &str) -> String {
    let Some(raw) = forwarded else {
        return match path {
            TOKEN_PATH | REVOKE_PATH => OAUTH2_HOST,
            p if p.starts_with(SPREADSHEETS_PREFIX) => SHEETS_HOST,
            _ => ACCOUNTS_HOST,
        }
        .to_owned();
    };
    normalize_host(raw)
}

// ---------------------------------------------------------------------------
// The one handler: record, fault, dispatch
// ---------------------------------------------------------------------------

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    if request.uri().path().starts_with(SIM_PREFIX) {
        let query = request.uri().query().unwrap_or_default().to_owned();
        return sheets::sim_state(&shared, request.uri().path(), &decode_form(&query));
    }
    let (recorded, request) = recorder::capture(request).await;
    let host = effective_host(recorded.header(FORWARDED_HOST_HEADER), &recorded.path);
    let endpoint = Endpoint::of(&host, &recorded.method, &recorded.path);
    tracing::debug!(method = %recorded.method, path = %recorded.path, %host, "google sim request");
    let entry = GoogleRequest::new(&recorded, host, GoogleDetails::default());
    let ctx = Ctx {
        query: recorded.query_params(),
        authorization: recorded.header("authorization").map(str::to_owned),
        body: recorded.body,
    };
    let route = endpoint.route();
    let applies = move |r: &GoogleRoute| Some(*r) == route;
    let faultable = endpoint != Endpoint::Health;
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
            quota_exceeded,
            |entry, response| {
                entry.status = Some(response.status().as_u16());
                entry.user = response
                    .extensions_mut()
                    .remove::<AuthedUser>()
                    .map(|u| u.0);
            },
        )
        .await
}

fn dispatch(shared: &Shared, endpoint: &Endpoint, ctx: &Ctx) -> Response {
    match endpoint {
        Endpoint::Health => "ok".into_response(),
        Endpoint::Authorize => oauth::authorize(shared, ctx),
        Endpoint::Token => oauth::token(shared, ctx),
        Endpoint::Revoke => oauth::revoke(shared, ctx),
        Endpoint::SpreadsheetGet { .. }
        | Endpoint::ValuesGet { .. }
        | Endpoint::ValuesAppend { .. }
        | Endpoint::ValuesUpdate { .. }
        | Endpoint::ValuesBatchUpdate { .. } => sheets::handle(shared, endpoint, ctx),
        Endpoint::SheetsNotFound => {
            google_error(404, "NOT_FOUND", "Requested entity was not found.")
        }
        Endpoint::NotFound => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the submodules
// ---------------------------------------------------------------------------

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    super::shell::json_response(status, body, "application/json; charset=UTF-8")
}

/// Google's API error envelope `{"error":{"code","message","status"}}`.
pub(crate) fn google_error(code: u16, status: &str, message: &str) -> Response {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

/// The per-user quota answer (also what `Fault::Throttle` renders).
pub(crate) fn quota_exceeded() -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"error": {
            "code": 429,
            "message": "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' of service 'sheets.googleapis.com' for consumer 'project_number:000000000000'.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "quota_limit": "RequestsPerMinutePerUser",
                    "service": "sheets.googleapis.com",
                    "quota_metric": "sheets.googleapis.com/requests",
                },
            }],
        }}),
    )
}
