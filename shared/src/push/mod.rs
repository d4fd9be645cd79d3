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
mod group;
mod lane;
mod parked;

use std::fmt;

use tracing::Instrument;

use crate::error::Error;
use crate::lead::LeadMessage;
use crate::registry::Provider;
use crate::services::Services;
pub use destination::DestinationOutcome;
pub use group::process_batch;
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
    /// Its only failures are throttling: to be sent again to arrive at `until` (when the CRM
    /// account has capacity again), then deleted. Never dead-lettered for that, and never
    /// counted against `LEAD_MAX_RECEIVES`. Destinations that took it keep it (a replay
    /// there costs no CRM call).
    Deferred {
        until: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
}

impl MessageOutcome {
    /// Whether SQS should delete the message as it is. A deferred message is settled only once
    /// it has been sent again (lead-push does that), so as it stands it is not.
    pub fn is_settled(&self) -> bool {
        !matches!(
            self,
            MessageOutcome::Retry { .. } | MessageOutcome::Deferred { .. }
        )
    }
}

/// How long a throttled lead waits when the CRM did not say.
const THROTTLE_WAIT_SECONDS: i64 = 60;

/// One destination's failure, with whether trying again may help.
struct Failure {
    /// `None` for failures before any destination was tried (storage).
    provider: Option<Provider>,
    retryable: bool,
    reason: String,
    /// Throttled: how long the CRM asked to wait (`Some(None)`: it did not say).
    throttled: Option<Option<std::time::Duration>>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider {
            Some(provider) => write!(f, "{provider}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Pushes one message: a batch of one through [`process_batch`]. Never panics on bad input;
/// every path ends in a [`MessageOutcome`].
pub async fn process_message(services: &Services, message: &InboundMessage) -> MessageOutcome {
    process_batch(services, vec![message.clone()])
        .await
        .pop()
        .map(|(_, outcome)| outcome)
        .expect("one outcome per message")
}

/// The span of one message's work (the batch's pushes run under the group's span).
fn message_span(message: &InboundMessage, parsed: Option<&LeadMessage>) -> tracing::Span {
    let span = tracing::info_span!(
        "lead_message",
        message_id = %message.message_id,
        receive_count = message.receive_count,
        tenant = tracing::field::Empty,
        lead_id = tracing::field::Empty,
    );
    if let Some(parsed) = parsed {
        span.record("tenant", parsed.tenant_id.as_str());
        span.record("lead_id", parsed.lead.id.as_str());
    }
    span
}

/// A message that is not a valid lead: to the DLQ, alone.
async fn not_a_lead(
    services: &Services,
    message: &InboundMessage,
    error: &impl fmt::Display,
) -> MessageOutcome {
    let reason = format!("the message is not a valid lead: {error}");
    dead_letter(services, message, None, &[], &reason)
        .instrument(message_span(message, None))
        .await
}

/// What one message's destinations came to, as the tenant's connections were read for the
/// batch: `seen` (each provider's `connected_at`, for parking), `targets` (the connections it
/// was bound for, for record links) and each destination's result.
struct Pushed<'a> {
    seen: &'a [(Provider, chrono::DateTime<chrono::Utc>)],
    targets: Vec<crate::store::Connection>,
    destinations: Vec<(Provider, Result<DestinationOutcome, Error>)>,
}

/// Settles one message from its destinations' results: done, parked, deferred, dead-lettered
/// or retried, with its events.
async fn conclude(
    services: &Services,
    message: &InboundMessage,
    parsed: &LeadMessage,
    pushed: Pushed<'_>,
) -> MessageOutcome {
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut parked = Vec::new();
    for (provider, result) in pushed.destinations {
        match result {
            Ok(outcome) => results.push((provider, outcome)),
            // The connection needs the tenant: nothing to gain from SQS's receives, nothing
            // wrong with the lead. It waits for the reconnect.
            Err(error @ Error::NeedsReauth { .. }) => {
                let connected_at = pushed
                    .seen
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
    announce::pushed(services, parsed, &results, &pushed.targets).await;
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
    if failures.iter().all(|f| f.throttled.is_some()) {
        // Only throttled: the lead is fine and so is the connection; it waits as long as the
        // CRM asked (the longest wait of its destinations), whatever its receive count.
        let wait = failures
            .iter()
            .map(|f| match f.throttled {
                Some(Some(wait)) => chrono::Duration::from_std(wait)
                    .unwrap_or(chrono::Duration::seconds(THROTTLE_WAIT_SECONDS)),
                _ => chrono::Duration::seconds(THROTTLE_WAIT_SECONDS),
            })
            .max()
            .unwrap_or(chrono::Duration::seconds(THROTTLE_WAIT_SECONDS));
        let reason = describe(&failures);
        tracing::info!(reason = %reason, wait_seconds = wait.num_seconds(), "lead throttled; deferring it");
        return MessageOutcome::Deferred {
            until: chrono::Utc::now() + wait,
            reason,
        };
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
    let throttled = match error {
        Error::Provider(crate::error::ProviderError::Throttled { retry_after, .. }) => {
            Some(*retry_after)
        }
        _ => None,
    };
    Failure {
        provider,
        retryable: error.is_retryable(),
        reason: error.to_string(),
        throttled,
    }
}

fn describe(failures: &[Failure]) -> String {
    failures
        .iter()
        .map(Failure::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
