//! The OAuth apps' client credentials, kept in AWS Secrets Manager: one secret per provider,
//! holding `{"client_id": "...", "client_secret": "..."}`, so that a provider is configured in
//! one place and nothing secret is a stack parameter or an environment variable.
//!
//! The functions get only each secret's id (`<PROVIDER>_APP_SECRET_ID`, a name or ARN), read
//! every secret once per cold start (all at once), and read a provider's secret again when its
//! OAuth server refuses the client credentials, so that a rotated secret is picked up without
//! a redeploy ([`OAuthApps::reread_after_refusal`]). A secret that is empty, holds the
//! template's placeholder (both fields empty) or has no value yet leaves its provider
//! unavailable (404 `not_supported`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client as SecretsClient;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::OAuthAppCredentials;
use crate::error::ConfigError;
use crate::registry::Provider;

/// What a provider's secret says.
#[derive(Debug)]
pub enum AppSecret {
    /// Empty, the placeholder, or no value yet: the provider is not offered.
    Unset,
    Set(OAuthAppCredentials),
}

/// Why a secret's value could not be used. Names fields only, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppSecretProblem {
    NotJson,
    ClientIdWithoutSecret,
    SecretWithoutClientId,
}

impl std::fmt::Display for AppSecretProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppSecretProblem::NotJson => {
                "the value is not a JSON object with client_id and client_secret"
            }
            AppSecretProblem::ClientIdWithoutSecret => {
                "client_id is set but client_secret is empty"
            }
            AppSecretProblem::SecretWithoutClientId => {
                "client_secret is set but client_id is empty"
            }
        })
    }
}

#[derive(Deserialize)]
struct AppSecretJson {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: SecretString,
}

impl AppSecret {
    /// Reads a secret's value. Blank, `{}` and `{"client_id": "", "client_secret": ""}` (the
    /// template's placeholder) are unset; one field without the other is a problem.
    pub fn parse(raw: &str) -> Result<AppSecret, AppSecretProblem> {
        if raw.trim().is_empty() {
            return Ok(AppSecret::Unset);
        }
        // An object only: serde would also fill the struct from a JSON array.
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|_| AppSecretProblem::NotJson)?;
        let parsed: AppSecretJson =
            serde_json::from_value(object.into()).map_err(|_| AppSecretProblem::NotJson)?;
        let client_id = parsed.client_id.trim().to_string();
        let has_secret = !parsed.client_secret.expose_secret().trim().is_empty();
        match (client_id.is_empty(), has_secret) {
            (true, false) => Ok(AppSecret::Unset),
            (false, true) => Ok(AppSecret::Set(OAuthAppCredentials {
                client_id,
                client_secret: parsed.client_secret,
            })),
            (false, false) => Err(AppSecretProblem::ClientIdWithoutSecret),
            (true, true) => Err(AppSecretProblem::SecretWithoutClientId),
        }
    }
}

/// Where the secrets are read from again after a refusal.
struct Source {
    client: SecretsClient,
    ids: BTreeMap<Provider, String>,
    /// At most one re-read per provider per this long, so a provider refusing every call (a
    /// secret that is simply wrong) does not turn into a Secrets Manager call per request.
    min_interval: Duration,
}

struct Inner {
    current: RwLock<BTreeMap<Provider, Arc<OAuthAppCredentials>>>,
    source: Option<Source>,
    /// When each provider's secret was last read again; held across the read, so concurrent
    /// refusals wait for the one read in flight and then use what it found.
    rereads: tokio::sync::Mutex<BTreeMap<Provider, Instant>>,
}

/// This deployment's OAuth apps, shared by every invocation of a function (cheap to clone).
#[derive(Clone)]
pub struct OAuthApps {
    inner: Arc<Inner>,
}

impl Default for OAuthApps {
    fn default() -> Self {
        OAuthApps::fixed(BTreeMap::new())
    }
}

/// Which providers are configured and where their secrets are; never a value.
impl std::fmt::Debug for OAuthApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let configured: Vec<Provider> = self.read().keys().copied().collect();
        f.debug_struct("OAuthApps")
            .field("configured", &configured)
            .field("secret_ids", &self.inner.source.as_ref().map(|s| &s.ids))
            .finish()
    }
}

impl OAuthApps {
    /// Credentials given in code (unit tests), never read again.
    pub fn fixed(apps: BTreeMap<Provider, OAuthAppCredentials>) -> OAuthApps {
        OAuthApps {
            inner: Arc::new(Inner {
                current: RwLock::new(apps.into_iter().map(|(p, a)| (p, Arc::new(a))).collect()),
                source: None,
                rereads: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Reads every provider's secret, all at once. A secret that cannot be read (no such
    /// secret is fine: unset) fails the cold start, naming its variable; one whose value is
    /// unusable leaves its provider unavailable, with a warning naming the problem.
    pub async fn load(
        client: SecretsClient,
        ids: BTreeMap<Provider, String>,
        min_interval: Duration,
    ) -> Result<OAuthApps, ConfigError> {
        let reads = ids.iter().map(|(provider, id)| {
            let client = client.clone();
            async move { (*provider, fetch(&client, *provider, id).await) }
        });
        let mut current = BTreeMap::new();
        for (provider, read) in futures::future::join_all(reads).await {
            match read {
                Ok(AppSecret::Set(app)) => {
                    current.insert(provider, Arc::new(app));
                }
                Ok(AppSecret::Unset) => {
                    tracing::info!(provider = %provider, "no client credentials in the app secret; provider not offered");
                }
                Err(FetchError::Unusable(problem)) => {
                    tracing::warn!(provider = %provider, problem = %problem, "the app secret cannot be used; provider not offered");
                }
                Err(FetchError::Read(reason)) => {
                    return Err(ConfigError::Invalid {
                        name: id_variable(provider),
                        reason: format!("the secret could not be read: {reason}"),
                    })
                }
            }
        }
        Ok(OAuthApps {
            inner: Arc::new(Inner {
                current: RwLock::new(current),
                source: Some(Source {
                    client,
                    ids,
                    min_interval,
                }),
                rereads: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Provider, Arc<OAuthAppCredentials>>> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the map is whole.
        self.inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The provider's app as last read; `None`: the provider is not offered.
    pub fn get(&self, provider: Provider) -> Option<Arc<OAuthAppCredentials>> {
        self.read().get(&provider).cloned()
    }

    /// Called when the provider refused the client credentials `used` (`invalid_client` or its
    /// equivalent). Returns credentials worth one more try: ones another caller already read
    /// since, or the secret read again now, if it changed. `None`: nothing new (the secret is
    /// the same, was read again too recently, or could not be read).
    pub async fn reread_after_refusal(
        &self,
        provider: Provider,
        used: &Arc<OAuthAppCredentials>,
    ) -> Option<Arc<OAuthAppCredentials>> {
        let source = self.inner.source.as_ref()?;
        let id = source.ids.get(&provider)?;
        let mut rereads = self.inner.rereads.lock().await;
        if let Some(current) = self.get(provider) {
            if !Arc::ptr_eq(&current, used) && !current.same_as(used) {
                return Some(current);
            }
        }
        let now = Instant::now();
        if rereads
            .get(&provider)
            .is_some_and(|last| now.duration_since(*last) < source.min_interval)
        {
            return None;
        }
        rereads.insert(provider, now);
        match fetch(&source.client, provider, id).await {
            Ok(AppSecret::Set(fresh)) if !fresh.same_as(used) => {
                let fresh = Arc::new(fresh);
                self.inner
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(provider, fresh.clone());
                tracing::info!(provider = %provider, "the app secret changed; using the new client credentials");
                Some(fresh)
            }
            Ok(AppSecret::Set(_)) => {
                tracing::warn!(provider = %provider, "the provider refused the client credentials and the app secret still holds them");
                None
            }
            // Emptied or broken since the cold start: keep what worked before rather than
            // taking the provider away mid-flight; the next cold start applies it.
            Ok(AppSecret::Unset) | Err(FetchError::Unusable(_)) => {
                tracing::warn!(provider = %provider, "the app secret no longer holds usable client credentials");
                None
            }
            Err(FetchError::Read(reason)) => {
                tracing::warn!(provider = %provider, reason = %reason, "the app secret could not be read again");
                None
            }
        }
    }
}

impl OAuthAppCredentials {
    fn same_as(&self, other: &OAuthAppCredentials) -> bool {
        self.client_id == other.client_id
            && self.client_secret.expose_secret() == other.client_secret.expose_secret()
    }
}

/// `<PROVIDER>_APP_SECRET_ID`: the name or ARN of the provider's app secret.
pub fn id_variable(provider: Provider) -> &'static str {
    match provider {
        Provider::Hubspot => "HUBSPOT_APP_SECRET_ID",
        Provider::Zoho => "ZOHO_APP_SECRET_ID",
        Provider::Freshsales => "FRESHSALES_APP_SECRET_ID",
        Provider::Salesforce => "SALESFORCE_APP_SECRET_ID",
        Provider::Bitrix24 => "BITRIX24_APP_SECRET_ID",
        Provider::GoogleSheets => "GOOGLE_SHEETS_APP_SECRET_ID",
    }
}

enum FetchError {
    /// Secrets Manager did not answer with the value (permissions, network). The SDK's error
    /// text names the operation and the error code, never a secret value.
    Read(String),
    Unusable(AppSecretProblem),
}

async fn fetch(
    client: &SecretsClient,
    provider: Provider,
    id: &str,
) -> Result<AppSecret, FetchError> {
    match client.get_secret_value().secret_id(id).send().await {
        Ok(output) => match output.secret_string() {
            Some(raw) => AppSecret::parse(raw).map_err(FetchError::Unusable),
            // A binary secret is not ours to read.
            None => Err(FetchError::Unusable(AppSecretProblem::NotJson)),
        },
        // No such secret, or a secret with no value yet (created without SecretString).
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            tracing::debug!(provider = %provider, "no app secret value");
            Ok(AppSecret::Unset)
        }
        Err(err) => Err(FetchError::Read(
            aws_sdk_secretsmanager::error::DisplayErrorContext(&err).to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(raw: &str) -> OAuthAppCredentials {
        match AppSecret::parse(raw) {
            Ok(AppSecret::Set(app)) => app,
            other => panic!("expected credentials, got {other:?}"),
        }
    }

    #[test]
    fn empty_and_placeholder_values_are_unset() {
        for raw in [
            "",
            "  ",
            "{}",
            r#"{"client_id": "", "client_secret": ""}"#,
            r#"{"client_id": " ", "client_secret": " "}"#,
        ] {
            assert!(
                matches!(AppSecret::parse(raw), Ok(AppSecret::Unset)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_filled_secret_gives_the_credentials() {
        let app = set(r#"{"client_id": " cid ", "client_secret": "cs-1"}"#);
        assert_eq!(app.client_id, "cid");
        assert_eq!(app.client_secret.expose_secret(), "cs-1");
        assert!(!format!("{app:?}").contains("cs-1"));
    }

    #[test]
    fn half_filled_or_foreign_values_are_problems_that_do_not_quote_the_value() {
        let cases = [
            (
                r#"{"client_id": "cid", "client_secret": ""}"#,
                AppSecretProblem::ClientIdWithoutSecret,
            ),
            (
                r#"{"client_secret": "hush-123"}"#,
                AppSecretProblem::SecretWithoutClientId,
            ),
            ("hush-123", AppSecretProblem::NotJson),
            (r#"["hush-123"]"#, AppSecretProblem::NotJson),
        ];
        for (raw, expected) in cases {
            let problem = AppSecret::parse(raw).unwrap_err();
            assert_eq!(problem, expected, "{raw:?}");
            assert!(!problem.to_string().contains("hush-123"));
        }
    }

    #[tokio::test]
    async fn fixed_apps_are_never_read_again() {
        let apps = OAuthApps::fixed(BTreeMap::from([(
            Provider::Hubspot,
            set(r#"{"client_id": "cid", "client_secret": "cs"}"#),
        )]));
        let used = apps.get(Provider::Hubspot).unwrap();
        assert!(apps
            .reread_after_refusal(Provider::Hubspot, &used)
            .await
            .is_none());
        assert!(apps.get(Provider::Zoho).is_none());
        assert!(!format!("{apps:?}").contains("\"cs\""));
    }
}
