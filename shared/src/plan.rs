//! Pricing tiers and what each lets a tenant connect.
//!
//! Free: Google Sheets only. Pro: Google Sheets plus one CRM of HubSpot, Zoho, Freshsales and
//! Bitrix24. Business: everything, Salesforce included.

use std::fmt;
use std::str::FromStr;

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
        if !provider.is_crm() {
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

    /// Which of a tenant's connections its plan lets leads flow to, e.g. after a downgrade. On
    /// Pro the CRM connected first keeps working.
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
    fn plan_claims_parse_case_insensitively() {
        assert_eq!("Business".parse::<Plan>(), Ok(Plan::Business));
        assert!("enterprise".parse::<Plan>().is_err());
    }
}
