//! The SOQL the push sends, built from fixed text and escaped literals only: a value never
//! becomes part of a query's syntax, whatever quotes or backslashes it holds.

use crate::lead::ContactQuery;

/// `value` as a SOQL string literal, quotes included. Salesforce's escapes: `\'`, `\"`, `\\`,
/// `\n`, `\r`, `\t`, `\b`, `\f`. Other control characters cannot appear in a literal and are
/// dropped (LeadRelay's emails and E.164 phones never hold any).
pub fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `Email = '…' OR Phone = '…'` for what the query has, or `None` when it has neither.
fn matches_email_or_phone(query: &ContactQuery) -> Option<String> {
    let mut terms = Vec::new();
    if let Some(email) = &query.email {
        terms.push(format!("Email = {}", literal(email)));
    }
    if let Some(phone) = &query.phone {
        terms.push(format!("Phone = {}", literal(phone)));
    }
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// Unconverted leads with the lead's email or phone, oldest first (the one a person would
/// have kept).
pub fn leads_matching(query: &ContactQuery) -> Option<String> {
    matches_email_or_phone(query).map(|terms| {
        format!(
            "SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND ({terms}) \
             ORDER BY CreatedDate ASC LIMIT 10"
        )
    })
}

/// Contacts with the lead's email or phone, oldest first.
pub fn contacts_matching(query: &ContactQuery) -> Option<String> {
    matches_email_or_phone(query).map(|terms| {
        format!(
            "SELECT Id, AccountId, Email, Phone FROM Contact WHERE {terms} \
             ORDER BY CreatedDate ASC LIMIT 10"
        )
    })
}

/// Leads that may be the one a create whose answer was lost made: those with the name, email
/// or phone it was sent with, newest first. The marker that tells which it is sits in
/// `Description`, a long text area that SOQL cannot filter on (only select), so the candidates
/// are narrowed by these fields and the marker is compared by the caller.
pub fn leads_possibly_created(last_name: Option<&str>, query: &ContactQuery) -> Option<String> {
    let mut terms = Vec::new();
    if let Some(name) = last_name {
        terms.push(format!("LastName = {}", literal(name)));
    }
    terms.extend(matches_email_or_phone(query));
    (!terms.is_empty()).then(|| {
        format!(
            "SELECT Id, Description, IsConverted, ConvertedContactId, ConvertedAccountId, \
             ConvertedOpportunityId FROM Lead WHERE {} ORDER BY CreatedDate DESC LIMIT 200",
            terms.join(" OR ")
        )
    })
}

/// The Task whose subject names the LeadRelay lead (Task.Subject is filterable).
pub fn task_with_subject(subject: &str) -> String {
    format!(
        "SELECT Id, WhoId FROM Task WHERE Subject = {} ORDER BY CreatedDate ASC LIMIT 1",
        literal(subject)
    )
}

/// The contact's opportunities, newest first, with the `Description` that carries the marker.
pub fn opportunities_of_contact(contact: &str) -> String {
    format!(
        "SELECT Id, Description FROM Opportunity WHERE ContactId = {} \
         ORDER BY CreatedDate DESC LIMIT 200",
        literal(contact)
    )
}

/// `Field IN ('a', 'b')` of escaped literals, or `None` for no values.
fn in_list(field: &str, values: &[&str]) -> Option<String> {
    (!values.is_empty()).then(|| {
        let literals: Vec<String> = values.iter().map(|v| literal(v)).collect();
        format!("{field} IN ({})", literals.join(", "))
    })
}

/// `Email IN (…) OR Phone IN (…)` for the values given, or `None` when there are none.
fn emails_or_phones(emails: &[&str], phones: &[&str]) -> Option<String> {
    let terms: Vec<String> = [in_list("Email", emails), in_list("Phone", phones)]
        .into_iter()
        .flatten()
        .collect();
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// Most records a batch lookup asks for: an answer this long may have been cut.
pub const BATCH_LOOKUP_LIMIT: usize = 2000;

/// [`leads_matching`] for many leads at once: every unconverted lead with one of the emails or
/// phones, oldest first; the caller tells whose each is.
pub fn leads_matching_any(emails: &[&str], phones: &[&str]) -> Option<String> {
    emails_or_phones(emails, phones).map(|terms| {
        format!(
            "SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND ({terms}) \
             ORDER BY CreatedDate ASC LIMIT {BATCH_LOOKUP_LIMIT}"
        )
    })
}

/// [`contacts_matching`] for many leads at once.
pub fn contacts_matching_any(emails: &[&str], phones: &[&str]) -> Option<String> {
    emails_or_phones(emails, phones).map(|terms| {
        format!(
            "SELECT Id, AccountId, Email, Phone FROM Contact WHERE {terms} \
             ORDER BY CreatedDate ASC LIMIT {BATCH_LOOKUP_LIMIT}"
        )
    })
}

/// [`leads_possibly_created`] for many leads whose creates were lost: every lead with one of
/// the names, emails or phones they were sent with, newest first (markers compared by the
/// caller).
pub fn leads_possibly_created_any(
    last_names: &[&str],
    emails: &[&str],
    phones: &[&str],
) -> Option<String> {
    let terms: Vec<String> = [
        in_list("LastName", last_names),
        in_list("Email", emails),
        in_list("Phone", phones),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!terms.is_empty()).then(|| {
        format!(
            "SELECT Id, Description, IsConverted, ConvertedContactId, ConvertedAccountId, \
             ConvertedOpportunityId FROM Lead WHERE {} ORDER BY CreatedDate DESC \
             LIMIT {BATCH_LOOKUP_LIMIT}",
            terms.join(" OR ")
        )
    })
}

/// The Tasks whose subjects name these LeadRelay leads, oldest first.
pub fn tasks_with_subjects(subjects: &[&str]) -> Option<String> {
    in_list("Subject", subjects).map(|terms| {
        format!(
            "SELECT Id, Subject FROM Task WHERE {terms} ORDER BY CreatedDate ASC \
             LIMIT {BATCH_LOOKUP_LIMIT}"
        )
    })
}

/// The lead status a conversion sets (`Closed - Converted` unless the org renamed it).
pub const CONVERTED_STATUS: &str =
    "SELECT MasterLabel FROM LeadStatus WHERE IsConverted = true ORDER BY SortOrder ASC LIMIT 1";

/// Opportunity stages with whether each is closed, in the org's order.
pub const OPPORTUNITY_STAGES: &str = "SELECT ApiName, MasterLabel, IsClosed, IsWon, SortOrder \
     FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder ASC";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped_never_closing_the_literal() {
        assert_eq!(literal("o'brien@example.com"), r"'o\'brien@example.com'");
        assert_eq!(literal(r"a\' OR Id != '"), r"'a\\\' OR Id != \''");
        assert_eq!(literal("x\"y\nz\t"), r#"'x\"y\nz\t'"#);
        assert_eq!(literal("bell\u{7}"), "'bell'");
    }

    #[test]
    fn duplicate_queries_use_both_keys_and_only_escaped_values() {
        let query = ContactQuery {
            email: Some("o'brien@example.com".into()),
            phone: Some("+97455512345".into()),
        };
        assert_eq!(
            leads_matching(&query).unwrap(),
            "SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND \
             (Email = 'o\\'brien@example.com' OR Phone = '+97455512345') \
             ORDER BY CreatedDate ASC LIMIT 10"
        );
        let phone_only = ContactQuery {
            email: None,
            phone: Some("+61400000000".into()),
        };
        assert_eq!(
            contacts_matching(&phone_only).unwrap(),
            "SELECT Id, AccountId, Email, Phone FROM Contact WHERE Phone = '+61400000000' \
             ORDER BY CreatedDate ASC LIMIT 10"
        );
        let nothing = ContactQuery {
            email: None,
            phone: None,
        };
        assert_eq!(leads_matching(&nothing), None);
    }

    #[test]
    fn batch_lookups_list_escaped_values_and_nothing_for_no_values() {
        assert_eq!(
            leads_matching_any(&["o'brien@example.com", "b@example.com"], &["+61400000000"])
                .unwrap(),
            "SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND \
             (Email IN ('o\\'brien@example.com', 'b@example.com') OR Phone IN ('+61400000000')) \
             ORDER BY CreatedDate ASC LIMIT 2000"
        );
        assert_eq!(
            contacts_matching_any(&[], &["+61400000000"]).unwrap(),
            "SELECT Id, AccountId, Email, Phone FROM Contact WHERE Phone IN ('+61400000000') \
             ORDER BY CreatedDate ASC LIMIT 2000"
        );
        assert_eq!(contacts_matching_any(&[], &[]), None);
        assert!(leads_possibly_created_any(&["Al-Thani"], &[], &[])
            .unwrap()
            .contains("WHERE LastName IN ('Al-Thani') ORDER BY CreatedDate DESC"));
        assert_eq!(
            tasks_with_subjects(&["x [l'1]"]).unwrap(),
            "SELECT Id, Subject FROM Task WHERE Subject IN ('x [l\\'1]') \
             ORDER BY CreatedDate ASC LIMIT 2000"
        );
    }
}
