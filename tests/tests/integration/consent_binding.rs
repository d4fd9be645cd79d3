//! Issue 17, items 1 and 3: a consent completes only for the signed-in user who started it,
//! and no callback parameter naming a host or an account can send a code anywhere before it
//! was checked against the state. Against moto and the simulators, through the real handlers.

use chrono::{Duration, Utc};
use relay_tests::context::{completion_code, outcome, TestContext};
use relay_tests::events::ApiEvent;
use serde_json::json;
use shared::credentials::Credentials;
use shared::identity::TenantId;
use shared::store::PendingConnection;
use shared::Provider;

const VICTIM: &str = "victim@example.com";
const OWNER: &str = "owner@example.com";

/// `POST /connections/{provider}/authorize` as `(tenant, plan, sub)`; the consent URL.
async fn authorize_as(
    ctx: &TestContext,
    provider: &str,
    who: (&str, &str, &str),
    body: Option<serde_json::Value>,
) -> String {
    let mut event = ApiEvent::sample("connections-api/authorize.json")
        .provider(provider)
        .claims(who.0, who.1);
    event.0["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(who.2);
    if let Some(body) = body {
        event = event.body(body);
    }
    let started = ctx.api_raw(event).await;
    assert_eq!(started.status, 200, "{}", started.body);
    started.body["authorize_url"].as_str().unwrap().to_string()
}

/// A Google Sheets consent started by `who`, given by the simulator's `user`: the completion
/// code of the callback's redirect.
async fn google_consent(ctx: &TestContext, who: (&str, &str, &str), user: &str) -> String {
    let url = authorize_as(ctx, "google_sheets", who, None).await;
    let query = ctx
        .consent_for("google_sheets", &format!("{url}&sim_user={user}"))
        .await;
    let redirect = ctx.callback_raw("google_sheets", &query).await;
    let back = outcome(&redirect);
    assert_eq!(back["status"], "consented", "{back:?}");
    assert_eq!(
        back.keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["completion_code", "provider", "status"].into(),
        "no tenant, token or user in the redirect"
    );
    completion_code(&redirect).unwrap()
}

async fn connection(
    ctx: &TestContext,
    tenant: &str,
    provider: Provider,
) -> Option<shared::store::Connection> {
    ctx.services
        .store
        .get_connection(&TenantId::parse(tenant).unwrap(), provider)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_forwarded_consent_url_leaves_the_starting_tenant_with_nothing_and_revokes_the_victims_tokens(
) {
    let ctx = TestContext::new().await;
    let tenant_a = TestContext::tenant();
    let tenant_b = TestContext::tenant();
    // Tenant A's user starts and forwards the consent URL; the victim consents with their own
    // Google account. The victim's browser lands on the setup page, where the victim is signed
    // in to their own tenant (B): the setup page posts the code with the victim's JWT.
    let code = google_consent(&ctx, (&tenant_a, "free", "attacker-a"), VICTIM).await;
    assert_eq!(
        ctx.google.live_refresh_tokens(VICTIM),
        1,
        "the consent issued a grant"
    );
    let revoked_before = ctx.google.revocations();

    let refused = ctx
        .complete("google_sheets", (&tenant_b, "free", "victim-b"), &code)
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.body["error"], "unauthorized");
    assert_eq!(ctx.google.revocations(), revoked_before + 1);
    assert_eq!(
        ctx.google.live_refresh_tokens(VICTIM),
        0,
        "the victim's grant is revoked"
    );

    // Even with the code in hand afterwards, A's user gets nothing: it was used.
    let late = ctx
        .complete("google_sheets", (&tenant_a, "free", "attacker-a"), &code)
        .await;
    assert_eq!(late.status, 404, "{}", late.body);
    assert!(connection(&ctx, &tenant_a, Provider::GoogleSheets)
        .await
        .is_none());
    assert!(connection(&ctx, &tenant_b, Provider::GoogleSheets)
        .await
        .is_none());

    // The victim consents to a second forwarded URL and nobody completes it: the sweep
    // revokes and deletes it once it expired.
    let code = google_consent(&ctx, (&tenant_a, "free", "attacker-a"), VICTIM).await;
    assert_eq!(ctx.google.live_refresh_tokens(VICTIM), 1);
    let swept = shared::connections::sweep_pending_connections(
        &ctx.services,
        Utc::now() + Duration::minutes(11),
    )
    .await
    .unwrap();
    assert_eq!((swept.deleted, swept.revoked), (1, 1));
    assert_eq!(ctx.google.live_refresh_tokens(VICTIM), 0);
    let after_sweep = ctx
        .complete("google_sheets", (&tenant_a, "free", "attacker-a"), &code)
        .await;
    assert_eq!(after_sweep.status, 404, "{}", after_sweep.body);
    assert!(connection(&ctx, &tenant_a, Provider::GoogleSheets)
        .await
        .is_none());
}

#[tokio::test]
async fn the_user_who_started_completes_once_and_another_user_of_the_tenant_is_refused() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();

    // Another user of the same tenant presents the code: refused, the grant revoked.
    let code = google_consent(&ctx, (&tenant, "free", "user-1"), OWNER).await;
    let other = ctx
        .complete("google_sheets", (&tenant, "free", "user-2"), &code)
        .await;
    assert_eq!(other.status, 401, "{}", other.body);
    assert_eq!(ctx.google.live_refresh_tokens(OWNER), 0);
    assert!(connection(&ctx, &tenant, Provider::GoogleSheets)
        .await
        .is_none());

    // The code on another provider's route, by the right user: refused and revoked too.
    let code = google_consent(&ctx, (&tenant, "free", "user-1"), OWNER).await;
    let wrong_route = ctx
        .complete("hubspot", (&tenant, "free", "user-1"), &code)
        .await;
    assert_eq!(wrong_route.status, 401, "{}", wrong_route.body);
    assert_eq!(ctx.google.live_refresh_tokens(OWNER), 0);

    // The user who started it: connected; the same code again: refused, the connection kept.
    let code = google_consent(&ctx, (&tenant, "free", "user-1"), OWNER).await;
    let done = ctx
        .complete("google_sheets", (&tenant, "free", "user-1"), &code)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        done.body,
        json!({"provider": "google_sheets", "status": "connected", "reconnect": false})
    );
    let stored = connection(&ctx, &tenant, Provider::GoogleSheets)
        .await
        .unwrap();
    assert_eq!(ctx.google.live_refresh_tokens(OWNER), 1);
    let replay = ctx
        .complete("google_sheets", (&tenant, "free", "user-1"), &code)
        .await;
    assert_eq!(replay.status, 404, "{}", replay.body);
    let still = connection(&ctx, &tenant, Provider::GoogleSheets)
        .await
        .unwrap();
    assert_eq!(still.version, stored.version);
    assert_eq!(
        ctx.google.live_refresh_tokens(OWNER),
        1,
        "a replay revokes nothing"
    );

    // Bodies other than {"completion_code": string} are refused before anything is looked up.
    for body in [
        json!({}),
        json!({"completion_code": 7}),
        json!({"completion_code": "x", "tenant_id": tenant}),
    ] {
        let mut event = ApiEvent::sample("connections-api/complete.json")
            .provider("google_sheets")
            .claims(&tenant, "free")
            .body(body.clone());
        event.0["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("user-1");
        assert_eq!(ctx.api_raw(event).await.status, 400, "{body}");
    }
}

#[tokio::test]
async fn the_refresh_schedule_sweeps_expired_pending_connections_and_revokes_them() {
    let ctx = TestContext::new().await;
    let tenant = TenantId::parse(&TestContext::tenant()).unwrap();
    let seeded = ctx.google.seed_connection(VICTIM);
    let credentials = Credentials {
        access_token: Some(seeded.access_token.clone().into()),
        refresh_token: Some(seeded.refresh_token.clone().into()),
        api_key: None,
    };
    let sealed = ctx
        .services
        .vault
        .seal(&tenant, Provider::GoogleSheets, &credentials)
        .await
        .unwrap();
    let pending = |expires_at| PendingConnection {
        tenant: tenant.clone(),
        subject: "user-1".into(),
        provider: Provider::GoogleSheets,
        sealed: sealed.clone(),
        has_refresh_token: true,
        account: Default::default(),
        token_expires_at: None,
        expires_at,
    };
    // One abandoned a minute ago, one still within its time.
    ctx.services
        .store
        .put_pending_connection(
            "a".repeat(64).as_str(),
            &pending(Utc::now() - Duration::minutes(1)),
        )
        .await
        .unwrap();
    ctx.services
        .store
        .put_pending_connection(
            "b".repeat(64).as_str(),
            &pending(Utc::now() + Duration::minutes(9)),
        )
        .await
        .unwrap();
    assert_eq!(ctx.google.live_refresh_tokens(VICTIM), 1);

    ctx.run_schedule().await;

    assert_eq!(
        ctx.google.live_refresh_tokens(VICTIM),
        0,
        "revoked at Google"
    );
    assert!(
        ctx.services
            .store
            .take_pending_connection(&"a".repeat(64))
            .await
            .unwrap()
            .is_none(),
        "deleted"
    );
    assert!(
        ctx.services
            .store
            .take_pending_connection(&"b".repeat(64))
            .await
            .unwrap()
            .is_some(),
        "the live one is kept"
    );
}

// ---- Item 3: look-alike hosts in the callback; no code leaves ----

const SOUQ: &str = "souq-bakery.bitrix24.com";
const OTHER: &str = "dune-motors.bitrix24.eu";

fn bitrix_token_calls(ctx: &TestContext) -> usize {
    ctx.bitrix
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/oauth/token"))
        .count()
}

#[tokio::test]
async fn bitrix24_callbacks_naming_another_portal_or_an_odd_member_are_refused_before_the_code_leaves(
) {
    let ctx = TestContext::new().await;
    ctx.bitrix.add_portal(SOUQ);
    ctx.bitrix.add_portal(OTHER);
    let tenant = TestContext::tenant();
    for (name, forged) in [
        ("domain", "evil.bitrix24.com.evil.test"),
        ("domain", "souq-bakery.bitrix24.com.evil.test"),
        ("domain", OTHER),
        ("member_id", "../../evil"),
    ] {
        let url = authorize_as(
            &ctx,
            "bitrix24",
            (&tenant, "pro", "user-1"),
            Some(json!({ "portal": SOUQ })),
        )
        .await;
        let mut query = ctx
            .consent_for("bitrix24", &format!("{url}&sim_portal={SOUQ}"))
            .await;
        let mut named = false;
        for (k, v) in query.iter_mut() {
            if k == name {
                *v = forged.into();
                named = true;
            }
        }
        assert!(named, "the simulator's callback names {name}");
        let back = outcome(&ctx.callback_raw("bitrix24", &query).await);
        assert_eq!(
            back["reason"], "callback_host_mismatch",
            "{name}={forged}: {back:?}"
        );
        assert_eq!(
            bitrix_token_calls(&ctx),
            0,
            "{name}={forged}: the code was sent"
        );
    }
    assert!(connection(&ctx, &tenant, Provider::Bitrix24)
        .await
        .is_none());
    // The same flow untouched connects (the checks refuse only what disagrees).
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", SOUQ, SOUQ).await);
    assert_eq!(back["status"], "connected", "{back:?}");
}

#[tokio::test]
async fn zoho_callbacks_with_a_look_alike_accounts_server_or_another_location_send_no_code() {
    let ctx = TestContext::new().await;
    let token_calls = |ctx: &TestContext| {
        ctx.zoho
            .requests()
            .iter()
            .filter(|r| r.path == "/oauth/v2/token")
            .count()
    };
    let tenant = TestContext::tenant();
    for (name, forged, reason) in [
        (
            "accounts-server",
            "https://accounts.zoho.com.evil.test",
            "untrusted_accounts_server",
        ),
        (
            "accounts-server",
            "https://accounts.zoho.com.au.evil.test",
            "untrusted_accounts_server",
        ),
        ("location", "eu", "callback_host_mismatch"),
        ("location", "au.evil.test", "callback_host_mismatch"),
    ] {
        let url = authorize_as(&ctx, "zoho", (&tenant, "pro", "user-1"), None).await;
        let mut query = ctx.consent_for("zoho", &format!("{url}&sim_dc=au")).await;
        for (k, v) in query.iter_mut() {
            if k == name {
                *v = forged.into();
            }
        }
        let back = outcome(&ctx.callback_raw("zoho", &query).await);
        assert_eq!(back["reason"], reason, "{name}={forged}: {back:?}");
        assert_eq!(token_calls(&ctx), 0, "{name}={forged}: the code was sent");
    }
    assert!(connection(&ctx, &tenant, Provider::Zoho).await.is_none());
    let back = outcome(&ctx.connect_zoho(&tenant, "pro", "au", "").await);
    assert_eq!(back["status"], "connected", "{back:?}");
}

#[tokio::test]
async fn a_salesforce_callback_naming_a_look_alike_login_host_sends_no_code() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let token_calls = |ctx: &TestContext| {
        ctx.salesforce
            .requests()
            .iter()
            .filter(|r| r.path == "/services/oauth2/token")
            .count()
    };
    for forged in [
        "https://login.salesforce.com.evil.test",
        "https://acme.my.salesforce.com.evil.test",
        "https://acme.my.salesforce.com",
    ] {
        let url = authorize_as(&ctx, "salesforce", (&tenant, "business", "user-1"), None).await;
        let mut query = ctx
            .consent_for("salesforce", &format!("{url}&sim_org=acme"))
            .await;
        query.push(("sfdc_community_url".into(), forged.into()));
        let back = outcome(&ctx.callback_raw("salesforce", &query).await);
        assert_eq!(
            back["reason"], "callback_host_mismatch",
            "{forged}: {back:?}"
        );
        assert_eq!(token_calls(&ctx), 0, "{forged}: the code was sent");
    }
    assert!(connection(&ctx, &tenant, Provider::Salesforce)
        .await
        .is_none());
}
