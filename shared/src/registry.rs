//! The provider registry: every provider's static facts, as data, in one place.
//!
//! Code never spells a provider's URL, scope or limit anywhere else. Local runs and tests point a
//! provider at a simulator with `<PROVIDER>_ENDPOINT_URL` (see [`crate::config`]), which swaps the
//! scheme, host and port of every URL below and keeps the paths.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every destination a tenant can connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Hubspot,
    Zoho,
    Freshsales,
    Salesforce,
    Bitrix24,
    GoogleSheets,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Hubspot,
        Provider::Zoho,
        Provider::Freshsales,
        Provider::Salesforce,
        Provider::Bitrix24,
        Provider::GoogleSheets,
    ];

    /// The identifier used in routes, keys and encryption contexts.
    pub fn slug(self) -> &'static str {
        match self {
            Provider::Hubspot => "hubspot",
            Provider::Zoho => "zoho",
            Provider::Freshsales => "freshsales",
            Provider::Salesforce => "salesforce",
            Provider::Bitrix24 => "bitrix24",
            Provider::GoogleSheets => "google_sheets",
        }
    }

    /// Prefix of this provider's environment variables (`HUBSPOT_CLIENT_ID`, ...).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Provider::Hubspot => "HUBSPOT",
            Provider::Zoho => "ZOHO",
            Provider::Freshsales => "FRESHSALES",
            Provider::Salesforce => "SALESFORCE",
            Provider::Bitrix24 => "BITRIX24",
            Provider::GoogleSheets => "GOOGLE_SHEETS",
        }
    }

    /// Google Sheets is a spreadsheet, every other destination is a CRM (this matters for plans).
    pub fn is_crm(self) -> bool {
        self != Provider::GoogleSheets
    }

    /// The provider's static facts, or `None` while its integration is not built yet.
    pub fn facts(self) -> Option<&'static ProviderFacts> {
        match self {
            Provider::Hubspot => Some(&HUBSPOT),
            Provider::Zoho => Some(&ZOHO),
            Provider::Freshsales => Some(&FRESHSALES),
            Provider::Salesforce => Some(&SALESFORCE),
            Provider::Bitrix24 => Some(&BITRIX24),
            Provider::GoogleSheets => Some(&GOOGLE_SHEETS),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider")]
pub struct UnknownProvider;

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.slug() == s)
            .ok_or(UnknownProvider)
    }
}

/// A provider's static facts.
#[derive(Debug)]
pub struct ProviderFacts {
    pub provider: Provider,
    pub display_name: &'static str,
    pub auth: AuthFacts,
    /// Base of the REST API (for providers with per-tenant hosts, the default or a template).
    pub api_base: &'static str,
    /// Data-centre hosts, for providers that have several (empty otherwise).
    pub data_centres: &'static [DataCentre],
    /// For providers where each account has its own host (`acme.myfreshworks.com`): the
    /// domains such a host must be directly under. Nothing is ever sent to another host.
    pub account_host_suffixes: &'static [&'static str],
    /// The documented request budgets per account, shortest window first (a burst limit and,
    /// where there is one, a daily or hourly allocation). The shared limiter
    /// ([`crate::ratelimit`]) is seeded from these and corrected from the answers' headers.
    pub rate_limits: &'static [RateLimit],
    /// How this provider says "slow down"; the HTTP client reads it to classify answers.
    pub throttle: &'static [ThrottleSignal],
    /// Which CRM account a lead's records live in: lead mappings are kept per account, so a
    /// reconnect to another account never sends anything to a record id of the old one.
    pub account_identity: AccountIdentity,
    /// Where these facts were checked.
    pub docs: &'static str,
}

/// What names the account (portal, org, domain, spreadsheet) a connection writes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountIdentity {
    /// This key of the connection's stored account facts (`hub_id`, `org_id`, `member_id`...).
    AccountFact(&'static str),
    /// The spreadsheet chosen in the settings (Google Sheets: rows, not records).
    Spreadsheet,
}

impl ProviderFacts {
    pub fn oauth(&self) -> Option<&OAuthFacts> {
        match &self.auth {
            AuthFacts::OAuth(o) => Some(o),
            AuthFacts::ApiKey => None,
        }
    }
}

#[derive(Debug)]
pub enum AuthFacts {
    OAuth(OAuthFacts),
    /// The tenant pastes a key; nothing to refresh or revoke.
    ApiKey,
}

/// What a provider does when a refresh token is presented again after it was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenReuse {
    /// The same refresh token keeps working (HubSpot, Zoho, Google): a refresh whose answer
    /// was lost is simply tried again.
    Reusable,
    /// A new refresh token replaces the old one, which stops working.
    Rotating,
    /// As `Rotating`, and presenting the old one revokes the whole grant (Salesforce).
    RotatingRevokesOnReuse,
    /// Each refresh token works once (Bitrix24).
    SingleUse,
}

impl RefreshTokenReuse {
    /// Whether a refresh token, once presented, may be dead: a refresh whose answer was lost
    /// must then never be followed by presenting the same token again.
    pub fn rotates(self) -> bool {
        self != RefreshTokenReuse::Reusable
    }
}

#[derive(Debug)]
pub struct OAuthFacts {
    pub authorize_url: &'static str,
    pub token_url: &'static str,
    /// The revocation endpoint, sent in [`OAuthFacts::revoke_style`].
    pub revoke_url: Option<&'static str>,
    pub revoke_style: RevokeStyle,
    pub introspect_url: Option<&'static str>,
    pub scopes: &'static [&'static str],
    /// How the authorize URL joins scopes: RFC 6749's space, or Zoho's comma.
    pub scope_separator: &'static str,
    /// Extra query parameters the authorize URL needs (e.g. `access_type=offline`).
    pub authorize_params: &'static [(&'static str, &'static str)],
    pub pkce: bool,
    /// The refresh response carries a new refresh token and the old one dies.
    pub rotates_refresh_tokens: bool,
    /// What presenting a refresh token a second time does: whether a refresh whose answer was
    /// lost may simply be tried again, or must never be (see `refresh/lease.rs`).
    pub refresh_token_reuse: RefreshTokenReuse,
    /// How long an unused refresh token lives, where it dies of idleness.
    pub refresh_token_idle_lifetime: Option<Duration>,
    /// Access-token lifetime to assume when the token response gives none.
    pub default_access_token_lifetime: Option<Duration>,
    /// Each consent mints a refresh token and the provider keeps only so many per user and
    /// app, silently deleting the oldest (Zoho: 20): revoke the one a reconnect replaces.
    pub revoke_replaced_refresh_token: bool,
    /// Never mint access tokens more often than this per connection (the provider blocks
    /// clients that do): a refresh asked for sooner waits for the next chance instead.
    pub min_refresh_interval: Option<Duration>,
    /// How the token endpoint takes its parameters.
    pub token_request: TokenRequest,
    /// What the scheduled job refreshes ahead of time.
    pub scheduled_refresh: ScheduledRefresh,
    /// Whether a connection's own login host (a Salesforce sandbox or My Domain) also serves
    /// the token endpoint; `false` where only the consent page moves there (a Bitrix24 portal:
    /// tokens come from Bitrix24's OAuth server).
    pub tokens_at_login_host: bool,
}

/// How a token endpoint takes the grant's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRequest {
    /// RFC 6749: `POST` with a form body.
    FormPost,
    /// Bitrix24's documented form: `GET` with every parameter in the query string.
    QueryGet,
}

/// What the scheduled job refreshes before it is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduledRefresh {
    /// Every access token before it expires, and an idle refresh token before it dies.
    BeforeExpiry,
    /// Only an idle refresh token before it dies; access tokens are refreshed when a push
    /// needs one (Bitrix24 asks integrations not to refresh on a timer and may block those
    /// that do).
    KeepAliveOnly,
}

/// How a revocation request carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStyle {
    /// RFC 7009: a form with `token`, `token_type_hint` and the client credentials.
    Rfc7009Form,
    /// Zoho: `POST {revoke_url}?token=...` with no body.
    TokenInQuery,
}

#[derive(Debug)]
pub struct DataCentre {
    pub code: &'static str,
    pub accounts_host: &'static str,
    pub api_host: &'static str,
}

/// A provider's documented request budget, per installing account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
    pub shape: WindowShape,
}

/// How the provider counts a window, which decides how the limiter may spend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowShape {
    /// Any `window` (rolling): spent in tenths, each capped so that no rolling window of the
    /// provider's can hold more than its limit whatever the phase (see `crate::ratelimit`).
    Rolling,
    /// Counted per window aligned to the Unix epoch (UTC days and hours), or a leaky bucket
    /// whose burst allowance covers a fixed window's edge.
    Fixed,
}

/// One of the shapes in which a provider signals throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleSignal {
    /// Plain HTTP 429, with or without `Retry-After`.
    Status429,
    /// HubSpot: 429 with `policyName` and `X-HubSpot-RateLimit-*` headers, `Retry-After` not
    /// guaranteed; the interval header tells how long the window is.
    HubSpotRateLimitHeaders,
    /// Salesforce: 403 whose error array carries `REQUEST_LIMIT_EXCEEDED`.
    SalesforceRequestLimit,
    /// Bitrix24: 503 with `error: QUERY_LIMIT_EXCEEDED`.
    Bitrix24QueryLimit,
    /// Zoho: 429, non-standard 400s (`TOO_MANY_REQUESTS`), and an HTTP 200 "Access Denied"
    /// from the token endpoint when the minting limit is hit.
    ZohoNonStandard,
}

/// HubSpot. Checked against HubSpot's public OpenAPI specs
/// (`HubSpot/HubSpot-public-api-spec-collection`, `Auth/Oauth/Rollouts/279897/2026-03/oauth.json`:
/// form-encoded token, introspect and revoke endpoints with client credentials in the body; the
/// token response carries `hub_id`) and the changelog retiring `/oauth/v1` on 16 Feb 2027.
pub static HUBSPOT: ProviderFacts = ProviderFacts {
    provider: Provider::Hubspot,
    display_name: "HubSpot",
    auth: AuthFacts::OAuth(OAuthFacts {
        authorize_url: "https://app.hubspot.com/oauth/authorize",
        token_url: "https://api.hubapi.com/oauth/2026-03/token",
        revoke_url: Some("https://api.hubapi.com/oauth/2026-03/token/revoke"),
        revoke_style: RevokeStyle::Rfc7009Form,
        introspect_url: Some("https://api.hubapi.com/oauth/2026-03/token/introspect"),
        scopes: &[
            "oauth",
            "crm.objects.contacts.read",
            "crm.objects.contacts.write",
            "crm.objects.deals.read",
            "crm.objects.deals.write",
            "crm.schemas.contacts.read",
            // Creating the unique `leadrelay_lead_id` property that makes a lost deal or
            // contact create findable (docs/exactly-once/hubspot.md) needs the schema write
            // scopes: https://developers.hubspot.com/docs/methods/deals/create_deal_property
            "crm.schemas.contacts.write",
            "crm.schemas.deals.write",
        ],
        scope_separator: " ",
        authorize_params: &[],
        pkce: true,
        rotates_refresh_tokens: false,
        refresh_token_reuse: RefreshTokenReuse::Reusable,
        refresh_token_idle_lifetime: None,
        default_access_token_lifetime: Some(Duration::from_secs(30 * 60)),
        revoke_replaced_refresh_token: false,
        min_refresh_interval: None,
        token_request: TokenRequest::FormPost,
        scheduled_refresh: ScheduledRefresh::BeforeExpiry,
        tokens_at_login_host: true,
    }),
    api_base: "https://api.hubapi.com",
    data_centres: &[],
    account_host_suffixes: &[],
    // 100 requests per 10 s per app per account (190 on Professional and Enterprise), rolling
    // (`TEN_SECONDLY_ROLLING`); no daily limit for OAuth calls. The floor seeds the limiter and
    // `X-HubSpot-RateLimit-Max` lifts it. The search endpoints allow about 5 per second and
    // send no rate-limit headers. Sources: docs/rate-limits.md.
    rate_limits: &[RateLimit {
        requests: 100,
        window: Duration::from_secs(10),
        shape: WindowShape::Rolling,
    }],
    throttle: &[
        ThrottleSignal::Status429,
        ThrottleSignal::HubSpotRateLimitHeaders,
    ],
    account_identity: AccountIdentity::AccountFact("hub_id"),
    docs: "https://developers.hubspot.com/docs/api/oauth-quickstart-guide",
};

/// Zoho CRM. Every host is per data centre: the browser starts at the US accounts server, Zoho
/// sends it back with `location` and `accounts-server`, and the token response names the
/// `api_domain`. The URLs below are the US ones; a connection's own hosts replace their origin
/// (see `provider::zoho`). Checked: Zoho Accounts multi-DC page; Zoho CRM OAuth and
/// token-validity pages; `zoho/crm-oas` (v8 specs) for the API (see docs/providers/zoho.md).
pub static ZOHO: ProviderFacts = ProviderFacts {
    provider: Provider::Zoho,
    display_name: "Zoho CRM",
    auth: AuthFacts::OAuth(OAuthFacts {
        authorize_url: "https://accounts.zoho.com/oauth/v2/auth",
        token_url: "https://accounts.zoho.com/oauth/v2/token",
        revoke_url: Some("https://accounts.zoho.com/oauth/v2/token/revoke"),
        revoke_style: RevokeStyle::TokenInQuery,
        introspect_url: None,
        scopes: &[
            "ZohoCRM.modules.leads.ALL",
            "ZohoCRM.modules.contacts.ALL",
            "ZohoCRM.modules.deals.ALL",
            "ZohoCRM.modules.notes.ALL",
            "ZohoCRM.modules.accounts.ALL",
            "ZohoCRM.settings.fields.READ",
            "ZohoCRM.settings.layouts.READ",
            "ZohoCRM.settings.pipeline.READ",
            "ZohoCRM.org.READ",
        ],
        // Zoho's authorize page takes `scope` comma-separated.
        scope_separator: ",",
        // Without both, Zoho issues no refresh token (or none on a repeat consent).
        authorize_params: &[("access_type", "offline"), ("prompt", "consent")],
        // Zoho's server-based clients accept PKCE (code_challenge, S256) on /oauth/v2/auth.
        pkce: true,
        // Zoho documents long-lived refresh tokens and no new one on refresh; the product plan
        // says they rotate. Any refresh token a response carries is stored either way, and
        // refreshes are never resent once they may have reached Zoho.
        rotates_refresh_tokens: true,
        refresh_token_reuse: RefreshTokenReuse::Reusable,
        refresh_token_idle_lifetime: None,
        default_access_token_lifetime: Some(Duration::from_secs(60 * 60)),
        revoke_replaced_refresh_token: true,
        // At most 10 access tokens per refresh token per 10 minutes, then blocked for the rest
        // of the window: one a minute can never reach it.
        min_refresh_interval: Some(Duration::from_secs(60)),
        token_request: TokenRequest::FormPost,
        scheduled_refresh: ScheduledRefresh::BeforeExpiry,
        tokens_at_login_host: true,
    }),
    api_base: "https://www.zohoapis.com",
    account_host_suffixes: &[],
    data_centres: &[
        DataCentre {
            code: "us",
            accounts_host: "accounts.zoho.com",
            api_host: "www.zohoapis.com",
        },
        DataCentre {
            code: "eu",
            accounts_host: "accounts.zoho.eu",
            api_host: "www.zohoapis.eu",
        },
        DataCentre {
            code: "in",
            accounts_host: "accounts.zoho.in",
            api_host: "www.zohoapis.in",
        },
        DataCentre {
            code: "au",
            accounts_host: "accounts.zoho.com.au",
            api_host: "www.zohoapis.com.au",
        },
        DataCentre {
            code: "jp",
            accounts_host: "accounts.zoho.jp",
            api_host: "www.zohoapis.jp",
        },
        DataCentre {
            code: "ca",
            accounts_host: "accounts.zohocloud.ca",
            api_host: "www.zohoapis.ca",
        },
        DataCentre {
            code: "cn",
            accounts_host: "accounts.zoho.com.cn",
            api_host: "www.zohoapis.com.cn",
        },
        DataCentre {
            code: "sa",
            accounts_host: "accounts.zoho.sa",
            api_host: "www.zohoapis.sa",
        },
    ],
    // API credits are per organisation per day and depend on the edition and user count; the
    // floor (Free edition) is 5,000 credits a day. Concurrency is also capped per org.
    rate_limits: &[RateLimit {
        requests: 5_000,
        window: Duration::from_secs(24 * 60 * 60),
        shape: WindowShape::Fixed,
    }],
    throttle: &[ThrottleSignal::Status429, ThrottleSignal::ZohoNonStandard],
    account_identity: AccountIdentity::AccountFact("org_id"),
    docs: "https://www.zoho.com/crm/developer/docs/api/v8/",
};

/// Freshsales (Freshworks CRM). The tenant pastes an API key and its account's domain; each
/// account has its own host: `{alias}.myfreshworks.com` (API under `/crm/sales/api`) or, for
/// accounts from before the Freshworks bundle, `{alias}.freshsales.io` (API under `/api`).
/// Checked: Freshworks CRM API reference (developers.freshworks.com/crm/api), Freshworks support
/// articles on API limits (1,000 requests an hour on Growth, 2,000 on Pro, 5,000 on Enterprise,
/// per account; 429 beyond), and open-source integrations (n8n, Airbyte, RudderStack) for shapes.
pub static FRESHSALES: ProviderFacts = ProviderFacts {
    provider: Provider::Freshsales,
    display_name: "Freshsales",
    auth: AuthFacts::ApiKey,
    // Never used as is: every call goes to the account's own host (`provider::freshsales`).
    api_base: "https://myfreshworks.com/crm/sales/api",
    data_centres: &[],
    account_host_suffixes: &["myfreshworks.com", "freshsales.io"],
    // The floor of the per-account hourly limits (paid plans also cap at 400 a minute).
    rate_limits: &[RateLimit {
        requests: 1_000,
        window: Duration::from_secs(60 * 60),
        shape: WindowShape::Rolling,
    }],
    throttle: &[ThrottleSignal::Status429],
    account_identity: AccountIdentity::AccountFact("domain"),
    docs: "https://developers.freshworks.com/crm/api/",
};

/// Salesforce. Every org has its own instance (`instance_url` in the token response) and may
/// have its own login host (My Domain); sandboxes log in at `test.salesforce.com`. The URLs below
/// are the production login host's; a connection's own login host replaces their origin, and its
/// API calls go to its stored instance (see `provider::salesforce`). Checked: Salesforce's
/// OAuth web-server flow, refresh-token rotation and revocation pages, the REST API developer
/// guide (composite, collections, `Sforce-Limit-Info`), the SOAP API's `convertLead()`, and
/// `forcedotcom/sfdx-core` for the host allow-list (docs/providers/salesforce.md).
pub static SALESFORCE: ProviderFacts = ProviderFacts {
    provider: Provider::Salesforce,
    display_name: "Salesforce",
    auth: AuthFacts::OAuth(OAuthFacts {
        authorize_url: "https://login.salesforce.com/services/oauth2/authorize",
        token_url: "https://login.salesforce.com/services/oauth2/token",
        revoke_url: Some("https://login.salesforce.com/services/oauth2/revoke"),
        revoke_style: RevokeStyle::Rfc7009Form,
        introspect_url: Some("https://login.salesforce.com/services/oauth2/introspect"),
        // `refresh_token` is what makes Salesforce issue one (the same as `offline_access`).
        scopes: &["api", "refresh_token"],
        scope_separator: " ",
        authorize_params: &[],
        // Required of partner apps by Salesforce's security review.
        pkce: true,
        // Required of partner apps too; presenting a rotated token revokes the whole grant.
        rotates_refresh_tokens: true,
        refresh_token_reuse: RefreshTokenReuse::RotatingRevokesOnReuse,
        refresh_token_idle_lifetime: None,
        // No `expires_in`: the token lives as long as the org's session timeout, 2 hours by
        // default. `SALESFORCE_SESSION_SECONDS` overrides this per deployment.
        default_access_token_lifetime: Some(Duration::from_secs(2 * 60 * 60)),
        revoke_replaced_refresh_token: false,
        min_refresh_interval: None,
        token_request: TokenRequest::FormPost,
        scheduled_refresh: ScheduledRefresh::BeforeExpiry,
        tokens_at_login_host: true,
    }),
    // Never used as is: every call goes to the connection's instance (`provider::salesforce`).
    api_base: "https://login.salesforce.com/services/data",
    data_centres: &[],
    // Login, My Domain and instance hosts all end in one of these (sfdx-core's allow-list).
    account_host_suffixes: &[
        "salesforce.com",
        "force.com",
        "cloudforce.com",
        "crmforce.mil",
    ],
    // The floor of the rolling 24-hour allocation (Developer Edition: 15,000); Enterprise orgs
    // get 100,000 plus 1,000 per licence. Read live from `Sforce-Limit-Info`.
    rate_limits: &[RateLimit {
        requests: 15_000,
        window: Duration::from_secs(24 * 60 * 60),
        shape: WindowShape::Fixed,
    }],
    throttle: &[ThrottleSignal::SalesforceRequestLimit],
    account_identity: AccountIdentity::AccountFact("org_id"),
    docs: "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/",
};

/// Bitrix24. The user consents on its own portal (`acme.bitrix24.com`, the setup page asks for
/// it); the code is exchanged at Bitrix24's OAuth server, which the callback names in
/// `server_domain` (checked against [`BITRIX24_OAUTH_SERVERS`]); the token answer names the
/// portal's REST endpoint (`client_endpoint`). The URLs below are the default OAuth server's and
/// a placeholder portal's. Checked: Bitrix24's REST documentation (`bitrix24/b24restdocs`:
/// `api-reference/oauth/index.md`, `auto-renewal.md`, the system error list, and the pages of
/// each method used) (docs/providers/bitrix24.md).
pub static BITRIX24: ProviderFacts = ProviderFacts {
    provider: Provider::Bitrix24,
    display_name: "Bitrix24",
    auth: AuthFacts::OAuth(OAuthFacts {
        // Never used as is: the consent happens on the tenant's portal.
        authorize_url: "https://bitrix24.com/oauth/authorize/",
        token_url: "https://oauth.bitrix.info/oauth/token/",
        // Bitrix24 documents no revocation: the portal's admin uninstalls the app.
        revoke_url: None,
        revoke_style: RevokeStyle::Rfc7009Form,
        introspect_url: None,
        // Scopes (`crm`) are fixed when the app is registered, not asked for on consent.
        scopes: &[],
        scope_separator: " ",
        authorize_params: &[],
        // Not documented for Bitrix24's OAuth server.
        pkce: false,
        rotates_refresh_tokens: true,
        refresh_token_reuse: RefreshTokenReuse::SingleUse,
        // PROVIDERS.md and the product plan say 28 days; Bitrix24's current page says 180.
        // The shorter is assumed: a keep-alive every three weeks is far from the timed
        // refreshing Bitrix24 warns against.
        refresh_token_idle_lifetime: Some(Duration::from_secs(28 * 24 * 60 * 60)),
        default_access_token_lifetime: Some(Duration::from_secs(60 * 60)),
        revoke_replaced_refresh_token: false,
        min_refresh_interval: None,
        token_request: TokenRequest::QueryGet,
        scheduled_refresh: ScheduledRefresh::KeepAliveOnly,
        tokens_at_login_host: false,
    }),
    // Never used as is: every call goes to the portal's `client_endpoint`.
    api_base: "https://bitrix24.com/rest",
    data_centres: &[],
    // Cloud portals are `{name}.bitrix24.{zone}`, one label under one of these.
    account_host_suffixes: &[
        "bitrix24.com",
        "bitrix24.eu",
        "bitrix24.de",
        "bitrix24.es",
        "bitrix24.fr",
        "bitrix24.it",
        "bitrix24.pl",
        "bitrix24.uk",
        "bitrix24.in",
        "bitrix24.com.br",
        "bitrix24.com.tr",
        "bitrix24.co",
        "bitrix24.mx",
        "bitrix24.id",
        "bitrix24.jp",
        "bitrix24.cn",
        "bitrix24.vn",
        "bitrix24.kz",
        "bitrix24.by",
        "bitrix24.ru",
        "bitrix24.ua",
    ],
    // Two requests a second per portal on the leaky bucket (a burst of 50), then 503
    // `QUERY_LIMIT_EXCEEDED`; 429 `OPERATION_TIME_LIMIT` when a method's execution time is spent.
    rate_limits: &[RateLimit {
        requests: 2,
        window: Duration::from_secs(1),
        shape: WindowShape::Fixed,
    }],
    throttle: &[
        ThrottleSignal::Status429,
        ThrottleSignal::Bitrix24QueryLimit,
    ],
    account_identity: AccountIdentity::AccountFact("member_id"),
    docs: "https://apidocs.bitrix24.com/",
};

/// Bitrix24's OAuth servers: the only hosts a code or refresh token is ever sent to.
pub const BITRIX24_OAUTH_SERVERS: &[&str] = &[
    "oauth.bitrix.info",
    "oauth.bitrix.com",
    "oauth.bitrix24.tech",
];

/// Google Sheets: Google's OAuth 2.0 for web server apps and the Sheets API v4. An API key
/// cannot write (it only identifies a project for public data), so the tenant connects with
/// OAuth and names its spreadsheet in the settings. Checked: Google's OAuth web-server guide and
/// scope list, the Sheets API v4 discovery document and its `values.append` reference
/// (docs/providers/google_sheets.md).
pub static GOOGLE_SHEETS: ProviderFacts = ProviderFacts {
    provider: Provider::GoogleSheets,
    display_name: "Google Sheets",
    auth: AuthFacts::OAuth(OAuthFacts {
        authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        revoke_url: Some("https://oauth2.googleapis.com/revoke"),
        revoke_style: RevokeStyle::Rfc7009Form,
        introspect_url: None,
        // The narrowest scope that reaches a spreadsheet the user names by URL: `drive.file`
        // covers only files the app created or the user picked in Google's Picker.
        scopes: &["https://www.googleapis.com/auth/spreadsheets"],
        scope_separator: " ",
        // Without both, Google issues no refresh token (or none on a repeat consent).
        authorize_params: &[("access_type", "offline"), ("prompt", "consent")],
        pkce: true,
        rotates_refresh_tokens: false,
        refresh_token_reuse: RefreshTokenReuse::Reusable,
        // A refresh token unused for six months stops working; the schedule refreshes hourly
        // tokens anyway, so this only matters if the schedule stops.
        refresh_token_idle_lifetime: Some(Duration::from_secs(180 * 24 * 60 * 60)),
        default_access_token_lifetime: Some(Duration::from_secs(60 * 60)),
        revoke_replaced_refresh_token: false,
        min_refresh_interval: None,
        token_request: TokenRequest::FormPost,
        scheduled_refresh: ScheduledRefresh::BeforeExpiry,
        tokens_at_login_host: true,
    }),
    api_base: "https://sheets.googleapis.com",
    data_centres: &[],
    account_host_suffixes: &[],
    // Per user per project: 60 requests a minute (300 per project), "refilled every minute":
    // Google meters whole minutes, so a fixed window matches it and lets a batch's few calls
    // through at once (a rolling window in tenths would allow 5 per 6 s).
    rate_limits: &[RateLimit {
        requests: 60,
        window: Duration::from_secs(60),
        shape: WindowShape::Fixed,
    }],
    throttle: &[ThrottleSignal::Status429],
    account_identity: AccountIdentity::Spreadsheet,
    docs: "https://developers.google.com/sheets/api/reference/rest",
};

impl ProviderFacts {
    /// The data centre whose accounts or API host is `host`, if it is one of the provider's.
    pub fn data_centre_of(&self, host: &str) -> Option<&'static DataCentre> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.data_centres
            .iter()
            .find(|dc| dc.accounts_host == host || dc.api_host == host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    #[test]
    fn every_provider_round_trips_through_its_slug() {
        for p in Provider::ALL {
            assert_eq!(p.slug().parse::<Provider>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.slug())
            );
        }
    }

    #[test]
    fn unknown_slugs_are_refused() {
        assert!("HubSpot".parse::<Provider>().is_err());
        assert!("".parse::<Provider>().is_err());
        assert!("hubspot#x".parse::<Provider>().is_err());
    }

    #[test]
    fn zoho_data_centres_are_found_by_either_host_and_nothing_else() {
        assert_eq!(
            ZOHO.data_centre_of("accounts.zoho.com.au").unwrap().code,
            "au"
        );
        assert_eq!(ZOHO.data_centre_of("www.zohoapis.eu").unwrap().code, "eu");
        assert_eq!(
            ZOHO.data_centre_of("ACCOUNTS.ZOHOCLOUD.CA").unwrap().code,
            "ca"
        );
        for foreign in [
            "accounts.zoho.com.evil.example",
            "zoho.com",
            "accounts-zoho.com",
            "",
        ] {
            assert!(ZOHO.data_centre_of(foreign).is_none(), "{foreign}");
        }
        let oauth = ZOHO.oauth().unwrap();
        assert!(oauth.authorize_params.contains(&("access_type", "offline")));
        assert!(oauth.authorize_params.contains(&("prompt", "consent")));
    }

    #[test]
    fn bitrix24_consents_on_the_portal_but_takes_tokens_by_get_from_its_oauth_server() {
        let bitrix = BITRIX24.oauth().unwrap();
        assert!(!bitrix.tokens_at_login_host);
        assert_eq!(bitrix.token_request, TokenRequest::QueryGet);
        assert_eq!(bitrix.scheduled_refresh, ScheduledRefresh::KeepAliveOnly);
        assert!(bitrix.rotates_refresh_tokens);
        let host = Url::parse(bitrix.token_url).unwrap();
        assert!(BITRIX24_OAUTH_SERVERS.contains(&host.host_str().unwrap()));
        assert!(SALESFORCE.oauth().unwrap().tokens_at_login_host);
    }

    #[test]
    fn hubspot_uses_the_2026_03_oauth_endpoints_with_pkce() {
        let oauth = HUBSPOT.oauth().unwrap();
        assert!(oauth.token_url.ends_with("/oauth/2026-03/token"));
        assert!(oauth
            .revoke_url
            .unwrap()
            .ends_with("/oauth/2026-03/token/revoke"));
        assert!(!oauth.token_url.contains("/v1/"));
        assert!(oauth.pkce);
        assert!(!oauth.rotates_refresh_tokens);
    }
}
