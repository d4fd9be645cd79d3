//! Bitrix24 through the real handlers, moto and the Bitrix24 simulator: a tenant connects its
//! portal (consent there, tokens from Bitrix24's OAuth server by GET), and leads become a
//! contact, a deal in the chosen category and stage, and a timeline comment; refresh tokens are
//! single use, so concurrent pushes refresh once; Bitrix24's errors end where they should.

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::logs;
use relay_tests::queue::lead_message;
use relay_tests::sim::{BitrixRoute, Fault};
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::store::{Connection, ConnectionStatus};
use shared::Provider;

const SOUQ: &str = "souq-bakery.bitrix24.com";
const OTHER: &str = "dune-motors.bitrix24.eu";

async fn connected(ctx: &TestContext, portal: &str) -> String {
    ctx.bitrix.add_portal(portal);
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", portal, portal).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    tenant
}

async fn stored(ctx: &TestContext, tenant: &str) -> Connection {
    ctx.services
        .store
        .get_connection(&TenantId::parse(tenant).unwrap(), Provider::Bitrix24)
        .await
        .unwrap()
        .expect("a stored Bitrix24 connection")
}

async fn b24_api(
    ctx: &TestContext,
    sample: &str,
    tenant: &str,
    body: Option<Value>,
) -> relay_tests::context::ApiResponse {
    ctx.provider_api(sample, "bitrix24", (tenant, "pro"), body)
        .await
}

fn noura(tenant: &str, stage: &str, summary: &str) -> String {
    lead_message(
        tenant,
        "pro",
        json!({"id": "lead-b24-1", "name": "Noura Al-Kuwari", "email": "noura@example.qa",
               "phone": "+974 5512 3456", "source": "whatsapp", "score": 77, "stage": stage}),
        Some(summary),
    )
}

fn values(record: &Value, field: &str) -> Vec<String> {
    record[field]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|x| x["VALUE"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_portal_connects_and_a_lead_becomes_a_contact_a_deal_in_the_chosen_stage_and_a_comment() {
    let ctx = TestContext::new().await;
    ctx.bitrix.add_portal(SOUQ);
    let wholesale = ctx.bitrix.add_category(SOUQ, "Wholesale", &[]);
    let tenant = TestContext::tenant();

    // The consent URL carries no scope and no PKCE (Bitrix24 documents neither).
    let started = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider("bitrix24")
                .claims(&tenant, "pro")
                .body(json!({"portal": format!("https://{SOUQ}/crm/deal/kanban/")})),
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let url = url::Url::parse(started.body["authorize_url"].as_str().unwrap()).unwrap();
    assert!(url.path().starts_with("/oauth/authorize"), "{url}");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "test-bitrix-client-id");
    assert!(!query.contains_key("scope") && !query.contains_key("code_challenge"));
    let back = ctx
        .callback(
            "bitrix24",
            &ctx.consent_for("bitrix24", &format!("{url}&sim_portal={SOUQ}"))
                .await,
        )
        .await;
    assert_eq!(outcome(&back)["status"], "connected", "{back}");

    // The code went to Bitrix24's OAuth server, by GET with the documented parameters only.
    let exchange = ctx
        .bitrix
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/oauth/token"))
        .expect("a token request");
    assert_eq!(exchange.method, "GET");
    assert_eq!(exchange.host, "oauth.bitrix.info");
    let sent = exchange.query_params();
    assert_eq!(sent["grant_type"], "authorization_code");
    assert!(!sent.contains_key("redirect_uri"));
    let connection = stored(&ctx, &tenant).await;
    assert_eq!(connection.account["portal"], SOUQ);
    assert_eq!(
        connection.account["rest_endpoint"],
        format!("https://{SOUQ}/rest/")
    );
    assert_eq!(connection.account["member_id"], ctx.bitrix.member_id(SOUQ));
    assert_eq!(connection.account["oauth_server"], "oauth.bitrix.info");
    assert!(connection.token_expiry().is_some());

    // Pipelines: the categories and their stages.
    let listed = b24_api(&ctx, "connections-api/pipelines.json", &tenant, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let pipelines = listed.body["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 2, "{pipelines:?}");
    assert_eq!(pipelines[0]["id"], "0");
    assert_eq!(pipelines[0]["stages"][0]["id"], "NEW");
    let wholesale_id = wholesale.to_string();
    let category = pipelines
        .iter()
        .find(|p| p["id"] == wholesale_id.as_str())
        .unwrap_or_else(|| panic!("{pipelines:?}"));
    let stage_ids: Vec<&str> = category["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let prep = format!("C{wholesale}:PREPARATION");
    let won = format!("C{wholesale}:WON");
    assert!(stage_ids.contains(&prep.as_str()) && stage_ids.contains(&won.as_str()));
    let saved = b24_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(json!({"pipeline_id": wholesale_id, "stage_mapping": {
            "new": format!("C{wholesale}:NEW"), "qualified": prep, "won": won}})),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let refused = b24_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(json!({"pipeline_id": wholesale_id, "stage_mapping": {"won": "WON"}})),
    )
    .await;
    assert_eq!(
        refused.status, 400,
        "another category's stage: {}",
        refused.body
    );

    // A new lead: email search, phone search, contact, deal, comment.
    let before = ctx.bitrix.rest_calls(SOUQ);
    let delivery = ctx
        .deliver(&[noura(
            &tenant,
            "qualified",
            "Wants 200 boxes of maamoul for Eid",
        )])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.bitrix.rest_calls(SOUQ) - before, 5);
    let contacts = ctx.bitrix.contacts(SOUQ);
    assert_eq!(contacts.len(), 1);
    let contact = Value::Object(contacts[0].fields.clone());
    assert_eq!(contact["NAME"], "Noura");
    assert_eq!(contact["LAST_NAME"], "Al-Kuwari");
    assert_eq!(values(&contact, "EMAIL"), ["noura@example.qa"]);
    assert_eq!(values(&contact, "PHONE"), ["+97455123456"]);
    let deals = ctx.bitrix.deals(SOUQ);
    assert_eq!(deals.len(), 1);
    let deal = &deals[0].fields;
    assert_eq!(deal["STAGE_ID"], prep.as_str());
    assert_eq!(deal["CATEGORY_ID"], wholesale_id.as_str());
    assert_eq!(deal["CONTACT_ID"], contacts[0].id.to_string().as_str());
    let comments = ctx.bitrix.comments(SOUQ);
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].entity_type, "deal");
    assert_eq!(comments[0].entity_id, deals[0].id);
    assert!(comments[0].comment.contains("maamoul"));
    assert!(comments[0].comment.contains("Score: 77/100"));

    // The same lead again: nothing.
    let before = ctx.bitrix.rest_calls(SOUQ);
    ctx.deliver(&[noura(
        &tenant,
        "qualified",
        "Wants 200 boxes of maamoul for Eid",
    )])
    .await;
    assert_eq!(ctx.bitrix.rest_calls(SOUQ), before);

    // Won, with a new summary: contact, deal stage, comment updated; no value duplicated.
    let before = ctx.bitrix.rest_calls(SOUQ);
    let delivery = ctx
        .deliver(&[noura(&tenant, "won", "Paid the deposit")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.bitrix.rest_methods(SOUQ)[before..],
        [
            "crm.contact.update",
            "crm.deal.update",
            "crm.timeline.comment.update"
        ]
    );
    assert_eq!(ctx.bitrix.deals(SOUQ)[0].fields["STAGE_ID"], won.as_str());
    let contact = Value::Object(ctx.bitrix.contacts(SOUQ)[0].fields.clone());
    assert_eq!(values(&contact, "PHONE").len(), 1);
    assert_eq!(values(&contact, "EMAIL").len(), 1);
    let comments = ctx.bitrix.comments(SOUQ);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].comment.contains("Paid the deposit"));

    // Every REST call carried the token in its body, none in a URL or header.
    for request in ctx.bitrix.requests().iter().filter(|r| r.is_rest()) {
        assert!(request.body.get("auth").is_some(), "{}", request.path);
        assert!(!request.query.contains("auth="), "{}", request.path);
    }
}

#[tokio::test]
async fn an_existing_contact_is_found_by_phone_and_keeps_its_values() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, SOUQ).await;
    let existing = ctx.bitrix.seed_contact(
        SOUQ,
        json!({"NAME": "N.", "LAST_NAME": "Kuwari",
               "PHONE": [{"VALUE": "+974 5512 3456", "VALUE_TYPE": "MOBILE"}]}),
    );
    let delivery = ctx
        .deliver(&[noura(&tenant, "new", "Asked about prices")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let contacts = ctx.bitrix.contacts(SOUQ);
    assert_eq!(contacts.len(), 1, "no duplicate contact");
    assert_eq!(contacts[0].id, existing);
    let contact = Value::Object(contacts[0].fields.clone());
    assert_eq!(contact["NAME"], "Noura");
    assert_eq!(
        values(&contact, "PHONE").len(),
        1,
        "the phone is not appended again"
    );
    // Without settings: the default category's first open stage.
    assert_eq!(ctx.bitrix.deals(SOUQ)[0].fields["STAGE_ID"], "NEW");
    assert_eq!(
        ctx.bitrix.deals(SOUQ)[0].fields["CONTACT_ID"],
        existing.to_string().as_str()
    );
}

#[tokio::test]
async fn concurrent_pushes_on_an_expired_token_refresh_once_and_never_reuse_a_refresh_token() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, SOUQ).await;
    for round in 1..=2 {
        ctx.bitrix.expire_access_tokens(SOUQ);
        let messages: Vec<String> = (0..8)
            .map(|i| {
                lead_message(
                    &tenant,
                    "pro",
                    json!({"id": format!("lead-r{round}-{i}"), "name": format!("Buyer {round}{i}"),
                           "email": format!("buyer{round}{i}@example.com"), "stage": "new"}),
                    None,
                )
            })
            .collect();
        let delivery = ctx.deliver(&messages).await;
        assert!(delivery.failed.is_empty(), "round {round}: {delivery:?}");
        assert_eq!(ctx.bitrix.refresh_calls(), round, "one refresh per expiry");
        assert_eq!(ctx.bitrix.live_refresh_tokens(SOUQ), 1);
        let refreshes: Vec<_> = ctx
            .bitrix
            .requests()
            .into_iter()
            .filter(|r| r.query.contains("grant_type=refresh_token"))
            .collect();
        assert!(
            refreshes
                .iter()
                .all(|r| r.status == Some(200) && r.method == "GET"),
            "a spent refresh token was presented: {:?}",
            refreshes.iter().map(|r| r.status).collect::<Vec<_>>()
        );
    }
    assert_eq!(ctx.bitrix.contacts(SOUQ).len(), 16);
    assert!(ctx.queues.dead_letters().await.is_empty());

    let connection = stored(&ctx, &tenant).await;
    assert_eq!(connection.status, ConnectionStatus::Active);
    let captured = ctx.bitrix.requests();
    for request in captured
        .iter()
        .filter(|r| r.path.starts_with("/oauth/token"))
    {
        let params = request.query_params();
        for secret in ["code", "refresh_token", "client_secret"] {
            if let Some(value) = params.get(secret) {
                logs::assert_never_logged(secret, value);
            }
        }
    }
    for request in captured.iter().filter(|r| r.is_rest()) {
        logs::assert_never_logged("access token", request.body["auth"].as_str().unwrap());
    }
}

#[tokio::test]
async fn the_schedule_leaves_hourly_tokens_alone_and_keeps_an_idle_connection_alive() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, SOUQ).await;
    let summary = ctx.run_schedule().await;
    assert_eq!(
        summary.refreshed, 0,
        "Bitrix24 asks not to be refreshed on a timer"
    );
    assert_eq!(ctx.bitrix.refresh_calls(), 0);

    // Three weeks idle: the keep-alive is due, a week before the refresh token would die.
    ctx.bitrix
        .advance_clock(std::time::Duration::from_secs(22 * 86_400));
    let later = chrono::Utc::now() + chrono::Duration::days(22);
    let summary = shared::refresh::run_scheduled(&ctx.services, later)
        .await
        .unwrap();
    assert_eq!(summary.refreshed, 1, "{summary:?}");
    assert_eq!(ctx.bitrix.refresh_calls(), 1);
    assert_eq!(ctx.bitrix.live_refresh_tokens(SOUQ), 1);
    let connection = stored(&ctx, &tenant).await;
    assert_eq!(connection.status, ConnectionStatus::Active);
    assert!(connection.refresh_due_at.is_some(), "the next keep-alive");
}

#[tokio::test]
async fn payment_required_marks_the_connection_and_parks_the_lead_for_the_reconnect() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, SOUQ).await;
    ctx.bitrix.set_payment_required(SOUQ, true);
    let delivery = ctx.deliver(&[noura(&tenant, "new", "Hi")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    // The lead waits for the reconnect (docs/token-custody.md), not in the DLQ.
    assert!(ctx.queues.dead_letters().await.is_empty());
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    let connection = &listed.body["connections"][0];
    assert_eq!(connection["status"], "needs_reauth", "{connection}");
    assert_eq!(connection["parked_leads"], 1, "{connection}");
    assert!(connection["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("PAYMENT_REQUIRED"));

    // Disconnect: Bitrix24 has no revocation, so the row simply goes.
    let gone = b24_api(&ctx, "connections-api/disconnect.json", &tenant, None).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.body["revoked_at_provider"], false);
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "pro"))
        .await;
    assert_eq!(listed.body["connections"], json!([]));
}

#[tokio::test]
async fn throttling_is_waited_out_and_refusals_dead_letter_with_bitrix24s_code() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, SOUQ).await;
    // QUERY_LIMIT_EXCEEDED on the deal: the add is sent again (Bitrix24 did not act on it).
    ctx.bitrix
        .inject(BitrixRoute::Rest("crm.deal.add"), Fault::Throttle);
    let delivery = ctx.deliver(&[noura(&tenant, "new", "Hi")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.bitrix.deals(SOUQ).len(), 1);

    // REST not on the portal's plan: a person must act; the lead goes to the DLQ, named.
    ctx.bitrix.set_rest_denied(SOUQ, true);
    let other = lead_message(
        &tenant,
        "pro",
        json!({"id": "lead-b24-2", "name": "Sara", "email": "sara@example.qa", "stage": "new"}),
        None,
    );
    ctx.deliver(&[other]).await;
    let dead = ctx.queues.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1["failure_reason"].contains("ACCESS_DENIED"),
        "{:?}",
        dead[0].1
    );
    ctx.bitrix.set_rest_denied(SOUQ, false);

    // A garbage answer is not taken for a contact id. An unreadable success answer is
    // transient: the lead is retried, not dead-lettered, and the retry (finding no contact by
    // the lead's id) creates the contact once.
    ctx.bitrix
        .inject(BitrixRoute::Rest("crm.contact.add"), Fault::Garbage);
    let third = lead_message(
        &tenant,
        "pro",
        json!({"id": "lead-b24-3", "name": "Omar", "email": "omar@example.qa", "stage": "new"}),
        None,
    );
    let first = ctx.deliver(&[third]).await;
    assert_eq!(first.failed.len(), 1, "handed back for a retry: {first:?}");
    let omar = |ctx: &TestContext| {
        ctx.bitrix
            .contacts(SOUQ)
            .iter()
            .filter(|c| values(&Value::Object(c.fields.clone()), "EMAIL") == ["omar@example.qa"])
            .count()
    };
    assert_eq!(omar(&ctx), 0);
    let again = ctx.redeliver(1).await;
    assert_eq!(again.received.len(), 1, "{again:?}");
    assert!(again.failed.is_empty(), "{again:?}");
    assert_eq!(omar(&ctx), 1);
    // (Letters read before are hidden by their visibility timeout: none is new.)
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert_eq!(stored(&ctx, &tenant).await.status, ConnectionStatus::Active);
}

#[tokio::test]
async fn foreign_hosts_and_mismatched_portals_are_refused_before_anything_is_sent() {
    let ctx = TestContext::new().await;
    ctx.bitrix.add_portal(SOUQ);
    ctx.bitrix.add_portal(OTHER);
    let tenant = TestContext::tenant();
    for portal in [
        "crm.example.com",
        "souq.bitrix24.com.evil.example",
        "http://souq.bitrix24.com",
    ] {
        let refused = ctx
            .api(
                ApiEvent::sample("connections-api/authorize.json")
                    .provider("bitrix24")
                    .claims(&tenant, "pro")
                    .body(json!({ "portal": portal })),
            )
            .await;
        assert_eq!(refused.status, 400, "{portal}: {}", refused.body);
    }
    let free = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider("bitrix24")
                .claims(&tenant, "free")
                .body(json!({ "portal": SOUQ })),
        )
        .await;
    assert_eq!(free.status, 403, "{}", free.body);

    // A callback naming a foreign OAuth server: the code never leaves.
    let started = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider("bitrix24")
                .claims(&tenant, "pro")
                .body(json!({ "portal": SOUQ })),
        )
        .await;
    let url = started.body["authorize_url"].as_str().unwrap().to_string();
    let mut query = ctx
        .consent_for("bitrix24", &format!("{url}&sim_portal={SOUQ}"))
        .await;
    for (name, value) in query.iter_mut() {
        if name == "server_domain" {
            *value = "oauth.bitrix.info.evil.example".into();
        }
    }
    let back = outcome(&ctx.callback("bitrix24", &query).await);
    assert_eq!(back["reason"], "untrusted_accounts_server", "{back:?}");
    assert!(!ctx
        .bitrix
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/oauth/token")));

    // Consent given on another portal than the one chosen: not stored.
    let back = outcome(&ctx.connect_bitrix24(&tenant, "pro", SOUQ, OTHER).await);
    assert_eq!(back["status"], "error", "{back:?}");
    assert!(ctx
        .services
        .store
        .get_connection(&TenantId::parse(&tenant).unwrap(), Provider::Bitrix24)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_deal_whose_create_answer_was_lost_is_found_again_not_created_twice() {
    let ctx = TestContext::with_env(&[("HTTP_TIMEOUT_MS", "400")]).await;
    let tenant = connected(&ctx, SOUQ).await;
    // Bitrix24 creates the deal, but the answer comes after the client gave up.
    ctx.bitrix.inject(
        BitrixRoute::Rest("crm.deal.add"),
        Fault::DelayAfter(std::time::Duration::from_millis(1_500)),
    );
    let first = ctx.deliver(&[noura(&tenant, "new", "Hi")]).await;
    assert_eq!(first.failed.len(), 1, "handed back for a retry: {first:?}");
    assert_eq!(ctx.bitrix.deals(SOUQ).len(), 1, "Bitrix24 did create it");

    let again = ctx.redeliver(1).await;
    assert!(again.failed.is_empty(), "{again:?}");
    let deals = ctx.bitrix.deals(SOUQ);
    assert_eq!(deals.len(), 1, "not created twice");
    assert_eq!(deals[0].fields["ORIGIN_ID"], "lead-b24-1");
    assert_eq!(deals[0].fields["ORIGINATOR_ID"], "leadrelay");
    let methods = ctx.bitrix.rest_methods(SOUQ);
    assert_eq!(
        methods.iter().filter(|m| *m == "crm.deal.add").count(),
        1,
        "{methods:?}"
    );
    assert!(methods.iter().any(|m| m == "crm.deal.list"));
    let comments = ctx.bitrix.comments(SOUQ);
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].entity_id, deals[0].id);
    assert_eq!(ctx.bitrix.contacts(SOUQ).len(), 1);

    // Later pushes of a lead whose deal was created normally never search.
    let before = ctx.bitrix.rest_methods(SOUQ).len();
    ctx.deliver(&[noura(&tenant, "won", "Paid")]).await;
    assert!(!ctx.bitrix.rest_methods(SOUQ)[before..]
        .iter()
        .any(|m| m == "crm.deal.list"));
}
