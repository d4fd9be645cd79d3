//! Google Sheets batch pushes (issue 16) through lead-push's `process_batch`, against moto and
//! the Google simulator: many leads of one tenant in one append or one batch update (counted),
//! each lead's mapping naming its own row, and an append applied with its answer lost, then
//! delivered again, leaving one row per lead.

use relay_tests::context::TestContext;
use relay_tests::crash::expire_lead_claims;
use relay_tests::setup;
use relay_tests::sim::google::Cell;
use relay_tests::sim::{Fault, GoogleRoute, Lost};
use serde_json::json;
use shared::identity::TenantId;
use shared::provider::google_sheets::sheet::row_of;
use shared::push::MessageOutcome;
use shared::Provider;

const OWNER: &str = "owner@example.com";
const TAB: &str = "Qualified";

/// A Free tenant with Google Sheets connected and a new, empty spreadsheet chosen; returns the
/// tenant and the spreadsheet's id.
async fn connected(ctx: &TestContext) -> (String, String) {
    let tenant = setup::google_sheets_of(ctx, OWNER)
        .await
        .expect("a connected Google Sheets tenant")
        .tenant;
    let id = ctx.google.add_spreadsheet(OWNER, "Leads", &[TAB]);
    setup::choose_spreadsheet(ctx, &tenant, &id)
        .await
        .expect("the spreadsheet chosen");
    (tenant, id)
}

fn message(tenant: &str, lead: &str, stage: &str, at: &str) -> String {
    json!({
        "version": 1,
        "tenant_id": tenant,
        "plan": "free",
        "lead": {"id": lead, "name": "Mariam Al-Sada", "email": format!("{lead}@example.qa"),
                 "source": "instagram", "score": 82, "stage": stage},
        "summary": format!("{lead} wants a quote"),
        "occurred_at": at,
    })
    .to_string()
}

fn done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

/// The Sheets API calls since the last clear, as `METHOD path-tail`.
fn calls(ctx: &TestContext) -> Vec<String> {
    ctx.google
        .api_requests()
        .iter()
        .map(|r| {
            let tail = r.path.rsplit('/').next().unwrap_or_default();
            format!(
                "{} {}",
                r.method,
                tail.split('?').next().unwrap_or_default()
            )
        })
        .collect()
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// What is wrong with the sheet and the mappings: one header, exactly one row per lead of `ids`
/// in `stage`, `total` rows below the header, each lead's mapping naming its row and keeping no
/// intent.
async fn problems(
    ctx: &TestContext,
    tenant: &str,
    id: &str,
    ids: &[String],
    stage: &str,
    total: usize,
) -> Vec<String> {
    let rows: Vec<Vec<String>> = ctx
        .google
        .rows(id, TAB)
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    let mut wrong = Vec::new();
    if rows.first().and_then(|r| r.get(8)).map(String::as_str) != Some("Lead ID") {
        wrong.push(format!("row 1 is {:?}", rows.first()));
    }
    if rows.len() != total + 1 {
        wrong.push(format!(
            "{} rows below the header, want {total}",
            rows.len() - 1
        ));
    }
    for lead in ids {
        let at: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].get(8) == Some(lead))
            .collect();
        if at.len() != 1 {
            wrong.push(format!("{} rows of {lead}", at.len()));
            continue;
        }
        if rows[at[0]][6] != stage {
            wrong.push(format!("{lead} in {}", rows[at[0]][6]));
        }
        let mapping = ctx
            .services
            .store
            .lead_mappings_of(
                &TenantId::parse(tenant).unwrap(),
                Provider::GoogleSheets,
                lead,
            )
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.account == format!("{id}!{TAB}"));
        let recorded = mapping
            .as_ref()
            .and_then(|m| m.records.get("row"))
            .and_then(|range| row_of(range));
        if recorded != Some(at[0] as u64 + 1) || mapping.is_some_and(|m| !m.intents.is_empty()) {
            wrong.push(format!(
                "{lead} is in row {}, its mapping says {recorded:?}",
                at[0] + 1
            ));
        }
    }
    wrong
}

#[tokio::test]
async fn new_leads_go_in_one_append_and_changed_rows_in_one_batch_update() {
    let ctx = TestContext::new().await;
    let (tenant, id) = connected(&ctx).await;
    ctx.google.clear_requests();

    let first: Vec<String> = (0..10).map(|i| format!("gs-first-{i}")).collect();
    let bodies: Vec<String> = first
        .iter()
        .map(|l| message(&tenant, l, "qualified", "2026-11-28T04:00:00Z"))
        .collect();
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    let header = format!("'{TAB}'!A1:I1").replace('\'', "%27");
    assert_eq!(
        calls(&ctx),
        [
            format!("GET %27{TAB}%27!I:I"),
            format!("GET {header}"),
            "POST values:batchUpdate".to_string(),
            format!("POST %27{TAB}%27!A:I:append"),
        ],
        "an empty sheet: the id column, the first row, the header, one append for 10 rows"
    );
    let wrong = problems(&ctx, &tenant, &id, &first, "qualified", 10).await;
    assert!(wrong.is_empty(), "{wrong:?}");

    // The same leads changed, and ten new ones, in one invocation.
    ctx.google.clear_requests();
    let second: Vec<String> = (0..10).map(|i| format!("gs-second-{i}")).collect();
    let bodies: Vec<String> = first
        .iter()
        .map(|l| message(&tenant, l, "won", "2026-11-29T04:00:00Z"))
        .chain(
            second
                .iter()
                .map(|l| message(&tenant, l, "qualified", "2026-11-29T04:00:00Z")),
        )
        .collect();
    let outcomes = ctx.push_batch(&bodies, 1).await;
    assert!(outcomes.iter().all(done), "{outcomes:?}");
    assert_eq!(
        calls(&ctx),
        [
            format!("GET %27{TAB}%27!I:I"),
            "POST values:batchUpdate".to_string(),
            format!("POST %27{TAB}%27!A:I:append"),
        ],
        "10 changed rows in one batch update, 10 new ones in one append"
    );
    let mut wrong = problems(&ctx, &tenant, &id, &first, "won", 20).await;
    wrong.extend(problems(&ctx, &tenant, &id, &second, "qualified", 20).await);
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[tokio::test]
async fn an_append_applied_with_its_answer_lost_is_redelivered_without_a_second_row() {
    let ctx = TestContext::new().await;
    let (tenant, id) = connected(&ctx).await;
    let mut failures = Vec::new();
    let mut total = 0;
    for (k, lost) in [
        Lost::Status(
            500,
            "{\"error\":{\"code\":500,\"status\":\"INTERNAL\"}}".into(),
        ),
        Lost::Reset,
        Lost::Garbage,
    ]
    .into_iter()
    .enumerate()
    {
        let case = format!("append answer lost as {lost:?}");
        let ids: Vec<String> = (0..5).map(|i| format!("gs-lost-{k}-{i}")).collect();
        let bodies: Vec<String> = ids
            .iter()
            .map(|l| message(&tenant, l, "qualified", "2026-11-28T04:00:00Z"))
            .collect();
        ctx.google
            .inject(GoogleRoute::ValuesAppend, Fault::LoseAnswer(lost.clone()));
        let first = ctx.push_batch(&bodies, 1).await;
        total += ids.len();
        if ctx.google.pending_faults() != 0 {
            failures.push(format!("{case}: never sent: {first:?}"));
            continue;
        }
        if !first
            .iter()
            .all(|o| matches!(o, MessageOutcome::Retry { .. }))
        {
            failures.push(format!("{case}: not handed back for a retry: {first:?}"));
        }
        expire_lead_claims(&ctx, &tenant).await;
        ctx.google.clear_requests();
        let again = ctx.push_batch(&bodies, 1).await;
        if !again.iter().all(done) {
            failures.push(format!("{case}: redelivery {again:?}"));
        }
        let redelivery = calls(&ctx);
        if redelivery.iter().any(|c| c.ends_with(":append")) {
            failures.push(format!("{case}: appended again: {redelivery:?}"));
        }
        let wrong = problems(&ctx, &tenant, &id, &ids, "qualified", total).await;
        if !wrong.is_empty() {
            failures.push(format!(
                "{case}: {wrong:?}; redelivery called {redelivery:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
