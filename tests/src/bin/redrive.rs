//! `make redrive`: sends dead-lettered leads back to the lead queue once their cause is fixed.
//! Safe because a push is idempotent: a lead the CRM already holds changes nothing.
//!
//!   redrive --dlq-url URL --queue-url URL [--method move-task|copy] [--max N] [--rate N]
//!
//! `move-task` (the default, for AWS) starts SQS's own message move task from the DLQ to the
//! lead queue and waits until it ends. `copy` is the fallback for an SQS that lacks the move
//! task (moto 5.2.5 answers it with HTTP 500): receive from the DLQ, send the same body and
//! message attributes to the lead queue, and delete from the DLQ only what the lead queue took.
//! A crash between send and delete leaves a copy in both queues; redriving it again is a replay.
//! Docs: docs/runbook.md (the DLQ section).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_config::BehaviorVersion;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

#[derive(Debug, PartialEq)]
enum Method {
    MoveTask,
    Copy,
}

struct Args {
    dlq_url: String,
    queue_url: String,
    method: Method,
    /// Copy at most this many messages (default: what the DLQ held at the start).
    max: Option<usize>,
    /// Move task only: messages per second (SQS's default when unset: as fast as it can).
    rate: Option<i32>,
}

const USAGE: &str =
    "usage: redrive --dlq-url URL --queue-url URL [--method move-task|copy] [--max N] [--rate N]";

fn parse_args() -> Result<Args> {
    let mut dlq_url = std::env::var("DLQ_URL").ok().filter(|v| !v.is_empty());
    let mut queue_url = std::env::var("LEAD_QUEUE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let mut method = Method::MoveTask;
    let mut max = None;
    let mut rate = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--dlq-url" => dlq_url = Some(value()?),
            "--queue-url" => queue_url = Some(value()?),
            "--method" => {
                method = match value()?.as_str() {
                    "move-task" => Method::MoveTask,
                    "copy" => Method::Copy,
                    other => bail!("unknown method {other:?}\n{USAGE}"),
                }
            }
            "--max" => max = Some(value()?.parse().context("--max: a whole number")?),
            "--rate" => rate = Some(value()?.parse().context("--rate: a whole number")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        dlq_url: dlq_url.with_context(|| format!("the DLQ's URL is missing\n{USAGE}"))?,
        queue_url: queue_url
            .with_context(|| format!("the lead queue's URL is missing\n{USAGE}"))?,
        method,
        max,
        rate,
    })
}

#[tokio::main]
async fn main() {
    // The error chain on one line; a backtrace would only hide it.
    if let Err(e) = run().await {
        eprintln!("redrive: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let sqs = Client::new(&aws_config::load_defaults(BehaviorVersion::latest()).await);
    let waiting = approximate_messages(&sqs, &args.dlq_url).await?;
    println!("the DLQ holds about {waiting} message(s)");
    match args.method {
        Method::MoveTask => move_task(&sqs, &args).await,
        Method::Copy => {
            let moved = copy(&sqs, &args, args.max.unwrap_or(waiting)).await?;
            println!(
                "redriven: {moved} message(s) sent to the lead queue and deleted from the DLQ"
            );
            Ok(())
        }
    }
}

async fn attribute(sqs: &Client, url: &str, name: QueueAttributeName) -> Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {url}"))?;
    out.attributes
        .and_then(|a| a.get(&name).cloned())
        .with_context(|| format!("{url} has no {name}"))
}

async fn approximate_messages(sqs: &Client, url: &str) -> Result<usize> {
    let n = attribute(sqs, url, QueueAttributeName::ApproximateNumberOfMessages).await?;
    n.parse().context("ApproximateNumberOfMessages")
}

/// SQS's native redrive: one task per source queue, run by SQS; we only start it and watch.
async fn move_task(sqs: &Client, args: &Args) -> Result<()> {
    let source = attribute(sqs, &args.dlq_url, QueueAttributeName::QueueArn).await?;
    let destination = attribute(sqs, &args.queue_url, QueueAttributeName::QueueArn).await?;
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .set_max_number_of_messages_per_second(args.rate)
        .send()
        .await
        .context(
            "StartMessageMoveTask was refused (an SQS without the move task, e.g. moto, needs --method copy)",
        )?;
    println!(
        "move task started ({}): {source} -> {destination}",
        started.task_handle.unwrap_or_default()
    );
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(1)
            .send()
            .await
            .context("ListMessageMoveTasks")?;
        let Some(task) = tasks.results.unwrap_or_default().into_iter().next() else {
            bail!("the move task is not listed");
        };
        let status = task.status.unwrap_or_default();
        let moved = task.approximate_number_of_messages_moved;
        let total = task.approximate_number_of_messages_to_move.unwrap_or(-1);
        println!("  {status}: {moved} of ~{total} moved");
        match status.as_str() {
            "RUNNING" | "CANCELLING" => continue,
            "COMPLETED" => return Ok(()),
            _ => bail!(
                "the move task ended {status}: {}",
                task.failure_reason.unwrap_or_default()
            ),
        }
    }
}

/// The fallback: at least once, never losing a message. Stops after `limit` messages so a lead
/// that fails straight back into the DLQ is not redriven in a loop.
async fn copy(sqs: &Client, args: &Args, limit: usize) -> Result<usize> {
    let mut moved = 0;
    while moved < limit {
        let batch = (limit - moved).min(10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&args.dlq_url)
            .max_number_of_messages(batch)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            // Long enough to send and delete; a message we fail on comes back after it.
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .context("ReceiveMessage from the DLQ")?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body.clone().unwrap_or_default())
                    .set_message_attributes(m.message_attributes.clone())
                    // The copy stays in its tenant's group (docs/message-contract.md).
                    .set_message_group_id(group_of(m))
                    .build()
                    .expect("id and body are set")
            })
            .collect::<Vec<_>>();
        let sent = sqs
            .send_message_batch()
            .queue_url(&args.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .context("SendMessageBatch to the lead queue")?;
        for failed in &sent.failed {
            eprintln!(
                "not sent (left in the DLQ): entry {} {} {}",
                failed.id,
                failed.code,
                failed.message.as_deref().unwrap_or("")
            );
        }
        // Only what the lead queue took leaves the DLQ.
        let deletes = sent
            .successful
            .iter()
            .map(|ok| {
                let i: usize = ok.id.parse().expect("our own ids");
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id.clone())
                    .receipt_handle(messages[i].receipt_handle.clone().unwrap_or_default())
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect::<Vec<_>>();
        if deletes.is_empty() {
            bail!("the lead queue took none of {} message(s)", messages.len());
        }
        let deleted = sqs
            .delete_message_batch()
            .queue_url(&args.dlq_url)
            .set_entries(Some(deletes))
            .send()
            .await
            .context("DeleteMessageBatch from the DLQ (the copies already sent are replays)")?;
        for failed in &deleted.failed {
            eprintln!(
                "sent but not deleted from the DLQ (a later redrive replays it): entry {} {}",
                failed.id, failed.code
            );
        }
        moved += deleted.successful.len();
    }
    Ok(moved)
}

/// The message group a copied message keeps: the one it had, else the tenant the relay noted
/// when it dead-lettered it (`tenant_id` attribute), else the tenant its body names.
fn group_of(message: &Message) -> Option<String> {
    if let Some(group) = message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
    {
        return Some(group.clone());
    }
    if let Some(tenant) = message
        .message_attributes
        .as_ref()
        .and_then(|a| a.get("tenant_id"))
        .and_then(|v| v.string_value.clone())
    {
        return Some(tenant);
    }
    relay_tests::queue::group_of(message.body.as_deref().unwrap_or_default())
}
