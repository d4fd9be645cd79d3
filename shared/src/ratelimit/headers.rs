//! What a provider's answer says about its rate limit, where the provider documents it:
//! HubSpot's `X-HubSpot-RateLimit-Max / -Remaining` (the ten-secondly window) and Salesforce's
//! `Sforce-Limit-Info: api-usage=N/M` (the daily allocation). The others send nothing
//! documented (docs/rate-limits.md); `Retry-After` is read by the HTTP client for every one.

use reqwest::header::HeaderMap;

use crate::registry::Provider;

/// One window's figures as the provider gave them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Which of the registry's windows (index into `rate_limits`).
    pub window: usize,
    /// The account's limit for that window.
    pub limit: Option<u32>,
    /// Requests left in it.
    pub remaining: Option<u32>,
}

pub fn read(provider: Provider, headers: &HeaderMap) -> Option<Reading> {
    match provider {
        Provider::Hubspot => {
            let limit = number(headers, "x-hubspot-ratelimit-max");
            let remaining = number(headers, "x-hubspot-ratelimit-remaining");
            (limit.is_some() || remaining.is_some()).then_some(Reading {
                window: 0,
                limit,
                remaining,
            })
        }
        Provider::Salesforce => {
            let value = headers.get("sforce-limit-info")?.to_str().ok()?;
            let (used, limit) = api_usage(value)?;
            Some(Reading {
                window: 0,
                limit: Some(limit),
                remaining: Some(limit.saturating_sub(used)),
            })
        }
        _ => None,
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `api-usage=18/5000` among `;`-separated fields (`per-app-api-usage=...` is another field).
fn api_usage(value: &str) -> Option<(u32, u32)> {
    let field = value
        .split(';')
        .map(str::trim)
        .find_map(|f| f.strip_prefix("api-usage="))?;
    let (used, limit) = field.split_once('/')?;
    Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hubspot_headers() {
        let h = headers(&[
            ("x-hubspot-ratelimit-max", "190"),
            ("x-hubspot-ratelimit-remaining", "42"),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000"),
        ]);
        assert_eq!(
            read(Provider::Hubspot, &h),
            Some(Reading {
                window: 0,
                limit: Some(190),
                remaining: Some(42)
            })
        );
        // Search answers carry none.
        assert_eq!(read(Provider::Hubspot, &HeaderMap::new()), None);
    }

    #[test]
    fn salesforce_api_usage() {
        let h = headers(&[(
            "sforce-limit-info",
            "api-usage=10018/100000; per-app-api-usage=17/250(appName=x)",
        )]);
        assert_eq!(
            read(Provider::Salesforce, &h),
            Some(Reading {
                window: 0,
                limit: Some(100_000),
                remaining: Some(89_982)
            })
        );
        let spent = headers(&[("sforce-limit-info", "api-usage=15001/15000")]);
        assert_eq!(
            read(Provider::Salesforce, &spent).unwrap().remaining,
            Some(0)
        );
        let odd = headers(&[("sforce-limit-info", "per-app-api-usage=1/2")]);
        assert_eq!(read(Provider::Salesforce, &odd), None);
    }
}
