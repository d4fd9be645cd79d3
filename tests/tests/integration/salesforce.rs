//! Salesforce through the real handlers, moto and the Salesforce simulator (which plays every
//! login host and instance): connect at the production, sandbox or My Domain login host, the
//! schema described once, pushes through SQS (Lead and Task, custom fields, required-field
//! defaults, escaped SOQL duplicates, conversion over SOAP), refresh with rotation under
//! concurrent pushes, instance migration, the daily allocation, revoke.

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::logs;
use relay_tests::queue::lead_message;
use relay_tests::sim::salesforce::SfField;
use relay_tests::sim::{Fault, SalesforceRoute};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::store::Connection;
use shared::Provider;

use crate::manage::spent_token;

const ACME: &str = "acme";
const UAT: &str = "acme-uat";

async fn connected(ctx: &TestContext, body: Option<Value>, org: &str) -> String {
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_salesforce(&tenant, "business", body, org).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    tenant
}

async fn stored(ctx: &TestContext, tenant: &str) -> Connection {
    ctx.services
        .store
        .get_connection(&TenantId::parse(tenant).unwrap(), Provider::Salesforce)
        .await
        .unwrap()
        .expect("a stored Salesforce connection")
}

async fn sf_api(
    ctx: &TestContext,
    sample: &str,
    tenant: &str,
    body: Option<Value>,
) -> relay_tests::context::ApiResponse {
    ctx.provider_api(sample, "salesforce", (tenant, "business"), body)
        .await
}

fn settings_body() -> Value {
    json!({
        "pipeline_id": "012000000000000AAA",
        "stage_mapping": {"qualified": "Qualification", "proposal": "Proposal/Price Quote",
                          "won": "Closed Won", "lost": "Closed Lost"},
        "convert_at": "qualified",
        "field_mapping": {"score": "LeadRelay_Score__c", "lead_id": "LeadRelay_Id__c"}
    })
}

/// The org's custom fields the settings map to.
fn add_custom_fields(ctx: &TestContext, org: &str) {
    ctx.salesforce.add_field(
        org,
        "Lead",
        SfField::double("LeadRelay_Score__c", "LeadRelay score"),
    );
    ctx.salesforce.add_field(
        org,
        "Lead",
        SfField::string("LeadRelay_Id__c", "LeadRelay id", 64),
    );
}

fn noura(tenant: &str, stage: &str) -> String {
    lead_message(
        tenant,
        "business",
        json!({"id": "lead-sf-1", "name": "Noura Al-Thani", "email": "noura@gulf-logistics.example.qa",
               "phone": "+974 5550 1234", "source": "website", "score": 82, "stage": stage}),
        Some("Needs cold-chain trucking Doha to Riyadh, twice a week."),
    )
}

/// API calls (REST and SOAP, composites counted once) the org received so far.
fn api_calls(ctx: &TestContext) -> usize {
    ctx.salesforce
        .requests()
        .iter()
        .filter(|r| {
            !r.sub
                && (r.path.starts_with("/services/data/") || r.path.starts_with("/services/Soap/"))
        })
        .count()
}

fn describes(ctx: &TestContext) -> usize {
    ctx.salesforce
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/describe"))
        .count()
}

fn token_hosts(ctx: &TestContext, grant: &str) -> Vec<String> {
    ctx.salesforce
        .requests()
        .iter()
        .filter(|r| {
            r.path == "/services/oauth2/token"
                && r.form().get("grant_type").map(String::as_str) == Some(grant)
        })
        .map(|r| r.host.clone())
        .collect()
}

fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

#[tokio::test]
async fn a_business_tenant_connects_and_a_lead_lands_with_custom_fields_and_its_task() {
    let ctx = TestContext::new().await;
    add_custom_fields(&ctx, ACME);
    let tenant = TestContext::tenant();
    let started = ctx
        .authorize_provider("salesforce", &tenant, "business")
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let url = url::Url::parse(started.body["authorize_url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/services/oauth2/authorize");
    assert_eq!(query["scope"], "api refresh_token");
    assert_eq!(query["code_challenge_method"], "S256");
    let back = ctx
        .callback(
            "salesforce",
            &ctx.consent_for("salesforce", &format!("{url}&sim_org={ACME}"))
                .await,
        )
        .await;
    assert_eq!(outcome(&back)["status"], "connected", "{back}");
    assert_eq!(
        token_hosts(&ctx, "authorization_code"),
        vec!["login.salesforce.com"]
    );
    let exchange = ctx
        .salesforce
        .requests()
        .into_iter()
        .find(|r| r.path == "/services/oauth2/token")
        .unwrap();
    assert!(exchange.form().contains_key("code_verifier"), "PKCE");

    let connection = stored(&ctx, &tenant).await;
    assert_eq!(
        connection.account["instance_url"],
        "https://acme.my.salesforce.com"
    );
    assert_eq!(
        connection.account["login_origin"],
        "https://login.salesforce.com"
    );
    assert_eq!(connection.account["org_id"], ctx.salesforce_org_id(ACME));
    assert!(
        connection.token_expires_at.is_some(),
        "the configured session length"
    );
    assert_eq!(describes(&ctx), 4, "described once, at connect");

    let saved = sf_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(settings_body()),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let settings = &saved.body["settings"];
    assert_eq!(settings["field_mapping"]["score"]["kind"], "number");
    assert_eq!(settings["source_property"]["name"], "LeadSource");
    assert_eq!(settings["score_property"]["name"], "Rating");

    let before = api_calls(&ctx);
    let delivery = ctx.deliver(&[noura(&tenant, "contacted")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        api_calls(&ctx) - before,
        2,
        "duplicate queries, then Lead + Task"
    );
    assert_eq!(describes(&ctx), 4, "the push used the cached description");
    let leads = ctx.salesforce.records(ACME, "Lead");
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(text(lead, "LastName"), Some("Al-Thani"));
    assert_eq!(text(lead, "FirstName"), Some("Noura"));
    assert_eq!(text(lead, "Email"), Some("noura@gulf-logistics.example.qa"));
    assert_eq!(text(lead, "Phone"), Some("+97455501234"));
    assert_eq!(
        text(lead, "Company"),
        Some("Noura Al-Thani"),
        "the documented default"
    );
    assert_eq!(text(lead, "Rating"), Some("Hot"));
    assert_eq!(lead["LeadRelay_Score__c"].as_f64(), Some(82.0));
    assert_eq!(text(lead, "LeadRelay_Id__c"), Some("lead-sf-1"));
    let tasks = ctx.salesforce.records(ACME, "Task");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["WhoId"], lead["Id"]);
    assert_eq!(text(&tasks[0], "Status"), Some("Completed"));
    assert!(text(&tasks[0], "Description")
        .unwrap()
        .contains("cold-chain"));

    let before = api_calls(&ctx);
    ctx.deliver(&[noura(&tenant, "contacted")]).await;
    assert_eq!(api_calls(&ctx), before, "an identical replay costs no call");

    // Qualified: converted over SOAP into Contact, Account and Opportunity in the mapped stage.
    let before = api_calls(&ctx);
    let delivery = ctx.deliver(&[noura(&tenant, "qualified")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        api_calls(&ctx) - before,
        3,
        "lead update, convertLead, opportunity stage"
    );
    let lead = &ctx.salesforce.records(ACME, "Lead")[0];
    assert_eq!(lead["IsConverted"], true);
    let contacts = ctx.salesforce.records(ACME, "Contact");
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        text(&contacts[0], "Email"),
        Some("noura@gulf-logistics.example.qa")
    );
    assert_eq!(ctx.salesforce.records(ACME, "Account").len(), 1);
    let opportunities = ctx.salesforce.records(ACME, "Opportunity");
    assert_eq!(opportunities.len(), 1);
    assert_eq!(text(&opportunities[0], "StageName"), Some("Qualification"));
    assert_eq!(
        text(&opportunities[0], "Name"),
        Some("Noura Al-Thani (LeadRelay)")
    );
    assert_eq!(
        ctx.salesforce.records(ACME, "Task")[0]["WhoId"],
        contacts[0]["Id"],
        "the task followed the conversion"
    );
    assert!(ctx
        .salesforce
        .requests()
        .iter()
        .any(|r| r.path.starts_with("/services/Soap/u/62.0")));

    // Won: contact and opportunity in one composite.
    let before = api_calls(&ctx);
    ctx.deliver(&[noura(&tenant, "won")]).await;
    assert_eq!(api_calls(&ctx) - before, 1);
    let opportunities = ctx.salesforce.records(ACME, "Opportunity");
    assert_eq!(opportunities.len(), 1);
    assert_eq!(text(&opportunities[0], "StageName"), Some("Closed Won"));
    assert_eq!(ctx.salesforce.records(ACME, "Contact").len(), 1);

    // Nothing secret reached the logs: not the tokens (the access token also travels inside the
    // SOAP envelope), the code, the verifier or the client secret.
    let credentials = ctx
        .services
        .vault
        .open(
            &TenantId::parse(&tenant).unwrap(),
            Provider::Salesforce,
            &stored(&ctx, &tenant).await.credentials,
        )
        .await
        .unwrap();
    logs::assert_never_logged(
        "access token",
        credentials.access_token.as_ref().unwrap().expose_secret(),
    );
    logs::assert_never_logged(
        "refresh token",
        credentials.refresh_token.as_ref().unwrap().expose_secret(),
    );
    logs::assert_never_logged("authorization code", &exchange.form()["code"]);
    logs::assert_never_logged("PKCE verifier", &exchange.form()["code_verifier"]);
    logs::assert_never_logged("client secret", &ctx.client_secret);
}

#[tokio::test]
async fn only_the_business_plan_connects_salesforce() {
    let ctx = TestContext::new().await;
    let refused = ctx
        .authorize_provider("salesforce", &TestContext::tenant(), "pro")
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"], "plan_required");
    let message = refused.body["message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("business"), "{message}");
}

#[tokio::test]
async fn sandbox_and_my_domain_logins_exchange_codes_at_their_own_host() {
    let ctx = TestContext::new().await;
    let sandbox = connected(&ctx, Some(json!({"environment": "sandbox"})), UAT).await;
    assert_eq!(
        token_hosts(&ctx, "authorization_code"),
        vec!["test.salesforce.com"]
    );
    let connection = stored(&ctx, &sandbox).await;
    assert_eq!(
        connection.account["login_origin"],
        "https://test.salesforce.com"
    );
    assert_eq!(
        connection.account["instance_url"],
        "https://acme--uat.sandbox.my.salesforce.com"
    );
    // Every API call of the sandbox tenant went to its instance.
    assert!(ctx
        .salesforce
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/"))
        .all(|r| r.host == "acme--uat.sandbox.my.salesforce.com"));

    // The Lightning address an admin pastes becomes the org's My Domain login host.
    let my_domain = connected(
        &ctx,
        Some(json!({"my_domain": "https://acme.lightning.force.com/lightning/page/home"})),
        ACME,
    )
    .await;
    assert_eq!(
        token_hosts(&ctx, "authorization_code")
            .last()
            .map(String::as_str),
        Some("acme.my.salesforce.com")
    );
    assert_eq!(
        stored(&ctx, &my_domain).await.account["login_origin"],
        "https://acme.my.salesforce.com"
    );

    // A production login cannot redeem a sandbox user's code.
    let wrong = outcome(
        &ctx.connect_salesforce(&TestContext::tenant(), "business", None, UAT)
            .await,
    );
    assert_eq!(wrong["reason"], "token_exchange_failed", "{wrong:?}");

    for forged in [
        "acme.my.salesforce.com.evil.example",
        "http://acme.my.salesforce.com",
        "evil.example",
    ] {
        let refused = ctx
            .api(
                ApiEvent::sample("connections-api/authorize.json")
                    .provider("salesforce")
                    .claims(&TestContext::tenant(), "business")
                    .body(json!({"my_domain": forged})),
            )
            .await;
        assert_eq!(refused.status, 400, "{forged}: {}", refused.body);
    }
    let hubspot = ctx
        .api(
            ApiEvent::sample("connections-api/authorize.json")
                .provider("hubspot")
                .claims(&TestContext::tenant(), "business")
                .body(json!({"environment": "sandbox"})),
        )
        .await;
    assert_eq!(hubspot.status, 400, "{}", hubspot.body);
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_and_a_moved_instance_is_followed() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    ctx.salesforce.expire_sessions(ACME);
    ctx.salesforce
        .migrate_instance(ACME, "acme2.my.salesforce.com");
    let delivery = ctx.deliver(&[noura(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
    assert_eq!(
        token_hosts(&ctx, "refresh_token"),
        vec!["login.salesforce.com"]
    );
    assert_eq!(ctx.salesforce.records(ACME, "Lead").len(), 1);
    let connection = stored(&ctx, &tenant).await;
    assert_eq!(
        connection.account["instance_url"],
        "https://acme2.my.salesforce.com"
    );
    let last = ctx
        .salesforce
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/services/data/") && !r.sub)
        .unwrap();
    assert_eq!(last.host, "acme2.my.salesforce.com");
}

#[tokio::test]
async fn concurrent_pushes_on_an_expired_session_never_present_a_rotated_refresh_token() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    for round in 1..=2 {
        ctx.salesforce.expire_sessions(ACME);
        let messages: Vec<String> = (0..8)
            .map(|i| {
                lead_message(
                    &tenant,
                    "business",
                    json!({"id": format!("lead-r{round}-{i}"), "name": format!("Buyer {round}{i}"),
                           "email": format!("buyer{round}{i}@example.com"), "stage": "new"}),
                    None,
                )
            })
            .collect();
        let delivery = ctx.deliver(&messages).await;
        assert!(delivery.failed.is_empty(), "round {round}: {delivery:?}");
        assert_eq!(
            ctx.salesforce.refresh_calls(ACME),
            round,
            "one refresh per expiry"
        );
        assert!(
            !ctx.salesforce.grant_revoked_on_reuse(ACME),
            "no rotated token was presented"
        );
        assert_eq!(ctx.salesforce.live_refresh_tokens(ACME), 1);
    }
    assert_eq!(ctx.salesforce.records(ACME, "Lead").len(), 16);
}

#[tokio::test]
async fn duplicates_are_found_by_escaped_email_and_by_phone_on_contacts() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    let existing = ctx.salesforce.seed_record(
        ACME,
        "Lead",
        json!({"LastName": "O'Brien", "Company": "Van Hire Co", "Email": "o'brien@example.com"}),
    );
    let obrien = lead_message(
        &tenant,
        "business",
        json!({"id": "lead-q", "name": "Siobhan O'Brien", "email": "O'Brien@example.com", "stage": "contacted"}),
        Some("Wants 3 vans"),
    );
    let delivery = ctx.deliver(&[obrien]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let leads = ctx.salesforce.records(ACME, "Lead");
    assert_eq!(
        leads.len(),
        1,
        "the quote did not break the query: {leads:#?}"
    );
    assert_eq!(leads[0]["Id"], json!(existing));
    assert_eq!(text(&leads[0], "FirstName"), Some("Siobhan"));
    assert_eq!(
        text(&leads[0], "Company"),
        Some("Van Hire Co"),
        "an update never overwrites Company"
    );

    let contact = ctx.salesforce.seed_record(
        ACME,
        "Contact",
        json!({"LastName": "Nguyen", "Phone": "+61400000009"}),
    );
    let nguyen = lead_message(
        &tenant,
        "business",
        json!({"id": "lead-p", "name": "Linh Nguyen", "phone": "+61 400 000 009", "stage": "new"}),
        Some("Asked about fleet insurance"),
    );
    ctx.deliver(&[nguyen]).await;
    assert_eq!(
        ctx.salesforce.records(ACME, "Lead").len(),
        1,
        "no lead for a known contact"
    );
    let updated = ctx.salesforce.record(ACME, "Contact", &contact).unwrap();
    assert_eq!(text(&updated, "FirstName"), Some("Linh"));
    let tasks = ctx.salesforce.records(ACME, "Task");
    assert!(tasks.iter().any(|t| t["WhoId"] == json!(contact)));
}

#[tokio::test]
async fn required_fields_get_defaults_and_a_required_lookup_dead_letters_naming_it() {
    let ctx = TestContext::new().await;
    ctx.salesforce.add_field(
        ACME,
        "Lead",
        SfField::picklist("Region__c", "Region", &["GCC", "APAC"]).required(),
    );
    let tenant = connected(&ctx, None, ACME).await;
    let delivery = ctx.deliver(&[noura(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        text(&ctx.salesforce.records(ACME, "Lead")[0], "Region__c"),
        Some("GCC")
    );

    // A lookup made required after the connect: the cached description does not know it, the
    // push describes again, and a lookup has no default: the DLQ names the field.
    ctx.salesforce.add_field(
        ACME,
        "Lead",
        SfField::reference("Partner__c", "Partner", &["Account"]).required(),
    );
    let describes_before = describes(&ctx);
    let other = lead_message(
        &tenant,
        "business",
        json!({"id": "lead-2", "name": "Omar Haddad", "email": "omar@example.com", "stage": "new"}),
        None,
    );
    let delivery = ctx.deliver(&[other]).await;
    assert!(delivery.failed.is_empty(), "permanent: {delivery:?}");
    assert_eq!(
        describes(&ctx) - describes_before,
        4,
        "described again once"
    );
    let dead = ctx.queues.dead_letters().await;
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].1["failure_reason"];
    assert!(
        reason.contains("REQUIRED_FIELD_MISSING Partner__c"),
        "{reason}"
    );
}

#[tokio::test]
async fn settings_check_mapped_fields_against_the_description() {
    let ctx = TestContext::new().await;
    add_custom_fields(&ctx, ACME);
    let tenant = connected(&ctx, None, ACME).await;
    for (mapping, why) in [
        (json!({"score": "No_Such_Field__c"}), "unknown"),
        (
            json!({"summary": "LeadRelay_Score__c"}),
            "a number field for text",
        ),
        (json!({"lead_id": "IsConverted"}), "not writable"),
    ] {
        let mut body = settings_body();
        body["field_mapping"] = mapping;
        let refused = sf_api(&ctx, "connections-api/settings.json", &tenant, Some(body)).await;
        assert_eq!(refused.status, 400, "{why}: {}", refused.body);
    }
    let mut unknown_key = settings_body();
    unknown_key["field_mapping"] = json!({"password": "LeadRelay_Id__c"});
    let refused = sf_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(unknown_key),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
}

#[tokio::test]
async fn pipelines_are_record_types_with_their_stages_or_the_master() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    let listed = sf_api(&ctx, "connections-api/pipelines.json", &tenant, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let pipelines = listed.body["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 1);
    assert_eq!(pipelines[0]["id"], "012000000000000AAA");
    let stages = pipelines[0]["stages"].as_array().unwrap();
    assert_eq!(stages[0]["id"], "Prospecting");
    assert!(stages
        .iter()
        .any(|s| s["id"] == "Closed Won" && s["is_closed"] == true));

    ctx.salesforce.add_record_type(
        UAT,
        "Opportunity",
        "0125g000000RTLAAA2",
        "Retail",
        "Retail",
        vec![
            "Prospecting",
            "Negotiation/Review",
            "Closed Won",
            "Closed Lost",
        ],
    );
    let uat = connected(&ctx, Some(json!({"environment": "sandbox"})), UAT).await;
    let listed = sf_api(&ctx, "connections-api/pipelines.json", &uat, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let pipelines = listed.body["pipelines"].as_array().unwrap();
    let retail = pipelines
        .iter()
        .find(|p| p["id"] == "0125g000000RTLAAA2")
        .unwrap_or_else(|| panic!("{pipelines:?}"));
    assert_eq!(retail["label"], "Retail");
    let ids: Vec<&str> = retail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "Prospecting",
            "Negotiation/Review",
            "Closed Won",
            "Closed Lost"
        ]
    );
}

#[tokio::test]
async fn an_org_near_its_daily_allocation_keeps_the_lead_for_later() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    ctx.salesforce.set_api_usage(ACME, 14_000);
    let delivery = ctx.deliver(&[noura(&tenant, "new")]).await;
    assert_eq!(delivery.failed.len(), 1, "back to SQS: {delivery:?}");
    assert!(ctx.queues.dead_letters().await.is_empty());
    assert!(ctx.salesforce.records(ACME, "Lead").is_empty());
    let calls = api_calls(&ctx);
    let delivery = ctx.redeliver(1).await;
    assert_eq!(delivery.failed.len(), 1);
    assert_eq!(api_calls(&ctx), calls, "held back without spending a call");
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "business"))
        .await;
    assert_eq!(listed.body["connections"][0]["status"], "active");
}

#[tokio::test]
async fn a_dead_grant_needs_reauth_and_disconnect_revokes_at_the_login_host() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, Some(json!({"environment": "sandbox"})), UAT).await;
    ctx.salesforce.expire_sessions(UAT);
    ctx.salesforce.inject(
        SalesforceRoute::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#
                .into(),
        ),
    );
    let delivery = ctx.deliver(&[noura(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    // The lead waits for the reconnect (docs/token-custody.md), not in the DLQ.
    assert!(ctx.queues.dead_letters().await.is_empty());
    let listed = ctx
        .api(ApiEvent::sample("connections-api/list.json").claims(&tenant, "business"))
        .await;
    assert_eq!(listed.body["connections"][0]["status"], "needs_reauth");
    assert_eq!(listed.body["connections"][0]["parked_leads"], 1);

    let gone = sf_api(&ctx, "connections-api/disconnect.json", &tenant, None).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.body["revoked_at_provider"], true);
    let revoke = ctx
        .salesforce
        .requests()
        .into_iter()
        .find(|r| r.path == "/services/oauth2/revoke")
        .unwrap();
    assert_eq!(revoke.host, "test.salesforce.com");
    assert_eq!(ctx.salesforce.revocations(UAT), 1);
}

#[tokio::test]
async fn the_schedule_refreshes_at_the_login_host_and_keeps_the_rotated_token() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, Some(json!({"environment": "sandbox"})), UAT).await;
    let c = stored(&ctx, &tenant).await;
    assert!(ctx
        .services
        .store
        .update_tokens(
            &TenantId::parse(&tenant).unwrap(),
            Provider::Salesforce,
            c.version,
            &c.credentials,
            spent_token()
        )
        .await
        .unwrap());
    let summary = ctx.run_schedule().await;
    assert_eq!(summary.refreshed, 1, "{summary:?}");
    assert_eq!(
        token_hosts(&ctx, "refresh_token"),
        vec!["test.salesforce.com"]
    );
    // The rotated token works: the next expiry refreshes again without burning the grant.
    ctx.salesforce.expire_sessions(UAT);
    let delivery = ctx.deliver(&[noura(&tenant, "new")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.salesforce.refresh_calls(UAT), 2);
    assert!(!ctx.salesforce.grant_revoked_on_reuse(UAT));
    assert_eq!(ctx.salesforce.records(UAT, "Lead").len(), 1);
}

#[tokio::test]
async fn a_refresh_naming_a_foreign_instance_is_never_followed_and_its_tokens_are_kept() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, None, ACME).await;
    let before = stored(&ctx, &tenant).await;
    ctx.salesforce.expire_sessions(ACME);
    ctx.salesforce
        .migrate_instance(ACME, "acme.salesforce.com.evil.example");
    ctx.deliver(&[noura(&tenant, "new")]).await;
    assert_eq!(ctx.salesforce.refresh_calls(ACME), 1);
    assert!(
        ctx.salesforce
            .requests()
            .iter()
            .all(|r| !r.host.contains("evil.example")),
        "nothing was sent to the host the refresh answer named"
    );
    let after = stored(&ctx, &tenant).await;
    assert_eq!(
        after.account["instance_url"],
        "https://acme.my.salesforce.com"
    );
    assert_ne!(
        after.credentials.as_base64(),
        before.credentials.as_base64(),
        "the rotated tokens were stored all the same"
    );
    assert!(!ctx.salesforce.grant_revoked_on_reuse(ACME));
}
