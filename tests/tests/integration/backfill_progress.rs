//! A backfill's progress on the connection item (moto): counts added by concurrent
//! invocations, never a version bump, kept across a reconnect, and shown by
//! `GET /connections` as `backfill: {pushed, failed, last_pushed_at}`.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use shared::identity::TenantId;
use shared::store::BackfillProgress;
use shared::Provider;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

async fn listed(ctx: &TestContext, tenant: &str) -> serde_json::Value {
    let response = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(tenant, "pro"))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body["connections"][0].clone()
}

/// `Connection.backfill` of infra/openapi.yaml as JSON Schema.
fn backfill_schema() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(&doc["components"]["schemas"]["Connection"]["properties"]["backfill"])
        .unwrap()
}

fn valid(schema: &serde_json::Value, value: &serde_json::Value) -> bool {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("a valid JSON Schema")
        .is_valid(value)
}

#[tokio::test]
async fn backfill_progress_adds_up_without_a_version_bump_and_shows_in_the_list() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let store = &ctx.services.store;
    let before = store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.backfill(), None);
    assert!(listed(&ctx, &tenant).await["backfill"].is_null());

    let first = at("2026-12-01T10:00:00Z");
    store
        .record_backfill_progress(&tenant_id, Provider::Hubspot, 40, 2, first)
        .await
        .unwrap();
    // Ten invocations at once, each adding one batch: none loses another's count.
    let later = first + Duration::minutes(5);
    let writes =
        (0..10).map(|_| store.record_backfill_progress(&tenant_id, Provider::Hubspot, 5, 1, later));
    for result in join_all(writes).await {
        result.unwrap();
    }
    // A batch where every lead failed counts, but nothing was pushed then.
    store
        .record_backfill_progress(
            &tenant_id,
            Provider::Hubspot,
            0,
            3,
            later + Duration::minutes(1),
        )
        .await
        .unwrap();
    // Nothing to add: no write at all.
    store
        .record_backfill_progress(&tenant_id, Provider::Hubspot, 0, 0, Utc::now())
        .await
        .unwrap();

    let after = store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    let expected = BackfillProgress {
        pushed: 90,
        failed: 15,
        last_pushed_at: Some(later),
    };
    assert_eq!(after.backfill(), Some(expected));
    assert_eq!(after.version, before.version, "no version bump");
    assert_eq!(after.credentials, before.credentials);

    let shown = listed(&ctx, &tenant).await;
    assert_eq!(shown["backfill"]["pushed"], 90);
    assert_eq!(shown["backfill"]["failed"], 15);
    assert_eq!(
        at(shown["backfill"]["last_pushed_at"].as_str().unwrap()),
        later
    );
    // As infra/openapi.yaml documents it (the contract test only ever sees `null` here).
    let schema = backfill_schema();
    assert!(valid(&schema, &shown["backfill"]), "{}", shown["backfill"]);
    let mut undocumented = shown["backfill"].clone();
    undocumented["skipped"] = 1.into();
    assert!(!valid(&schema, &undocumented));

    // A reconnect writes the whole row again and keeps the counts.
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "pro").await)["status"],
        "connected"
    );
    let reconnected = store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await
        .unwrap()
        .unwrap();
    assert!(reconnected.version > after.version);
    assert_eq!(reconnected.backfill(), Some(expected));
}

#[tokio::test]
async fn progress_for_a_connection_that_does_not_exist_writes_nothing() {
    let ctx = TestContext::new().await;
    let tenant = TenantId::parse(&TestContext::tenant()).unwrap();
    ctx.services
        .store
        .record_backfill_progress(&tenant, Provider::Zoho, 3, 0, Utc::now())
        .await
        .expect("nothing to record is not an error");
    assert!(ctx
        .services
        .store
        .get_connection(&tenant, Provider::Zoho)
        .await
        .unwrap()
        .is_none());
    assert!(ctx
        .services
        .store
        .list_connections(&tenant)
        .await
        .unwrap()
        .is_empty());
}
