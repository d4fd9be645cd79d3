//! Counting the AWS calls the relay makes: an interceptor on the real SDK clients (DynamoDB,
//! KMS, SQS, EventBridge) that notes every request just before it goes to moto, retries
//! included. Nothing is mocked: the calls are made and answered as ever.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use shared::config::Config;
use shared::Services;

use crate::context::TestContext;

/// The calls seen so far, each as its `X-Amz-Target` (e.g. `DynamoDB_20120810.Query`,
/// `TrentService.Decrypt`), or the host for a protocol without one.
#[derive(Clone, Debug, Default)]
pub struct AwsCalls(Arc<Mutex<Vec<String>>>);

impl AwsCalls {
    pub fn count(&self) -> usize {
        self.0.lock().expect("calls").len()
    }

    /// The calls since the last `take`, and starts counting afresh.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("calls"))
    }
}

#[derive(Debug)]
struct Counter(AwsCalls);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "AwsCallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let request = context.request();
        let name = request
            .headers()
            .get("x-amz-target")
            .map(str::to_string)
            .unwrap_or_else(|| request.uri().to_string());
        (self.0).0.lock().expect("calls").push(name);
        Ok(())
    }
}

/// Services like the context's (same table, key, queues, simulators and app secrets) whose
/// every AWS client counts its requests, the shared rate limiter's included.
pub fn counted_services(ctx: &TestContext) -> (Services, AwsCalls) {
    let calls = AwsCalls::default();
    let counter = || Counter(calls.clone());
    let mut config = Config::from_lookup(|k| ctx.vars.get(k).cloned()).expect("test configuration");
    config.oauth_apps = ctx.services.config.oauth_apps.clone();
    let mut services = Services::with_oauth_apps(config, &ctx.aws);
    let ddb = || {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&ctx.aws)
                .interceptor(counter())
                .build(),
        )
    };
    services.store = shared::store::Store::new(ddb(), ctx.table.clone())
        .with_refresh_shards(services.config.refresh.shards);
    services.http = shared::http::HttpClient::new(&services.config.http)
        .with_local_routes(services.config.endpoint_overrides.clone())
        .with_limiter(Arc::new(shared::ratelimit::Limiter::new(
            ddb(),
            ctx.table.clone(),
        )));
    services.vault = shared::vault::Vault::new(
        aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&ctx.aws)
                .interceptor(counter())
                .build(),
        ),
        services.config.kms_key_id.clone(),
    );
    services.sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&ctx.aws)
            .interceptor(counter())
            .build(),
    );
    services.events = shared::events::LifecycleEvents::new(
        aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&ctx.aws)
                .interceptor(counter())
                .build(),
        ),
        services.config.event_bus_name.clone(),
    );
    (services, calls)
}
