//! Credentials at rest: KMS `Encrypt`/`Decrypt` under an encryption context that names the
//! tenant and the provider. KMS binds the context into the ciphertext, so a ciphertext copied to
//! another tenant's or provider's row fails to decrypt there.
//!
//! Plaintext is a small JSON document (tokens of a few hundred bytes), well under KMS's 4 KiB
//! limit for direct encryption, so no data key is needed.
//!
//! Opened credentials are kept per warm container ([`CredentialsCache`]), keyed by tenant,
//! provider and the ciphertext's SHA-256: a refresh writes a new ciphertext, so an entry for
//! the old one is never used again. One KMS `Decrypt` per tenant and token lifetime per
//! container, instead of one per lead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::credentials::Credentials;
use crate::error::VaultError;
use crate::identity::TenantId;
use crate::registry::Provider;

/// A KMS ciphertext of a [`Credentials`], as stored in a connection row.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedCredentials(String);

impl SealedCredentials {
    pub fn from_base64(encoded: String) -> Self {
        SealedCredentials(encoded)
    }

    pub fn as_base64(&self) -> &str {
        &self.0
    }

    /// Length of the ciphertext in bytes (what the demo shows instead of any token).
    pub fn len(&self) -> usize {
        STANDARD.decode(&self.0).map(|b| b.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SealedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedCredentials({} bytes)", self.len())
    }
}

#[derive(Clone)]
pub struct Vault {
    kms: aws_sdk_kms::Client,
    key_id: String,
    cache: Arc<CredentialsCache>,
}

/// Entries a container keeps: one per connection it pushes to; the least recently used goes
/// first beyond this.
pub const CACHED_CREDENTIALS: usize = 512;

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: TenantId,
    provider: Provider,
    /// SHA-256 of the ciphertext: the entry is only ever found for the very row it opened.
    ciphertext: [u8; 32],
}

impl CacheKey {
    fn new(tenant: &TenantId, provider: Provider, sealed: &SealedCredentials) -> CacheKey {
        use sha2::{Digest, Sha256};
        CacheKey {
            tenant: tenant.clone(),
            provider,
            ciphertext: Sha256::digest(sealed.as_base64().as_bytes()).into(),
        }
    }
}

/// Opened credentials of this container, bounded (least recently used out). The secrets are
/// `SecretString`s, which `secrecy` zeroizes when dropped: on eviction, on [`Vault::forget`],
/// when a newer ciphertext of the same connection replaces the entry, and with the container.
#[derive(Default)]
pub struct CredentialsCache {
    entries: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    map: HashMap<CacheKey, (Credentials, u64)>,
    clock: u64,
}

impl CredentialsCache {
    fn get(&self, key: &CacheKey) -> Option<Credentials> {
        let mut entries = self.entries.lock().ok()?;
        entries.clock += 1;
        let now = entries.clock;
        let (credentials, used) = entries.map.get_mut(key)?;
        *used = now;
        Some(credentials.clone())
    }

    fn put(&self, key: CacheKey, credentials: Credentials) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // One ciphertext is current per connection: an older one's entry can only be stale.
        entries
            .map
            .retain(|k, _| k.tenant != key.tenant || k.provider != key.provider);
        if entries.map.len() >= CACHED_CREDENTIALS {
            let oldest = entries
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.map.remove(&oldest);
            }
        }
        entries.clock += 1;
        let now = entries.clock;
        entries.map.insert(key, (credentials, now));
    }

    fn forget(&self, tenant: &TenantId, provider: Provider) {
        if let Ok(mut entries) = self.entries.lock() {
            entries
                .map
                .retain(|k, _| &k.tenant != tenant || k.provider != provider);
        }
    }

    /// Entries held (tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn context(tenant: &TenantId, provider: Provider) -> HashMap<String, String> {
    HashMap::from([
        ("tenant_id".to_string(), tenant.as_str().to_string()),
        ("provider".to_string(), provider.slug().to_string()),
    ])
}

impl Vault {
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Vault {
            kms,
            key_id: key_id.into(),
            cache: Arc::default(),
        }
    }

    /// This container's opened credentials.
    pub fn cache(&self) -> &CredentialsCache {
        &self.cache
    }

    /// Drops the connection's opened credentials: the provider refused them (a 401), so the
    /// next use opens the row as it is then.
    pub fn forget(&self, tenant: &TenantId, provider: Provider) {
        self.cache.forget(tenant, provider);
    }

    pub async fn seal(
        &self,
        tenant: &TenantId,
        provider: Provider,
        credentials: &Credentials,
    ) -> Result<SealedCredentials, VaultError> {
        let output = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(credentials.to_plaintext()))
            .set_encryption_context(Some(context(tenant, provider)))
            .send()
            .await
            .map_err(|e| kms_error("Encrypt", e))?;
        let blob = output.ciphertext_blob.ok_or(VaultError::Kms {
            operation: "Encrypt",
            code: "EmptyCiphertext".into(),
            retryable: true,
        })?;
        let sealed = SealedCredentials(STANDARD.encode(blob.into_inner()));
        // The sealing container uses what it just sealed (a refresh) without a Decrypt.
        self.cache.put(
            CacheKey::new(tenant, provider, &sealed),
            credentials.clone(),
        );
        Ok(sealed)
    }

    pub async fn open(
        &self,
        tenant: &TenantId,
        provider: Provider,
        sealed: &SealedCredentials,
    ) -> Result<Credentials, VaultError> {
        let key = CacheKey::new(tenant, provider, sealed);
        if let Some(credentials) = self.cache.get(&key) {
            return Ok(credentials);
        }
        let credentials = self.decrypt(tenant, provider, sealed).await?;
        self.cache.put(key, credentials.clone());
        Ok(credentials)
    }

    async fn decrypt(
        &self,
        tenant: &TenantId,
        provider: Provider,
        sealed: &SealedCredentials,
    ) -> Result<Credentials, VaultError> {
        let bytes = STANDARD
            .decode(sealed.as_base64())
            .map_err(|_| VaultError::Malformed)?;
        let output = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(bytes))
            .set_encryption_context(Some(context(tenant, provider)))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("InvalidCiphertextException") | Some("IncorrectKeyException") => {
                    VaultError::ContextMismatch
                }
                _ => kms_error("Decrypt", e),
            })?;
        let plaintext = output.plaintext.ok_or(VaultError::Malformed)?;
        Credentials::from_plaintext(plaintext.as_ref())
    }
}

fn kms_error<E: ProvideErrorMetadata, R>(
    operation: &'static str,
    error: SdkError<E, R>,
) -> VaultError {
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some("ThrottlingException")
                | Some("KMSInternalException")
                | Some("DependencyTimeoutException")
                | Some("LimitExceededException")
        ),
        _ => false,
    };
    VaultError::Kms {
        operation,
        code: error.code().unwrap_or("dispatch").to_string(),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};

    fn credentials(token: &str) -> Credentials {
        Credentials {
            access_token: Some(SecretString::from(token.to_string())),
            ..Credentials::default()
        }
    }

    fn key(tenant: &str, provider: Provider, ciphertext: &str) -> CacheKey {
        CacheKey::new(
            &TenantId::parse(tenant).unwrap(),
            provider,
            &SealedCredentials::from_base64(ciphertext.to_string()),
        )
    }

    fn token(found: Option<Credentials>) -> Option<String> {
        found.and_then(|c| c.access_token.map(|t| t.expose_secret().to_string()))
    }

    #[test]
    fn an_entry_is_found_only_for_the_ciphertext_it_opened() {
        let cache = CredentialsCache::default();
        cache.put(key("t-1", Provider::Hubspot, "AAAA"), credentials("one"));
        assert_eq!(
            token(cache.get(&key("t-1", Provider::Hubspot, "AAAA"))),
            Some("one".into())
        );
        // A refresh wrote a new ciphertext: no stale hit, and the old entry goes when the new
        // one is put.
        assert!(cache.get(&key("t-1", Provider::Hubspot, "BBBB")).is_none());
        cache.put(key("t-1", Provider::Hubspot, "BBBB"), credentials("two"));
        assert!(cache.get(&key("t-1", Provider::Hubspot, "AAAA")).is_none());
        assert_eq!(cache.len(), 1);
        // Another tenant or provider never shares an entry.
        assert!(cache.get(&key("t-2", Provider::Hubspot, "BBBB")).is_none());
        assert!(cache.get(&key("t-1", Provider::Zoho, "BBBB")).is_none());
        cache.forget(&TenantId::parse("t-1").unwrap(), Provider::Hubspot);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_least_recently_used_entry_goes_beyond_the_bound() {
        let cache = CredentialsCache::default();
        for n in 0..CACHED_CREDENTIALS {
            cache.put(
                key(&format!("t-{n}"), Provider::Hubspot, "AAAA"),
                credentials("x"),
            );
        }
        // Tenant 0 was used again; tenant 1 is now the oldest.
        assert!(cache.get(&key("t-0", Provider::Hubspot, "AAAA")).is_some());
        cache.put(key("t-new", Provider::Hubspot, "AAAA"), credentials("y"));
        assert_eq!(cache.len(), CACHED_CREDENTIALS);
        assert!(cache.get(&key("t-0", Provider::Hubspot, "AAAA")).is_some());
        assert!(cache.get(&key("t-1", Provider::Hubspot, "AAAA")).is_none());
    }
}
