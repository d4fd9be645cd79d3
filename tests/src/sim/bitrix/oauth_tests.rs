//! OAuth tests: the consent's redirect, single-use codes, the GET-only token
//! endpoint, rotating refresh tokens, access-token checks, the sim clock.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::header;
use serde_json::{json, Value};

use super::*;
use crate::sim::oauth::testkit;

pub(super) const PORTAL: &str = "acme.bitrix24.com";
pub(super) const OTHER_PORTAL: &str = "other.bitrix24.de";
pub(super) const REDIRECT: &str = "https://relay.example.test/oauth/callback/bitrix24";

pub(super) use crate::sim::oauth::testkit::client;

/// The consent screen as a browser reaches it (no `X-Forwarded-Host`), with
/// standard parameters plus `extra` (an empty value removes a standard one).
/// Returns the status and the redirect's query (empty when no redirect).
pub(super) async fn consent(
    sim: &BitrixSim,
    extra: &[(&str, &str)],
) -> (u16, HashMap<String, String>) {
    let client_id = sim.config().client_id.clone();
    let standard = [
        ("client_id", client_id.as_str()),
        ("state", "st/ate+1"),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
    ];
    let url = testkit::authorize_url(&sim.base_url(), AUTHORIZE_PATH, &standard, extra);
    testkit::consent(url, &[], REDIRECT).await
}

/// `GET /oauth/token/` on `host` with these query parameters.
pub(super) async fn token_get(sim: &BitrixSim, host: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = client()
        .get(format!("{}{TOKEN_PATH}", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, host)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) async fn exchange(sim: &BitrixSim, code: &str) -> (u16, Value) {
    let config = sim.config().clone();
    token_get(
        sim,
        DEFAULT_OAUTH_HOST,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &config.client_id),
            ("client_secret", &config.client_secret),
            ("code", code),
        ],
    )
    .await
}

pub(super) async fn refresh(sim: &BitrixSim, token: &str) -> (u16, Value) {
    let config = sim.config();
    // The refresh grant's fields, in the query string.
    let query = testkit::refresh_grant(&config.client_id, &config.client_secret, token);
    token_get(sim, DEFAULT_OAUTH_HOST, &query).await
}

/// `POST /rest/{method}` on `portal` with a JSON body (`auth` added when given).
pub(super) async fn rest(
    sim: &BitrixSim,
    portal: &str,
    method: &str,
    auth: Option<&str>,
    mut body: Value,
) -> (u16, Value) {
    if let Some(auth) = auth {
        body["auth"] = json!(auth);
    }
    let response = client()
        .post(format!("{}{REST_PREFIX}{method}", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, portal)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(super) fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

pub(super) async fn started() -> BitrixSim {
    let sim = BitrixSim::start(BitrixSimConfig::default()).await;
    sim.add_portal(PORTAL);
    sim
}

#[tokio::test]
async fn consent_redirects_with_bitrix_params() {
    let sim = started().await;
    let member = sim.member_id(PORTAL);
    assert_eq!(member.len(), 32);
    let other_member = sim.add_portal(OTHER_PORTAL);
    assert_eq!(sim.add_portal(OTHER_PORTAL), other_member, "idempotent");

    let (status, query) = consent(&sim, &[]).await;
    assert_eq!(status, 302);
    assert_eq!(query["state"], "st/ate+1");
    assert_eq!(query["domain"], PORTAL, "the first portal by default");
    assert_eq!(query["member_id"], member);
    assert_eq!(query["scope"], "crm");
    assert_eq!(query["server_domain"], DEFAULT_OAUTH_HOST);
    assert!(!query["code"].is_empty());

    // Another portal by sim_portal, with its own OAuth server.
    sim.set_oauth_server(OTHER_PORTAL, "oauth.bitrix24.tech");
    let (status, query) = consent(&sim, &[("sim_portal", OTHER_PORTAL)]).await;
    assert_eq!(status, 302);
    assert_eq!(query["domain"], OTHER_PORTAL);
    assert_eq!(query["member_id"], other_member);
    assert_eq!(query["server_domain"], "oauth.bitrix24.tech");
    let (status, body) = exchange(&sim, &query["code"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["domain"], "oauth.bitrix24.tech");
    assert_eq!(body["server_endpoint"], "https://oauth.bitrix24.tech/rest/");
    assert_eq!(
        body["client_endpoint"],
        format!("https://{OTHER_PORTAL}/rest/")
    );

    // Denied: the error and the state only.
    let (status, query) = consent(&sim, &[("sim_deny", "1")]).await;
    assert_eq!(status, 302);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st/ate+1");
    assert!(!query.contains_key("code"));

    // Unknown client, unknown portal, no redirect at all: error pages.
    for extra in [
        vec![("client_id", "nope")],
        vec![("sim_portal", "ghost.bitrix24.com")],
        vec![("redirect_uri", "")],
    ] {
        let (status, query) = consent(&sim, &extra).await;
        assert_eq!(status, 400, "{extra:?}");
        assert!(query.is_empty());
    }
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path == AUTHORIZE_PATH)
            .count(),
        6
    );
}

#[tokio::test]
async fn consent_without_redirect_uri_uses_the_configured_one() {
    let sim = BitrixSim::start(BitrixSimConfig {
        redirect_uri: Some("https://configured.example.test/cb".to_owned()),
        ..BitrixSimConfig::default()
    })
    .await;
    sim.add_portal(PORTAL);
    let response = client()
        .get(format!(
            "{}/oauth/authorize?client_id={}&state=s1",
            sim.base_url(),
            sim.config().client_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with("https://configured.example.test/cb?code="),
        "{location}"
    );
}

#[tokio::test]
async fn code_exchange_answers_bitrix_shape_and_codes_are_single_use() {
    let sim = started().await;
    let (_, query) = consent(&sim, &[]).await;
    let code = query["code"].clone();

    // Bad secret first: refused, and the code survives it.
    let (status, body) = token_get(
        &sim,
        DEFAULT_OAUTH_HOST,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "test-bitrix-client-id"),
            ("client_secret", "wrong"),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));

    let (status, body) = exchange(&sim, &code).await;
    assert_eq!(status, 200, "{body}");
    let expires = body["expires"].as_u64().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires.abs_diff(now + 3600) <= 5, "{body}");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "crm");
    assert_eq!(body["domain"], DEFAULT_OAUTH_HOST);
    assert_eq!(body["server_endpoint"], "https://oauth.bitrix.info/rest/");
    assert_eq!(body["status"], "L");
    assert_eq!(body["client_endpoint"], format!("https://{PORTAL}/rest/"));
    assert_eq!(body["member_id"], sim.member_id(PORTAL));
    assert_eq!(body["user_id"], 1);
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(access, body["refresh_token"].as_str().unwrap());
    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["CODE"], APP_CODE);
    assert_eq!(body["result"]["INSTALLED"], true);

    // Single use.
    let (status, body) = exchange(&sim, &code).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    // Unknown, and expired after 30 s on the sim clock.
    let (status, body) = exchange(&sim, "not-a-code").await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let (_, query) = consent(&sim, &[]).await;
    sim.advance_clock(Duration::from_secs(31));
    let (status, body) = exchange(&sim, &query["code"]).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

    // The other OAuth hosts share the store.
    let (_, query) = consent(&sim, &[]).await;
    let config = sim.config().clone();
    let (status, body) = token_get(
        &sim,
        "oauth.bitrix.com",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &config.client_id),
            ("client_secret", &config.client_secret),
            ("code", &query["code"]),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn token_endpoint_refuses_post() {
    let sim = started().await;
    let (_, refresh_token) = sim.seed_tokens(PORTAL);
    let config = sim.config().clone();
    let response = client()
        .post(format!("{}{TOKEN_PATH}", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, DEFAULT_OAUTH_HOST)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("refresh_token", refresh_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request", "error_description": "GET expected"})
    );
    assert_eq!(sim.live_refresh_tokens(PORTAL), 1, "nothing rotated");
    assert_eq!(sim.refresh_calls(), 0);
}

#[tokio::test]
async fn refresh_rotates_and_the_presented_token_dies() {
    let sim = started().await;
    let (_, first) = sim.seed_tokens(PORTAL);
    let (status, body) = refresh(&sim, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(body["client_endpoint"], format!("https://{PORTAL}/rest/"));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let (status, _) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(sim.live_refresh_tokens(PORTAL), 1);

    // Reusing the old one fails and does not hurt the new one.
    let (status, body) = refresh(&sim, &first).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid refresh token"})
        )
    );
    let (status, body) = refresh(&sim, &second).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = refresh(&sim, "unknown").await;
    assert_eq!(status, 400);
    assert_eq!(sim.refresh_calls(), 4);
}

#[tokio::test]
async fn access_token_checks() {
    let sim = started().await;
    sim.add_portal(OTHER_PORTAL);
    let (access, refresh_token) = sim.seed_tokens(PORTAL);
    let (other_access, _) = sim.seed_tokens(OTHER_PORTAL);

    let (status, body) = rest(&sim, PORTAL, "app.info", None, json!({})).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"})
        )
    );
    // A token of another portal, an unknown token.
    for token in [other_access.as_str(), "0000"] {
        let (status, body) = rest(&sim, PORTAL, "app.info", Some(token), json!({})).await;
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error": "invalid_token", "error_description": "Unable to authenticate user"})
            )
        );
    }
    // Auth in the query string works too.
    let response = client()
        .post(format!(
            "{}/rest/app.info.json?auth={access}",
            sim.base_url()
        ))
        .header(FORWARDED_HOST_HEADER, PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    // Expired by the control, then by the clock.
    sim.expire_access_tokens(PORTAL);
    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "expired_token", "error_description": "The access token provided has expired."})
        )
    );
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = rest(&sim, PORTAL, "app.info", Some(&fresh), json!({})).await;
    assert_eq!(status, 200);
    sim.advance_clock(Duration::from_secs(3601));
    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&fresh), json!({})).await;
    assert_eq!((status, error_of(&body)), (401, "expired_token"));

    // Uninstalled: every token of the portal dies, the other portal is fine.
    sim.uninstall_app(PORTAL);
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&fresh), json!({})).await;
    assert_eq!((status, error_of(&body)), (401, "invalid_token"));
    assert_eq!(sim.live_refresh_tokens(PORTAL), 0);
    assert_eq!(sim.live_refresh_tokens(OTHER_PORTAL), 1);
}

#[tokio::test]
async fn refresh_tokens_expire_after_the_ttl_on_the_sim_clock() {
    let sim = BitrixSim::start(BitrixSimConfig {
        refresh_token_ttl: Duration::from_secs(3 * 24 * 3600),
        ..BitrixSimConfig::default()
    })
    .await;
    sim.add_portal(PORTAL);
    let (_, old) = sim.seed_tokens(PORTAL);
    let (_, young) = sim.seed_tokens(PORTAL);
    sim.advance_clock(Duration::from_secs(2 * 24 * 3600));
    // Rotating restarts the TTL for the new token.
    let (status, body) = refresh(&sim, &young).await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(sim.live_refresh_tokens(PORTAL), 2);
    sim.advance_clock(Duration::from_secs(24 * 3600));
    assert_eq!(sim.live_refresh_tokens(PORTAL), 1);
    let (status, body) = refresh(&sim, &old).await;
    assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
    let (status, _) = refresh(&sim, &rotated).await;
    assert_eq!(status, 200);

    // The default TTL is 28 days.
    assert_eq!(
        BitrixSimConfig::default().refresh_token_ttl,
        Duration::from_secs(28 * 24 * 3600)
    );
}

#[tokio::test]
async fn payment_required_and_rest_denied_portals() {
    let sim = started().await;
    let (access, refresh_token) = sim.seed_tokens(PORTAL);
    let (_, query) = consent(&sim, &[]).await;
    sim.set_payment_required(PORTAL, true);

    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(
        (status, body),
        (
            402,
            json!({"error": "PAYMENT_REQUIRED", "error_description": "Payment required"})
        )
    );
    let payment = json!({"error": "PAYMENT_REQUIRED", "error_description": "Payment required"});
    let (status, body) = refresh(&sim, &refresh_token).await;
    assert_eq!((status, &body), (400, &payment));
    let (status, body) = exchange(&sim, &query["code"]).await;
    assert_eq!((status, &body), (400, &payment));
    // The refresh token was not rotated away by the refused refresh.
    assert_eq!(sim.live_refresh_tokens(PORTAL), 1);

    sim.set_payment_required(PORTAL, false);
    sim.set_rest_denied(PORTAL, true);
    let (status, body) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "ACCESS_DENIED", "error_description": "REST is available only on commercial plans"})
        )
    );
    sim.set_rest_denied(PORTAL, false);
    let (status, _) = rest(&sim, PORTAL, "app.info", Some(&access), json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&sim, &refresh_token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn faults_on_the_token_route() {
    let sim = started().await;
    let (_, refresh_token) = sim.seed_tokens(PORTAL);
    sim.inject(BitrixRoute::Token, Fault::Status(500, "{}".to_owned()));
    let (status, _) = refresh(&sim, &refresh_token).await;
    assert_eq!(status, 500);
    assert_eq!(sim.refresh_calls(), 0, "a faulted call is not handled");
    let (status, _) = refresh(&sim, &refresh_token).await;
    assert_eq!(status, 200);
    let token_requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == TOKEN_PATH)
        .collect();
    assert_eq!(token_requests.len(), 2);
    assert_eq!(token_requests[0].status, Some(500));
    assert_eq!(token_requests[1].host, DEFAULT_OAUTH_HOST);
    assert_eq!(token_requests[1].method, "GET");
    assert_eq!(
        token_requests[1].query_params()["grant_type"],
        "refresh_token"
    );
}
