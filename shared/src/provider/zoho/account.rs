//! A Zoho connection's data centre: which accounts server and API domain it lives on.
//!
//! The callback's `accounts-server` and the token response's `api_domain` are kept as Zoho
//! gave them (Zoho: "don't rebuild hosts from a location code"), but only once both are known
//! Zoho hosts of the same data centre. A host outside the registry's list is refused before any
//! code or token is sent to it.

use std::collections::BTreeMap;

use url::Url;

use crate::error::ProviderError;
use crate::registry::{DataCentre, Provider, ZOHO};

/// Keys of the connection's `account` map.
pub(super) const ACCOUNTS_SERVER: &str = "accounts_server";
pub(super) const API_DOMAIN: &str = "api_domain";
pub(super) const DATA_CENTRE: &str = "data_centre";

fn refused(detail: &str) -> ProviderError {
    ProviderError::Rejected {
        provider: Provider::Zoho,
        status: 0,
        code: "untrusted_host".into(),
        message: detail.into(),
    }
}

/// A bare `https://host` of one of Zoho's data centres, and that data centre. Anything with a
/// user, a port, a path, a query or another scheme is refused: it is not how Zoho names hosts.
fn zoho_origin(raw: &str, accounts: bool) -> Result<(Url, &'static DataCentre), ProviderError> {
    let url = Url::parse(raw.trim()).map_err(|_| refused("not a URL"))?;
    let plain = url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && matches!(url.path(), "" | "/")
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(refused("not a plain https origin"));
    }
    let host = url.host_str().ok_or_else(|| refused("no host"))?;
    let dc = ZOHO
        .data_centre_of(host)
        .filter(|dc| {
            let expected = if accounts {
                dc.accounts_host
            } else {
                dc.api_host
            };
            host.eq_ignore_ascii_case(expected)
        })
        .ok_or_else(|| refused("not a Zoho host"))?;
    let expected = if accounts {
        dc.accounts_host
    } else {
        dc.api_host
    };
    let origin = Url::parse(&format!("https://{expected}")).expect("registry hosts are valid");
    Ok((origin, dc))
}

/// Where to exchange the code: the callback's `accounts-server`, or the US accounts server
/// when Zoho sent none (a client without multi-DC support).
pub(super) fn token_origin_from_callback(
    params: &BTreeMap<String, String>,
) -> Result<Option<Url>, ProviderError> {
    match params.get("accounts-server") {
        Some(raw) => zoho_origin(raw, true).map(|(origin, _)| Some(origin)),
        None => Ok(None),
    }
}

/// The callback's `accounts-server` and `location` agree with each other and the registry.
pub(super) fn check_callback_hosts(params: &BTreeMap<String, String>) -> Result<(), String> {
    let dc = match params.get("accounts-server") {
        Some(raw) => {
            zoho_origin(raw, true)
                .map_err(|_| "accounts-server is not a Zoho accounts host".to_string())?
                .1
        }
        None => &ZOHO.data_centres[0],
    };
    match params.get("location") {
        Some(location) if !location.eq_ignore_ascii_case(dc.code) => {
            Err("location is not the accounts server's data centre".into())
        }
        _ => Ok(()),
    }
}

/// The account facts to keep: accounts server and API domain, checked to be Zoho's and of the
/// same data centre, and the data centre's code.
pub(super) fn from_connect(
    api_domain: Option<&str>,
    callback_params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let accounts = match callback_params.get("accounts-server") {
        Some(raw) => zoho_origin(raw, true)?,
        None => zoho_origin(
            &format!("https://{}", ZOHO.data_centres[0].accounts_host),
            true,
        )?,
    };
    let api_domain = api_domain.ok_or_else(|| ProviderError::Garbage {
        provider: Provider::Zoho,
        status: 200,
        detail: "token response has no api_domain".into(),
    })?;
    let api = zoho_origin(api_domain, false)?;
    if api.1.code != accounts.1.code {
        return Err(refused(
            "api_domain and accounts-server are in different data centres",
        ));
    }
    Ok(BTreeMap::from([
        (ACCOUNTS_SERVER.to_string(), origin_string(&accounts.0)),
        (API_DOMAIN.to_string(), origin_string(&api.0)),
        (DATA_CENTRE.to_string(), accounts.1.code.to_string()),
    ]))
}

fn origin_string(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}

/// A stored origin, re-checked on every use: a row edited by hand cannot aim a token at
/// another host.
pub(super) fn stored_origin(account: &BTreeMap<String, String>, key: &str) -> Option<Url> {
    let raw = account.get(key)?;
    zoho_origin(raw, key == ACCOUNTS_SERVER)
        .map(|(origin, _)| origin)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(accounts: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("accounts-server".to_string(), accounts.to_string()),
            ("location".to_string(), "au".to_string()),
        ])
    }

    #[test]
    fn every_data_centre_connects_with_its_own_hosts() {
        for dc in ZOHO.data_centres {
            let account = from_connect(
                Some(&format!("https://{}", dc.api_host)),
                &params(&format!("https://{}", dc.accounts_host)),
            )
            .unwrap();
            assert_eq!(account[DATA_CENTRE], dc.code);
            assert_eq!(account[API_DOMAIN], format!("https://{}", dc.api_host));
            assert_eq!(
                stored_origin(&account, ACCOUNTS_SERVER).unwrap().host_str(),
                Some(dc.accounts_host)
            );
        }
    }

    #[test]
    fn foreign_or_odd_accounts_servers_are_refused() {
        for raw in [
            "https://accounts.zoho.com.evil.example",
            "https://evil.example/accounts.zoho.com",
            "http://accounts.zoho.com",
            "https://accounts.zoho.com:8443",
            "https://user@accounts.zoho.com",
            "https://accounts.zoho.com/oauth",
            "https://www.zohoapis.com",
            "accounts.zoho.com",
            "",
        ] {
            assert!(token_origin_from_callback(&params(raw)).is_err(), "{raw}");
        }
        assert_eq!(token_origin_from_callback(&BTreeMap::new()).unwrap(), None);
    }

    #[test]
    fn the_callback_location_must_be_the_accounts_servers_data_centre() {
        assert!(check_callback_hosts(&params("https://accounts.zoho.com.au")).is_ok());
        let mut eu = params("https://accounts.zoho.com.au");
        eu.insert("location".into(), "eu".into());
        assert!(check_callback_hosts(&eu).is_err());
        assert!(check_callback_hosts(&params("https://accounts.zoho.com.au.evil.test")).is_err());
        let us_only = BTreeMap::from([("location".to_string(), "us".to_string())]);
        assert!(check_callback_hosts(&us_only).is_ok());
        let au_only = BTreeMap::from([("location".to_string(), "au".to_string())]);
        assert!(
            check_callback_hosts(&au_only).is_err(),
            "no accounts-server means the US one"
        );
    }

    #[test]
    fn an_api_domain_of_another_data_centre_or_host_is_refused() {
        let au = params("https://accounts.zoho.com.au");
        assert!(from_connect(Some("https://www.zohoapis.eu"), &au).is_err());
        assert!(from_connect(Some("https://www.zohoapis.com.au.evil.example"), &au).is_err());
        assert!(from_connect(Some("https://accounts.zoho.com.au"), &au).is_err());
        assert!(from_connect(None, &au).is_err());
        let us = from_connect(Some("https://www.zohoapis.com"), &BTreeMap::new()).unwrap();
        assert_eq!(us[DATA_CENTRE], "us");
    }
}
