//! Credentials at rest: KMS `Encrypt`/`Decrypt` under an encryption context that names the
//! tenant and the provider. KMS binds the context into the ciphertext, so a ciphertext copied to
//! another tenant's or provider's row fails to decrypt there.
//!
//! Plaintext is a small JSON document (tokens of a few hundred bytes), well under KMS's 4 KiB
//! limit for direct encryption, so no data key is needed.

use std::collections::HashMap;

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
        }
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
        Ok(SealedCredentials(STANDARD.encode(blob.into_inner())))
    }

    pub async fn open(
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
