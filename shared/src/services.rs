//! Everything a function needs, built once per cold start and shared by every invocation.

use aws_config::BehaviorVersion;

use crate::config::Config;
use crate::error::Error;
use crate::http::HttpClient;
use crate::store::Store;
use crate::vault::Vault;

pub struct Services {
    pub config: Config,
    pub store: Store,
    pub vault: Vault,
    pub http: HttpClient,
    pub sqs: aws_sdk_sqs::Client,
}

impl Services {
    /// Reads the configuration from the environment and builds the clients.
    pub async fn from_env() -> Result<Services, Error> {
        let config = Config::from_env()?;
        Ok(Services::new(config).await)
    }

    /// AWS clients take region, credentials and `AWS_ENDPOINT_URL` from the standard chain, so
    /// local runs against moto need no code path of their own.
    pub async fn new(config: Config) -> Services {
        let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Services::with_aws_config(config, &aws)
    }

    /// With an AWS configuration built elsewhere (tests aim one at a fault-injecting proxy).
    pub fn with_aws_config(config: Config, aws: &aws_config::SdkConfig) -> Services {
        Services {
            store: Store::new(
                aws_sdk_dynamodb::Client::new(aws),
                config.table_name.clone(),
            )
            .with_refresh_shards(config.refresh.shards),
            vault: Vault::new(aws_sdk_kms::Client::new(aws), config.kms_key_id.clone()),
            http: HttpClient::new(&config.http)
                .with_local_routes(config.endpoint_overrides.clone()),
            sqs: aws_sdk_sqs::Client::new(aws),
            config,
        }
    }
}
