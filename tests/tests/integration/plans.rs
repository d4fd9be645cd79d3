//! The plan enforced where a connection is made and where a lead is pushed (docs/architecture.md,
//! Plans): billing's plan-change events through token-refresh, the completion's atomic re-check,
//! pushes on the stored plan, suspension by a downgrade and the keep rule.

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::{self, ApiEvent};
use relay_tests::queue::lead_message;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::plan::Plan;
use shared::Provider;

const FS_HOST: &str = "acme.myfreshworks.com";
const FS_KEY: &str = "Xk9fQ2mZ7rT4vB1nL8sW";

/// Billing's event as EventBridge invokes token-refresh with it (the sample, with this detail).
async fn plan_changed(ctx: &TestContext, tenant: &str, plan: &str, changed_at: &str) -> Value {
    let mut event = events::load("token-refresh/plan-changed.json");
    event["detail"] = json!({"tenant_id": tenant, "plan": plan, "changed_at": changed_at});
    token_refresh::handle_any(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .expect("a plan change is stored")
}

/// `GET /connections` as the tenant's user with a JWT claiming `plan`: provider → suspended.
async fn suspended(ctx: &TestContext, tenant: &str, plan: &str) -> Vec<(String, bool)> {
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(tenant, plan))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["provider"].as_str().unwrap().to_string(),
                c["suspended_by_plan"].as_bool().expect("suspended_by_plan"),
            )
        })
        .collect()
}

#[tokio::test]
async fn billing_plan_changes_are_stored_and_an_older_one_never_overwrites_a_newer_one() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let id = TenantId::parse(&tenant).unwrap();
    let stored = |ctx: &TestContext| {
        let id = id.clone();
        let store = ctx.services.store.clone();
        async move { store.get_tenant_plan(&id).await.unwrap().map(|p| p.plan) }
    };
    assert_eq!(stored(&ctx).await, None);

    let applied = plan_changed(&ctx, &tenant, "business", "2026-12-01T10:00:00Z").await;
    assert_eq!(applied, json!({"applied": true}));
    assert_eq!(stored(&ctx).await, Some(Plan::Business));
    // Delivered late: an older change, then the same one again. Neither is applied.
    let older = plan_changed(&ctx, &tenant, "free", "2026-12-01T09:59:59Z").await;
    assert_eq!(older, json!({"applied": false}));
    let again = plan_changed(&ctx, &tenant, "pro", "2026-12-01T10:00:00Z").await;
    assert_eq!(again, json!({"applied": false}));
    assert_eq!(stored(&ctx).await, Some(Plan::Business));
    let newer = plan_changed(&ctx, &tenant, "pro", "2026-12-01T10:00:00.001Z").await;
    assert_eq!(newer, json!({"applied": true}));
    assert_eq!(stored(&ctx).await, Some(Plan::Pro));

    // A detail that does not read is dropped with its reason (no retry would fix it).
    let odd = plan_changed(&ctx, &tenant, "platinum", "2026-12-02T00:00:00Z").await;
    assert_eq!(odd["applied"], false);
    assert!(
        odd["refused"].as_str().unwrap().starts_with("plan"),
        "{odd}"
    );
    assert_eq!(stored(&ctx).await, Some(Plan::Pro));
}

#[tokio::test]
async fn two_concurrent_completions_of_a_pro_tenant_end_with_exactly_one_crm() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let id = TenantId::parse(&tenant).unwrap();
    plan_changed(&ctx, &tenant, "pro", "2026-12-01T10:00:00Z").await;

    // Both flows start while the tenant has no CRM, so both pass the check at authorize.
    let hubspot = ctx.authorize_provider("hubspot", &tenant, "pro").await;
    assert_eq!(hubspot.status, 200, "{}", hubspot.body);
    let zoho = ctx.authorize_provider("zoho", &tenant, "pro").await;
    assert_eq!(zoho.status, 200, "{}", zoho.body);
    let hubspot_query = ctx
        .consent_for("hubspot", hubspot.body["authorize_url"].as_str().unwrap())
        .await;
    let zoho_url = format!("{}&sim_dc=us", zoho.body["authorize_url"].as_str().unwrap());
    let zoho_query = ctx.consent_for("zoho", &zoho_url).await;

    // Both complete at once.
    let (hubspot_done, zoho_done) = tokio::join!(
        ctx.callback("hubspot", &hubspot_query),
        ctx.callback("zoho", &zoho_query)
    );
    let (hubspot_done, zoho_done) = (outcome(&hubspot_done), outcome(&zoho_done));
    let connected: Vec<&str> = [("hubspot", &hubspot_done), ("zoho", &zoho_done)]
        .iter()
        .filter(|(_, o)| o["status"] == "connected")
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(
        connected.len(),
        1,
        "exactly one CRM: {hubspot_done:?} {zoho_done:?}"
    );
    let (winner, loser, loser_outcome) = if connected[0] == "hubspot" {
        (Provider::Hubspot, Provider::Zoho, &zoho_done)
    } else {
        (Provider::Zoho, Provider::Hubspot, &hubspot_done)
    };
    assert_eq!(loser_outcome["status"], "error");
    assert_eq!(
        loser_outcome["reason"], "plan_required",
        "{loser_outcome:?}"
    );

    let rows = ctx.services.store.list_connections(&id).await.unwrap();
    assert_eq!(
        rows.iter().map(|c| c.provider).collect::<Vec<_>>(),
        vec![winner]
    );

    // The loser's tokens were revoked at its provider, the winner's were not.
    let (loser_revoked, winner_revoked) = match loser {
        Provider::Zoho => (ctx.zoho.revoked_tokens(), ctx.hubspot.revoked_tokens()),
        _ => (ctx.hubspot.revoked_tokens(), ctx.zoho.revoked_tokens()),
    };
    assert_eq!(
        loser_revoked.len(),
        1,
        "the refused flow's refresh token is revoked"
    );
    assert!(winner_revoked.is_empty(), "{winner_revoked:?}");
    if loser == Provider::Hubspot {
        assert!(ctx.hubspot.live_refresh_tokens().is_empty());
    }
}

#[tokio::test]
async fn a_downgraded_tenant_cannot_connect_a_second_crm_with_a_jwt_still_claiming_business() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "business").await)["status"],
        "connected"
    );
    plan_changed(&ctx, &tenant, "pro", "2026-12-01T10:00:00Z").await;
    ctx.freshsales.add_account(FS_HOST, FS_KEY);
    let refused = ctx
        .connect_freshsales(
            &tenant,
            "business",
            json!({"domain": "acme", "api_key": FS_KEY}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"], "plan_required");
    // An OAuth flow is refused before it starts, on the stored plan too, for a token issued
    // before the downgrade (`iat`) as for one that does not say when it was issued.
    let authorize = |iat: Option<&str>| {
        let mut event = ApiEvent::sample("connections-api/authorize.json")
            .provider("zoho")
            .claims(&tenant, "business");
        if let Some(iat) = iat {
            event.0["requestContext"]["authorizer"]["jwt"]["claims"]["iat"] = json!(iat);
        }
        ctx.api(event)
    };
    for iat in [None, Some("1796118000")] {
        let refused = authorize(iat).await;
        assert_eq!(refused.status, 403, "{iat:?}: {}", refused.body);
        assert_eq!(refused.body["error"], "plan_required");
    }
    // A token issued after billing's last change (an upgrade whose event is still on its way)
    // is the newer view: it decides.
    let started = authorize(Some("1796120400")).await;
    assert_eq!(started.status, 200, "{}", started.body);
    let rows = ctx
        .services
        .store
        .list_connections(&TenantId::parse(&tenant).unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "only HubSpot");
}

/// HubSpot's and Freshsales' stage mappings (pushes need one).
async fn save_settings(ctx: &TestContext, tenant: &str, plan: &str) {
    let saved = ctx
        .api(ApiEvent::sample("connections-api/settings.json").claims(tenant, plan))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let pipelines = ctx.freshsales.pipelines(FS_HOST);
    let stages: std::collections::HashMap<_, _> = pipelines[0]
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.id.clone()))
        .collect();
    let saved = ctx
        .provider_api(
            "connections-api/settings.json",
            "freshsales",
            (tenant, plan),
            Some(json!({
                "pipeline_id": pipelines[0].id,
                "stage_mapping": {"qualified": stages["Qualification"], "won": stages["Won"]}
            })),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
}

fn lead(tenant: &str, plan: &str, id: &str, email: &str) -> String {
    lead_message(
        tenant,
        plan,
        json!({"id": id, "name": "Fatima Al-Kuwari", "email": email,
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82,
               "stage": "qualified"}),
        Some("Asked about the annual plan."),
    )
}

#[tokio::test]
async fn a_downgrade_suspends_the_later_crm_for_queued_messages_reconnects_and_an_upgrade_restores_it(
) {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    // Business: HubSpot first, Freshsales second.
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "business").await)["status"],
        "connected"
    );
    ctx.freshsales.add_account(FS_HOST, FS_KEY);
    let body = json!({"domain": "acme", "api_key": FS_KEY});
    let connected = ctx
        .connect_freshsales(&tenant, "business", body.clone())
        .await;
    assert_eq!(connected.status, 200, "{}", connected.body);
    save_settings(&ctx, &tenant, "business").await;
    assert_eq!(
        suspended(&ctx, &tenant, "business").await,
        vec![("hubspot".into(), false), ("freshsales".into(), false)]
    );

    // A message carrying `business` is queued (its lead occurred 2026-11-28), then billing
    // downgrades the tenant to Pro.
    ctx.queues
        .send(&lead(&tenant, "business", "lead-1", "one@example.qa"))
        .await;
    plan_changed(&ctx, &tenant, "pro", "2026-12-01T10:00:00Z").await;
    let delivery = ctx.redeliver(1).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.hubspot.contacts().len(), 1, "the kept CRM has the lead");
    assert!(
        ctx.freshsales.contacts(FS_HOST).is_empty(),
        "the suspended CRM is not pushed to"
    );
    // Listed as suspended, even to a JWT still claiming Business; kept, not deleted.
    assert_eq!(
        suspended(&ctx, &tenant, "business").await,
        vec![("hubspot".into(), false), ("freshsales".into(), true)]
    );

    // Reconnecting the suspended CRM (a new key) is allowed — it takes no new slot — and
    // changes nothing about which CRM is kept.
    let again = ctx.connect_freshsales(&tenant, "pro", body.clone()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        suspended(&ctx, &tenant, "pro").await,
        vec![("hubspot".into(), false), ("freshsales".into(), true)]
    );
    let delivery = ctx
        .deliver(&[lead(&tenant, "pro", "lead-2", "two@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.hubspot.contacts().len(), 2);
    assert!(ctx.freshsales.contacts(FS_HOST).is_empty());

    // Upgrade: both work again, for a message still carrying `pro` too.
    plan_changed(&ctx, &tenant, "business", "2026-12-02T10:00:00Z").await;
    assert_eq!(
        suspended(&ctx, &tenant, "pro").await,
        vec![("hubspot".into(), false), ("freshsales".into(), false)]
    );
    let delivery = ctx
        .deliver(&[lead(&tenant, "pro", "lead-3", "three@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.hubspot.contacts().len(), 3);
    assert_eq!(ctx.freshsales.contacts(FS_HOST).len(), 1);
}
