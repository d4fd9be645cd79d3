//! The shared rate limit (`shared::ratelimit`) against moto and the simulators: several workers,
//! each with services of its own as separate Lambda instances have, calling one CRM account
//! at once. Answers are counted by a proxy in front of the simulator; the limiter's item is
//! read from the table. Every assertion is on counts or on the item, never on a duration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use futures::future::BoxFuture;
use relay_tests::context::TestContext;
use reqwest::Method;
use shared::connections::open_session;
use shared::error::{Error, ProviderError};
use shared::identity::TenantId;
use shared::provider::Session;
use shared::push::Lane;
use shared::{Provider, Services};

/// A loopback proxy in front of a simulator that counts the answers by status.
pub struct StatusCounter {
    pub endpoint: String,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
}

struct Forward {
    upstream: String,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
    client: reqwest::Client,
}

impl StatusCounter {
    pub async fn start(upstream: &str) -> StatusCounter {
        let statuses = Arc::new(Mutex::new(HashMap::new()));
        let state = Arc::new(Forward {
            upstream: upstream.trim_end_matches('/').to_string(),
            statuses: statuses.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        });
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StatusCounter { endpoint, statuses }
    }

    pub fn count(&self, status: u16) -> usize {
        self.statuses
            .lock()
            .expect("statuses")
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.statuses.lock().expect("statuses").values().sum()
    }
}

async fn forward(State(state): State<Arc<Forward>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut upstream = state
        .client
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .body(bytes.to_vec());
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return Response::builder()
            .status(502)
            .body(Body::empty())
            .expect("static");
    };
    let status = answer.status().as_u16();
    *state
        .statuses
        .lock()
        .expect("statuses")
        .entry(status)
        .or_default() += 1;
    let mut builder = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            builder = builder.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    builder.body(Body::from(body)).expect("forwarded")
}

/// What a worker's calls came to.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    answered: usize,
    /// Calls the limiter turned back with a `retry_after` (lead push would defer the lead).
    deferred: usize,
}

/// `calls` pipeline reads (one metered HubSpot call each) on the tenant's connection in
/// `lane`; a deferral waits what it was told, as the queue would, and tries again.
async fn hubspot_calls(services: &Services, tenant: &TenantId, lane: Lane, calls: usize) -> Tally {
    let hubspot = shared::provider::for_provider(Provider::Hubspot).expect("hubspot");
    let mut open = open_session(services, tenant, Provider::Hubspot)
        .await
        .expect("open the connection")
        .with_lane(lane);
    let mut tally = Tally::default();
    while tally.answered < calls {
        match open
            .call(&mut (), |session, _| hubspot.get_pipelines(session))
            .await
        {
            Ok(_) => tally.answered += 1,
            Err(Error::Provider(ProviderError::Throttled {
                retry_after: Some(wait),
                ..
            })) => {
                tally.deferred += 1;
                tokio::time::sleep(wait).await;
            }
            Err(other) => panic!("a {lane} call failed: {other}"),
        }
    }
    tally
}

/// The limiter's item of an account, as numbers.
async fn rate_item(ctx: &TestContext, pk: &str) -> HashMap<String, u64> {
    let item = aws_sdk_dynamodb::Client::new(&ctx.aws)
        .get_item()
        .table_name(&ctx.table)
        .key("pk", AttributeValue::S(pk.to_string()))
        .key("sk", AttributeValue::S("RATE".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .unwrap_or_default();
    item.into_iter()
        .filter_map(|(k, v)| Some((k, v.as_n().ok()?.parse().ok()?)))
        .collect()
}

/// The limiter's key of the tenant's connection: `RATE#<provider>#<account>`.
async fn rate_pk(ctx: &TestContext, tenant: &TenantId, provider: Provider, fact: &str) -> String {
    let connection = ctx
        .services
        .store
        .get_connection(tenant, provider)
        .await
        .expect("read")
        .expect("connected");
    format!("RATE#{}#{}", provider.slug(), connection.account[fact])
}

/// One metered call of the session: Salesforce's Lead describe, or the deal pipelines.
fn one_call<'s>(
    session: &'s Session<'s>,
    _: &'s mut (),
) -> BoxFuture<'s, Result<(), ProviderError>> {
    Box::pin(async move {
        if session.provider == Provider::Salesforce {
            let request = session.request("ratelimit.test", Method::GET, "/sobjects/Lead/describe");
            session.http.send(request).await?.error_for_status()?;
        } else {
            let implementation =
                shared::provider::for_provider(session.provider).expect("implemented");
            implementation.get_pipelines(session).await?;
        }
        Ok(())
    })
}

async fn hubspot_tenant(ctx: &TestContext) -> TenantId {
    let who = relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant");
    TenantId::parse(&who.tenant).expect("tenant id")
}

/// Workers as separate Lambda instances: services of their own, calls through `counter`.
fn workers(ctx: &TestContext, counter: &StatusCounter, n: usize) -> Vec<Arc<Services>> {
    (0..n)
        .map(|_| Arc::new(ctx.services_with_provider_endpoint("hubspot", &counter.endpoint)))
        .collect()
}

#[tokio::test]
async fn concurrent_workers_stay_within_one_hubspot_accounts_limit() {
    // The simulator enforces HubSpot's 100 per rolling 10 s per hub.
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let counter = StatusCounter::start(&ctx.hubspot.base_url()).await;
    let per_worker = 40;
    let started = Instant::now();
    let tasks: Vec<_> = workers(&ctx, &counter, 5)
        .into_iter()
        .map(|services| {
            let tenant = tenant.clone();
            tokio::spawn(
                async move { hubspot_calls(&services, &tenant, Lane::Live, per_worker).await },
            )
        })
        .collect();
    let mut deferred = 0;
    for task in tasks {
        deferred += task.await.expect("worker").deferred;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let answered = counter.count(200);
    let throttled = counter.count(429);
    // What the account's limit allowed in that time: the share of it the workers used.
    let allowed = 100.0 * elapsed / 10.0;
    println!(
        "5 workers, 200 calls: {answered} answered 200, {throttled} answered 429, \
         {deferred} deferred by the limiter, {:.1} calls/s = {:.0} % of 10/s",
        answered as f64 / elapsed,
        100.0 * answered as f64 / allowed
    );
    assert_eq!(answered, 200, "every call answered once");
    assert_eq!(throttled, 0, "no call sent into a 429");
    assert_eq!(counter.total(), 200);
}

#[tokio::test]
async fn the_providers_limit_header_lowers_the_bucket() {
    // This hub allows only 50 per 10 s; the limiter is seeded with HubSpot's 100.
    let ctx = TestContext::build(&[], |sim| sim.rate_limit = (50, Duration::from_secs(10))).await;
    let tenant = hubspot_tenant(&ctx).await;
    let counter = StatusCounter::start(&ctx.hubspot.base_url()).await;
    let pk = rate_pk(&ctx, &tenant, Provider::Hubspot, "hub_id").await;
    hubspot_calls(&ctx.services, &tenant, Lane::Live, 1).await;
    let corrected = rate_item(&ctx, &pk).await;
    assert_eq!(
        corrected.get("a_cap"),
        Some(&4),
        "X-HubSpot-RateLimit-Max: 50 per 10 s is 4 a second"
    );
    assert_eq!(corrected.get("a_bf"), Some(&3));
    let tasks: Vec<_> = workers(&ctx, &counter, 4)
        .into_iter()
        .map(|services| {
            let tenant = tenant.clone();
            tokio::spawn(async move { hubspot_calls(&services, &tenant, Lane::Live, 15).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("worker");
    }
    assert_eq!(counter.count(200), 60);
    assert_eq!(
        counter.count(429),
        0,
        "the corrected cap keeps 4 workers under 50 per 10 s"
    );
}

#[tokio::test]
async fn fewer_requests_remaining_than_the_slot_allows_fill_the_slot() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let pk = rate_pk(&ctx, &tenant, Provider::Hubspot, "hub_id").await;
    let mut open = open_session(&ctx.services, &tenant, Provider::Hubspot)
        .await
        .expect("open");
    open.call(&mut (), one_call).await.expect("a first call");
    assert_eq!(rate_item(&ctx, &pk).await.get("a_cap"), Some(&9));
    // Another integration of the same hub spends 95 of its 100 behind the relay's back (a
    // session without a rate tag is not limited).
    let mut outside = open.session().expect("session");
    outside.rate = None;
    for _ in 0..95 {
        one_call(&outside, &mut ()).await.expect("an outside call");
    }
    drop(outside);
    // The next answers say 3, 2, 1 remain: fewer than the 8 the slot still allows, so the
    // slot is filled up to what HubSpot says is left.
    let mut lowest_room = u64::MAX;
    for _ in 0..3 {
        open.call(&mut (), one_call).await.expect("a limited call");
        let item = rate_item(&ctx, &pk).await;
        lowest_room = lowest_room.min(item["a_cap"].saturating_sub(item["a_taken"]));
    }
    assert!(
        lowest_room <= 3,
        "the slot kept {lowest_room} free after HubSpot said at most 3 remain"
    );
}

#[tokio::test]
async fn backfill_takes_only_what_live_leaves() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let counter = StatusCounter::start(&ctx.hubspot.base_url()).await;
    let mut pool = workers(&ctx, &counter, 2);
    let (live, backfill) = (pool.remove(0), pool.remove(0));
    let live_done = Arc::new(AtomicBool::new(false));
    let backfill_during_live = Arc::new(AtomicUsize::new(0));
    let backfill_after_live = Arc::new(AtomicUsize::new(0));
    // Live leads keep the account busy for a few seconds...
    let live_task = {
        let (tenant, done) = (tenant.clone(), live_done.clone());
        tokio::spawn(async move {
            let tally = hubspot_calls(&live, &tenant, Lane::Live, 36).await;
            done.store(true, Ordering::SeqCst);
            tally
        })
    };
    // ...while a backfill tries all along; each of its calls is counted by whether live was
    // still running when it was answered.
    let backfill_task = {
        let (tenant, done) = (tenant.clone(), live_done.clone());
        let (during, after) = (backfill_during_live.clone(), backfill_after_live.clone());
        tokio::spawn(async move {
            while after.load(Ordering::SeqCst) < 5 {
                hubspot_calls(&backfill, &tenant, Lane::Backfill, 1).await;
                if done.load(Ordering::SeqCst) {
                    after.fetch_add(1, Ordering::SeqCst);
                } else {
                    during.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let live_tally = live_task.await.expect("live");
    backfill_task.await.expect("backfill");
    assert_eq!(
        live_tally.deferred, 0,
        "live is never deferred behind a backfill"
    );
    assert_eq!(
        backfill_during_live.load(Ordering::SeqCst),
        0,
        "no backfill call while live leads are being pushed"
    );
    assert_eq!(backfill_after_live.load(Ordering::SeqCst), 5);
    assert_eq!(counter.count(429), 0);
}

#[tokio::test]
async fn a_spent_daily_allocation_defers_until_the_reset() {
    let ctx = TestContext::new().await;
    let who = relay_tests::setup::salesforce(&ctx)
        .await
        .expect("a connected Salesforce tenant");
    let tenant = TenantId::parse(&who.tenant).expect("tenant");
    // The org has one call left today (15,000 a day in the simulator); the answer to it says
    // `api-usage=15000/15000`.
    ctx.salesforce
        .set_api_usage(relay_tests::setup::SALESFORCE_ORG, 14_999);
    let mut open = open_session(&ctx.services, &tenant, Provider::Salesforce)
        .await
        .expect("open");
    open.call(&mut (), one_call)
        .await
        .expect("the last call of the day");
    let refused = open.call(&mut (), one_call).await;
    let now = chrono::Utc::now();
    let midnight = (now + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let until_reset = (midnight - now).to_std().expect("positive");
    match refused {
        Err(Error::Provider(ProviderError::Throttled {
            retry_after: Some(wait),
            ..
        })) => {
            assert!(
                wait <= until_reset + Duration::from_secs(1)
                    && wait + Duration::from_secs(30) >= until_reset,
                "deferred {wait:?}, the day resets in {until_reset:?}"
            );
        }
        other => panic!("expected a deferral until the reset, got {other:?}"),
    }
    assert_eq!(
        ctx.salesforce.api_usage(relay_tests::setup::SALESFORCE_ORG),
        15_000,
        "nothing was sent into REQUEST_LIMIT_EXCEEDED"
    );
}
