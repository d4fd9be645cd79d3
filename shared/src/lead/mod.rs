//! A qualified lead: the inbound SQS message ([`parse_message`]), and the lead normalised the
//! way every CRM receives it ([`Lead`]).
//!
//! Fields the lead pipeline generates (ids, stage, score, country, locale) are validated
//! strictly: a bad one is a bug upstream, and the message is refused so that it surfaces in the
//! DLQ. Fields a person typed in a chat (name, phone, email) are normalised leniently: one that
//! cannot be used is dropped with a [`LeadWarning`], and the lead still reaches the sales team.

mod email;
mod message;
mod name;
mod phone;
mod region;
mod text;

use std::fmt;

use sha2::{Digest, Sha256};

use crate::stage::LeadStage;

pub use email::{normalise_email, EmailProblem};
pub use message::{parse_message, LeadMessage, MessageError, MESSAGE_VERSION};
pub use name::{split_name, PersonName, MAX_NAME_PART_CHARS, UNKNOWN_NAME};
pub use phone::{normalise_phone, E164Phone, PhoneProblem};
pub use region::{country_code, parse_locale, Locale};
pub use text::{truncate_bytes, truncate_chars, ELLIPSIS};

/// A lead, normalised. Its `Debug` output leaves out the personal details.
#[derive(Clone, PartialEq, Eq)]
pub struct Lead {
    /// LeadRelay's id: letters, digits and `._:-`, at most 128 chars (it goes into a key).
    pub id: String,
    pub first_name: Option<String>,
    /// Never empty: CRMs (Zoho, Salesforce) require it. [`UNKNOWN_NAME`] when no name was given.
    pub last_name: String,
    /// The cleaned display name.
    pub full_name: String,
    /// Trimmed and lower-cased, of a plausible shape.
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub source: Option<String>,
    /// 0 to 100.
    pub score: Option<u8>,
    pub stage: LeadStage,
    /// Upper-case ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// The conversation summary, trimmed; never empty. Each CRM cuts it to its own field limit
    /// with [`truncate_chars`] or [`truncate_bytes`].
    pub summary: Option<String>,
    /// What normalisation dropped. Not sent to CRMs, not part of [`Lead::digest`].
    pub warnings: Vec<LeadWarning>,
    /// When the lead pipeline sent this version of the lead (the message's `occurred_at`). Not
    /// part of [`Lead::digest`]: the same content sent again is the same lead.
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A LeadRelay field a tenant can send to a field of its own choosing in the CRM (a Salesforce
/// custom field such as `LeadRelay_Score__c`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LeadField {
    LeadId,
    Source,
    Score,
    Stage,
    Country,
    Summary,
}

impl LeadField {
    /// The kinds of CRM field that can hold it (`number`, `string`, `enumeration`).
    pub fn fitting_kinds(self) -> &'static [&'static str] {
        match self {
            LeadField::Score => &["number", "string", "enumeration"],
            LeadField::Source | LeadField::Stage | LeadField::Country => &["string", "enumeration"],
            LeadField::LeadId | LeadField::Summary => &["string"],
        }
    }

    /// The lead's value of this field, as text.
    pub fn text_of(self, lead: &Lead) -> Option<String> {
        match self {
            LeadField::LeadId => Some(lead.id.clone()),
            LeadField::Source => lead.source.clone(),
            LeadField::Score => lead.score.map(|s| s.to_string()),
            LeadField::Stage => Some(lead.stage.to_string()),
            LeadField::Country => lead.country.clone(),
            LeadField::Summary => lead.summary.clone(),
        }
    }
}

/// What duplicate detection looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactQuery {
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A field duplicate detection matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactField {
    Email,
    Phone,
}

impl ContactQuery {
    /// What to look for, in order: the email first (the stronger identity), then the phone.
    pub fn criteria(&self) -> impl Iterator<Item = (ContactField, &str)> {
        [
            (ContactField::Email, self.email.as_deref()),
            (ContactField::Phone, self.phone.as_deref()),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.map(|v| (field, v)))
    }
}

/// Something normalisation had to drop or stand in for. Its text names the field and the
/// problem, never the value, so it is safe to log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadWarning {
    NameMissing,
    EmailDropped(EmailProblem),
    PhoneDropped(PhoneProblem),
    PhoneExtensionDropped,
}

impl fmt::Display for LeadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeadWarning::NameMissing => {
                write!(
                    f,
                    "lead.name is missing or has no letters; the last name is \"{UNKNOWN_NAME}\""
                )
            }
            LeadWarning::EmailDropped(problem) => write!(f, "lead.email dropped: it {problem}"),
            LeadWarning::PhoneDropped(problem) => write!(f, "lead.phone dropped: it {problem}"),
            LeadWarning::PhoneExtensionDropped => {
                f.write_str("lead.phone extension dropped: E.164 cannot carry one")
            }
        }
    }
}

/// A lead's fields once the message is validated, before normalisation.
pub(crate) struct ValidatedLead<'a> {
    pub id: String,
    pub name: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub source: Option<String>,
    pub score: Option<u8>,
    pub stage: LeadStage,
    pub country: Option<String>,
    pub locale: Option<Locale>,
    pub summary: Option<&'a str>,
}

impl Lead {
    pub(crate) fn normalise(fields: ValidatedLead<'_>) -> Lead {
        let mut warnings = Vec::new();

        let name = fields.name.and_then(split_name).unwrap_or_else(|| {
            warnings.push(LeadWarning::NameMissing);
            PersonName::unknown()
        });

        let email = match fields.email.map(normalise_email).transpose() {
            Ok(email) => email.flatten(),
            Err(problem) => {
                warnings.push(LeadWarning::EmailDropped(problem));
                None
            }
        };

        let locale_region = fields.locale.and_then(|l| l.region);
        let hints: Vec<&str> = fields
            .country
            .as_deref()
            .into_iter()
            .chain(locale_region.as_deref())
            .collect();
        let phone = match fields.phone.map(|p| normalise_phone(p, &hints)).transpose() {
            Ok(phone) => phone.flatten().map(|p| {
                if p.extension_dropped {
                    warnings.push(LeadWarning::PhoneExtensionDropped);
                }
                p.number
            }),
            Err(problem) => {
                warnings.push(LeadWarning::PhoneDropped(problem));
                None
            }
        };

        let summary = fields
            .summary
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);

        Lead {
            id: fields.id,
            first_name: name.first,
            last_name: name.last,
            full_name: name.full,
            email,
            phone,
            source: fields.source,
            score: fields.score,
            stage: fields.stage,
            country: fields.country,
            summary,
            warnings,
            occurred_at: None,
        }
    }

    /// What duplicate detection searches the CRM for: the email first, then the phone.
    pub fn contact_query(&self) -> ContactQuery {
        ContactQuery {
            email: self.email.clone(),
            phone: self.phone.clone(),
        }
    }

    /// The name of the lead's deal or opportunity: who, and where it came from.
    pub fn deal_name(&self) -> String {
        format!("{} (LeadRelay)", self.full_name)
    }

    /// The summary as a plain-text CRM note (Zoho and Freshsales notes, Bitrix24 timeline
    /// comments), with [`Lead::summary_facts`] below it; `None` without a summary. Each CRM cuts
    /// it to its own limit.
    pub fn plain_note(&self) -> Option<String> {
        let summary = self.summary.as_deref()?;
        Some(format!(
            "LeadRelay conversation summary\n\n{summary}\n\n{}",
            self.summary_facts()
        ))
    }

    /// What a CRM note says beside the summary: the lead id, source and score. The stage is
    /// left out (it is the deal's business), so a stage change never rewrites the note.
    pub fn summary_facts(&self) -> String {
        let mut facts = vec![format!("Lead: {}", self.id)];
        if let Some(source) = &self.source {
            facts.push(format!("Source: {source}"));
        }
        if let Some(score) = self.score {
            facts.push(format!("Score: {score}/100"));
        }
        facts.join(" · ")
    }

    /// Whether the lead can be matched to an existing CRM contact at all.
    ///
    /// A lead with neither email nor phone is still pushed: it qualified, the sales team must see
    /// it, and the conversation channel (`source`) tells them where to reach it. With nothing to
    /// search the CRM for, duplicate detection for such a lead relies on LeadRelay's lead
    /// mapping (lead id and provider → CRM record ids) only: a replay or an update of the same
    /// lead id updates its records, while the same person arriving under another lead id, or
    /// already in the CRM, becomes a new contact.
    pub fn has_contact_details(&self) -> bool {
        self.email.is_some() || self.phone.is_some()
    }

    /// SHA-256, in lower-case hex, of every field a CRM receives: equal digests mean a replay of
    /// identical content. The encoding is stable (field order, length prefixes, a version tag):
    /// changing it makes every stored digest differ and every lead push again once.
    pub fn digest(&self) -> String {
        let score = self.score.map(|s| s.to_string());
        let fields: [(&str, Option<&str>); 11] = [
            ("id", Some(&self.id)),
            ("first_name", self.first_name.as_deref()),
            ("last_name", Some(&self.last_name)),
            ("full_name", Some(&self.full_name)),
            ("email", self.email.as_deref()),
            ("phone", self.phone.as_deref()),
            ("source", self.source.as_deref()),
            ("score", score.as_deref()),
            ("stage", Some(self.stage.as_str())),
            ("country", self.country.as_deref()),
            ("summary", self.summary.as_deref()),
        ];
        let mut hasher = Sha256::new();
        hasher.update(b"leadrelay-lead-digest-v1");
        for (name, value) in fields {
            hasher.update(name.as_bytes());
            // Length-prefixed and with a presence byte, so that no two leads encode alike
            // (None and Some("") differ; "ab"+"c" and "a"+"bc" differ).
            match value {
                None => hasher.update([0u8]),
                Some(value) => {
                    hasher.update([1u8]);
                    hasher.update((value.len() as u64).to_be_bytes());
                    hasher.update(value.as_bytes());
                }
            }
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Lead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs and panics: say whether personal details are there,
        // never what they are.
        let redacted = |present: bool| if present { "<redacted>" } else { "<none>" };
        f.debug_struct("Lead")
            .field("id", &self.id)
            .field("first_name", &redacted(self.first_name.is_some()))
            .field("last_name", &"<redacted>")
            .field("full_name", &"<redacted>")
            .field("email", &redacted(self.email.is_some()))
            .field("phone", &redacted(self.phone.is_some()))
            .field("source", &self.source)
            .field("score", &self.score)
            .field("stage", &self.stage)
            .field("country", &self.country)
            .field("summary", &redacted(self.summary.is_some()))
            .field("warnings", &self.warnings)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: Option<&'static str>) -> ValidatedLead<'static> {
        ValidatedLead {
            id: "lead-0001".into(),
            name,
            phone: Some("+974 5555 1234"),
            email: Some("Fatima@Example.qa"),
            source: Some("whatsapp".into()),
            score: Some(82),
            stage: LeadStage::Qualified,
            country: Some("QA".into()),
            locale: parse_locale("ar-QA"),
            summary: Some("  Asked about the annual plan.  "),
        }
    }

    fn lead() -> Lead {
        Lead::normalise(fields(Some("Fatima Al-Kuwari")))
    }

    #[test]
    fn a_complete_lead_is_normalised_without_warnings() {
        let lead = lead();
        assert_eq!(lead.first_name.as_deref(), Some("Fatima"));
        assert_eq!(lead.last_name, "Al-Kuwari");
        assert_eq!(lead.full_name, "Fatima Al-Kuwari");
        assert_eq!(lead.email.as_deref(), Some("fatima@example.qa"));
        assert_eq!(lead.phone.as_deref(), Some("+97455551234"));
        assert_eq!(
            lead.summary.as_deref(),
            Some("Asked about the annual plan.")
        );
        assert!(lead.warnings.is_empty());
    }

    #[test]
    fn a_lead_without_a_name_is_called_unknown_and_warned_about() {
        let lead = Lead::normalise(fields(None));
        assert_eq!(
            (lead.first_name.as_deref(), lead.last_name.as_str()),
            (None, "Unknown")
        );
        assert_eq!(lead.full_name, "Unknown");
        assert_eq!(lead.warnings, vec![LeadWarning::NameMissing]);
        let blank = Lead::normalise(fields(Some(" \u{00A0} ")));
        assert_eq!(blank.last_name, "Unknown");
    }

    #[test]
    fn an_unusable_phone_and_email_are_dropped_with_warnings_that_hold_no_values() {
        let mut input = fields(Some("Fatima Al-Kuwari"));
        input.phone = Some("call me 5555");
        input.email = Some("fatima at example.qa");
        let lead = Lead::normalise(input);
        assert_eq!((lead.phone.as_deref(), lead.email.as_deref()), (None, None));
        assert_eq!(
            lead.warnings,
            vec![
                LeadWarning::EmailDropped(EmailProblem::ContainsSpace),
                LeadWarning::PhoneDropped(PhoneProblem::NotValidForRegion),
            ]
        );
        for warning in &lead.warnings {
            let text = warning.to_string();
            assert!(!text.contains("fatima") && !text.contains("5555"), "{text}");
        }
    }

    #[test]
    fn the_locale_region_is_the_phone_hint_when_there_is_no_country() {
        let mut input = fields(Some("Jack Jones"));
        input.country = None;
        input.locale = parse_locale("en-AU");
        input.phone = Some("0412 345 678");
        assert_eq!(
            Lead::normalise(input).phone.as_deref(),
            Some("+61412345678")
        );
    }

    #[test]
    fn a_blank_summary_is_no_summary() {
        let mut input = fields(Some("Fatima Al-Kuwari"));
        input.summary = Some(" \n ");
        assert_eq!(Lead::normalise(input).summary, None);
    }

    #[test]
    fn the_contact_query_carries_the_email_and_phone() {
        assert_eq!(
            lead().contact_query(),
            ContactQuery {
                email: Some("fatima@example.qa".into()),
                phone: Some("+97455551234".into()),
            }
        );
    }

    #[test]
    fn a_lead_with_neither_email_nor_phone_has_no_contact_details() {
        let mut lead = lead();
        assert!(lead.has_contact_details());
        lead.email = None;
        assert!(lead.has_contact_details());
        lead.phone = None;
        assert!(!lead.has_contact_details());
    }

    #[test]
    fn the_digest_is_stable() {
        assert_eq!(lead().digest(), lead().digest());
        assert_eq!(
            lead().digest(),
            PINNED_DIGEST,
            "the digest encoding changed"
        );
    }

    /// Computed independently from the documented encoding; stored digests depend on it.
    const PINNED_DIGEST: &str = "ae62a563055a8bbe5f4bd57f49567899e03b884dd76de05250f466787c535df4";

    #[test]
    fn the_digest_changes_with_every_field_a_crm_receives() {
        let base = lead();
        let changes: Vec<fn(&mut Lead)> = vec![
            |l| l.id.push('x'),
            |l| l.first_name = None,
            |l| l.last_name.push('x'),
            |l| l.full_name.push('x'),
            |l| l.email = None,
            |l| l.phone = None,
            |l| l.source = Some(String::new()),
            |l| l.score = Some(83),
            |l| l.stage = LeadStage::Won,
            |l| l.country = Some("AU".into()),
            |l| l.summary = None,
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut changed = base.clone();
            change(&mut changed);
            assert_ne!(changed.digest(), base.digest(), "change {i}");
        }
    }

    #[test]
    fn warnings_do_not_change_the_digest() {
        let mut warned = lead();
        warned.warnings.push(LeadWarning::NameMissing);
        assert_eq!(warned.digest(), lead().digest());
    }

    #[test]
    fn debug_output_holds_no_personal_details() {
        let text = format!("{:?}", lead());
        for secret in [
            "Fatima",
            "Kuwari",
            "fatima@example.qa",
            "97455551234",
            "annual plan",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("lead-0001"));
    }
}
