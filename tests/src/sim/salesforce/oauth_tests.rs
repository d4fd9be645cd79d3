//! OAuth tests: consent with PKCE, code exchange and its answer shape, login
//! host checks, rotation with revoke-on-reuse, revocation, sessions and
//! instance migration.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
pub(super) use crate::sim::oauth::testkit::client;
use crate::sim::oauth::testkit::{self, str_of, verifier};

const REDIRECT: &str = "https://relay.example.test/oauth/callback/salesforce";
pub(super) const ACME_HOST: &str = "acme.my.salesforce.com";
const UAT_HOST: &str = "acme--uat.sandbox.my.salesforce.com";

/// The consent screen with standard parameters (PKCE for `verifier`) plus
/// `extra` (an empty value removes a standard parameter). Returns the status
/// and the redirect's query.
async fn consent(
    sim: &SalesforceSim,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (u16, HashMap<String, String>) {
    let base_url = sim.base_url();
    let request = testkit::ConsentRequest {
        base_url: &base_url,
        path: AUTHORIZE_PATH,
        client_id: &sim.config().client_id,
        redirect_uri: REDIRECT,
        scope: "api refresh_token",
        more: &[],
    };
    request.open(verifier, extra).await
}

/// `POST /services/oauth2/token` at `host` with this form.
pub(super) async fn token_call(
    sim: &SalesforceSim,
    host: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let url = format!("{}{}", sim.base_url(), TOKEN_PATH);
    testkit::post_form(&url, &[(FORWARDED_HOST_HEADER, host)], form).await
}

async fn exchange(sim: &SalesforceSim, host: &str, code: &str, verifier: &str) -> (u16, Value) {
    let c = sim.config();
    let form = testkit::code_grant(&c.client_id, &c.client_secret, code, REDIRECT, verifier);
    token_call(sim, host, &form).await
}

pub(super) async fn refresh(sim: &SalesforceSim, host: &str, token: &str) -> (u16, Value) {
    let c = sim.config();
    let form = testkit::refresh_grant(&c.client_id, &c.client_secret, token);
    token_call(sim, host, &form).await
}

/// `GET .../sobjects/Lead/describe` on `host` with `token`: the status.
pub(super) async fn describe_status(sim: &SalesforceSim, host: &str, token: &str) -> u16 {
    client()
        .get(format!(
            "{}/services/data/v62.0/sobjects/Lead/describe",
            sim.base_url()
        ))
        .header(FORWARDED_HOST_HEADER, host)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn code_flow_with_pkce_answers_like_salesforce() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let verifier = verifier();
    let (status, query) = consent(&sim, &verifier, &[]).await;
    assert_eq!(status, 302);
    assert_eq!(query["state"], "st/ate+1");
    let code = query["code"].clone();

    let (status, body) = exchange(&sim, DEFAULT_LOGIN_HOST, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("expires_in").is_none(), "{body}");
    assert_eq!(body["instance_url"], "https://acme.my.salesforce.com");
    assert_eq!(
        body["id"],
        "https://login.salesforce.com/id/00D5g000001ACMEAAA/0055g000001ACMEAAA"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api refresh_token");
    assert!(str_of(&body, "issued_at")
        .bytes()
        .all(|b| b.is_ascii_digit()));
    assert!(!str_of(&body, "signature").is_empty());
    assert!(!str_of(&body, "refresh_token").is_empty());
    let access = str_of(&body, "access_token").to_owned();
    assert_eq!(describe_status(&sim, ACME_HOST, &access).await, 200);
    assert_eq!(sim.access_tokens_minted("acme"), 1);
    assert_eq!(sim.live_refresh_tokens("acme"), 1);

    // Single use.
    let (status, body) = exchange(&sim, DEFAULT_LOGIN_HOST, &code, &verifier).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "invalid authorization code");

    // A wrong verifier or client secret: sim::oauth's
    // every_token_endpoint_follows_the_same_rules_over_http.

    // No secret ever reaches the recorded form of a non-token path, and the
    // Authorization header is never recorded.
    assert!(sim
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
}

#[tokio::test]
async fn consent_requires_pkce_api_and_refresh_token_scopes() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let v = verifier();
    let (status, query) = consent(
        &sim,
        &v,
        &[("code_challenge", ""), ("code_challenge_method", "")],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(query["error"], "invalid_request");
    assert!(!query.contains_key("code"));
    let (_, query) = consent(&sim, &v, &[("code_challenge_method", "plain")]).await;
    assert_eq!(query["error"], "invalid_request");
    let (_, query) = consent(&sim, &v, &[("scope", "api")]).await;
    assert_eq!(query["error"], "invalid_scope");
    let (_, query) = consent(&sim, &v, &[("sim_deny", "1")]).await;
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st/ate+1");
    let (status, query) = consent(&sim, &v, &[("client_id", "someone-else")]).await;
    assert_eq!(status, 400);
    assert!(query.is_empty());
}

#[tokio::test]
async fn a_code_is_redeemed_only_at_its_orgs_login_hosts() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let v = verifier();
    let (_, query) = consent(&sim, &v, &[("sim_org", "acme-uat")]).await;
    let (status, body) = exchange(&sim, DEFAULT_LOGIN_HOST, &query["code"], &v).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");

    let (_, query) = consent(&sim, &v, &[("sim_org", "acme-uat")]).await;
    let (status, body) = exchange(&sim, "test.salesforce.com", &query["code"], &v).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance_url"], format!("https://{UAT_HOST}"));
    assert_eq!(
        body["id"],
        "https://test.salesforce.com/id/00D5g0000002UATAAA/0055g0000002UATAAA"
    );
    let access = str_of(&body, "access_token");
    assert_eq!(describe_status(&sim, UAT_HOST, access).await, 200);
    // The production instance does not take a sandbox session.
    assert_eq!(describe_status(&sim, ACME_HOST, access).await, 401);

    // The My Domain login host of acme works too.
    let (_, query) = consent(&sim, &v, &[]).await;
    let (status, body) = exchange(&sim, ACME_HOST, &query["code"], &v).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["id"],
        "https://acme.my.salesforce.com/id/00D5g000001ACMEAAA/0055g000001ACMEAAA"
    );
}

#[tokio::test]
async fn rotation_and_a_reused_refresh_token_burns_the_grant() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let seeded = sim.seed_connection("acme");
    let (status, first) = refresh(&sim, DEFAULT_LOGIN_HOST, &seeded.refresh_token).await;
    assert_eq!(status, 200, "{first}");
    let rotated = str_of(&first, "refresh_token").to_owned();
    assert!(!rotated.is_empty());
    assert_ne!(rotated, seeded.refresh_token);
    assert!(first.get("expires_in").is_none());
    assert_eq!(first["instance_url"], "https://acme.my.salesforce.com");
    let (status, second) = refresh(&sim, DEFAULT_LOGIN_HOST, &rotated).await;
    assert_eq!(status, 200, "{second}");
    let current = str_of(&second, "refresh_token").to_owned();
    let access = str_of(&second, "access_token").to_owned();
    assert_eq!(describe_status(&sim, ACME_HOST, &access).await, 200);
    assert!(!sim.grant_revoked_on_reuse("acme"));
    assert_eq!(sim.live_refresh_tokens("acme"), 1);

    // Presenting a rotated-out token burns everything.
    let (status, body) = refresh(&sim, DEFAULT_LOGIN_HOST, &rotated).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "expired access/refresh token");
    assert!(sim.grant_revoked_on_reuse("acme"));
    assert_eq!(sim.live_refresh_tokens("acme"), 0);
    assert_eq!(describe_status(&sim, ACME_HOST, &access).await, 401);
    let (status, _) = refresh(&sim, DEFAULT_LOGIN_HOST, &current).await;
    assert_eq!(status, 400);
    assert_eq!(sim.refresh_calls("acme"), 4);
    assert_eq!(sim.access_tokens_minted("acme"), 3);
}

#[tokio::test]
async fn without_rotation_the_refresh_token_stays_and_hosts_are_checked() {
    let config = SalesforceSimConfig {
        rotation: Rotation::Reusable,
        ..SalesforceSimConfig::default()
    };
    let sim = SalesforceSim::start(config).await;
    let seeded = sim.seed_connection("acme");
    for _ in 0..2 {
        let (status, body) = refresh(&sim, DEFAULT_LOGIN_HOST, &seeded.refresh_token).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none());
    }
    let (status, body) = refresh(&sim, "test.salesforce.com", &seeded.refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!sim.grant_revoked_on_reuse("acme"));
}

#[tokio::test]
async fn revoke_kills_the_grant_and_unknown_tokens_are_refused() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let seeded = sim.seed_connection("acme-uat");
    let revoke = |token: String| {
        let sim = sim.clone();
        async move {
            client()
                .post(format!("{}{}", sim.base_url(), REVOKE_PATH))
                .header(FORWARDED_HOST_HEADER, "test.salesforce.com")
                .form(&[
                    ("token", token.as_str()),
                    ("client_id", "x"),
                    ("token_type_hint", "refresh_token"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let response = revoke(seeded.refresh_token.clone()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await.unwrap().is_empty());
    assert_eq!(sim.revocations("acme-uat"), 1);
    assert_eq!(sim.live_refresh_tokens("acme-uat"), 0);
    assert_eq!(
        describe_status(&sim, UAT_HOST, &seeded.access_token).await,
        401
    );
    let response = revoke("never-issued".into()).await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    let revoke_entry = sim
        .requests()
        .into_iter()
        .find(|r| r.path == REVOKE_PATH)
        .unwrap();
    assert_eq!(revoke_entry.host, "test.salesforce.com");
}

#[tokio::test]
async fn expired_sessions_and_a_migrated_instance() {
    let sim = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let seeded = sim.seed_connection("acme");
    assert_eq!(
        describe_status(&sim, ACME_HOST, &seeded.access_token).await,
        200
    );
    sim.expire_sessions("acme");
    let response = client()
        .get(format!(
            "{}/services/data/v62.0/query?q=SELECT+Id+FROM+Lead",
            sim.base_url()
        ))
        .header(FORWARDED_HOST_HEADER, ACME_HOST)
        .bearer_auth(&seeded.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(body[0]["message"], "Session expired or invalid");

    sim.migrate_instance("acme", "acme2.my.salesforce.com");
    let (status, body) = refresh(&sim, DEFAULT_LOGIN_HOST, &seeded.refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(body["instance_url"], "https://acme2.my.salesforce.com");
    let access = str_of(&body, "access_token");
    assert_eq!(describe_status(&sim, ACME_HOST, access).await, 401);
    assert_eq!(
        describe_status(&sim, "acme2.my.salesforce.com", access).await,
        200
    );
    assert_eq!(sim.instance_host("acme"), "acme2.my.salesforce.com");
    // Short session config: a token dies on its own.
    let short = SalesforceSim::start(SalesforceSimConfig {
        session_seconds: 0,
        ..SalesforceSimConfig::default()
    })
    .await;
    let seeded = short.seed_connection("acme");
    assert_eq!(
        describe_status(&short, ACME_HOST, &seeded.access_token).await,
        401
    );
}
