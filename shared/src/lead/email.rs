//! Email addresses as CRMs match them: trimmed and lower-cased.
//!
//! The check is for a plausible shape, not RFC 5322: the address was typed in a chat, and the
//! point is to keep obvious typos ("fatima at example.qa", "fatima@example") out of the CRM's
//! duplicate detection, not to judge exotic but valid addresses.

/// Longest address SMTP can carry (RFC 5321 path limit less the angle brackets).
const MAX_EMAIL_CHARS: usize = 254;

/// Why an email address was dropped. Never holds the address itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("is longer than 254 characters")]
    TooLong,
    #[error("contains a space or a control character")]
    ContainsSpace,
    #[error("does not have exactly one @")]
    NotOneAt,
    #[error("has nothing before the @")]
    EmptyLocalPart,
    #[error("has no dot in its domain, or a dot at an edge of it")]
    ImplausibleDomain,
}

/// The address trimmed and lower-cased; `Ok(None)` when it is blank.
pub fn normalise_email(raw: &str) -> Result<Option<String>, EmailProblem> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Ok(None);
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(EmailProblem::TooLong);
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailProblem::ContainsSpace);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(EmailProblem::NotOneAt);
    };
    if domain.contains('@') {
        return Err(EmailProblem::NotOneAt);
    }
    if local.is_empty() {
        return Err(EmailProblem::EmptyLocalPart);
    }
    let plausible_domain = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if !plausible_domain {
        return Err(EmailProblem::ImplausibleDomain);
    }
    Ok(Some(email))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        assert_eq!(
            normalise_email("  Fatima@Example.QA \n"),
            Ok(Some("fatima@example.qa".to_string()))
        );
    }

    #[test]
    fn a_blank_email_is_no_email_rather_than_a_problem() {
        assert_eq!(normalise_email(""), Ok(None));
        assert_eq!(normalise_email(" \t "), Ok(None));
    }

    #[test]
    fn implausible_addresses_are_refused_with_the_reason() {
        assert_eq!(
            normalise_email("fatima at example.qa"),
            Err(EmailProblem::ContainsSpace)
        );
        assert_eq!(
            normalise_email("fatima.example.qa"),
            Err(EmailProblem::NotOneAt)
        );
        assert_eq!(
            normalise_email("a@b@example.qa"),
            Err(EmailProblem::NotOneAt)
        );
        assert_eq!(
            normalise_email("@example.qa"),
            Err(EmailProblem::EmptyLocalPart)
        );
        assert_eq!(
            normalise_email("fatima@example"),
            Err(EmailProblem::ImplausibleDomain)
        );
        assert_eq!(
            normalise_email("fatima@.example.qa"),
            Err(EmailProblem::ImplausibleDomain)
        );
        assert_eq!(
            normalise_email("fatima@example..qa"),
            Err(EmailProblem::ImplausibleDomain)
        );
        assert_eq!(
            normalise_email("fatima@example.qa."),
            Err(EmailProblem::ImplausibleDomain)
        );
        let long = format!("{}@example.qa", "a".repeat(250));
        assert_eq!(normalise_email(&long), Err(EmailProblem::TooLong));
    }

    #[test]
    fn international_addresses_are_accepted() {
        assert_eq!(
            normalise_email("Ahmed@مثال.قطر"),
            Ok(Some("ahmed@مثال.قطر".to_string()))
        );
    }

    #[test]
    fn the_reason_never_repeats_the_address() {
        let err = normalise_email("secret.person@nowhere").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
