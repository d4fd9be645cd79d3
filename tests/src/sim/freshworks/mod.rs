//! Stateful Freshsales (Freshworks CRM) simulator.
//!
//! One loopback server plays every account host. The relay's HTTP client names the host it
//! meant in `X-Forwarded-Host` (`acme.myfreshworks.com`, `oldco.freshsales.io`); each
//! registered host is one account with its own API key, records, lead sources, pipelines and
//! hourly request budget. Accounts under `myfreshworks.com` answer under `/crm/sales/api`,
//! accounts under `freshsales.io` (before the Freshworks bundle) under `/api`.
//!
//! Shapes follow Freshworks' CRM API reference: `Authorization: Token token=<key>`, errors as
//! `{"errors":{"code","message":[..]}}` (a refused key: 401 `{"login":"failed",...}`), ids as
//! integers above 2^32, deal amounts answered as strings.

mod api;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Map, Value};

use super::faults::FaultRoute;
use super::recorder::{self, Logged, RecordedRequest};
use super::shell::rate::RateWindow;
use super::shell::{Call, Shell};

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};

pub const HEALTH_PATH: &str = "/health";
/// `GET ?host=acme.myfreshworks.com`, **simulator only**: one account's records as JSON (no
/// auth, not recorded), for the demo.
pub const SIM_STATE_PATH: &str = "/_sim/state";
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";
/// The first id handed out; Freshsales ids are integers above 2^32.
const FIRST_ID: u64 = 31_000_000_001;

#[derive(Debug, Clone)]
pub struct FreshsalesSimConfig {
    /// `(requests, window)` per account (Freshsales: 1,000 an hour on the cheapest plans).
    pub rate_limit: (u32, Duration),
    /// `Retry-After` seconds on a 429 (`None`: the header is left out).
    pub retry_after_secs: Option<u64>,
}

impl Default for FreshsalesSimConfig {
    fn default() -> Self {
        FreshsalesSimConfig {
            rate_limit: (1_000, Duration::from_secs(60 * 60)),
            retry_after_secs: Some(60),
        }
    }
}

/// Fault-injection targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FreshsalesRoute {
    /// `/selector/...`.
    Selectors,
    /// Every `/contacts...` call, upsert included.
    Contacts,
    /// Only `POST /contacts/upsert`.
    Upsert,
    /// `GET /lookup`.
    Lookup,
    Deals,
    Notes,
    Any,
}

impl FaultRoute for FreshsalesRoute {
    const WILDCARD: FreshsalesRoute = FreshsalesRoute::Any;
}

impl FreshsalesRoute {
    /// Whether a fault for this route fires on a request for `rest` (the path after the API
    /// prefix, e.g. `/contacts/upsert`).
    fn applies_to(self, rest: &str) -> bool {
        match self {
            FreshsalesRoute::Any => true,
            FreshsalesRoute::Selectors => rest.starts_with("/selector/"),
            FreshsalesRoute::Contacts => rest.starts_with("/contacts"),
            FreshsalesRoute::Upsert => rest == "/contacts/upsert",
            FreshsalesRoute::Lookup => rest == "/lookup",
            FreshsalesRoute::Deals => rest.starts_with("/deals"),
            FreshsalesRoute::Notes => rest.starts_with("/notes"),
        }
    }
}

/// A recorded request with the account host it was meant for.
#[derive(Debug, Clone)]
pub struct FreshsalesRequest {
    pub request: RecordedRequest,
    /// `X-Forwarded-Host`, lower-cased, without a port (empty when absent).
    pub host: String,
}

impl Logged for FreshsalesRequest {
    fn method(&self) -> &str {
        &self.request.method
    }

    fn path(&self) -> &str {
        &self.request.path
    }
}

impl Deref for FreshsalesRequest {
    type Target = RecordedRequest;

    fn deref(&self) -> &RecordedRequest {
        &self.request
    }
}

/// A stored contact, deal or note.
#[derive(Debug, Clone, PartialEq)]
pub struct FsRecord {
    pub id: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsStage {
    pub id: String,
    pub name: String,
    /// `Open`, `Won` or `Lost`.
    pub forecast_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPipeline {
    pub id: String,
    pub name: String,
    pub is_default: bool,
    pub stages: Vec<FsStage>,
}

/// One account (one host).
struct Account {
    key: Option<String>,
    permitted: bool,
    lead_score_writable: bool,
    api_calls: usize,
    next_id: u64,
    lead_sources: Vec<(u64, String)>,
    pipelines: Vec<FsPipeline>,
    contacts: BTreeMap<u64, Map<String, Value>>,
    deals: BTreeMap<u64, Map<String, Value>>,
    notes: BTreeMap<u64, Map<String, Value>>,
}

impl Account {
    fn new(key: &str) -> Account {
        let mut account = Account {
            key: Some(key.to_string()),
            permitted: true,
            lead_score_writable: true,
            api_calls: 0,
            next_id: FIRST_ID,
            lead_sources: Vec::new(),
            pipelines: Vec::new(),
            contacts: BTreeMap::new(),
            deals: BTreeMap::new(),
            notes: BTreeMap::new(),
        };
        for name in [
            "Web",
            "Email",
            "Phone",
            "Chat",
            "Facebook",
            "Instagram",
            "WhatsApp",
            "Referral",
            "Other",
        ] {
            let id = account.id();
            account.lead_sources.push((id, name.to_string()));
        }
        let standard = [
            ("New", "Open"),
            ("Qualification", "Open"),
            ("Demo", "Open"),
            ("Negotiation", "Open"),
            ("Won", "Won"),
            ("Lost", "Lost"),
        ];
        let enterprise = [
            ("Discovery", "Open"),
            ("Proposal", "Open"),
            ("Signed", "Won"),
        ];
        for (name, is_default, stages) in [
            ("Default Pipeline", true, &standard[..]),
            ("Enterprise", false, &enterprise[..]),
        ] {
            let id = account.id().to_string();
            let stages = stages
                .iter()
                .map(|(stage, forecast)| FsStage {
                    id: account.id().to_string(),
                    name: stage.to_string(),
                    forecast_type: forecast.to_string(),
                })
                .collect();
            account.pipelines.push(FsPipeline {
                id,
                name: name.to_string(),
                is_default,
                stages,
            });
        }
        account
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

struct Shared {
    config: FreshsalesSimConfig,
    shell: Arc<Shell<FreshsalesRoute, FreshsalesRequest>>,
    /// Requests per account host (each host may get its own limit).
    rate: RateWindow<String>,
    accounts: Mutex<HashMap<String, Account>>,
}

impl Shared {
    fn accounts(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

crate::sim::shell::simulator! {
    /// A running Freshsales simulator; clones share the server and its state.
    ///
    /// Derefs to its shell for `base_url`, `inject`, `requests` (faulted and refused ones included, with
    /// each request's account host), `clear_requests` and the rest of the shell's
    /// methods.
    FreshsalesSim {
        product: "Freshsales",
        config: FreshsalesSimConfig,
        route: FreshsalesRoute,
        request: FreshsalesRequest,
    }
}

impl FreshsalesSim {
    pub async fn start_on(
        addr: SocketAddr,
        config: FreshsalesSimConfig,
    ) -> std::io::Result<FreshsalesSim> {
        let shell = Shell::new();
        let shared = Arc::new(Shared {
            shell: shell.clone(),
            rate: RateWindow::new(config.rate_limit),
            config,
            accounts: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .fallback(any(handle))
            .with_state(shared.clone());
        let shell = shell.serve(addr, router).await?;
        Ok(FreshsalesSim { shared, shell })
    }

    /// Registers an account at `host` whose API key is `key` (replacing any earlier key of
    /// that host, and keeping its records).
    pub fn add_account(&self, host: &str, key: &str) {
        let mut accounts = self.shared.accounts();
        let account = accounts
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| Account::new(key));
        account.key = Some(key.to_string());
        account.permitted = true;
    }

    fn with_account<T>(&self, host: &str, f: impl FnOnce(&mut Account) -> T) -> T {
        let mut accounts = self.shared.accounts();
        let account = accounts
            .get_mut(&host.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no simulated Freshsales account at {host}"));
        f(account)
    }

    /// Whether the account lets `lead_score` be written (400 naming it when not).
    pub fn set_lead_score_writable(&self, host: &str, writable: bool) {
        self.with_account(host, |a| a.lead_score_writable = writable);
    }

    /// The key stops working: 401 from now on.
    pub fn revoke_key(&self, host: &str) {
        self.with_account(host, |a| a.key = None);
    }

    /// The key's user may do nothing: 403 from now on.
    pub fn deny_permissions(&self, host: &str) {
        self.with_account(host, |a| a.permitted = false);
    }

    pub fn set_rate_limit(&self, host: &str, max: u32, window: Duration) {
        let host = host.to_ascii_lowercase();
        // Panics on an unknown account, as every per-account method.
        self.with_account(&host, |_| ());
        self.shared.rate.set_limit(&host, max, window);
    }

    /// Authenticated API calls the account answered (refusals and faults not counted).
    pub fn api_calls(&self, host: &str) -> usize {
        self.with_account(host, |a| a.api_calls)
    }

    pub fn contacts(&self, host: &str) -> Vec<FsRecord> {
        self.with_account(host, |a| records(&a.contacts))
    }

    pub fn deals(&self, host: &str) -> Vec<FsRecord> {
        self.with_account(host, |a| records(&a.deals))
    }

    pub fn notes(&self, host: &str) -> Vec<FsRecord> {
        self.with_account(host, |a| records(&a.notes))
    }

    /// Stores a contact as if made in Freshsales; returns its id.
    pub fn seed_contact(&self, host: &str, fields: Value) -> String {
        self.with_account(host, |a| {
            let id = a.id();
            let fields = fields.as_object().cloned().unwrap_or_default();
            a.contacts.insert(id, fields);
            id.to_string()
        })
    }

    /// Lead source name → id.
    pub fn lead_sources(&self, host: &str) -> HashMap<String, String> {
        self.with_account(host, |a| {
            a.lead_sources
                .iter()
                .map(|(id, name)| (name.clone(), id.to_string()))
                .collect()
        })
    }

    pub fn pipelines(&self, host: &str) -> Vec<FsPipeline> {
        self.with_account(host, |a| a.pipelines.clone())
    }
}

fn records(table: &BTreeMap<u64, Map<String, Value>>) -> Vec<FsRecord> {
    table
        .iter()
        .map(|(id, fields)| FsRecord {
            id: id.to_string(),
            fields: fields.clone(),
        })
        .collect()
}

fn forwarded_host(request: &RecordedRequest) -> String {
    request.forwarded_host().unwrap_or_default()
}

/// The API prefix an account host answers under.
fn api_prefix(host: &str) -> Option<&'static str> {
    if host.ends_with(".myfreshworks.com") {
        Some("/crm/sales/api")
    } else if host.ends_with(".freshsales.io") {
        Some("/api")
    } else {
        None
    }
}

/// `{"errors":{"code","message":[..]}}` with that status.
fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        code,
        axum::Json(json!({"errors": {"code": status, "message": [message]}})),
    )
        .into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path == HEALTH_PATH {
        return "ok".into_response();
    }
    if path == SIM_STATE_PATH {
        let host = request
            .uri()
            .query()
            .map(recorder::decode_form)
            .and_then(|q| q.get("host").cloned())
            .unwrap_or_default();
        return axum::Json(api::state(&shared, &host)).into_response();
    }
    let (recorded, request) = recorder::capture(request).await;
    let host = forwarded_host(&recorded);
    let call = Call::new(
        FreshsalesRequest {
            request: recorded.clone(),
            host: host.clone(),
        },
        &request,
    );
    // An unknown account or path is refused before any fault.
    let rest = match api_prefix(&host) {
        Some(_) if !shared.accounts().contains_key(&host) => Err("account not found"),
        Some(prefix) => path
            .strip_prefix(prefix)
            .map(str::to_string)
            .ok_or("not found"),
        None => Err("account not found"),
    };
    let applies = {
        let rest = rest.clone().unwrap_or_default();
        move |route: &FreshsalesRoute| route.applies_to(&rest)
    };
    let faultable = rest.is_ok();
    let run = {
        let shared = shared.clone();
        async move {
            match rest {
                Ok(rest) => serve(&shared, &host, &rest, &recorded),
                Err(message) => error(404, message),
            }
        }
    };
    shared
        .shell
        .intercept(
            call,
            faultable.then_some(&applies as _),
            run,
            || too_many_requests(&shared),
            |_, _| {},
        )
        .await
}

/// Authenticate, meter and answer one API call.
fn serve(shared: &Shared, host: &str, rest: &str, recorded: &RecordedRequest) -> Response {
    let mut accounts = shared.accounts();
    let Some(account) = accounts.get_mut(host) else {
        return error(404, "account not found");
    };
    let presented = recorded
        .header("authorization")
        .and_then(|h| h.strip_prefix("Token token="));
    if presented.is_none() || presented != account.key.as_deref() {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"login": "failed", "message": "Incorrect or expired API key"})),
        )
            .into_response();
    }
    if !account.permitted {
        return error(403, "You are not authorized to perform this action.");
    }
    if shared.rate.take(&host.to_owned()).is_err() {
        drop(accounts);
        return too_many_requests(shared);
    }
    account.api_calls += 1;
    api::route(account, &recorded.method, rest, recorded)
}

fn too_many_requests(shared: &Shared) -> Response {
    let mut response = error(429, "You have exceeded the limit of requests per hour");
    if let Some(seconds) = shared.config.retry_after_secs {
        response.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(&seconds.to_string()).expect("digits"),
        );
    }
    response
}
