//! Pricing tiers and what each lets a tenant connect.
//!
//! Free: Google Sheets only. Pro: Google Sheets plus one CRM of HubSpot, Zoho, Freshsales and
//! Bitrix24. Business: everything, Salesforce included.
//!
//! Where a plan comes from: the caller's JWT claim (connect) or the SQS message (push) is the
//! caller's view; the plan billing last told us (`store::tenant_plans`, fed by the billing
//! event) wins when it changed after that view was formed ([`effective`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::Provider;

/// A tenant's plan does not let it connect a provider. Plans own this refusal, so `plan` needs
/// nothing from `error`; `error::Error` wraps it for the HTTP answer (403 `plan_required`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider} needs the {needed} plan: {reason}")]
pub struct PlanRequired {
    pub provider: Provider,
    pub needed: Plan,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Business,
}

impl Plan {
    pub fn name(self) -> &'static str {
        match self {
            Plan::Free => "Free",
            Plan::Pro => "Pro",
            Plan::Business => "Business",
        }
    }

    /// The cheapest plan under which `provider` can be connected at all.
    pub fn cheapest_for(provider: Provider) -> Plan {
        match provider {
            Provider::GoogleSheets => Plan::Free,
            Provider::Salesforce => Plan::Business,
            Provider::Hubspot | Provider::Zoho | Provider::Freshsales | Provider::Bitrix24 => {
                Plan::Pro
            }
        }
    }

    /// How many CRMs (destinations other than Google Sheets) the plan allows at once.
    pub fn crm_allowance(self) -> usize {
        match self {
            Plan::Free => 0,
            Plan::Pro => 1,
            Plan::Business => usize::MAX,
        }
    }

    /// Whether a tenant on this plan may connect `provider`, given the providers it has
    /// connected already. Reconnecting a provider that is already connected is always allowed
    /// when the provider itself is allowed.
    pub fn check_connect(
        self,
        provider: Provider,
        connected: &[Provider],
    ) -> Result<(), PlanRequired> {
        let needed = Plan::cheapest_for(provider);
        if self < needed {
            return Err(PlanRequired {
                provider,
                needed,
                reason: format!(
                    "the {} plan does not include {}",
                    self.name(),
                    provider_name(provider)
                ),
            });
        }
        // A reconnect (or a connection a downgrade suspended) takes no new CRM slot.
        if !provider.is_crm() || connected.contains(&provider) {
            return Ok(());
        }
        let other_crms: Vec<Provider> = connected
            .iter()
            .copied()
            .filter(|p| p.is_crm() && *p != provider)
            .collect();
        if other_crms.len() >= self.crm_allowance() {
            return Err(PlanRequired {
                provider,
                needed: Plan::Business,
                reason: format!(
                    "the {} plan includes one CRM and {} is already connected; disconnect it or upgrade",
                    self.name(),
                    provider_name(other_crms[0])
                ),
            });
        }
        Ok(())
    }

    /// Which of a tenant's connections its plan lets leads flow to, e.g. after a downgrade; the
    /// others are suspended by the plan. `connected_in_order` is ordered by first connection
    /// (`Connection::first_connected`, which a reconnect keeps): on Pro the CRM connected first
    /// keeps working.
    pub fn allowed_destinations(self, connected_in_order: &[Provider]) -> Vec<Provider> {
        let mut crms = 0;
        connected_in_order
            .iter()
            .copied()
            .filter(|p| {
                if self < Plan::cheapest_for(*p) {
                    return false;
                }
                if p.is_crm() {
                    crms += 1;
                    return crms <= self.crm_allowance();
                }
                true
            })
            .collect()
    }
}

/// The plan billing last reported for a tenant, and when billing says it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredPlan {
    pub plan: Plan,
    pub changed_at: DateTime<Utc>,
}

/// A caller's view of its plan and when it was formed (a JWT's `iat`), if known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanClaim {
    pub plan: Plan,
    pub as_of: Option<DateTime<Utc>>,
}

impl PlanClaim {
    /// The plan to enforce for this claim given billing's stored plan ([`effective`]).
    pub fn against(self, stored: Option<StoredPlan>) -> Plan {
        effective(self.plan, self.as_of, stored)
    }
}

/// The plan to enforce: the caller's view (`claimed`, as of `claimed_at` when known), unless
/// billing's stored plan changed after it. A claim of unknown age (a JWT without `iat`) yields
/// to any stored plan; with nothing stored, the claim stands.
pub fn effective(
    claimed: Plan,
    claimed_at: Option<DateTime<Utc>>,
    stored: Option<StoredPlan>,
) -> Plan {
    match (stored, claimed_at) {
        (Some(stored), Some(at)) if stored.changed_at <= at => claimed,
        (Some(stored), _) => stored.plan,
        (None, _) => claimed,
    }
}

/// The EventBridge `source` of billing's plan changes.
pub const BILLING_SOURCE: &str = "leadrelay.billing";
/// Their `detail-type`.
pub const PLAN_CHANGED: &str = "Tenant Plan Changed";

/// An event's `detail` when billing changes a tenant's plan (docs/architecture.md, Plans):
/// `{"tenant_id": "acme", "plan": "pro", "changed_at": "2026-12-01T10:00:00Z"}`. Other fields
/// are ignored, so billing may add some.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanChange {
    pub tenant: crate::identity::TenantId,
    pub plan: Plan,
    pub changed_at: DateTime<Utc>,
}

impl PlanChange {
    /// Reads the detail; the error names the field, never echoes a value.
    pub fn from_detail(detail: &serde_json::Value) -> Result<PlanChange, String> {
        let text = |name: &'static str| {
            detail
                .get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{name} is missing or not a string"))
        };
        let tenant = crate::identity::TenantId::parse(text("tenant_id")?)
            .map_err(|_| "tenant_id is not a tenant id".to_string())?;
        let plan = text("plan")?
            .parse::<Plan>()
            .map_err(|_| "plan must be free, pro or business".to_string())?;
        let changed_at = DateTime::parse_from_rfc3339(text("changed_at")?)
            .map_err(|_| "changed_at is not an RFC 3339 time".to_string())?
            .with_timezone(&Utc);
        Ok(PlanChange {
            tenant,
            plan,
            changed_at,
        })
    }
}

fn provider_name(provider: Provider) -> &'static str {
    provider
        .facts()
        .map(|f| f.display_name)
        .unwrap_or_else(|| provider.slug())
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Plan {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "free" => Ok(Plan::Free),
            "pro" => Ok(Plan::Pro),
            "business" => Ok(Plan::Business),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Provider::*;

    fn needed(result: Result<(), PlanRequired>) -> Option<Plan> {
        match result {
            Ok(()) => None,
            Err(PlanRequired { needed, .. }) => Some(needed),
        }
    }

    #[test]
    fn free_allows_google_sheets_only() {
        assert_eq!(needed(Plan::Free.check_connect(GoogleSheets, &[])), None);
        for crm in [Hubspot, Zoho, Freshsales, Bitrix24] {
            assert_eq!(needed(Plan::Free.check_connect(crm, &[])), Some(Plan::Pro));
        }
        assert_eq!(
            needed(Plan::Free.check_connect(Salesforce, &[])),
            Some(Plan::Business)
        );
    }

    #[test]
    fn a_refusal_says_which_plan_is_needed() {
        let err = Plan::Free.check_connect(Hubspot, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hubspot needs the Pro plan: the Free plan does not include HubSpot"
        );
    }

    #[test]
    fn pro_allows_sheets_and_one_crm() {
        assert_eq!(
            needed(Plan::Pro.check_connect(Hubspot, &[GoogleSheets])),
            None
        );
        assert_eq!(
            needed(Plan::Pro.check_connect(Zoho, &[Hubspot])),
            Some(Plan::Business)
        );
        assert_eq!(
            needed(Plan::Pro.check_connect(Hubspot, &[Hubspot])),
            None,
            "reconnect"
        );
        assert_eq!(
            needed(Plan::Pro.check_connect(GoogleSheets, &[Hubspot])),
            None
        );
        assert_eq!(
            needed(Plan::Pro.check_connect(Salesforce, &[])),
            Some(Plan::Business)
        );
    }

    #[test]
    fn business_allows_everything() {
        for p in Provider::ALL {
            assert_eq!(
                needed(Plan::Business.check_connect(p, &Provider::ALL)),
                None
            );
        }
    }

    #[test]
    fn after_a_downgrade_only_the_first_crm_keeps_receiving_leads() {
        let connected = [GoogleSheets, Zoho, Hubspot, Salesforce];
        assert_eq!(
            Plan::Pro.allowed_destinations(&connected),
            vec![GoogleSheets, Zoho]
        );
        assert_eq!(
            Plan::Free.allowed_destinations(&connected),
            vec![GoogleSheets]
        );
        assert_eq!(
            Plan::Business.allowed_destinations(&connected),
            connected.to_vec()
        );
    }

    #[test]
    fn a_suspended_or_reconnected_crm_takes_no_new_slot() {
        assert_eq!(
            needed(Plan::Pro.check_connect(Zoho, &[Hubspot, Zoho])),
            None
        );
        assert_eq!(
            needed(Plan::Free.check_connect(Hubspot, &[Hubspot])),
            Some(Plan::Pro)
        );
    }

    #[test]
    fn the_stored_plan_wins_when_it_changed_after_the_claim() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let stored = Some(StoredPlan {
            plan: Plan::Pro,
            changed_at: at(100),
        });
        assert_eq!(effective(Plan::Business, Some(at(99)), stored), Plan::Pro);
        assert_eq!(
            effective(Plan::Business, Some(at(100)), stored),
            Plan::Business
        );
        assert_eq!(effective(Plan::Business, None, stored), Plan::Pro);
        assert_eq!(effective(Plan::Business, None, None), Plan::Business);
    }

    #[test]
    fn a_plan_change_detail_is_read_and_checked() {
        let change = PlanChange::from_detail(&serde_json::json!({
            "tenant_id": "acme", "plan": "Pro", "changed_at": "2026-12-01T10:00:00+01:00",
            "invoice": "in_1"
        }))
        .unwrap();
        assert_eq!(change.tenant.as_str(), "acme");
        assert_eq!(change.plan, Plan::Pro);
        assert_eq!(change.changed_at.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        for (bad, field) in [
            (
                serde_json::json!({"plan": "pro", "changed_at": "2026-12-01T10:00:00Z"}),
                "tenant_id",
            ),
            (
                serde_json::json!({"tenant_id": "a#b", "plan": "pro", "changed_at": "2026-12-01T10:00:00Z"}),
                "tenant_id",
            ),
            (
                serde_json::json!({"tenant_id": "a", "plan": "gold", "changed_at": "2026-12-01T10:00:00Z"}),
                "plan",
            ),
            (
                serde_json::json!({"tenant_id": "a", "plan": "pro", "changed_at": "yesterday"}),
                "changed_at",
            ),
        ] {
            let error = PlanChange::from_detail(&bad).unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
    }

    #[test]
    fn plan_claims_parse_case_insensitively() {
        assert_eq!("Business".parse::<Plan>(), Ok(Plan::Business));
        assert!("enterprise".parse::<Plan>().is_err());
    }
}
