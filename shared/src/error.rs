//! The one error type of the library, and the mapping from it to an HTTP answer.
//!
//! Every variant's `Display` is safe to log: no token, key, code or verifier ever reaches a
//! message. Response bodies use [`Error::public_message`], which is generic for server faults.

use std::time::Duration;

use crate::plan::PlanRequired;
use crate::registry::Provider;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("caller identity missing or invalid: {0}")]
    Unauthorized(&'static str),
    #[error(transparent)]
    PlanRequired(#[from] PlanRequired),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} is not available yet")]
    NotSupported(Provider),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the {provider} connection needs to be reconnected: {reason}")]
    NeedsReauth { provider: Provider, reason: String },
    /// Someone else is doing the same work right now (a refresh, a push of the same lead).
    #[error("busy: {0}")]
    Busy(String),
    #[error("OAuth state rejected: {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Why an OAuth callback's `state` was refused. Each is final: the state is burnt either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state is unknown (forged, or older than its time to live)")]
    Unknown,
    #[error("the state was already used")]
    AlreadyUsed,
    #[error("the state has expired")]
    Expired,
    #[error("the state was issued for another provider")]
    ProviderMismatch,
}

impl StateError {
    /// The `reason` the setup page receives.
    pub fn reason(self) -> &'static str {
        match self {
            StateError::Unknown => "invalid_state",
            StateError::AlreadyUsed => "state_already_used",
            StateError::Expired => "state_expired",
            StateError::ProviderMismatch => "state_provider_mismatch",
        }
    }
}

/// What went wrong talking to a CRM. Built by the shared HTTP client and the OAuth module only.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} throttled the request (retry after {retry_after:?})")]
    Throttled {
        provider: Provider,
        retry_after: Option<Duration>,
    },
    #[error("{provider} is unavailable (HTTP {status})")]
    Unavailable { provider: Provider, status: u16 },
    #[error("{provider} did not answer in time")]
    Timeout { provider: Provider },
    #[error("could not reach {provider}: {source}")]
    Network {
        provider: Provider,
        /// Built with `without_url()`: a URL may carry a token in its query.
        #[source]
        source: reqwest::Error,
    },
    #[error("{provider} rejected the credentials ({code})")]
    Unauthorized { provider: Provider, code: String },
    #[error("{provider} says the grant is gone ({code})")]
    InvalidGrant { provider: Provider, code: String },
    /// `message` is the provider's prose: kept for debugging, left out of `Display` because a
    /// provider may quote the lead's data back.
    #[error("{provider} refused the request (HTTP {status}, {code})")]
    Rejected {
        provider: Provider,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{provider} answered with a body that could not be read (HTTP {status}): {detail}")]
    Garbage {
        provider: Provider,
        status: u16,
        detail: String,
    },
    /// A CRM call succeeded but what it created could not be written down before the next call;
    /// the push stops there so that nothing is created that a retry could not find.
    #[error("the {provider} push's progress could not be saved: {source}")]
    ProgressNotSaved {
        provider: Provider,
        #[source]
        source: Box<Error>,
    },
}

impl ProviderError {
    /// Whether the same call may succeed later (throttling, outages, timeouts, and an unreadable
    /// success or server-error answer, which is what a proxy's error page or a cut connection
    /// looks like). A refusal (4xx) read or unread stays permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Throttled { .. }
            | ProviderError::Unavailable { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Network { .. } => true,
            ProviderError::Garbage { status, .. } => !(400..500).contains(status),
            ProviderError::ProgressNotSaved { source, .. } => source.is_retryable(),
            ProviderError::Unauthorized { .. }
            | ProviderError::InvalidGrant { .. }
            | ProviderError::Rejected { .. } => false,
        }
    }

    pub fn provider(&self) -> Provider {
        match self {
            ProviderError::Throttled { provider, .. }
            | ProviderError::Unavailable { provider, .. }
            | ProviderError::Timeout { provider }
            | ProviderError::Network { provider, .. }
            | ProviderError::Unauthorized { provider, .. }
            | ProviderError::InvalidGrant { provider, .. }
            | ProviderError::Rejected { provider, .. }
            | ProviderError::Garbage { provider, .. }
            | ProviderError::ProgressNotSaved { provider, .. } => *provider,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} failed ({code}): {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
        retryable: bool,
    },
    #[error("a stored {what} is malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// A failed SQS call of the relay's own (re-sending parked leads, fanning out refresh shards).
#[derive(Debug, thiserror::Error)]
#[error("SQS {operation} failed ({code}): {message}")]
pub struct QueueError {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl QueueError {
    /// From an SDK error: always worth another try (the queue is ours and the body was fine).
    pub fn from_sdk(operation: &'static str, error: impl std::error::Error) -> QueueError {
        QueueError {
            operation,
            code: "sqs".into(),
            message: aws_sdk_sqs::error::DisplayErrorContext(error)
                .to_string()
                .chars()
                .take(200)
                .collect(),
            retryable: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("KMS {operation} failed ({code})")]
    Kms {
        operation: &'static str,
        code: String,
        retryable: bool,
    },
    #[error("the credentials cannot be decrypted for this tenant and provider")]
    ContextMismatch,
    #[error("decrypted credentials are malformed")]
    Malformed,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Error {
    /// Whether retrying the whole operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Provider(e) => e.is_retryable(),
            Error::Busy(_) => true,
            Error::Store(StoreError::Aws { retryable, .. }) => *retryable,
            Error::Queue(QueueError { retryable, .. }) => *retryable,
            Error::Vault(VaultError::Kms { retryable, .. }) => *retryable,
            _ => false,
        }
    }

    /// HTTP status for the setup-page API.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::State(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::PlanRequired(_) => 403,
            Error::NotFound(_) | Error::NotSupported(_) => 404,
            Error::Conflict(_) | Error::NeedsReauth { .. } => 409,
            Error::Provider(_) => 502,
            Error::Busy(_) => 503,
            Error::Store(_) | Error::Queue(_) | Error::Vault(_) | Error::Config(_) => 500,
        }
    }

    /// Machine-readable code for the `error` field of a JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) | Error::State(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::PlanRequired(_) => "plan_required",
            Error::NotFound(_) => "not_found",
            Error::NotSupported(_) => "not_supported",
            Error::Conflict(_) => "conflict",
            Error::NeedsReauth { .. } => "needs_reauth",
            Error::Provider(_) => "provider_error",
            Error::Busy(_) => "busy",
            Error::Store(_) | Error::Queue(_) | Error::Vault(_) | Error::Config(_) => "internal",
        }
    }

    /// The message a caller may see. Server-side faults get a generic text; their detail goes to
    /// the logs only.
    pub fn public_message(&self) -> String {
        match self {
            Error::Provider(e) => match e {
                ProviderError::Throttled { provider, .. } => {
                    format!("{provider} is rate limiting requests; try again shortly")
                }
                ProviderError::Unavailable { provider, .. }
                | ProviderError::Timeout { provider }
                | ProviderError::Network { provider, .. }
                | ProviderError::Garbage { provider, .. }
                | ProviderError::ProgressNotSaved { provider, .. } => {
                    format!("{provider} could not be reached; try again shortly")
                }
                ProviderError::Unauthorized { provider, .. }
                | ProviderError::InvalidGrant { provider, .. } => {
                    format!("{provider} no longer accepts this connection; reconnect it")
                }
                ProviderError::Rejected {
                    provider, status, ..
                } => {
                    format!("{provider} refused the request (HTTP {status})")
                }
            },
            Error::Store(_) | Error::Queue(_) | Error::Vault(_) | Error::Config(_) => {
                "internal error; it has been logged".to_string()
            }
            other => other.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
