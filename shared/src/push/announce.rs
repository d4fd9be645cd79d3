//! What a push tells the world besides its outcome: lifecycle events (only for what changed:
//! a replay or a stale message announces nothing) and EMF metrics per provider.

use crate::events::{links::links_for, LifecycleEvent};
use crate::lead::LeadMessage;
use crate::metrics;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::Connection;

use super::{DestinationOutcome, InboundMessage, MessageOutcome};

/// Each destination that now holds new or changed records: one "Lead Pushed" each.
pub(super) async fn pushed(
    services: &Services,
    parsed: &LeadMessage,
    results: &[(Provider, DestinationOutcome)],
    connections: &[Connection],
) {
    let tenant = parsed.tenant_id.as_str();
    let mut events = Vec::new();
    for (provider, outcome) in results {
        // `AlreadyPushed` and `Stale` changed nothing in the CRM.
        let DestinationOutcome::Pushed { records } = outcome else {
            continue;
        };
        metrics::count_for(Some(*provider), metrics::LEADS_PUSHED, Some(tenant));
        let links = connections
            .iter()
            .find(|c| c.provider == *provider)
            .map(|c| links_for(c, records))
            .unwrap_or_default();
        events.push(LifecycleEvent::LeadPushed {
            tenant: tenant.to_string(),
            lead_id: parsed.lead.id.clone(),
            provider: *provider,
            records: records.clone(),
            links,
        });
    }
    services.events.publish_all(events).await;
}

/// A message that was not settled by a push: failed for now (SQS delivers it again) or
/// dead-lettered. `providers` are the destinations that failed (none for a message that is not
/// a lead, or a failure before any destination was tried).
pub(super) async fn not_pushed(
    services: &Services,
    message: &InboundMessage,
    parsed: Option<&LeadMessage>,
    providers: &[Provider],
    outcome: &MessageOutcome,
) {
    let tenant = parsed.map(|p| p.tenant_id.as_str().to_string());
    let lead_id = parsed.map(|p| p.lead.id.clone());
    let (metric, event) = match outcome {
        MessageOutcome::Retry { reason } => (
            metrics::LEADS_FAILED,
            tenant
                .clone()
                .zip(lead_id)
                .map(|(tenant, lead_id)| LifecycleEvent::LeadFailed {
                    tenant,
                    lead_id,
                    providers: providers.to_vec(),
                    reason: reason.clone(),
                    attempt: message.receive_count,
                }),
        ),
        MessageOutcome::DeadLettered { reason } => (
            metrics::LEADS_DEAD_LETTERED,
            Some(LifecycleEvent::LeadDeadLettered {
                tenant: tenant.clone(),
                lead_id,
                providers: providers.to_vec(),
                reason: reason.clone(),
                attempt: message.receive_count,
            }),
        ),
        // A deferred lead is neither failed nor pushed yet: it arrives again when it may.
        MessageOutcome::Done { .. }
        | MessageOutcome::Parked { .. }
        | MessageOutcome::Deferred { .. } => return,
    };
    if providers.is_empty() {
        metrics::count_for(None, metric, tenant.as_deref());
    }
    for provider in providers {
        metrics::count_for(Some(*provider), metric, tenant.as_deref());
    }
    if let Some(event) = event {
        services.events.publish(event).await;
    }
}
