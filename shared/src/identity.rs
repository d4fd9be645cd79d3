//! Who is calling: the tenant and its plan, taken from verified JWT claims only.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plan::Plan;

/// A tenant id, checked so that it can never break out of a DynamoDB key or an encryption
/// context (no `#`, no spaces, bounded length).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            Ok(TenantId(raw.to_string()))
        } else {
            Err(Error::Unauthorized("tenant claim is malformed"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The verified caller of a setup-page route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub plan: Plan,
    /// The token's `iat`, when it has a readable one: how old the plan claim is, so that a plan
    /// billing changed later wins over it (`plan::effective`).
    pub issued_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Caller {
    /// Reads the caller from the JWT authorizer's claims. API Gateway has verified the token's
    /// signature, issuer, audience and expiry before these claims reach us.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        tenant_claim: &str,
        plan_claim: &str,
    ) -> Result<Caller, Error> {
        let tenant = claims
            .get(tenant_claim)
            .ok_or(Error::Unauthorized("the token has no tenant claim"))?;
        let plan = claims
            .get(plan_claim)
            .ok_or(Error::Unauthorized("the token has no plan claim"))?
            .parse::<Plan>()
            .map_err(|_| Error::Unauthorized("the token's plan claim is not a known plan"))?;
        // Claims reach us as strings; a missing or odd `iat` only makes the claim yield to
        // any stored plan.
        let issued_at = claims
            .get("iat")
            .and_then(|iat| iat.trim().parse::<i64>().ok())
            .and_then(|secs| chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0));
        Ok(Caller {
            tenant: TenantId::parse(tenant)?,
            plan,
            issued_at,
        })
    }

    /// The plan this caller claims, as of when its token was issued.
    pub fn plan_claim(&self) -> crate::plan::PlanClaim {
        crate::plan::PlanClaim {
            plan: self.plan,
            as_of: self.issued_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_that_could_forge_a_key_are_refused() {
        assert!(TenantId::parse("acme-01").is_ok());
        for bad in ["", "a#b", "a b", "TENANT#x", &"x".repeat(129), "é"] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_caller_comes_from_the_claims() {
        let claims = HashMap::from([
            ("tenant_id".to_string(), "t1".to_string()),
            ("plan".to_string(), "pro".to_string()),
        ]);
        let caller = Caller::from_claims(&claims, "tenant_id", "plan").unwrap();
        assert_eq!(caller.tenant.as_str(), "t1");
        assert_eq!(caller.plan, Plan::Pro);
        assert_eq!(caller.issued_at, None);
        let mut issued = claims.clone();
        issued.insert("iat".into(), "1795838400".into());
        let caller = Caller::from_claims(&issued, "tenant_id", "plan").unwrap();
        assert_eq!(caller.issued_at.map(|t| t.timestamp()), Some(1_795_838_400));
    }

    #[test]
    fn missing_or_unknown_claims_are_unauthorized() {
        let no_plan = HashMap::from([("tenant_id".to_string(), "t1".to_string())]);
        assert!(matches!(
            Caller::from_claims(&no_plan, "tenant_id", "plan"),
            Err(Error::Unauthorized(_))
        ));
        let odd_plan = HashMap::from([
            ("tenant_id".to_string(), "t1".to_string()),
            ("plan".to_string(), "platinum".to_string()),
        ]);
        assert!(matches!(
            Caller::from_claims(&odd_plan, "tenant_id", "plan"),
            Err(Error::Unauthorized(_))
        ));
    }
}
