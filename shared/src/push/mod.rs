//! Lead push: one SQS message → the lead in every CRM the tenant connected and its plan allows.
//!
//! Each message ends in exactly one of four ways: **done** (every destination has the lead, or
//! there is none), **parked** (every destination has it except those whose connection needs the
//! tenant: the lead waits for the reconnect there, see [`parked`]), **retry** (a destination
//! failed in a way that may pass: SQS redelivers it and destinations that already succeeded are
//! skipped), or **dead-lettered** (it can never succeed, or it failed on its last allowed
//! receive: it is sent to the DLQ with its reason).

mod announce;
mod dead_letter;
pub mod defer;
mod destination;
mod lane;
mod parked;

use std::fmt;

use futures::future::join_all;
use tracing::Instrument;

use crate::error::Error;
use crate::lead::{parse_message, LeadMessage};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::ConnectionStatus;
pub use destination::DestinationOutcome;
pub use lane::Lane;
pub use parked::{release_parked, Released};

/// An SQS message as the lead-push function hands it over.
#[derive(Clone, Debug, Default)]
pub struct InboundMessage {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// Which queue it came from.
    pub lane: Lane,
    /// `MessageGroupId`: the tenant id by the message contract (SQS fair queues).
    pub group_id: Option<String>,
    /// `SentTimestamp`: when the producer (or a deferral) enqueued it.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How many times it was deferred because its CRM account had no capacity (message
    /// attribute `leadrelay-deferrals`); never counts towards dead-lettering.
    pub deferrals: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Every destination has the lead (or there was nothing to push to).
    Done {
        results: Vec<(Provider, DestinationOutcome)>,
    },
    /// The destinations in `parked` need the tenant to reconnect: the lead waits for that
    /// there. Every other destination has it (`results`). Settled: SQS deletes the message.
    Parked {
        results: Vec<(Provider, DestinationOutcome)>,
        parked: Vec<Provider>,
    },
    /// Report as a batch item failure: SQS redelivers after the visibility timeout.
    Retry { reason: String },
    /// Sent to the DLQ with this reason; delete it from the queue.
    DeadLettered { reason: String },
}

impl MessageOutcome {
    /// Whether SQS should delete the message.
    pub fn is_settled(&self) -> bool {
        !matches!(self, MessageOutcome::Retry { .. })
    }
}

/// One destination's failure, with whether trying again may help.
struct Failure {
    /// `None` for failures before any destination was tried (storage).
    provider: Option<Provider>,
    retryable: bool,
    reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            Some(provider) => write!(f, "{provider}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Pushes one message. Never panics on bad input; every path ends in a [`MessageOutcome`].
pub async fn process_message(services: &Services, message: &InboundMessage) -> MessageOutcome {
    let span = tracing::info_span!(
        "lead_message",
        message_id = %message.message_id,
        receive_count = message.receive_count,
        tenant = tracing::field::Empty,
        lead_id = tracing::field::Empty,
    );
    async {
        let parsed = match parse_message(&message.body) {
            Ok(parsed) => parsed,
            Err(error) => {
                let reason = format!("the message is not a valid lead: {error}");
                return dead_letter(services, message, None, &[], &reason).await;
            }
        };
        let span = tracing::Span::current();
        span.record("tenant", parsed.tenant_id.as_str());
        span.record("lead_id", parsed.lead.id.as_str());
        for warning in &parsed.lead.warnings {
            tracing::warn!(warning = %warning, "lead normalised with a warning");
        }
        push_everywhere(services, message, &parsed).await
    }
    .instrument(span)
    .await
}

async fn push_everywhere(
    services: &Services,
    message: &InboundMessage,
    parsed: &LeadMessage,
) -> MessageOutcome {
    let connections = match services.store.list_connections(&parsed.tenant_id).await {
        Ok(c) => c,
        Err(error) => {
            return retry_or_give_up(services, message, parsed, vec![failure_of(None, &error)])
                .await
        }
    };
    // When each connection was made, as this push saw it: parking checks it for a reconnect.
    let seen: Vec<(Provider, chrono::DateTime<chrono::Utc>)> = connections
        .iter()
        .map(|c| (c.provider, c.connected_at))
        .collect();
    let connected: Vec<Provider> = connections
        .iter()
        .filter(|c| c.status != ConnectionStatus::Disconnected)
        .map(|c| c.provider)
        .collect();
    // The message's plan is the pipeline's view when the lead event occurred; a plan change
    // billing reported after that wins, so a downgrade reaches queued, retried and redriven
    // messages too.
    let stored = match services.store.get_tenant_plan(&parsed.tenant_id).await {
        Ok(stored) => stored,
        Err(error) => {
            return retry_or_give_up(services, message, parsed, vec![failure_of(None, &error)])
                .await
        }
    };
    let plan = crate::plan::effective(parsed.plan, Some(parsed.occurred_at), stored);
    let allowed = plan.allowed_destinations(&connected);
    for provider in connected.iter().filter(|p| !allowed.contains(p)) {
        tracing::warn!(provider = %provider, plan = %plan, "connection not pushed: suspended by the plan");
    }
    if allowed.is_empty() {
        // The lead stays in LeadRelay; the relay has nowhere to put it. Not a failure.
        tracing::info!("the tenant has no destination its plan allows; nothing to push");
        return MessageOutcome::Done {
            results: Vec::new(),
        };
    }

    // Kept for the record links of the "Lead Pushed" events (account facts, no secret opened).
    let targets: Vec<_> = connections
        .iter()
        .filter(|c| allowed.contains(&c.provider))
        .cloned()
        .collect();
    let destinations = connections
        .into_iter()
        .filter(|c| allowed.contains(&c.provider));
    let pushes = destinations.map(|connection| {
        let provider = connection.provider;
        async move {
            let span = tracing::info_span!("destination", provider = %provider);
            let result = destination::push(services, parsed, connection)
                .instrument(span)
                .await;
            (provider, result)
        }
    });
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut parked = Vec::new();
    for (provider, result) in join_all(pushes).await {
        match result {
            Ok(outcome) => results.push((provider, outcome)),
            // The connection needs the tenant: nothing to gain from SQS's receives, nothing
            // wrong with the lead. It waits for the reconnect.
            Err(error @ Error::NeedsReauth { .. }) => {
                let connected_at = seen
                    .iter()
                    .find(|(p, _)| *p == provider)
                    .map(|(_, at)| *at)
                    .unwrap_or_else(chrono::Utc::now);
                let reason = error.to_string();
                // Boxed: the push's future is deep already (tests run it on a small stack).
                let parking = Box::pin(parked::park(
                    services,
                    message,
                    parsed,
                    provider,
                    connected_at,
                    &reason,
                ));
                match parking.await {
                    Ok(()) => parked.push(provider),
                    Err(error) => failures.push(failure_of(Some(provider), &error)),
                }
            }
            Err(error) => failures.push(failure_of(Some(provider), &error)),
        }
    }
    announce::pushed(services, parsed, &results, &targets).await;
    if failures.is_empty() && parked.is_empty() {
        tracing::info!(destinations = results.len(), "lead pushed");
        return MessageOutcome::Done { results };
    }
    if failures.is_empty() {
        tracing::info!(
            destinations = results.len(),
            parked = parked.len(),
            "lead pushed where it can be; parked for the rest"
        );
        return MessageOutcome::Parked { results, parked };
    }
    if failures.iter().all(|f| !f.retryable) {
        let reason = describe(&failures);
        return dead_letter(services, message, Some(parsed), &failures, &reason).await;
    }
    retry_or_give_up(services, message, parsed, failures).await
}

async fn retry_or_give_up(
    services: &Services,
    message: &InboundMessage,
    parsed: &LeadMessage,
    failures: Vec<Failure>,
) -> MessageOutcome {
    let reason = describe(&failures);
    if message.receive_count >= services.config.push.max_receives {
        let reason = format!(
            "gave up after {} deliveries: {reason}",
            message.receive_count
        );
        return dead_letter(services, message, Some(parsed), &failures, &reason).await;
    }
    tracing::warn!(reason = %reason, "lead push failed; SQS will deliver it again");
    let outcome = MessageOutcome::Retry { reason };
    let failing = providers_of(&failures);
    announce::not_pushed(services, message, Some(parsed), &failing, &outcome).await;
    outcome
}

/// Dead-letters the message (see [`dead_letter::send`]) and announces what became of it.
async fn dead_letter(
    services: &Services,
    message: &InboundMessage,
    parsed: Option<&LeadMessage>,
    failures: &[Failure],
    reason: &str,
) -> MessageOutcome {
    let outcome = dead_letter::send(services, message, parsed, reason).await;
    let failing = providers_of(failures);
    dead_letter::mark(services, parsed, &failing, &outcome).await;
    announce::not_pushed(services, message, parsed, &failing, &outcome).await;
    outcome
}

fn providers_of(failures: &[Failure]) -> Vec<Provider> {
    failures.iter().filter_map(|f| f.provider).collect()
}

fn failure_of(provider: Option<Provider>, error: &Error) -> Failure {
    Failure {
        provider,
        retryable: error.is_retryable(),
        reason: error.to_string(),
    }
}

fn describe(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(Failure::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
