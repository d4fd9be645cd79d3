//! A provider account on wiremock, for exact-request tests: reached the way production reaches
//! the provider, through the shared HTTP client's local routing (`<PROVIDER>_ENDPOINT_URL`) and
//! the account's own API base, with every request's credentials and host checked.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use shared::config::{Config, HttpSettings};
use shared::http::HttpClient;
use shared::provider::{for_provider, CrmProvider, Session};
use shared::Provider;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub struct MockAccount {
    pub server: MockServer,
    pub provider: Provider,
    pub http: HttpClient,
    pub api_base: Url,
    pub account: BTreeMap<String, String>,
}

/// One request as the provider received it.
#[derive(Debug, PartialEq)]
pub struct Sent {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub body: Value,
}

/// A request without a query string.
pub fn sent(method: &str, path: &str, body: Value) -> Sent {
    Sent {
        method: method.into(),
        path: path.into(),
        query: None,
        body,
    }
}

impl MockAccount {
    /// `account` as the connection row would hold it (hub id, data centre, domain...).
    pub async fn start(provider: Provider, account: BTreeMap<String, String>) -> MockAccount {
        let server = MockServer::start().await;
        let endpoint = format!("{}_ENDPOINT_URL", provider.env_prefix());
        let vars = HashMap::from([
            ("TABLE_NAME".to_string(), "t".to_string()),
            ("KMS_KEY_ID".to_string(), "k".to_string()),
            (
                "SETUP_PAGE_URL".to_string(),
                "https://app.leadrelay.test/s".to_string(),
            ),
            (
                "OAUTH_REDIRECT_BASE_URL".to_string(),
                "https://api.leadrelay.test".to_string(),
            ),
            (endpoint, server.uri()),
        ]);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("configuration");
        let http = HttpClient::new(&HttpSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_attempts: 3,
            max_wait: Duration::from_secs(1),
            backoff_base: Duration::from_millis(5),
        })
        .with_local_routes(config.endpoint_overrides.clone());
        let facts = provider.facts().expect("a built provider");
        let default_base = config.provider_url(provider, facts.api_base);
        let api_base = Self::implementation_of(provider).api_base(&config, default_base, &account);
        MockAccount {
            server,
            provider,
            http,
            api_base,
            account,
        }
    }

    fn implementation_of(provider: Provider) -> &'static dyn CrmProvider {
        for_provider(provider).expect("a built provider")
    }

    pub fn implementation(&self) -> &'static dyn CrmProvider {
        Self::implementation_of(self.provider)
    }

    /// Answers `verb at` with `status` and a JSON body, as often as asked.
    pub async fn answer(&self, verb: &str, at: &str, status: u16, body: Value) {
        Mock::given(method(verb))
            .and(path(at))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    /// A session on the account with `token` as its credential.
    pub fn session(&self, token: &str) -> Session<'_> {
        Session::new(
            self.provider,
            &self.http,
            self.api_base.clone(),
            &self.account,
            SecretString::from(token.to_string()),
            self.implementation().auth_scheme(),
        )
    }

    /// Every request received, in order, after checking that each carried `authorization`,
    /// named `host` (the host it was meant for, where that is not the mock's own) and sent
    /// JSON when it had a body.
    pub async fn received(&self, authorization: &str, host: Option<&str>) -> Vec<Sent> {
        self.server
            .received_requests()
            .await
            .expect("recording is on")
            .into_iter()
            .map(|request| {
                let header = |name: &str| {
                    request
                        .headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_string())
                };
                let what = format!("{} {}", request.method, request.url.path());
                assert_eq!(
                    header("authorization").as_deref(),
                    Some(authorization),
                    "{what}"
                );
                assert_eq!(
                    header("x-forwarded-host").as_deref(),
                    host,
                    "{what} went to the account's own host"
                );
                let body = if request.body.is_empty() {
                    Value::Null
                } else {
                    assert_eq!(
                        header("content-type").as_deref(),
                        Some("application/json"),
                        "{what}"
                    );
                    request.body_json().expect("a JSON body")
                };
                Sent {
                    method: request.method.to_string(),
                    path: request.url.path().to_string(),
                    query: request.url.query().map(str::to_string),
                    body,
                }
            })
            .collect()
    }
}
