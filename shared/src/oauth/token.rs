//! What a token endpoint answers, in the shapes the `oauth2` crate needs, and our own
//! [`TokenSet`] that the rest of the code uses.

use std::fmt;

use chrono::{DateTime, Utc};
use oauth2::basic::BasicTokenType;
use oauth2::{ErrorResponse, ExtraTokenFields, StandardTokenResponse, TokenResponse as _};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ProviderError;
use crate::registry::Provider;

/// Fields of a token response beyond RFC 6749: HubSpot's `hub_id`, Zoho's `api_domain`,
/// Salesforce's `instance_url` and `id`, Bitrix24's `client_endpoint` and `member_id`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ProviderExtras {
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// Only the names: some providers put an `id_token` among the extras.
impl fmt::Debug for ProviderExtras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.fields.keys()).finish()
    }
}

impl ExtraTokenFields for ProviderExtras {}

pub type ProviderTokenResponse = StandardTokenResponse<ProviderExtras, BasicTokenType>;

/// A token endpoint's error body in any of the shapes seen: RFC 6749 (`error`,
/// `error_description`) and HubSpot's (`status`, `message`, `category`).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenEndpointError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl TokenEndpointError {
    /// The most specific machine code present.
    pub fn code(&self) -> String {
        self.error
            .clone()
            .or_else(|| self.status.clone().filter(|s| s != "error"))
            .or_else(|| self.category.clone())
            .unwrap_or_else(|| "unknown_error".into())
    }

    /// The grant (authorization code or refresh token) is dead: reconnecting is the only cure.
    pub fn is_invalid_grant(&self) -> bool {
        let code = self.code();
        matches!(
            code.as_str(),
            "invalid_grant"
                | "invalid_code"
                | "BAD_REFRESH_TOKEN"
                | "BAD_AUTH_CODE"
                | "expired_token"
                // Bitrix24: the app's trial or paid period ended; nothing works until it is paid.
                | "PAYMENT_REQUIRED"
        )
    }

    fn is_present(&self) -> bool {
        self.error.is_some() || (self.status.is_some() && self.message.is_some())
    }
}

/// Codes only: descriptions are provider prose and are kept out of messages.
impl fmt::Display for TokenEndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

impl fmt::Debug for TokenEndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenEndpointError({})", self.code())
    }
}

impl ErrorResponse for TokenEndpointError {}

/// Tokens from a successful exchange or refresh. Not `Debug`-printable beyond presence.
pub struct TokenSet {
    pub access_token: SecretString,
    /// `None` when the provider did not send one: keep the stored one then.
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Non-secret extras (see [`ProviderExtras`]); `id_token` is dropped.
    pub extras: Map<String, Value>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("extras", &self.extras.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TokenSet {
    pub(crate) fn from_response(
        response: ProviderTokenResponse,
        default_lifetime: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> TokenSet {
        let lifetime = response.expires_in().or(default_lifetime);
        let mut extras = response.extra_fields().fields.clone();
        extras.remove("id_token");
        TokenSet {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
            expires_at: lifetime
                .and_then(|l| chrono::Duration::from_std(l).ok())
                .map(|l| now + l),
            extras,
        }
    }
}

type TokenRequestError = oauth2::RequestTokenError<ProviderError, TokenEndpointError>;

/// Turns the `oauth2` crate's error into ours without carrying any response body along.
pub(crate) fn classify_token_error(provider: Provider, error: TokenRequestError) -> ProviderError {
    match error {
        oauth2::RequestTokenError::ServerResponse(body) => from_error_body(provider, 400, &body),
        oauth2::RequestTokenError::Request(inner) => inner,
        oauth2::RequestTokenError::Parse(parse, body) => {
            // Some providers (Zoho) answer HTTP 200 with an error body.
            match serde_json::from_slice::<TokenEndpointError>(&body) {
                Ok(err) if err.is_present() => from_error_body(provider, 200, &err),
                _ => ProviderError::Garbage {
                    provider,
                    status: 200,
                    detail: format!("token response unreadable at `{}`", parse.path()),
                },
            }
        }
        oauth2::RequestTokenError::Other(detail) => ProviderError::Garbage {
            provider,
            status: 0,
            detail,
        },
    }
}

fn from_error_body(provider: Provider, status: u16, body: &TokenEndpointError) -> ProviderError {
    if body.is_invalid_grant() {
        ProviderError::InvalidGrant {
            provider,
            code: body.code(),
        }
    } else if matches!(
        body.code().as_str(),
        "invalid_client" | "unauthorized_client"
    ) {
        ProviderError::Unauthorized {
            provider,
            code: body.code(),
        }
    } else {
        ProviderError::Rejected {
            provider,
            status,
            code: body.code(),
            message: "the token endpoint refused the request".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_and_rfc_error_bodies_are_both_understood() {
        let rfc: TokenEndpointError =
            serde_json::from_str(r#"{"error":"invalid_grant","error_description":"bad"}"#).unwrap();
        assert!(rfc.is_invalid_grant());
        let hubspot: TokenEndpointError = serde_json::from_str(
            r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token","correlationId":"x"}"#,
        )
        .unwrap();
        assert!(hubspot.is_invalid_grant());
        assert_eq!(hubspot.to_string(), "BAD_REFRESH_TOKEN");
    }

    #[test]
    fn debug_of_extras_shows_names_only() {
        let extras: ProviderExtras =
            serde_json::from_str(r#"{"hub_id":42,"id_token":"secret-jwt"}"#).unwrap();
        let shown = format!("{extras:?}");
        assert!(
            shown.contains("hub_id") && !shown.contains("secret-jwt"),
            "{shown}"
        );
    }
}
