//! Everything a function needs, built once per cold start and shared by every invocation.

use aws_config::BehaviorVersion;

use crate::config::secrets::OAuthApps;
use crate::config::Config;
use crate::error::Error;
use crate::events::LifecycleEvents;
use crate::http::HttpClient;
use crate::store::Store;
use crate::vault::Vault;

pub struct Services {
    pub config: Config,
    pub store: Store,
    pub vault: Vault,
    pub http: HttpClient,
    pub sqs: aws_sdk_sqs::Client,
    /// Lifecycle events (off when `EVENT_BUS_NAME` is unset).
    pub events: LifecycleEvents,
}

impl Services {
    /// Reads the configuration from the environment, then the OAuth app secrets it names, and
    /// builds the clients.
    pub async fn from_env() -> Result<Services, Error> {
        let config = Config::from_env()?;
        Services::new(config).await
    }

    /// AWS clients take region, credentials and `AWS_ENDPOINT_URL` from the standard chain, so
    /// local runs against moto need no code path of their own (moto serves Secrets Manager too).
    pub async fn new(config: Config) -> Result<Services, Error> {
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Services::with_aws_config(config, &aws).await
    }

    /// With an AWS configuration built elsewhere (tests aim one at a fault-injecting proxy).
    /// Reads every app secret named in `config`, all at once (see [`OAuthApps::load`]).
    pub async fn with_aws_config(
        mut config: Config,
        aws: &aws_config::SdkConfig,
    ) -> Result<Services, Error> {
        config.oauth_apps = OAuthApps::load(
            aws_sdk_secretsmanager::Client::new(aws),
            config.oauth_app_secret_ids.clone(),
            config.app_secret_reread_interval,
        )
        .await?;
        Ok(Services::with_oauth_apps(config, aws))
    }

    /// With the OAuth apps already in `config` (read by another set of services, which these
    /// then share, re-reads included; or fixed ones in tests). Reads no secret.
    pub fn with_oauth_apps(config: Config, aws: &aws_config::SdkConfig) -> Services {
        let aws = &bounded_aws(aws, config.aws_attempt_timeout);
        Services {
            store: Store::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.table_name.clone(),
            )
            .with_refresh_shards(config.refresh.shards),
            vault: Vault::new(aws_sdk_kms::Client::new(aws), config.kms_key_id.clone()),
            http: with_limiter(
                HttpClient::new(&config.http).with_local_routes(config.endpoint_overrides.clone()),
                aws,
                &config.table_name,
            ),
            sqs: aws_sdk_sqs::Client::new(aws),
            events: LifecycleEvents::new(
                aws_sdk_eventbridge::Client::new(aws),
                config.event_bus_name.clone(),
            ),
            config,
        }
    }
}

/// `aws` with every attempt of an AWS call cut off after `attempt`. The SDK sets no read
/// timeout of its own: a DynamoDB, KMS or SQS answer that never comes would hold the invocation
/// until Lambda kills it, claims and leases held. A cut-off attempt is retried by the SDK's
/// standard retry like any transient failure, and the call fails after its attempts.
pub fn bounded_aws(
    aws: &aws_config::SdkConfig,
    attempt: std::time::Duration,
) -> aws_config::SdkConfig {
    let timeouts = aws
        .timeout_config()
        .map(|t| t.to_builder())
        .unwrap_or_default()
        .operation_attempt_timeout(attempt)
        .build();
    aws.to_builder().timeout_config(timeouts).build()
}

/// The shared rate limit lives in the table; without one (tools, unit tests) calls go
/// unlimited.
fn with_limiter(http: HttpClient, aws: &aws_config::SdkConfig, table: &str) -> HttpClient {
    if table.is_empty() {
        return http;
    }
    http.with_limiter(std::sync::Arc::new(crate::ratelimit::Limiter::new(
        aws_sdk_dynamodb::Client::new(aws),
        table,
    )))
}
