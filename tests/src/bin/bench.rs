//! `make bench`: prints figures for lead push and token refresh against moto and the provider
//! simulators on loopback. Figures, not assertions: they vary with the machine.
//!
//! Measures: leads per second through `process_message` at lead-push's concurrency, per-lead
//! latency (p50, p95, max), provider calls per new, replayed and (Zoho) converted lead for
//! HubSpot, Zoho, Freshsales, Salesforce, Google Sheets and Bitrix24, the scheduled refresh of many connections, and the process's
//! peak memory.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::stream::{self, StreamExt};
use relay_tests::context::{outcome, TestContext};
use relay_tests::queue::lead_message;
use relay_tests::setup;
use serde_json::json;
use shared::push::{process_message, InboundMessage};

const LEADS: usize = 200;
const CONNECTIONS: usize = 40;

#[tokio::main]
async fn main() -> Result<()> {
    // HubSpot's rate limit (100 per 10 s in the simulator) would make this a benchmark of
    // waiting: it is lifted here to measure the relay itself.
    let ctx = TestContext::build_with(
        &[("PUSH_CONCURRENCY", "4")],
        |sim| {
            sim.rate_limit = (1_000_000, Duration::from_secs(10));
            sim.search_rate_limit = (1_000_000, Duration::from_secs(1));
        },
        |zoho| zoho.api_credits = (1_000_000, Duration::from_secs(60)),
    )
    .await;
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

    println!(
        "\ntoken refresh: {CONNECTIONS} more HubSpot connections, all due (with the OAuth ones above), concurrency {}",
        ctx.services.config.refresh.concurrency
    );
    for _ in 0..CONNECTIONS {
        let tenant = TestContext::tenant();
        anyhow::ensure!(
            outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"] == "connected"
        );
    }
    // Everything is due: look far ahead instead of waiting.
    let started = Instant::now();
    let horizon = chrono::Utc::now() + chrono::Duration::hours(2);
    let summary = shared::refresh::run_scheduled(&ctx.services, horizon).await?;
    let elapsed = started.elapsed();
    println!(
        "  {} refreshed, {} skipped, {} failed in {:.2} s ({:.1} connections/s)",
        summary.refreshed,
        summary.skipped,
        summary.failed,
        elapsed.as_secs_f64(),
        summary.refreshed as f64 / elapsed.as_secs_f64()
    );
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
