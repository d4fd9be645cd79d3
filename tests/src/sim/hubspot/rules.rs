//! The portal's own write rules, which HubSpot enforces on API writes from the `2026-09`
//! version on (changelog "Breaking Change: CRM API Write Validation Enforcement Starting with
//! the 2026-09 API Version"): properties required on the Create Record form, and conditionally
//! required properties (one required when another has a given value). A broken rule refuses
//! the write with 400 `VALIDATION_ERROR`, each broken rule an `errors` entry with `code`
//! (`MISSING_REQUIRED_PROPERTY`, `MISSING_CONDITIONAL_REQUIRED_PROPERTY`), `message` and
//! `context.propertyName`; inside a multi-status batch create, the refused input's own entry.
//! (The third rule of the changelog, the user's Edit Associations permission, concerns
//! user-level OAuth only and is not simulated.)

use std::collections::BTreeMap;

use super::schema::{ObjectType, PropertyProblem};

/// One rule configured in the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WriteRule {
    object: ObjectType,
    property: String,
    /// `None`: required on create (the Create Record form). `Some((other, value))`: required
    /// whenever `other` is `value` (on create and on update).
    when: Option<(String, String)>,
}

impl WriteRule {
    pub(super) fn on_create(object: ObjectType, property: &str) -> WriteRule {
        WriteRule {
            object,
            property: property.to_owned(),
            when: None,
        }
    }

    pub(super) fn conditional(
        object: ObjectType,
        property: &str,
        other: &str,
        value: &str,
    ) -> WriteRule {
        WriteRule {
            object,
            property: property.to_owned(),
            when: Some((other.to_owned(), value.to_owned())),
        }
    }

    /// The problem when `effective` (the record's values after the write) breaks this rule.
    fn broken_by(
        &self,
        effective: &BTreeMap<String, String>,
        creating: bool,
    ) -> Option<PropertyProblem> {
        let present = effective.get(&self.property).is_some_and(|v| !v.is_empty());
        if present {
            return None;
        }
        match &self.when {
            None => creating.then(|| {
                PropertyProblem::new(
                    &self.property,
                    "MISSING_REQUIRED_PROPERTY",
                    format!("A value for {} must be provided", self.property),
                )
            }),
            Some((other, value)) => effective
                .get(other)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
                .then(|| {
                    PropertyProblem::new(
                        &self.property,
                        "MISSING_CONDITIONAL_REQUIRED_PROPERTY",
                        format!(
                            "{} is required because of a conditional property rule based on [{other}]",
                            self.property
                        ),
                    )
                }),
        }
    }
}

/// Every rule of the simulated portals.
#[derive(Debug, Clone, Default)]
pub(super) struct Rules(Vec<WriteRule>);

impl Rules {
    pub(super) fn add(&mut self, rule: WriteRule) {
        if !self.0.contains(&rule) {
            self.0.push(rule);
        }
    }

    /// The rules of `object` that a write leaving the record at `effective` breaks.
    pub(super) fn broken(
        &self,
        object: ObjectType,
        effective: &BTreeMap<String, String>,
        creating: bool,
    ) -> Vec<PropertyProblem> {
        self.0
            .iter()
            .filter(|rule| rule.object == object)
            .filter_map(|rule| rule.broken_by(effective, creating))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_create_rule_binds_creates_only_and_a_conditional_rule_binds_when_its_trigger_holds() {
        let mut rules = Rules::default();
        rules.add(WriteRule::on_create(ObjectType::Contacts, "firstname"));
        rules.add(WriteRule::conditional(
            ObjectType::Deals,
            "closedate",
            "dealstage",
            "closedwon",
        ));
        let broken = rules.broken(ObjectType::Contacts, &values(&[("email", "a@b.c")]), true);
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].code, "MISSING_REQUIRED_PROPERTY");
        assert!(rules
            .broken(ObjectType::Contacts, &values(&[]), false)
            .is_empty());
        let won = values(&[("dealstage", "closedwon")]);
        assert_eq!(
            rules.broken(ObjectType::Deals, &won, false)[0].code,
            "MISSING_CONDITIONAL_REQUIRED_PROPERTY"
        );
        let open = values(&[("dealstage", "appointmentscheduled")]);
        assert!(rules.broken(ObjectType::Deals, &open, true).is_empty());
        let complete = values(&[("dealstage", "closedwon"), ("closedate", "2026-12-01")]);
        assert!(rules.broken(ObjectType::Deals, &complete, true).is_empty());
    }
}
