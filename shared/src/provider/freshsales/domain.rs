//! A Freshsales account's domain, from whatever the tenant pastes: a bare alias (`acme`), a
//! host (`acme.myfreshworks.com`, `acme.freshsales.io`) or a URL copied from the browser
//! (`https://acme.myfreshworks.com/crm/sales/contacts/view/123`). Anything that is not one
//! label directly under a Freshworks CRM domain is refused, so the API key is never sent to a
//! foreign host.

use std::collections::BTreeMap;

use url::Url;

use crate::registry::FRESHSALES;

/// Keys of the connection's `account` map.
pub(super) const DOMAIN: &str = "domain";

/// A validated account host and its API base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDomain {
    /// `acme.myfreshworks.com`.
    pub host: String,
    /// `https://acme.myfreshworks.com/crm/sales/api`, or `https://acme.freshsales.io/api` for a
    /// pre-bundle account.
    pub api_base: Url,
}

/// Why a pasted domain was refused; the message is safe to show (it never holds the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("the domain is empty")]
    Empty,
    #[error("the domain is not a web address")]
    Unreadable,
    /// The input is not repeated: a key pasted into the wrong field must not come back in an
    /// answer or a log line.
    #[error("the domain is not a Freshsales account domain (expected your-company.myfreshworks.com or your-company.freshsales.io)")]
    NotFreshworks,
}

/// The account's domain from what the tenant pasted.
pub fn parse(input: &str) -> Result<AccountDomain, DomainError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("https://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| DomainError::Unreadable)?;
    if !matches!(url.scheme(), "https" | "http")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.port().is_some()
    {
        return Err(DomainError::NotFreshworks);
    }
    let host = url
        .host_str()
        .ok_or(DomainError::Unreadable)?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let refused = || DomainError::NotFreshworks;
    let (alias, suffix) = if host.contains('.') {
        FRESHSALES
            .account_host_suffixes
            .iter()
            .find_map(|suffix| {
                host.strip_suffix(suffix)
                    .and_then(|rest| rest.strip_suffix('.'))
                    .map(|alias| (alias.to_string(), *suffix))
            })
            .ok_or_else(refused)?
    } else {
        // A bare alias: today's accounts live under myfreshworks.com.
        (host.clone(), FRESHSALES.account_host_suffixes[0])
    };
    if !is_label(&alias) {
        return Err(refused());
    }
    let host = format!("{alias}.{suffix}");
    let path = if suffix == "freshsales.io" {
        "/api"
    } else {
        "/crm/sales/api"
    };
    let api_base = Url::parse(&format!("https://{host}{path}")).map_err(|_| refused())?;
    Ok(AccountDomain { host, api_base })
}

/// One DNS label: letters, digits and inner hyphens (aliases may carry a numeric suffix, as in
/// `acme-34234423`).
fn is_label(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 63
        && !alias.starts_with('-')
        && !alias.ends_with('-')
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The stored domain, re-checked on every use.
pub(super) fn stored(account: &BTreeMap<String, String>) -> Option<AccountDomain> {
    parse(account.get(DOMAIN)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(input: &str) -> String {
        parse(input).unwrap().host
    }

    #[test]
    fn every_form_a_tenant_pastes_becomes_the_account_host() {
        assert_eq!(host("acme"), "acme.myfreshworks.com");
        assert_eq!(host("  Acme.MyFreshworks.com. "), "acme.myfreshworks.com");
        assert_eq!(
            host("acme-34234423.myfreshworks.com"),
            "acme-34234423.myfreshworks.com"
        );
        assert_eq!(
            host("https://acme.myfreshworks.com/crm/sales/contacts/view/402174844666?tab=notes"),
            "acme.myfreshworks.com"
        );
        assert_eq!(
            host("http://oldco.freshsales.io/deals"),
            "oldco.freshsales.io"
        );
        assert_eq!(
            parse("acme").unwrap().api_base.as_str(),
            "https://acme.myfreshworks.com/crm/sales/api"
        );
        assert_eq!(
            parse("oldco.freshsales.io").unwrap().api_base.as_str(),
            "https://oldco.freshsales.io/api"
        );
    }

    #[test]
    fn a_refusal_never_repeats_what_was_pasted() {
        let key_in_the_wrong_field = "Xk9fQ2mZ7rT4vB1nL8sW.secret";
        let error = parse(key_in_the_wrong_field).unwrap_err();
        assert!(
            !error.to_string().contains("Xk9fQ2mZ7rT4vB1nL8sW"),
            "{error}"
        );
    }

    #[test]
    fn hosts_outside_freshworks_crm_are_refused() {
        for input in [
            "acme.myfreshworks.com.evil.example",
            "evil.example/acme.myfreshworks.com",
            "myfreshworks.com",
            "a.b.myfreshworks.com",
            "acme.freshdesk.com",
            "acme.freshworks.com",
            "https://user:pw@acme.myfreshworks.com",
            "https://acme.myfreshworks.com:8443",
            "ftp://acme.myfreshworks.com",
            "-acme.myfreshworks.com",
            "acme_co.myfreshworks.com",
            "evilmyfreshworks.com",
            "127.0.0.1",
            "",
            "   ",
        ] {
            assert!(parse(input).is_err(), "{input:?} was accepted");
        }
    }
}
