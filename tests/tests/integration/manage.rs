use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::sim::{Fault, Route};
use serde_json::json;
use shared::identity::TenantId;
use shared::Provider;

async fn connected(ctx: &TestContext) -> String {
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    tenant
}

fn settings(tenant: &str, body: serde_json::Value) -> ApiEvent {
    ApiEvent::sample("connections-api/settings.json")
        .claims(tenant, "pro")
        .body(body)
}

#[tokio::test]
async fn settings_naming_an_unknown_pipeline_or_stage_are_refused() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;

    let unknown_pipeline = ctx
        .api(settings(
            &tenant,
            json!({"pipeline_id": "nope", "stage_mapping": {}}),
        ))
        .await;
    assert_eq!(unknown_pipeline.status, 400);
    assert_eq!(unknown_pipeline.body["error"], "bad_request");
    assert!(unknown_pipeline.body["message"]
        .as_str()
        .unwrap()
        .contains("nope"));

    let foreign_stage = ctx
        .api(settings(
            &tenant,
            json!({"pipeline_id": "default", "stage_mapping": {"won": "not-a-stage"}}),
        ))
        .await;
    assert_eq!(foreign_stage.status, 400);
    assert!(foreign_stage.body["message"]
        .as_str()
        .unwrap()
        .contains("not-a-stage"));

    let unknown_leadrelay_stage = ctx
        .api(settings(
            &tenant,
            json!({"pipeline_id": "default", "stage_mapping": {"maybe": "closedwon"}}),
        ))
        .await;
    assert_eq!(unknown_leadrelay_stage.status, 400);
    assert!(unknown_leadrelay_stage.body["message"]
        .as_str()
        .unwrap()
        .contains("maybe"));

    let not_json = ctx
        .api(
            ApiEvent::sample("connections-api/settings.json")
                .claims(&tenant, "pro")
                .raw_body("{"),
        )
        .await;
    assert_eq!(not_json.status, 400);

    let tenant_id = TenantId::parse(&tenant).unwrap();
    let stored = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.settings.is_none(), "nothing invalid was saved");
}

#[tokio::test]
async fn pipelines_of_a_tenant_without_a_connection_are_not_found() {
    let ctx = TestContext::new().await;
    let response = ctx
        .api(
            ApiEvent::sample("connections-api/pipelines.json")
                .claims(&TestContext::tenant(), "pro"),
        )
        .await;
    assert_eq!(response.status, 404);
    assert_eq!(response.body["error"], "not_found");
}

#[tokio::test]
async fn an_expiring_access_token_is_refreshed_lazily_and_the_refresh_token_kept() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let before = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    ctx.hubspot.expire_access_tokens();
    // The stored expiry says the token is spent, so the next use refreshes first.
    ctx.services
        .store
        .update_tokens(
            &tenant_id,
            Provider::Hubspot,
            before.version,
            &before.credentials,
            spent_token(),
        )
        .await
        .unwrap();

    let pipelines = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(pipelines.status, 200, "{}", pipelines.body);
    let refreshes: Vec<_> = ctx
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == "/oauth/2026-03/token"
                && r.form().get("grant_type").map(String::as_str) == Some("refresh_token")
        })
        .collect();
    assert_eq!(refreshes.len(), 1);
    let after = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert!(after.version > before.version);
    assert!(after.token_expiry().unwrap() > chrono::Utc::now());
    let opened = ctx
        .services
        .vault
        .open(&tenant_id, Provider::Hubspot, &after.credentials)
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        opened.refresh_token.unwrap().expose_secret(),
        &refreshes[0].form()["refresh_token"],
        "HubSpot does not rotate refresh tokens: the stored one is kept"
    );
}

#[tokio::test]
async fn a_dead_grant_marks_the_connection_needs_reauth_and_the_list_shows_it() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let before = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    ctx.services
        .store
        .update_tokens(
            &tenant_id,
            Provider::Hubspot,
            before.version,
            &before.credentials,
            spent_token(),
        )
        .await
        .unwrap();
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(400, r#"{"error":"invalid_grant","status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token"}"#.into()),
    );

    let pipelines = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(pipelines.status, 409);
    assert_eq!(pipelines.body["error"], "needs_reauth");

    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    let connection = &listed.body["connections"][0];
    assert_eq!(connection["status"], "needs_reauth");
    assert!(connection["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    assert!(connection["last_error"]["at"].is_string());
}

#[tokio::test]
async fn a_hubspot_outage_while_listing_pipelines_is_a_502_with_a_generic_message() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Pipelines, Fault::Status(503, "down".into()));
    }
    let response = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(response.status, 502);
    assert_eq!(response.body["error"], "provider_error");
    assert_eq!(
        ctx.hubspot.count("GET", "/crm/pipelines/2026-09/deals"),
        4,
        "bounded retries"
    );
}

#[tokio::test]
async fn requests_without_claims_or_for_unknown_providers_get_clear_errors() {
    let ctx = TestContext::new().await;
    let no_claims = ctx
        .api(ApiEvent::sample("connections-api/list.json").without_claims())
        .await;
    assert_eq!(no_claims.status, 401);
    assert_eq!(no_claims.body["error"], "unauthorized");

    let bad_plan = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims("t1", "platinum"))
        .await;
    assert_eq!(bad_plan.status, 401);

    let unknown = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .claims("t1", "business")
                .provider("pipedrive"),
        )
        .await;
    assert_eq!(unknown.status, 404);

    // Bitrix24 consents on the tenant's portal: without it there is nowhere to send the user.
    let no_portal = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .claims("t1", "business")
                .provider("bitrix24"),
        )
        .await;
    assert_eq!(no_portal.status, 400);
    assert!(
        no_portal.body["message"]
            .as_str()
            .unwrap()
            .contains("portal"),
        "{}",
        no_portal.body
    );

    let unknown_route = ctx
        .api(
            ApiEvent::sample("connections-api/list.json")
                .claims("t1", "pro")
                .path("GET", "/connections/x/y/z"),
        )
        .await;
    assert_eq!(unknown_route.status, 404);
}

#[tokio::test]
async fn disconnecting_twice_is_not_found_the_second_time() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let event = ApiEvent::sample("connections-api/disconnect.json").claims(&tenant, "pro");
    assert_eq!(ctx.api(event.clone()).await.status, 200);
    assert_eq!(ctx.api(event).await.status, 404);
}

/// A schedule saying the stored access token is spent now.
pub fn spent_token() -> shared::store::TokenSchedule {
    let now = chrono::Utc::now().timestamp();
    shared::store::TokenSchedule {
        token_expires_at: Some(now),
        refresh_due_at: Some(now),
    }
}
