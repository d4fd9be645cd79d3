//! Google Sheets through the real handlers, moto and the Google simulator: a Free tenant
//! connects with OAuth (offline, PKCE, the `spreadsheets` scope), names its spreadsheet by the
//! URL the browser shows, and leads become rows: appended once, updated in place when the lead
//! changes, written RAW so that nothing a lead typed becomes a formula.

use relay_tests::context::{outcome, TestContext};
use relay_tests::events::ApiEvent;
use relay_tests::queue::lead_message;
use relay_tests::sim::google::Cell;
use relay_tests::sim::{Fault, GoogleRoute};
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::Provider;

use crate::manage::spent_token;

const OWNER: &str = "owner@example.com";

async fn connected(ctx: &TestContext, plan: &str) -> String {
    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_google_sheets(&tenant, plan, OWNER).await);
    assert_eq!(back["status"], "connected", "{back:?}");
    tenant
}

async fn sheets_api(
    ctx: &TestContext,
    sample: &str,
    tenant: &str,
    body: Option<Value>,
) -> relay_tests::context::ApiResponse {
    ctx.provider_api(sample, "google_sheets", (tenant, "free"), body)
        .await
}

/// A spreadsheet of the owner's, chosen in the settings by its browser URL.
async fn with_spreadsheet(ctx: &TestContext, tenant: &str) -> String {
    let id = ctx
        .google
        .add_spreadsheet(OWNER, "Leads 2026", &["Qualified", "Archive"]);
    let saved = sheets_api(
        ctx,
        "connections-api/settings.json",
        tenant,
        Some(json!({"spreadsheet_url": format!("https://docs.google.com/spreadsheets/d/{id}/edit#gid=0")})),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert_eq!(saved.body["settings"]["pipeline_id"], json!(id));
    assert_eq!(saved.body["settings"]["sheet"], "Qualified");
    id
}

fn mariam(tenant: &str, stage: &str, summary: &str) -> String {
    lead_message(
        tenant,
        "free",
        json!({"id": "lead-gs-1", "name": "Mariam Al-Sada", "email": "mariam@example.qa",
               "phone": "+974 5551 2345", "source": "instagram", "score": 82, "stage": stage}),
        Some(summary),
    )
}

fn text(cell: &Cell) -> &str {
    match cell {
        Cell::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn a_free_tenant_connects_names_its_sheet_and_leads_become_rows_updated_in_place() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    let started = ctx
        .authorize_provider("google_sheets", &tenant, "free")
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let url = url::Url::parse(started.body["authorize_url"].as_str().unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query["scope"],
        "https://www.googleapis.com/auth/spreadsheets"
    );
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["code_challenge_method"], "S256");
    let back = ctx
        .callback(
            "google_sheets",
            &ctx.consent_for("google_sheets", &format!("{url}&sim_user={OWNER}"))
                .await,
        )
        .await;
    assert_eq!(outcome(&back)["status"], "connected", "{back}");
    let id = with_spreadsheet(&ctx, &tenant).await;

    let before = ctx.google.api_calls();
    let delivery = ctx
        .deliver(&[mariam(&tenant, "qualified", "Wants a family car")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.google.api_calls() - before,
        4,
        "lead-id column, first row, header, append"
    );
    let rows = ctx.google.rows(&id, "Qualified");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let header: Vec<&str> = rows[0].iter().map(text).collect();
    assert_eq!(
        header,
        ["Time", "Name", "Phone", "Email", "Source", "Score", "Stage", "Summary", "Lead ID"]
    );
    let row = &rows[1];
    assert_eq!(text(&row[0]), "2026-11-28 04:00:00 UTC");
    assert_eq!(text(&row[1]), "Mariam Al-Sada");
    assert_eq!(text(&row[2]), "+97455512345", "kept as text, not a number");
    assert_eq!(text(&row[3]), "mariam@example.qa");
    assert_eq!(text(&row[4]), "instagram");
    assert_eq!(row[5], Cell::Number(82.0));
    assert_eq!(text(&row[6]), "qualified");
    assert_eq!(text(&row[7]), "Wants a family car");
    assert_eq!(text(&row[8]), "lead-gs-1");
    assert!(ctx.google.rows(&id, "Archive").is_empty());

    // A second lead: two calls.
    let before = ctx.google.api_calls();
    let other = lead_message(
        &tenant,
        "free",
        json!({"id": "lead-gs-2", "name": "Yusuf Karim", "stage": "new"}),
        None,
    );
    ctx.deliver(&[other]).await;
    assert_eq!(ctx.google.api_calls() - before, 2);
    assert_eq!(ctx.google.rows(&id, "Qualified").len(), 3);

    // The first lead again, changed: its row is updated, nothing appended.
    let before = ctx.google.api_calls();
    let delivery = ctx
        .deliver(&[mariam(&tenant, "won", "Bought the SUV")])
        .await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.google.api_calls() - before,
        2,
        "row read back, row update"
    );
    let rows = ctx.google.rows(&id, "Qualified");
    assert_eq!(rows.len(), 3);
    assert_eq!(text(&rows[1][6]), "won");
    assert_eq!(text(&rows[1][7]), "Bought the SUV");

    // Identical: nothing.
    let before = ctx.google.api_calls();
    ctx.deliver(&[mariam(&tenant, "won", "Bought the SUV")])
        .await;
    assert_eq!(ctx.google.api_calls(), before);
}

#[tokio::test]
async fn nothing_a_lead_typed_becomes_a_formula() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, "free").await;
    let id = with_spreadsheet(&ctx, &tenant).await;
    let hostile = lead_message(
        &tenant,
        "free",
        json!({"id": "lead-evil", "name": "=HYPERLINK(\"https://evil.example\",\"Click\")",
               "source": "@SUM(A1:A9)", "stage": "new"}),
        Some("+cmd|' /C calc'!A0"),
    );
    let minus = lead_message(
        &tenant,
        "free",
        json!({"id": "lead-minus", "name": "-2+3", "stage": "new"}),
        Some("=1+1"),
    );
    let delivery = ctx.deliver(&[hostile, minus]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let rows = ctx.google.rows(&id, "Qualified");
    assert_eq!(rows.len(), 3);
    for row in &rows[1..] {
        for cell in row {
            assert!(!matches!(cell, Cell::Formula(_)), "{row:?}");
        }
    }
    let by_id = |lead: &str| rows.iter().find(|r| text(&r[8]) == lead).unwrap();
    assert!(text(&by_id("lead-evil")[1]).starts_with("=HYPERLINK"));
    assert_eq!(text(&by_id("lead-evil")[4]), "@SUM(A1:A9)");
    assert_eq!(text(&by_id("lead-evil")[7]), "+cmd|' /C calc'!A0");
    assert_eq!(text(&by_id("lead-minus")[7]), "=1+1");
    // Every write said RAW.
    assert!(ctx
        .google
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.contains("/values/"))
        .all(|r| r.query.contains("valueInputOption=RAW")));
}

#[tokio::test]
async fn settings_refuse_what_the_account_cannot_open_or_what_is_not_a_spreadsheet() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, "free").await;
    let theirs = ctx
        .google
        .add_spreadsheet("someone@else.example", "Private", &["Sheet1"]);
    let refused = sheets_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(json!({"spreadsheet_url": format!("https://docs.google.com/spreadsheets/d/{theirs}/edit")})),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("cannot open"));

    // Shared with the owner, it is accepted, with the tab named.
    ctx.google.share(&theirs, OWNER);
    let saved = sheets_api(
        &ctx,
        "connections-api/settings.json",
        &tenant,
        Some(json!({"spreadsheet_url": theirs, "sheet": "Sheet1"})),
    )
    .await;
    assert_eq!(saved.status, 200, "{}", saved.body);

    for (body, why) in [
        (
            json!({"spreadsheet_url": "https://docs.google.com.evil.example/spreadsheets/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit"}),
            "foreign host",
        ),
        (
            json!({"spreadsheet_url": "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit"}),
            "a document",
        ),
        (
            json!({"spreadsheet_url": theirs, "sheet": "No such tab"}),
            "unknown tab",
        ),
        (
            json!({"pipeline_id": "default", "stage_mapping": {}}),
            "CRM settings",
        ),
        (json!({}), "nothing"),
    ] {
        let refused = sheets_api(&ctx, "connections-api/settings.json", &tenant, Some(body)).await;
        assert_eq!(refused.status, 400, "{why}: {}", refused.body);
    }
    let hubspot = TestContext::tenant();
    assert_eq!(
        outcome(&ctx.connect_hubspot(&hubspot, "pro").await)["status"],
        "connected"
    );
    let crm = ctx
        .api(
            ApiEvent::sample("connections-api/settings.json")
                .claims(&hubspot, "pro")
                .body(json!({"pipeline_id": "default", "spreadsheet_url": theirs})),
        )
        .await;
    assert_eq!(crm.status, 400, "{}", crm.body);
}

#[tokio::test]
async fn a_free_tenant_may_connect_sheets_and_nothing_else() {
    let ctx = TestContext::new().await;
    let tenant = TestContext::tenant();
    assert_eq!(
        ctx.authorize_provider("google_sheets", &tenant, "free")
            .await
            .status,
        200
    );
    let crm = ctx.authorize_provider("hubspot", &tenant, "free").await;
    assert_eq!(crm.status, 403, "{}", crm.body);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_a_throttled_append_retried_and_a_revoked_grant_needs_reauth()
{
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx, "free").await;
    let id = with_spreadsheet(&ctx, &tenant).await;
    let tenant_id = TenantId::parse(&tenant).unwrap();
    let connection = ctx
        .services
        .store
        .get_connection(&tenant_id, Provider::GoogleSheets)
        .await
        .unwrap()
        .unwrap();
    assert!(ctx
        .services
        .store
        .update_tokens(
            &tenant_id,
            Provider::GoogleSheets,
            connection.version,
            &connection.credentials,
            spent_token()
        )
        .await
        .unwrap());
    // Throttled once: the client waits and appends once.
    ctx.google
        .inject(GoogleRoute::ValuesAppend, Fault::Throttle);
    let delivery = ctx.deliver(&[mariam(&tenant, "new", "Hi")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.google.refresh_calls(), 1);
    assert_eq!(
        ctx.google.rows(&id, "Qualified").len(),
        2,
        "one header, one row"
    );

    ctx.google.expire_sessions(OWNER);
    ctx.google.inject(
        GoogleRoute::Token,
        Fault::Status(
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
                .into(),
        ),
    );
    let delivery = ctx.deliver(&[mariam(&tenant, "won", "Bought")]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    // The lead waits for the reconnect (docs/token-custody.md), not in the DLQ.
    assert!(ctx.queues.dead_letters().await.is_empty());
    let gone = sheets_api(&ctx, "connections-api/disconnect.json", &tenant, None).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(ctx.google.revocations(), 1);
}
