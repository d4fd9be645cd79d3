//! The shared HTTP client and OAuth requests, against wiremock: exact requests, retries,
//! throttling, redirects and timeouts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use shared::config::secrets::OAuthApps;
use shared::config::{Config, HttpSettings, OAuthAppCredentials};
use shared::error::ProviderError;
use shared::http::{HttpClient, Idempotency, OutboundRequest};
use shared::oauth::OAuthClient;
use shared::Provider;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn settings() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(500),
        max_attempts: 4,
        max_wait: Duration::from_secs(2),
        backoff_base: Duration::from_millis(5),
    }
}

fn get(server: &MockServer, p: &str) -> OutboundRequest {
    let url = url::Url::parse(&format!("{}{p}", server.uri())).unwrap();
    OutboundRequest::new(Provider::Hubspot, "test.get", Method::GET, url)
}

#[tokio::test]
async fn a_get_is_retried_after_server_errors_until_it_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let response = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded_by_the_attempt_budget() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let error = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { status: 502, .. }),
        "{error}"
    );
    assert!(error.is_retryable());
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_non_idempotent_post_is_not_resent_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let url = url::Url::parse(&format!("{}/x", server.uri())).unwrap();
    let request = OutboundRequest::new(Provider::Hubspot, "test.post", Method::POST, url)
        .idempotency(Idempotency::Unsafe);
    let error = HttpClient::new(&settings())
        .send(request)
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable { .. }));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_throttled_call_is_retried_and_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-hubspot-ratelimit-max", "110")
                .insert_header("x-hubspot-ratelimit-remaining", "0")
                .insert_header("x-hubspot-ratelimit-interval-milliseconds", "10000")
                .set_body_string(r#"{"status":"error","policyName":"TEN_SECONDLY_ROLLING"}"#),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let response = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_budget_is_handed_back_to_the_caller() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    let error = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap_err();
    match error {
        ProviderError::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("expected throttling, got {other}"),
    }
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not waited out in-process"
    );
}

#[tokio::test]
async fn a_daily_limit_is_not_retried_in_process() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(429).set_body_string(r#"{"policyName":"DAILY"}"#))
        .mount(&server)
        .await;
    let error = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Throttled { .. }));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/steal", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let request = get(&server, "/x").bearer(&SecretString::from("token-value".to_string()));
    let response = HttpClient::new(&settings()).send(request).await.unwrap();
    assert_eq!(response.status, 302);
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let quick = HttpSettings {
        max_attempts: 2,
        ..settings()
    };
    let error = HttpClient::new(&quick)
        .send(get(&server, "/x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Timeout { .. }), "{error}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_4xx_comes_back_with_the_providers_code() {
    let server = MockServer::start().await;
    Mock::given(path("/x"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR"}"#,
        ))
        .mount(&server)
        .await;
    let response = HttpClient::new(&settings())
        .send(get(&server, "/x"))
        .await
        .unwrap();
    match response.error_for_status().unwrap_err() {
        ProviderError::Rejected { status, code, .. } => {
            assert_eq!((status, code.as_str()), (400, "VALIDATION_ERROR"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

fn config_for(server: &MockServer) -> Config {
    let vars = HashMap::from([
        ("TABLE_NAME", "t".to_string()),
        ("KMS_KEY_ID", "k".to_string()),
        ("SETUP_PAGE_URL", "https://app.leadrelay.test/s".to_string()),
        (
            "OAUTH_REDIRECT_BASE_URL",
            "https://api.leadrelay.test".to_string(),
        ),
        ("HUBSPOT_ENDPOINT_URL", server.uri()),
    ]);
    let mut config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    // Fixed credentials: these tests are about the requests, not where the secret comes from
    // (tests/tests/integration/app_secrets.rs reads it from Secrets Manager).
    config.oauth_apps = OAuthApps::fixed(BTreeMap::from([(
        Provider::Hubspot,
        OAuthAppCredentials {
            client_id: "cid".into(),
            client_secret: SecretString::from("csecret"),
        },
    )]));
    config
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

#[tokio::test]
async fn the_code_exchange_sends_exactly_hubspots_documented_form() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/2026-03/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at", "refresh_token": "rt", "expires_in": 1800,
            "token_type": "bearer", "token_use": "access_token", "hub_id": 42
        })))
        .expect(1)
        .mount(&server)
        .await;
    let config = config_for(&server);
    let http = HttpClient::new(&settings());
    let oauth = OAuthClient::new(Provider::Hubspot, &config, &http).unwrap();
    let tokens = oauth
        .exchange_code(
            &SecretString::from("the-code".to_string()),
            Some(&SecretString::from("the-verifier".to_string())),
        )
        .await
        .unwrap();
    assert_eq!(tokens.extras["hub_id"], 42);
    assert!(tokens.expires_at.is_some());

    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        sent.headers.get("content-type").unwrap().to_str().unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert!(
        sent.headers.get("authorization").is_none(),
        "client credentials go in the body"
    );
    let expected: HashMap<String, String> = [
        ("grant_type", "authorization_code"),
        ("code", "the-code"),
        ("code_verifier", "the-verifier"),
        (
            "redirect_uri",
            "https://api.leadrelay.test/oauth/hubspot/callback",
        ),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(form(sent), expected);
}

#[tokio::test]
async fn the_refresh_and_revoke_requests_are_exactly_as_documented() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/2026-03/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "at2", "expires_in": 1800, "token_type": "bearer", "hub_id": 42
        })))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/2026-03/token/revoke"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let config = config_for(&server);
    let http = HttpClient::new(&settings());
    let oauth = OAuthClient::new(Provider::Hubspot, &config, &http).unwrap();
    let refreshed = oauth
        .refresh(&SecretString::from("rt".to_string()))
        .await
        .unwrap();
    assert!(
        refreshed.refresh_token.is_none(),
        "none sent: the caller keeps the stored one"
    );
    assert!(oauth
        .revoke(&SecretString::from("rt".to_string()))
        .await
        .unwrap());

    let requests = server.received_requests().await.unwrap();
    let refresh = form(&requests[0]);
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(refresh["refresh_token"], "rt");
    assert_eq!(refresh["client_secret"], "csecret");
    let revoke = form(&requests[1]);
    let expected: HashMap<String, String> = [
        ("token", "rt"),
        ("token_type_hint", "refresh_token"),
        ("client_id", "cid"),
        ("client_secret", "csecret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(revoke, expected);
}

#[tokio::test]
async fn an_invalid_grant_on_refresh_is_told_apart_from_other_refusals() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth/2026-03/token"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"x"}"#,
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/oauth/2026-03/token"))
        .respond_with(ResponseTemplate::new(401).set_body_string(r#"{"error":"invalid_client"}"#))
        .mount(&server)
        .await;
    let config = config_for(&server);
    let http = HttpClient::new(&settings());
    let oauth = OAuthClient::new(Provider::Hubspot, &config, &http).unwrap();
    let dead = oauth
        .refresh(&SecretString::from("rt".to_string()))
        .await
        .unwrap_err();
    assert!(matches!(dead, ProviderError::InvalidGrant { .. }), "{dead}");
    let misconfigured = oauth
        .refresh(&SecretString::from("rt".to_string()))
        .await
        .unwrap_err();
    assert!(
        matches!(misconfigured, ProviderError::Unauthorized { .. }),
        "{misconfigured}"
    );
}
