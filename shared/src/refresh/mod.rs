//! Token refresh, scheduled and lazy, one refresh per connection at a time.
//!
//! The scheduled job ([`run_scheduled`]) finds what is due in the sparse `by-refresh-due` index
//! and refreshes it; the push and setup paths refresh lazily ([`refresh`]) when a token is
//! about to expire or was rejected. Both go through the same lease (see `lease.rs`).

pub mod deadline;
mod lease;

use std::cell::Cell;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use lease::{
    expiring, mark_needs_reauth, refresh, require_active, rotating_refresh_budget,
    rotating_refresh_budget_with, RefreshCause, Refreshed, DOUBT_REASON, LEASE_SECONDS, WAIT_LIMIT,
};

use crate::error::{Error, QueueError, StoreError};
use crate::services::Services;
use crate::store::{ConnectionStatus, DueConnection, DueRow, IndexCursor};

/// What one scheduled run (or one shard's walk) did.
#[derive(Debug, Default, Serialize, PartialEq, Eq, Clone, Copy)]
pub struct RefreshSummary {
    /// New tokens obtained and stored.
    pub refreshed: u32,
    /// Nothing to do after all: someone refreshed first, or the connection is gone or inactive.
    pub skipped: u32,
    /// Refresh failed (transient: retried next run or by the push path; `invalid_grant`: marked
    /// `needs_reauth`).
    pub failed: u32,
    /// Index rows that could not be read (a tenant or provider that does not parse): skipped,
    /// each logged, the rest refreshed.
    pub malformed: u32,
    /// Shards handed to another invocation through the refresh-shard queue: the scheduled
    /// run's fan-out, or the rest of a shard this invocation had no time left for.
    pub handed_off: u32,
    /// Shards with due rows left for the next scheduled run: time ran short and no shard
    /// queue is configured.
    pub left: u32,
}

impl RefreshSummary {
    fn add(&mut self, other: RefreshSummary) {
        self.refreshed += other.refreshed;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.malformed += other.malformed;
        self.handed_off += other.handed_off;
        self.left += other.left;
    }

    fn of(outcome: Outcome) -> RefreshSummary {
        let mut one = RefreshSummary::default();
        match outcome {
            Outcome::Refreshed => one.refreshed = 1,
            Outcome::Skipped => one.skipped = 1,
            Outcome::Failed => one.failed = 1,
        }
        one
    }
}

enum Outcome {
    Refreshed,
    Skipped,
    Failed,
}

/// One shard of the refresh index to walk: the body of a refresh-shard message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardWork {
    /// The index partition: `OAUTH#<n>`, or the legacy `OAUTH`.
    pub bucket: String,
    /// Refresh what is due at or before this, epoch seconds. Fixed by the scheduled run, so a
    /// shard's continuations finish a bounded set rather than chase what becomes due later.
    pub due_before: i64,
    /// Resume after this row (a continuation); from the shard's start when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<IndexCursor>,
}

/// The scheduled run: everything due before `now + lookahead`, in every shard of the index.
///
/// With a refresh-shard queue configured it only fans out, one message per shard, and each
/// shard is walked by its own invocation ([`run_shard`]); one invocation cannot keep up at
/// scale (~20 refreshes/s at concurrency 8; 100,000 HubSpot connections need ~55/s). Without
/// one it walks the shards itself, one after another, until the invocation's deadline (see
/// `deadline.rs`) leaves less than a refresh needs; what is left waits for the next run.
pub async fn run_scheduled(
    services: &Services,
    now: DateTime<Utc>,
) -> Result<RefreshSummary, Error> {
    let settings = &services.config.refresh;
    let horizon = now
        + chrono::Duration::from_std(settings.lookahead).unwrap_or(chrono::Duration::minutes(15));
    let started = Instant::now();
    let shards: Vec<ShardWork> = services
        .store
        .refresh_buckets()
        .into_iter()
        .map(|bucket| ShardWork {
            bucket,
            due_before: horizon.timestamp(),
            after: None,
        })
        .collect();
    let mut summary = RefreshSummary::default();
    if let Some(queue) = &settings.shard_queue_url {
        for work in &shards {
            send_shard(services, queue, work).await?;
            summary.handed_off += 1;
        }
        tracing::info!(shards = summary.handed_off, horizon = %horizon, "scheduled refresh fanned out");
        return Ok(summary);
    }
    tracing::info!(shards = shards.len(), horizon = %horizon, "scheduled refresh starting");
    let mut unreadable = 0;
    let mut shards = shards.into_iter();
    for work in shards.by_ref() {
        let bucket = work.bucket.clone();
        match walk_shard(services, work).await {
            Ok(walked) => {
                summary.add(walked.summary);
                if walked.rest.is_some() {
                    summary.left += 1;
                    break;
                }
            }
            // One shard that cannot be read must not cost the others their refresh.
            Err(error) => {
                unreadable += 1;
                tracing::error!(bucket = %bucket, error = %error, "could not read a refresh index shard");
            }
        }
    }
    summary.left += shards.count() as u32;
    if summary.left > 0 {
        tracing::warn!(
            left = summary.left,
            "scheduled refresh ran out of time; the rest waits for the next run"
        );
    }
    log_done(&summary, started);
    if unreadable > 0 && unreadable == services.store.refresh_buckets().len() {
        return Err(StoreError::Malformed {
            what: "refresh index",
            detail: "no shard could be read".into(),
        }
        .into());
    }
    Ok(summary)
}

/// One refresh-shard message: walks `work`'s shard until the invocation's deadline leaves
/// less than a refresh needs, then hands the rest to a continuation message (resuming after
/// the last row it started). Fails only when the shard cannot be read or the continuation
/// cannot be sent, so that SQS delivers the message again.
pub async fn run_shard(services: &Services, work: ShardWork) -> Result<RefreshSummary, Error> {
    let started = Instant::now();
    let walked = walk_shard(services, work.clone()).await?;
    let mut summary = walked.summary;
    match walked.rest {
        // No row started: a continuation would loop without progress.
        Some(rest) if rest.after == work.after => {
            summary.left += 1;
            tracing::error!(bucket = %rest.bucket, "no time to refresh anything in this shard; the rest waits for the next run");
        }
        Some(rest) => match &services.config.refresh.shard_queue_url {
            Some(queue) => {
                send_shard(services, queue, &rest).await?;
                summary.handed_off += 1;
            }
            None => summary.left += 1,
        },
        None => {}
    }
    log_done(&summary, started);
    Ok(summary)
}

fn log_done(summary: &RefreshSummary, started: Instant) {
    tracing::info!(
        refreshed = summary.refreshed,
        skipped = summary.skipped,
        failed = summary.failed,
        malformed = summary.malformed,
        handed_off = summary.handed_off,
        left = summary.left,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scheduled refresh done"
    );
}

async fn send_shard(services: &Services, queue: &str, work: &ShardWork) -> Result<(), Error> {
    let body = serde_json::to_string(work).expect("a shard serializes");
    services
        .sqs
        .send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await
        .map_err(|e| QueueError::from_sdk("SendMessage", e))?;
    Ok(())
}

/// How far a shard's walk got: `rest` is what is left of it when time ran short.
struct Walked {
    summary: RefreshSummary,
    rest: Option<ShardWork>,
}

/// Pages through one shard, earliest due first, refreshing a bounded number at a time. No
/// refresh starts unless the deadline leaves [`Config::refresh_reserve`] (a whole token call
/// with its retries, and storing): a refresh killed mid-call could lose a rotated token.
///
/// [`Config::refresh_reserve`]: crate::config::Config::refresh_reserve
async fn walk_shard(services: &Services, work: ShardWork) -> Result<Walked, Error> {
    let settings = &services.config.refresh;
    let reserve = services.config.refresh_reserve();
    let horizon = DateTime::from_timestamp(work.due_before, 0).unwrap_or_else(Utc::now);
    let mut summary = RefreshSummary::default();
    let mut after = work.after.clone();
    loop {
        if !deadline::covers(reserve) {
            return Ok(Walked {
                summary,
                rest: Some(ShardWork { after, ..work }),
            });
        }
        let page = services
            .store
            .due_page(
                &work.bucket,
                horizon,
                after.as_ref(),
                settings.page_size as i32,
            )
            .await?;
        let started = Cell::new(0usize);
        let outcomes: Vec<RefreshSummary> = stream::iter(page.rows.iter())
            // Checked as each refresh is about to start, not once per page.
            .take_while(|_| future::ready(deadline::covers(reserve)))
            .map(|row| {
                started.set(started.get() + 1);
                refresh_row(services, &work.bucket, row, horizon)
            })
            .buffer_unordered(settings.concurrency)
            .collect()
            .await;
        outcomes.into_iter().for_each(|o| summary.add(o));
        let started = started.get();
        if started < page.rows.len() {
            let resume = match started {
                0 => after,
                n => Some(page.rows[n - 1].cursor.clone()),
            };
            return Ok(Walked {
                summary,
                rest: Some(ShardWork {
                    after: resume,
                    ..work
                }),
            });
        }
        match page.next {
            Some(next) => after = Some(next),
            None => {
                return Ok(Walked {
                    summary,
                    rest: None,
                })
            }
        }
    }
}

/// One index row: refreshed if it names a connection, else skipped, counted and logged.
async fn refresh_row(
    services: &Services,
    bucket: &str,
    row: &DueRow,
    horizon: DateTime<Utc>,
) -> RefreshSummary {
    match &row.due {
        Ok(due) => {
            let span = tracing::info_span!("scheduled_refresh", tenant = %due.tenant, provider = %due.provider);
            RefreshSummary::of(
                refresh_due(services, due.clone(), horizon)
                    .instrument(span)
                    .await,
            )
        }
        Err(reason) => {
            // Keys only (identifiers, nothing secret), shortened: the row may hold anything.
            let short = |s: &str| s.chars().take(120).collect::<String>();
            tracing::warn!(
                bucket = %bucket,
                pk = %short(&row.cursor.pk),
                sk = %short(&row.cursor.sk),
                reason = %reason,
                "skipped a malformed refresh index row"
            );
            RefreshSummary {
                malformed: 1,
                ..RefreshSummary::default()
            }
        }
    }
}

async fn refresh_due(services: &Services, due: DueConnection, horizon: DateTime<Utc>) -> Outcome {
    let connection = match services
        .store
        .get_connection(&due.tenant, due.provider)
        .await
    {
        Ok(Some(c)) if c.status == ConnectionStatus::Active => c,
        Ok(_) => return Outcome::Skipped,
        Err(error) => {
            tracing::warn!(error = %error, "could not load a due connection");
            return Outcome::Failed;
        }
    };
    match refresh(services, connection, RefreshCause::DueBefore(horizon)).await {
        Ok(Refreshed { minted: true, .. }) => Outcome::Refreshed,
        Ok(Refreshed { minted: false, .. }) => Outcome::Skipped,
        Err(Error::Busy(reason)) => {
            tracing::info!(reason = %reason, "another refresh holds the lease");
            Outcome::Skipped
        }
        Err(error) => {
            tracing::warn!(error = %error, retryable = error.is_retryable(), "scheduled refresh failed");
            Outcome::Failed
        }
    }
}
