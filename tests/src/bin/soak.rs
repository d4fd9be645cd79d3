//! The fault soak (`make bench` runs it after the bench): thousands of leads through moto's SQS,
//! several lead-push workers, and every provider simulator behind a [`FaultProxy`] that faults a
//! share of its CRM writes at random — the answer lost after the write (500, 502), hung past the
//! client's timeout after the write, a 503 before it, an unreadable 200 after it, a connection
//! reset after it, a 429. Then it counts, per lead, the records each CRM holds and what is in
//! the DLQ, and prints how many leads landed exactly once, were duplicated, dead-lettered or
//! lost. Figures, not assertions; the goal is every lead exactly once.
//!
//! `SOAK_LEADS` (per provider, default 400), `SOAK_WORKERS` (default 4), `SOAK_FAULT_ONE_IN`
//! (default 10) and `SOAK_SEED` tune it.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relay_tests::context::TestContext;
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::setup::{self, Connected};
use serde_json::{json, Value};
use shared::config::Config;
use shared::Services;

/// The destinations, each with the record kinds one lead becomes there.
const PROVIDERS: [(&str, &[&str]); 6] = [
    ("hubspot", &["contact", "deal", "note"]),
    ("zoho", &["lead", "note"]),
    ("freshsales", &["contact", "deal", "note"]),
    ("salesforce", &["lead", "task"]),
    ("bitrix24", &["contact", "deal", "comment"]),
    ("google_sheets", &["row"]),
];

/// How a lead ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    ExactlyOnce,
    Duplicated,
    DeadLettered,
    Lost,
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let per_provider = setting("SOAK_LEADS", 400) as usize;
    let workers = setting("SOAK_WORKERS", 4) as usize;
    let one_in = setting("SOAK_FAULT_ONE_IN", 10).max(2);
    let seed = setting("SOAK_SEED", 13);
    let ctx = TestContext::build_with(
        &[
            ("PUSH_CONCURRENCY", "4"),
            // A hung answer is given up on quickly, as a short Lambda timeout would.
            ("HTTP_TIMEOUT_MS", "1500"),
            ("HTTP_MAX_WAIT_MS", "200"),
        ],
        |sim| {
            sim.rate_limit = (1_000_000, Duration::from_secs(10));
            sim.search_rate_limit = (1_000_000, Duration::from_secs(1));
        },
        |zoho| zoho.api_credits = (1_000_000, Duration::from_secs(60)),
    )
    .await;

    // Two tenants per destination, each in its own account where the provider has several.
    let tenants: Vec<(&str, Connected)> = vec![
        ("hubspot", setup::hubspot(&ctx).await?),
        ("hubspot", setup::hubspot(&ctx).await?),
        ("zoho", setup::zoho(&ctx, false).await?),
        ("zoho", setup::zoho(&ctx, false).await?),
        (
            "freshsales",
            setup::freshsales(&ctx, "soak-one.myfreshworks.com").await?,
        ),
        (
            "freshsales",
            setup::freshsales(&ctx, "soak-two.myfreshworks.com").await?,
        ),
        ("salesforce", setup::salesforce(&ctx).await?),
        ("salesforce", setup::salesforce(&ctx).await?),
        (
            "bitrix24",
            setup::bitrix24(&ctx, "soak-one.bitrix24.com").await?,
        ),
        (
            "bitrix24",
            setup::bitrix24(&ctx, "soak-two.bitrix24.com").await?,
        ),
        (
            "google_sheets",
            setup::google_sheets(&ctx, "Soak one").await?,
        ),
        (
            "google_sheets",
            setup::google_sheets(&ctx, "Soak two").await?,
        ),
    ];

    // Every provider behind a proxy that faults one write in `one_in`, at random places.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vars = ctx.vars.clone();
    let mut proxies = Vec::new();
    let mut queued = 0;
    for (provider, _) in PROVIDERS {
        let upstream = &ctx.vars[&format!("{}_ENDPOINT_URL", provider.to_uppercase())];
        let proxy = FaultProxy::start(upstream).await;
        // Generous: every lead's writes, resent ones included.
        let expected_writes = per_provider * 8;
        let mut at = 0;
        loop {
            at += rng.gen_range(1..=(2 * one_in as usize - 1));
            if at > expected_writes {
                break;
            }
            proxy.on(crm_writes(), at, random_fault(&mut rng));
            queued += 1;
        }
        vars.insert(
            format!("{}_ENDPOINT_URL", provider.to_uppercase()),
            proxy.endpoint(),
        );
        proxies.push(proxy);
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned())?;
    let services = Arc::new(Services::with_aws_config(config, &ctx.aws).await?);

    println!(
        "fault soak: {} leads ({per_provider} per destination, 2 tenants each), {workers} lead-push workers, one CRM write in {one_in} faulted (seed {seed})",
        per_provider * PROVIDERS.len()
    );
    let mut leads: Vec<(String, &str, String)> = Vec::new(); // (token, provider, lead id)
    for (p, (provider, _)) in PROVIDERS.iter().enumerate() {
        let own: Vec<&Connected> = tenants
            .iter()
            .filter(|(name, _)| name == provider)
            .map(|(_, c)| c)
            .collect();
        for i in 0..per_provider {
            let who = own[i % own.len()];
            let token = format!("zq{p}x{i}zq");
            let id = format!("soak-{p}-{i}");
            let body = lead_message(
                &who.tenant,
                who.plan,
                json!({"id": id, "name": format!("Soak {token}"), "email": format!("{token}@soak.example"),
                       "phone": format!("+61412{:06}", p * 100_000 + i), "stage": "contacted", "source": "whatsapp", "score": 60}),
                Some(&format!("Asked for a quote ({token}).")),
            );
            ctx.queues.send(&body).await;
            leads.push((token, provider, id));
        }
    }

    let started = Instant::now();
    let settled = Arc::new(AtomicUsize::new(0));
    let total = leads.len();
    let deadline = started + Duration::from_secs(setting("SOAK_SECONDS", 900));
    let ctx = Arc::new(ctx);
    let runs: Vec<_> = (0..workers)
        .map(|_| {
            let (ctx, services, settled) = (ctx.clone(), services.clone(), settled.clone());
            tokio::spawn(async move {
                while settled.load(Ordering::SeqCst) < total && Instant::now() < deadline {
                    let event = ctx.queues.receive(10).await;
                    if event.records.is_empty() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    let response = lead_push::handle(
                        &services,
                        lambda_runtime::LambdaEvent::new(
                            event.clone(),
                            lambda_runtime::Context::default(),
                        ),
                    )
                    .await
                    .expect("lead-push never fails the invocation");
                    let delivery = ctx.queues.settle(&event, &response).await;
                    settled.fetch_add(
                        delivery.received.len() - delivery.failed.len(),
                        Ordering::SeqCst,
                    );
                }
            })
        })
        .collect();
    for run in runs {
        run.await?;
    }
    let elapsed = started.elapsed();

    let dead: HashSet<String> = ctx
        .queues
        .dead_letters()
        .await
        .into_iter()
        .filter_map(|(body, _)| {
            serde_json::from_str::<Value>(&body).ok()?["lead"]["id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let mut fates: BTreeMap<&str, BTreeMap<Fate, usize>> = BTreeMap::new();
    let census: BTreeMap<&str, Vec<(&str, Vec<String>)>> = PROVIDERS
        .iter()
        .map(|(provider, _)| (*provider, records_of(&ctx, provider, &tenants)))
        .collect();
    for (token, provider, id) in &leads {
        let counts: Vec<usize> = census[provider]
            .iter()
            .map(|(_, texts)| texts.iter().filter(|t| t.contains(token.as_str())).count())
            .collect();
        let fate = if counts.iter().any(|c| *c > 1) {
            Fate::Duplicated
        } else if dead.contains(id) {
            Fate::DeadLettered
        } else if counts.iter().all(|c| *c == 1) {
            Fate::ExactlyOnce
        } else {
            Fate::Lost
        };
        *fates.entry(provider).or_default().entry(fate).or_default() += 1;
    }
    let faults = queued - proxies.iter().map(FaultProxy::pending).sum::<usize>();
    println!(
        "  settled in {:.1} s; {faults} faults fired",
        elapsed.as_secs_f64()
    );
    println!(
        "  {:<14} {:>12} {:>11} {:>14} {:>6}",
        "destination", "exactly once", "duplicated", "dead-lettered", "lost"
    );
    let mut totals: BTreeMap<Fate, usize> = BTreeMap::new();
    for (provider, _) in PROVIDERS {
        let row = fates.remove(provider).unwrap_or_default();
        let get = |f: Fate| row.get(&f).copied().unwrap_or(0);
        println!(
            "  {:<14} {:>12} {:>11} {:>14} {:>6}",
            provider,
            get(Fate::ExactlyOnce),
            get(Fate::Duplicated),
            get(Fate::DeadLettered),
            get(Fate::Lost)
        );
        for (fate, n) in row {
            *totals.entry(fate).or_default() += n;
        }
    }
    let get = |f: Fate| totals.get(&f).copied().unwrap_or(0);
    println!(
        "  {:<14} {:>12} {:>11} {:>14} {:>6}",
        "all",
        get(Fate::ExactlyOnce),
        get(Fate::Duplicated),
        get(Fate::DeadLettered),
        get(Fate::Lost)
    );
    if !dead.is_empty() {
        let reasons: BTreeMap<String, usize> = ctx
            .queues
            .dead_letters()
            .await
            .into_iter()
            .map(|(_, attributes)| {
                attributes
                    .get("failure_reason")
                    .cloned()
                    .unwrap_or_default()
            })
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.chars().take(120).collect()).or_default() += 1;
                m
            });
        println!("  dead-letter reasons:");
        for (reason, n) in reasons {
            println!("    {n} × {reason}");
        }
    }
    Ok(())
}

/// A CRM call that changes something: not a read, not the OAuth token endpoint.
fn crm_writes() -> CallMatch {
    CallMatch::All(vec![
        CallMatch::Method("GET").negate(),
        CallMatch::path("token").negate(),
    ])
}

fn random_fault(rng: &mut StdRng) -> ProxyFault {
    match rng.gen_range(0..7) {
        0 => ProxyFault::LoseAnswer(500),
        1 => ProxyFault::LoseAnswer(502),
        2 => ProxyFault::HangAfterApply,
        3 => ProxyFault::Status(503),
        4 => ProxyFault::GarbageAfterApply,
        5 => ProxyFault::ResetAfterApply,
        _ => ProxyFault::Status(429),
    }
}

fn debug_texts<T: Debug>(records: Vec<T>) -> Vec<String> {
    records
        .into_iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect()
}

/// Every record of each kind the leads become at `provider`, as lower-case text to search.
fn records_of<'a>(
    ctx: &TestContext,
    provider: &str,
    tenants: &[(&str, Connected)],
) -> Vec<(&'a str, Vec<String>)> {
    let accounts: Vec<&str> = tenants
        .iter()
        .filter(|(p, _)| *p == provider)
        .map(|(_, c)| c.account.as_str())
        .collect();
    let across = |f: &dyn Fn(&str) -> Vec<String>| -> Vec<String> {
        accounts.iter().flat_map(|a| f(a)).collect()
    };
    match provider {
        "hubspot" => vec![
            ("contact", debug_texts(ctx.hubspot.contacts())),
            ("deal", debug_texts(ctx.hubspot.deals())),
            ("note", debug_texts(ctx.hubspot.notes())),
        ],
        "zoho" => vec![
            ("lead", debug_texts(ctx.zoho.leads(setup::ZOHO_DC))),
            ("note", debug_texts(ctx.zoho.notes(setup::ZOHO_DC))),
        ],
        "freshsales" => vec![
            (
                "contact",
                across(&|h| debug_texts(ctx.freshsales.contacts(h))),
            ),
            ("deal", across(&|h| debug_texts(ctx.freshsales.deals(h)))),
            ("note", across(&|h| debug_texts(ctx.freshsales.notes(h)))),
        ],
        "salesforce" => vec![
            (
                "lead",
                debug_texts(ctx.salesforce.records(setup::SALESFORCE_ORG, "Lead")),
            ),
            (
                "task",
                debug_texts(ctx.salesforce.records(setup::SALESFORCE_ORG, "Task")),
            ),
        ],
        "bitrix24" => vec![
            ("contact", across(&|p| debug_texts(ctx.bitrix.contacts(p)))),
            ("deal", across(&|p| debug_texts(ctx.bitrix.deals(p)))),
            ("comment", across(&|p| debug_texts(ctx.bitrix.comments(p)))),
        ],
        _ => vec![(
            "row",
            across(&|id| debug_texts(ctx.google.rows(id, setup::SHEET))),
        )],
    }
}
