//! A Salesforce connection's hosts: where its user logs in (production, sandbox or the org's My
//! Domain) and the instance its API lives on. Every host is checked against Salesforce's domains
//! before anything is sent to it, and again when read back from the store.

use std::collections::BTreeMap;

use url::Url;

use crate::error::ProviderError;
use crate::oauth::TokenSet;
use crate::provider::LoginChoice;
use crate::registry::{Provider, SALESFORCE};

/// Keys of the connection's `account` map.
pub(super) const LOGIN_ORIGIN: &str = "login_origin";
pub(super) const INSTANCE_URL: &str = "instance_url";
pub(super) const IDENTITY_URL: &str = "identity_url";
pub(super) const ORG_ID: &str = "org_id";
pub(super) const USER_ID: &str = "user_id";

/// Sandboxes log in here; production at the registry's `login.salesforce.com`.
const SANDBOX_LOGIN_HOST: &str = "test.salesforce.com";

fn refused(detail: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Salesforce,
        status: 0,
        code: "untrusted_host".into(),
        message: detail.into(),
    }
}

/// Whether `host` is a Salesforce host: DNS labels under one of the registry's domains.
fn is_salesforce_host(host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    labels_ok
        && SALESFORCE
            .account_host_suffixes
            .iter()
            .any(|suffix| host.ends_with(&format!(".{suffix}")))
}

/// `https://host` for a plain https URL on a Salesforce host; anything with a user, a port, a
/// query or another scheme is refused. With `path_allowed`, the path is ignored (identity URLs).
fn salesforce_origin(raw: &str, path_allowed: bool) -> Result<Url, ProviderError> {
    let url = Url::parse(raw.trim()).map_err(|_| refused("not a URL"))?;
    let plain = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && (path_allowed || matches!(url.path(), "" | "/"))
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(refused("not a plain https origin"));
    }
    let host = url.host_str().ok_or_else(|| refused("no host"))?;
    if !is_salesforce_host(host) {
        return Err(refused("not a Salesforce host"));
    }
    Ok(Url::parse(&format!("https://{}", host.to_ascii_lowercase())).expect("checked host"))
}

/// The login origin for the setup page's choice: the org's My Domain where given, else the
/// sandbox login host, else `None` (production, the registry's host).
pub(super) fn login_origin(choice: &LoginChoice) -> Result<Option<Url>, String> {
    if choice.portal.is_some() {
        return Err("a portal is Bitrix24's; Salesforce takes environment or my_domain".into());
    }
    if let Some(domain) = choice.my_domain.as_deref().filter(|d| !d.trim().is_empty()) {
        return my_domain_origin(domain).map(Some);
    }
    match choice.environment.as_deref().map(str::trim) {
        None | Some("") | Some("production") => Ok(None),
        Some("sandbox") => Ok(Some(
            Url::parse(&format!("https://{SANDBOX_LOGIN_HOST}")).expect("constant host"),
        )),
        Some(_) => Err("environment must be \"production\" or \"sandbox\"".into()),
    }
}

/// The callback's host-naming parameters against the login host the state recorded (or the
/// registry's production login host).
pub(super) fn check_callback_hosts(
    params: &BTreeMap<String, String>,
    login_origin: Option<&Url>,
) -> Result<(), String> {
    let Some(raw) = params.get("sfdc_community_url") else {
        return Ok(());
    };
    let expected = login_origin
        .and_then(Url::host_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| {
            SALESFORCE
                .oauth()
                .map(|o| o.authorize_url)
                .and_then(|u| Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                .unwrap_or_default()
        });
    let named = Url::parse(raw.trim())
        .ok()
        .filter(|u| u.scheme() == "https" && u.port().is_none() && u.username().is_empty())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    match named {
        Some(host) if is_salesforce_host(&host) && host == expected => Ok(()),
        _ => Err("sfdc_community_url is not the login host the consent was sent to".into()),
    }
}

/// The login origin for a My Domain as an admin may paste it: a bare host, a URL, or the
/// Lightning address the browser shows (`acme.lightning.force.com`, which serves the UI and not
/// OAuth, becomes `acme.my.salesforce.com`).
fn my_domain_origin(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| "my_domain is not a host name".to_string())?;
    if url.scheme() != "https" || url.port().is_some() || !url.username().is_empty() {
        return Err("my_domain must be an https Salesforce host".into());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "my_domain names no host".to_string())?
        .to_ascii_lowercase();
    let host = match host.strip_suffix(".lightning.force.com") {
        Some(name) => format!("{name}.my.salesforce.com"),
        None => host,
    };
    if !is_salesforce_host(&host) {
        return Err("my_domain is not a Salesforce host (…my.salesforce.com)".into());
    }
    Ok(Url::parse(&format!("https://{host}")).expect("checked host"))
}

/// The account facts to keep after the code exchange: where the user logged in, the instance
/// and the identity URL (with the org and user ids it names), each checked to be Salesforce's.
pub(super) fn from_tokens(
    tokens: &TokenSet,
    login_origin: Option<&Url>,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let text = |name: &str| tokens.extras.get(name).and_then(|v| v.as_str());
    let instance = salesforce_origin(
        text("instance_url").ok_or_else(|| missing("instance_url"))?,
        false,
    )?;
    let identity_raw = text("id").ok_or_else(|| missing("id"))?;
    salesforce_origin(identity_raw, true)?;
    let identity = Url::parse(identity_raw).map_err(|_| missing("id"))?;
    let ids: Vec<&str> = identity
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let (org, user) = match ids.as_slice() {
        ["id", org, user] if is_record_id(org) && is_record_id(user) => (*org, *user),
        _ => return Err(missing("id")),
    };
    let login = match login_origin {
        Some(origin) => origin.clone(),
        None => Url::parse(SALESFORCE.oauth().expect("OAuth").token_url)
            .expect("registry URL")
            .join("/")
            .expect("origin"),
    };
    Ok(BTreeMap::from([
        (LOGIN_ORIGIN.into(), origin_text(&login)),
        (INSTANCE_URL.into(), origin_text(&instance)),
        (IDENTITY_URL.into(), identity.to_string()),
        (ORG_ID.into(), org.to_string()),
        (USER_ID.into(), user.to_string()),
    ]))
}

/// The account after a refresh: Salesforce names the instance again, and it changes when the
/// org moved; `None` when it did not.
pub(super) fn after_refresh(
    account: &BTreeMap<String, String>,
    tokens: &TokenSet,
) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
    let Some(raw) = tokens.extras.get("instance_url").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let instance = origin_text(&salesforce_origin(raw, false)?);
    if account.get(INSTANCE_URL) == Some(&instance) {
        return Ok(None);
    }
    tracing::info!("the org's instance changed");
    let mut moved = account.clone();
    moved.insert(INSTANCE_URL.into(), instance);
    Ok(Some(moved))
}

/// A stored origin (`login_origin`, `instance_url`), re-checked on use.
pub(super) fn stored_origin(account: &BTreeMap<String, String>, key: &str) -> Option<Url> {
    salesforce_origin(account.get(key)?, false).ok()
}

fn origin_text(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// Salesforce ids are 15 or 18 letters and digits.
fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn missing(field: &str) -> ProviderError {
    ProviderError::Garbage {
        provider: Provider::Salesforce,
        status: 200,
        detail: format!("the token response has no usable `{field}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(environment: Option<&str>, my_domain: Option<&str>) -> LoginChoice {
        LoginChoice {
            environment: environment.map(str::to_string),
            my_domain: my_domain.map(str::to_string),
            portal: None,
        }
    }

    #[test]
    fn the_setup_page_choice_picks_the_login_host() {
        assert_eq!(login_origin(&choice(None, None)).unwrap(), None);
        assert_eq!(
            login_origin(&choice(Some("production"), None)).unwrap(),
            None
        );
        assert_eq!(
            login_origin(&choice(Some("sandbox"), None))
                .unwrap()
                .unwrap()
                .as_str(),
            "https://test.salesforce.com/"
        );
        for (pasted, expected) in [
            ("acme.my.salesforce.com", "https://acme.my.salesforce.com/"),
            (
                "https://ACME--uat.sandbox.my.salesforce.com/lightning/page/home",
                "https://acme--uat.sandbox.my.salesforce.com/",
            ),
            (
                "https://acme.lightning.force.com/lightning/o/Lead/list",
                "https://acme.my.salesforce.com/",
            ),
        ] {
            assert_eq!(
                login_origin(&choice(Some("sandbox"), Some(pasted)))
                    .unwrap()
                    .unwrap()
                    .as_str(),
                expected,
                "{pasted}"
            );
        }
    }

    #[test]
    fn hosts_that_are_not_salesforce_are_refused() {
        for foreign in [
            "acme.my.salesforce.com.evil.example",
            "salesforce.com",
            "evilsalesforce.com",
            "acme.my.salesforce.com:8443",
            "http://acme.my.salesforce.com",
            "https://user@acme.my.salesforce.com",
            "acme_x.my.salesforce.com",
        ] {
            assert!(
                login_origin(&choice(None, Some(foreign))).is_err(),
                "{foreign}"
            );
        }
        assert!(login_origin(&choice(Some("staging"), None)).is_err());
    }

    fn tokens(instance: &str, id: &str) -> TokenSet {
        TokenSet {
            access_token: "t".to_string().into(),
            refresh_token: None,
            expires_at: None,
            extras: serde_json::json!({"instance_url": instance, "id": id})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn the_token_answer_gives_instance_org_and_user() {
        let account = from_tokens(
            &tokens(
                "https://acme.my.salesforce.com",
                "https://login.salesforce.com/id/00D5g000001ACMEAAA/0055g000009XyZAAA2",
            ),
            None,
        )
        .unwrap();
        assert_eq!(account[INSTANCE_URL], "https://acme.my.salesforce.com");
        assert_eq!(account[LOGIN_ORIGIN], "https://login.salesforce.com");
        assert_eq!(account[ORG_ID], "00D5g000001ACMEAAA");
        assert_eq!(account[USER_ID], "0055g000009XyZAAA2");
        assert!(from_tokens(
            &tokens(
                "https://acme.my.salesforce.com.evil.example",
                "https://login.salesforce.com/id/00D5g000001ACMEAAA/0055g000009XyZAAA2"
            ),
            None
        )
        .is_err());
        assert!(from_tokens(
            &tokens(
                "https://acme.my.salesforce.com",
                "https://login.salesforce.com/id/../0055g000009XyZAAA2"
            ),
            None
        )
        .is_err());
    }

    #[test]
    fn a_refresh_naming_another_instance_moves_the_account() {
        let account = BTreeMap::from([(
            INSTANCE_URL.to_string(),
            "https://acme.my.salesforce.com".to_string(),
        )]);
        let same = tokens("https://acme.my.salesforce.com", "");
        assert_eq!(after_refresh(&account, &same).unwrap(), None);
        let moved = tokens("https://acme2.my.salesforce.com", "");
        assert_eq!(
            after_refresh(&account, &moved).unwrap().unwrap()[INSTANCE_URL],
            "https://acme2.my.salesforce.com"
        );
        assert!(after_refresh(&account, &tokens("https://evil.example", "")).is_err());
    }
}
