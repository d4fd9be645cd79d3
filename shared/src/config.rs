//! Configuration, read once at cold start. A missing or malformed variable is an error that
//! names it; nothing else in the library reads the environment. The OAuth apps' client
//! credentials are not variables: they live in Secrets Manager ([`secrets`]), and the
//! variables only name the secrets; the services set-up reads them.

pub mod secrets;

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::error::ConfigError;
use crate::registry::Provider;

/// Client credentials of one OAuth app registered with a provider.
pub struct OAuthAppCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for OAuthAppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthAppCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Attempts per call, the first one included.
    pub max_attempts: u32,
    /// Longest single wait the client accepts (for `Retry-After` and backoff) before it gives
    /// the failure back to the caller, who can retry later (SQS, the next schedule).
    pub max_wait: Duration,
    pub backoff_base: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            max_attempts: 4,
            max_wait: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub table_name: String,
    pub kms_key_id: String,
    /// The setup page the OAuth callback sends the browser back to; the only redirect target.
    pub setup_page_url: Url,
    /// Public base URL of the callback route; providers redirect to
    /// `{base}/oauth/{provider}/callback`.
    pub oauth_redirect_base_url: Url,
    pub oauth_state_ttl: Duration,
    pub tenant_claim: String,
    pub plan_claim: String,
    pub http: HttpSettings,
    /// `<PROVIDER>_APP_SECRET_ID`: the Secrets Manager secret (name or ARN) holding each OAuth
    /// provider's app credentials. A provider without one is not offered.
    pub oauth_app_secret_ids: BTreeMap<Provider, String>,
    /// At most one re-read of a provider's app secret per this long
    /// (`APP_SECRET_REREAD_SECONDS`, default 60).
    pub app_secret_reread_interval: Duration,
    /// The app credentials read from those secrets. Empty until the services set-up reads them
    /// ([`crate::Services::new`]); tests may put fixed ones here.
    pub oauth_apps: secrets::OAuthApps,
    /// `<PROVIDER>_ENDPOINT_URL`: send every call for that provider to this origin instead
    /// (simulators, local runs). Like `AWS_ENDPOINT_URL` for AWS.
    pub endpoint_overrides: BTreeMap<Provider, Url>,
    pub push: PushSettings,
    pub refresh: RefreshSettings,
    pub salesforce: SalesforceSettings,
    /// How long a provider's described schema (Salesforce's objects and fields) is reused before
    /// it is described again (`SCHEMA_CACHE_TTL_SECONDS`).
    pub schema_cache_ttl: Duration,
    /// The EventBridge bus lifecycle events go to (`EVENT_BUS_NAME`); unset, none are sent.
    pub event_bus_name: Option<String>,
    /// The longest one attempt of an AWS call may take (`AWS_ATTEMPT_TIMEOUT_MS`, default
    /// 10,000) before the SDK gives it up and tries again.
    pub aws_attempt_timeout: Duration,
}

/// What differs per Salesforce deployment.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// REST version, `vNN.N` (`SALESFORCE_API_VERSION`, default `v62.0`); SOAP uses the same.
    pub api_version: String,
    /// How long an access token is taken to live (`SALESFORCE_SESSION_SECONDS`): Salesforce
    /// sends no `expires_in`; the org's session timeout decides, 2 hours unless changed.
    pub session_lifetime: Option<Duration>,
}

/// The scheduled refresh.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// Refresh what is due before now + this (`REFRESH_LOOKAHEAD_SECONDS`): the schedule's
    /// interval plus a margin, so nothing expires between two runs.
    pub lookahead: Duration,
    /// Connections refreshed at once (`REFRESH_CONCURRENCY`).
    pub concurrency: usize,
    /// Shards of the refresh index (`REFRESH_SHARDS`, default 16): may grow, never shrink
    /// (see `Store::with_refresh_shards`).
    pub shards: u32,
    /// Index rows read per Query (`REFRESH_PAGE_SIZE`, default 100).
    pub page_size: u32,
    /// The refresh-shard queue (`REFRESH_SHARD_QUEUE_URL`): the scheduled run sends one
    /// message per shard there and token-refresh walks each shard in its own invocation.
    /// Without it the scheduled run walks every shard itself.
    pub shard_queue_url: Option<String>,
    /// No scheduled refresh starts with less than this left before the invocation's deadline
    /// (`REFRESH_RESERVE_SECONDS`; unset: [`Config::refresh_reserve`] derives it).
    pub reserve: Option<Duration>,
}

/// Lead push: where permanent failures go, and when to stop retrying.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The lead queue's DLQ (`DEAD_LETTER_QUEUE_URL`). A lead that can never be pushed is sent
    /// there at once with its reason; without it, it waits for SQS's redrive.
    pub dead_letter_queue_url: Option<String>,
    /// The queue's `maxReceiveCount` (`LEAD_MAX_RECEIVES`): on the last receive a still-failing
    /// lead goes to the DLQ with its reason rather than silently by redrive.
    pub max_receives: u32,
    /// Messages of one batch pushed at once (`PUSH_CONCURRENCY`).
    pub concurrency: usize,
    /// The lead queue (`LEAD_QUEUE_URL`): where a reconnect re-sends the leads that were parked
    /// while the connection needed the tenant, and where a live lead whose CRM account has no
    /// capacity is deferred to (`crate::push::defer`). Without it parked leads stay parked and
    /// a deferral fails (the message then waits out its visibility timeout instead).
    pub lead_queue_url: Option<String>,
    /// The backfill queue (`BACKFILL_QUEUE_URL`): historic leads, pushed only with the
    /// capacity live leads leave; a throttled backfill lead is deferred back to it. Unset where
    /// no backfill lane is deployed.
    pub backfill_queue_url: Option<String>,
    /// The backfill queue's ARN (`BACKFILL_QUEUE_ARN`): a record whose event source is this
    /// queue is a backfill lead ([`Config::lane_of`]); every other record is live.
    pub backfill_queue_arn: Option<String>,
    /// The backfill queue's DLQ (`BACKFILL_DEAD_LETTER_QUEUE_URL`): a backfill lead that can
    /// never be pushed goes there, so a redrive of the lead DLQ never brings historic leads
    /// onto the live lane. Unset: the lead DLQ takes them too.
    pub backfill_dead_letter_queue_url: Option<String>,
    /// How long a parked lead is kept for a reconnect (`PARKED_LEAD_DAYS`, default 14).
    pub parked_lead_days: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let url = |name: &'static str| -> Result<Url, ConfigError> {
            let raw = required(name)?;
            let parsed = Url::parse(&raw).map_err(|e| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "must be an http(s) URL".into(),
                });
            }
            Ok(parsed)
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    reason: format!("expected a whole number, got {v:?}"),
                }),
            }
        };

        let mut oauth_app_secret_ids = BTreeMap::new();
        let mut endpoint_overrides = BTreeMap::new();
        for provider in Provider::ALL {
            let prefix = provider.env_prefix();
            let has_oauth_app = provider.facts().and_then(|f| f.oauth()).is_some();
            if let (true, Some(id)) = (has_oauth_app, get(secrets::id_variable(provider))) {
                oauth_app_secret_ids.insert(provider, id.trim().to_string());
            }
            let endpoint_name: &'static str = leak(format!("{prefix}_ENDPOINT_URL"));
            if get(endpoint_name).is_some() {
                endpoint_overrides.insert(provider, url(endpoint_name)?);
            }
        }

        let defaults = HttpSettings::default();
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            kms_key_id: required("KMS_KEY_ID")?,
            setup_page_url: url("SETUP_PAGE_URL")?,
            oauth_redirect_base_url: url("OAUTH_REDIRECT_BASE_URL")?,
            oauth_state_ttl: Duration::from_secs(number("OAUTH_STATE_TTL_SECONDS", 600)?),
            tenant_claim: get("JWT_TENANT_CLAIM").unwrap_or_else(|| "tenant_id".into()),
            plan_claim: get("JWT_PLAN_CLAIM").unwrap_or_else(|| "plan".into()),
            http: HttpSettings {
                connect_timeout: Duration::from_millis(number(
                    "HTTP_CONNECT_TIMEOUT_MS",
                    defaults.connect_timeout.as_millis() as u64,
                )?),
                request_timeout: Duration::from_millis(number(
                    "HTTP_TIMEOUT_MS",
                    defaults.request_timeout.as_millis() as u64,
                )?),
                max_attempts: number("HTTP_MAX_ATTEMPTS", defaults.max_attempts as u64)?
                    .clamp(1, 10) as u32,
                max_wait: Duration::from_millis(number(
                    "HTTP_MAX_WAIT_MS",
                    defaults.max_wait.as_millis() as u64,
                )?),
                backoff_base: Duration::from_millis(number(
                    "HTTP_BACKOFF_BASE_MS",
                    defaults.backoff_base.as_millis() as u64,
                )?),
            },
            oauth_app_secret_ids,
            app_secret_reread_interval: Duration::from_secs(number(
                "APP_SECRET_REREAD_SECONDS",
                60,
            )?),
            oauth_apps: secrets::OAuthApps::default(),
            endpoint_overrides,
            push: PushSettings {
                dead_letter_queue_url: get("DEAD_LETTER_QUEUE_URL"),
                max_receives: number("LEAD_MAX_RECEIVES", 5)?.clamp(1, 1000) as u32,
                concurrency: number("PUSH_CONCURRENCY", 4)?.clamp(1, 10) as usize,
                lead_queue_url: get("LEAD_QUEUE_URL").map(|v| v.trim().to_string()),
                backfill_queue_url: get("BACKFILL_QUEUE_URL").map(|v| v.trim().to_string()),
                backfill_queue_arn: get("BACKFILL_QUEUE_ARN").map(|v| v.trim().to_string()),
                backfill_dead_letter_queue_url: get("BACKFILL_DEAD_LETTER_QUEUE_URL")
                    .map(|v| v.trim().to_string()),
                parked_lead_days: number("PARKED_LEAD_DAYS", 14)?.clamp(1, 90) as u32,
            },
            refresh: RefreshSettings {
                lookahead: Duration::from_secs(number("REFRESH_LOOKAHEAD_SECONDS", 900)?),
                concurrency: number("REFRESH_CONCURRENCY", 8)?.clamp(1, 50) as usize,
                shards: number(
                    "REFRESH_SHARDS",
                    u64::from(crate::store::DEFAULT_REFRESH_SHARDS),
                )?
                .clamp(1, 1000) as u32,
                page_size: number("REFRESH_PAGE_SIZE", 100)?.clamp(1, 1000) as u32,
                shard_queue_url: get("REFRESH_SHARD_QUEUE_URL"),
                reserve: match get("REFRESH_RESERVE_SECONDS") {
                    None => None,
                    Some(_) => Some(Duration::from_secs(number("REFRESH_RESERVE_SECONDS", 0)?)),
                },
            },
            salesforce: SalesforceSettings {
                api_version: salesforce_api_version(get("SALESFORCE_API_VERSION"))?,
                session_lifetime: match get("SALESFORCE_SESSION_SECONDS") {
                    None => None,
                    Some(_) => Some(Duration::from_secs(
                        number("SALESFORCE_SESSION_SECONDS", 0)?.max(300),
                    )),
                },
            },
            schema_cache_ttl: Duration::from_secs(number("SCHEMA_CACHE_TTL_SECONDS", 86_400)?),
            aws_attempt_timeout: Duration::from_millis(
                number("AWS_ATTEMPT_TIMEOUT_MS", 10_000)?.max(100),
            ),
            event_bus_name: get("EVENT_BUS_NAME").map(|v| v.trim().to_string()),
        })
    }

    /// How long an access token of `provider` is taken to live when its token response says
    /// nothing: this deployment's setting, else the registry's.
    pub fn assumed_token_lifetime(&self, provider: Provider) -> Option<Duration> {
        let configured = match provider {
            Provider::Salesforce => self.salesforce.session_lifetime,
            _ => None,
        };
        configured.or_else(|| {
            provider
                .facts()
                .and_then(|f| f.oauth())
                .and_then(|o| o.default_access_token_lifetime)
        })
    }

    /// The time a scheduled refresh needs left before the deadline to be started: as set, else
    /// the longest a token call can take (every attempt connecting and timing out, with the
    /// longest wait between attempts) plus 15 s to seal and store the new tokens.
    pub fn refresh_reserve(&self) -> Duration {
        self.refresh.reserve.unwrap_or_else(|| {
            let attempts = self.http.max_attempts.max(1);
            (self.http.connect_timeout + self.http.request_timeout) * attempts
                + self.http.max_wait * (attempts - 1)
                + Duration::from_secs(15)
        })
    }

    /// The queue a lead of `lane` is enqueued on (a deferral re-sends it there), if configured.
    pub fn queue_url(&self, lane: crate::push::Lane) -> Option<&str> {
        match lane {
            crate::push::Lane::Live => self.push.lead_queue_url.as_deref(),
            crate::push::Lane::Backfill => self.push.backfill_queue_url.as_deref(),
        }
    }

    /// Where a lead of `lane` that can never be pushed is sent, with its reason.
    pub fn dead_letter_queue_url(&self, lane: crate::push::Lane) -> Option<&str> {
        match lane {
            crate::push::Lane::Backfill => self
                .push
                .backfill_dead_letter_queue_url
                .as_deref()
                .or(self.push.dead_letter_queue_url.as_deref()),
            crate::push::Lane::Live => self.push.dead_letter_queue_url.as_deref(),
        }
    }

    /// The lane of a record that came from `event_source_arn` (Lambda's `eventSourceARN`):
    /// backfill only when it is the configured backfill queue, so a lead is never slowed
    /// down to the backfill's pace by a missing or unknown source.
    pub fn lane_of(&self, event_source_arn: Option<&str>) -> crate::push::Lane {
        match (event_source_arn, self.push.backfill_queue_arn.as_deref()) {
            (Some(source), Some(backfill)) if source == backfill => crate::push::Lane::Backfill,
            _ => crate::push::Lane::Live,
        }
    }

    /// The redirect URI registered with the provider's OAuth app.
    pub fn redirect_uri(&self, provider: Provider) -> Url {
        let mut url = self.oauth_redirect_base_url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/oauth/{}/callback", provider.slug()));
        url.set_query(None);
        url
    }

    /// A provider URL from the registry, moved to the configured override origin if any.
    pub fn provider_url(&self, provider: Provider, registry_url: &str) -> Url {
        let url = Url::parse(registry_url).expect("registry URLs are valid");
        match self.endpoint_overrides.get(&provider) {
            Some(origin) => moved_to(origin, &url),
            None => url,
        }
    }
}

/// `url` with the scheme, host and port of `origin`, and `origin`'s path (if any) before its
/// own path.
pub fn moved_to(origin: &Url, url: &Url) -> Url {
    let mut moved = url.clone();
    // Infallible for http(s) origins, which is all `from_lookup` accepts.
    let _ = moved.set_scheme(origin.scheme());
    let _ = moved.set_host(origin.host_str());
    let _ = moved.set_port(origin.port_or_known_default());
    let prefix = origin.path().trim_end_matches('/');
    if !prefix.is_empty() {
        moved.set_path(&format!("{prefix}{}", url.path()));
    }
    moved
}

/// `v62.0` unless set; anything but `vNN.N` is refused (it goes into every API path).
fn salesforce_api_version(raw: Option<String>) -> Result<String, ConfigError> {
    let version = raw.unwrap_or_else(|| "v62.0".into());
    let valid = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && major.len() <= 3
                && minor.len() == 1
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
    if valid {
        Ok(version)
    } else {
        Err(ConfigError::Invalid {
            name: "SALESFORCE_API_VERSION",
            reason: "expected vNN.N, such as v62.0".into(),
        })
    }
}

/// Variable names are built once per cold start and live for the process; leaking them keeps
/// `ConfigError` free of allocations for the common `&'static str` case.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("TABLE_NAME", "t"),
            ("KMS_KEY_ID", "alias/k"),
            ("SETUP_PAGE_URL", "https://app.example.com/integrations"),
            ("OAUTH_REDIRECT_BASE_URL", "https://api.example.com/"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let mut vars = base();
        vars.remove("KMS_KEY_ID");
        let err = load(&vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable KMS_KEY_ID is not set"
        );
    }

    #[test]
    fn a_malformed_url_is_named_in_the_error() {
        let mut vars = base();
        vars.insert("SETUP_PAGE_URL", "not a url");
        let err = load(&vars).unwrap_err().to_string();
        assert!(err.contains("SETUP_PAGE_URL"), "{err}");
        vars.insert("SETUP_PAGE_URL", "javascript:alert(1)");
        assert!(load(&vars)
            .unwrap_err()
            .to_string()
            .contains("SETUP_PAGE_URL"));
    }

    #[test]
    fn oauth_providers_are_configured_by_secret_id_only() {
        let mut vars = base();
        vars.insert("HUBSPOT_APP_SECRET_ID", "leadrelay/dev/hubspot-app");
        vars.insert("ZOHO_APP_SECRET_ID", " ");
        // Freshsales connects with each tenant's API key: there is no app to configure.
        vars.insert("FRESHSALES_APP_SECRET_ID", "leadrelay/dev/freshsales-app");
        // The old variables configure nothing any more.
        vars.insert("SALESFORCE_CLIENT_ID", "id");
        vars.insert("SALESFORCE_CLIENT_SECRET", "very-secret-value");
        let config = load(&vars).unwrap();
        assert_eq!(
            config.oauth_app_secret_ids,
            BTreeMap::from([(Provider::Hubspot, "leadrelay/dev/hubspot-app".to_string())])
        );
        assert!(config.oauth_apps.get(Provider::Salesforce).is_none());
        assert_eq!(config.app_secret_reread_interval, Duration::from_secs(60));
        assert!(!format!("{config:?}").contains("very-secret-value"));
    }

    #[test]
    fn a_bad_number_is_named_in_the_error() {
        let mut vars = base();
        vars.insert("HTTP_TIMEOUT_MS", "ten");
        assert!(load(&vars)
            .unwrap_err()
            .to_string()
            .contains("HTTP_TIMEOUT_MS"));
    }

    #[test]
    fn salesforce_version_and_session_length_are_checked_and_defaulted() {
        let mut vars = base();
        let config = load(&vars).unwrap();
        assert_eq!(config.salesforce.api_version, "v62.0");
        assert_eq!(
            config.assumed_token_lifetime(Provider::Salesforce),
            Some(Duration::from_secs(7200))
        );
        vars.insert("SALESFORCE_SESSION_SECONDS", "900");
        vars.insert("SALESFORCE_API_VERSION", "v63.0");
        let config = load(&vars).unwrap();
        assert_eq!(config.salesforce.api_version, "v63.0");
        assert_eq!(
            config.assumed_token_lifetime(Provider::Salesforce),
            Some(Duration::from_secs(900))
        );
        for bad in ["62.0", "v62", "v62.0/../x", "v6a.0"] {
            vars.insert("SALESFORCE_API_VERSION", bad);
            assert!(
                load(&vars)
                    .unwrap_err()
                    .to_string()
                    .contains("SALESFORCE_API_VERSION"),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_secrets_never_show_in_debug_output() {
        let mut config = load(&base()).unwrap();
        config.oauth_apps = secrets::OAuthApps::fixed(BTreeMap::from([(
            Provider::Hubspot,
            OAuthAppCredentials {
                client_id: "id".into(),
                client_secret: SecretString::from("very-secret-value"),
            },
        )]));
        assert_eq!(
            config
                .oauth_apps
                .get(Provider::Hubspot)
                .unwrap()
                .client_secret
                .expose_secret(),
            "very-secret-value"
        );
        assert!(!format!("{config:?}").contains("very-secret-value"));
    }

    #[test]
    fn each_lane_has_its_own_queue_and_neither_is_required() {
        use crate::push::Lane;
        let mut vars = base();
        let config = load(&vars).unwrap();
        assert_eq!(config.queue_url(Lane::Live), None);
        assert_eq!(config.queue_url(Lane::Backfill), None);
        vars.insert(
            "LEAD_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/leadrelay-dev-leads",
        );
        vars.insert(
            "BACKFILL_QUEUE_URL",
            " https://sqs.eu-west-1.amazonaws.com/1/leadrelay-dev-backfill ",
        );
        vars.insert(
            "BACKFILL_QUEUE_ARN",
            "arn:aws:sqs:eu-west-1:1:leadrelay-dev-backfill",
        );
        let config = load(&vars).unwrap();
        assert_eq!(
            config.lane_of(Some("arn:aws:sqs:eu-west-1:1:leadrelay-dev-backfill")),
            Lane::Backfill
        );
        assert_eq!(
            config.lane_of(Some("arn:aws:sqs:eu-west-1:1:leadrelay-dev-leads")),
            Lane::Live
        );
        assert_eq!(config.lane_of(None), Lane::Live);
        // Without a DLQ of its own the backfill lane shares the lead DLQ.
        vars.insert("DEAD_LETTER_QUEUE_URL", "https://sqs/1/leads-dlq");
        let shared_dlq = load(&vars).unwrap();
        assert_eq!(
            shared_dlq.dead_letter_queue_url(Lane::Backfill),
            Some("https://sqs/1/leads-dlq")
        );
        vars.insert(
            "BACKFILL_DEAD_LETTER_QUEUE_URL",
            "https://sqs/1/backfill-dlq",
        );
        let own_dlq = load(&vars).unwrap();
        assert_eq!(
            own_dlq.dead_letter_queue_url(Lane::Backfill),
            Some("https://sqs/1/backfill-dlq")
        );
        assert_eq!(
            own_dlq.dead_letter_queue_url(Lane::Live),
            Some("https://sqs/1/leads-dlq")
        );
        assert_eq!(
            config.queue_url(Lane::Live),
            Some("https://sqs.eu-west-1.amazonaws.com/1/leadrelay-dev-leads")
        );
        assert_eq!(
            config.queue_url(Lane::Backfill),
            Some("https://sqs.eu-west-1.amazonaws.com/1/leadrelay-dev-backfill")
        );
    }

    #[test]
    fn the_redirect_uri_is_built_under_the_configured_base() {
        let config = load(&base()).unwrap();
        assert_eq!(
            config.redirect_uri(Provider::Hubspot).as_str(),
            "https://api.example.com/oauth/hubspot/callback"
        );
    }

    #[test]
    fn an_endpoint_override_moves_every_url_of_that_provider_only() {
        let mut vars = base();
        vars.insert("HUBSPOT_ENDPOINT_URL", "http://127.0.0.1:4010");
        let config = load(&vars).unwrap();
        assert_eq!(
            config
                .provider_url(
                    Provider::Hubspot,
                    "https://api.hubapi.com/oauth/2026-03/token"
                )
                .as_str(),
            "http://127.0.0.1:4010/oauth/2026-03/token"
        );
        assert_eq!(
            config
                .provider_url(Provider::Zoho, "https://accounts.zoho.com/oauth/v2/token")
                .as_str(),
            "https://accounts.zoho.com/oauth/v2/token"
        );
    }
}
