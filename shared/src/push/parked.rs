//! Leads that wait for a reconnect.
//!
//! A destination whose connection needs the tenant (`needs_reauth`, or a refresh in doubt whose
//! access token died) cannot take a lead until the tenant connects again, which may be days
//! away: far longer than SQS's receives last. Such a lead is **parked** (its message body
//! written under the tenant's partition, see [`crate::store::ParkedLead`]) and the message
//! acknowledged for that destination. When the tenant connects the same provider again (OAuth
//! callback or API-key connect), [`release_parked`] re-sends the parked messages to the lead
//! queue, oldest `occurred_at` first, and deletes each once sent. The push protocol makes that
//! safe: destinations that already have the lead skip it (same digest), an older version is
//! stale behind a newer one, and a message sent twice is pushed once.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use chrono::{DateTime, Utc};

use super::InboundMessage;
use crate::error::{Error, QueueError};
use crate::identity::TenantId;
use crate::lead::LeadMessage;
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{ConnectionStatus, ParkedLead};

/// Parked leads read per page while releasing.
const RELEASE_PAGE: usize = 100;

/// Parks `message` for `provider`, whose connection (as read by this push, connected at
/// `seen_connected_at`) needs the tenant.
///
/// A reconnect that lands between that read and this write would not see the new item, so the
/// connection is read again afterwards: if it was reconnected meanwhile, the item is taken back
/// and the push is retried instead (SQS delivers the message again, to the new connection).
pub(super) async fn park(
    services: &Services,
    message: &InboundMessage,
    parsed: &LeadMessage,
    provider: Provider,
    seen_connected_at: DateTime<Utc>,
    reason: &str,
) -> Result<(), Error> {
    let now = Utc::now();
    let days = i64::from(services.config.push.parked_lead_days);
    let lead = ParkedLead {
        tenant_id: parsed.tenant_id.clone(),
        provider,
        lead_id: parsed.lead.id.clone(),
        occurred_at: parsed.occurred_at,
        body: message.body.clone(),
        reason: reason.chars().take(500).collect(),
        parked_at: now,
        ttl: (now + chrono::Duration::days(days)).timestamp(),
    };
    services.store.park_lead(&lead).await?;
    let current = services
        .store
        .get_connection(&parsed.tenant_id, provider)
        .await?;
    let reconnected = current.is_some_and(|c| {
        c.status == ConnectionStatus::Active && c.connected_at > seen_connected_at
    });
    if reconnected {
        services.store.delete_parked_lead(&lead).await?;
        return Err(Error::Busy(format!(
            "{provider} was reconnected while this lead was being parked; pushing it there instead"
        )));
    }
    tracing::warn!(
        provider = %provider,
        reason = %lead.reason,
        keep_days = days,
        "lead parked until the tenant reconnects"
    );
    Ok(())
}

/// What a release did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Parked messages sent to the lead queue (and deleted).
    pub sent: usize,
}

/// Re-sends `tenant`'s parked leads for `provider` to the lead queue, oldest first, deleting
/// each once SQS took it. Called after a connect of that tenant and provider succeeded; a
/// failure leaves the rest parked for the next connect (what was sent is not sent again,
/// and would be harmless if it were).
pub async fn release_parked(
    services: &Services,
    tenant: &TenantId,
    provider: Provider,
) -> Result<Released, Error> {
    let mut released = Released::default();
    loop {
        let page = services
            .store
            .parked_leads(tenant, provider, Utc::now(), RELEASE_PAGE)
            .await?;
        if page.is_empty() {
            break;
        }
        let Some(queue_url) = services.config.push.lead_queue_url.as_deref() else {
            tracing::error!(
                parked = page.len(),
                "parked leads cannot be released: LEAD_QUEUE_URL is not set"
            );
            return Err(Error::Config(crate::error::ConfigError::Missing(
                "LEAD_QUEUE_URL",
            )));
        };
        for chunk in page.chunks(10) {
            send_batch(services, queue_url, tenant, provider, chunk).await?;
            for lead in chunk {
                services.store.delete_parked_lead(lead).await?;
            }
            released.sent += chunk.len();
        }
    }
    if released.sent > 0 {
        tracing::info!(provider = %provider, released = released.sent, "parked leads sent to the lead queue");
    }
    Ok(released)
}

/// One `SendMessageBatch` of up to 10 parked messages; any entry SQS refused fails the whole
/// release there, so that nothing later overtakes it.
async fn send_batch(
    services: &Services,
    queue_url: &str,
    tenant: &TenantId,
    provider: Provider,
    chunk: &[ParkedLead],
) -> Result<(), Error> {
    let entries = chunk
        .iter()
        .enumerate()
        .map(|(i, lead)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&lead.body)
                // The message contract: the tenant is the message group (fair queue).
                .message_group_id(tenant.as_str())
                .message_attributes(
                    "released_from_park",
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(provider.slug())
                        .build()
                        .expect("data type is set"),
                )
                .build()
                .expect("id and body are set")
        })
        .collect::<Vec<_>>();
    let output = services
        .sqs
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| QueueError::from_sdk("SendMessageBatch", e))?;
    if let Some(failed) = output.failed.first() {
        return Err(QueueError {
            operation: "SendMessageBatch",
            code: failed.code.clone(),
            message: failed.message.clone().unwrap_or_default(),
            retryable: !failed.sender_fault,
        }
        .into());
    }
    Ok(())
}
