//! Token refresh: the scheduled job through the real handler, the lease under concurrency,
//! and the ordering of writes when storage fails after the provider answered.

use relay_tests::aws_faults::FaultyAws;
use relay_tests::context::{outcome, TestContext};
use relay_tests::sim::{Fault, Route};
use secrecy::ExposeSecret;
use shared::credentials::Credentials;
use shared::identity::TenantId;
use shared::refresh::{refresh, RefreshCause};
use shared::store::{Connection, ConnectionStatus};
use shared::Provider;

use crate::manage::spent_token;

async fn connected(ctx: &TestContext) -> TenantId {
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    TenantId::parse(&tenant).unwrap()
}

async fn connection(ctx: &TestContext, tenant: &TenantId) -> Connection {
    ctx.services
        .store
        .get_connection(tenant, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap()
}

/// Makes the stored access token spent, as if time had passed.
async fn spend(ctx: &TestContext, tenant: &TenantId) {
    let c = connection(ctx, tenant).await;
    assert!(ctx
        .services
        .store
        .update_tokens(
            tenant,
            Provider::Hubspot,
            c.version,
            &c.credentials,
            spent_token()
        )
        .await
        .unwrap());
}

fn refresh_calls(ctx: &TestContext) -> usize {
    ctx.hubspot
        .requests()
        .iter()
        .filter(|r| {
            r.path == "/oauth/2026-03/token"
                && r.form().get("grant_type").map(String::as_str) == Some("refresh_token")
        })
        .count()
}

#[tokio::test]
async fn the_schedule_refreshes_every_due_connection_and_leaves_the_rest() {
    let ctx = TestContext::new().await;
    let due = [
        connected(&ctx).await,
        connected(&ctx).await,
        connected(&ctx).await,
    ];
    let fresh = connected(&ctx).await;
    for tenant in &due {
        spend(&ctx, tenant).await;
    }
    // HubSpot tokens live 30 minutes: the fresh one is outside the 15-minute lookahead.
    let before = connection(&ctx, &fresh).await;

    let summary = ctx.run_schedule().await;
    assert_eq!(
        (summary.refreshed, summary.skipped, summary.failed),
        (3, 0, 0)
    );
    assert_eq!(refresh_calls(&ctx), 3);
    for tenant in &due {
        let c = connection(&ctx, tenant).await;
        assert!(c.token_expiry().unwrap() > chrono::Utc::now() + chrono::Duration::minutes(20));
        assert!(
            c.refresh_lease_owner.is_none(),
            "the lease is released in the same write"
        );
    }
    assert_eq!(
        connection(&ctx, &fresh).await.version,
        before.version,
        "not due: untouched"
    );

    // Nothing is due any more: a second run does nothing.
    let again = ctx.run_schedule().await;
    assert_eq!((again.refreshed, again.skipped, again.failed), (0, 0, 0));
    assert_eq!(refresh_calls(&ctx), 3);
}

#[tokio::test]
async fn fifty_concurrent_refreshes_of_one_connection_make_one_provider_call_and_all_get_a_working_token(
) {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    spend(&ctx, &tenant).await;
    let stale = connection(&ctx, &tenant).await;

    let attempts = (0..50).map(|_| refresh(&ctx.services, stale.clone(), RefreshCause::Expiring));
    let results = futures::future::join_all(attempts).await;

    assert_eq!(
        refresh_calls(&ctx),
        1,
        "exactly one refresh reached HubSpot"
    );
    let tokens: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| {
            let refreshed = r.expect("every attempt ends with tokens");
            refreshed
                .credentials
                .access_token
                .unwrap()
                .expose_secret()
                .to_string()
        })
        .collect();
    assert_eq!(tokens.len(), 1, "everyone uses the one new token");
    let token = tokens.into_iter().next().unwrap();
    let live = ctx.hubspot.issued_access_tokens();
    assert_eq!(live.last(), Some(&token), "the newest token HubSpot issued");
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/crm/pipelines/2026-09/deals",
            ctx.hubspot.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "and it works");
    for secret in ctx
        .hubspot
        .issued_access_tokens()
        .iter()
        .chain(ctx.hubspot.live_refresh_tokens().iter())
    {
        relay_tests::logs::assert_never_logged("token", secret);
    }
}

#[tokio::test]
async fn tokens_the_provider_issued_are_stored_even_when_the_first_writes_fail() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    spend(&ctx, &tenant).await;
    let stale = connection(&ctx, &tenant).await;
    // Every DynamoDB attempt of the first store (the SDK tries 3 times) fails.
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let proxy = FaultyAws::start(
        &moto,
        "UpdateItem",
        "refresh_lease_owner = :owner OR version",
        3,
    )
    .await;
    let services = ctx.services_via(&proxy.endpoint);

    let refreshed = refresh(&services, stale, RefreshCause::Expiring)
        .await
        .expect("stored on a later attempt");

    assert!(
        proxy.matched() >= 4,
        "the store was tried again after failing: {} calls matched",
        proxy.matched()
    );
    assert_eq!(refresh_calls(&ctx), 1, "the provider was asked once");
    let stored = connection(&ctx, &tenant).await;
    let opened = ctx
        .services
        .vault
        .open(&tenant, Provider::Hubspot, &stored.credentials)
        .await
        .unwrap();
    assert_eq!(
        opened.access_token.unwrap().expose_secret(),
        refreshed.credentials.access_token.unwrap().expose_secret(),
        "what is used is what is stored"
    );
    assert!(stored.refresh_lease_owner.is_none());
}

#[tokio::test]
async fn a_dead_grant_marks_the_connection_needs_reauth_and_takes_it_off_the_schedule() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    spend(&ctx, &tenant).await;
    ctx.hubspot.inject(
        Route::Token,
        Fault::Status(400, r#"{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"x"}"#.into()),
    );
    let summary = ctx.run_schedule().await;
    assert_eq!((summary.refreshed, summary.failed), (0, 1));
    let c = connection(&ctx, &tenant).await;
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert!(c.last_error.unwrap().message.contains("invalid_grant"));
    assert!(c.refresh_due_at.is_none(), "no longer in the refresh index");
    let again = ctx.run_schedule().await;
    assert_eq!((again.refreshed, again.skipped, again.failed), (0, 0, 0));
}

#[tokio::test]
async fn a_transient_failure_leaves_the_connection_active_for_the_next_run() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    spend(&ctx, &tenant).await;
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Token, Fault::Status(503, "down".into()));
    }
    let summary = ctx.run_schedule().await;
    assert_eq!(summary.failed, 1);
    let c = connection(&ctx, &tenant).await;
    assert_eq!(c.status, ConnectionStatus::Active);
    assert!(c.refresh_lease_owner.is_none(), "the lease was given back");

    let next = ctx.run_schedule().await;
    assert_eq!(next.refreshed, 1);
}

#[tokio::test]
async fn a_connection_without_a_refresh_token_is_never_touched_by_the_schedule() {
    let ctx = TestContext::new().await;
    let tenant = TenantId::parse(&TestContext::tenant()).unwrap();
    // An API-key connection (Freshsales' kind): nothing expires, nothing to refresh.
    let sealed = ctx
        .services
        .vault
        .seal(
            &tenant,
            Provider::Freshsales,
            &Credentials {
                api_key: Some("key-1234567890".to_string().into()),
                ..Credentials::default()
            },
        )
        .await
        .unwrap();
    let row = Connection {
        tenant_id: tenant.clone(),
        provider: Provider::Freshsales,
        status: ConnectionStatus::Active,
        credentials: sealed,
        account: Default::default(),
        token_expires_at: None,
        refresh_due_at: None,
        refresh_bucket: None,
        refreshed_at: None,
        version: 1,
        settings: None,
        connected_at: chrono::Utc::now(),
        last_sync_at: None,
        backfill_pushed: None,
        backfill_failed: None,
        backfill_last_pushed_at: None,
        last_error: None,
        refresh_lease_owner: None,
        refresh_lease_until: None,
        refresh_in_flight: None,
        first_connected_at: None,
        refresh_in_doubt: None,
    };
    assert!(ctx.services.store.put_connection(&row, None).await.unwrap());
    let summary = ctx.run_schedule().await;
    assert_eq!(
        (summary.refreshed, summary.skipped, summary.failed),
        (0, 0, 0)
    );
    let after = ctx
        .services
        .store
        .get_connection(&tenant, Provider::Freshsales)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.version, 1);
    assert!(ctx.hubspot.requests().is_empty());
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_and_the_old_one_is_refused_afterwards() {
    let ctx = TestContext::with_rotation(relay_tests::sim::Rotation::Rotating).await;
    let tenant = connected(&ctx).await;
    let original = {
        let c = connection(&ctx, &tenant).await;
        ctx.services
            .vault
            .open(&tenant, Provider::Hubspot, &c.credentials)
            .await
            .unwrap()
    };
    spend(&ctx, &tenant).await;

    assert_eq!(ctx.run_schedule().await.refreshed, 1);

    let stored = connection(&ctx, &tenant).await;
    let now = ctx
        .services
        .vault
        .open(&tenant, Provider::Hubspot, &stored.credentials)
        .await
        .unwrap();
    let old_refresh = original.refresh_token.unwrap().expose_secret().to_string();
    let new_refresh = now.refresh_token.unwrap().expose_secret().to_string();
    assert_ne!(
        old_refresh, new_refresh,
        "the rotated refresh token replaced the old one"
    );
    assert_eq!(ctx.hubspot.live_refresh_tokens(), vec![new_refresh.clone()]);

    // The simulator refuses the old one, and the stored one keeps working.
    let form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.to_string()),
            ("client_id", "test-client-id".to_string()),
            ("client_secret", ctx.client_secret.clone()),
        ]
    };
    let token_url = format!("{}/oauth/2026-03/token", ctx.hubspot.base_url());
    let old = reqwest::Client::new()
        .post(&token_url)
        .form(&form(&old_refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status().as_u16(), 400);
    spend(&ctx, &tenant).await;
    assert_eq!(
        ctx.run_schedule().await.refreshed,
        1,
        "the stored token refreshes again"
    );
}

#[tokio::test]
async fn concurrent_pushes_and_the_schedule_never_present_a_rotated_token_twice() {
    // Reusing a rotated token would revoke the whole grant here, as at Salesforce.
    let ctx =
        TestContext::with_rotation(relay_tests::sim::Rotation::RotatingReuseRevokesGrant).await;
    let tenant = connected(&ctx).await;
    for round in 0..3 {
        spend(&ctx, &tenant).await;
        let stale = connection(&ctx, &tenant).await;
        let mut attempts: Vec<_> = (0..20)
            .map(|_| refresh(&ctx.services, stale.clone(), RefreshCause::Expiring))
            .collect();
        attempts.push(refresh(
            &ctx.services,
            stale.clone(),
            RefreshCause::DueBefore(chrono::Utc::now()),
        ));
        for result in futures::future::join_all(attempts).await {
            assert!(result.is_ok(), "round {round}: {:?}", result.err());
        }
        assert_eq!(refresh_calls(&ctx), round + 1, "one refresh per round");
    }
    let c = connection(&ctx, &tenant).await;
    assert_eq!(
        c.status,
        ConnectionStatus::Active,
        "the grant was never revoked"
    );
    assert_eq!(ctx.hubspot.live_refresh_tokens().len(), 1);
}
