//! The scheduled refresh at scale: the sharded index, paging, bad rows, the fan-out through the
//! refresh-shard queue and the invocation's deadline. Through the real token-refresh handler
//! against moto and the HubSpot simulator; connections are seeded directly (tokens minted in
//! the simulator, rows written through the store) because 200 browser flows add nothing here.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use relay_tests::context::TestContext;
use relay_tests::sim::{Fault, Route};
use shared::credentials::Credentials;
use shared::identity::TenantId;
use shared::refresh::{RefreshSummary, ShardWork};
use shared::store::Connection;
use shared::Provider;

/// A HubSpot connection whose tokens the simulator minted, due for refresh now.
struct Seeded {
    tenant: TenantId,
    refresh_token: String,
}

async fn seed_due(ctx: &TestContext, count: usize) -> Vec<Seeded> {
    let now = chrono::Utc::now();
    let mut seeded = Vec::with_capacity(count);
    for _ in 0..count {
        let tenant = TenantId::parse(&TestContext::tenant()).unwrap();
        let tokens = ctx
            .hubspot
            .seed_connection(&["oauth", "crm.objects.contacts.write"]);
        let sealed = ctx
            .services
            .vault
            .seal(
                &tenant,
                Provider::Hubspot,
                &Credentials {
                    access_token: Some(tokens.access_token.clone().into()),
                    refresh_token: Some(tokens.refresh_token.clone().into()),
                    api_key: None,
                },
            )
            .await
            .unwrap();
        // From JSON, so that fields other parts add to the row keep their defaults.
        let row: Connection = serde_json::from_value(serde_json::json!({
            "tenant_id": tenant.to_string(),
            "provider": "hubspot",
            "status": "active",
            "credentials": sealed.as_base64(),
            "account": BTreeMap::from([("hub_id", tokens.hub_id.to_string())]),
            "token_expires_at": now.timestamp() + 60,
            "refresh_due_at": now.timestamp() + 60,
            "refresh_bucket": "set by the store",
            "refreshed_at": now,
            "version": 1,
            "connected_at": now,
        }))
        .unwrap();
        assert!(ctx.services.store.put_connection(&row, None).await.unwrap());
        seeded.push(Seeded {
            tenant,
            refresh_token: tokens.refresh_token,
        });
    }
    seeded
}

fn ddb(ctx: &TestContext) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&ctx.aws)
}

async fn bucket_of(ctx: &TestContext, tenant: &TenantId) -> Option<String> {
    ctx.services
        .store
        .get_connection(tenant, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap()
        .refresh_bucket
}

/// An index row no run can read: `pk`/`sk` as given, due now, in `bucket`.
async fn put_malformed(ctx: &TestContext, bucket: &str, pk: &str, sk: &str) {
    ddb(ctx)
        .put_item()
        .table_name(&ctx.table)
        .item("pk", AttributeValue::S(pk.into()))
        .item("sk", AttributeValue::S(sk.into()))
        .item("refresh_bucket", AttributeValue::S(bucket.into()))
        .item(
            "refresh_due_at",
            AttributeValue::N(chrono::Utc::now().timestamp().to_string()),
        )
        .send()
        .await
        .unwrap();
}

/// Moves a row back to the unsharded bucket every row had before the index was sharded.
async fn make_legacy(ctx: &TestContext, tenant: &TenantId) {
    ddb(ctx)
        .update_item()
        .table_name(&ctx.table)
        .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", AttributeValue::S("CONN#hubspot".into()))
        .update_expression("SET refresh_bucket = :legacy")
        .expression_attribute_values(":legacy", AttributeValue::S("OAUTH".into()))
        .send()
        .await
        .unwrap();
}

/// How many times the simulator saw each refresh token presented.
fn presentations(ctx: &TestContext) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for request in ctx.hubspot.requests() {
        let form = request.form();
        if request.path == "/oauth/2026-03/token"
            && form.get("grant_type").map(String::as_str) == Some("refresh_token")
        {
            *seen
                .entry(form.get("refresh_token").cloned().unwrap_or_default())
                .or_default() += 1;
        }
    }
    seen
}

fn assert_each_presented_once(ctx: &TestContext, seeded: &[Seeded]) {
    let seen = presentations(ctx);
    for s in seeded {
        assert_eq!(
            seen.get(&s.refresh_token).copied(),
            Some(1),
            "each due connection is refreshed exactly once"
        );
    }
    assert_eq!(
        seen.values().sum::<usize>(),
        seeded.len(),
        "and nothing else"
    );
}

fn total(summaries: &[RefreshSummary]) -> RefreshSummary {
    summaries
        .iter()
        .fold(RefreshSummary::default(), |a, s| RefreshSummary {
            refreshed: a.refreshed + s.refreshed,
            skipped: a.skipped + s.skipped,
            failed: a.failed + s.failed,
            malformed: a.malformed + s.malformed,
            handed_off: a.handed_off + s.handed_off,
            left: a.left + s.left,
        })
}

#[tokio::test]
async fn two_scheduled_runs_at_once_refresh_each_of_200_due_connections_exactly_once_past_malformed_rows(
) {
    // Small pages, so each run pages through every shard.
    let ctx = TestContext::with_env(&[("REFRESH_PAGE_SIZE", "5")]).await;
    let seeded = seed_due(&ctx, 200).await;
    // The index is sharded by tenant and provider...
    let mut shards = std::collections::BTreeSet::new();
    for s in &seeded {
        let bucket = bucket_of(&ctx, &s.tenant).await.unwrap();
        assert_eq!(
            bucket,
            ctx.services
                .store
                .refresh_bucket_for(&s.tenant, Provider::Hubspot)
        );
        shards.insert(bucket);
    }
    assert_eq!(shards.len(), 16, "200 connections spread over every shard");
    // ...and a row from before sharding is still found.
    make_legacy(&ctx, &seeded[0].tenant).await;
    // Rows no run can read, in a shard and in the legacy bucket: an unknown provider, a
    // tenant id that does not parse.
    put_malformed(&ctx, "OAUTH#3", "TENANT#tenant-ok", "CONN#myspace").await;
    put_malformed(&ctx, "OAUTH", "TENANT#not a tenant!", "CONN#hubspot").await;

    let (a, b) = tokio::join!(ctx.run_schedule(), ctx.run_schedule());
    let both = total(&[a, b]);
    assert_eq!(both.refreshed, 200, "{a:?} {b:?}");
    assert_eq!(both.failed, 0, "{a:?} {b:?}");
    assert_eq!(
        (a.malformed, b.malformed),
        (2, 2),
        "each run skips and counts both bad rows"
    );
    assert_each_presented_once(&ctx, &seeded);
    // Refreshed rows are written to their shard, the legacy one included.
    assert_eq!(
        bucket_of(&ctx, &seeded[0].tenant).await.unwrap(),
        ctx.services
            .store
            .refresh_bucket_for(&seeded[0].tenant, Provider::Hubspot)
    );

    let again = ctx.run_schedule().await;
    assert_eq!(
        (
            again.refreshed,
            again.skipped,
            again.failed,
            again.malformed
        ),
        (0, 0, 0, 2)
    );
}

/// The refresh-shard queue on moto, and the part of Lambda's event source mapping the tests
/// need.
struct ShardQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl ShardQueue {
    async fn create() -> ShardQueue {
        let aws = relay_tests::aws::local_config().await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let url = sqs
            .create_queue()
            .queue_name(format!("refresh-shards-{}", uuid::Uuid::new_v4().simple()))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        ShardQueue { sqs, url }
    }

    /// Every message waiting, received and deleted.
    async fn drain(&self) -> Vec<SqsMessage> {
        let mut records = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                return records;
            }
            for message in messages {
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(message.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
                let mut record = SqsMessage::default();
                record.message_id = message.message_id;
                record.body = message.body;
                records.push(record);
            }
        }
    }
}

/// Runs token-refresh on shard messages as the event source mapping does, one per invocation,
/// with `deadline` as the invocation's deadline (none: unbounded).
async fn deliver(
    ctx: &TestContext,
    records: Vec<SqsMessage>,
    deadline: Option<SystemTime>,
) -> Vec<String> {
    let mut failed = Vec::new();
    for record in records {
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let mut context = lambda_runtime::Context::default();
        if let Some(at) = deadline {
            context.deadline = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        }
        let response = token_refresh::handle_shards(
            &ctx.services,
            lambda_runtime::LambdaEvent::new(event, context),
        )
        .await
        .unwrap();
        failed.extend(
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier),
        );
    }
    failed
}

fn shard_of(record: &SqsMessage) -> ShardWork {
    serde_json::from_str(record.body.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn the_schedule_fans_out_one_message_per_shard_and_duplicate_deliveries_refresh_once() {
    let queue = ShardQueue::create().await;
    let ctx = TestContext::with_env(&[
        ("REFRESH_SHARD_QUEUE_URL", queue.url.as_str()),
        ("REFRESH_PAGE_SIZE", "3"),
    ])
    .await;
    let seeded = seed_due(&ctx, 40).await;
    put_malformed(&ctx, "OAUTH#5", "TENANT#tenant-ok", "CONN#myspace").await;

    let summary = ctx.run_schedule().await;
    assert_eq!(
        (summary.refreshed, summary.handed_off),
        (0, 17),
        "the schedule only fans out: 16 shards and the legacy bucket"
    );
    assert!(presentations(&ctx).is_empty());
    let messages = queue.drain().await;
    let mut buckets: Vec<String> = messages.iter().map(|m| shard_of(m).bucket).collect();
    buckets.sort();
    assert_eq!(buckets.len(), 17);
    assert!(buckets.contains(&"OAUTH".to_string()) && buckets.contains(&"OAUTH#15".to_string()));

    // SQS delivers at least once: every message twice, at the same time.
    let (a, b) = tokio::join!(
        deliver(&ctx, messages.clone(), None),
        deliver(&ctx, messages, None)
    );
    assert!(a.is_empty() && b.is_empty(), "no shard walk failed");
    assert_each_presented_once(&ctx, &seeded);
    assert!(queue.drain().await.is_empty(), "nothing left over");
}

#[tokio::test]
async fn a_shard_walk_starts_no_refresh_the_deadline_cannot_cover_and_hands_the_rest_on() {
    let queue = ShardQueue::create().await;
    // A refresh is taken to need 4 s; the token endpoint answers after 3 s.
    let ctx = TestContext::with_env(&[
        ("REFRESH_SHARD_QUEUE_URL", queue.url.as_str()),
        ("REFRESH_RESERVE_SECONDS", "4"),
        ("REFRESH_CONCURRENCY", "2"),
        ("REFRESH_PAGE_SIZE", "2"),
    ])
    .await;
    let seeded = seed_due(&ctx, 60).await;
    // The fullest shard: 60 tenants over 16 shards put at least 4 in it (pigeonhole), so the
    // test does not depend on where random tenant ids happen to hash.
    let bucket_of = |s: &Seeded| {
        ctx.services
            .store
            .refresh_bucket_for(&s.tenant, Provider::Hubspot)
    };
    let bucket = seeded
        .iter()
        .map(bucket_of)
        .max_by_key(|b| seeded.iter().filter(|s| bucket_of(s) == *b).count())
        .expect("tenants were seeded");
    let in_shard: Vec<&Seeded> = seeded.iter().filter(|s| bucket_of(s) == bucket).collect();
    assert!(
        in_shard.len() >= 3,
        "the shard has more than one round of work"
    );
    let work = |after| ShardWork {
        bucket: bucket.clone(),
        due_before: chrono::Utc::now().timestamp() + 900,
        after,
    };
    let message = |work: &ShardWork| {
        let mut record = SqsMessage::default();
        record.message_id = Some("m-1".into());
        record.body = Some(serde_json::to_string(work).unwrap());
        record
    };

    // Less left than a refresh needs: nothing starts, and no continuation either (it would
    // make no progress); the next scheduled run has it.
    let soon = SystemTime::now() + Duration::from_secs(3);
    assert!(deliver(&ctx, vec![message(&work(None))], Some(soon))
        .await
        .is_empty());
    assert!(presentations(&ctx).is_empty());
    assert!(queue.drain().await.is_empty());

    // Time for one round of two: they start, take 3 s, and then 3 s are left, less than the
    // 4 s a refresh needs; the rest of the shard goes on in a continuation message.
    for _ in 0..2 {
        ctx.hubspot
            .inject(Route::Token, Fault::Delay(Duration::from_secs(3)));
    }
    let deadline = SystemTime::now() + Duration::from_secs(6);
    assert!(deliver(&ctx, vec![message(&work(None))], Some(deadline))
        .await
        .is_empty());
    assert!(SystemTime::now() < deadline, "finished before the deadline");
    // How many fit before the cut depends on how fast this machine starts them; what must hold
    // is that some started, not all, and the rest is handed on.
    let started = presentations(&ctx).values().sum::<usize>();
    assert!(
        started >= 1 && started < in_shard.len(),
        "{started} of {} started",
        in_shard.len()
    );
    let continuation = queue.drain().await;
    assert_eq!(continuation.len(), 1);
    let rest = shard_of(&continuation[0]);
    assert_eq!(rest.bucket, bucket);
    assert!(rest.after.is_some(), "resumes after the last row started");

    // The continuation, with time enough, finishes the shard: every row refreshed once.
    assert!(deliver(&ctx, continuation, None).await.is_empty());
    let seen = presentations(&ctx);
    for s in &in_shard {
        assert_eq!(seen.get(&s.refresh_token).copied(), Some(1));
    }
    assert_eq!(seen.values().sum::<usize>(), in_shard.len());
    assert!(queue.drain().await.is_empty());
}

#[tokio::test]
async fn the_samples_reach_the_right_handler_through_main_s_dispatch() {
    let ctx = TestContext::new().await;
    let run = |name: &'static str| {
        let services = &ctx.services;
        async move {
            token_refresh::handle_any(
                services,
                lambda_runtime::LambdaEvent::new(
                    relay_tests::events::load(name),
                    lambda_runtime::Context::default(),
                ),
            )
            .await
            .unwrap()
        }
    };
    // The schedule answers with its summary; nothing is due in an empty table.
    let summary = run("token-refresh/schedule.json").await;
    assert_eq!(summary["refreshed"], 0);
    assert_eq!(summary["malformed"], 0);
    // Shard messages (a first walk, a continuation) answer with the batch's failures: none.
    for sample in [
        "token-refresh/shard.json",
        "token-refresh/shard-continuation.json",
    ] {
        let response = run(sample).await;
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{sample}"
        );
    }
}
