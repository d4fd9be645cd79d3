//! The one outbound HTTP client every provider uses.
//!
//! It owns what no provider may write again: connect and total timeouts, no redirects (a
//! followed redirect would carry an `Authorization` header to a host we did not choose),
//! retries with exponential backoff and jitter, `Retry-After`, throttling recognised in each
//! provider's own form (from the registry), a bounded retry budget, and one tracing span per
//! call that names the provider, the operation and the path, never a token.

mod oauth_transport;
pub(crate) use oauth_transport::OAuthTransport;
pub mod redact;
pub mod retry;
pub mod throttle;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tracing::{field, Instrument};
use url::Url;

use crate::config::HttpSettings;
use crate::error::ProviderError;
use crate::ratelimit::{Limiter, RateTag};
use crate::registry::{Provider, ThrottleSignal};
use retry::Backoff;
use throttle::Verdict;

/// Whether sending a request twice is harmless. Unsafe requests (an authorization-code
/// exchange, a refresh that may rotate the refresh token) are retried only when the provider
/// cannot have acted on them: a refused connection or an explicit throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    Safe,
    Unsafe,
}

pub enum Body {
    Empty,
    Json(serde_json::Value),
    /// Form fields; values may be secrets (client secret, refresh token): never logged.
    Form(Vec<(&'static str, String)>),
    Raw {
        content_type: Option<HeaderValue>,
        bytes: Vec<u8>,
    },
}

/// One call to a provider. Deliberately not `Debug`: it may hold secrets.
pub struct OutboundRequest {
    pub provider: Provider,
    /// A short name for logs and metrics: `token.exchange`, `pipelines.list`, ...
    pub operation: &'static str,
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    pub idempotency: Idempotency,
    /// The account and lane whose shared rate limit this call takes from (calls of stored
    /// connections); `None` (the OAuth token endpoint, tests) is not limited.
    pub rate: Option<RateTag>,
}

impl OutboundRequest {
    pub fn new(provider: Provider, operation: &'static str, method: Method, url: Url) -> Self {
        let idempotency = if method == Method::POST || method == Method::PATCH {
            Idempotency::Unsafe
        } else {
            Idempotency::Safe
        };
        OutboundRequest {
            provider,
            operation,
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            idempotency,
            rate: None,
        }
    }

    /// Takes capacity from `tag`'s shared rate limit before each attempt.
    pub fn rate_limited(mut self, tag: Option<RateTag>) -> Self {
        self.rate = tag;
        self
    }

    /// `Authorization: <scheme> <secret>` (or `<scheme><secret>` for a scheme ending in `=`,
    /// Freshsales' `Token token=`), marked sensitive so no layer prints it.
    pub fn authorization(mut self, scheme: &str, secret: &SecretString) -> Self {
        let separator = if scheme.ends_with('=') { "" } else { " " };
        if let Ok(mut value) =
            HeaderValue::from_str(&format!("{scheme}{separator}{}", secret.expose_secret()))
        {
            value.set_sensitive(true);
            self.headers.insert(AUTHORIZATION, value);
        }
        self
    }

    pub fn bearer(self, token: &SecretString) -> Self {
        self.authorization("Bearer", token)
    }

    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub fn form(mut self, fields: Vec<(&'static str, String)>) -> Self {
        self.body = Body::Form(fields);
        self
    }

    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }
}

/// A provider's answer: any 2xx, or a 4xx the caller must interpret. Throttling, 5xx and
/// network failures never get here; they come back as [`ProviderError`]s.
#[derive(Debug)]
pub struct HttpResponse {
    pub provider: Provider,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Parses a JSON body. A parse failure names the path where it failed, never the body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        parse_json_quietly(&mut de).map_err(|detail| ProviderError::Garbage {
            provider: self.provider,
            status: self.status,
            detail,
        })
    }
}

fn parse_json_quietly<'de, T: DeserializeOwned>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, String> {
    // serde_json's own messages quote unexpected *values* in a few cases; keep only the
    // category and the position.
    T::deserialize(&mut *de).map_err(|e| {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
    /// `<PROVIDER>_ENDPOINT_URL` (local runs and tests only): where that provider's calls go.
    local_routes: Arc<BTreeMap<Provider, Url>>,
    /// The rate limit shared by every instance (off without a table: unit tests).
    limiter: Option<Arc<Limiter>>,
}

/// Carries the host a locally routed request was meant for, so that one simulator can play
/// every host of a provider (Zoho's data centres, Salesforce instances, Bitrix24 portals).
pub static ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

impl HttpClient {
    pub fn new(settings: &HttpSettings) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("leadrelay-crm-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        HttpClient {
            client,
            settings: settings.clone(),
            local_routes: Arc::default(),
            limiter: None,
        }
    }

    /// Takes capacity from `limiter` before every attempt of a request that carries a
    /// [`RateTag`], and corrects it from the answer.
    pub fn with_limiter(mut self, limiter: Arc<Limiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn limiter(&self) -> Option<&Limiter> {
        self.limiter.as_deref()
    }

    /// Sends each provider's calls to its configured local origin instead of the host in the
    /// URL, naming that host in [`ORIGINAL_HOST`]. Hosts that vary per account (data centres,
    /// instances, portals) are stored as the provider gave them and only moved here, at the
    /// last moment, so nothing else knows about simulators.
    pub fn with_local_routes(mut self, routes: BTreeMap<Provider, Url>) -> Self {
        self.local_routes = Arc::new(routes);
        self
    }

    /// The URL to connect to and, when moved, the host it was meant for.
    fn route(&self, request: &OutboundRequest) -> (Url, Option<HeaderValue>) {
        let Some(origin) = self.local_routes.get(&request.provider) else {
            return (request.url.clone(), None);
        };
        if request.url.origin() == origin.origin() {
            return (request.url.clone(), None);
        }
        let meant_for = request
            .url
            .host_str()
            .and_then(|h| HeaderValue::from_str(h).ok());
        (crate::config::moved_to(origin, &request.url), meant_for)
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// Sends a request with the retry policy. Returns 2xx and 4xx answers; throttling that
    /// outlasts the budget, 5xx and network failures are errors.
    pub async fn send(&self, request: OutboundRequest) -> Result<HttpResponse, ProviderError> {
        let span = tracing::info_span!(
            "provider_call",
            provider = %request.provider,
            operation = request.operation,
            method = %request.method,
            url = %redact::url_for_log(&request.url),
            status = field::Empty,
            attempts = field::Empty,
            elapsed_ms = field::Empty,
        );
        let provider = request.provider;
        let operation = request.operation;
        let started = Instant::now();
        let mut throttled = 0;
        let result = self
            .send_with_retries(request, &mut throttled)
            .instrument(span)
            .await;
        // One EMF line per call: its latency (retries and waits included) and how many
        // throttled answers it met.
        crate::metrics::Record::for_provider(provider)
            .metric(
                crate::metrics::PROVIDER_CALL_LATENCY,
                crate::metrics::Unit::Milliseconds,
                started.elapsed().as_secs_f64() * 1000.0,
            )
            .count(crate::metrics::PROVIDER_THROTTLED, throttled)
            .property("operation", operation)
            .emit();
        result
    }

    async fn send_with_retries(
        &self,
        request: OutboundRequest,
        throttled: &mut u64,
    ) -> Result<HttpResponse, ProviderError> {
        let provider = request.provider;
        let signals: &[ThrottleSignal] = provider
            .facts()
            .map(|f| f.throttle)
            .unwrap_or(&[ThrottleSignal::Status429]);
        let mut backoff = Backoff::new(self.settings.backoff_base, self.settings.max_wait);
        let started = Instant::now();
        let span = tracing::Span::current();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.settings.max_attempts;
            let ticket = match (&self.limiter, &request.rate) {
                (Some(limiter), Some(tag)) => match limiter.take(tag).await {
                    Ok(ticket) => ticket,
                    Err(deferred) => {
                        span.record("attempts", attempt - 1);
                        span.record("elapsed_ms", started.elapsed().as_millis() as u64);
                        return Err(deferred);
                    }
                },
                _ => None,
            };
            let outcome = self.send_once(&request).await;
            if let (Some(limiter), Some(ticket), Ok(response)) = (&self.limiter, &ticket, &outcome)
            {
                limiter.correct(ticket, &response.headers).await;
            }
            let (failure, wait) = match outcome {
                Ok(response) => {
                    span.record("status", response.status);
                    match throttle::classify(
                        signals,
                        response.status,
                        &response.headers,
                        &response.body,
                    ) {
                        Verdict::Done => {
                            span.record("attempts", attempt);
                            span.record("elapsed_ms", started.elapsed().as_millis() as u64);
                            tracing::debug!("provider answered");
                            return Ok(response);
                        }
                        Verdict::Throttled {
                            retry_after,
                            give_up,
                        } => {
                            *throttled += 1;
                            let failure = ProviderError::Throttled {
                                provider,
                                retry_after,
                            };
                            if give_up {
                                (failure, None)
                            } else {
                                // A throttled request was not processed: safe to send again.
                                (
                                    failure,
                                    Some(retry_after.unwrap_or_else(|| backoff.next_wait())),
                                )
                            }
                        }
                        Verdict::Transient => {
                            let failure = ProviderError::Unavailable {
                                provider,
                                status: response.status,
                            };
                            let wait = (request.idempotency == Idempotency::Safe)
                                .then(|| backoff.next_wait());
                            (failure, wait)
                        }
                    }
                }
                Err(error) => {
                    let never_sent = error.is_connect();
                    let failure = if error.is_timeout() {
                        ProviderError::Timeout { provider }
                    } else {
                        ProviderError::Network {
                            provider,
                            source: error.without_url(),
                        }
                    };
                    let wait = (never_sent || request.idempotency == Idempotency::Safe)
                        .then(|| backoff.next_wait());
                    (failure, wait)
                }
            };
            match wait {
                Some(wait) if !last && wait <= self.settings.max_wait => {
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %failure,
                        "provider call failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    span.record("attempts", attempt);
                    span.record("elapsed_ms", started.elapsed().as_millis() as u64);
                    tracing::warn!(error = %failure, "provider call failed, giving up");
                    return Err(failure);
                }
            }
        }
    }

    async fn send_once(&self, request: &OutboundRequest) -> Result<HttpResponse, reqwest::Error> {
        let (url, meant_for) = self.route(request);
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .headers(request.headers.clone());
        if let Some(host) = meant_for {
            builder = builder.header(ORIGINAL_HOST.clone(), host);
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(fields) => builder.form(fields),
            Body::Raw {
                content_type,
                bytes,
            } => {
                let builder = match content_type {
                    Some(ct) => builder.header(CONTENT_TYPE, ct.clone()),
                    None => builder,
                };
                builder.body(bytes.clone())
            }
        };
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok(HttpResponse {
            provider: request.provider,
            status,
            headers,
            body,
        })
    }
}

/// Header names the client reads; kept here so providers don't spell them again.
pub mod headers {
    use super::HeaderName;
    pub static RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
    pub static HUBSPOT_RATE_LIMIT_INTERVAL: HeaderName =
        HeaderName::from_static("x-hubspot-ratelimit-interval-milliseconds");
    pub static HUBSPOT_RATE_LIMIT_REMAINING: HeaderName =
        HeaderName::from_static("x-hubspot-ratelimit-remaining");
}

impl HttpResponse {
    /// Turns a 4xx into the matching [`ProviderError`]: 401 is a credentials problem, anything
    /// else a refusal with the provider's machine code (from whichever field it uses).
    pub fn error_for_status(self) -> Result<HttpResponse, ProviderError> {
        if self.is_success() {
            return Ok(self);
        }
        let code =
            provider_error_code(&self.body).unwrap_or_else(|| format!("http_{}", self.status));
        if self.status == 401 {
            return Err(ProviderError::Unauthorized {
                provider: self.provider,
                code,
            });
        }
        Err(ProviderError::Rejected {
            provider: self.provider,
            status: self.status,
            code,
            message: provider_error_message(&self.body).unwrap_or_default(),
        })
    }
}

/// The machine code in a provider error body: `category` (HubSpot), `errorCode` (Salesforce,
/// in an array), `code` (Zoho, Freshsales), `error` (OAuth, Bitrix24).
fn provider_error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = match &value {
        serde_json::Value::Array(items) => items.first()?.clone(),
        other => other.clone(),
    };
    ["category", "errorCode", "code", "error", "status"]
        .iter()
        .find_map(|k| object.get(*k).and_then(|v| v.as_str()).map(str::to_string))
}

/// The provider's human message, cut short: it goes to logs, never to responses.
fn provider_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = match &value {
        serde_json::Value::Array(items) => items.first()?.clone(),
        other => other.clone(),
    };
    ["message", "error_description"]
        .iter()
        .find_map(|k| object.get(*k).and_then(|v| v.as_str()))
        .map(|m| m.chars().take(300).collect())
}
