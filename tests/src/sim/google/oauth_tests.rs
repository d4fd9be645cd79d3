//! OAuth tests: consent with PKCE, code exchange (a refresh token only for
//! offline access), refresh without rotation, revocation, hosts.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
pub(super) use crate::sim::oauth::testkit::client;
use crate::sim::oauth::testkit::{self, str_of, verifier};

pub(super) const REDIRECT: &str = "https://relay.example.test/oauth/callback/google_sheets";

/// The consent screen with standard parameters (offline, prompt=consent,
/// PKCE for `verifier`) plus `extra` (an empty value removes a standard
/// parameter). Returns the status and the redirect's query.
async fn consent(
    sim: &GoogleSim,
    verifier: &str,
    extra: &[(&str, &str)],
) -> (u16, HashMap<String, String>) {
    let base_url = sim.base_url();
    let request = testkit::ConsentRequest {
        base_url: &base_url,
        path: AUTHORIZE_PATH,
        client_id: &sim.config().client_id,
        redirect_uri: REDIRECT,
        scope: SPREADSHEETS_SCOPE,
        more: &[("access_type", "offline"), ("prompt", "consent")],
    };
    request.open(verifier, extra).await
}

async fn post_form(sim: &GoogleSim, host: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}{path}", sim.base_url());
    testkit::post_form(&url, &[(FORWARDED_HOST_HEADER, host)], form).await
}

async fn exchange(sim: &GoogleSim, code: &str, verifier: &str) -> (u16, Value) {
    let c = sim.config();
    let form = testkit::code_grant(&c.client_id, &c.client_secret, code, REDIRECT, verifier);
    post_form(sim, OAUTH2_HOST, TOKEN_PATH, &form).await
}

pub(super) async fn refresh(sim: &GoogleSim, token: &str) -> (u16, Value) {
    let c = sim.config();
    let form = testkit::refresh_grant(&c.client_id, &c.client_secret, token);
    post_form(sim, OAUTH2_HOST, TOKEN_PATH, &form).await
}

async fn revoke(sim: &GoogleSim, token: &str) -> (u16, Value) {
    post_form(sim, OAUTH2_HOST, REVOKE_PATH, &[("token", token)]).await
}

/// `GET /v4/spreadsheets/{id}` with `token`: the status.
async fn get_status(sim: &GoogleSim, id: &str, token: &str) -> u16 {
    client()
        .get(format!("{}{SPREADSHEETS_PREFIX}{id}", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, SHEETS_HOST)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn consent_with_pkce_and_a_refresh_token_only_for_offline_access() {
    let sim = GoogleSim::start(GoogleSimConfig::default()).await;
    let id = sim.add_spreadsheet(DEFAULT_USER, "Leads", &[]);
    let verifier = verifier();
    let (status, query) = consent(&sim, &verifier, &[]).await;
    assert_eq!(status, 302);
    assert_eq!(query["state"], "st/ate+1");
    assert_eq!(query["scope"], SPREADSHEETS_SCOPE);
    let code = query["code"].clone();
    assert!(code.starts_with("4/0"), "{code}");

    let (status, body) = exchange(&sim, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], SPREADSHEETS_SCOPE);
    assert!(str_of(&body, "refresh_token").starts_with("1//0"), "{body}");
    let access = str_of(&body, "access_token").to_owned();
    assert!(access.starts_with("ya29."));
    assert_eq!(get_status(&sim, &id, &access).await, 200);
    assert_eq!(sim.live_refresh_tokens(DEFAULT_USER), 1);

    // Single use, wrong verifiers, secrets and redirect URIs: sim::oauth's
    // every_token_endpoint_follows_the_same_rules_over_http.

    // Offline again without prompt=consent: the user consented before, no refresh token.
    let (_, query) = consent(&sim, &verifier, &[("prompt", "")]).await;
    let (status, body) = exchange(&sim, &query["code"], &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // Online access: never a refresh token.
    let (_, query) = consent(&sim, &verifier, &[("access_type", "")]).await;
    let (_, body) = exchange(&sim, &query["code"], &verifier).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    // A user who never consented gets one without prompt=consent.
    let (_, query) = consent(
        &sim,
        &verifier,
        &[("prompt", ""), ("sim_user", "new@example.com")],
    )
    .await;
    let (_, body) = exchange(&sim, &query["code"], &verifier).await;
    assert!(body.get("refresh_token").is_some(), "{body}");
    assert_eq!(
        get_status(&sim, &id, str_of(&body, "access_token")).await,
        403
    );

    // Denied: back to the client with error and state.
    let (status, query) = consent(&sim, &verifier, &[("sim_deny", "1")]).await;
    assert_eq!(status, 302);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st/ate+1");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn malformed_consent_requests_get_an_error_page() {
    let sim = GoogleSim::start(GoogleSimConfig::default()).await;
    let verifier = verifier();
    for (extra, why) in [
        (vec![("code_challenge", "")], "no PKCE"),
        (vec![("code_challenge_method", "plain")], "plain PKCE"),
        (vec![("scope", "openid email")], "no spreadsheets scope"),
        (vec![("client_id", "someone-else")], "unknown client"),
        (vec![("response_type", "token")], "implicit flow"),
        (vec![("redirect_uri", "")], "no redirect_uri"),
    ] {
        let (status, query) = consent(&sim, &verifier, &extra).await;
        assert_eq!(status, 400, "{why}");
        assert!(query.is_empty(), "{why}");
    }
    // Several scopes: all granted.
    let scope = format!("openid {SPREADSHEETS_SCOPE}");
    let (status, query) = consent(&sim, &verifier, &[("scope", &scope)]).await;
    assert_eq!(status, 302);
    assert_eq!(query["scope"], scope);
}

#[tokio::test]
async fn refresh_does_not_rotate_and_expired_sessions_need_it() {
    let sim = GoogleSim::start(GoogleSimConfig::default()).await;
    let id = sim.add_spreadsheet(DEFAULT_USER, "Leads", &[]);
    let seeded = sim.seed_connection(DEFAULT_USER);
    assert_eq!(get_status(&sim, &id, &seeded.access_token).await, 200);

    sim.expire_sessions(DEFAULT_USER);
    assert_eq!(get_status(&sim, &id, &seeded.access_token).await, 401);
    for _ in 0..2 {
        let (status, body) = refresh(&sim, &seeded.refresh_token).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["scope"], SPREADSHEETS_SCOPE);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(
            get_status(&sim, &id, str_of(&body, "access_token")).await,
            200
        );
    }
    assert_eq!(sim.refresh_calls(), 2);

    let (status, body) = refresh(&sim, "1//0unknown").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
    assert_eq!(sim.refresh_calls(), 3);
}

#[tokio::test]
async fn revoke_kills_the_grant_and_a_later_consent_gets_a_refresh_token_again() {
    let sim = GoogleSim::start(GoogleSimConfig::default()).await;
    let id = sim.add_spreadsheet(DEFAULT_USER, "Leads", &[]);
    let seeded = sim.seed_connection(DEFAULT_USER);
    let (_, refreshed) = refresh(&sim, &seeded.refresh_token).await;
    let second_access = str_of(&refreshed, "access_token").to_owned();

    // Revoking by an access token revokes its grant: refresh token included.
    let (status, body) = revoke(&sim, &second_access).await;
    assert_eq!((status, body), (200, serde_json::json!({})));
    assert_eq!(sim.revocations(), 1);
    assert_eq!(get_status(&sim, &id, &seeded.access_token).await, 401);
    let (status, body) = refresh(&sim, &seeded.refresh_token).await;
    assert_eq!((status, str_of(&body, "error")), (400, "invalid_grant"));
    assert_eq!(sim.live_refresh_tokens(DEFAULT_USER), 0);

    let (status, body) = revoke(&sim, &seeded.refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "Token expired or revoked");
    assert_eq!(sim.revocations(), 1);

    // The consent is gone with the grant: offline without prompt gets a refresh token.
    let verifier = verifier();
    let (_, query) = consent(&sim, &verifier, &[("prompt", "")]).await;
    let (_, body) = exchange(&sim, &query["code"], &verifier).await;
    assert!(body.get("refresh_token").is_some(), "{body}");
}

#[tokio::test]
async fn each_endpoint_answers_only_on_its_host_and_faults_fire_once() {
    let sim = GoogleSim::start(GoogleSimConfig::default()).await;
    let seeded = sim.seed_connection(DEFAULT_USER);
    // Without a named host the path picks its host (the token endpoint's: a client error,
    // not a missing route); on an unknown host nothing answers.
    let response = client()
        .post(format!("{}{TOKEN_PATH}", sim.base_url()))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let (status, _) = post_form(&sim, "www.example.com", TOKEN_PATH, &[]).await;
    assert_eq!(status, 404);
    let health = client()
        .get(format!("{}{HEALTH_PATH}", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    sim.inject(
        GoogleRoute::Token,
        Fault::Status(500, r#"{"error":"internal_failure"}"#.into()),
    );
    let (status, body) = refresh(&sim, &seeded.refresh_token).await;
    assert_eq!((status, str_of(&body, "error")), (500, "internal_failure"));
    assert_eq!(
        sim.refresh_calls(),
        0,
        "a faulted call never reached the endpoint"
    );
    let (status, _) = refresh(&sim, &seeded.refresh_token).await;
    assert_eq!(status, 200);
    sim.inject(GoogleRoute::Revoke, Fault::Throttle);
    let (status, body) = revoke(&sim, &seeded.refresh_token).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");

    let requests = sim.requests();
    let last = requests.last().unwrap();
    assert_eq!(last.host, OAUTH2_HOST);
    assert_eq!(last.path, REVOKE_PATH);
    assert_eq!(last.status, Some(429));
    assert_eq!(last.form()["token"], seeded.refresh_token);
    assert_eq!(sim.api_calls(), 0);
}
