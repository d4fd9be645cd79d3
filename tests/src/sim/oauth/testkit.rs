//! HTTP helpers for every provider's OAuth tests: a client that does not
//! follow redirects, PKCE verifiers, the consent screen's redirect (its
//! query), and form posts to token and revoke endpoints.

use std::collections::HashMap;

use axum::http::header;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::Value;

/// A client that leaves redirects to the test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A fresh RFC 7636 code verifier (64 base64url characters).
pub fn verifier() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base + path` with the `standard` query parameters, each replaced by the
/// one of the same name in `extra` (an empty value there removes it), then
/// the rest of `extra`.
pub fn authorize_url(
    base: &str,
    path: &str,
    standard: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> url::Url {
    let mut url = url::Url::parse(&format!("{base}{path}")).unwrap();
    {
        let mut query = url.query_pairs_mut();
        let overridden = |key: &str| extra.iter().any(|(k, _)| *k == key);
        for (key, value) in standard {
            if !overridden(key) {
                query.append_pair(key, value);
            }
        }
        for (key, value) in extra {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
    }
    url
}

/// Open the consent screen (with these extra headers) and return its status
/// and the query of its redirect, which must go to `redirect` (empty when it
/// did not redirect).
pub async fn consent(
    url: url::Url,
    headers: &[(&str, &str)],
    redirect: &str,
) -> (u16, HashMap<String, String>) {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let query = response
        .headers()
        .get(header::LOCATION)
        .map(|location| {
            let location = location.to_str().unwrap();
            assert!(location.starts_with(redirect), "{location}");
            url::Url::parse(location)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    (status, query)
}

/// A consent screen and the app's standard request to it: the
/// authorization-code flow with an S256 challenge and `state=st/ate+1`.
pub struct ConsentRequest<'a> {
    pub base_url: &'a str,
    pub path: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    /// Parameters of the provider's own that every request carries (Google's `access_type`).
    pub more: &'a [(&'a str, &'a str)],
}

impl ConsentRequest<'_> {
    /// Open the consent screen with the challenge of `verifier` and the
    /// standard parameters, as `extra` overrides them (an empty value removes
    /// one): the status and the redirect's query.
    pub async fn open(
        &self,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> (u16, HashMap<String, String>) {
        let challenge = crate::sim::oauth::s256_challenge(verifier);
        let mut standard = vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", "st/ate+1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        standard.extend_from_slice(self.more);
        let url = authorize_url(self.base_url, self.path, &standard, extra);
        consent(url, &[], self.redirect_uri).await
    }
}

/// POST a form (with these extra headers): the status and the JSON body
/// (`Null` when the body is not JSON).
pub async fn post_form(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> (u16, Value) {
    let mut request = client().post(url).form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A string field of a JSON answer, empty when absent.
pub fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key].as_str().unwrap_or_default()
}

/// The form of an authorization-code grant with PKCE (client credentials in the body).
pub fn code_grant<'a>(
    client_id: &'a str,
    client_secret: &'a str,
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
) -> [(&'static str, &'a str); 6] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("client_secret", client_secret),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]
}

/// The form of a refresh-token grant (client credentials in the body).
pub fn refresh_grant<'a>(
    client_id: &'a str,
    client_secret: &'a str,
    refresh_token: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ]
}
