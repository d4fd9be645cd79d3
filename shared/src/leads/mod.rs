//! What became of a lead: `GET /leads/{lead_id}/sync`, per connected CRM of the caller's tenant.
//!
//! Reads only: the tenant's connection rows (one `Query` on the tenant's partition) and the
//! lead's mapping in each connection's CRM account (one strongly consistent `GetItem` per
//! connected CRM, at most six, sent together). A mapping is keyed
//! `LEAD#<provider>#<account>#<lead id>`, so no single `Query` finds a lead's mappings across
//! providers (the lead id is last); the connections name the accounts, which makes every key
//! known up front. `GetItem`s rather than one `BatchGetItem`: the same cost for six keys, no
//! unprocessed-keys loop, and no permission the API's role does not already have.
//!
//! The status of one CRM, from its mapping (see [`crate::store::LeadMapping`]):
//!
//! | status          | when                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `pending`       | a push holds the mapping's claim now, or one started and never ended  |
//! | `dead_lettered` | its last attempt failed and the message went to the DLQ               |
//! | `failed`        | its last attempt failed (with whether it will be tried again)         |
//! | `pushed`        | the last content was pushed completely and nothing failed since       |
//! | `unknown`       | no mapping: the lead never reached this CRM, or not yet. A message    |
//! |                 | waiting in the queue, one the plan kept from this CRM, or one that    |
//! |                 | failed before its first CRM write leave no trace this route can read  |
//!
//! A lead with no mapping at any connected CRM answers 404, as does any lead of another
//! tenant: the tenant comes from the JWT claims only, and every key is under its partition.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Error;
use crate::identity::Caller;
use crate::provider::links::{links_of, RecordLink};
use crate::registry::Provider;
use crate::services::Services;
use crate::store::{mapping_account, ConnectionStatus, LeadKey, LeadMapping};

/// The answer of `GET /leads/{lead_id}/sync`.
#[derive(Debug, Serialize)]
pub struct LeadSync {
    pub lead_id: String,
    /// One entry per connected CRM, in the order of the connection rows (by provider).
    pub destinations: Vec<DestinationSync>,
}

/// One CRM's status for the lead.
#[derive(Debug, Serialize)]
pub struct DestinationSync {
    pub provider: Provider,
    #[serde(flatten)]
    pub status: SyncStatus,
    /// The lead's records in that CRM so far, with links into its web app.
    pub records: Vec<RecordLink>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SyncStatus {
    Pushed {
        at: DateTime<Utc>,
    },
    Pending {
        /// When the push last wrote down progress.
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<DateTime<Utc>>,
    },
    Failed {
        at: DateTime<Utc>,
        reason: String,
        attempts: u32,
        will_retry: bool,
    },
    DeadLettered {
        at: DateTime<Utc>,
        reason: String,
    },
    Unknown,
}

/// The status of a CRM from its mapping at `now`; see the module documentation.
pub fn status_of(mapping: &LeadMapping, now: DateTime<Utc>) -> SyncStatus {
    let claimed = mapping.lease_owner.is_some()
        && mapping
            .lease_until
            .is_some_and(|until| until >= now.timestamp());
    if claimed {
        return SyncStatus::Pending {
            since: mapping.updated_at,
        };
    }
    if let Some(dead) = &mapping.dead_lettered {
        return SyncStatus::DeadLettered {
            at: dead.at,
            reason: dead.reason.clone(),
        };
    }
    if let Some(failure) = &mapping.last_failure {
        return SyncStatus::Failed {
            at: failure.at,
            reason: failure.reason.clone(),
            attempts: failure.attempts,
            will_retry: failure.will_retry,
        };
    }
    match (&mapping.pushed_digest, mapping.intents.is_empty()) {
        (Some(_), true) => SyncStatus::Pushed {
            // Mappings pushed before `pushed_at` existed: their last write was the push's.
            at: mapping
                .pushed_at
                .or(mapping.updated_at)
                .unwrap_or_else(Utc::now),
        },
        // Claimed once, released or lapsed without completing: SQS delivers it again.
        _ => SyncStatus::Pending {
            since: mapping.updated_at,
        },
    }
}

/// Whether `id` can be a lead id (the lead message's rule): anything else names no lead.
fn is_lead_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// The path segment as the id it spells: a client may percent-encode any character of it (`:`
/// as `%3A`, as URL builders do), and API Gateway passes the raw path on.
fn decode_path_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `GET /leads/{lead_id}/sync`: the lead's status at each of the caller's connected CRMs.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
pub async fn lead_sync(
    services: &Services,
    caller: &Caller,
    lead_id: &str,
) -> Result<LeadSync, Error> {
    let Some(lead_id) = decode_path_segment(lead_id).filter(|id| is_lead_id(id)) else {
        return Err(Error::BadRequest(
            "lead_id must be 1 to 128 letters, digits, '.', '_', ':' or '-'".into(),
        ));
    };
    let lead_id = lead_id.as_str();
    let connections: Vec<_> = services
        .store
        .list_connections(&caller.tenant)
        .await?
        .into_iter()
        .filter(|c| c.status != ConnectionStatus::Disconnected)
        .collect();
    let accounts: Vec<Option<String>> = connections
        .iter()
        .map(|c| mapping_account(c).ok())
        .collect();
    let keys: Vec<LeadKey<'_>> = connections
        .iter()
        .zip(&accounts)
        .filter_map(|(c, account)| {
            account.as_deref().map(|account| LeadKey {
                tenant: &caller.tenant,
                provider: c.provider,
                account,
                lead_id,
            })
        })
        .collect();
    let reads = keys.iter().map(|key| services.store.get_lead_mapping(*key));
    let mappings: Vec<LeadMapping> = futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    if mappings.is_empty() {
        return Err(Error::NotFound(format!("lead {lead_id:?}")));
    }
    let now = Utc::now();
    let destinations = connections
        .iter()
        .zip(&accounts)
        .map(|(connection, account)| {
            let mapping = mappings.iter().find(|m| {
                m.provider == connection.provider && Some(&m.account) == account.as_ref()
            });
            match mapping {
                Some(mapping) => DestinationSync {
                    provider: connection.provider,
                    status: status_of(mapping, now),
                    records: links_of(connection, &mapping.records),
                },
                None => DestinationSync {
                    provider: connection.provider,
                    status: SyncStatus::Unknown,
                    records: Vec::new(),
                },
            }
        })
        .collect();
    Ok(LeadSync {
        lead_id: lead_id.to_string(),
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeadLettered, PushFailure};

    fn mapping() -> LeadMapping {
        serde_json::from_value(serde_json::json!({
            "tenant_id": "tenant-a",
            "lead_id": "lead-1",
            "provider": "hubspot",
            "account": "42",
            "records": {"contact": "7"},
            "version": 3,
            "updated_at": "2026-12-01T10:00:00Z"
        }))
        .unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_completed_push_is_pushed_at_its_time() {
        let mut m = mapping();
        m.pushed_digest = Some("d".into());
        m.pushed_at = Some(at("2026-12-01T10:00:05Z"));
        assert!(matches!(
            status_of(&m, at("2026-12-02T00:00:00Z")),
            SyncStatus::Pushed { at: t } if t == at("2026-12-01T10:00:05Z")
        ));
    }

    #[test]
    fn a_held_claim_is_pending_and_a_lapsed_unfinished_one_too() {
        let now = at("2026-12-01T10:01:00Z");
        let mut m = mapping();
        m.pushed_digest = Some("old".into());
        m.lease_owner = Some("owner".into());
        m.lease_until = Some(now.timestamp() + 60);
        assert!(matches!(status_of(&m, now), SyncStatus::Pending { .. }));

        let mut lapsed = mapping();
        lapsed.intents.insert("deal".into());
        assert!(matches!(
            status_of(&lapsed, now),
            SyncStatus::Pending { .. }
        ));
    }

    #[test]
    fn a_failure_shows_its_reason_and_the_dlq_mark_wins_over_it() {
        let now = at("2026-12-01T10:01:00Z");
        let mut m = mapping();
        m.pushed_digest = Some("old".into());
        m.last_failure = Some(PushFailure {
            reason: "hubspot answered 503".into(),
            at: now,
            attempts: 2,
            will_retry: true,
        });
        match status_of(&m, now) {
            SyncStatus::Failed {
                reason,
                attempts,
                will_retry,
                ..
            } => {
                assert_eq!(reason, "hubspot answered 503");
                assert_eq!(attempts, 2);
                assert!(will_retry);
            }
            other => panic!("{other:?}"),
        }
        m.dead_lettered = Some(DeadLettered {
            reason: "gave up after 5 deliveries".into(),
            at: now,
        });
        assert!(matches!(
            status_of(&m, now),
            SyncStatus::DeadLettered { reason, .. } if reason == "gave up after 5 deliveries"
        ));
    }

    #[test]
    fn the_status_serialises_flat_with_its_fields() {
        let entry = DestinationSync {
            provider: Provider::Zoho,
            status: SyncStatus::Failed {
                at: at("2026-12-01T10:00:00Z"),
                reason: "r".into(),
                attempts: 1,
                will_retry: false,
            },
            records: Vec::new(),
        };
        let value = serde_json::to_value(&entry).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "provider": "zoho", "status": "failed", "at": "2026-12-01T10:00:00Z",
                "reason": "r", "attempts": 1, "will_retry": false, "records": []
            })
        );
        let unknown = DestinationSync {
            provider: Provider::Hubspot,
            status: SyncStatus::Unknown,
            records: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&unknown).unwrap(),
            serde_json::json!({"provider": "hubspot", "status": "unknown", "records": []})
        );
    }

    #[test]
    fn only_lead_message_ids_are_lead_ids() {
        assert!(is_lead_id("lead-0001"));
        assert!(is_lead_id("crm:abc.1_2"));
        for bad in ["", "a/b", "a b", "a#b", &"x".repeat(129)] {
            assert!(!is_lead_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_percent_encoded_lead_id_is_the_id_it_spells() {
        assert_eq!(
            decode_path_segment("crm%3Aabc.1_2").as_deref(),
            Some("crm:abc.1_2")
        );
        assert_eq!(
            decode_path_segment("lead-0001").as_deref(),
            Some("lead-0001")
        );
        for bad in ["a%2", "a%zz", "%+1", "%ff"] {
            let decoded = decode_path_segment(bad);
            assert!(decoded.as_deref().is_none_or(|id| !is_lead_id(id)), "{bad}");
        }
    }
}
