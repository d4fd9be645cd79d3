//! An OAuth provider's behaviour as data: one [`OAuthPolicy`] per provider
//! (its `oauth_policy(config)`), read by the shared [`super::OAuthServer`]
//! and by the provider's routes.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::{Rng, RngCore};

/// How the token endpoint treats refresh tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// A refresh leaves the refresh token as it was (HubSpot, Google, Zoho).
    Reusable,
    /// Each refresh issues a new refresh token; the old one is refused afterwards.
    Rotating,
    /// As `Rotating`, and presenting an already-rotated token revokes the whole grant, the new
    /// token included (Salesforce's Refresh Token Rotation).
    RotatingReuseRevokesGrant,
    /// Each refresh token works once and only for `lifetime` after it was issued; a used one
    /// is refused without touching the grant (Bitrix24).
    SingleUse { lifetime: Duration },
}

impl Rotation {
    /// Whether a refresh retires the presented token and issues a new one.
    pub fn rotates(self) -> bool {
        !matches!(self, Rotation::Reusable)
    }
}

/// What the token endpoint expects of PKCE (RFC 7636).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkce {
    /// Every authorization request carries an S256 challenge, every exchange its verifier.
    RequiredS256,
    /// A code issued with a challenge needs the verifier; one issued without does not.
    Optional,
    /// Challenges and verifiers are ignored.
    NotSupported,
}

/// Characters a random token is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `A-Z a-z 0-9 - _`.
    Base64Url,
    /// `A-Z a-z 0-9`.
    Alnum,
    /// `0-9 a-f`.
    HexLower,
}

/// The shape of a code or token the server mints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFormat {
    /// A hyphenated UUID v4 (HubSpot's codes and refresh tokens).
    Uuid,
    /// `prefix` followed by `len` random characters of `alphabet`.
    Random {
        prefix: String,
        len: usize,
        alphabet: Alphabet,
    },
}

impl TokenFormat {
    pub fn random(prefix: &str, len: usize, alphabet: Alphabet) -> Self {
        TokenFormat::Random {
            prefix: prefix.to_owned(),
            len,
            alphabet,
        }
    }

    /// A fresh token; `prefix` replaces the format's own when given (a
    /// Salesforce access token starts with its org's id).
    pub fn mint(&self, prefix: Option<&str>) -> String {
        match self {
            TokenFormat::Uuid => uuid::Uuid::new_v4().to_string(),
            TokenFormat::Random {
                prefix: own,
                len,
                alphabet,
            } => {
                let mut out = prefix.unwrap_or(own).to_owned();
                out.push_str(&random_chars(*len, *alphabet));
                out
            }
        }
    }
}

fn random_chars(len: usize, alphabet: Alphabet) -> String {
    let mut rng = rand::thread_rng();
    match alphabet {
        Alphabet::Base64Url => {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            let mut out = URL_SAFE_NO_PAD.encode(bytes);
            out.truncate(len);
            out
        }
        Alphabet::Alnum => (0..len)
            .map(|_| char::from(rng.sample(rand::distributions::Alphanumeric)))
            .collect(),
        Alphabet::HexLower => (0..len)
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect(),
    }
}

/// Where the refresh token goes in a refresh answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshEcho {
    /// The answer always names the refresh token, the same one when it did not rotate (HubSpot).
    Always,
    /// Only a rotated (new) refresh token is sent (Salesforce, Google, Zoho).
    WhenRotated,
}

/// How granted scopes are reported in a token answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeField {
    /// No scope field.
    Omitted,
    /// `"<name>": "a b c"` (RFC 6749 §5.1).
    SpaceSeparated(&'static str),
    /// `"<name>": ["a", "b", "c"]` (HubSpot's `scopes`).
    List(&'static str),
}

/// The common part of a successful token answer; a provider adds its own
/// extra fields (`instance_url`, `api_domain`, `member_id`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerShape {
    /// `token_type`, spelled as the provider spells it; empty: the answer has
    /// none (Bitrix24).
    pub token_type: &'static str,
    /// Whether `expires_in` (seconds) is sent.
    pub expires_in: bool,
    pub refresh_echo: RefreshEcho,
    pub scope: ScopeField,
}

/// On which host the token endpoint lives, relative to the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHost {
    /// The API's own origin (HubSpot's `api.hubapi.com`).
    Api,
    /// A fixed accounts/OAuth host separate from the API (`oauth2.googleapis.com`,
    /// `oauth.bitrix.info`).
    Accounts(&'static str),
    /// The login host the consent ran on, per org or data centre (Salesforce, Zoho).
    Login,
}

/// Where codes are granted and tokens are issued and revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize_path: &'static str,
    pub token_host: TokenHost,
    pub token_path: &'static str,
    /// `None` when the provider has no revocation endpoint.
    pub revoke_path: Option<&'static str>,
}

/// One provider's OAuth authorization server, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthPolicy {
    /// How long an authorization code stays redeemable.
    pub code_lifetime: Duration,
    pub pkce: Pkce,
    pub rotation: Rotation,
    /// Whether a rotation also kills the access tokens of the retired refresh token.
    pub rotation_retires_access: bool,
    /// Whether revoking an access token revokes its whole grant (RFC 7009 allows either;
    /// Salesforce and Google do, HubSpot revokes only that token).
    pub revoking_access_revokes_grant: bool,
    pub access_lifetime: Duration,
    pub code_format: TokenFormat,
    pub access_format: TokenFormat,
    pub refresh_format: TokenFormat,
    pub answer: AnswerShape,
    pub endpoints: Endpoints,
}
