//! Token custody under faults: a rotating refresh token (Salesforce: presenting a used one
//! revokes the grant; Bitrix24: single use) is never presented twice, whether the refresh's
//! answer is lost, the invocation's deadline is near, the process dies mid-call, or the store
//! fails after the provider answered; and a reconnect racing a failed refresh keeps the new
//! connection active. Refresh-token presentations are counted at the simulators.

use std::time::{Duration, SystemTime};

use relay_tests::aws_faults::FaultyAws;
use relay_tests::context::{outcome, TestContext};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use shared::error::Error;
use shared::identity::TenantId;
use shared::refresh::{deadline, refresh, RefreshCause, DOUBT_REASON};
use shared::store::{Connection, ConnectionStatus};
use shared::{Provider, Services};

use crate::manage::spent_token;

const ACME: &str = "acme";
const SOUQ: &str = "souq-bakery.bitrix24.com";

async fn salesforce(ctx: &TestContext) -> TenantId {
    let tenant = TestContext::tenant();
    let back = outcome(
        &ctx.connect_salesforce(&tenant, "business", None, ACME)
            .await,
    );
    assert_eq!(back["status"], "connected", "{back:?}");
    TenantId::parse(&tenant).unwrap()
}

async fn bitrix24(ctx: &TestContext) -> TenantId {
    ctx.bitrix.add_portal(SOUQ);
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", SOUQ, SOUQ).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    TenantId::parse(&tenant).unwrap()
}

async fn row(ctx: &TestContext, tenant: &TenantId, provider: Provider) -> Connection {
    ctx.services
        .store
        .get_connection(tenant, provider)
        .await
        .unwrap()
        .unwrap()
}

/// Makes the stored access token expired, as if its lifetime had passed.
async fn spend(ctx: &TestContext, tenant: &TenantId, provider: Provider) -> Connection {
    let c = row(ctx, tenant, provider).await;
    assert!(ctx
        .services
        .store
        .update_tokens(tenant, provider, c.version, &c.credentials, spent_token())
        .await
        .unwrap());
    row(ctx, tenant, provider).await
}

fn presentations(ctx: &TestContext, provider: Provider) -> usize {
    match provider {
        Provider::Salesforce => ctx.salesforce.refresh_calls(ACME),
        Provider::Bitrix24 => ctx.bitrix.refresh_calls(),
        other => panic!("no counter for {other}"),
    }
}

fn token_calls(provider: Provider) -> CallMatch {
    match provider {
        Provider::Salesforce => CallMatch::path("/services/oauth2/token"),
        _ => CallMatch::path("/oauth/token"),
    }
}

fn sim_url(ctx: &TestContext, provider: Provider) -> String {
    match provider {
        Provider::Salesforce => ctx.salesforce.base_url(),
        _ => ctx.bitrix.base_url(),
    }
}

fn slug(provider: Provider) -> &'static str {
    match provider {
        Provider::Salesforce => "salesforce",
        _ => "bitrix24",
    }
}

/// Twenty concurrent pushes' refreshes of one dead token, the first token call's answer lost
/// after the provider rotated: one presentation, none after, and the connection asks for a
/// reconnect (its access token is dead) with the reason, instead of burning the grant.
async fn lost_answer_with_waiters(provider: Provider, fault: ProxyFault) {
    let ctx = TestContext::new().await;
    let tenant = match provider {
        Provider::Salesforce => salesforce(&ctx).await,
        _ => bitrix24(&ctx).await,
    };
    let stale = spend(&ctx, &tenant, provider).await;
    let proxy = FaultProxy::start(&sim_url(&ctx, provider)).await;
    let lost = proxy.on(token_calls(provider), 1, fault);
    let services = ctx.services_with_provider_endpoint(slug(provider), &proxy.endpoint());
    let before = presentations(&ctx, provider);

    let attempts = (0..20).map(|_| refresh(&services, stale.clone(), RefreshCause::Expiring));
    let results = futures::future::join_all(attempts).await;

    assert!(lost.has_fired(), "the token call went through the proxy");
    assert_eq!(
        presentations(&ctx, provider) - before,
        1,
        "the refresh token was presented once, never again after its answer was lost"
    );
    for result in &results {
        assert!(
            matches!(result, Err(Error::NeedsReauth { .. })),
            "{:?}",
            result.as_ref().err()
        );
    }
    let c = row(&ctx, &tenant, provider).await;
    assert_eq!(c.status, ConnectionStatus::NeedsReauth);
    assert_eq!(c.last_error.unwrap().message, DOUBT_REASON);
    assert!(c.refresh_in_doubt.is_some());
    if provider == Provider::Salesforce {
        assert!(!ctx.salesforce.grant_revoked_on_reuse(ACME));
    }
    // The schedule does not present it either.
    ctx.run_schedule().await;
    assert_eq!(presentations(&ctx, provider) - before, 1);
}

#[tokio::test]
async fn salesforce_refresh_answer_lost_with_twenty_waiters_is_presented_once() {
    lost_answer_with_waiters(Provider::Salesforce, ProxyFault::LoseAnswer(500)).await;
}

#[tokio::test]
async fn bitrix24_refresh_answer_lost_with_twenty_waiters_is_presented_once() {
    lost_answer_with_waiters(Provider::Bitrix24, ProxyFault::ResetAfterApply).await;
}

#[tokio::test]
async fn a_doubtful_refresh_keeps_the_live_access_token_in_use() {
    let ctx = TestContext::new().await;
    let tenant = salesforce(&ctx).await;
    // Expiring within the margin, but alive: the push may go on with it.
    let c = row(&ctx, &tenant, Provider::Salesforce).await;
    let soon = chrono::Utc::now().timestamp() + 60;
    let schedule = shared::store::TokenSchedule {
        token_expires_at: Some(soon),
        refresh_due_at: Some(soon),
    };
    assert!(ctx
        .services
        .store
        .update_tokens(
            &tenant,
            Provider::Salesforce,
            c.version,
            &c.credentials,
            schedule
        )
        .await
        .unwrap());
    let stale = row(&ctx, &tenant, Provider::Salesforce).await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    proxy.on(
        token_calls(Provider::Salesforce),
        1,
        ProxyFault::GarbageAfterApply,
    );
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());

    let used = refresh(&services, stale.clone(), RefreshCause::Expiring)
        .await
        .expect("the live access token is used");
    assert!(!used.minted);
    let again = refresh(&services, stale, RefreshCause::Expiring)
        .await
        .unwrap();
    assert!(!again.minted);
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
    let c = row(&ctx, &tenant, Provider::Salesforce).await;
    assert_eq!(c.status, ConnectionStatus::Active);
    assert!(c.refresh_in_doubt.is_some() && c.refresh_lease_owner.is_none());
}

#[tokio::test]
async fn no_rotating_refresh_starts_too_close_to_the_deadline() {
    for provider in [Provider::Salesforce, Provider::Bitrix24] {
        let ctx = TestContext::new().await;
        let tenant = match provider {
            Provider::Salesforce => salesforce(&ctx).await,
            _ => bitrix24(&ctx).await,
        };
        let stale = spend(&ctx, &tenant, provider).await;
        let before = presentations(&ctx, provider);
        // Less than the 8 s token timeout plus storing is left.
        let soon = SystemTime::now() + Duration::from_secs(3);
        let result = deadline::within(
            Some(soon),
            refresh(&ctx.services, stale, RefreshCause::Expiring),
        )
        .await;
        match result {
            Err(error @ Error::Busy(_)) => assert!(error.is_retryable()),
            other => panic!("{provider}: {:?}", other.err()),
        }
        assert_eq!(
            presentations(&ctx, provider),
            before,
            "{provider}: nothing presented"
        );
        let c = row(&ctx, &tenant, provider).await;
        assert_eq!(c.status, ConnectionStatus::Active);
        assert!(c.refresh_lease_owner.is_none(), "the lease was given back");
        // With time enough, the same refresh goes ahead.
        let fresh = row(&ctx, &tenant, provider).await;
        let done = refresh(&ctx.services, fresh, RefreshCause::Expiring)
            .await
            .unwrap();
        assert!(done.minted);
        assert_eq!(presentations(&ctx, provider), before + 1);
    }
}

/// Lets the lease lapse at once, as if `LEASE_SECONDS` had passed since its holder died.
async fn lapse_lease(services: &Services, tenant: &TenantId, provider: Provider) {
    let c = services
        .store
        .get_connection(tenant, provider)
        .await
        .unwrap()
        .unwrap();
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let later = chrono::Utc::now() + chrono::Duration::seconds(shared::refresh::LEASE_SECONDS + 1);
    assert!(
        c.refresh_lease_owner.is_some(),
        "the dead holder's lease is there"
    );
    // Taken "later" by nobody, until a moment ago: the lease has lapsed.
    assert!(services
        .store
        .acquire_refresh_lease(tenant, provider, "lapsed", later, past)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_process_killed_mid_refresh_leaves_a_doubt_not_a_second_presentation() {
    for provider in [Provider::Salesforce, Provider::Bitrix24] {
        let ctx = TestContext::new().await;
        let tenant = match provider {
            Provider::Salesforce => salesforce(&ctx).await,
            _ => bitrix24(&ctx).await,
        };
        let stale = spend(&ctx, &tenant, provider).await;
        let proxy = FaultProxy::start(&sim_url(&ctx, provider)).await;
        let hang = proxy.on(token_calls(provider), 1, ProxyFault::HangAfterApply);
        let services = ctx.services_with_provider_endpoint(slug(provider), &proxy.endpoint());
        let before = presentations(&ctx, provider);

        // The process dies once the provider has applied the refresh.
        let killed = tokio::select! {
            _ = refresh(&services, stale.clone(), RefreshCause::Expiring) => false,
            _ = hang.fired() => true,
        };
        assert!(killed, "{provider}: killed mid-call");
        assert_eq!(presentations(&ctx, provider) - before, 1);
        lapse_lease(&ctx.services, &tenant, provider).await;

        let next = refresh(&ctx.services, stale, RefreshCause::Expiring).await;
        assert!(matches!(next, Err(Error::NeedsReauth { .. })), "{provider}");
        assert_eq!(
            presentations(&ctx, provider) - before,
            1,
            "{provider}: the next holder did not present the old token"
        );
        let c = row(&ctx, &tenant, provider).await;
        assert!(
            c.refresh_in_doubt.is_some(),
            "{provider}: the doubt is recorded"
        );
        assert_eq!(c.status, ConnectionStatus::NeedsReauth);
        assert_eq!(c.last_error.unwrap().message, DOUBT_REASON);
    }
}

#[tokio::test]
async fn dynamodb_failing_after_the_provider_answered_is_retried_to_the_deadline_then_doubted() {
    let ctx = TestContext::with_env(&[("HTTP_TIMEOUT_MS", "1000")]).await;
    let tenant = salesforce(&ctx).await;
    let stale = spend(&ctx, &tenant, Provider::Salesforce).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    // Every write of the new tokens fails; the doubt (another write) does not.
    let aws = FaultyAws::start(
        &moto,
        "UpdateItem",
        "refresh_lease_owner = :owner OR version",
        100_000,
    )
    .await;
    let services = ctx.services_via(&aws.endpoint);

    let started = std::time::Instant::now();
    let budget = shared::refresh::rotating_refresh_budget(&services.config);
    let until = SystemTime::now() + budget + Duration::from_secs(1);
    let result = deadline::within(
        Some(until),
        refresh(&services, stale.clone(), RefreshCause::Expiring),
    )
    .await;
    let took = started.elapsed();

    assert!(result.is_err());
    assert!(
        aws.matched() > 3,
        "retried past the SDK's own attempts: {}",
        aws.matched()
    );
    assert!(
        took > budget - Duration::from_secs(3) && took < budget + Duration::from_secs(1),
        "retried until near the deadline: {took:?} of {budget:?}"
    );
    doubted_and_never_presented_again(&ctx, &tenant, stale).await;
}

#[tokio::test]
async fn dynamodb_not_answering_after_the_provider_answered_is_abandoned_in_time_then_doubted() {
    let ctx = TestContext::with_env(&[("HTTP_TIMEOUT_MS", "1000")]).await;
    let tenant = salesforce(&ctx).await;
    let stale = spend(&ctx, &tenant, Provider::Salesforce).await;
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    // The write of the new tokens is never answered (the SDK sets no operation timeout); the
    // doubt, another write, is.
    let aws = FaultyAws::hanging(
        &moto,
        "UpdateItem",
        "refresh_lease_owner = :owner OR version",
    )
    .await;
    let services = ctx.services_via(&aws.endpoint);

    let budget = shared::refresh::rotating_refresh_budget(&services.config);
    let lifetime = budget + Duration::from_secs(1);
    let until = SystemTime::now() + lifetime;
    // Lambda kills an invocation at its deadline: whatever the refresh has not written by then
    // is never written.
    let killed_at_deadline = tokio::time::timeout(
        lifetime,
        deadline::within(
            Some(until),
            refresh(&services, stale.clone(), RefreshCause::Expiring),
        ),
    )
    .await;

    let result = killed_at_deadline.expect("the refresh ended before the invocation's deadline");
    assert!(result.is_err());
    assert_eq!(aws.matched(), 1, "one write, never answered");
    doubted_and_never_presented_again(&ctx, &tenant, stale).await;
}

/// After a refresh whose new tokens could not be stored: the provider was asked once, the old
/// token is marked doubtful, the lease is given back, and nobody presents the old token again.
async fn doubted_and_never_presented_again(
    ctx: &TestContext,
    tenant: &TenantId,
    stale: Connection,
) {
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
    let c = row(ctx, tenant, Provider::Salesforce).await;
    assert!(
        c.refresh_in_doubt.is_some(),
        "the old token is marked doubtful"
    );
    assert!(
        c.refresh_lease_owner.is_none(),
        "the lease is not left to lapse"
    );

    // Nobody presents the old token afterwards.
    let next = refresh(&ctx.services, stale, RefreshCause::Expiring).await;
    assert!(matches!(next, Err(Error::NeedsReauth { .. })));
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
    assert!(!ctx.salesforce.grant_revoked_on_reuse(ACME));
}

#[tokio::test]
async fn a_reconnect_racing_a_failed_refresh_stays_active() {
    let ctx = TestContext::new().await;
    let tenant = salesforce(&ctx).await;
    let stale = spend(&ctx, &tenant, Provider::Salesforce).await;
    let proxy = FaultProxy::start(&ctx.salesforce.base_url()).await;
    proxy.on(
        token_calls(Provider::Salesforce),
        1,
        ProxyFault::LoseAnswer(503),
    );
    let services = ctx.services_with_provider_endpoint("salesforce", &proxy.endpoint());
    // The refresh's answer is lost: in doubt, and its access token is dead.
    let first = refresh(&services, stale.clone(), RefreshCause::Expiring).await;
    assert!(matches!(first, Err(Error::NeedsReauth { .. })));

    // The tenant reconnects; a late failure about the old tokens must not touch the new row.
    let back = outcome(
        &ctx.connect_salesforce(tenant.as_str(), "business", None, ACME)
            .await,
    );
    assert_eq!(back["status"], "connected", "{back:?}");
    let late = shared::refresh::mark_needs_reauth(&ctx.services, &stale, "invalid_grant").await;
    assert!(
        late.is_retryable(),
        "told to try again with the new row: {late:?}"
    );
    let c = row(&ctx, &tenant, Provider::Salesforce).await;
    assert_eq!(c.status, ConnectionStatus::Active);
    assert!(
        c.refresh_in_doubt.is_none(),
        "the reconnect's tokens are not in doubt"
    );
    // And the new connection refreshes normally.
    let fresh = spend(&ctx, &tenant, Provider::Salesforce).await;
    assert!(
        refresh(&ctx.services, fresh, RefreshCause::Expiring)
            .await
            .unwrap()
            .minted
    );
}

/// A proxy in front of moto's KMS that fails every `Encrypt` (sealing) with KMS's internal
/// error and forwards everything else (opening stored credentials still works).
async fn kms_failing_to_seal(upstream: String) -> String {
    use axum::body::{to_bytes, Body};
    use axum::extract::Request;
    use axum::response::Response;
    let client = reqwest::Client::new();
    let forward = move |request: Request| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
            let target = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if target == "TrentService.Encrypt" {
                return Response::builder()
                    .status(500)
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(Body::from(
                        r#"{"__type":"KMSInternalException","message":"injected failure"}"#,
                    ))
                    .unwrap();
            }
            let mut call = client
                .request(parts.method.clone(), format!("{}{}", upstream, parts.uri))
                .body(bytes.to_vec());
            for (name, value) in parts.headers.iter() {
                if name != "host" && name != "content-length" {
                    call = call.header(name, value);
                }
            }
            let answer = call.send().await.expect("moto answers");
            let mut built = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    built = built.header(name, value);
                }
            }
            built
                .body(Body::from(answer.bytes().await.unwrap_or_default()))
                .unwrap()
        }
    };
    let app = axum::Router::new().fallback(forward);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    endpoint
}

#[tokio::test]
async fn kms_failing_after_the_provider_answered_leaves_a_doubt_and_no_second_presentation() {
    for provider in [Provider::Salesforce, Provider::Bitrix24] {
        let ctx = TestContext::with_env(&[("HTTP_TIMEOUT_MS", "1000")]).await;
        let tenant = match provider {
            Provider::Salesforce => salesforce(&ctx).await,
            _ => bitrix24(&ctx).await,
        };
        let stale = spend(&ctx, &tenant, provider).await;
        let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
        let kms = aws_sdk_kms::config::Builder::from(&ctx.aws)
            .endpoint_url(kms_failing_to_seal(moto.trim_end_matches('/').to_string()).await)
            .build();
        let mut services = ctx.services_via(&moto);
        services.vault =
            shared::vault::Vault::new(aws_sdk_kms::Client::from_conf(kms), ctx.key_id.clone());
        let before = presentations(&ctx, provider);

        let budget = shared::refresh::rotating_refresh_budget(&services.config);
        let until = SystemTime::now() + budget + Duration::from_secs(1);
        let result = deadline::within(
            Some(until),
            refresh(&services, stale.clone(), RefreshCause::Expiring),
        )
        .await;

        assert!(result.is_err(), "{provider}");
        assert_eq!(presentations(&ctx, provider) - before, 1, "{provider}");
        let c = row(&ctx, &tenant, provider).await;
        assert!(
            c.refresh_in_doubt.is_some(),
            "{provider}: the old token is doubtful"
        );
        assert!(
            c.refresh_lease_owner.is_none(),
            "{provider}: the lease was given back"
        );
        // The next push does not present the old token: its access token is dead, so the
        // tenant is asked to reconnect.
        let next = refresh(&ctx.services, stale, RefreshCause::Expiring).await;
        assert!(matches!(next, Err(Error::NeedsReauth { .. })), "{provider}");
        assert_eq!(presentations(&ctx, provider) - before, 1, "{provider}");
    }
}

#[tokio::test]
async fn lead_push_carries_its_invocation_deadline_and_defers_the_refresh_to_sqs() {
    let ctx = TestContext::new().await;
    let tenant = salesforce(&ctx).await;
    spend(&ctx, &tenant, Provider::Salesforce).await;
    let body = relay_tests::queue::lead_message(
        tenant.as_str(),
        "business",
        serde_json::json!({"id": "lead-1", "name": "Noura Al-Thani",
                           "email": "noura@example.com", "stage": "new"}),
        None,
    );
    ctx.queues.send(&body).await;
    let event = ctx.queues.receive(1).await;
    let mut context = lambda_runtime::Context::default();
    // Three seconds left: less than the token call's timeout plus storing.
    context.deadline = (chrono::Utc::now().timestamp_millis() + 3_000) as u64;
    let response = lead_push::handle(
        &ctx.services,
        lambda_runtime::LambdaEvent::new(event.clone(), context),
    )
    .await
    .unwrap();
    let delivery = ctx.queues.settle(&event, &response).await;

    assert_eq!(delivery.failed.len(), 1, "the message goes back to SQS");
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 0, "no refresh started");
    assert!(ctx.queues.dead_letters().await.is_empty());
    let c = row(&ctx, &tenant, Provider::Salesforce).await;
    assert_eq!(c.status, ConnectionStatus::Active);
    assert!(c.refresh_lease_owner.is_none());

    // Redelivered with time enough (no deadline known), the refresh goes ahead.
    ctx.redeliver(1).await;
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
}
