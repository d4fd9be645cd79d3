//! Lifecycle events on EventBridge: what happened to a tenant's connections and leads, for
//! LeadRelay's app ("your HubSpot needs to be reconnected", "synced to HubSpot — open").
//!
//! Every event has the source [`SOURCE`], a `detail-type` per kind and a `detail` with a
//! `version` whose JSON Schema is `events/schemas/<slug>.v<version>.json` (see
//! `docs/events.md`). A detail never carries a secret: ids, provider slugs, account facts the
//! relay already shows the tenant, and failure reasons built from error codes (provider prose is
//! kept out of error messages by [`crate::error`]).
//!
//! Publishing is best effort and bounded: it never fails or delays the work that caused it by
//! more than [`PUBLISH_TIMEOUT`]. A failed publish is logged (without the detail) and counted
//! ([`crate::metrics::EVENT_PUBLISH_FAILURES`]). Callers publish only when the state changed, so
//! a replay that changes nothing publishes nothing.

pub mod links;

use std::collections::BTreeMap;
use std::sync::Once;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::metrics;
use crate::registry::Provider;

pub use links::RecordLink;

/// The `source` of every event the relay publishes.
pub const SOURCE: &str = "leadrelay.crm-relay";

/// The version of every detail schema in force.
pub const DETAIL_VERSION: u32 = 1;

/// The longest a publish may hold up its caller, the SDK's own retries included.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(1500);

/// EventBridge takes at most 10 entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;

/// Reasons are cut to this many characters (EventBridge caps an entry at 256 KB; a reason is
/// for a person to read).
const MAX_REASON_CHARS: usize = 1000;

/// One lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub enum LifecycleEvent {
    /// A connection was stored active (a first connect, or a reconnect replacing the row).
    ConnectionConnected {
        tenant: String,
        provider: Provider,
        reconnect: bool,
        /// The account facts the connection stores (portal id, data centre, instance...).
        account: BTreeMap<String, String>,
    },
    /// An active connection was refused by the provider: the tenant must reconnect.
    ConnectionNeedsReauth {
        tenant: String,
        provider: Provider,
        reason: String,
        since: DateTime<Utc>,
    },
    /// The provider suspended the app for the account (Bitrix24 `PAYMENT_REQUIRED`): the
    /// connection stops as with `needs_reauth` until the account pays and reconnects.
    ConnectionSuspended {
        tenant: String,
        provider: Provider,
        reason: String,
        since: DateTime<Utc>,
    },
    /// The tenant disconnected: the connection and its credentials are gone.
    ConnectionDisconnected {
        tenant: String,
        provider: Provider,
        revoked_at_provider: bool,
    },
    /// The lead was written to the CRM (created, or changed by a newer version of the lead).
    LeadPushed {
        tenant: String,
        lead_id: String,
        provider: Provider,
        /// CRM record ids by kind (`contact`, `deal`, ...).
        records: BTreeMap<String, String>,
        links: Vec<RecordLink>,
    },
    /// A delivery of the lead failed in a way that may pass: SQS delivers it again.
    LeadFailed {
        tenant: String,
        lead_id: String,
        providers: Vec<Provider>,
        reason: String,
        /// The delivery that failed, 1 for the first.
        attempt: u32,
    },
    /// The lead went to the DLQ: it can never be pushed as it is, or it failed on its last
    /// allowed delivery. Tenant and lead id are absent when the message was not a lead.
    LeadDeadLettered {
        tenant: Option<String>,
        lead_id: Option<String>,
        providers: Vec<Provider>,
        reason: String,
        attempt: u32,
    },
}

/// Every kind of event: its `detail-type` and its schema file's stem.
pub const KINDS: [(&str, &str); 7] = [
    ("Connection Connected", "connection-connected"),
    ("Connection Needs Reauth", "connection-needs-reauth"),
    ("Connection Suspended", "connection-suspended"),
    ("Connection Disconnected", "connection-disconnected"),
    ("Lead Pushed", "lead-pushed"),
    ("Lead Failed", "lead-failed"),
    ("Lead Dead-Lettered", "lead-dead-lettered"),
];

impl LifecycleEvent {
    fn kind(&self) -> usize {
        match self {
            LifecycleEvent::ConnectionConnected { .. } => 0,
            LifecycleEvent::ConnectionNeedsReauth { .. } => 1,
            LifecycleEvent::ConnectionSuspended { .. } => 2,
            LifecycleEvent::ConnectionDisconnected { .. } => 3,
            LifecycleEvent::LeadPushed { .. } => 4,
            LifecycleEvent::LeadFailed { .. } => 5,
            LifecycleEvent::LeadDeadLettered { .. } => 6,
        }
    }

    pub fn detail_type(&self) -> &'static str {
        KINDS[self.kind()].0
    }

    /// The stem of the schema file, `events/schemas/<slug>.v1.json`.
    pub fn slug(&self) -> &'static str {
        KINDS[self.kind()].1
    }

    /// The event's `detail`.
    pub fn detail(&self) -> Value {
        let mut detail = match self {
            LifecycleEvent::ConnectionConnected {
                tenant,
                provider,
                reconnect,
                account,
            } => json!({
                "tenant_id": tenant,
                "provider": provider.slug(),
                "reconnect": reconnect,
                "account": account,
            }),
            LifecycleEvent::ConnectionNeedsReauth {
                tenant,
                provider,
                reason,
                since,
            }
            | LifecycleEvent::ConnectionSuspended {
                tenant,
                provider,
                reason,
                since,
            } => json!({
                "tenant_id": tenant,
                "provider": provider.slug(),
                "reason": cut(reason),
                "since": since.to_rfc3339(),
            }),
            LifecycleEvent::ConnectionDisconnected {
                tenant,
                provider,
                revoked_at_provider,
            } => json!({
                "tenant_id": tenant,
                "provider": provider.slug(),
                "revoked_at_provider": revoked_at_provider,
            }),
            LifecycleEvent::LeadPushed {
                tenant,
                lead_id,
                provider,
                records,
                links,
            } => json!({
                "tenant_id": tenant,
                "lead_id": lead_id,
                "provider": provider.slug(),
                "records": records,
                "links": links,
            }),
            LifecycleEvent::LeadFailed {
                tenant,
                lead_id,
                providers,
                reason,
                attempt,
            } => json!({
                "tenant_id": tenant,
                "lead_id": lead_id,
                "providers": slugs(providers),
                "reason": cut(reason),
                "attempt": attempt,
                "will_retry": true,
            }),
            LifecycleEvent::LeadDeadLettered {
                tenant,
                lead_id,
                providers,
                reason,
                attempt,
            } => json!({
                "tenant_id": tenant,
                "lead_id": lead_id,
                "providers": slugs(providers),
                "reason": cut(reason),
                "attempt": attempt,
            }),
        };
        detail["version"] = json!(DETAIL_VERSION);
        detail
    }

    /// The tenant, for logs and metrics.
    fn tenant(&self) -> Option<&str> {
        match self {
            LifecycleEvent::ConnectionConnected { tenant, .. }
            | LifecycleEvent::ConnectionNeedsReauth { tenant, .. }
            | LifecycleEvent::ConnectionSuspended { tenant, .. }
            | LifecycleEvent::ConnectionDisconnected { tenant, .. }
            | LifecycleEvent::LeadPushed { tenant, .. }
            | LifecycleEvent::LeadFailed { tenant, .. } => Some(tenant),
            LifecycleEvent::LeadDeadLettered { tenant, .. } => tenant.as_deref(),
        }
    }
}

fn cut(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

fn slugs(providers: &[Provider]) -> Vec<&'static str> {
    providers.iter().map(|p| p.slug()).collect()
}

/// The publisher: the bus named by `EVENT_BUS_NAME`, or off when it is unset.
#[derive(Clone, Debug)]
pub struct LifecycleEvents {
    target: Option<(aws_sdk_eventbridge::Client, String)>,
    timeout: Duration,
}

static OFF_LOGGED: Once = Once::new();

impl LifecycleEvents {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: Option<String>) -> LifecycleEvents {
        if bus.is_none() {
            OFF_LOGGED.call_once(|| {
                tracing::info!("EVENT_BUS_NAME is not set: lifecycle events are not published");
            });
        }
        LifecycleEvents {
            target: bus.map(|bus| (client, bus)),
            timeout: PUBLISH_TIMEOUT,
        }
    }

    /// The same publisher with another time bound.
    pub fn with_timeout(mut self, timeout: Duration) -> LifecycleEvents {
        self.timeout = timeout;
        self
    }

    pub fn bus_name(&self) -> Option<&str> {
        self.target.as_ref().map(|(_, bus)| bus.as_str())
    }

    /// Publishes `event`; see [`LifecycleEvents::publish_all`].
    pub async fn publish(&self, event: LifecycleEvent) {
        self.publish_all(vec![event]).await;
    }

    /// Publishes `events`, at most [`MAX_ENTRIES`] per call. Never fails: what EventBridge does
    /// not take within the time bound is logged and counted, and the caller goes on.
    pub async fn publish_all(&self, events: Vec<LifecycleEvent>) {
        let Some((client, bus)) = &self.target else {
            return;
        };
        for chunk in events.chunks(MAX_ENTRIES) {
            let entries: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(bus)
                        .source(SOURCE)
                        .detail_type(event.detail_type())
                        .detail(event.detail().to_string())
                        .build()
                })
                .collect();
            let call = client.put_events().set_entries(Some(entries)).send();
            let failed: Vec<(usize, String)> = match tokio::time::timeout(self.timeout, call).await
            {
                Ok(Ok(output)) => output
                    .entries()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, entry)| entry.error_code().map(|code| (i, code.to_string())))
                    .collect(),
                Ok(Err(error)) => {
                    let error = aws_sdk_eventbridge::error::DisplayErrorContext(&error).to_string();
                    (0..chunk.len()).map(|i| (i, error.clone())).collect()
                }
                Err(_) => (0..chunk.len())
                    .map(|i| (i, format!("no answer within {:?}", self.timeout)))
                    .collect(),
            };
            for (i, error) in failed {
                let event = &chunk[i];
                // The detail stays out of the log: the type and tenant say which event it was.
                tracing::warn!(
                    detail_type = event.detail_type(),
                    tenant = event.tenant().unwrap_or(""),
                    error = %error,
                    "lifecycle event not published"
                );
                metrics::Record::new()
                    .count(metrics::EVENT_PUBLISH_FAILURES, 1)
                    .property("detail_type", event.detail_type())
                    .property("tenant_id", event.tenant().unwrap_or(""))
                    .emit();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<LifecycleEvent> {
        let since = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        vec![
            LifecycleEvent::ConnectionConnected {
                tenant: "t".into(),
                provider: Provider::Hubspot,
                reconnect: false,
                account: BTreeMap::from([("hub_id".into(), "42".into())]),
            },
            LifecycleEvent::ConnectionNeedsReauth {
                tenant: "t".into(),
                provider: Provider::Zoho,
                reason: "x".repeat(5000),
                since,
            },
            LifecycleEvent::ConnectionSuspended {
                tenant: "t".into(),
                provider: Provider::Bitrix24,
                reason: "PAYMENT_REQUIRED".into(),
                since,
            },
            LifecycleEvent::ConnectionDisconnected {
                tenant: "t".into(),
                provider: Provider::Salesforce,
                revoked_at_provider: true,
            },
            LifecycleEvent::LeadPushed {
                tenant: "t".into(),
                lead_id: "l".into(),
                provider: Provider::Hubspot,
                records: BTreeMap::from([("contact".into(), "1".into())]),
                links: Vec::new(),
            },
            LifecycleEvent::LeadFailed {
                tenant: "t".into(),
                lead_id: "l".into(),
                providers: vec![Provider::Hubspot],
                reason: "r".into(),
                attempt: 2,
            },
            LifecycleEvent::LeadDeadLettered {
                tenant: None,
                lead_id: None,
                providers: Vec::new(),
                reason: "r".into(),
                attempt: 1,
            },
        ]
    }

    #[test]
    fn every_kind_has_its_own_type_slug_and_a_versioned_detail() {
        let events = samples();
        assert_eq!(events.len(), KINDS.len());
        for (event, (detail_type, slug)) in events.iter().zip(KINDS) {
            assert_eq!(event.detail_type(), detail_type);
            assert_eq!(event.slug(), slug);
            assert_eq!(event.detail()["version"], 1);
        }
    }

    #[test]
    fn reasons_are_cut_and_times_are_rfc3339() {
        let detail = samples()[1].detail();
        assert_eq!(detail["reason"].as_str().unwrap().len(), MAX_REASON_CHARS);
        assert_eq!(detail["since"], "2026-01-02T03:04:05+00:00");
        assert_eq!(detail["provider"], "zoho");
    }

    #[test]
    fn a_dead_letter_of_a_non_lead_names_no_tenant() {
        let detail = samples()[6].detail();
        assert!(detail["tenant_id"].is_null());
        assert!(detail["lead_id"].is_null());
    }
}
