//! OAuth tests: consent per DC, code exchange, PKCE, refresh per rotation
//! mode, Zoho's three token caps, revocation, host checks and faults.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::header;
use serde_json::Value;

use super::*;
use crate::sim::oauth::testkit::{self, client, verifier};

const REDIRECT: &str = "https://relay.example.test/oauth/callback/zoho";
const SCOPES: &str = "ZohoCRM.modules.leads.ALL,ZohoCRM.org.READ";

fn dc_of(code: &str) -> &'static ZohoDc {
    dc(code).unwrap()
}

/// Runs the consent screen with the standard parameters plus `extra`;
/// returns the status and the redirect's query (empty when not a redirect).
async fn consent_raw(sim: &ZohoSim, extra: &[(&str, &str)]) -> (u16, HashMap<String, String>) {
    let client_id = sim.config().client_id.clone();
    let standard = [
        ("scope", SCOPES),
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("access_type", "offline"),
        ("prompt", "consent"),
        ("state", "st/ate+1&x=y"),
    ];
    let url = testkit::authorize_url(&sim.base_url(), AUTHORIZE_PATH, &standard, extra);
    testkit::consent(url, &[], REDIRECT).await
}

async fn consent(sim: &ZohoSim, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let (status, query) = consent_raw(sim, extra).await;
    assert_eq!(status, 302);
    assert_eq!(query["state"], "st/ate+1&x=y");
    query
}

/// POST to the token endpoint of `host` (`None`: no X-Forwarded-Host).
async fn token_call(sim: &ZohoSim, host: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}{}", sim.base_url(), TOKEN_PATH);
    let headers: Vec<(&str, &str)> = host
        .map(|h| (FORWARDED_HOST_HEADER, h))
        .into_iter()
        .collect();
    testkit::post_form(&url, &headers, form).await
}

async fn exchange(sim: &ZohoSim, host: &str, code: &str, verifier: Option<&str>) -> Value {
    let config = sim.config();
    let (id, secret) = (&config.client_id, &config.client_secret);
    let grant = testkit::code_grant(id, secret, code, REDIRECT, verifier.unwrap_or_default());
    // Without a verifier the form has no code_verifier at all.
    let form: Vec<(&str, &str)> = grant
        .into_iter()
        .filter(|(key, _)| verifier.is_some() || *key != "code_verifier")
        .collect();
    let (status, body) = token_call(sim, Some(host), &form).await;
    assert_eq!(status, 200, "Zoho answers token errors with 200 too");
    body
}

async fn refresh(sim: &ZohoSim, host: &str, token: &str) -> Value {
    let config = sim.config();
    let form = testkit::refresh_grant(&config.client_id, &config.client_secret, token);
    let (status, body) = token_call(sim, Some(host), &form).await;
    assert_eq!(status, 200);
    body
}

/// Consent in `dc` and exchange there: the token response.
async fn connect(sim: &ZohoSim, dc_code: &str) -> Value {
    let query = consent(sim, &[("sim_dc", dc_code)]).await;
    let body = exchange(sim, dc_of(dc_code).accounts_host, &query["code"], None).await;
    assert!(body["access_token"].is_string(), "{body}");
    body
}

async fn org_status(sim: &ZohoSim, host: &str, token: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/crm/v8/org", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, host)
        .header(header::AUTHORIZATION, format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn text(body: &Value, key: &str) -> String {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {body}"))
        .to_owned()
}

#[tokio::test]
async fn consent_redirects_with_the_users_dc_and_accounts_server() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    for dc in ZOHO_DCS {
        let query = consent(&sim, &[("sim_dc", dc.code)]).await;
        assert!(query["code"].starts_with("1000."));
        assert_eq!(query["location"], dc.code);
        assert_eq!(
            query["accounts-server"],
            format!("https://{}", dc.accounts_host)
        );
    }
    // Without sim_dc: the configured default (US).
    let query = consent(&sim, &[]).await;
    assert_eq!(query["location"], "us");
    assert_eq!(query["accounts-server"], "https://accounts.zoho.com");

    // A forged accounts-server is passed through for the relay to refuse.
    let query = consent(
        &sim,
        &[
            ("sim_dc", "au"),
            ("sim_accounts_server", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(query["accounts-server"], "https://evil.example");
    assert_eq!(query["location"], "au");

    // The browser's request went to the US accounts server.
    let first = &sim.requests()[0];
    assert_eq!(first.host, "accounts.zoho.com");
    assert_eq!(first.dc, Some("us"));
}

#[tokio::test]
async fn consent_errors_and_denial() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let (status, _) = consent_raw(&sim, &[("client_id", "someone-else")]).await;
    assert_eq!(status, 400);
    let (status, _) = consent_raw(&sim, &[("redirect_uri", "")]).await;
    assert_eq!(status, 400);

    let (status, query) = consent_raw(&sim, &[("sim_deny", "1")]).await;
    assert_eq!(status, 302);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st/ate+1&x=y");
    assert!(!query.contains_key("code"));

    sim.deny_next_consent();
    let (_, query) = consent_raw(&sim, &[]).await;
    assert_eq!(query["error"], "access_denied");
    let (_, query) = consent_raw(&sim, &[]).await;
    assert!(query.contains_key("code"));
}

#[tokio::test]
async fn a_code_is_refused_on_another_dc_and_is_single_use() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let query = consent(&sim, &[("sim_dc", "au"), ("sim_user", "bob@example.com")]).await;
    let code = &query["code"];

    // The US accounts server (no forwarded host) and the EU one do not know it.
    let config = sim.config();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("redirect_uri", REDIRECT),
        ("code", code.as_str()),
    ];
    let (status, body) = token_call(&sim, None, &form).await;
    assert_eq!(
        (status, text(&body, "error")),
        (200, "invalid_code".to_owned())
    );
    let body = exchange(&sim, "accounts.zoho.eu", code, None).await;
    assert_eq!(body["error"], "invalid_code");

    // Its own DC redeems it once.
    let body = exchange(&sim, "accounts.zoho.com.au", code, None).await;
    assert!(text(&body, "access_token").starts_with("1000."));
    assert!(text(&body, "refresh_token").starts_with("1000."));
    assert_eq!(body["api_domain"], "https://www.zohoapis.com.au");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let body2 = exchange(&sim, "accounts.zoho.com.au", code, None).await;
    assert_eq!(body2["error"], "invalid_code");

    let refresh_token = text(&body, "refresh_token");
    assert_eq!(
        sim.live_refresh_tokens("au", "bob@example.com"),
        vec![refresh_token.clone()]
    );
    assert!(sim.is_refresh_token_live(&refresh_token));
    assert_eq!(sim.access_tokens_minted(), 1);
    assert_eq!(sim.access_tokens_minted_for(&refresh_token), 1);

    let hosts: Vec<(String, Option<&str>)> = sim
        .requests()
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .map(|r| (r.host.clone(), r.dc))
        .collect();
    assert_eq!(
        hosts,
        vec![
            ("accounts.zoho.com".to_owned(), Some("us")),
            ("accounts.zoho.eu".to_owned(), Some("eu")),
            ("accounts.zoho.com.au".to_owned(), Some("au")),
            ("accounts.zoho.com.au".to_owned(), Some("au")),
        ]
    );
    assert_eq!(sim.count_on("au", "POST", TOKEN_PATH), 2);
}

/// A wrong, burnt or missing verifier and the right one: see the table test
/// `sim::oauth::tests::every_token_endpoint_follows_the_same_rules_over_http`.
#[tokio::test]
async fn a_plain_pkce_challenge_is_refused_at_consent() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let challenge = s256_challenge(&verifier());
    let (_, query) = consent_raw(
        &sim,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    assert_eq!(query["error"], "invalid_request");
}

#[tokio::test]
async fn exchange_checks_client_redirect_uri_and_expiry() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let query = consent(&sim, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "demo-zoho-client-id"),
        ("client_secret", "wrong"),
        ("redirect_uri", REDIRECT),
        ("code", query["code"].as_str()),
    ];
    let (status, body) = token_call(&sim, None, &form).await;
    assert_eq!(
        (status, text(&body, "error")),
        (200, "invalid_client".to_owned())
    );

    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "demo-zoho-client-id"),
        ("client_secret", "demo-zoho-client-secret"),
        ("redirect_uri", "https://elsewhere.example/cb"),
        ("code", query["code"].as_str()),
    ];
    let (_, body) = token_call(&sim, None, &form).await;
    assert_eq!(body["error"], "invalid_redirect_uri");

    let query = consent(&sim, &[]).await;
    sim.expire_auth_codes();
    let body = exchange(&sim, "accounts.zoho.com", &query["code"], None).await;
    assert_eq!(body["error"], "invalid_code");

    // Parameters in the query string work as well as in the body.
    let query = consent(&sim, &[]).await;
    let mut url = url::Url::parse(&format!("{}{}", sim.base_url(), TOKEN_PATH)).unwrap();
    url.query_pairs_mut()
        .append_pair("grant_type", "authorization_code")
        .append_pair("client_id", "demo-zoho-client-id")
        .append_pair("client_secret", "demo-zoho-client-secret")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code", &query["code"]);
    let body: Value = client()
        .post(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["access_token"].is_string(), "{body}");
}

#[tokio::test]
async fn refresh_tokens_only_for_offline_access_and_repeat_consent() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let online = consent(&sim, &[("access_type", "online")]).await;
    let body = exchange(&sim, "accounts.zoho.com", &online["code"], None).await;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");

    let first = connect(&sim, "us").await;
    assert!(first["refresh_token"].is_string());
    // Offline again without prompt=consent: no second refresh token.
    let again = consent(&sim, &[("prompt", "none")]).await;
    let body = exchange(&sim, "accounts.zoho.com", &again["code"], None).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    // With prompt=consent: a new one.
    let second = connect(&sim, "us").await;
    assert!(second["refresh_token"].is_string());
    assert_eq!(sim.live_refresh_tokens("us", DEFAULT_USER).len(), 2);
}

#[tokio::test]
async fn refresh_without_rotation_keeps_the_refresh_token() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let tokens = connect(&sim, "eu").await;
    let refresh_token = text(&tokens, "refresh_token");

    let body = refresh(&sim, "accounts.zoho.eu", &refresh_token).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["api_domain"], "https://www.zohoapis.eu");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let access = text(&body, "access_token");
    assert_ne!(access, text(&tokens, "access_token"));
    assert_eq!(org_status(&sim, "www.zohoapis.eu", &access).await.0, 200);
    // The earlier access token still works too.
    assert_eq!(
        org_status(&sim, "www.zohoapis.eu", &text(&tokens, "access_token"))
            .await
            .0,
        200
    );
    let body = refresh(&sim, "accounts.zoho.eu", &refresh_token).await;
    assert!(body["access_token"].is_string());

    // Another DC's accounts server does not know the refresh token.
    let body = refresh(&sim, "accounts.zoho.com", &refresh_token).await;
    assert_eq!(body["error"], "invalid_code");
    let body = refresh(&sim, "accounts.zoho.eu", "1000.nope.nope").await;
    assert_eq!(body["error"], "invalid_code");

    assert_eq!(sim.refresh_calls(), 4);
    assert_eq!(sim.access_tokens_minted_for(&refresh_token), 3);
    assert!(sim.is_refresh_token_live(&refresh_token));
}

#[tokio::test]
async fn refresh_with_rotation_retires_the_old_token() {
    let config = ZohoSimConfig {
        rotation: Rotation::Rotating,
        ..ZohoSimConfig::default()
    };
    let sim = ZohoSim::start(config).await;
    let tokens = connect(&sim, "in").await;
    let first = text(&tokens, "refresh_token");

    let body = refresh(&sim, "accounts.zoho.in", &first).await;
    let second = text(&body, "refresh_token");
    assert_ne!(first, second);
    assert!(!sim.is_refresh_token_live(&first));
    assert!(sim.is_refresh_token_live(&second));
    assert_eq!(
        refresh(&sim, "accounts.zoho.in", &first).await["error"],
        "invalid_code"
    );
    // Plain rotation: reusing the old one does not hurt the new one.
    let body = refresh(&sim, "accounts.zoho.in", &second).await;
    assert!(body["refresh_token"].is_string());
    assert_eq!(sim.live_refresh_tokens("in", DEFAULT_USER).len(), 1);
}

#[tokio::test]
async fn reuse_of_a_rotated_token_revokes_the_chain_when_configured() {
    let config = ZohoSimConfig {
        rotation: Rotation::RotatingReuseRevokesGrant,
        ..ZohoSimConfig::default()
    };
    let sim = ZohoSim::start(config).await;
    let tokens = connect(&sim, "us").await;
    let first = text(&tokens, "refresh_token");
    let body = refresh(&sim, "accounts.zoho.com", &first).await;
    let second = text(&body, "refresh_token");
    let access = text(&body, "access_token");

    assert_eq!(
        refresh(&sim, "accounts.zoho.com", &first).await["error"],
        "invalid_code"
    );
    assert!(!sim.is_refresh_token_live(&second));
    assert_eq!(
        refresh(&sim, "accounts.zoho.com", &second).await["error"],
        "invalid_code"
    );
    assert_eq!(org_status(&sim, "www.zohoapis.com", &access).await.0, 401);
}

#[tokio::test]
async fn at_most_ten_access_tokens_per_refresh_token_per_window() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let seeded = sim.seed_connection("au", "carol@example.com");
    for _ in 0..10 {
        let body = refresh(&sim, "accounts.zoho.com.au", &seeded.refresh_token).await;
        assert!(body["access_token"].is_string(), "{body}");
    }
    let body = refresh(&sim, "accounts.zoho.com.au", &seeded.refresh_token).await;
    assert_eq!(body["error"], "Access Denied");
    assert_eq!(body["error_description"], ACCESS_DENIED_DESCRIPTION);
    // Still blocked: refusals do not mint.
    let body = refresh(&sim, "accounts.zoho.com.au", &seeded.refresh_token).await;
    assert_eq!(body["error"], "Access Denied");
    assert_eq!(sim.access_tokens_minted_for(&seeded.refresh_token), 11);
    assert_eq!(sim.refresh_calls(), 12);

    sim.reset_token_mint_windows();
    let body = refresh(&sim, "accounts.zoho.com.au", &seeded.refresh_token).await;
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn the_mint_window_ends() {
    let config = ZohoSimConfig {
        token_mint_limit: (2, Duration::from_millis(300)),
        ..ZohoSimConfig::default()
    };
    let sim = ZohoSim::start(config).await;
    let seeded = sim.seed_connection("us", DEFAULT_USER);
    for _ in 0..2 {
        assert!(
            refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await["access_token"]
                .is_string()
        );
    }
    assert_eq!(
        refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await["error"],
        "Access Denied"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await["access_token"].is_string()
    );
}

#[tokio::test]
async fn the_sixteenth_live_access_token_invalidates_the_oldest() {
    let config = ZohoSimConfig {
        token_mint_limit: (100, Duration::from_secs(600)),
        ..ZohoSimConfig::default()
    };
    let sim = ZohoSim::start(config).await;
    let seeded = sim.seed_connection("us", DEFAULT_USER);
    let mut tokens = vec![seeded.access_token.clone()];
    for _ in 0..15 {
        let body = refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await;
        tokens.push(text(&body, "access_token"));
    }
    assert!(!sim.is_access_token_live(&tokens[0]));
    assert!(tokens[1..].iter().all(|t| sim.is_access_token_live(t)));
    assert_eq!(
        org_status(&sim, "www.zohoapis.com", &tokens[0]).await.0,
        401
    );
    assert_eq!(
        org_status(&sim, "www.zohoapis.com", &tokens[1]).await.0,
        200
    );
}

#[tokio::test]
async fn the_twenty_first_refresh_token_deletes_the_oldest() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let first = sim.seed_connection("us", DEFAULT_USER);
    for _ in 0..19 {
        sim.seed_connection("us", DEFAULT_USER);
    }
    // Another user's tokens are not counted.
    sim.seed_connection("us", "dave@example.com");
    assert_eq!(sim.live_refresh_tokens("us", DEFAULT_USER).len(), 20);
    assert!(sim.is_refresh_token_live(&first.refresh_token));

    let tokens = connect(&sim, "us").await;
    let live = sim.live_refresh_tokens("us", DEFAULT_USER);
    assert_eq!(live.len(), 20);
    assert_eq!(live.last(), Some(&text(&tokens, "refresh_token")));
    assert!(!sim.is_refresh_token_live(&first.refresh_token));
    assert_eq!(
        refresh(&sim, "accounts.zoho.com", &first.refresh_token).await["error"],
        "invalid_code"
    );
    assert_eq!(
        org_status(&sim, "www.zohoapis.com", &first.access_token)
            .await
            .0,
        401
    );
    assert_eq!(sim.live_refresh_tokens("us", "dave@example.com").len(), 1);
}

#[tokio::test]
async fn revoke_takes_the_token_in_the_query_on_its_own_dc() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let seeded = sim.seed_connection("jp", DEFAULT_USER);
    let revoke = |host: &'static str, token: String| {
        let url = format!("{}{}?token={}", sim.base_url(), REVOKE_PATH, token);
        async move { testkit::post_form(&url, &[(FORWARDED_HOST_HEADER, host)], &[]).await }
    };

    let (status, body) = revoke("accounts.zoho.com", seeded.refresh_token.clone()).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "failure");
    assert_eq!(body["error"], "invalid_token");
    assert!(sim.is_refresh_token_live(&seeded.refresh_token));

    let (status, body) = revoke("accounts.zoho.jp", seeded.refresh_token.clone()).await;
    assert_eq!((status, text(&body, "status")), (200, "success".to_owned()));
    assert_eq!(sim.revoked_tokens(), vec![seeded.refresh_token.clone()]);
    assert!(!sim.is_refresh_token_live(&seeded.refresh_token));
    assert_eq!(
        refresh(&sim, "accounts.zoho.jp", &seeded.refresh_token).await["error"],
        "invalid_code"
    );
    assert_eq!(
        org_status(&sim, "www.zohoapis.jp", &seeded.access_token)
            .await
            .0,
        401
    );

    let (status, _) = revoke("accounts.zoho.jp", seeded.refresh_token.clone()).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_access_token_only_works_on_its_own_dc() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let tokens = connect(&sim, "au").await;
    let access = text(&tokens, "access_token");

    let (status, body) = org_status(&sim, "www.zohoapis.com", &access).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "INVALID_TOKEN");
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "invalid oauth token");
    assert_eq!(body["details"], serde_json::json!({}));

    let (status, body) = org_status(&sim, "www.zohoapis.com.au", &access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["org"][0]["country_code"], "AU");
    assert_eq!(body["org"][0]["company_name"], "Zylker Traders");
    assert_eq!(body["org"][0]["id"], sim.org_id("au", DEFAULT_USER));

    // Expired and missing tokens.
    sim.expire_access_tokens();
    assert_eq!(
        org_status(&sim, "www.zohoapis.com.au", &access).await.0,
        401
    );
    let response = client()
        .get(format!("{}/crm/v8/org", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, "www.zohoapis.com.au")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn oauth_and_api_paths_answer_only_on_their_hosts() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let seeded = sim.seed_connection("eu", DEFAULT_USER);

    let (status, body) = token_call(
        &sim,
        Some("www.zohoapis.eu"),
        &[("grant_type", "refresh_token")],
    )
    .await;
    assert_eq!(
        (status, text(&body, "code")),
        (404, "INVALID_URL_PATTERN".to_owned())
    );
    let (status, _) = org_status(&sim, "accounts.zoho.eu", &seeded.access_token).await;
    assert_eq!(status, 404);
    let (status, _) = org_status(&sim, "evil.example", &seeded.access_token).await;
    assert_eq!(status, 404);
    let (status, _) = org_status(&sim, "WWW.ZOHOAPIS.EU:443", &seeded.access_token).await;
    assert_eq!(
        status, 200,
        "hosts compare case-insensitively, ports are dropped"
    );

    let recorded = sim.requests();
    assert_eq!(recorded[1].host, "accounts.zoho.eu");
    assert_eq!(recorded[2].host, "evil.example");
    assert_eq!(recorded[2].dc, None);
}

#[tokio::test]
async fn throttle_faults_use_zohos_shapes() {
    let sim = ZohoSim::start(ZohoSimConfig::default()).await;
    let seeded = sim.seed_connection("us", DEFAULT_USER);
    sim.inject(ZohoRoute::Token, Fault::Throttle);
    sim.inject(ZohoRoute::Org, Fault::Throttle);

    let body = refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await;
    assert_eq!(body["error"], "Access Denied");
    let (status, body) = org_status(&sim, "www.zohoapis.com", &seeded.access_token).await;
    assert_eq!(
        (status, text(&body, "code")),
        (429, "TOO_MANY_REQUESTS".to_owned())
    );
    assert_eq!(sim.faults().pending(), 0);

    let body = refresh(&sim, "accounts.zoho.com", &seeded.refresh_token).await;
    assert!(body["access_token"].is_string());
}

#[test]
fn routes_classify_paths() {
    assert!(ZohoRoute::Token.applies_to(TOKEN_PATH));
    assert!(!ZohoRoute::Token.applies_to(REVOKE_PATH));
    assert!(ZohoRoute::Upsert.applies_to("/crm/v8/Leads/upsert"));
    assert!(ZohoRoute::Leads.applies_to("/crm/v8/Leads/upsert"));
    assert!(ZohoRoute::Leads.applies_to("/crm/v7/Leads/123"));
    assert!(!ZohoRoute::Upsert.applies_to("/crm/v8/Leads/123"));
    assert!(ZohoRoute::Convert.applies_to("/crm/v8/Leads/123/actions/convert"));
    assert!(!ZohoRoute::Leads.applies_to("/crm/v8/Leads/123/actions/convert"));
    assert!(ZohoRoute::Notes.applies_to("/crm/v8/Leads/123/Notes"));
    assert!(ZohoRoute::Notes.applies_to("/crm/v8/Notes/9"));
    assert!(!ZohoRoute::Leads.applies_to("/crm/v8/Leads/123/Notes"));
    assert!(ZohoRoute::Settings.applies_to("/crm/v8/settings/pipeline"));
    assert!(ZohoRoute::Deals.applies_to("/crm/v8/Deals/1"));
    assert!(ZohoRoute::Contacts.applies_to("/crm/v8/Contacts/1"));
    assert!(ZohoRoute::Org.applies_to("/crm/v8/org"));
    assert!(ZohoRoute::Any.applies_to("/crm/v8/anything"));
    assert!(!ZohoRoute::Any.applies_to(HEALTH_PATH));
    assert!(!ZohoRoute::Any.applies_to(SIM_STATE_PATH));
}
