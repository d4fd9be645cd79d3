use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use shared::error::VaultError;
use shared::identity::TenantId;
use shared::Provider;

#[tokio::test]
async fn tenant_b_can_neither_see_nor_use_tenant_as_connection() {
    let ctx = TestContext::new().await;
    let a = TestContext::tenant();
    let b = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&a, "pro").await)["status"],
        "connected"
    );

    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&b, "pro"))
        .await;
    assert_eq!(listed.body["connections"].as_array().unwrap().len(), 0);
    let pipelines = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&b, "pro"))
        .await;
    assert_eq!(pipelines.status, 404);
    let settings = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(&b, "pro"))
        .await;
    assert_eq!(settings.status, 404);
    let deleted = ctx
        .api(ApiEvent::sample("connections-api/disconnect.json").claims(&b, "pro"))
        .await;
    assert_eq!(deleted.status, 404);

    // A tenant id in the body or query is ignored: only the claims count.
    let sneaky = ctx
        .api(
            ApiEvent::sample("connections-api/list.json")
                .claims(&b, "pro")
                .query(&[("tenant_id", &a)])
                .body(serde_json::json!({ "tenant_id": a })),
        )
        .await;
    assert_eq!(sneaky.body["connections"].as_array().unwrap().len(), 0);

    let a_listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&a, "pro"))
        .await;
    assert_eq!(
        a_listed.body["connections"].as_array().unwrap().len(),
        1,
        "A is untouched"
    );
    assert_eq!(ctx.hubspot.revoked_tokens().len(), 0);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_tenants_or_providers_row_fails_to_decrypt() {
    let ctx = TestContext::new().await;
    let a = TestContext::tenant();
    let b = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&a, "pro").await)["status"],
        "connected"
    );
    let a_id = TenantId::parse(&a).unwrap();
    let b_id = TenantId::parse(&b).unwrap();
    let a_row = ctx
        .services
        .store
        .get_connection(&a_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();

    // Directly: the vault refuses another tenant's or provider's context.
    let vault = &ctx.services.vault;
    assert!(vault
        .open(&a_id, Provider::Hubspot, &a_row.credentials)
        .await
        .is_ok());
    assert!(matches!(
        vault
            .open(&b_id, Provider::Hubspot, &a_row.credentials)
            .await,
        Err(VaultError::ContextMismatch)
    ));
    assert!(matches!(
        vault.open(&a_id, Provider::Zoho, &a_row.credentials).await,
        Err(VaultError::ContextMismatch)
    ));

    // Through the API: A's ciphertext copied into a row of B's is useless to B.
    let mut stolen = a_row.clone();
    stolen.tenant_id = b_id.clone();
    assert!(ctx
        .services
        .store
        .put_connection(&stolen, None)
        .await
        .unwrap());
    let pipelines = ctx
        .api(ApiEvent::sample("connections-api/pipelines.json").claims(&b, "pro"))
        .await;
    assert_eq!(pipelines.status, 500);
    assert_eq!(pipelines.body["error"], "internal");
    assert_eq!(
        ctx.hubspot.count("GET", "/crm/pipelines/2026-09/deals"),
        0,
        "nothing reached HubSpot"
    );
}
