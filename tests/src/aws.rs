//! Creates what the template creates, on any AWS endpoint (moto locally): the single table with
//! its sparse refresh index and TTL, and the credentials KMS key with an alias.

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use shared::store::REFRESH_INDEX;

/// AWS configuration from the environment; refuses to run against real AWS by accident.
pub async fn local_config() -> Result<SdkConfig> {
    std::env::var("AWS_ENDPOINT_URL").context(
        "AWS_ENDPOINT_URL is not set: run through `make test` / `make demo`, which start moto",
    )?;
    // A service's own endpoint (`AWS_ENDPOINT_URL_SQS`, ...) outranks the general one.
    for (name, endpoint) in std::env::vars().filter(|(n, _)| n.starts_with("AWS_ENDPOINT_URL")) {
        anyhow::ensure!(
            endpoint.starts_with("http://127.") || endpoint.starts_with("http://localhost"),
            "{name} must point at a local moto server, not {endpoint}"
        );
    }
    Ok(aws_config::load_defaults(BehaviorVersion::latest()).await)
}

pub async fn create_table(aws: &SdkConfig, table: &str) -> Result<()> {
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let attr = |name: &str, ty: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ty)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, ty: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(ty)
            .build()
            .expect("name and type are set")
    };
    let created = ddb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::S))
        .attribute_definitions(attr("refresh_bucket", ScalarAttributeType::S))
        .attribute_definitions(attr("refresh_due_at", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(REFRESH_INDEX)
                .key_schema(key("refresh_bucket", KeyType::Hash))
                .key_schema(key("refresh_due_at", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("index is complete"),
        )
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if format!("{e:?}").contains("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(anyhow::anyhow!("CreateTable {table}: {e:?}")),
    }
    ddb.update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("ttl")
                .enabled(true)
                .build()
                .expect("spec is complete"),
        )
        .send()
        .await
        .with_context(|| format!("UpdateTimeToLive {table}"))?;
    Ok(())
}

/// A symmetric key; returns its id. With `alias`, the alias is (re)pointed at it.
pub async fn create_key(aws: &SdkConfig, alias: Option<&str>) -> Result<String> {
    let kms = aws_sdk_kms::Client::new(aws);
    let key = kms
        .create_key()
        .description("LeadRelay credentials (local)")
        .send()
        .await
        .context("CreateKey")?;
    let key_id = key
        .key_metadata
        .map(|m| m.key_id)
        .context("CreateKey returned no key")?;
    if let Some(alias) = alias {
        let _ = kms.delete_alias().alias_name(alias).send().await;
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(&key_id)
            .send()
            .await
            .context("CreateAlias")?;
    }
    Ok(key_id)
}
