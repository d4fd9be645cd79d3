//! The crash-matrix driver: a lead push killed right after its nth CRM call, the claim it held
//! left to lapse, and the message delivered again.
//!
//! Kill points come from a [`FaultProxy`] in front of the provider's simulator
//! (`TestContext::services_with_provider_endpoint`): the chosen call reaches the simulator and is
//! applied there, its answer never comes back, and the push is dropped at that moment, as a
//! Lambda invocation that timed out or crashed would be.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use shared::push::{process_message, InboundMessage, MessageOutcome};
use shared::Services;

use crate::context::TestContext;
use crate::fault_proxy::{CallMatch, FaultProxy, ProxyFault};

/// How a push with a kill point ended.
#[derive(Debug, PartialEq, Eq)]
pub enum KillResult {
    /// The nth matching call was applied by the CRM and the push was killed there.
    Killed,
    /// The push completed with fewer matching calls; the kill point was withdrawn.
    Finished(MessageOutcome),
}

/// The message as lead-push receives it. SQS keeps a message's id across deliveries, so the id
/// is derived from the body: a redelivery of the same body carries the same id.
fn inbound(body: &str, receive_count: u32) -> InboundMessage {
    let digest = Sha256::digest(body.as_bytes());
    let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    InboundMessage {
        message_id: format!("crash-{id}"),
        body: body.to_string(),
        receive_count,
        ..Default::default()
    }
}

/// Runs one lead message through lead-push's per-message use case
/// ([`process_message`]) with `proxy` hanging the `nth` CRM call that `matches` after the
/// simulator applied it, and drops the push as soon as that call was applied: a Lambda killed
/// right after that CRM call. Returns [`KillResult::Killed`] if the nth call happened, or
/// [`KillResult::Finished`] if the push completed with fewer calls.
///
/// `services` must send the provider's calls through `proxy`. The push is polled in place rather
/// than spawned (`Services` is borrowed, not `'static`); dropping its future at the kill point is
/// what aborting its task would do, and nothing of the push runs after it.
pub async fn push_killed_after(
    services: &Services,
    proxy: &FaultProxy,
    matches: CallMatch,
    nth: usize,
    body: &str,
) -> KillResult {
    let kill = proxy.on(matches, nth, ProxyFault::HangAfterApply);
    let message = inbound(body, 1);
    let push = process_message(services, &message);
    tokio::pin!(push);
    let result = tokio::select! {
        // Checked first: once the call was applied the push must not take another step.
        biased;
        true = kill.fired() => KillResult::Killed,
        outcome = &mut push => KillResult::Finished(outcome),
    };
    match result {
        KillResult::Killed => {
            // Take the permit this hang added, so a later `applied()` waits for its own hang.
            proxy.applied().await;
        }
        KillResult::Finished(_) => kill.cancel(),
    }
    result
}

/// Every lead mapping item of `tenant` as stored: a DynamoDB `Query` on
/// `pk = "TENANT#<tenant>"` with `sk` beginning with `LEAD#`, every page.
pub async fn lead_mapping_items(
    ctx: &TestContext,
    tenant: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let ddb = aws_sdk_dynamodb::Client::new(&ctx.aws);
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = ddb
            .query()
            .table_name(&ctx.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :lead)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .expression_attribute_values(":lead", AttributeValue::S("LEAD#".into()))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("query the tenant's lead mappings");
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(next) if !next.is_empty() => start = Some(next),
            _ => return items,
        }
    }
}

/// Lets every lead claim of `tenant` lapse at once (stands in for the claim's expiry passing
/// after a killed push): `UpdateItem SET lease_until = :zero` on each of its lead mappings that
/// holds a claim.
pub async fn expire_lead_claims(ctx: &TestContext, tenant: &str) {
    let ddb = aws_sdk_dynamodb::Client::new(&ctx.aws);
    for item in lead_mapping_items(ctx, tenant).await {
        if !item.contains_key("lease_until") {
            continue;
        }
        let key = HashMap::from([
            ("pk".to_string(), item["pk"].clone()),
            ("sk".to_string(), item["sk"].clone()),
        ]);
        ddb.update_item()
            .table_name(&ctx.table)
            .set_key(Some(key))
            .update_expression("SET lease_until = :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await
            .expect("let the claim lapse");
    }
}

/// Delivers `body` once through [`process_message`] (no kill), returning the outcome. The
/// message id is the one [`push_killed_after`] gave the same body; the receive count is 1, so a
/// failure comes back as `Retry` rather than a dead letter.
pub async fn push_once(services: &Services, body: &str) -> MessageOutcome {
    process_message(services, &inbound(body, 1)).await
}

/// How a batch push with a kill point ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchKillResult {
    /// The nth matching call was applied by the CRM and the invocation was killed there.
    Killed,
    /// The batch completed with fewer matching calls: each message's outcome, in order.
    Finished(Vec<MessageOutcome>),
}

/// [`push_killed_after`] for one lead-push invocation of many messages: `bodies` go through
/// [`shared::push::process_batch`] (the batch path, not one message after the other), and the
/// whole invocation is dropped once the `nth` CRM call that `matches` was applied. Message ids
/// come from the bodies, as in [`push_killed_after`], so [`push_batch_once`] redelivers the
/// same messages.
pub async fn batch_killed_after(
    services: &Services,
    proxy: &FaultProxy,
    matches: CallMatch,
    nth: usize,
    bodies: &[String],
) -> BatchKillResult {
    let kill = proxy.on(matches, nth, ProxyFault::HangAfterApply);
    let messages: Vec<InboundMessage> = bodies.iter().map(|b| inbound(b, 1)).collect();
    let push = shared::push::process_batch(services, messages);
    tokio::pin!(push);
    let result = tokio::select! {
        // Checked first: once the call was applied the invocation must not take another step.
        biased;
        true = kill.fired() => BatchKillResult::Killed,
        outcomes = &mut push => BatchKillResult::Finished(
            outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
        ),
    };
    match result {
        BatchKillResult::Killed => proxy.applied().await,
        BatchKillResult::Finished(_) => kill.cancel(),
    }
    result
}

/// Delivers `bodies` as one invocation through [`shared::push::process_batch`] (no kill), each
/// on its `receive_count`-th receive, with the message ids [`batch_killed_after`] gave them.
/// The outcomes, in order.
pub async fn push_batch_once(
    services: &Services,
    bodies: &[String],
    receive_count: u32,
) -> Vec<MessageOutcome> {
    let messages = bodies.iter().map(|b| inbound(b, receive_count)).collect();
    shared::push::process_batch(services, messages)
        .await
        .into_iter()
        .map(|(_, outcome)| outcome)
        .collect()
}
