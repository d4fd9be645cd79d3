//! `TestContext`: a fresh table and KMS key on moto, HubSpot and Zoho simulators with their own
//! client credentials, and the real handlers wired to them. One per test, so tests run in parallel
//! without seeing each other's data. The OAuth apps' credentials are in moto's Secrets Manager,
//! one secret per provider under names of this context's own, and the services read them as
//! the functions do at cold start.

use std::collections::HashMap;

use aws_config::SdkConfig;
use lambda_http::Body;
use serde_json::Value;
use shared::config::{secrets, Config};
use shared::{Provider, Services};
use url::Url;

use crate::events::ApiEvent;
use crate::sim::{
    BitrixSim, BitrixSimConfig, FreshsalesSim, FreshsalesSimConfig, GoogleSim, GoogleSimConfig,
    HubSpotSim, HubSpotSimConfig, SalesforceSim, SalesforceSimConfig, ZohoSim, ZohoSimConfig,
};

pub struct TestContext {
    pub services: Services,
    /// The function configuration the services were built from.
    pub vars: HashMap<String, String>,
    pub hubspot: HubSpotSim,
    /// Plays every Zoho data centre (see `sim::zoho`).
    pub zoho: ZohoSim,
    /// Plays every Freshsales account host; tests register accounts (see `sim::freshsales`).
    pub freshsales: FreshsalesSim,
    /// Plays every Salesforce login host and instance; its orgs get ids of their own per
    /// context (the relay keeps per-org readings in the process).
    pub salesforce: SalesforceSim,
    /// Plays Google's accounts, OAuth and Sheets hosts; tests add spreadsheets to it.
    pub google: GoogleSim,
    /// Plays Bitrix24's OAuth servers and every portal the tests add to it.
    pub bitrix: BitrixSim,
    pub aws: SdkConfig,
    pub table: String,
    pub key_id: String,
    pub client_secret: String,
    /// The Secrets Manager secret (name) of each OAuth provider's app, by slug.
    pub app_secret_ids: HashMap<String, String>,
    /// Talks to the simulator as a browser would (no redirects followed).
    pub browser: reqwest::Client,
    pub queues: crate::queue::LeadQueues,
}

/// Who started each OAuth flow these tests began, by its `state`: the JWT claims (tenant, plan,
/// `sub`) the setup page would still hold when the browser comes back. States are random, so
/// one map serves every context of the process.
static FLOWS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Starter>>> =
    std::sync::LazyLock::new(Default::default);

/// The signed-in user who started an OAuth flow.
#[derive(Clone, Debug)]
pub struct Starter {
    pub tenant: String,
    pub plan: String,
    pub sub: String,
}

pub struct ApiResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl TestContext {
    pub async fn new() -> TestContext {
        Self::with_env(&[]).await
    }

    /// A context whose function configuration has these variables added or replaced.
    pub async fn with_env(overrides: &[(&str, &str)]) -> TestContext {
        Self::build(overrides, |_| {}).await
    }

    /// A context whose services know the lead queue's URL, as lead-push has it in Lambda:
    /// deferred leads and released parked leads are sent there.
    pub async fn with_lead_queue() -> TestContext {
        let mut ctx = Self::new().await;
        ctx.vars
            .insert("LEAD_QUEUE_URL".into(), ctx.queues.url.clone());
        let mut config = Config::from_lookup(|k| ctx.vars.get(k).cloned()).expect("configuration");
        config.oauth_apps = ctx.services.config.oauth_apps.clone();
        ctx.services = Services::with_oauth_apps(config, &ctx.aws);
        ctx
    }

    /// A context whose simulated HubSpot rotates refresh tokens the given way (HubSpot itself
    /// does not: this stands in for the providers that do).
    pub async fn with_rotation(rotation: crate::sim::Rotation) -> TestContext {
        Self::build(&[], |sim| sim.rotation = rotation).await
    }

    /// A context with configuration overrides and a HubSpot simulator set up by `tune`.
    pub async fn build(
        overrides: &[(&str, &str)],
        tune: impl FnOnce(&mut HubSpotSimConfig),
    ) -> TestContext {
        Self::build_with(overrides, tune, |_| {}).await
    }

    /// A context whose Zoho simulator is set up by `tune`.
    pub async fn with_zoho(tune: impl FnOnce(&mut ZohoSimConfig)) -> TestContext {
        Self::build_with(&[], |_| {}, tune).await
    }

    /// A context with configuration overrides and both simulators set up.
    pub async fn build_with(
        overrides: &[(&str, &str)],
        tune: impl FnOnce(&mut HubSpotSimConfig),
        tune_zoho: impl FnOnce(&mut ZohoSimConfig),
    ) -> TestContext {
        Self::build_all(overrides, tune, tune_zoho, |_| {}).await
    }

    /// A context whose Salesforce simulator is set up by `tune`.
    pub async fn with_salesforce(tune: impl FnOnce(&mut SalesforceSimConfig)) -> TestContext {
        Self::build_all(&[], |_| {}, |_| {}, tune).await
    }

    /// A context with configuration overrides and every simulator set up.
    pub async fn build_all(
        overrides: &[(&str, &str)],
        tune: impl FnOnce(&mut HubSpotSimConfig),
        tune_zoho: impl FnOnce(&mut ZohoSimConfig),
        tune_salesforce: impl FnOnce(&mut SalesforceSimConfig),
    ) -> TestContext {
        crate::logs::install();
        let aws = crate::aws::local_config().await.expect("local AWS");
        let table = format!("relay-test-{}", uuid::Uuid::new_v4().simple());
        crate::aws::create_table(&aws, &table).await.expect("table");
        let key_id = crate::aws::create_key(&aws, None).await.expect("key");
        let queues = crate::queue::LeadQueues::create(&aws, &table)
            .await
            .expect("queues");
        let client_secret = format!("client-secret-{}", uuid::Uuid::new_v4().simple());
        let mut sim_config = HubSpotSimConfig {
            client_id: "test-client-id".into(),
            client_secret: client_secret.clone(),
            ..HubSpotSimConfig::default()
        };
        tune(&mut sim_config);
        let hubspot = HubSpotSim::start(sim_config).await;
        let mut zoho_config = ZohoSimConfig {
            client_id: "test-zoho-client-id".into(),
            client_secret: client_secret.clone(),
            ..ZohoSimConfig::default()
        };
        tune_zoho(&mut zoho_config);
        let zoho = ZohoSim::start(zoho_config).await;
        let freshsales = FreshsalesSim::start(FreshsalesSimConfig::default()).await;
        let mut salesforce_config = SalesforceSimConfig {
            client_id: "test-salesforce-client-id".into(),
            client_secret: client_secret.clone(),
            ..SalesforceSimConfig::default()
        };
        for org in &mut salesforce_config.orgs {
            org.org_id = unique_record_id("00D");
            org.user_id = unique_record_id("005");
        }
        tune_salesforce(&mut salesforce_config);
        let salesforce = SalesforceSim::start(salesforce_config).await;
        let google = GoogleSim::start(GoogleSimConfig {
            client_id: "test-google-client-id".into(),
            client_secret: client_secret.clone(),
            // Tests and the bench push bursts; throttling is tested with injected faults.
            per_user_per_minute: 1_000_000,
        })
        .await;
        let bitrix = BitrixSim::start(BitrixSimConfig {
            client_id: "test-bitrix-client-id".into(),
            client_secret: client_secret.clone(),
            // Tests push bursts; the query limit is tested with injected faults.
            requests_per_second: 10_000,
            ..BitrixSimConfig::default()
        })
        .await;
        let mut vars: HashMap<String, String> = HashMap::from([
            ("TABLE_NAME".into(), table.clone()),
            ("KMS_KEY_ID".into(), key_id.clone()),
            (
                "SETUP_PAGE_URL".into(),
                "https://app.leadrelay.test/settings/integrations".into(),
            ),
            (
                "OAUTH_REDIRECT_BASE_URL".into(),
                "https://api.leadrelay.test".into(),
            ),
            ("HUBSPOT_ENDPOINT_URL".into(), hubspot.base_url()),
            ("ZOHO_ENDPOINT_URL".into(), zoho.base_url()),
            ("FRESHSALES_ENDPOINT_URL".into(), freshsales.base_url()),
            ("SALESFORCE_ENDPOINT_URL".into(), salesforce.base_url()),
            ("GOOGLE_SHEETS_ENDPOINT_URL".into(), google.base_url()),
            ("BITRIX24_ENDPOINT_URL".into(), bitrix.base_url()),
            ("HTTP_BACKOFF_BASE_MS".into(), "10".into()),
            ("HTTP_MAX_WAIT_MS".into(), "500".into()),
            ("HTTP_TIMEOUT_MS".into(), "8000".into()),
            (
                "DEAD_LETTER_QUEUE_URL".into(),
                queues.dead_letter_url.clone(),
            ),
            ("LEAD_MAX_RECEIVES".into(), "5".into()),
        ]);
        let mut app_secret_ids = HashMap::new();
        for (provider, client_id) in TEST_CLIENT_IDS {
            let id = format!("{table}/{}-app", provider.slug());
            put_app_secret(&aws, &id, &app_secret_value(client_id, &client_secret)).await;
            vars.insert(secrets::id_variable(provider).into(), id.clone());
            app_secret_ids.insert(provider.slug().to_string(), id);
        }
        for (k, v) in overrides {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration");
        TestContext {
            services: Services::with_aws_config(config, &aws)
                .await
                .expect("the app secrets read from moto"),
            vars,
            hubspot,
            zoho,
            freshsales,
            salesforce,
            google,
            bitrix,
            aws,
            table,
            key_id,
            client_secret,
            app_secret_ids,
            browser: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            queues,
        }
    }

    /// Another set of services on the same table, key and simulator, whose DynamoDB calls go
    /// to `dynamodb_endpoint` (a fault-injecting proxy in front of moto).
    pub fn services_via(&self, dynamodb_endpoint: &str) -> Services {
        self.services_via_with(dynamodb_endpoint, &[])
    }

    /// [`Self::services_via`] with these configuration variables set as well.
    pub fn services_via_with(&self, dynamodb_endpoint: &str, vars: &[(&str, &str)]) -> Services {
        let mut all = self.vars.clone();
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut config = Config::from_lookup(|k| all.get(k).cloned()).expect("test configuration");
        config.oauth_apps = self.services.config.oauth_apps.clone();
        // Bounded as `with_oauth_apps` bounds its own clients.
        let aws = shared::services::bounded_aws(&self.aws, config.aws_attempt_timeout);
        let mut services = Services::with_oauth_apps(config, &aws);
        // A service-level endpoint set in code outranks AWS_ENDPOINT_URL from the environment.
        let ddb = aws_sdk_dynamodb::config::Builder::from(&aws)
            .endpoint_url(dynamodb_endpoint)
            .build();
        services.store =
            shared::store::Store::new(aws_sdk_dynamodb::Client::from_conf(ddb), self.table.clone())
                .with_refresh_shards(services.config.refresh.shards);
        services
    }

    /// Services on the same table, key and simulators whose calls to `provider` (a slug:
    /// `hubspot`, `zoho`, `freshsales`, `salesforce`, `bitrix24`, `google_sheets`) go through
    /// `endpoint` (a `FaultProxy` in front of that provider's simulator).
    pub fn services_with_provider_endpoint(&self, provider: &str, endpoint: &str) -> Services {
        let name = format!("{}_ENDPOINT_URL", provider.to_ascii_uppercase());
        let mut vars = self.vars.clone();
        let previous = vars.insert(name.clone(), endpoint.to_string());
        assert!(previous.is_some(), "no provider sets {name}");
        let mut config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration");
        config.oauth_apps = self.services.config.oauth_apps.clone();
        Services::with_oauth_apps(config, &self.aws)
    }

    /// Puts a new value in `provider`'s app secret (a slug), as `aws secretsmanager
    /// put-secret-value` does: the services read it at their next re-read.
    pub async fn put_app_secret(&self, provider: &str, value: &str) {
        let id = &self.app_secret_ids[provider];
        put_app_secret(&self.aws, id, value).await;
    }

    pub fn tenant() -> String {
        format!("tenant-{}", uuid::Uuid::new_v4().simple())
    }

    /// Sends lead messages to the queue and runs them through lead-push the way Lambda's event
    /// source mapping does: one batch, settled messages deleted, failed ones made visible again
    /// at once (standing in for the visibility timeout).
    pub async fn deliver(&self, bodies: &[String]) -> crate::queue::Delivery {
        for body in bodies {
            self.queues.send(body).await;
        }
        self.redeliver(bodies.len()).await
    }

    /// Receives up to `expected` pending messages again and runs them through lead-push.
    /// `bodies` as one lead-push invocation's messages (each on its `receive_count`-th
    /// receive) through `process_batch`; the outcomes, in order.
    pub async fn push_batch(
        &self,
        bodies: &[String],
        receive_count: u32,
    ) -> Vec<shared::push::MessageOutcome> {
        let messages = crate::queue::inbound_messages(bodies, receive_count);
        shared::push::process_batch(&self.services, messages)
            .await
            .into_iter()
            .map(|(_, outcome)| outcome)
            .collect()
    }

    pub async fn redeliver(&self, expected: usize) -> crate::queue::Delivery {
        let event = self.queues.receive(expected).await;
        let response = lead_push::handle(
            &self.services,
            lambda_runtime::LambdaEvent::new(event.clone(), lambda_runtime::Context::default()),
        )
        .await
        .expect("lead-push never fails the invocation");
        self.queues.settle(&event, &response).await
    }

    /// Runs token-refresh as its EventBridge schedule does, with the sample event.
    pub async fn run_schedule(&self) -> token_refresh::RefreshSummary {
        let event: aws_lambda_events::event::eventbridge::EventBridgeEvent =
            serde_json::from_value(crate::events::load("token-refresh/schedule.json"))
                .expect("the schedule sample");
        token_refresh::handle(
            &self.services,
            lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
        )
        .await
        .expect("token-refresh never fails the invocation")
    }

    /// Calls connections-api with an event. An authorize that starts a flow is remembered
    /// with its caller, so that [`Self::callback`] can complete it as the setup page would.
    pub async fn api(&self, event: ApiEvent) -> ApiResponse {
        let claims = &event.0["requestContext"]["authorizer"]["jwt"]["claims"];
        let starter = Starter {
            tenant: claims["tenant_id"].as_str().unwrap_or_default().to_string(),
            plan: claims["plan"].as_str().unwrap_or_default().to_string(),
            sub: claims["sub"].as_str().unwrap_or_default().to_string(),
        };
        let response = self.api_raw(event).await;
        if let Some(state) = response.body["authorize_url"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
            })
        {
            FLOWS.lock().unwrap().insert(state, starter);
        }
        response
    }

    /// Calls connections-api with an event, and nothing else.
    pub async fn api_raw(&self, event: ApiEvent) -> ApiResponse {
        let response = connections_api::handle(&self.services, event.request())
            .await
            .expect("the handler never fails the invocation");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.body() {
            Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
            Body::Binary(bytes) => serde_json::from_slice(bytes).expect("JSON body"),
            _ => Value::Null,
        };
        ApiResponse {
            status,
            headers,
            body,
        }
    }

    /// Calls connections-api with a sample event for `provider`, as `tenant` on `plan`, with an
    /// optional JSON body.
    pub async fn provider_api(
        &self,
        sample: &str,
        provider: &str,
        (tenant, plan): (&str, &str),
        body: Option<Value>,
    ) -> ApiResponse {
        let mut event = ApiEvent::sample(sample)
            .provider(provider)
            .claims(tenant, plan);
        if let Some(body) = body {
            event = event.body(body);
        }
        self.api(event).await
    }

    pub async fn authorize(&self, tenant: &str, plan: &str) -> ApiResponse {
        self.authorize_provider("hubspot", tenant, plan).await
    }

    pub async fn authorize_provider(
        &self,
        provider: &str,
        tenant: &str,
        plan: &str,
    ) -> ApiResponse {
        self.api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider(provider)
                .claims(tenant, plan),
        )
        .await
    }

    /// The browser at the provider's consent screen: returns the query the provider sends the
    /// browser back to the callback with.
    pub async fn consent(&self, authorize_url: &str) -> Vec<(String, String)> {
        self.consent_for("hubspot", authorize_url).await
    }

    /// As [`Self::consent`], for `provider`'s callback.
    pub async fn consent_for(&self, provider: &str, authorize_url: &str) -> Vec<(String, String)> {
        let response = self
            .browser
            .get(authorize_url)
            .send()
            .await
            .expect("consent screen");
        assert_eq!(
            response.status().as_u16(),
            302,
            "the simulator redirects after consent"
        );
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let url = Url::parse(&location).expect("redirect URL");
        assert_eq!(
            url.as_str().split('?').next().unwrap(),
            format!("https://api.leadrelay.test/oauth/{provider}/callback"),
            "the provider redirects to the configured callback"
        );
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The browser back at the callback, then the setup page finishing the connect: when the
    /// callback kept the consent (`status=consented`), the completion code is posted with the
    /// JWT of the user who started the flow. Returns the setup page's outcome as a URL:
    /// the callback's redirect with `status=connected`, or `status=error&reason=<the
    /// completion's error code>`, and no completion code; a callback error as it came.
    pub async fn callback(&self, provider: &str, query: &[(String, String)]) -> Url {
        let redirect = self.callback_raw(provider, query).await;
        let state = query.iter().find(|(k, _)| k == "state").map(|(_, v)| v);
        let starter = state.and_then(|s| FLOWS.lock().unwrap().get(s).cloned());
        let (Some(code), Some(starter)) = (completion_code(&redirect), starter) else {
            return redirect;
        };
        let completed = self
            .complete(
                provider,
                (&starter.tenant, &starter.plan, &starter.sub),
                &code,
            )
            .await;
        let mut outcome = redirect.clone();
        outcome.set_query(None);
        {
            let mut pairs = outcome.query_pairs_mut();
            for (k, v) in redirect.query_pairs() {
                if k != "completion_code" && k != "status" {
                    pairs.append_pair(&k, &v);
                }
            }
            if completed.status == 200 {
                pairs.append_pair("status", "connected");
            } else {
                pairs.append_pair("status", "error").append_pair(
                    "reason",
                    completed.body["error"].as_str().unwrap_or("unknown"),
                );
            }
        }
        outcome
    }

    /// `POST /connections/{provider}/complete` with `code`, as the user `(tenant, plan, sub)`.
    pub async fn complete(
        &self,
        provider: &str,
        (tenant, plan, sub): (&str, &str, &str),
        code: &str,
    ) -> ApiResponse {
        let mut event = ApiEvent::sample("connections-api/complete.json")
            .provider(provider)
            .claims(tenant, plan)
            .body(serde_json::json!({ "completion_code": code }));
        event.0["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = Value::from(sub);
        self.api_raw(event).await
    }

    /// Calls oauth-callback; returns its redirect target as it is.
    pub async fn callback_raw(&self, provider: &str, query: &[(String, String)]) -> Url {
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let event = ApiEvent::sample("oauth-callback/callback.json")
            .provider(provider)
            .query(&pairs);
        let response = oauth_callback::handle(&self.services, event.request())
            .await
            .expect("the handler never fails the invocation");
        assert_eq!(response.status().as_u16(), 302);
        Url::parse(response.headers()["location"].to_str().unwrap()).expect("redirect target")
    }

    /// The whole Zoho connect flow for a tenant whose Zoho account lives in data centre `dc`
    /// (`us`, `eu`, `au`, ...); `extra` is appended to the consent URL (simulator-only
    /// parameters such as `sim_user=`). Returns the setup-page redirect.
    pub async fn connect_zoho(&self, tenant: &str, plan: &str, dc: &str, extra: &str) -> Url {
        let started = self.authorize_provider("zoho", tenant, plan).await;
        assert_eq!(started.status, 200, "{}", started.body);
        let url = started.body["authorize_url"].as_str().unwrap().to_string();
        let query = self
            .consent_for("zoho", &format!("{url}&sim_dc={dc}{extra}"))
            .await;
        self.callback("zoho", &query).await
    }

    /// `PUT /connections/freshsales` with this body, for a tenant on `plan`.
    pub async fn connect_freshsales(&self, tenant: &str, plan: &str, body: Value) -> ApiResponse {
        self.api(
            ApiEvent::sample("connections-api/connect-freshsales.json")
                .claims(tenant, plan)
                .body(body),
        )
        .await
    }

    /// The whole Salesforce connect flow for a tenant: authorize with the login `choice`
    /// (`None`: production), consent as a user of the simulator's org `org`, callback.
    pub async fn connect_salesforce(
        &self,
        tenant: &str,
        plan: &str,
        choice: Option<Value>,
        org: &str,
    ) -> Url {
        let mut event = ApiEvent::sample("connections-api/authorize.json")
            .provider("salesforce")
            .claims(tenant, plan);
        if let Some(choice) = choice {
            event = event.body(choice);
        }
        let started = self.api(event).await;
        assert_eq!(started.status, 200, "{}", started.body);
        let url = started.body["authorize_url"].as_str().unwrap().to_string();
        let query = self
            .consent_for("salesforce", &format!("{url}&sim_org={org}"))
            .await;
        self.callback("salesforce", &query).await
    }

    /// The whole Google Sheets connect flow for a tenant, consenting as the simulator's `user`.
    pub async fn connect_google_sheets(&self, tenant: &str, plan: &str, user: &str) -> Url {
        let started = self.authorize_provider("google_sheets", tenant, plan).await;
        assert_eq!(started.status, 200, "{}", started.body);
        let url = started.body["authorize_url"].as_str().unwrap().to_string();
        let query = self
            .consent_for("google_sheets", &format!("{url}&sim_user={user}"))
            .await;
        self.callback("google_sheets", &query).await
    }

    /// The whole Bitrix24 connect flow for a tenant: authorize naming `portal`, consent on the
    /// simulator's `consent_portal` (the same one, unless a test says otherwise), callback.
    pub async fn connect_bitrix24(
        &self,
        tenant: &str,
        plan: &str,
        portal: &str,
        consent_portal: &str,
    ) -> Url {
        let started = self
            .api(
                ApiEvent::sample("connections-api/authorize.json")
                    .provider("bitrix24")
                    .claims(tenant, plan)
                    .body(serde_json::json!({ "portal": portal })),
            )
            .await;
        assert_eq!(started.status, 200, "{}", started.body);
        let url = started.body["authorize_url"].as_str().unwrap().to_string();
        let query = self
            .consent_for("bitrix24", &format!("{url}&sim_portal={consent_portal}"))
            .await;
        self.callback("bitrix24", &query).await
    }

    /// The id this context gave the simulator's org `key`.
    pub fn salesforce_org_id(&self, key: &str) -> String {
        self.salesforce
            .config()
            .orgs
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.org_id.clone())
            .expect("a simulated org")
    }

    /// The whole connect flow for a tenant; returns the setup-page redirect.
    pub async fn connect_hubspot(&self, tenant: &str, plan: &str) -> Url {
        let started = self.authorize(tenant, plan).await;
        assert_eq!(started.status, 200, "{}", started.body);
        let url = started.body["authorize_url"].as_str().unwrap().to_string();
        let query = self.consent(&url).await;
        self.callback("hubspot", &query).await
    }
}

/// The client id each simulator knows this deployment's app by; every app shares the
/// context's client secret.
const TEST_CLIENT_IDS: [(Provider, &str); 5] = [
    (Provider::Hubspot, "test-client-id"),
    (Provider::Zoho, "test-zoho-client-id"),
    (Provider::Salesforce, "test-salesforce-client-id"),
    (Provider::GoogleSheets, "test-google-client-id"),
    (Provider::Bitrix24, "test-bitrix-client-id"),
];

/// An app secret's value, in the shape the template documents.
pub fn app_secret_value(client_id: &str, client_secret: &str) -> String {
    serde_json::json!({"client_id": client_id, "client_secret": client_secret}).to_string()
}

/// Creates the secret `id` in moto with `value`, or gives it `value` as its new current version.
pub async fn put_app_secret(aws: &SdkConfig, id: &str, value: &str) {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let created = client
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await;
    if let Err(err) = created {
        let exists = err
            .as_service_error()
            .is_some_and(|e| e.is_resource_exists_exception());
        assert!(
            exists,
            "create secret {id}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
        );
        client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "put secret value {id}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                )
            });
    }
}

/// An 18-character Salesforce-style id with `prefix`, unique to this run.
fn unique_record_id(prefix: &str) -> String {
    let tail = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .to_ascii_uppercase();
    format!("{prefix}{}", &tail[..18 - prefix.len()])
}

/// The query of a setup-page redirect as a map.
/// The completion code of a callback's `status=consented` redirect.
pub fn completion_code(url: &Url) -> Option<String> {
    let pairs = outcome(url);
    (pairs.get("status").map(String::as_str) == Some("consented"))
        .then(|| pairs.get("completion_code").cloned())
        .flatten()
}

pub fn outcome(url: &Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
