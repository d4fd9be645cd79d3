//! OAuth, pipelines, rate-limit and fault tests (the simulator's original
//! behaviour, kept green after the split into modules).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::header;
use serde_json::{json, Value};

use super::*;
use crate::sim::oauth::testkit::{self, client, verifier};

const REDIRECT: &str = "https://relay.example.test/oauth/callback?source=hubspot";

fn creds(sim: &HubSpotSim) -> Vec<(&'static str, String)> {
    vec![
        ("client_id", sim.config().client_id.clone()),
        ("client_secret", sim.config().client_secret.clone()),
    ]
}

/// Runs the consent redirect and returns the query of the Location.
async fn consent(sim: &HubSpotSim, challenge: &str) -> HashMap<String, String> {
    let standard = [
        ("client_id", sim.config().client_id.as_str()),
        ("redirect_uri", REDIRECT),
        (
            "scope",
            "oauth crm.objects.deals.read crm.objects.contacts.write",
        ),
        ("state", "st/ate+ with spaces&x=y"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let url = testkit::authorize_url(&sim.base_url(), AUTHORIZE_PATH, &standard, &[]);
    let (status, query) =
        testkit::consent(url, &[], "https://relay.example.test/oauth/callback?").await;
    assert_eq!(status, 302);
    assert_eq!(query.get("source").map(String::as_str), Some("hubspot"));
    assert_eq!(
        query.get("state").map(String::as_str),
        Some("st/ate+ with spaces&x=y")
    );
    query
}

async fn exchange(sim: &HubSpotSim, code: &str, verifier: &str) -> (u16, Value) {
    let c = sim.config();
    let form = testkit::code_grant(&c.client_id, &c.client_secret, code, REDIRECT, verifier);
    token_call(sim, &form).await
}

async fn refresh_with(sim: &HubSpotSim, token: &str) -> (u16, Value) {
    let c = sim.config();
    token_call(
        sim,
        &testkit::refresh_grant(&c.client_id, &c.client_secret, token),
    )
    .await
}

/// `POST` to the token endpoint; HubSpot answers JSON, errors included.
async fn token_call(sim: &HubSpotSim, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}{}", sim.base_url(), TOKEN_PATH);
    let (status, body) = testkit::post_form(&url, &[], form).await;
    assert!(!body.is_null(), "a JSON answer");
    (status, body)
}

async fn get_pipelines(
    sim: &HubSpotSim,
    http: &reqwest::Client,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(format!("{}{}", sim.base_url(), PIPELINES_PATH));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn connect(sim: &HubSpotSim) -> Value {
    let verifier = verifier();
    let query = consent(sim, &s256_challenge(&verifier)).await;
    let (status, body) = exchange(sim, &query["code"], &verifier).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn health_is_ok() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let text = client()
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "ok");
}

#[tokio::test]
async fn pkce_exchange_succeeds_with_the_right_verifier() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let body = connect(&sim).await;

    let access = body["access_token"].as_str().unwrap();
    assert!(
        access.len() >= 250,
        "access token too short: {}",
        access.len()
    );
    assert!(access.len() <= 300);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["token_use"], "access_token");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["hub_id"], sim.config().hub_id);
    assert_eq!(body["user_id"], SIM_USER_ID);
    assert_eq!(
        body["scopes"],
        json!([
            "oauth",
            "crm.objects.deals.read",
            "crm.objects.contacts.write"
        ])
    );
    assert_eq!(
        sim.live_refresh_tokens(),
        vec![body["refresh_token"].as_str().unwrap().to_owned()]
    );
    assert_eq!(sim.issued_access_tokens(), vec![access.to_owned()]);
    assert_eq!(sim.count("GET", AUTHORIZE_PATH), 1);
    assert_eq!(sim.count("post", TOKEN_PATH), 1);
    let token_request = sim
        .requests()
        .into_iter()
        .find(|r| r.path == TOKEN_PATH)
        .unwrap();
    assert_eq!(token_request.form()["grant_type"], "authorization_code");
    assert!(token_request
        .header("Content-Type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
}

#[tokio::test]
async fn pkce_exchange_fails_with_a_wrong_verifier() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let right = verifier();
    let query = consent(&sim, &s256_challenge(&right)).await;

    let (status, body) = exchange(&sim, &query["code"], &verifier()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], "BAD_AUTH_CODE");
    assert!(body["error_description"].is_string());
    assert!(body["message"].is_string());
    assert!(body["correlationId"].is_string());
    assert!(body["category"].is_string());
    assert!(sim.live_refresh_tokens().is_empty());
    // That a failed attempt burns the code: sim::oauth's
    // every_token_endpoint_follows_the_same_rules_over_http.
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_redirect_uri() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let verifier = verifier();
    let query = consent(&sim, &s256_challenge(&verifier)).await;
    let (status, _) = exchange(&sim, &query["code"], &verifier).await;
    assert_eq!(status, 200);
    let (status, body) = exchange(&sim, &query["code"], &verifier).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(sim.live_refresh_tokens().len(), 1);

    // Mismatched redirect_uri.
    let query = consent(&sim, &s256_challenge(&verifier)).await;
    let mut form = creds(&sim);
    form.extend([
        ("grant_type", "authorization_code".to_owned()),
        ("code", query["code"].clone()),
        ("redirect_uri", "https://evil.example.test/cb".to_owned()),
        ("code_verifier", verifier.clone()),
    ]);
    let response = http
        .post(format!("{}{}", sim.base_url(), TOKEN_PATH))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], "BAD_REDIRECT_URI");

    // Expired code.
    let query = consent(&sim, &s256_challenge(&verifier)).await;
    sim.expire_auth_codes();
    let (status, body) = exchange(&sim, &query["code"], &verifier).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn client_credentials_are_checked_and_basic_auth_works() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let seeded = sim.seed_connection(&["oauth"]);
    let url = format!("{}{}", sim.base_url(), TOKEN_PATH);

    let response = http
        .post(&url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &seeded.refresh_token),
            ("client_id", "demo-client-id"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let response = http
        .post(&url)
        .basic_auth("demo-client-id", Some("wrong"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &seeded.refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));

    let response = http
        .post(&url)
        .basic_auth("demo-client-id", Some("demo-client-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &seeded.refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // JSON bodies are refused.
    let response = http
        .post(&url)
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn refresh_issues_new_access_token_and_keeps_refresh_token() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let first = connect(&sim).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();

    let (status, second) = refresh_with(&sim, refresh_token).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["refresh_token"], refresh_token);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scopes"], first["scopes"]);
    assert_eq!(sim.issued_access_tokens().len(), 2);
    assert_eq!(sim.live_refresh_tokens(), vec![refresh_token.to_owned()]);

    // Both access tokens work until they expire.
    for token in sim.issued_access_tokens() {
        assert_eq!(get_pipelines(&sim, &http, Some(&token)).await.status(), 200);
    }

    let (status, body) = refresh_with(&sim, "not-a-refresh-token").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
}

#[tokio::test]
async fn revoke_kills_refresh_token_and_its_access_tokens() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let body = connect(&sim).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let other = sim.seed_connection(&["oauth"]);

    let mut form = creds(&sim);
    form.extend([
        ("token", refresh_token.clone()),
        ("token_type_hint", "refresh_token".to_owned()),
    ]);
    let response = http
        .post(format!("{}{}", sim.base_url(), REVOKE_PATH))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "");

    assert_eq!(sim.revoked_tokens(), vec![refresh_token.clone()]);
    assert_eq!(sim.live_refresh_tokens(), vec![other.refresh_token.clone()]);
    let (status, body) = refresh_with(&sim, &refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    let response = get_pipelines(&sim, &http, Some(&access_token)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    // The unrelated connection is untouched.
    assert_eq!(
        get_pipelines(&sim, &http, Some(&other.access_token))
            .await
            .status(),
        200
    );

    // Unknown tokens: still 200.
    let mut form = creds(&sim);
    form.push(("token", "never-issued".to_owned()));
    let response = http
        .post(format!("{}{}", sim.base_url(), REVOKE_PATH))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn pipelines_need_a_live_token() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();

    let response = get_pipelines(&sim, &http, None).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["correlationId"].is_string());
    assert!(body["message"].is_string());

    assert_eq!(
        get_pipelines(&sim, &http, Some("bogus")).await.status(),
        401
    );

    let seeded = sim.seed_connection(&["crm.objects.deals.read"]);
    let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "100");
    assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "99");
    assert_eq!(
        response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["id"], "default");
    assert_eq!(results[0]["label"], "Sales Pipeline");
    let stage_ids: Vec<&str> = results[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        stage_ids,
        [
            "appointmentscheduled",
            "qualifiedtobuy",
            "presentationscheduled",
            "decisionmakerboughtin",
            "contractsent",
            "closedwon",
            "closedlost"
        ]
    );
    assert_eq!(results[0]["stages"][0]["metadata"]["probability"], "0.2");
    assert_eq!(results[0]["stages"][5]["metadata"]["isClosed"], "true");
    assert!(results[1]["id"].as_str().unwrap().parse::<u64>().is_ok());

    // Same data at the date-versioned path.
    let response = http
        .get(format!("{}{}", sim.base_url(), PIPELINES_PATH))
        .bearer_auth(&seeded.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    sim.expire_access_tokens();
    let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");

    let (status, fresh) = refresh_with(&sim, &seeded.refresh_token).await;
    assert_eq!(status, 200);
    let fresh_token = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        get_pipelines(&sim, &http, Some(fresh_token)).await.status(),
        200
    );
}

#[tokio::test]
async fn throttles_after_the_limit() {
    let sim = HubSpotSim::start(HubSpotSimConfig {
        rate_limit: (3, Duration::from_millis(400)),
        ..HubSpotSimConfig::default()
    })
    .await;
    let http = client();
    let seeded = sim.seed_connection(&["oauth"]);
    for expected_remaining in ["2", "1", "0"] {
        let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-hubspot-ratelimit-remaining"],
            expected_remaining
        );
    }
    let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "3");
    assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "0");
    assert_eq!(
        response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "400"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert!(body["correlationId"].is_string());
    assert!(body["groupName"].is_string());

    // The window rolls.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        get_pipelines(&sim, &http, Some(&seeded.access_token))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_queued_fault_fires_once() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let seeded = sim.seed_connection(&["oauth"]);

    sim.inject(
        Route::Token,
        Fault::Status(503, "{\"status\":\"error\"}".to_owned()),
    );
    sim.inject(Route::Token, Fault::Garbage);
    assert_eq!(sim.pending_faults(), 2);

    // Another route is unaffected.
    assert_eq!(
        get_pipelines(&sim, &http, Some(&seeded.access_token))
            .await
            .status(),
        200
    );

    let url = format!("{}{}", sim.base_url(), TOKEN_PATH);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", seeded.refresh_token.as_str()),
        ("client_id", "demo-client-id"),
        ("client_secret", "demo-client-secret"),
    ];
    let response = http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let response = http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.json::<Value>().await.is_err(),
        "garbage must not parse"
    );
    let response = http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.json::<Value>().await.unwrap()["access_token"].is_string());
    assert_eq!(sim.pending_faults(), 0);
    assert_eq!(sim.count("POST", TOKEN_PATH), 3);

    // Throttle via Any, then Delay.
    sim.inject(Route::Any, Fault::Throttle);
    let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("x-hubspot-ratelimit-max"));
    sim.inject(Route::Pipelines, Fault::Delay(Duration::from_millis(200)));
    let started = Instant::now();
    let response = get_pipelines(&sim, &http, Some(&seeded.access_token)).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Health is never faulted.
    sim.inject(Route::Any, Fault::Garbage);
    let response = http
        .get(format!("{}/health", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(sim.pending_faults(), 1);
}

#[tokio::test]
async fn consent_denial_and_bad_requests() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let http = client();
    let challenge = s256_challenge(&verifier());
    let authorize = |client_id: &str, with_state: bool| {
        let mut url = url::Url::parse(&format!("{}{}", sim.base_url(), AUTHORIZE_PATH)).unwrap();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", client_id)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("scope", "oauth")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if with_state {
                q.append_pair("state", "abc");
            }
        }
        url
    };

    let response = http.get(authorize("nope", true)).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = http
        .get(authorize("demo-client-id", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    sim.deny_next_consent();
    let response = http
        .get(authorize("demo-client-id", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "abc");
    assert!(query.contains_key("error_description"));
    assert!(!query.contains_key("code"));

    // Only the next consent is denied.
    let response = http
        .get(authorize("demo-client-id", true))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(location.query_pairs().any(|(k, _)| k == "code"));
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let addr = sim.addr();
    let clone = sim.clone();
    drop(sim);
    // Still served through the clone.
    let health = format!("http://{addr}/health");
    assert!(reqwest::get(&health).await.is_ok());
    drop(clone);
    let mut stopped = false;
    for _ in 0..50 {
        // A fresh client each time: no pooled connection to reuse.
        if reqwest::Client::new().get(&health).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped,
        "server still answering after the last handle was dropped"
    );
}
