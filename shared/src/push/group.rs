//! One invocation's messages, pushed in batches: grouped by tenant (and lane), each tenant's
//! connections and plan read once, each destination's leads pushed together (see
//! [`super::destination::push_many`]), then each message settled on its own as
//! [`super::process_message`] always did. A bad message, or a lead refused inside a batch,
//! fails alone; its neighbours settle.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use tracing::Instrument;

use super::destination::{copy_err, push_many};
use super::{
    conclude, failure_of, message_span, not_a_lead, retry_or_give_up, InboundMessage,
    MessageOutcome, Pushed,
};
use crate::error::Error;
use crate::lead::{parse_message, LeadMessage};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{Connection, ConnectionStatus};

/// Pushes an invocation's messages. Returns each message's id and outcome, in the order given.
/// Never panics on bad input; every message ends in a [`MessageOutcome`].
pub async fn process_batch(
    services: &Services,
    messages: Vec<InboundMessage>,
) -> Vec<(String, MessageOutcome)> {
    // Boxed: the batch's state machine is deep; callers nest it in their own.
    Box::pin(run(services, messages)).await
}

async fn run(services: &Services, messages: Vec<InboundMessage>) -> Vec<(String, MessageOutcome)> {
    let mut outcomes: Vec<Option<MessageOutcome>> = messages.iter().map(|_| None).collect();
    let mut parsed: Vec<Option<LeadMessage>> = messages.iter().map(|_| None).collect();
    let mut groups: BTreeMap<(String, &'static str), Vec<usize>> = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        match parse_message(&message.body) {
            Ok(lead) => {
                let _entered = message_span(message, Some(&lead)).entered();
                for warning in &lead.lead.warnings {
                    tracing::warn!(warning = %warning, "lead normalised with a warning");
                }
                groups
                    .entry((lead.tenant_id.as_str().to_string(), message.lane.as_str()))
                    .or_default()
                    .push(i);
                parsed[i] = Some(lead);
            }
            Err(error) => {
                outcomes[i] = Some(not_a_lead(services, message, &error).await);
            }
        }
    }
    // Smallest groups first: with more groups than `PUSH_CONCURRENCY`, a quiet tenant's few
    // leads take a free slot at once instead of waiting for a burst's hundred to finish.
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(Vec::len);
    let work = groups.into_iter().map(|indexes| {
        let messages = &messages;
        let parsed = &parsed;
        async move {
            let group: Vec<(&InboundMessage, &LeadMessage)> = indexes
                .iter()
                .map(|&i| (&messages[i], parsed[i].as_ref().expect("parsed")))
                .collect();
            let settled = Box::pin(push_group(services, &group)).await;
            indexes.into_iter().zip(settled).collect::<Vec<_>>()
        }
    });
    let settled: Vec<Vec<(usize, MessageOutcome)>> = stream::iter(work)
        .buffer_unordered(services.config.push.concurrency.max(1))
        .collect()
        .await;
    for (i, outcome) in settled.into_iter().flatten() {
        outcomes[i] = Some(outcome);
    }
    messages
        .into_iter()
        .zip(outcomes)
        .map(|(message, outcome)| {
            (
                message.message_id,
                outcome.expect("every message has an outcome"),
            )
        })
        .collect()
}

/// One tenant's messages of one lane: its connections and plan read once, each destination
/// pushed once for all of them, each message settled. Outcomes in the order of `group`.
async fn push_group(
    services: &Services,
    group: &[(&InboundMessage, &LeadMessage)],
) -> Vec<MessageOutcome> {
    let tenant = &group[0].1.tenant_id;
    let lane = group[0].0.lane;
    let span =
        tracing::info_span!("lead_group", tenant = %tenant, lane = %lane, messages = group.len());
    async {
        let connections = match services.store.list_connections(tenant).await {
            Ok(c) => c,
            Err(error) => return give_up_all(services, group, &error).await,
        };
        // The message's plan is the pipeline's view when the lead event occurred; a plan
        // change billing reported after that wins, so a downgrade reaches queued, retried and
        // redriven messages too.
        let stored = match services.store.get_tenant_plan(tenant).await {
            Ok(stored) => stored,
            Err(error) => return give_up_all(services, group, &error).await,
        };
        // When each connection was made, as this push saw it: parking checks it for a
        // reconnect.
        let seen: Vec<(Provider, DateTime<Utc>)> = connections
            .iter()
            .map(|c| (c.provider, c.connected_at))
            .collect();
        let connected: Vec<Provider> = connections
            .iter()
            .filter(|c| c.status != ConnectionStatus::Disconnected)
            .map(|c| c.provider)
            .collect();
        let allowed: Vec<Vec<Provider>> = group
            .iter()
            .map(|(message, parsed)| {
                let plan =
                    crate::plan::effective(parsed.plan, Some(parsed.occurred_at), stored);
                let allowed = plan.allowed_destinations(&connected);
                let _entered = message_span(message, Some(parsed)).entered();
                for provider in connected.iter().filter(|p| !allowed.contains(p)) {
                    tracing::warn!(provider = %provider, plan = %plan, "connection not pushed: suspended by the plan");
                }
                allowed
            })
            .collect();

        // Each destination once, with the messages bound for it.
        let bound: Vec<(&Connection, Vec<usize>)> = connections
            .iter()
            .map(|c| {
                let to: Vec<usize> = (0..group.len())
                    .filter(|&m| allowed[m].contains(&c.provider))
                    .collect();
                (c, to)
            })
            .filter(|(_, to)| !to.is_empty())
            .collect();
        let pushes = bound.iter().map(|(connection, to)| {
            let provider = connection.provider;
            let leads: Vec<&LeadMessage> = to.iter().map(|&m| group[m].1).collect();
            let connection = (*connection).clone();
            async move {
                let span = tracing::info_span!("destination", provider = %provider, leads = leads.len());
                push_many(services, lane, &leads, connection)
                    .instrument(span)
                    .await
            }
        });
        let mut per_message: Vec<Vec<(Provider, Result<super::DestinationOutcome, Error>)>> =
            group.iter().map(|_| Vec::new()).collect();
        for ((connection, to), results) in bound.iter().zip(join_all(pushes).await) {
            for (&m, result) in to.iter().zip(results) {
                per_message[m].push((connection.provider, result));
            }
        }

        let settle = group
            .iter()
            .zip(per_message)
            .zip(&allowed)
            .map(|(((message, parsed), destinations), allowed)| {
                let seen = &seen;
                let connections = &connections;
                async move {
                    if allowed.is_empty() {
                        // The lead stays in LeadRelay; the relay has nowhere to put it. Not a
                        // failure.
                        tracing::info!("the tenant has no destination its plan allows; nothing to push");
                        return MessageOutcome::Done {
                            results: Vec::new(),
                        };
                    }
                    // Kept for the record links of the "Lead Pushed" events (account facts, no
                    // secret opened).
                    let targets = connections
                        .iter()
                        .filter(|c| allowed.contains(&c.provider))
                        .cloned()
                        .collect();
                    let pushed = Pushed {
                        seen,
                        targets,
                        destinations,
                    };
                    Box::pin(conclude(services, message, parsed, pushed)).await
                }
                .instrument(message_span(message, Some(parsed)))
            });
        join_all(settle).await
    }
    .instrument(span)
    .await
}

/// The tenant could not be read: each message is retried (or, on its last receive,
/// dead-lettered) with that reason.
async fn give_up_all(
    services: &Services,
    group: &[(&InboundMessage, &LeadMessage)],
    error: &Error,
) -> Vec<MessageOutcome> {
    join_all(group.iter().map(|(message, parsed)| {
        let error = copy_err(error);
        async move {
            retry_or_give_up(services, message, parsed, vec![failure_of(None, &error)])
                .instrument(message_span(message, Some(parsed)))
                .await
        }
    }))
    .await
}
