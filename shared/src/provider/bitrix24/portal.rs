//! A Bitrix24 connection's hosts: the tenant's portal (where the user consents and the REST API
//! lives) and Bitrix24's OAuth server (where codes and refresh tokens go). Both are checked
//! against the registry before anything is sent to them, and again when read back.

use std::collections::BTreeMap;

use url::Url;

use crate::error::ProviderError;
use crate::oauth::TokenSet;
use crate::registry::{Provider, BITRIX24, BITRIX24_OAUTH_SERVERS};

/// Keys of the connection's `account` map.
pub(super) const PORTAL: &str = "portal";
pub(super) const REST_ENDPOINT: &str = "rest_endpoint";
pub(super) const MEMBER_ID: &str = "member_id";
pub(super) const USER_ID: &str = "user_id";
pub(super) const OAUTH_SERVER: &str = "oauth_server";

fn refused(detail: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Bitrix24,
        status: 0,
        code: "untrusted_host".into(),
        message: detail.into(),
    }
}

/// Whether `host` is a cloud portal: exactly one DNS label under one of the registry's zones.
pub(super) fn is_portal_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    BITRIX24.account_host_suffixes.iter().any(|zone| {
        host.strip_suffix(&format!(".{zone}")).is_some_and(|name| {
            !name.is_empty()
                && name.len() <= 63
                && !name.starts_with('-')
                && !name.ends_with('-')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    })
}

/// The portal's origin from what the setup page sends: a host (`acme.bitrix24.com`) or the
/// address the browser shows (`https://acme.bitrix24.com/crm/deal/`).
pub(super) fn portal_origin(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|_| "portal is not a host name".to_string())?;
    if url.scheme() != "https" || url.port().is_some() || !url.username().is_empty() {
        return Err("portal must be an https Bitrix24 address".into());
    }
    let host = url
        .host_str()
        .ok_or_else(|| "portal names no host".to_string())?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !is_portal_host(&host) {
        return Err(
            "portal is not a Bitrix24 cloud address (name.bitrix24.com, .eu, .de, ...)".into(),
        );
    }
    Ok(Url::parse(&format!("https://{host}")).expect("checked host"))
}

/// `https://{server}` for one of Bitrix24's OAuth servers, else a refusal.
pub(super) fn oauth_server_origin(host: &str) -> Result<Url, ProviderError> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if !BITRIX24_OAUTH_SERVERS.contains(&host.as_str()) {
        return Err(refused("not one of Bitrix24's OAuth servers"));
    }
    Ok(Url::parse(&format!("https://{host}")).expect("listed host"))
}

/// The callback's host and account parameters against the portal the state recorded and the
/// registry's lists, before the code is sent anywhere.
pub(super) fn check_callback(
    params: &BTreeMap<String, String>,
    portal: Option<&Url>,
) -> Result<(), String> {
    if let Some(domain) = params.get("domain") {
        let named = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let chosen = portal.and_then(Url::host_str).map(str::to_ascii_lowercase);
        if !is_portal_host(&named) || chosen.is_some_and(|c| c != named) {
            return Err("domain is not the portal chosen at authorize".into());
        }
    }
    if let Some(server) = params.get("server_domain") {
        oauth_server_origin(server)
            .map_err(|_| "server_domain is not one of Bitrix24's OAuth servers".to_string())?;
    }
    if let Some(member) = params.get("member_id") {
        let plain = !member.is_empty()
            && member.len() <= 64
            && member.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain {
            return Err("member_id is not a portal's member id".into());
        }
    }
    Ok(())
}

/// The portal's REST endpoint as the OAuth server names it (`https://acme.bitrix24.com/rest/`),
/// checked to be a portal's.
fn rest_endpoint(raw: &str) -> Result<Url, ProviderError> {
    let url = Url::parse(raw.trim()).map_err(|_| refused("client_endpoint is not a URL"))?;
    let plain = url.scheme() == "https"
        && url.username().is_empty()
        && url.port().is_none()
        && url.query().is_none()
        && url.path().trim_end_matches('/') == "/rest";
    let host = url.host_str().unwrap_or_default();
    if !plain || !is_portal_host(host) {
        return Err(refused(
            "client_endpoint is not a Bitrix24 portal's REST endpoint",
        ));
    }
    Ok(Url::parse(&format!("https://{}/rest/", host.to_ascii_lowercase())).expect("checked"))
}

fn missing(name: &str) -> ProviderError {
    ProviderError::Garbage {
        provider: Provider::Bitrix24,
        status: 200,
        detail: format!("the token answer has no usable `{name}`"),
    }
}

fn text(tokens: &TokenSet, name: &str) -> Option<String> {
    match tokens.extras.get(name)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The account facts to keep after the code exchange. The REST endpoint must be on the portal
/// the setup page chose, which is also the one the callback names; the member id must be the
/// one the callback names.
pub(super) fn from_tokens(
    tokens: &TokenSet,
    callback: &BTreeMap<String, String>,
    portal: Option<&Url>,
    oauth_server: &Url,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let endpoint =
        rest_endpoint(&text(tokens, "client_endpoint").ok_or_else(|| missing("client_endpoint"))?)?;
    let host = endpoint.host_str().unwrap_or_default().to_string();
    let chosen = portal
        .and_then(|p| p.host_str())
        .map(str::to_ascii_lowercase);
    if chosen.as_deref().is_some_and(|c| c != host) {
        return Err(refused(
            "the tokens are for another portal than the one chosen",
        ));
    }
    if let Some(named) = callback.get("domain") {
        if !named.eq_ignore_ascii_case(&host) {
            return Err(refused("the callback named another portal than the tokens"));
        }
    }
    let member = text(tokens, "member_id").ok_or_else(|| missing("member_id"))?;
    if callback.get("member_id").is_some_and(|m| *m != member) {
        return Err(refused(
            "the callback named another member id than the tokens",
        ));
    }
    let mut account = BTreeMap::from([
        (PORTAL.to_string(), host),
        (REST_ENDPOINT.to_string(), endpoint.to_string()),
        (MEMBER_ID.to_string(), member),
        (
            OAUTH_SERVER.to_string(),
            oauth_server.host_str().unwrap_or_default().to_string(),
        ),
    ]);
    if let Some(user) = text(tokens, "user_id") {
        account.insert(USER_ID.to_string(), user);
    }
    Ok(account)
}

/// After a refresh: a portal that was renamed has a new REST endpoint, followed when it is a
/// portal's and the member id (the portal's identity) is unchanged; anything else is ignored
/// and the stored endpoint kept (the refreshed tokens are kept either way).
pub(super) fn after_refresh(
    account: &BTreeMap<String, String>,
    tokens: &TokenSet,
) -> Option<BTreeMap<String, String>> {
    let named = text(tokens, "client_endpoint")?;
    let endpoint = match rest_endpoint(&named) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            tracing::warn!(error = %error, "a refresh named a REST endpoint that is not a portal's; keeping the stored one");
            return None;
        }
    };
    if account.get(REST_ENDPOINT).map(String::as_str) == Some(endpoint.as_str()) {
        return None;
    }
    if text(tokens, "member_id").as_deref() != account.get(MEMBER_ID).map(String::as_str) {
        tracing::warn!("a refresh named another portal; keeping the stored one");
        return None;
    }
    let mut moved = account.clone();
    moved.insert(
        PORTAL.into(),
        endpoint.host_str().unwrap_or_default().to_string(),
    );
    moved.insert(REST_ENDPOINT.into(), endpoint.to_string());
    tracing::info!("the portal has a new address; following it");
    Some(moved)
}

/// A stored URL re-checked before use: the REST endpoint or the OAuth server.
pub(super) fn stored_rest_endpoint(account: &BTreeMap<String, String>) -> Option<Url> {
    rest_endpoint(account.get(REST_ENDPOINT)?).ok()
}

pub(super) fn stored_oauth_server(account: &BTreeMap<String, String>) -> Option<Url> {
    oauth_server_origin(account.get(OAUTH_SERVER)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callback_must_name_the_chosen_portal_and_bitrix24_hosts() {
        let chosen = Url::parse("https://acme.bitrix24.com").unwrap();
        let callback = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let good = callback(&[
            ("domain", "acme.bitrix24.com"),
            ("server_domain", BITRIX24_OAUTH_SERVERS[0]),
            ("member_id", "a1b2c3"),
        ]);
        assert!(check_callback(&good, Some(&chosen)).is_ok());
        for (name, forged) in [
            ("domain", "evil.bitrix24.com.evil.test"),
            ("domain", "acme.bitrix24.com.evil.test"),
            ("domain", "other.bitrix24.com"),
            ("server_domain", "oauth.bitrix.info.evil.test"),
            ("member_id", "../x"),
            ("member_id", ""),
        ] {
            let mut bad = good.clone();
            bad.insert(name.into(), forged.into());
            assert!(
                check_callback(&bad, Some(&chosen)).is_err(),
                "{name}={forged}"
            );
        }
    }

    #[test]
    fn portals_are_one_label_under_a_bitrix24_zone() {
        for ok in [
            "acme.bitrix24.com",
            "ACME.bitrix24.de",
            "souq-1.bitrix24.com.br",
        ] {
            assert!(is_portal_host(ok), "{ok}");
        }
        for bad in [
            "bitrix24.com",
            "a.b.bitrix24.com",
            "acme.bitrix24.com.evil.example",
            "acme-bitrix24.com",
            "acme.bitrix24.example",
            "-acme.bitrix24.com",
            "acme_x.bitrix24.com",
            "",
        ] {
            assert!(!is_portal_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_setup_page_may_send_a_host_or_a_browser_address() {
        assert_eq!(
            portal_origin("https://Acme.bitrix24.eu/crm/deal/kanban/")
                .unwrap()
                .as_str(),
            "https://acme.bitrix24.eu/"
        );
        assert_eq!(
            portal_origin(" acme.bitrix24.com ").unwrap().as_str(),
            "https://acme.bitrix24.com/"
        );
        for bad in [
            "http://acme.bitrix24.com",
            "https://acme.bitrix24.com:8443",
            "https://user@acme.bitrix24.com",
            "crm.example.com",
            "not a host",
        ] {
            assert!(portal_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_bitrix24_oauth_servers_are_trusted() {
        assert!(oauth_server_origin("oauth.bitrix.info").is_ok());
        assert!(oauth_server_origin("oauth.bitrix24.tech").is_ok());
        for bad in [
            "oauth.bitrix.info.evil.example",
            "evil.example",
            "acme.bitrix24.com",
        ] {
            assert!(oauth_server_origin(bad).is_err(), "{bad}");
        }
    }
}
