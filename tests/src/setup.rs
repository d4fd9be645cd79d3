//! Tenants connected to each destination with saved settings, ready for leads: what the bench
//! and the fault soak start from.

use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::{json, Value};

use crate::context::{outcome, TestContext};
use crate::events::ApiEvent;

/// The Zoho data centre, Salesforce org, and owner of the Google spreadsheets used here.
pub const ZOHO_DC: &str = "au";
pub const SALESFORCE_ORG: &str = "acme";
pub const SHEETS_OWNER: &str = "bench@example.com";
pub const SHEET: &str = "Leads";

/// A destination as a tenant connected it: where its records are to be found again.
#[derive(Clone, Debug)]
pub struct Connected {
    pub tenant: String,
    pub plan: &'static str,
    /// The Freshsales host, Bitrix24 portal or Google spreadsheet id; empty elsewhere.
    pub account: String,
}

async fn save_settings(
    ctx: &TestContext,
    provider: &str,
    who: &Connected,
    body: Option<Value>,
) -> Result<()> {
    let mut event = ApiEvent::sample("connections-api/settings.json")
        .provider(provider)
        .claims(&who.tenant, who.plan);
    if let Some(body) = body {
        event = event.body(body);
    }
    let saved = ctx.api(event).await;
    ensure!(saved.status == 200, "{provider} settings: {}", saved.body);
    Ok(())
}

fn connected(tenant: String, plan: &'static str, account: &str) -> Connected {
    Connected {
        tenant,
        plan,
        account: account.to_string(),
    }
}

pub async fn hubspot(ctx: &TestContext) -> Result<Connected> {
    let who = connected(TestContext::tenant(), "pro", "");
    ensure!(outcome(&ctx.connect_hubspot(&who.tenant, who.plan).await)["status"] == "connected");
    save_settings(ctx, "hubspot", &who, None).await?;
    Ok(who)
}

/// Converting at `qualified` when `convert` is set.
pub async fn zoho(ctx: &TestContext, convert: bool) -> Result<Connected> {
    let mut settings = json!({"pipeline_id": "Standard (Standard)",
                              "stage_mapping": {"qualified": "Needs Analysis"}});
    if convert {
        settings["convert_at"] = json!("qualified");
    }
    zoho_with_settings(ctx, settings).await
}

/// A Pro tenant with Zoho connected in `ZOHO_DC` and `settings` saved.
pub async fn zoho_with_settings(ctx: &TestContext, settings: Value) -> Result<Connected> {
    let who = connected(TestContext::tenant(), "pro", ZOHO_DC);
    let back = outcome(&ctx.connect_zoho(&who.tenant, who.plan, ZOHO_DC, "").await);
    ensure!(back["status"] == "connected", "zoho: {back:?}");
    save_settings(ctx, "zoho", &who, Some(settings)).await?;
    Ok(who)
}

/// On its own account host, with the simulator's hourly limit lifted.
pub async fn freshsales(ctx: &TestContext, host: &str) -> Result<Connected> {
    ctx.freshsales.add_account(host, "bench-key");
    ctx.freshsales
        .set_rate_limit(host, 1_000_000, Duration::from_secs(3600));
    let who = connected(TestContext::tenant(), "pro", host);
    let connected = ctx
        .connect_freshsales(
            &who.tenant,
            who.plan,
            json!({"domain": host, "api_key": "bench-key"}),
        )
        .await;
    ensure!(connected.status == 200, "freshsales: {}", connected.body);
    let pipeline = &ctx.freshsales.pipelines(host)[0];
    let qualification = pipeline
        .stages
        .iter()
        .find(|s| s.name == "Qualification")
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let settings =
        json!({"pipeline_id": pipeline.id, "stage_mapping": {"qualified": qualification}});
    save_settings(ctx, "freshsales", &who, Some(settings)).await?;
    Ok(who)
}

/// In the simulator's org `acme`, converting at `qualified`.
pub async fn salesforce(ctx: &TestContext) -> Result<Connected> {
    let settings = json!({"pipeline_id": "012000000000000AAA",
                          "stage_mapping": {"qualified": "Qualification"},
                          "convert_at": "qualified"});
    salesforce_with_settings(ctx, settings).await
}

/// A Business tenant connected to the simulator's org `acme` (its schema described and cached
/// at connect) with `settings` saved.
pub async fn salesforce_with_settings(ctx: &TestContext, settings: Value) -> Result<Connected> {
    let who = connected(TestContext::tenant(), "business", SALESFORCE_ORG);
    let back = outcome(
        &ctx.connect_salesforce(&who.tenant, who.plan, None, SALESFORCE_ORG)
            .await,
    );
    ensure!(back["status"] == "connected", "salesforce: {back:?}");
    save_settings(ctx, "salesforce", &who, Some(settings)).await?;
    Ok(who)
}

/// A Free tenant writing into a new spreadsheet of its own.
pub async fn google_sheets(ctx: &TestContext, title: &str) -> Result<Connected> {
    let mut who = google_sheets_of(ctx, SHEETS_OWNER).await?;
    who.account = ctx.google.add_spreadsheet(SHEETS_OWNER, title, &[SHEET]);
    save_settings(
        ctx,
        "google_sheets",
        &who,
        Some(json!({ "spreadsheet_url": who.account })),
    )
    .await?;
    Ok(who)
}

/// A Free tenant with the Google account `owner` connected and no spreadsheet chosen yet.
pub async fn google_sheets_of(ctx: &TestContext, owner: &str) -> Result<Connected> {
    let who = connected(TestContext::tenant(), "free", "");
    let back = outcome(
        &ctx.connect_google_sheets(&who.tenant, who.plan, owner)
            .await,
    );
    ensure!(back["status"] == "connected", "google sheets: {back:?}");
    Ok(who)
}

/// The spreadsheet `id` chosen in a Free tenant's settings by its URL, as the setup page sends
/// it; returns the settings as saved.
pub async fn choose_spreadsheet(ctx: &TestContext, tenant: &str, id: &str) -> Result<Value> {
    let url = format!("https://docs.google.com/spreadsheets/d/{id}/edit#gid=0");
    let saved = ctx
        .provider_api(
            "connections-api/settings.json",
            "google_sheets",
            (tenant, "free"),
            Some(json!({ "spreadsheet_url": url })),
        )
        .await;
    ensure!(
        saved.status == 200,
        "google_sheets settings: {}",
        saved.body
    );
    Ok(saved.body["settings"].clone())
}

/// On its own portal.
pub async fn bitrix24(ctx: &TestContext, portal: &str) -> Result<Connected> {
    let settings =
        json!({"pipeline_id": "0", "stage_mapping": {"qualified": "PREPARATION", "won": "WON"}});
    bitrix24_with_settings(ctx, portal, settings).await
}

/// A Pro tenant with its own new `portal` connected and `settings` saved.
pub async fn bitrix24_with_settings(
    ctx: &TestContext,
    portal: &str,
    settings: Value,
) -> Result<Connected> {
    ctx.bitrix.add_portal(portal);
    let who = connected(TestContext::tenant(), "pro", portal);
    let back = outcome(
        &ctx.connect_bitrix24(&who.tenant, who.plan, portal, portal)
            .await,
    );
    ensure!(back["status"] == "connected", "bitrix24: {back:?}");
    save_settings(ctx, "bitrix24", &who, Some(settings)).await?;
    Ok(who)
}
