//! What of a request may be logged: the origin, the path, and the names of query parameters.

use url::Url;

pub const REDACTED: &str = "[redacted]";

/// `https://host/path?token=[redacted]&x=[redacted]`: query values may be tokens (Zoho's revoke
/// takes `?token=`), so none is printed.
pub fn url_for_log(url: &Url) -> String {
    let mut shown = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    shown.push_str(url.path());
    let keys: Vec<String> = url
        .query_pairs()
        .map(|(k, _)| format!("{k}={REDACTED}"))
        .collect();
    if !keys.is_empty() {
        shown.push('?');
        shown.push_str(&keys.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_userinfo_are_never_shown() {
        let url = Url::parse(
            "https://user:pw@accounts.zoho.eu:8443/oauth/v2/token/revoke?token=1000.abc&x=1",
        )
        .unwrap();
        let shown = url_for_log(&url);
        assert_eq!(
            shown,
            "https://accounts.zoho.eu:8443/oauth/v2/token/revoke?token=[redacted]&x=[redacted]"
        );
        assert!(!shown.contains("1000.abc") && !shown.contains("pw"));
    }
}
