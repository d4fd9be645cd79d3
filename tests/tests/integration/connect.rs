use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::logs;
use relay_tests::sim::hubspot::s256_challenge;
use relay_tests::sim::{Fault, Route};
use secrecy::ExposeSecret;
use shared::identity::TenantId;
use shared::store::ConnectionStatus;
use shared::Provider;

#[tokio::test]
async fn the_whole_hubspot_connect_flow_stores_lists_configures_and_disconnects() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();

    // Authorize: a consent URL on the provider with state and an S256 PKCE challenge.
    let started = ctx.authorize(&tenant, "pro").await;
    assert_eq!(started.status, 200, "{}", started.body);
    let authorize_url = url::Url::parse(started.body["authorize_url"].as_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> =
        authorize_url.query_pairs().into_owned().collect();
    assert_eq!(authorize_url.path(), "/oauth/authorize");
    assert_eq!(params["client_id"], "test-client-id");
    assert_eq!(
        params["redirect_uri"],
        "https://api.leadrelay.test/oauth/hubspot/callback"
    );
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["scope"].contains("crm.objects.deals.read"));
    assert!(params["state"].len() >= 43);

    // Consent and callback.
    let query = ctx.consent(authorize_url.as_str()).await;
    let code = query.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let redirect = ctx.callback("hubspot", &query).await;
    assert_eq!(
        redirect.as_str().split('?').next().unwrap(),
        "https://app.leadrelay.test/settings/integrations"
    );
    assert_eq!(outcome(&redirect)["status"], "connected", "{redirect}");
    assert_eq!(outcome(&redirect)["provider"], "hubspot");

    // The code was exchanged once, with the PKCE verifier that matches the challenge.
    let exchanges: Vec<_> = ctx
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth/2026-03/token")
        .collect();
    assert_eq!(exchanges.len(), 1);
    let form = exchanges[0].form();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(
        s256_challenge(&form["code_verifier"]),
        params["code_challenge"]
    );

    // Stored encrypted: the row holds a KMS ciphertext, not the token.
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let stored = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .expect("stored");
    let access_token = ctx.hubspot.issued_access_tokens().pop().unwrap();
    let refresh_token = ctx.hubspot.live_refresh_tokens().pop().unwrap();
    assert_eq!(stored.status, ConnectionStatus::Active);
    assert!(!stored.credentials.as_base64().contains(&access_token[..40]));
    assert!(stored.credentials.len() > access_token.len());
    assert_eq!(
        stored.account["hub_id"],
        ctx.hubspot.config().hub_id.to_string()
    );
    assert!(stored.token_expiry().is_some());
    let opened = ctx
        .services
        .vault
        .open(&tenant_id, Provider::Hubspot, &stored.credentials)
        .await
        .unwrap();
    assert_eq!(opened.access_token.unwrap().expose_secret(), access_token);
    assert_eq!(opened.refresh_token.unwrap().expose_secret(), refresh_token);

    // Listed without secrets.
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(listed.status, 200);
    let connections = listed.body["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0]["provider"], "hubspot");
    assert_eq!(connections[0]["status"], "active");
    let text = listed.body.to_string();
    assert!(!text.contains(&access_token) && !text.contains(&refresh_token));
    assert!(!text.contains("credentials"));

    // Pipelines from HubSpot.
    let pipelines = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(pipelines.status, 200, "{}", pipelines.body);
    let ids: Vec<&str> = pipelines.body["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"default"));
    assert!(
        pipelines.body["pipelines"][0]["stages"]
            .as_array()
            .unwrap()
            .len()
            >= 5
    );

    // Settings validated and saved.
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(saved.body["settings"]["pipeline_id"], "default");
    assert_eq!(saved.body["settings"]["stage_mapping"]["won"], "closedwon");

    // Disconnect: revoked at HubSpot, row gone.
    let gone = ctx
        .api(ApiEvent::sample("connections-api/disconnect.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.body["revoked_at_provider"], true);
    assert!(ctx.hubspot.revoked_tokens().contains(&refresh_token));
    let revoke = ctx
        .hubspot
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/2026-03/token/revoke")
        .expect("revoke called");
    assert_eq!(revoke.form()["token_type_hint"], "refresh_token");
    assert!(ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .is_none());
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(listed.body["connections"].as_array().unwrap().len(), 0);

    // No secret of this flow reached the logs.
    logs::assert_never_logged("access token", &access_token);
    logs::assert_never_logged("refresh token", &refresh_token);
    logs::assert_never_logged("authorization code", &code);
    logs::assert_never_logged("PKCE verifier", &form["code_verifier"]);
    logs::assert_never_logged("client secret", &ctx.client_secret);
}

#[tokio::test]
async fn a_free_plan_tenant_is_refused_hubspot_with_the_plan_it_needs() {
    let ctx = TestContext::new().await;
    let refused = ctx.authorize(&TestContext::tenant(), "free").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"], "plan_required");
    let message = refused.body["message"].as_str().unwrap();
    assert!(message.contains("Pro plan"), "{message}");
    assert!(
        ctx.hubspot.requests().is_empty(),
        "nothing was sent to HubSpot"
    );
}

#[tokio::test]
async fn the_providers_access_denied_redirects_with_the_reason_and_stores_nothing() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    ctx.hubspot.deny_next_consent();
    let started = ctx.authorize(&tenant, "pro").await;
    let query = ctx
        .consent(started.body["authorize_url"].as_str().unwrap())
        .await;
    assert!(query
        .iter()
        .any(|(k, v)| k == "error" && v == "access_denied"));
    let redirect = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&redirect)["status"], "error");
    assert_eq!(outcome(&redirect)["reason"], "access_denied");
    assert_no_connection(&ctx, &tenant).await;
    assert_eq!(ctx.hubspot.count("POST", "/oauth/2026-03/token"), 0);
}

async fn failed_exchange_reason(fault: Fault) -> (String, TestContext, String) {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let started = ctx.authorize(&tenant, "pro").await;
    let query = ctx
        .consent(started.body["authorize_url"].as_str().unwrap())
        .await;
    ctx.hubspot.inject(Route::Token, fault);
    let redirect = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&redirect)["status"], "error");
    assert_no_connection(&ctx, &tenant).await;
    (outcome(&redirect)["reason"].clone(), ctx, tenant)
}

#[tokio::test]
async fn a_token_endpoint_400_fails_the_connect_and_stores_nothing() {
    let body = r#"{"error":"invalid_grant","error_description":"code expired","status":"BAD_AUTH_CODE","message":"code expired"}"#;
    let (reason, _, _) = failed_exchange_reason(Fault::Status(400, body.into())).await;
    assert_eq!(reason, "token_exchange_failed");
}

#[tokio::test]
async fn a_token_endpoint_500_is_reported_as_provider_unavailable_without_resending_the_code() {
    let (reason, ctx, _) = failed_exchange_reason(Fault::Status(500, "oops".into())).await;
    assert_eq!(reason, "provider_unavailable");
    assert_eq!(
        ctx.hubspot.count("POST", "/oauth/2026-03/token"),
        1,
        "an authorization code is single use: a 500 is not retried"
    );
}

#[tokio::test]
async fn a_garbage_token_response_fails_the_connect_and_stores_nothing() {
    let (reason, _, _) = failed_exchange_reason(Fault::Garbage).await;
    assert_eq!(reason, "token_exchange_failed");
}

#[tokio::test]
async fn a_throttled_token_endpoint_is_retried_and_the_connect_succeeds() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let started = ctx.authorize(&tenant, "pro").await;
    let query = ctx
        .consent(started.body["authorize_url"].as_str().unwrap())
        .await;
    ctx.hubspot.inject(Route::Token, Fault::Throttle);
    let redirect = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&redirect)["status"], "connected", "{redirect}");
    assert_eq!(ctx.hubspot.count("POST", "/oauth/2026-03/token"), 2);
}

#[tokio::test]
async fn reconnecting_replaces_the_tokens_and_clears_needs_reauth() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let tenant_id = TenantId::parse(&tenant).unwrap();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    ctx.services
        .store
        .mark_needs_reauth(
            &tenant_id,
            Provider::Hubspot,
            "grant revoked",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let first = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ConnectionStatus::NeedsReauth);

    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let second = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, ConnectionStatus::Active);
    assert!(second.last_error.is_none());
    assert!(second.version > first.version);
    assert_ne!(second.credentials, first.credentials);
}

pub async fn assert_no_connection(ctx: &TestContext, tenant: &str) {
    let tenant_id = TenantId::parse(tenant).unwrap();
    assert!(ctx
        .services
        .store
        .list_connections(&tenant_id)
        .await
        .unwrap()
        .is_empty());
}
