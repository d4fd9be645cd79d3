//! A connection's secrets, in memory only. They are stored encrypted by [`crate::vault`] and
//! never printed: `Debug` shows which secrets are present, never their values.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::VaultError;

#[derive(Clone, Default)]
pub struct Credentials {
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub api_key: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<SecretString>| if s.is_some() { "[redacted]" } else { "none" };
        f.debug_struct("Credentials")
            .field("access_token", &shown(&self.access_token))
            .field("refresh_token", &shown(&self.refresh_token))
            .field("api_key", &shown(&self.api_key))
            .finish()
    }
}

/// The plaintext layout inside a ciphertext. Private: the only way in or out is the vault.
#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
}

impl Credentials {
    pub(crate) fn to_plaintext(&self) -> Vec<u8> {
        let expose = |s: &Option<SecretString>| s.as_ref().map(|v| v.expose_secret().to_string());
        let sealed = Sealed {
            access_token: expose(&self.access_token),
            refresh_token: expose(&self.refresh_token),
            api_key: expose(&self.api_key),
        };
        serde_json::to_vec(&sealed).expect("plain strings always serialise")
    }

    pub(crate) fn from_plaintext(bytes: &[u8]) -> Result<Self, VaultError> {
        let sealed: Sealed = serde_json::from_slice(bytes).map_err(|_| VaultError::Malformed)?;
        Ok(Credentials {
            access_token: sealed.access_token.map(SecretString::from),
            refresh_token: sealed.refresh_token.map(SecretString::from),
            api_key: sealed.api_key.map(SecretString::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let creds = Credentials {
            access_token: Some("at-123".to_string().into()),
            refresh_token: Some("rt-456".to_string().into()),
            api_key: None,
        };
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("at-123") && !shown.contains("rt-456"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn plaintext_round_trips() {
        let creds = Credentials {
            access_token: Some("a".to_string().into()),
            refresh_token: None,
            api_key: Some("k".to_string().into()),
        };
        let back = Credentials::from_plaintext(&creds.to_plaintext()).unwrap();
        assert_eq!(back.access_token.unwrap().expose_secret(), "a");
        assert!(back.refresh_token.is_none());
        assert_eq!(back.api_key.unwrap().expose_secret(), "k");
    }
}
