use relay_tests::context::{outcome, TestContext};

use crate::connect::assert_no_connection;

async fn consented(ctx: &TestContext, tenant: &str) -> Vec<(String, String)> {
    let started = ctx.authorize(tenant, "pro").await;
    assert_eq!(started.status, 200, "{}", started.body);
    ctx.consent(started.body["authorize_url"].as_str().unwrap())
        .await
}

fn with_state(query: &[(String, String)], state: &str) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "state" {
                    state.to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_state_is_refused_and_the_code_is_not_exchanged_again() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let query = consented(&ctx, &tenant).await;
    assert_eq!(
        outcome(&ctx.callback("hubspot", &query).await)["status"],
        "connected"
    );

    let replay = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&replay)["status"], "error");
    assert_eq!(outcome(&replay)["reason"], "state_already_used");
    assert_eq!(ctx.hubspot.count("POST", "/oauth/2026-03/token"), 1);
}

#[tokio::test]
async fn a_forged_state_is_refused_and_stores_nothing() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let query = consented(&ctx, &tenant).await;
    let forged = with_state(&query, "forged-state-that-was-never-issued-by-us-00000");
    let redirect = ctx.callback("hubspot", &forged).await;
    assert_eq!(outcome(&redirect)["reason"], "invalid_state");
    assert_no_connection(&ctx, &tenant).await;
    assert_eq!(ctx.hubspot.count("POST", "/oauth/2026-03/token"), 0);

    let missing: Vec<_> = query
        .iter()
        .filter(|(k, _)| k != "state")
        .cloned()
        .collect();
    assert_eq!(
        outcome(&ctx.callback("hubspot", &missing).await)["reason"],
        "invalid_state"
    );
}

#[tokio::test]
async fn an_expired_state_is_refused_and_stores_nothing() {
    // A time to live of zero: every state is expired by the time the callback sees it.
    let ctx = TestContext::with_env(&[("OAUTH_STATE_TTL_SECONDS", "0")]).await;
    let tenant = TestContext::tenant();
    let query = consented(&ctx, &tenant).await;
    let redirect = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&redirect)["reason"], "state_expired");
    assert_no_connection(&ctx, &tenant).await;
    assert_eq!(ctx.hubspot.count("POST", "/oauth/2026-03/token"), 0);
}

#[tokio::test]
async fn a_state_issued_for_another_provider_is_refused_and_burnt() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let query = consented(&ctx, &tenant).await;
    let redirect = ctx.callback("zoho", &query).await;
    assert_eq!(outcome(&redirect)["reason"], "state_provider_mismatch");
    assert_eq!(outcome(&redirect)["provider"], "zoho");
    // Burnt: it cannot be used at the right provider afterwards either.
    let again = ctx.callback("hubspot", &query).await;
    assert_eq!(outcome(&again)["reason"], "state_already_used");
    assert_no_connection(&ctx, &tenant).await;
}

#[tokio::test]
async fn a_callback_without_a_code_is_refused() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let query = consented(&ctx, &tenant).await;
    let no_code: Vec<_> = query.iter().filter(|(k, _)| k != "code").cloned().collect();
    assert_eq!(
        outcome(&ctx.callback("hubspot", &no_code).await)["reason"],
        "missing_code"
    );
    assert_no_connection(&ctx, &tenant).await;
}

#[tokio::test]
async fn the_callback_only_ever_redirects_to_the_configured_setup_page() {
    let ctx = TestContext::new().await;
    for provider in ["hubspot", "unknown", "%2F%2Fevil.example", ""] {
        let query = vec![
            ("state".to_string(), "x".to_string()),
            (
                "redirect_uri".to_string(),
                "https://evil.example/".to_string(),
            ),
        ];
        let target = ctx.callback(provider, &query).await;
        assert_eq!(target.host_str(), Some("app.leadrelay.test"), "{target}");
        assert_eq!(target.path(), "/settings/integrations");
    }
}
