//! `make bench`: prints figures for lead push and token refresh against moto and the provider
//! simulators on loopback. Figures, not assertions: they vary with the machine.
//!
//! Measures: leads per second through `process_message` at lead-push's concurrency, per-lead
//! latency (p50, p95, max), provider calls per new, replayed and (Zoho) converted lead for
//! HubSpot, Zoho, Freshsales, Salesforce, Google Sheets and Bitrix24, the scheduled refresh of many connections, and the process's
//! peak memory.

use std::time::{Duration, Instant};

use anyhow::Result;
use aws_lambda_events::event::sqs::SqsMessage;
use futures::stream::{self, StreamExt};
use relay_tests::context::TestContext;
use relay_tests::queue::lead_message;
use relay_tests::setup;
use serde_json::json;
use shared::credentials::Credentials;
use shared::identity::TenantId;
use shared::push::{process_message, InboundMessage};
use shared::refresh::{deadline, run_shard, RefreshSummary, ShardWork};
use shared::store::Connection;
use shared::Provider;

const LEADS: usize = 200;
/// Due connections in the scheduled refresh bench (`BENCH_REFRESH_CONNECTIONS` to change).
const REFRESH_CONNECTIONS: usize = 10_000;

#[tokio::main]
async fn main() -> Result<()> {
    // The scheduled refresh fans out through this queue, as deployed.
    let shard_queue = ShardQueue::create().await?;
    // HubSpot's rate limit (100 per 10 s in the simulator) would make this a benchmark of
    // waiting: it is lifted here to measure the relay itself.
    let ctx = TestContext::build_with(
        &[
            ("PUSH_CONCURRENCY", "4"),
            ("REFRESH_SHARD_QUEUE_URL", shard_queue.url.as_str()),
        ],
        |sim| {
            sim.rate_limit = (1_000_000, Duration::from_secs(10));
            sim.search_rate_limit = (1_000_000, Duration::from_secs(1));
        },
        |zoho| zoho.api_credits = (1_000_000, Duration::from_secs(60)),
    )
    .await;
    if std::env::var("BENCH_ONLY").as_deref() == Ok("refresh") {
        return bench_refresh(&ctx, &shard_queue).await;
    }
    let tenant = setup::hubspot(&ctx).await?.tenant;

    println!(
        "lead push: {LEADS} new leads, concurrency {}",
        ctx.services.config.push.concurrency
    );
    let messages = leads(&tenant, "qualified");
    let calls_before = ctx.hubspot.crm_call_count();
    let (elapsed, latencies) = push_all(&ctx, &messages).await;
    report("new leads", elapsed, latencies);
    println!(
        "  HubSpot calls per new lead: {:.2}",
        (ctx.hubspot.crm_call_count() - calls_before) as f64 / LEADS as f64
    );

    let calls_before = ctx.hubspot.crm_call_count();
    let (elapsed, latencies) = push_all(&ctx, &messages).await;
    report("identical replays", elapsed, latencies);
    println!(
        "  HubSpot calls per replayed lead: {:.2}",
        (ctx.hubspot.crm_call_count() - calls_before) as f64 / LEADS as f64
    );

    bench_zoho(&ctx).await?;
    bench_freshsales(&ctx).await?;
    bench_salesforce(&ctx).await?;
    bench_google_sheets(&ctx).await?;
    bench_bitrix24(&ctx).await?;

    bench_refresh(&ctx, &shard_queue).await?;
    println!("\npeak resident memory of this process: {}", peak_memory());
    Ok(())
}

/// `LEADS` distinct leads of `tenant` at `stage`.
fn leads(tenant: &str, stage: &str) -> Vec<InboundMessage> {
    leads_on(tenant, "pro", stage)
}

fn leads_on(tenant: &str, plan: &str, stage: &str) -> Vec<InboundMessage> {
    (0..LEADS)
        .map(|i| InboundMessage {
            message_id: format!("m-{i}"),
            body: lead_message(
                tenant,
                plan,
                json!({"id": format!("lead-{i}"), "name": format!("Lead Number{i}"), "email": format!("lead{i}@example.com"),
                       "phone": format!("+6141234{:04}", i), "stage": stage, "score": 50, "source": "whatsapp"}),
                Some("Wants a demo."),
            ),
            receive_count: 1,
            // As the lead queue hands it over: the tenant is the message group (fair queues).
            group_id: Some(tenant.to_string()),
            ..Default::default()
        })
        .collect()
}

/// Pushes `messages` and prints the rate and the provider calls per lead (`calls` counts them).
async fn measure(
    ctx: &TestContext,
    what: &str,
    messages: &[InboundMessage],
    calls: impl Fn() -> usize,
) {
    let before = calls();
    let (elapsed, latencies) = push_all(ctx, messages).await;
    report(what, elapsed, latencies);
    println!(
        "  calls per lead: {:.2}",
        (calls() - before) as f64 / messages.len() as f64
    );
}

async fn bench_zoho(ctx: &TestContext) -> Result<()> {
    let tenant = setup::zoho(ctx, true).await?.tenant;
    let calls = || {
        ctx.zoho
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/crm/"))
            .count()
    };
    println!("\nZoho (AU data centre): {LEADS} leads");
    let new = leads(&tenant, "contacted");
    measure(ctx, "new leads", &new, calls).await;
    measure(ctx, "identical replays", &new, calls).await;
    measure(
        ctx,
        "converted at `qualified`",
        &leads(&tenant, "qualified"),
        calls,
    )
    .await;
    Ok(())
}

async fn bench_freshsales(ctx: &TestContext) -> Result<()> {
    const HOST: &str = "bench.myfreshworks.com";
    let tenant = setup::freshsales(ctx, HOST).await?.tenant;
    let calls = || ctx.freshsales.api_calls(HOST);
    println!("\nFreshsales: {LEADS} leads");
    let new = leads(&tenant, "qualified");
    measure(ctx, "new leads", &new, calls).await;
    measure(ctx, "identical replays", &new, calls).await;
    Ok(())
}

async fn bench_salesforce(ctx: &TestContext) -> Result<()> {
    let tenant = setup::salesforce(ctx).await?.tenant;
    let calls = || {
        ctx.salesforce
            .requests()
            .iter()
            .filter(|r| {
                !r.sub
                    && r.path.starts_with("/services/")
                    && !r.path.starts_with("/services/oauth2/")
            })
            .count()
    };
    println!(
        "\nSalesforce: {LEADS} leads (composite calls count once, as in the org's allocation)"
    );
    let new = leads_on(&tenant, "business", "contacted");
    measure(ctx, "new leads", &new, calls).await;
    measure(ctx, "identical replays", &new, calls).await;
    measure(
        ctx,
        "converted at `qualified` (SOAP convertLead)",
        &leads_on(&tenant, "business", "qualified"),
        calls,
    )
    .await;
    Ok(())
}

async fn bench_google_sheets(ctx: &TestContext) -> Result<()> {
    let tenant = setup::google_sheets(ctx, "Bench").await?.tenant;
    let calls = || ctx.google.api_calls();
    println!("\nGoogle Sheets: {LEADS} leads, one row each");
    let new = leads_on(&tenant, "free", "qualified");
    measure(ctx, "new leads", &new, calls).await;
    measure(ctx, "identical replays", &new, calls).await;
    measure(
        ctx,
        "changed leads (row rewritten)",
        &leads_on(&tenant, "free", "won"),
        calls,
    )
    .await;
    Ok(())
}

async fn bench_bitrix24(ctx: &TestContext) -> Result<()> {
    const PORTAL: &str = "bench.bitrix24.com";
    let tenant = setup::bitrix24(ctx, PORTAL).await?.tenant;
    let calls = || ctx.bitrix.rest_calls(PORTAL);
    println!("\nBitrix24: {LEADS} leads");
    let new = leads(&tenant, "qualified");
    measure(ctx, "new leads", &new, calls).await;
    measure(ctx, "identical replays", &new, calls).await;
    measure(ctx, "won (deal stage moved)", &leads(&tenant, "won"), calls).await;
    Ok(())
}

async fn push_all(ctx: &TestContext, messages: &[InboundMessage]) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(messages)
        .map(|m| async move {
            let t = Instant::now();
            let outcome = process_message(&ctx.services, m).await;
            assert!(outcome.is_settled(), "{outcome:?}");
            t.elapsed()
        })
        .buffer_unordered(ctx.services.config.push.concurrency)
        .collect()
        .await;
    (started.elapsed(), latencies)
}

fn report(what: &str, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "  {what}: {:.2} s, {:.1} leads/s; per lead p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The refresh-shard queue on moto, and what Lambda's event source mapping does with it.
struct ShardQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl ShardQueue {
    async fn create() -> Result<ShardQueue> {
        let aws = relay_tests::aws::local_config().await?;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let url = sqs
            .create_queue()
            .queue_name(format!(
                "bench-refresh-shards-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        Ok(ShardQueue { sqs, url })
    }

    /// Every message waiting, received and deleted.
    async fn drain(&self) -> Result<Vec<SqsMessage>> {
        let mut records = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(records);
            }
            for message in messages {
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(message.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await?;
                let mut record = SqsMessage::default();
                record.message_id = message.message_id;
                record.body = message.body;
                records.push(record);
            }
        }
    }
}

/// A seeded connection: what it was due at and when its access token expires.
struct DueSeed {
    tenant: TenantId,
    provider: Provider,
    due_at: i64,
}

/// The scheduled refresh at scale, as deployed: `REFRESH_CONNECTIONS` due connections across
/// the OAuth providers (seeded: tokens minted in each simulator, rows written through the
/// store, each a copy of one connected through the real flow), the schedule's fan-out to the
/// shard queue, and the shard messages run 16 at a time (the event source's maximum
/// concurrency) with Lambda's 300 s deadline, continuations included.
///
/// Steady state: a run finds what expires between 5 and 15 minutes from now (the previous
/// run, 10 minutes earlier, took everything before). Each row's refresh time is its expiry
/// (the schedule's lookahead is the margin), so any lag past it is a token that expired.
async fn bench_refresh(ctx: &TestContext, queue: &ShardQueue) -> Result<()> {
    let count: usize = std::env::var("BENCH_REFRESH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(REFRESH_CONNECTIONS);
    const PORTAL: &str = "refresh-bench.bitrix24.com";
    let templates = [
        (Provider::Hubspot, setup::hubspot(ctx).await?.tenant),
        (Provider::Zoho, setup::zoho(ctx, false).await?.tenant),
        (Provider::Salesforce, setup::salesforce(ctx).await?.tenant),
        (
            Provider::GoogleSheets,
            setup::google_sheets(ctx, "Refresh bench").await?.tenant,
        ),
        (
            Provider::Bitrix24,
            setup::bitrix24(ctx, PORTAL).await?.tenant,
        ),
    ];
    let mut rows = Vec::new();
    for (provider, tenant) in &templates {
        let tenant = TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("{e}"))?;
        let row = ctx
            .services
            .store
            .get_connection(&tenant, *provider)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{provider} template connection"))?;
        rows.push(serde_json::to_value(&row)?);
    }

    println!(
        "\nscheduled token refresh: {count} due connections across {} providers, {} index shards, shard walkers 16 at once x concurrency {}",
        templates.len(),
        ctx.services.store.refresh_buckets().len() - 1,
        ctx.services.config.refresh.concurrency
    );
    let seeding = Instant::now();
    let start = chrono::Utc::now().timestamp();
    let seeds: Vec<(usize, DueSeed, Connection)> = (0..count)
        .map(|i| {
            let which = i % templates.len();
            let provider = templates[which].0;
            // Expiring between 5 and 15 minutes from now, evenly.
            let due_at = start + 300 + (i as i64 * 600) / count as i64;
            let tenant = TenantId::parse(&TestContext::tenant()).expect("tenant id");
            let mut row = rows[which].clone();
            row["tenant_id"] = json!(tenant.to_string());
            row["token_expires_at"] = json!(due_at);
            row["refresh_due_at"] = json!(due_at);
            row["version"] = json!(1);
            let row: Connection = serde_json::from_value(row).expect("a connection row");
            (
                i,
                DueSeed {
                    tenant,
                    provider,
                    due_at,
                },
                row,
            )
        })
        .collect();
    let seeded: Vec<DueSeed> = stream::iter(seeds)
        .map(|(i, seed, mut row)| async move {
            let (access, refresh) = mint(ctx, seed.provider, i, PORTAL);
            let credentials = Credentials {
                access_token: Some(access.into()),
                refresh_token: Some(refresh.into()),
                api_key: None,
            };
            row.credentials = ctx
                .services
                .vault
                .seal(&seed.tenant, seed.provider, &credentials)
                .await?;
            anyhow::ensure!(ctx.services.store.put_connection(&row, None).await?);
            Ok::<_, anyhow::Error>(seed)
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    println!(
        "  seeded in {:.1} s (not measured)",
        seeding.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let schedule = ctx.run_schedule().await;
    let mut total = RefreshSummary::default();
    let mut invocations = 0;
    let mut continuations = 0;
    loop {
        let messages = queue.drain().await?;
        if messages.is_empty() {
            break;
        }
        if invocations > 0 {
            continuations += messages.len();
        }
        invocations += messages.len();
        let summaries: Vec<RefreshSummary> = stream::iter(messages)
            .map(|record| walk(ctx, record))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        for s in summaries {
            total.refreshed += s.refreshed;
            total.skipped += s.skipped;
            total.failed += s.failed;
            total.malformed += s.malformed;
            total.left += s.left;
        }
    }
    let elapsed = started.elapsed();
    let finished = chrono::Utc::now().timestamp();

    // Each row as it ended: refreshed when, and how late.
    let ended: Vec<(DueSeed, Option<Connection>)> = stream::iter(seeded)
        .map(|seed| async move {
            let row = ctx
                .services
                .store
                .get_connection(&seed.tenant, seed.provider)
                .await
                .ok()
                .flatten();
            (seed, row)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let mut max_lag = 0i64;
    let mut min_headroom = i64::MAX;
    let mut unrefreshed = 0;
    let mut expired = 0;
    let mut per_provider: std::collections::BTreeMap<String, usize> = Default::default();
    for (seed, row) in &ended {
        let refreshed_at = row
            .as_ref()
            .filter(|r| r.version > 1)
            .and_then(|r| r.refreshed_at)
            .map(|t| t.timestamp());
        match refreshed_at {
            Some(at) => {
                *per_provider.entry(seed.provider.to_string()).or_default() += 1;
                max_lag = max_lag.max(at - seed.due_at);
                min_headroom = min_headroom.min(seed.due_at - at);
                if at > seed.due_at {
                    expired += 1;
                }
            }
            None => {
                unrefreshed += 1;
                if seed.due_at < finished {
                    expired += 1;
                }
            }
        }
    }
    println!(
        "  schedule: {} shard messages; {invocations} shard invocations ({continuations} continuations)",
        schedule.handed_off
    );
    println!(
        "  {} refreshed, {} skipped, {} failed, {} left in {:.1} s: {:.1} refreshes/s",
        total.refreshed,
        total.skipped,
        total.failed,
        total.left,
        elapsed.as_secs_f64(),
        total.refreshed as f64 / elapsed.as_secs_f64()
    );
    println!("  refreshed per provider: {per_provider:?}");
    println!(
        "  largest lag past a token's refresh time: {} s (least headroom before expiry: {} s)",
        max_lag.max(0),
        if min_headroom == i64::MAX {
            0
        } else {
            min_headroom
        }
    );
    println!("  tokens that expired unrefreshed: {expired} (not refreshed at all: {unrefreshed})");
    Ok(())
}

/// Tokens the provider's simulator minted for the `i`th seeded connection, as
/// `(access, refresh)`. Zoho keeps 20 refresh tokens per user and Google many per user, so
/// each seeded connection has its own user there.
fn mint(ctx: &TestContext, provider: Provider, i: usize, portal: &str) -> (String, String) {
    match provider {
        Provider::Hubspot => {
            let t = ctx
                .hubspot
                .seed_connection(&["oauth", "crm.objects.contacts.write"]);
            (t.access_token, t.refresh_token)
        }
        Provider::Zoho => {
            let t = ctx
                .zoho
                .seed_connection(setup::ZOHO_DC, &format!("refresh-{i}@example.com"));
            (t.access_token, t.refresh_token)
        }
        Provider::Salesforce => {
            let t = ctx.salesforce.seed_connection(setup::SALESFORCE_ORG);
            (t.access_token, t.refresh_token)
        }
        Provider::GoogleSheets => {
            let t = ctx
                .google
                .seed_connection(&format!("refresh-{i}@example.com"));
            (t.access_token, t.refresh_token)
        }
        Provider::Bitrix24 => ctx.bitrix.seed_tokens(portal),
        other => unreachable!("{other} has no refresh token"),
    }
}

/// One shard message through token-refresh, with Lambda's 300 s deadline.
async fn walk(ctx: &TestContext, record: SqsMessage) -> Result<RefreshSummary> {
    let body = record.body.clone().unwrap_or_default();
    let work: ShardWork = serde_json::from_str(&body)?;
    let deadline = std::time::SystemTime::now() + Duration::from_secs(300);
    let summary = deadline::within(Some(deadline), run_shard(&ctx.services, work)).await?;
    Ok(summary)
}
