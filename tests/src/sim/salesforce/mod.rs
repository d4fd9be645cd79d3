//! Stateful Salesforce simulator.
//!
//! One loopback server plays every Salesforce host of the configured orgs:
//! the login hosts (`login.salesforce.com`, `test.salesforce.com`, My Domain
//! hosts) and each org's instance host. The relay's HTTP client sends every
//! Salesforce request to this origin and names the host it meant in
//! `X-Forwarded-Host`; a request without that header is taken to be for
//! `login.salesforce.com` (the browser following the authorize URL).
//!
//! Layout:
//! - [`oauth`] — consent screen, token (code + PKCE, refresh with rotation)
//!   and revoke endpoints, session checks;
//! - [`schema`] — describe metadata ([`SfField`]), record types, write validation;
//! - [`soql`] — the strict SOQL subset;
//! - [`rest`] — record store, `/services/data/vNN.N/...` (describe, query,
//!   sobjects, composite, collections, ui-api picklist values), `/_sim/state`;
//! - [`soap`] — `convertLead` on `/services/Soap/u/NN.N`.

mod composite;
mod oauth;
mod rest;
mod schema;
mod soap;
mod soql;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod oauth_tests;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::faults::FaultRoute;
use super::recorder::{normalize_host, HostRequest, RecordedRequest};
use super::shell::{intercepted, Call, Shell, SIM_PREFIX};
use super::Rotation;

/// The fault kinds, for `inject`.
pub use super::faults::{Fault, Lost};
pub use composite::{MAX_COLLECTION_RECORDS, MAX_COMPOSITE_SUBREQUESTS};
pub use oauth::{oauth_policy, s256_challenge};
pub use schema::{SfField, SfPicklistValue, SfRecordType};

/// `GET`, liveness probe (never faulted, not counted).
pub const HEALTH_PATH: &str = "/health";
/// `GET`, the consent screen (login hosts).
pub const AUTHORIZE_PATH: &str = "/services/oauth2/authorize";
/// `POST`, token endpoint (login hosts).
pub const TOKEN_PATH: &str = "/services/oauth2/token";
/// `POST` (form `token=`), revocation.
pub const REVOKE_PATH: &str = "/services/oauth2/revoke";
/// Prefix of the REST API (instance host): `/services/data/vNN.N/...`.
pub const REST_PREFIX: &str = "/services/data/";
/// Prefix of the SOAP partner API (instance host): `/services/Soap/u/NN.N`.
pub const SOAP_PREFIX: &str = "/services/Soap/u/";
/// `GET ?org=acme`, **simulator only**: every record of one org as JSON.
pub const SIM_STATE_PATH: &str = "/_sim/state";
/// The header naming the host a locally routed request was meant for.
pub const FORWARDED_HOST_HEADER: &str = "x-forwarded-host";
/// The usage header every counted API answer carries.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";
/// The header that lets a create bypass a duplicate rule (`allowSave=true`).
pub const DUPLICATE_RULE_HEADER: &str = "sforce-duplicate-rule-header";
/// The login host a request without `X-Forwarded-Host` is taken to be for.
pub const DEFAULT_LOGIN_HOST: &str = "login.salesforce.com";
/// The master record type every object has.
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// One Salesforce org the simulator plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfOrgConfig {
    /// The simulator's name for the org (`sim_org=` on the consent screen).
    pub key: String,
    /// 18-character org id (`00D...`).
    pub org_id: String,
    /// 18-character id of the org's only user (`005...`).
    pub user_id: String,
    /// Hosts where this org's users log in and where its codes and refresh
    /// tokens are redeemed.
    pub login_hosts: Vec<String>,
    /// The instance host the API answers on (until [`SalesforceSim::migrate_instance`]).
    pub instance_host: String,
    pub sandbox: bool,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SalesforceSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Refresh-token rotation (Salesforce's Refresh Token Rotation when
    /// [`Rotation::RotatingReuseRevokesGrant`], the default).
    pub rotation: Rotation,
    /// Lifetime of an access token (session timeout), seconds.
    pub session_seconds: u64,
    /// Daily API request allocation of every org.
    pub api_daily_limit: u64,
    /// The org a consent without `sim_org=` signs into.
    pub default_org: String,
    pub orgs: Vec<SfOrgConfig>,
}

impl Default for SalesforceSimConfig {
    fn default() -> Self {
        Self {
            client_id: "demo-salesforce-client-id".to_owned(),
            client_secret: "demo-salesforce-client-secret".to_owned(),
            rotation: Rotation::RotatingReuseRevokesGrant,
            session_seconds: 7200,
            api_daily_limit: 15_000,
            default_org: "acme".to_owned(),
            orgs: vec![
                SfOrgConfig {
                    key: "acme".to_owned(),
                    org_id: "00D5g000001ACMEAAA".to_owned(),
                    user_id: "0055g000001ACMEAAA".to_owned(),
                    login_hosts: vec![
                        "login.salesforce.com".to_owned(),
                        "acme.my.salesforce.com".to_owned(),
                    ],
                    instance_host: "acme.my.salesforce.com".to_owned(),
                    sandbox: false,
                },
                SfOrgConfig {
                    key: "acme-uat".to_owned(),
                    org_id: "00D5g0000002UATAAA".to_owned(),
                    user_id: "0055g0000002UATAAA".to_owned(),
                    login_hosts: vec![
                        "test.salesforce.com".to_owned(),
                        "acme--uat.sandbox.my.salesforce.com".to_owned(),
                    ],
                    instance_host: "acme--uat.sandbox.my.salesforce.com".to_owned(),
                    sandbox: true,
                },
            ],
        }
    }
}

/// Fault-injection targets. A queued fault fires on the first request it
/// applies to (see [`SalesforceRoute::applies_to`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SalesforceRoute {
    /// Every request except `/health` and `/_sim/...`.
    Any,
    /// `POST /services/oauth2/token`.
    Token,
    /// `POST /services/oauth2/revoke`.
    Revoke,
    /// `GET .../sobjects/{Object}/describe`.
    Describe,
    /// `GET .../query`.
    Query,
    /// `POST .../composite`.
    Composite,
    /// `POST|PATCH .../composite/sobjects`.
    Collections,
    /// `.../sobjects/{Object}` and `.../sobjects/{Object}/{id}` (create, update, read).
    SObject,
    /// `POST /services/Soap/u/NN.N`.
    Soap,
    /// `GET .../ui-api/...`.
    UiApi,
}

impl FaultRoute for SalesforceRoute {
    const WILDCARD: SalesforceRoute = SalesforceRoute::Any;
}

impl SalesforceRoute {
    /// The named route of a request path (`None` for paths no route names).
    pub fn of_path(path: &str) -> Option<SalesforceRoute> {
        match path {
            TOKEN_PATH => return Some(SalesforceRoute::Token),
            REVOKE_PATH => return Some(SalesforceRoute::Revoke),
            _ => {}
        }
        if path.starts_with(SOAP_PREFIX) {
            return Some(SalesforceRoute::Soap);
        }
        let rest = path.strip_prefix(REST_PREFIX)?;
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segments.get(1..).unwrap_or_default() {
            ["sobjects", _, "describe"] => Some(SalesforceRoute::Describe),
            ["sobjects", _] | ["sobjects", _, _] => Some(SalesforceRoute::SObject),
            ["query"] => Some(SalesforceRoute::Query),
            ["composite"] => Some(SalesforceRoute::Composite),
            ["composite", "sobjects", ..] => Some(SalesforceRoute::Collections),
            ["ui-api", ..] => Some(SalesforceRoute::UiApi),
            _ => None,
        }
    }

    /// Whether a fault queued for this route fires on a request to `path`.
    pub fn applies_to(self, path: &str) -> bool {
        if path == HEALTH_PATH || path.starts_with(SIM_PREFIX) {
            return false;
        }
        self == SalesforceRoute::Any || SalesforceRoute::of_path(path) == Some(self)
    }
}

/// One request as the simulator saw it: its host is `X-Forwarded-Host`, or
/// `login.salesforce.com` when the header is absent; the details say what the
/// simulator answered and for whom.
pub type SfRequest = HostRequest<SfDetails>;

/// What the Salesforce simulator adds to a logged request.
#[derive(Debug, Clone, Default)]
pub struct SfDetails {
    /// The `Sforce-Limit-Info` header answered, if any.
    pub limit_info: Option<String>,
    /// True for a composite subrequest (recorded after its composite).
    pub sub: bool,
    /// The composite subrequest's `referenceId`.
    pub reference_id: Option<String>,
    /// The org the request was authenticated for (API calls only).
    pub org: Option<String>,
}

impl SfRequest {
    /// The `q` of a query call, decoded.
    pub fn soql(&self) -> Option<String> {
        self.query_params().remove("q")
    }

    /// The API version of a REST or SOAP path (`"62.0"`).
    pub fn api_version(&self) -> Option<String> {
        rest::version_of(&self.path)
    }
}

/// Tokens minted by [`SalesforceSim::seed_connection`] without the browser flow.
#[derive(Debug, Clone)]
pub struct SfSeededTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// `https://<instance host>`.
    pub instance_url: String,
    /// `https://<first login host>/id/<orgId>/<userId>`.
    pub id: String,
}

crate::sim::shell::simulator! {
    /// A running Salesforce simulator. Clones share the same server and state.
    ///
    /// Derefs to its shell for `base_url`, `inject` (`Fault::Throttle` answers 403
    /// `REQUEST_LIMIT_EXCEEDED`, a SOAP fault on the SOAP route), `requests`
    /// (composite subrequests follow their composite with `sub: true`),
    /// `clear_requests` and the rest of the shell's methods.
    SalesforceSim {
        product: "Salesforce",
        config: SalesforceSimConfig,
        route: SalesforceRoute,
        request: SfRequest,
    }
}

impl SalesforceSim {
    /// Start on `addr` (port 0 picks a free port).
    ///
    /// # Panics
    /// If `default_org` names no org, or an org id/user id is not 18 characters.
    pub async fn start_on(
        addr: SocketAddr,
        config: SalesforceSimConfig,
    ) -> std::io::Result<SalesforceSim> {
        assert!(
            config.orgs.iter().any(|o| o.key == config.default_org),
            "default_org {:?} names no configured org",
            config.default_org
        );
        for org in &config.orgs {
            assert_eq!(org.org_id.len(), 18, "org id of {}", org.key);
            assert_eq!(org.user_id.len(), 18, "user id of {}", org.key);
        }
        let store = rest::Store::new(&config.orgs);
        let shell = Shell::new();
        let shared = Arc::new(Shared {
            auth: Mutex::new(oauth::AuthState::new(&config)),
            config,
            shell: shell.clone(),
            store: Mutex::new(store),
        });
        let shell = shell.serve(addr, router(shared.clone())).await?;
        Ok(SalesforceSim { shared, shell })
    }

    // -- OAuth --------------------------------------------------------------

    /// Mint a grant (refresh + access token) for `org` as if its user had
    /// consented at its first login host.
    pub fn seed_connection(&self, org: &str) -> SfSeededTokens {
        let (org_cfg, instance_host) = self.org_and_host(org);
        let login_host = org_cfg.login_hosts.first().cloned().unwrap_or_default();
        let mut auth = self.shared.auth();
        let (access_token, refresh_token) = auth.new_grant(
            &self.shared.config,
            org,
            vec!["api".into(), "refresh_token".into()],
        );
        SfSeededTokens {
            access_token,
            refresh_token,
            instance_url: format!("https://{instance_host}"),
            id: format!(
                "https://{login_host}/id/{}/{}",
                org_cfg.org_id, org_cfg.user_id
            ),
        }
    }

    /// Kill every access token (session) of `org` now.
    pub fn expire_sessions(&self, org: &str) {
        self.org_and_host(org);
        self.shared.auth().expire_sessions(org);
    }

    /// Move `org` to another instance host: API calls on the old host answer
    /// 401 `INVALID_SESSION_ID`; token answers name the new host.
    pub fn migrate_instance(&self, org: &str, new_host: &str) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        store.orgs[idx].instance_host = new_host.trim().to_ascii_lowercase();
    }

    /// The org's current instance host.
    pub fn instance_host(&self, org: &str) -> String {
        self.org_and_host(org).1
    }

    /// Live refresh tokens of `org` (one per live grant).
    pub fn live_refresh_tokens(&self, org: &str) -> usize {
        self.shared.auth().live_refresh_tokens(org)
    }

    /// Access tokens minted for `org` (code exchanges, refreshes, seeds).
    pub fn access_tokens_minted(&self, org: &str) -> usize {
        self.shared.auth().counters(org).access_minted
    }

    /// `grant_type=refresh_token` calls that presented a token of `org`.
    pub fn refresh_calls(&self, org: &str) -> usize {
        self.shared.auth().counters(org).refresh_calls
    }

    /// True once presenting a rotated-out refresh token burned a grant of `org`.
    pub fn grant_revoked_on_reuse(&self, org: &str) -> bool {
        self.shared.auth().counters(org).revoked_on_reuse
    }

    /// Successful calls to the revoke endpoint for `org`'s tokens.
    pub fn revocations(&self, org: &str) -> usize {
        self.shared.auth().counters(org).revocations
    }

    // -- data ---------------------------------------------------------------

    /// Every record of `object` in `org`, in creation order (all fields set,
    /// with `attributes`).
    ///
    /// # Panics
    /// On an unknown org or object.
    pub fn records(&self, org: &str, object: &str) -> Vec<Value> {
        let store = self.shared.store();
        let idx = store.index_or_panic(org);
        store.orgs[idx].records_json(object)
    }

    /// One record by id (`None` when absent).
    pub fn record(&self, org: &str, object: &str, id: &str) -> Option<Value> {
        self.records(org, object)
            .into_iter()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
    }

    /// Create a record as if it had always been there (no request, no usage,
    /// no validation beyond field names; read-only fields such as
    /// `IsConverted` may be set). Returns its id.
    ///
    /// # Panics
    /// On an unknown org, object or field, or when `fields` is not an object.
    pub fn seed_record(&self, org: &str, object: &str, fields: Value) -> String {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        store
            .seed(idx, object, &fields)
            .unwrap_or_else(|problem| panic!("seed_record: {problem}"))
    }

    /// API calls counted for `org` today.
    pub fn api_usage(&self, org: &str) -> u64 {
        let store = self.shared.store();
        store.orgs[store.index_or_panic(org)].api_usage
    }

    pub fn set_api_usage(&self, org: &str, n: u64) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        store.orgs[idx].api_usage = n;
    }

    /// Add (or replace, by name) a field of `object` in `org`.
    ///
    /// # Panics
    /// On an unknown org or object.
    pub fn add_field(&self, org: &str, object: &str, field: SfField) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        store.orgs[idx]
            .schema
            .object_mut(object)
            .unwrap_or_else(|| panic!("add_field: unknown object {object:?}"))
            .upsert_field(field);
    }

    /// Add a record type to `object` (`Opportunity`) of `org`; for
    /// Opportunity, `stage_values` are the StageName values it offers (added
    /// to the StageName picklist when missing).
    pub fn add_record_type(
        &self,
        org: &str,
        object: &str,
        id: &str,
        developer_name: &str,
        label: &str,
        stage_values: Vec<&str>,
    ) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        store.orgs[idx]
            .schema
            .add_record_type(
                object,
                SfRecordType {
                    id: id.to_owned(),
                    developer_name: developer_name.to_owned(),
                    name: label.to_owned(),
                    stage_values: stage_values.into_iter().map(str::to_owned).collect(),
                },
            )
            .unwrap_or_else(|problem| panic!("add_record_type: {problem}"));
    }

    /// Turn the standard duplicate rule of `object` (Lead, Contact) on or off.
    pub fn set_duplicate_rule(&self, org: &str, object: &str, on: bool) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        let rules = &mut store.orgs[idx].duplicate_rules;
        if on {
            rules.insert(object.to_owned());
        } else {
            rules.remove(object);
        }
    }

    /// Add a validation rule to `object` of `org`: a create or update leaving `field` holding
    /// `forbidden` (any case) is refused with `FIELD_CUSTOM_VALIDATION_EXCEPTION`, `message`
    /// and the field (per record inside a collections call).
    ///
    /// # Panics
    /// On an unknown org, object or field.
    pub fn add_validation_rule(
        &self,
        org: &str,
        object: &str,
        field: &str,
        forbidden: &str,
        message: &str,
    ) {
        let mut store = self.shared.store();
        let idx = store.index_or_panic(org);
        let schema = store.orgs[idx]
            .schema
            .object(object)
            .unwrap_or_else(|| panic!("add_validation_rule: unknown object {object:?}"));
        let object = schema.name.clone();
        let field = schema
            .field(field)
            .unwrap_or_else(|| panic!("add_validation_rule: unknown field {field:?}"))
            .name
            .clone();
        store.orgs[idx].validation_rules.push(rest::ValidationRule {
            object,
            field,
            forbidden: forbidden.to_owned(),
            message: message.to_owned(),
        });
    }

    /// What `GET /_sim/state?org=` returns.
    pub fn state_json(&self, org: &str) -> Value {
        let store = self.shared.store();
        store.orgs[store.index_or_panic(org)].state_json()
    }

    fn org_and_host(&self, org: &str) -> (SfOrgConfig, String) {
        let store = self.shared.store();
        let idx = store.index_or_panic(org);
        (
            store.orgs[idx].config.clone(),
            store.orgs[idx].instance_host.clone(),
        )
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

/// Everything the handlers share. No mutex is held while taking another.
struct Shared {
    config: SalesforceSimConfig,
    shell: Arc<Shell<SalesforceRoute, SfRequest>>,
    auth: Mutex<oauth::AuthState>,
    store: Mutex<rest::Store>,
}

impl Shared {
    fn auth(&self) -> MutexGuard<'_, oauth::AuthState> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> MutexGuard<'_, rest::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The org key of a live access token used on `host`, when that host is
    /// the org's current instance host.
    fn session_org(&self, token: &str, host: &str) -> Option<(String, usize)> {
        let org = self.auth().session_org(token)?;
        let store = self.store();
        let idx = store.index(&org)?;
        (store.orgs[idx].instance_host == host).then_some((org, idx))
    }
}

/// The effective host of a request, handed to handlers as an extension.
#[derive(Debug, Clone)]
pub(crate) struct Host(pub(crate) String);

/// Composite subrequests a handler wants recorded after its own request.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubRequests(pub(crate) Vec<SfRequest>);

/// The org a handler authenticated the request for.
#[derive(Debug, Clone)]
pub(crate) struct AuthedOrg(pub(crate) String);

fn effective_host(forwarded: Option<&str>) -> String {
    let Some(raw) = forwarded else {
        return DEFAULT_LOGIN_HOST.to_owned();
    };
    normalize_host(raw)
}

// ---------------------------------------------------------------------------
// Router and interceptor
// ---------------------------------------------------------------------------

fn router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(AUTHORIZE_PATH, get(oauth::authorize))
        .route(TOKEN_PATH, post(oauth::token))
        .route(REVOKE_PATH, post(oauth::revoke).get(oauth::revoke))
        .route("/services/data/{*rest}", any(rest::handle))
        .route("/services/Soap/u/{version}", post(soap::handle))
        .route(SIM_STATE_PATH, get(rest::sim_state))
        .fallback(not_found);
    intercepted(router, shared, intercept)
}

/// Records every request, fires the first queued fault that applies, and
/// hands the effective host to the handlers; composite subrequests are
/// logged after their composite.
async fn intercept(
    shared: Arc<Shared>,
    recorded: RecordedRequest,
    mut request: Request,
    next: Next,
) -> Response {
    let host = effective_host(recorded.header(FORWARDED_HOST_HEADER));
    let path = recorded.path.clone();
    let entry = SfRequest::new(&recorded, host.clone(), SfDetails::default());
    tracing::debug!(method = %entry.method, %path, %host, "salesforce sim request");
    let bearer = recorded
        .header("authorization")
        .and_then(oauth::bearer)
        .map(str::to_owned);
    request.extensions_mut().insert(Host(host.clone()));
    let call = Call::new(entry, &request);
    let applies = |route: &SalesforceRoute| route.applies_to(&path);
    let faultable = path != HEALTH_PATH;
    let mut response = shared
        .shell
        .intercept(
            call,
            faultable.then_some(&applies as _),
            next.run(request),
            || throttle_response(&shared, &path, bearer.as_deref(), &host),
            finish,
        )
        .await;
    if let Some(SubRequests(subs)) = response.extensions_mut().remove::<SubRequests>() {
        shared.shell.log().extend(subs);
    }
    response
}

/// Fill the recorded entry with the answer.
fn finish(entry: &mut SfRequest, response: &mut Response) {
    let org = response.extensions_mut().remove::<AuthedOrg>();
    entry.status = Some(response.status().as_u16());
    entry.limit_info = response
        .headers()
        .get(LIMIT_INFO_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    entry.org = org.map(|o| o.0);
}

fn throttle_response(shared: &Shared, path: &str, bearer: Option<&str>, host: &str) -> Response {
    let limit = shared.config.api_daily_limit;
    let usage = bearer
        .and_then(|token| shared.session_org(token, host))
        .map(|(_, idx)| shared.store().orgs[idx].api_usage);
    let mut response = if path.starts_with(SOAP_PREFIX) {
        soap::fault(
            "sf:REQUEST_LIMIT_EXCEEDED",
            "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.",
        )
    } else {
        request_limit_exceeded()
    };
    if let Some(usage) = usage {
        set_limit_info(&mut response, usage.max(limit), limit);
    }
    response
}

async fn not_found() -> Response {
    SfError::not_found().response()
}

// ---------------------------------------------------------------------------
// Helpers shared by the submodules
// ---------------------------------------------------------------------------

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    super::shell::json_response(status, body, "application/json;charset=UTF-8")
}

pub(crate) fn set_limit_info(response: &mut Response, used: u64, limit: u64) {
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={used}/{limit}")) {
        response.headers_mut().insert(LIMIT_INFO_HEADER, value);
    }
}

pub(crate) fn request_limit_exceeded() -> Response {
    SfError::new(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
    .response()
}

pub(crate) fn invalid_session() -> Response {
    SfError::new(401, "INVALID_SESSION_ID", "Session expired or invalid").response()
}

/// One Salesforce error: rendered as the REST error array
/// `[{"message","errorCode","fields"}]` or as a collections/SOAP error
/// `{"statusCode","message","fields"}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SfError {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) fields: Vec<String>,
    /// Extra members merged into the error object (duplicate results).
    pub(crate) extra: Map<String, Value>,
}

impl SfError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> SfError {
        SfError {
            status,
            code: code.to_owned(),
            message: message.into(),
            fields: Vec::new(),
            extra: Map::new(),
        }
    }

    pub(crate) fn bad(code: &str, message: impl Into<String>) -> SfError {
        SfError::new(400, code, message)
    }

    pub(crate) fn with_fields<S: AsRef<str>>(mut self, fields: &[S]) -> SfError {
        self.fields = fields.iter().map(|f| f.as_ref().to_owned()).collect();
        self
    }

    pub(crate) fn not_found() -> SfError {
        SfError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub(crate) fn processing_halted() -> SfError {
        SfError::bad(
            "PROCESSING_HALTED",
            "The transaction was rolled back since another operation in the same transaction failed.",
        )
    }

    pub(crate) fn array(&self) -> Value {
        let mut item = Map::new();
        item.insert("message".into(), json!(self.message));
        item.insert("errorCode".into(), json!(self.code));
        item.insert("fields".into(), json!(self.fields));
        item.extend(self.extra.clone());
        Value::Array(vec![Value::Object(item)])
    }

    pub(crate) fn collection_error(&self) -> Value {
        let mut item = Map::new();
        item.insert("statusCode".into(), json!(self.code));
        item.insert("message".into(), json!(self.message));
        item.insert("fields".into(), json!(self.fields));
        item.extend(self.extra.clone());
        Value::Object(item)
    }

    pub(crate) fn response(&self) -> Response {
        json_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            &self.array(),
        )
    }
}

impl fmt::Display for SfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}
