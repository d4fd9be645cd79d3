//! `make loadbench` (named by `make bench`): lead-push under load, as deployed, against moto and
//! the HubSpot simulator enforcing HubSpot's documented limit (100 requests per 10 s per
//! account), every tenant its own HubSpot account (hub). Figures, not assertions.
//!
//! One noisy tenant puts 2,000 leads on the lead queue at once; while its burst is under way five
//! quiet tenants send 20 leads each, a lead every half second. Every message carries
//! `MessageGroupId` = tenant (the message contract). `--workers` lead-push workers (default 10,
//! the template's `MaximumConcurrency`) play Lambda's concurrency: each has its own `Services`
//! (a warm container of its own), gathers a batch the way the event source mapping does (several
//! `ReceiveMessage` of 10 within the template's batching window, up to its batch size), calls the
//! real `lead_push::handle` with an `SqsEvent`, deletes what it settled and leaves failures to
//! the queue's visibility timeout (`--visibility-timeout`, default 60 s; the template's is far
//! longer, which only stretches the waits). The quiet tenants also run once alone (fresh tenants
//! and hubs), for their p99 without the noisy neighbour.
//!
//! Per tenant it prints leads/s and that as a % of the theoretical maximum (the account's limit ÷
//! the admitted HubSpot calls per lead measured), calls per lead, 429 answers, dwell p50/p99 from
//! the message's `SentTimestamp` to the lead's records existing in the simulator, and leads lost
//! (no contact or no deal) or duplicated (more than one of either), counted per hub by lead id.
//! A counting proxy between the relay and the simulator attributes every call and 429 to a
//! tenant by its access token.
//!
//! `--scale 0.2` shrinks the counts (the noisy burst, and the quiet tenants' leads down to no
//! fewer than 5 each) for a quick run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use relay_tests::context::TestContext;
use relay_tests::queue::{lambda_record, lead_message};
use relay_tests::setup;
use serde_json::json;
use shared::config::Config;
use shared::credentials::Credentials;
use shared::identity::TenantId;
use shared::store::Connection;
use shared::{Provider, Services};

const NOISY_LEADS: usize = 2_000;
const QUIET_TENANTS: usize = 5;
const QUIET_LEADS: usize = 20;
/// The quiet tenants start sending this long after the noisy burst was queued...
const QUIET_START: Duration = Duration::from_secs(2);
/// ...and each sends a lead this often.
const QUIET_EVERY: Duration = Duration::from_millis(500);
/// HubSpot's property carrying the lead id on contacts and deals (exactly-once by lead id).
const LEAD_ID_PROPERTY: &str = "leadrelay_lead_id";
/// Seeded access tokens live this long, so that no refresh replaces a token the proxy knows
/// (HubSpot's live 30 minutes; a long run would otherwise see its calls go unattributed).
const TOKEN_TTL_SECS: u64 = 6 * 3600;

struct Args {
    workers: usize,
    scale: f64,
    visibility_timeout: u32,
    max_minutes: u64,
    /// Skip the quiet-alone baseline run.
    no_baseline: bool,
    /// The event source mapping's batch size instead of the template's: 1 gives the one-lead
    /// push, where the CRM's limit, not the relay, bounds a burst.
    batch_size: Option<usize>,
}

impl Args {
    fn parse() -> Result<Args> {
        let mut args = Args {
            workers: 10,
            scale: 1.0,
            visibility_timeout: 60,
            max_minutes: 40,
            no_baseline: false,
            batch_size: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
            match flag.as_str() {
                "--workers" => args.workers = value()?.parse()?,
                "--scale" => args.scale = value()?.parse()?,
                "--visibility-timeout" => args.visibility_timeout = value()?.parse()?,
                "--max-minutes" => args.max_minutes = value()?.parse()?,
                "--no-baseline" => args.no_baseline = true,
                "--batch-size" => args.batch_size = Some(value()?.parse()?),
                "-h" | "--help" => {
                    println!(
                        "loadbench [--workers 10] [--scale 1.0] [--visibility-timeout 60] \
                         [--max-minutes 40] [--no-baseline] [--batch-size N]"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other}"),
            }
        }
        if args.workers == 0 || args.scale <= 0.0 || args.batch_size == Some(0) {
            bail!("--workers, --scale and --batch-size must be positive");
        }
        Ok(args)
    }

    fn noisy_leads(&self) -> usize {
        ((NOISY_LEADS as f64 * self.scale).round() as usize).max(1)
    }

    fn quiet_leads(&self) -> usize {
        ((QUIET_LEADS as f64 * self.scale).round() as usize).clamp(5, QUIET_LEADS.max(5))
    }
}

/// What the template gives lead-push's event source mapping on the lead queue.
struct EventSource {
    batch_size: usize,
    window: Duration,
    /// The function's timeout: each invocation's deadline.
    timeout: Duration,
    queue_visibility: u64,
}

impl EventSource {
    fn from_template() -> Result<EventSource> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
        let template: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).context("infra/template.yaml")?)?;
        let function = &template["Resources"]["LeadPushFunction"]["Properties"];
        let events = function["Events"]
            .as_mapping()
            .ok_or_else(|| anyhow!("LeadPushFunction has no Events"))?;
        // The live lane: the event whose queue is LeadQueue (a backfill queue may be another).
        let live = events
            .values()
            .find(|e| {
                serde_yaml::to_string(&e["Properties"]["Queue"])
                    .is_ok_and(|q| q.contains("LeadQueue.Arn"))
            })
            .ok_or_else(|| anyhow!("no LeadPushFunction event on LeadQueue"))?;
        let timeout = function["Timeout"]
            .as_u64()
            .or(template["Globals"]["Function"]["Timeout"].as_u64())
            .unwrap_or(3);
        Ok(EventSource {
            batch_size: live["Properties"]["BatchSize"].as_u64().unwrap_or(10) as usize,
            window: Duration::from_secs(
                live["Properties"]["MaximumBatchingWindowInSeconds"]
                    .as_u64()
                    .unwrap_or(0),
            ),
            timeout: Duration::from_secs(timeout),
            queue_visibility: template["Resources"]["LeadQueue"]["Properties"]["VisibilityTimeout"]
                .as_u64()
                .unwrap_or(30),
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse()?;
    let mut source = EventSource::from_template()?;
    if let Some(size) = args.batch_size {
        source.batch_size = size;
    }
    let ctx = TestContext::build(&[], |sim| {
        sim.access_token_ttl_secs = TOKEN_TTL_SECS;
    })
    .await;
    let (limit, window) = ctx.hubspot.config().rate_limit;
    let proxy = CountingProxy::start(&ctx.hubspot.base_url()).await?;
    // One tenant connected through the real flow; every bench tenant is a copy of its row with
    // tokens of a hub of its own.
    let template = setup::hubspot(&ctx).await?;
    let template = ctx
        .services
        .store
        .get_connection(&tenant_id(&template.tenant)?, Provider::Hubspot)
        .await?
        .ok_or_else(|| anyhow!("the template connection"))?;
    ctx.queues
        .sqs
        .set_queue_attributes()
        .queue_url(&ctx.queues.url)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            args.visibility_timeout.to_string(),
        )
        .send()
        .await?;

    println!(
        "load bench: {} workers (Lambda concurrency), batches of up to {} within {} s ({}), \
         invocation deadline {} s; queue visibility timeout {} s (template: {} s); HubSpot limit \
         {limit} per {} s per hub, one hub per tenant",
        args.workers,
        source.batch_size,
        source.window.as_secs(),
        if args.batch_size.is_some() {
            "--batch-size"
        } else {
            "template"
        },
        source.timeout.as_secs(),
        args.visibility_timeout,
        source.queue_visibility,
        window.as_secs()
    );
    println!(
        "commit {}; {}; noisy tenant {} leads, {QUIET_TENANTS} quiet tenants {} leads each{}",
        commit(),
        if std::env::var_os("AWS_ENDPOINT_URL_SQS").is_some() {
            "SQS on a moto of its own"
        } else {
            "SQS and DynamoDB on one moto"
        },
        args.noisy_leads(),
        args.quiet_leads(),
        if args.scale == 1.0 {
            String::new()
        } else {
            format!(" (--scale {})", args.scale)
        }
    );
    let bench = Bench {
        ctx: &ctx,
        proxy: &proxy,
        template,
        source,
        args: &args,
        next_hub: AtomicUsize::new(0),
    };

    let baseline = if args.no_baseline {
        None
    } else {
        let run = bench.run("quiet tenants alone", false).await?;
        run.print(limit, window);
        Some(run.quiet_p99())
    };
    let run = bench.run("noisy tenant and quiet tenants", true).await?;
    run.print(limit, window);
    if let (Some(Some(alone)), Some(together)) = (baseline, run.quiet_p99()) {
        println!(
            "\nquiet tenants' dwell p99: {} alone, {} beside the noisy tenant: {:.2}x",
            secs(alone),
            secs(together),
            together.as_secs_f64() / alone.as_secs_f64().max(1e-3)
        );
    }
    Ok(())
}

fn tenant_id(id: &str) -> Result<TenantId> {
    TenantId::parse(id).map_err(|e| anyhow!("{e}"))
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

struct Bench<'a> {
    ctx: &'a TestContext,
    proxy: &'a CountingProxy,
    template: Connection,
    source: EventSource,
    args: &'a Args,
    next_hub: AtomicUsize,
}

/// A bench tenant: its own tenant id, HubSpot hub and leads.
struct Tenant {
    label: String,
    id: String,
    hub: u64,
    leads: usize,
}

impl Bench<'_> {
    /// Connects a tenant: the template's row with this tenant's id, a hub of its own and tokens
    /// minted in that hub, sealed under the new tenant.
    async fn tenant(&self, label: &str, leads: usize) -> Result<Tenant> {
        let hub = 900_000_000 + self.next_hub.fetch_add(1, Ordering::SeqCst) as u64;
        let scopes = Provider::Hubspot
            .facts()
            .and_then(|f| f.oauth())
            .map(|o| o.scopes.to_vec())
            .unwrap_or_default();
        let tokens = self.ctx.hubspot.seed_connection_in_hub(hub, &scopes);
        let id = TestContext::tenant();
        let tenant_id = tenant_id(&id)?;
        let mut row = self.template.clone();
        row.tenant_id = tenant_id.clone();
        row.account.insert("hub_id".into(), hub.to_string());
        let expires = Utc::now().timestamp() + tokens.expires_in as i64;
        row.token_expires_at = Some(expires);
        row.refresh_due_at = Some(expires);
        row.version = 1;
        row.credentials = self
            .ctx
            .services
            .vault
            .seal(
                &tenant_id,
                Provider::Hubspot,
                &Credentials {
                    access_token: Some(tokens.access_token.clone().into()),
                    refresh_token: Some(tokens.refresh_token.clone().into()),
                    api_key: None,
                },
            )
            .await?;
        anyhow::ensure!(
            self.ctx.services.store.put_connection(&row, None).await?,
            "{label}: the connection row exists already"
        );
        self.proxy.name_token(&tokens.access_token, label);
        Ok(Tenant {
            label: label.to_string(),
            id,
            hub,
            leads,
        })
    }

    /// One run: fresh tenants, the leads sent on schedule, the workers until the queue is
    /// empty (or `--max-minutes`), then the tally.
    async fn run(&self, title: &str, with_noisy: bool) -> Result<Run> {
        let round = if with_noisy { "b" } else { "a" };
        let mut tenants = Vec::new();
        if with_noisy {
            tenants.push(
                self.tenant(&format!("noisy-{round}"), self.args.noisy_leads())
                    .await?,
            );
        }
        for q in 1..=QUIET_TENANTS {
            tenants.push(
                self.tenant(&format!("quiet{q}-{round}"), self.args.quiet_leads())
                    .await?,
            );
        }
        self.proxy.reset();
        let sent_at: Arc<Mutex<HashMap<String, i64>>> = Default::default();
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WorkerStats::default());

        // The noisy burst first, all at once; the quiet tenants' trickle during it.
        let sqs = &self.ctx.queues.sqs;
        let url = &self.ctx.queues.url;
        if with_noisy {
            let noisy = &tenants[0];
            let bodies: Vec<(String, String)> =
                (0..noisy.leads).map(|i| lead(noisy, i)).collect::<Vec<_>>();
            send_all(sqs, url, &noisy.id, &bodies, &sent_at).await?;
        }
        let workers: Vec<_> = (0..self.args.workers)
            .map(|w| {
                let worker = Worker {
                    services: self.worker_services()?,
                    sqs: sqs.clone(),
                    url: url.clone(),
                    arn: self.ctx.queues.arn.clone(),
                    batch_size: self.source.batch_size,
                    window: self.source.window,
                    timeout: self.source.timeout,
                    stop: stop.clone(),
                    stats: stats.clone(),
                    name: format!("w{w}"),
                };
                Ok(tokio::spawn(worker.run()))
            })
            .collect::<Result<_>>()?;
        let quiet: Vec<&Tenant> = tenants
            .iter()
            .filter(|t| t.label.starts_with("quiet"))
            .collect();
        tokio::time::sleep(QUIET_START).await;
        let per_tenant = quiet.iter().map(|t| t.leads).max().unwrap_or(0);
        for i in 0..per_tenant {
            for t in &quiet {
                if i < t.leads {
                    send_all(sqs, url, &t.id, &[lead(t, i)], &sent_at).await?;
                }
            }
            tokio::time::sleep(QUIET_EVERY).await;
        }

        // Until every message is gone from the queue (settled, or moved to the DLQ by moto).
        let limit = Duration::from_secs(self.args.max_minutes * 60);
        let mut timed_out = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let depth = queue_depth(sqs, url).await?;
            if depth == 0 {
                break;
            }
            if started.elapsed().as_secs().is_multiple_of(30) {
                eprintln!(
                    "  {:.0} s: {depth} messages on the queue",
                    started.elapsed().as_secs_f64()
                );
            }
            if started.elapsed() > limit {
                timed_out = true;
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await?;
        }
        let elapsed = started.elapsed();

        let sent_at = sent_at.lock().unwrap().clone();
        let received_sent = stats.sent_timestamps.lock().unwrap().clone();
        let handed_over = stats.handed_over.lock().unwrap().clone();
        let mut rows = Vec::new();
        for t in &tenants {
            rows.push(self.tally(t, &sent_at, &received_sent, &handed_over));
        }
        Ok(Run {
            title: title.to_string(),
            rows,
            calls: self.proxy.tallies(),
            elapsed,
            timed_out,
            invocations: stats.invocations.load(Ordering::SeqCst),
            records: stats.records.load(Ordering::SeqCst),
            gather_ms: stats.gather_ms.load(Ordering::SeqCst),
            handler_ms: stats.handler_ms.load(Ordering::SeqCst),
            failures_reported: stats.failures.load(Ordering::SeqCst),
            dead_letters: queue_count(sqs, &self.ctx.queues.dead_letter_url).await?,
            with_noisy,
        })
    }

    /// Services of one warm container: its own caches, this deployment's HTTP settings (not the
    /// tests' short waits), HubSpot behind the counting proxy.
    fn worker_services(&self) -> Result<Services> {
        let mut vars = self.ctx.vars.clone();
        for test_only in [
            "HTTP_BACKOFF_BASE_MS",
            "HTTP_MAX_WAIT_MS",
            "HTTP_TIMEOUT_MS",
        ] {
            vars.remove(test_only);
        }
        vars.insert("HUBSPOT_ENDPOINT_URL".into(), self.proxy.endpoint.clone());
        vars.insert("LEAD_QUEUE_URL".into(), self.ctx.queues.url.clone());
        let mut config = Config::from_lookup(|k| vars.get(k).cloned())?;
        config.oauth_apps = self.ctx.services.config.oauth_apps.clone();
        Ok(Services::with_oauth_apps(config, &self.ctx.aws))
    }

    /// What became of one tenant's leads, from the records in its hub.
    fn tally(
        &self,
        tenant: &Tenant,
        sent_at: &HashMap<String, i64>,
        received_sent: &HashMap<String, i64>,
        handed_over: &HashMap<String, i64>,
    ) -> Row {
        // Contacts may be keyed by email rather than lead id: each lead's email is its own.
        let mut contacts: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        for c in self.ctx.hubspot.objects_in_hub(tenant.hub, "contacts") {
            let key = c.properties.get(LEAD_ID_PROPERTY).cloned().or_else(|| {
                c.properties
                    .get("email")
                    .and_then(|e| e.split('@').next())
                    .map(str::to_string)
            });
            if let Some(key) = key {
                contacts.entry(key).or_default().push(c.created_at);
            }
        }
        let mut deals: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        for d in self.ctx.hubspot.objects_in_hub(tenant.hub, "deals") {
            if let Some(key) = d.properties.get(LEAD_ID_PROPERTY) {
                deals.entry(key.clone()).or_default().push(d.created_at);
            }
        }
        let mut row = Row {
            label: tenant.label.clone(),
            leads: tenant.leads,
            ..Row::default()
        };
        let mut first_sent = i64::MAX;
        let mut last_pushed = i64::MIN;
        for i in 0..tenant.leads {
            let id = lead_id(tenant, i);
            let c = contacts.get(&id).map_or(&[][..], Vec::as_slice);
            let d = deals.get(&id).map_or(&[][..], Vec::as_slice);
            if c.len() > 1 || d.len() > 1 {
                row.duplicated += 1;
            }
            let (Some(contact), Some(deal)) = (c.iter().min(), d.iter().min()) else {
                row.lost += 1;
                continue;
            };
            row.pushed += 1;
            let pushed = (*contact).max(*deal).timestamp_millis();
            let Some(sent) = received_sent.get(&id).or(sent_at.get(&id)).copied() else {
                continue;
            };
            first_sent = first_sent.min(sent);
            last_pushed = last_pushed.max(pushed);
            row.dwell
                .push(Duration::from_millis((pushed - sent).max(0) as u64));
            if let Some(&handed) = handed_over.get(&id) {
                row.queued
                    .push(Duration::from_millis((handed - sent).max(0) as u64));
                row.handled
                    .push(Duration::from_millis((pushed - handed).max(0) as u64));
            }
        }
        row.dwell.sort();
        row.queued.sort();
        row.handled.sort();
        if last_pushed > first_sent {
            row.span = Duration::from_millis((last_pushed - first_sent) as u64);
        }
        row
    }
}

fn lead_id(tenant: &Tenant, i: usize) -> String {
    format!("{}-{i:05}", tenant.label)
}

/// `(lead id, body)` of a tenant's `i`th lead.
fn lead(tenant: &Tenant, i: usize) -> (String, String) {
    let id = lead_id(tenant, i);
    let body = lead_message(
        &tenant.id,
        "pro",
        json!({"id": id, "name": format!("Lead Number{i}"), "email": format!("{id}@example.com"),
               "phone": format!("+6141{:07}", i), "stage": "qualified", "score": 50,
               "source": "whatsapp"}),
        Some("Wants a demo."),
    );
    (id, body)
}

/// Sends `bodies` with the tenant as `MessageGroupId`, ten to a call; notes when each was sent.
async fn send_all(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    group: &str,
    bodies: &[(String, String)],
    sent_at: &Mutex<HashMap<String, i64>>,
) -> Result<()> {
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(n, (_, body))| {
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(body)
                    .message_group_id(group)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !out.failed.is_empty() {
            bail!("SendMessageBatch refused {:?}", out.failed);
        }
        let now = Utc::now().timestamp_millis();
        let mut sent = sent_at.lock().unwrap();
        for (id, _) in chunk {
            sent.insert(id.clone(), now);
        }
    }
    Ok(())
}

async fn queue_attribute_sum(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    names: &[QueueAttributeName],
) -> Result<usize> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await?;
    let attributes = out.attributes.unwrap_or_default();
    Ok(names
        .iter()
        .filter_map(|n| attributes.get(n))
        .filter_map(|v| v.parse::<usize>().ok())
        .sum())
}

/// Messages still on the queue: waiting, in flight or delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<usize> {
    queue_attribute_sum(
        sqs,
        url,
        &[
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ],
    )
    .await
}

async fn queue_count(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<usize> {
    queue_attribute_sum(sqs, url, &[QueueAttributeName::ApproximateNumberOfMessages]).await
}

#[derive(Default)]
struct WorkerStats {
    invocations: AtomicUsize,
    records: AtomicUsize,
    failures: AtomicUsize,
    /// Milliseconds spent gathering batches (the batching window) and inside the handler.
    gather_ms: AtomicUsize,
    handler_ms: AtomicUsize,
    /// The earliest `SentTimestamp` seen per lead id (a re-sent copy carries a later one).
    sent_timestamps: Mutex<HashMap<String, i64>>,
    /// When a lead was first handed to lead-push (epoch ms), per lead id.
    handed_over: Mutex<HashMap<String, i64>>,
}

/// One Lambda instance of lead-push with its event source mapping's poller.
struct Worker {
    services: Services,
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    batch_size: usize,
    window: Duration,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    stats: Arc<WorkerStats>,
    name: String,
}

impl Worker {
    async fn run(self) {
        let mut n = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            let gathering = Instant::now();
            let records = match self.batch().await {
                Ok(records) => records,
                Err(e) => {
                    eprintln!("{}: receive: {e:#}", self.name);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if records.is_empty() {
                // Short polls with a pause: moto serves one request at a time, so a long poll
                // would hold up every other call.
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            n += 1;
            self.stats
                .gather_ms
                .fetch_add(gathering.elapsed().as_millis() as usize, Ordering::SeqCst);
            let handling = Instant::now();
            let invoked = self.invoke(records, n).await;
            self.stats
                .handler_ms
                .fetch_add(handling.elapsed().as_millis() as usize, Ordering::SeqCst);
            if let Err(e) = invoked {
                eprintln!("{}: {e:#}", self.name);
            }
        }
    }

    /// A batch as the event source mapping gathers one: ReceiveMessage (10 at most each) until
    /// the batch size is reached or the batching window since the first message has passed.
    async fn batch(&self) -> Result<Vec<SqsMessage>> {
        let mut records: Vec<SqsMessage> = Vec::new();
        let mut first: Option<Instant> = None;
        loop {
            if records.len() >= self.batch_size || self.stop.load(Ordering::SeqCst) {
                break;
            }
            if let Some(first) = first {
                if first.elapsed() >= self.window {
                    break;
                }
            }
            let want = (self.batch_size - records.len()).min(10) as i32;
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(want)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                if first.is_none() {
                    return Ok(records);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            first.get_or_insert_with(Instant::now);
            for m in messages {
                records.push(lambda_record(m, &self.arn));
            }
        }
        Ok(records)
    }

    async fn invoke(&self, records: Vec<SqsMessage>, n: u64) -> Result<()> {
        {
            let now = Utc::now().timestamp_millis();
            let mut handed = self.stats.handed_over.lock().unwrap();
            let mut seen = self.stats.sent_timestamps.lock().unwrap();
            for r in &records {
                let id = r
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                    .and_then(|v| v["lead"]["id"].as_str().map(str::to_string));
                let sent = r
                    .attributes
                    .get("SentTimestamp")
                    .and_then(|s| s.parse::<i64>().ok());
                if let Some(id) = &id {
                    handed.entry(id.clone()).or_insert(now);
                }
                if let (Some(id), Some(sent)) = (id, sent) {
                    let at = seen.entry(id).or_insert(sent);
                    *at = (*at).min(sent);
                }
            }
        }
        let mut event = SqsEvent::default();
        event.records = records;
        let mut context = lambda_runtime::Context::default();
        context.request_id = format!("{}-{n}", self.name);
        context.deadline = (Utc::now() + self.timeout).timestamp_millis() as u64;
        self.stats.invocations.fetch_add(1, Ordering::SeqCst);
        self.stats
            .records
            .fetch_add(event.records.len(), Ordering::SeqCst);
        let response = lead_push::handle(
            &self.services,
            lambda_runtime::LambdaEvent::new(event.clone(), context),
        )
        .await
        .map_err(|e| anyhow!("lead-push failed the invocation: {e}"))?;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        self.stats
            .failures
            .fetch_add(failed.len(), Ordering::SeqCst);
        // Settled messages are deleted; failures wait out the visibility timeout.
        let settled: Vec<&SqsMessage> = event
            .records
            .iter()
            .filter(|r| !failed.contains(&r.message_id.as_deref().unwrap_or_default()))
            .collect();
        for chunk in settled.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r.receipt_handle.clone().unwrap_or_default())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Row {
    label: String,
    leads: usize,
    pushed: usize,
    lost: usize,
    duplicated: usize,
    /// Dwell of each pushed lead, sorted.
    dwell: Vec<Duration>,
    /// The dwell's two parts, each sorted: sent until first handed to lead-push (waiting in
    /// the queue and in a batch being gathered), and from then until pushed.
    queued: Vec<Duration>,
    handled: Vec<Duration>,
    /// From the tenant's first lead sent to its last lead pushed.
    span: Duration,
}

impl Row {
    fn quantile(&self, q: f64) -> Option<Duration> {
        quantile(&self.dwell, q)
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[at])
}

struct Run {
    title: String,
    rows: Vec<Row>,
    calls: BTreeMap<String, Tally>,
    elapsed: Duration,
    timed_out: bool,
    invocations: usize,
    records: usize,
    gather_ms: usize,
    handler_ms: usize,
    failures_reported: usize,
    dead_letters: usize,
    with_noisy: bool,
}

impl Run {
    /// The p99 dwell of every quiet tenant's leads together.
    fn quiet_p99(&self) -> Option<Duration> {
        let mut all: Vec<Duration> = self
            .rows
            .iter()
            .filter(|r| r.label.starts_with("quiet"))
            .flat_map(|r| r.dwell.iter().copied())
            .collect();
        all.sort();
        quantile(&all, 0.99)
    }

    fn print(&self, limit: u32, window: Duration) {
        let per_second = limit as f64 / window.as_secs_f64();
        println!(
            "\n{}: {:.1} s{}; {} invocations, {} records ({:.1} per invocation), {} reported \
             as batch item failures; {} in the DLQ",
            self.title,
            self.elapsed.as_secs_f64(),
            if self.timed_out {
                " (stopped at --max-minutes, queue not empty)"
            } else {
                ""
            },
            self.invocations,
            self.records,
            self.records as f64 / self.invocations.max(1) as f64,
            self.failures_reported,
            self.dead_letters
        );
        let invocations = self.invocations.max(1) as f64;
        println!(
            "per invocation: {:.2} s gathering its batch, {:.2} s in the handler",
            self.gather_ms as f64 / invocations / 1000.0,
            self.handler_ms as f64 / invocations / 1000.0
        );
        println!(
            "| tenant | leads | pushed | leads/s | % of max | calls/lead | 429s | dwell p50 | dwell p99 | lost | duplicated |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let mut quiet = Row {
            label: "quiet (all 5)".into(),
            ..Row::default()
        };
        let mut quiet_calls = Tally::default();
        for row in &self.rows {
            let tally = self.calls.get(&row.label).cloned().unwrap_or_default();
            print_row(row, &tally, per_second);
            if row.label.starts_with("quiet") {
                quiet.leads += row.leads;
                quiet.pushed += row.pushed;
                quiet.lost += row.lost;
                quiet.duplicated += row.duplicated;
                quiet.dwell.extend(row.dwell.iter().copied());
                quiet.queued.extend(row.queued.iter().copied());
                quiet.handled.extend(row.handled.iter().copied());
                quiet.span = quiet.span.max(row.span);
                quiet_calls.calls += tally.calls;
                quiet_calls.throttled += tally.throttled;
            }
        }
        quiet.dwell.sort();
        quiet.queued.sort();
        quiet.handled.sort();
        // Each quiet tenant has its own limit: the aggregate rate is not compared with one.
        print_row(&quiet, &quiet_calls, f64::NAN);
        for row in self
            .rows
            .iter()
            .filter(|r| !r.label.starts_with("quiet"))
            .chain([&quiet])
        {
            let p = |v: &[Duration], q| quantile(v, q).map(secs).unwrap_or_else(|| "–".into());
            println!(
                "{} dwell, split: sent → handed to lead-push p50 {} p99 {}; handed → pushed p50 {} p99 {}",
                row.label,
                p(&row.queued, 0.5),
                p(&row.queued, 0.99),
                p(&row.handled, 0.5),
                p(&row.handled, 0.99)
            );
        }
        let total: Tally = self.calls.values().fold(Tally::default(), |a, t| Tally {
            calls: a.calls + t.calls,
            throttled: a.throttled + t.throttled,
        });
        println!(
            "HubSpot calls: {} in all, {} answered 429 ({:.1} %){}",
            total.calls,
            total.throttled,
            100.0 * total.throttled as f64 / total.calls.max(1) as f64,
            self.calls
                .get(UNKNOWN)
                .map(|t| format!("; {} not attributed to a tenant", t.calls))
                .unwrap_or_default()
        );
        if self.with_noisy {
            println!(
                "% of max: leads/s over the tenant's span (first lead sent to last pushed) ÷ \
                 ({limit} calls per {} s ÷ admitted calls per lead)",
                window.as_secs()
            );
        }
    }
}

fn print_row(row: &Row, tally: &Tally, per_second: f64) {
    let rate = row.pushed as f64 / row.span.as_secs_f64().max(1e-3);
    let admitted = (tally.calls - tally.throttled) as f64 / row.pushed.max(1) as f64;
    let max = per_second / admitted;
    let share = if per_second.is_nan() || row.pushed == 0 {
        "–".to_string()
    } else {
        format!("{:.0} %", 100.0 * rate / max)
    };
    println!(
        "| {} | {} | {} | {:.2} | {} | {:.2} | {} | {} | {} | {} | {} |",
        row.label,
        row.leads,
        row.pushed,
        rate,
        share,
        tally.calls as f64 / row.pushed.max(1) as f64,
        tally.throttled,
        row.quantile(0.5).map(secs).unwrap_or_else(|| "–".into()),
        row.quantile(0.99).map(secs).unwrap_or_else(|| "–".into()),
        row.lost,
        row.duplicated
    );
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

// ---------------------------------------------------------------------------
// The counting proxy
// ---------------------------------------------------------------------------

const UNKNOWN: &str = "(unattributed)";

#[derive(Clone, Debug, Default)]
struct Tally {
    /// CRM calls (`/crm/...`), whatever their answer.
    calls: usize,
    /// Of those, answered 429.
    throttled: usize,
}

/// A loopback proxy in front of the HubSpot simulator that counts each tenant's CRM calls and
/// 429 answers by the bearer token they carry (the simulator's log has no answers).
struct CountingProxy {
    endpoint: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, String>>,
    tallies: Mutex<BTreeMap<String, Tally>>,
}

impl CountingProxy {
    async fn start(upstream: &str) -> Result<CountingProxy> {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(64)
                .build()?,
            tokens: Default::default(),
            tallies: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CountingProxy { endpoint, state })
    }

    fn name_token(&self, token: &str, label: &str) {
        self.state
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_string(), label.to_string());
    }

    fn reset(&self) {
        self.state.tallies.lock().unwrap().clear();
    }

    fn tallies(&self) -> BTreeMap<String, Tally> {
        self.state.tallies.lock().unwrap().clone()
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut outbound = state
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", state.upstream),
        )
        .body(bytes);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            outbound = outbound.header(name, value);
        }
    }
    let who = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| state.tokens.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| UNKNOWN.to_string());
    let answer = outbound.send().await;
    let crm = parts.uri.path().starts_with("/crm/");
    let Ok(answer) = answer else {
        return Response::builder()
            .status(502)
            .body(Body::from("proxy: upstream unreachable"))
            .unwrap_or_default();
    };
    let status = answer.status();
    if crm {
        let mut tallies = state.tallies.lock().unwrap();
        let tally = tallies.entry(who).or_default();
        tally.calls += 1;
        if status.as_u16() == 429 {
            tally.throttled += 1;
        }
    }
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(body)).unwrap_or_default()
}
