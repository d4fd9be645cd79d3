//! `GET /leads/{lead_id}/sync` through the real connections-api handler, after real pushes
//! through the lead-push path into the simulators: three CRMs with their records and links, a
//! failing push, a dead-lettered one, tenant isolation, and nothing secret in the answer.

use std::collections::BTreeSet;

use relay_tests::context::{outcome, ApiResponse, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::queue::lead_message;
use relay_tests::sim::{Fault, Route};
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::push::{process_message, InboundMessage, MessageOutcome};
use shared::Provider;

const FRESHSALES_HOST: &str = "acme.myfreshworks.com";
const FRESHSALES_KEY: &str = "Qm7vT2xK9pL4wR8nZ3sB";
const ZOHO_DC: &str = "au";

fn sync_request(tenant: &str, lead_id: &str) -> ApiEvent {
    ApiEvent::sample("connections-api/lead-sync.json")
        .claims(tenant, "business")
        .path("GET", &format!("/leads/{lead_id}/sync"))
}

async fn sync(ctx: &TestContext, tenant: &str, lead_id: &str) -> ApiResponse {
    ctx.api(sync_request(tenant, lead_id)).await
}

fn message(tenant: &str, id: &str, email: &str) -> String {
    lead_message(
        tenant,
        "business",
        json!({"id": id, "name": "Fatima Al-Kuwari", "email": email, "phone": "5555 1234",
               "country": "QA", "source": "whatsapp", "score": 82, "stage": "new"}),
        Some("Wants 12 seats"),
    )
}

/// A Business tenant with HubSpot only.
async fn hubspot_tenant(ctx: &TestContext) -> String {
    let tenant = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&tenant, "business").await)["status"],
        "connected"
    );
    tenant
}

/// A Business tenant with HubSpot, Zoho (AU data centre) and Freshsales connected.
async fn three_crm_tenant(ctx: &TestContext) -> String {
    let tenant = hubspot_tenant(ctx).await;
    let zoho = outcome(&ctx.connect_zoho(&tenant, "business", ZOHO_DC, "").await);
    assert_eq!(zoho["status"], "connected", "{zoho:?}");
    ctx.freshsales.add_account(FRESHSALES_HOST, FRESHSALES_KEY);
    let fresh = ctx
        .connect_freshsales(
            &tenant,
            "business",
            json!({"domain": "acme", "api_key": FRESHSALES_KEY}),
        )
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    tenant
}

async fn account_fact(ctx: &TestContext, tenant: &str, provider: Provider, fact: &str) -> String {
    ctx.services
        .store
        .get_connection(&TenantId::parse(tenant).unwrap(), provider)
        .await
        .unwrap()
        .unwrap()
        .account[fact]
        .clone()
}

fn destination<'a>(answer: &'a Value, provider: &str) -> &'a Value {
    answer["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} entry in {answer}"))
}

fn record<'a>(entry: &'a Value, kind: &str) -> &'a Value {
    entry["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} record in {entry}"))
}

/// The properties infra/openapi.yaml documents for a schema (every one is strict).
fn documented(schema: &str) -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let schema = &doc["components"]["schemas"][schema];
    assert_eq!(
        schema["additionalProperties"],
        serde_yaml::Value::Bool(false)
    );
    schema["properties"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// Every object of the answer has only documented fields, with the required ones.
fn assert_matches_openapi(answer: &Value) {
    assert!(keys(answer).is_subset(&documented("LeadSync")), "{answer}");
    for entry in answer["destinations"].as_array().unwrap() {
        let fields = keys(entry);
        assert!(fields.is_subset(&documented("DestinationSync")), "{entry}");
        for required in ["provider", "status", "records"] {
            assert!(fields.contains(required), "{entry}");
        }
        for link in entry["records"].as_array().unwrap() {
            assert!(keys(link).is_subset(&documented("RecordLink")), "{link}");
        }
    }
}

#[tokio::test]
async fn a_lead_pushed_to_three_crms_answers_three_entries_with_ids_and_links() {
    let ctx = TestContext::new().await;
    let tenant = three_crm_tenant(&ctx).await;
    let delivery = ctx
        .deliver(&[message(&tenant, "lead-3crm", "fatima@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");

    let answer = sync(&ctx, &tenant, "lead-3crm").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &answer.body;
    println!(
        "GET /leads/lead-3crm/sync\n{}",
        serde_json::to_string_pretty(body).unwrap()
    );
    assert_matches_openapi(body);
    assert_eq!(body["lead_id"], "lead-3crm");
    assert_eq!(body["destinations"].as_array().unwrap().len(), 3);
    for entry in body["destinations"].as_array().unwrap() {
        assert_eq!(entry["status"], "pushed", "{entry}");
        assert!(entry["at"].is_string(), "{entry}");
    }

    // HubSpot: the contact and deal the simulator holds, on the connected portal.
    let hub = account_fact(&ctx, &tenant, Provider::Hubspot, "hub_id").await;
    let hubspot = destination(body, "hubspot");
    let contact_id = ctx.hubspot.contacts()[0].id.clone();
    let deal_id = ctx.hubspot.deals()[0].id.clone();
    assert_eq!(record(hubspot, "contact")["id"], contact_id.as_str());
    assert_eq!(
        record(hubspot, "contact")["url"],
        format!("https://app.hubspot.com/contacts/{hub}/record/0-1/{contact_id}")
    );
    assert_eq!(
        record(hubspot, "deal")["url"],
        format!("https://app.hubspot.com/contacts/{hub}/record/0-3/{deal_id}")
    );
    let note = record(hubspot, "note");
    assert!(
        note["id"].is_string() && note.get("url").is_none(),
        "{note}"
    );

    // Zoho: the Lead in the AU data centre's CRM, in the connected org.
    let org = account_fact(&ctx, &tenant, Provider::Zoho, "org_id").await;
    let zoho = destination(body, "zoho");
    let zoho_lead = ctx
        .zoho
        .leads(ZOHO_DC)
        .into_iter()
        .find(|l| l.text("Email") == Some("fatima@example.qa"))
        .expect("the lead in Zoho");
    assert_eq!(record(zoho, "lead")["id"], zoho_lead.id.as_str());
    assert_eq!(
        record(zoho, "lead")["url"],
        format!(
            "https://crm.zoho.com.au/crm/org{org}/tab/Leads/{}",
            zoho_lead.id
        )
    );

    // Freshsales: the contact on the account's own domain.
    let freshsales = destination(body, "freshsales");
    let fs_contact = ctx.freshsales.contacts(FRESHSALES_HOST)[0].id.clone();
    assert_eq!(record(freshsales, "contact")["id"], fs_contact.as_str());
    assert_eq!(
        record(freshsales, "contact")["url"],
        format!("https://{FRESHSALES_HOST}/crm/sales/contacts/{fs_contact}")
    );
    let fs_deal = record(freshsales, "deal");
    assert_eq!(
        fs_deal["url"],
        format!(
            "https://{FRESHSALES_HOST}/crm/sales/deals/{}",
            fs_deal["id"].as_str().unwrap()
        )
    );

    // Nothing secret: not the API key, no token, no credential field.
    let text = body.to_string();
    assert!(!text.contains(FRESHSALES_KEY));
    for word in ["token", "secret", "credentials", "api_key"] {
        assert!(
            !text.to_ascii_lowercase().contains(word),
            "{word} in {text}"
        );
    }
}

#[tokio::test]
async fn a_failing_push_shows_failed_with_its_reason_and_that_it_will_be_retried() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    for _ in 0..4 {
        ctx.hubspot.inject(
            Route::Contacts,
            Fault::Status(503, "down for maintenance".into()),
        );
    }
    let first = InboundMessage {
        message_id: "m-1".into(),
        body: message(&tenant, "lead-failing", "sam@example.com.au"),
        receive_count: 1,
        ..Default::default()
    };
    let outcome = process_message(&ctx.services, &first).await;
    assert!(
        matches!(outcome, MessageOutcome::Retry { .. }),
        "{outcome:?}"
    );

    let answer = sync(&ctx, &tenant, "lead-failing").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_matches_openapi(&answer.body);
    let hubspot = destination(&answer.body, "hubspot");
    assert_eq!(hubspot["status"], "failed", "{hubspot}");
    assert!(
        hubspot["reason"].as_str().unwrap().contains("503"),
        "{hubspot}"
    );
    assert_eq!(hubspot["attempts"], 1);
    assert_eq!(hubspot["will_retry"], true);
    assert!(hubspot["at"].is_string());

    // The redelivery succeeds: the failure gives way to `pushed`.
    ctx.hubspot.faults().clear();
    let second = InboundMessage {
        receive_count: 2,
        ..first
    };
    let outcome = process_message(&ctx.services, &second).await;
    assert!(
        matches!(outcome, MessageOutcome::Done { .. }),
        "{outcome:?}"
    );
    let answer = sync(&ctx, &tenant, "lead-failing").await;
    let hubspot = destination(&answer.body, "hubspot");
    assert_eq!(hubspot["status"], "pushed", "{hubspot}");
    assert!(hubspot.get("reason").is_none(), "{hubspot}");
}

#[tokio::test]
async fn a_dead_lettered_lead_shows_dead_lettered_with_the_reason() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    for _ in 0..4 {
        ctx.hubspot
            .inject(Route::Contacts, Fault::Status(502, "bad gateway".into()));
    }
    let last = InboundMessage {
        message_id: "m-9".into(),
        body: message(&tenant, "lead-dlq", "noor@example.qa"),
        receive_count: 5,
        ..Default::default()
    };
    let outcome = process_message(&ctx.services, &last).await;
    assert!(
        matches!(&outcome, MessageOutcome::DeadLettered { reason } if reason.contains("gave up after 5")),
        "{outcome:?}"
    );

    let answer = sync(&ctx, &tenant, "lead-dlq").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_matches_openapi(&answer.body);
    let hubspot = destination(&answer.body, "hubspot");
    assert_eq!(hubspot["status"], "dead_lettered", "{hubspot}");
    let reason = hubspot["reason"].as_str().unwrap();
    assert!(
        reason.contains("gave up after 5") && reason.contains("502"),
        "{reason}"
    );
    assert!(hubspot["at"].is_string());
}

#[tokio::test]
async fn another_tenant_cannot_see_the_lead_even_with_the_same_lead_id() {
    let ctx = TestContext::new().await;
    let tenant_a = hubspot_tenant(&ctx).await;
    let tenant_b = hubspot_tenant(&ctx).await;
    let delivery = ctx
        .deliver(&[message(&tenant_a, "lead-shared-id", "a@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");

    let a = sync(&ctx, &tenant_a, "lead-shared-id").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(destination(&a.body, "hubspot")["status"], "pushed");

    // B has HubSpot connected too, but never had this lead: 404, nothing of A's.
    let b = sync(&ctx, &tenant_b, "lead-shared-id").await;
    assert_eq!(b.status, 404, "{}", b.body);
    assert_eq!(b.body["error"], "not_found");
    let contact_id = ctx.hubspot.contacts()[0].id.clone();
    assert!(!b.body.to_string().contains(&contact_id));

    // Once B's own lead with that id is pushed, each tenant sees its own records only.
    let delivery = ctx
        .deliver(&[message(&tenant_b, "lead-shared-id", "b@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let a = sync(&ctx, &tenant_a, "lead-shared-id").await;
    let b = sync(&ctx, &tenant_b, "lead-shared-id").await;
    let a_contact = record(destination(&a.body, "hubspot"), "contact")["id"].clone();
    let b_contact = record(destination(&b.body, "hubspot"), "contact")["id"].clone();
    assert_ne!(a_contact, b_contact);
}

#[tokio::test]
async fn an_unknown_lead_is_404_a_malformed_id_400_and_no_claims_401() {
    let ctx = TestContext::new().await;
    let tenant = hubspot_tenant(&ctx).await;
    let unknown = sync(&ctx, &tenant, "lead-never-seen").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["error"], "not_found");

    let malformed = sync(&ctx, &tenant, "lead%20one").await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(malformed.body["error"], "bad_request");

    let anonymous = ctx
        .api(sync_request(&tenant, "lead-never-seen").without_claims())
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
}

/// A Sheets row's link names the tab the settings chose (its `gid`), not whichever tab the
/// spreadsheet opens on: here the second tab, whose `gid` is not 0.
#[tokio::test]
async fn a_sheets_row_link_opens_the_chosen_tab_at_the_row() {
    const OWNER: &str = "owner@example.com";
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_google_sheets(&tenant, "free", OWNER).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    let spreadsheet = ctx.google.add_spreadsheet(OWNER, "Leads", &["Overview"]);
    let gid = ctx.google.add_sheet(&spreadsheet, "Qualified");
    assert_ne!(gid, 0);
    let saved = ctx
        .provider_api(
            "connections-api/settings.json",
            "google_sheets",
            (&tenant, "free"),
            Some(json!({
                "spreadsheet_url": format!("https://docs.google.com/spreadsheets/d/{spreadsheet}/edit"),
                "sheet": "Qualified",
            })),
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);

    let delivery = ctx
        .deliver(&[message(&tenant, "lead-row", "mariam@example.qa")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let answer = sync(&ctx, &tenant, "lead-row").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_matches_openapi(&answer.body);
    let row = record(destination(&answer.body, "google_sheets"), "row");
    assert_eq!(
        row["url"],
        format!("https://docs.google.com/spreadsheets/d/{spreadsheet}/edit#gid={gid}&range=A2:I2"),
        "{row}"
    );
}
