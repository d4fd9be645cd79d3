//! Freshsales through the real handlers: API-key connect (domains, key check, plans), push
//! through moto's SQS into the simulator, a key that stops working, throttling.

use relay_tests::context::TestContext;
use relay_tests::events::ApiEvent;
use relay_tests::queue::lead_message;
use relay_tests::sim::{Fault, FreshsalesRoute};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::store::{Connection, ConnectionStatus};
use shared::Provider;

const HOST: &str = "acme.myfreshworks.com";
const KEY: &str = "Xk9fQ2mZ7rT4vB1nL8sW";

async fn stored(ctx: &TestContext, tenant: &str) -> Option<Connection> {
    ctx.services
        .store
        .get_connection(&TenantId::parse(tenant).unwrap(), Provider::Freshsales)
        .await
        .unwrap()
}

/// A Pro tenant connected to `acme.myfreshworks.com`.
async fn connected(ctx: &TestContext) -> String {
    ctx.freshsales.add_account(HOST, KEY);
    let tenant = TestContext::tenant();
    let answer = ctx
        .connect_freshsales(&tenant, "pro", json!({"domain": "acme", "api_key": KEY}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    tenant
}

async fn freshsales_api(
    ctx: &TestContext,
    sample: &str,
    tenant: &str,
    body: Option<Value>,
) -> relay_tests::context::ApiResponse {
    ctx.provider_api(sample, "freshsales", (tenant, "pro"), body)
        .await
}

/// The default pipeline and its stage ids by name.
fn pipeline(ctx: &TestContext) -> (String, std::collections::HashMap<String, String>) {
    let pipelines = ctx.freshsales.pipelines(HOST);
    let default = &pipelines[0];
    (
        default.id.clone(),
        default
            .stages
            .iter()
            .map(|s| (s.name.clone(), s.id.clone()))
            .collect(),
    )
}

async fn save_settings(ctx: &TestContext, tenant: &str) {
    let (pipeline_id, stages) = pipeline(ctx);
    let saved = freshsales_api(
        ctx,
        "connections-api/settings.json",
        tenant,
        Some(json!({
            "pipeline_id": pipeline_id,
            "stage_mapping": {"qualified": stages["Qualification"], "won": stages["Won"]}
        })),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
}

fn fatima(tenant: &str, stage: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa",
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82, "stage": stage}),
        Some("Asked about the annual plan for 12 seats."),
    )
}

#[tokio::test]
async fn a_key_connects_whatever_form_the_domain_is_pasted_in_and_is_stored_sealed_never_echoed() {
    let ctx = TestContext::new().await;
    ctx.freshsales.add_account(HOST, KEY);
    ctx.freshsales
        .add_account("oldco.freshsales.io", "legacy-key-77");
    for (domain, key, host) in [
        ("acme", KEY, HOST),
        (
            "https://acme.myfreshworks.com/crm/sales/contacts/view/1?x=1",
            KEY,
            HOST,
        ),
        (" ACME.myfreshworks.com ", KEY, HOST),
        (
            "oldco.freshsales.io",
            "legacy-key-77",
            "oldco.freshsales.io",
        ),
    ] {
        let tenant = TestContext::tenant();
        let answer = ctx
            .connect_freshsales(&tenant, "pro", json!({"domain": domain, "api_key": key}))
            .await;
        assert_eq!(answer.status, 200, "{domain}: {}", answer.body);
        assert_eq!(answer.body["account"]["domain"], host, "{domain}");
        assert_eq!(answer.body["status"], "active");
        assert_eq!(answer.body["token_expires_at"], Value::Null);
        assert!(
            !answer.body.to_string().contains(key),
            "the key is never echoed"
        );

        let connection = stored(&ctx, &tenant).await.unwrap();
        assert_eq!(connection.refresh_due_at, None, "nothing to refresh");
        let opened = ctx
            .services
            .vault
            .open(
                &connection.tenant_id,
                Provider::Freshsales,
                &connection.credentials,
            )
            .await
            .unwrap();
        assert_eq!(opened.api_key.unwrap().expose_secret(), key);
        assert!(opened.access_token.is_none() && opened.refresh_token.is_none());
    }
    let checks: Vec<String> = ctx
        .freshsales
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.host, r.path))
        .collect();
    assert!(
        checks.contains(&format!("{HOST} /crm/sales/api/selector/lead_sources")),
        "{checks:?}"
    );
    assert!(
        checks.contains(&"oldco.freshsales.io /api/selector/lead_sources".to_string()),
        "{checks:?}"
    );
    relay_tests::logs::assert_never_logged("API key", KEY);
    relay_tests::logs::assert_never_logged("API key", "legacy-key-77");
    assert_eq!(
        ctx.run_schedule().await.refreshed,
        0,
        "API-key connections are never refreshed"
    );
    assert_eq!(ctx.freshsales.requests().len(), checks.len());
}

#[tokio::test]
async fn domains_outside_freshworks_crm_are_refused_before_the_key_goes_anywhere() {
    let ctx = TestContext::new().await;
    for domain in [
        "acme.myfreshworks.com.evil.example",
        "https://evil.example/acme.myfreshworks.com",
        "acme.freshdesk.com",
        "https://acme.myfreshworks.com:8443",
        "https://user:pw@acme.myfreshworks.com",
        "127.0.0.1",
        "",
    ] {
        let tenant = TestContext::tenant();
        let answer = ctx
            .connect_freshsales(&tenant, "pro", json!({"domain": domain, "api_key": KEY}))
            .await;
        assert_eq!(answer.status, 400, "{domain:?}: {}", answer.body);
        assert!(!answer.body.to_string().contains(KEY));
        assert!(stored(&ctx, &tenant).await.is_none());
    }
    assert!(
        ctx.freshsales.requests().is_empty(),
        "no request left at all"
    );
}

#[tokio::test]
async fn a_wrong_key_or_a_bad_body_get_a_clear_400_an_unknown_account_a_404_and_nothing_is_stored()
{
    let ctx = TestContext::new().await;
    ctx.freshsales.add_account(HOST, KEY);
    let cases = [
        (
            json!({"domain": "acme", "api_key": "wrong-key"}),
            "refused the API key",
        ),
        (
            json!({"domain": "acme", "api_key": "two words"}),
            "not a key",
        ),
        (
            json!({"domain": "acme", "api_key": KEY, "tenant_id": "x"}),
            "body must be",
        ),
        (json!({"domain": "acme", "api_key": 12345}), "body must be"),
    ];
    for (body, says) in cases {
        let tenant = TestContext::tenant();
        let answer = ctx.connect_freshsales(&tenant, "pro", body.clone()).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        let message = answer.body["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        assert!(!message.contains("wrong-key") && !message.contains("12345"));
        assert!(stored(&ctx, &tenant).await.is_none());
    }

    // A well-formed request naming an account that does not exist: 404, as infra/openapi.yaml says.
    let tenant = TestContext::tenant();
    let answer = ctx
        .connect_freshsales(&tenant, "pro", json!({"domain": "nobody", "api_key": KEY}))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(answer.body["error"], "not_found");
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("Freshsales account at nobody.myfreshworks.com"));
    assert!(stored(&ctx, &tenant).await.is_none());

    ctx.freshsales.deny_permissions(HOST);
    let tenant = TestContext::tenant();
    let answer = ctx
        .connect_freshsales(&tenant, "pro", json!({"domain": "acme", "api_key": KEY}))
        .await;
    assert_eq!(answer.status, 400);
    assert!(answer.body["message"]
        .as_str()
        .unwrap()
        .contains("may not read"));

    let free = ctx
        .connect_freshsales(
            &TestContext::tenant(),
            "free",
            json!({"domain": "acme", "api_key": KEY}),
        )
        .await;
    assert_eq!(free.status, 403, "{}", free.body);
    assert_eq!(free.body["error"], "plan_required");

    let oauth = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider("freshsales")
                .claims(&TestContext::tenant(), "pro"),
        )
        .await;
    assert_eq!(oauth.status, 400);
    assert!(oauth.body["message"].as_str().unwrap().contains("API key"));
}

#[tokio::test]
async fn a_lead_becomes_a_contact_a_deal_in_the_mapped_stage_and_a_note_then_moves_on() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let pipelines = freshsales_api(&ctx, "connections-api/pipelines.json", &tenant, None).await;
    assert_eq!(pipelines.status, 200, "{}", pipelines.body);
    save_settings(&ctx, &tenant).await;
    let (pipeline_id, stages) = pipeline(&ctx);

    let before = ctx.freshsales.api_calls(HOST);
    let delivery = ctx.deliver(&[fatima(&tenant, "qualified")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.freshsales.api_calls(HOST) - before,
        3,
        "upsert, deal, note"
    );

    let contacts = ctx.freshsales.contacts(HOST);
    assert_eq!(contacts.len(), 1);
    let contact = &contacts[0];
    assert_eq!(contact.fields["email"], "fatima@example.qa");
    assert_eq!(contact.fields["first_name"], "Fatima");
    assert_eq!(contact.fields["last_name"], "Al-Kuwari");
    assert_eq!(contact.fields["mobile_number"], "+97455551234");
    assert_eq!(contact.fields["lead_score"], 82);
    let whatsapp = ctx.freshsales.lead_sources(HOST)["WhatsApp"].clone();
    assert_eq!(
        contact.fields["lead_source_id"].to_string(),
        whatsapp,
        "the account's own id"
    );
    let deals = ctx.freshsales.deals(HOST);
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].fields["deal_pipeline_id"].to_string(), pipeline_id);
    assert_eq!(
        deals[0].fields["deal_stage_id"].to_string(),
        stages["Qualification"]
    );
    let notes = ctx.freshsales.notes(HOST);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].fields["targetable_type"], "Contact");
    assert_eq!(notes[0].fields["targetable_id"].to_string(), contact.id);

    let before = ctx.freshsales.api_calls(HOST);
    ctx.deliver(&[fatima(&tenant, "qualified")]).await;
    assert_eq!(
        ctx.freshsales.api_calls(HOST),
        before,
        "an identical replay costs nothing"
    );

    let delivery = ctx.deliver(&[fatima(&tenant, "won")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.freshsales.api_calls(HOST) - before,
        2,
        "contact update, deal stage"
    );
    assert_eq!(
        ctx.freshsales.deals(HOST)[0].fields["deal_stage_id"].to_string(),
        stages["Won"]
    );
    assert_eq!(ctx.freshsales.contacts(HOST).len(), 1);
    assert_eq!(ctx.freshsales.notes(HOST).len(), 1);
    relay_tests::logs::assert_never_logged("API key", KEY);
}

#[tokio::test]
async fn a_contact_already_in_freshsales_is_found_by_email_or_by_mobile_number() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let by_email = ctx.freshsales.seed_contact(
        HOST,
        json!({"last_name": "Al-Kuwari", "email": "fatima@example.qa", "job_title": "Owner"}),
    );
    let by_phone = ctx.freshsales.seed_contact(
        HOST,
        json!({"last_name": "Al-Marri", "mobile_number": "+97455550000"}),
    );
    let noor = lead_message(
        &tenant,
        "pro",
        json!({"id": "lead-2", "name": "Noor Al-Marri", "phone": "+974 5555 0000", "stage": "new"}),
        None,
    );
    let delivery = ctx.deliver(&[fatima(&tenant, "new"), noor]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let contacts = ctx.freshsales.contacts(HOST);
    assert_eq!(contacts.len(), 2, "both matched an existing contact");
    let fatima = contacts.iter().find(|c| c.id == by_email).unwrap();
    assert_eq!(fatima.fields["first_name"], "Fatima");
    assert_eq!(
        fatima.fields["job_title"], "Owner",
        "fields not sent are kept"
    );
    let noor = contacts.iter().find(|c| c.id == by_phone).unwrap();
    assert_eq!(noor.fields["first_name"], "Noor");
}

#[tokio::test]
async fn a_read_only_lead_score_does_not_fail_the_lead() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    ctx.freshsales.set_lead_score_writable(HOST, false);
    let delivery = ctx.deliver(&[fatima(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let contacts = ctx.freshsales.contacts(HOST);
    assert_eq!(contacts.len(), 1);
    assert!(contacts[0]
        .fields
        .get("lead_score")
        .is_none_or(Value::is_null));
    assert!(ctx.queues.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_key_that_stops_working_marks_the_connection_and_parks_the_lead() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    ctx.freshsales.revoke_key(HOST);
    let delivery = ctx.deliver(&[fatima(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "permanent: settled");
    // The lead waits for the reconnect (docs/token-custody.md), not in the DLQ.
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert_eq!(
        stored(&ctx, &tenant).await.unwrap().status,
        ConnectionStatus::NeedsReauth
    );
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(listed.body["connections"][0]["status"], "needs_reauth");
    assert_eq!(listed.body["connections"][0]["parked_leads"], 1);
    assert_eq!(
        ctx.freshsales
            .requests()
            .iter()
            .filter(|r| r.path.contains("oauth"))
            .count(),
        0,
        "no refresh is attempted for a key"
    );

    // Reconnecting with a new key clears it.
    ctx.freshsales.add_account(HOST, "new-key-2");
    let again = ctx
        .connect_freshsales(
            &tenant,
            "pro",
            json!({"domain": HOST, "api_key": "new-key-2"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        stored(&ctx, &tenant).await.unwrap().status,
        ConnectionStatus::Active
    );
}

#[tokio::test]
async fn a_rate_limited_account_hands_the_lead_back_to_sqs_and_it_lands_later() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    // The simulator's 429 says Retry-After: 60, longer than a call may wait (500 ms here).
    ctx.freshsales
        .inject(FreshsalesRoute::Upsert, Fault::Throttle);
    let delivery = ctx.deliver(&[fatima(&tenant, "new")]).await;
    assert_eq!(
        delivery.failed.len(),
        1,
        "retried by SQS, not dead-lettered"
    );
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert!(ctx.freshsales.contacts(HOST).is_empty());
    assert_eq!(
        stored(&ctx, &tenant).await.unwrap().status,
        ConnectionStatus::Active
    );

    let delivery = ctx.redeliver(1).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.freshsales.contacts(HOST).len(), 1);
}
