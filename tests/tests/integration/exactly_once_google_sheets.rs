//! Google Sheets exactly once: one row per lead (and one header per sheet) whatever answer is
//! lost and wherever a push is killed. A `FaultProxy` in front of the Google simulator kills a
//! push right after a Sheets call was applied, or loses, garbles or resets that call's answer;
//! the message is then delivered again through the real lead-push code and the sheet checked.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::setup;
use relay_tests::sim::google::Cell;
use serde_json::json;
use shared::identity::TenantId;
use shared::provider::google_sheets::sheet::row_of;
use shared::push::MessageOutcome;
use shared::store::LeadMapping;
use shared::{Provider, Services};

const OWNER: &str = "owner@example.com";
const TAB: &str = "Qualified";
const HEADER: [&str; 9] = [
    "Time", "Name", "Phone", "Email", "Source", "Score", "Stage", "Summary", "Lead ID",
];
const FIRST_AT: &str = "2026-11-28T04:00:00Z";
const LATER_AT: &str = "2026-11-29T09:30:00Z";

/// A Free tenant with Google Sheets connected (straight to the simulator, not through a proxy).
async fn connected(ctx: &TestContext) -> String {
    setup::google_sheets_of(ctx, OWNER)
        .await
        .expect("a connected Google Sheets tenant")
        .tenant
}

/// A new, empty spreadsheet of the owner's, chosen in the tenant's settings; returns its id.
async fn choose_new_spreadsheet(ctx: &TestContext, tenant: &str) -> String {
    let id = ctx.google.add_spreadsheet(OWNER, "Leads", &[TAB]);
    choose_spreadsheet(ctx, tenant, &id).await;
    id
}

async fn choose_spreadsheet(ctx: &TestContext, tenant: &str, id: &str) {
    let settings = setup::choose_spreadsheet(ctx, tenant, id)
        .await
        .expect("the spreadsheet chosen");
    assert_eq!(settings["pipeline_id"], json!(id));
    assert_eq!(settings["sheet"], TAB);
}

/// A v1 lead message that happened at `at`.
fn message(tenant: &str, lead: &str, stage: &str, summary: &str, at: &str) -> String {
    json!({
        "version": 1,
        "tenant_id": tenant,
        "plan": "free",
        "lead": {"id": lead, "name": "Mariam Al-Sada", "email": "mariam@example.qa",
                 "phone": "+974 5551 2345", "source": "instagram", "score": 82, "stage": stage},
        "summary": summary,
        "occurred_at": at,
    })
    .to_string()
}

/// Every Sheets API call (not the OAuth host's).
fn sheets_calls() -> CallMatch {
    CallMatch::path("/v4/spreadsheets/")
}

fn appends() -> CallMatch {
    CallMatch::method_and_path("POST", ":append")
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// What is wrong with the sheet `id`, which should hold one header (row 1), exactly one row of
/// `lead` in stage `stage` with `summary`, and `others` rows of other leads; `None` if nothing.
fn sheet_problems(
    ctx: &TestContext,
    id: &str,
    lead: &str,
    stage: &str,
    summary: &str,
    others: usize,
) -> Option<String> {
    let rows: Vec<Vec<String>> = ctx
        .google
        .rows(id, TAB)
        .iter()
        .map(|r| r.iter().map(text).collect())
        .collect();
    let headers = rows.iter().filter(|r| r[..] == HEADER[..]).count();
    let mine: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r.get(8).map(String::as_str) == Some(lead))
        .collect();
    let mut problems = Vec::new();
    if headers != 1 || rows.first().map(|r| &r[..]) != Some(&HEADER.map(String::from)[..]) {
        problems.push(format!("{headers} headers, row 1 {:?}", rows.first()));
    }
    if mine.len() != 1 {
        problems.push(format!("{} rows of {lead}", mine.len()));
    } else if mine[0][6] != stage || mine[0][7] != summary {
        problems.push(format!("row of {lead}: {:?}", mine[0]));
    }
    if rows.len() != 1 + 1 + others {
        problems.push(format!("{} rows in all: {rows:?}", rows.len()));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The lead's mapping in spreadsheet `id` (the account is `<spreadsheet id>!<tab>`).
async fn mapping(ctx: &TestContext, tenant: &str, lead: &str, id: &str) -> Option<LeadMapping> {
    ctx.services
        .store
        .lead_mappings_of(
            &TenantId::parse(tenant).unwrap(),
            Provider::GoogleSheets,
            lead,
        )
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.account == format!("{id}!{TAB}"))
}

/// What is wrong with the lead's stored mapping after a completed push: it must name the row the
/// lead is in and keep no intent.
async fn mapping_problems(ctx: &TestContext, tenant: &str, lead: &str, id: &str) -> Option<String> {
    let Some(mapping) = mapping(ctx, tenant, lead, id).await else {
        return Some("no mapping".into());
    };
    let recorded = mapping.records.get("row").and_then(|r| row_of(r));
    let at = ctx
        .google
        .rows(id, TAB)
        .iter()
        .position(|r| r.get(8).map(text).as_deref() == Some(lead))
        .map(|i| i as u64 + 1);
    (recorded.is_none() || recorded != at || !mapping.intents.is_empty()).then(|| {
        format!(
            "mapping records {:?}, intents {:?}; the lead's row is {at:?}",
            mapping.records, mapping.intents
        )
    })
}

fn is_done(outcome: &MessageOutcome) -> bool {
    matches!(outcome, MessageOutcome::Done { .. })
}

/// The Sheets calls an uninterrupted push of `body` makes, as `METHOD path`.
async fn reference_calls(services: &Services, proxy: &FaultProxy, body: &str) -> Vec<String> {
    proxy.clear();
    let done = push_once(services, body).await;
    assert!(is_done(&done), "{done:?}");
    proxy
        .calls()
        .iter()
        .filter(|c| sheets_calls().matches(c))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

/// Kills a push of `body` after its `i`th Sheets call, checks that a killed write left the
/// `row` intent stored, lets the claim lapse and delivers `body` again; the problems found.
async fn kill_and_redeliver(
    ctx: &TestContext,
    services: &Services,
    proxy: &FaultProxy,
    (tenant, id, lead): (&str, &str, &str),
    i: usize,
    body: &str,
    intent_expected: bool,
) -> Vec<String> {
    proxy.clear();
    let killed = push_killed_after(services, proxy, sheets_calls(), i, body).await;
    if killed != KillResult::Killed {
        return vec![format!("the push ended first: {killed:?}")];
    }
    let mut problems = Vec::new();
    if intent_expected {
        // The write reached Google and the push died: the row must be known to be in doubt.
        let intents = mapping(ctx, tenant, lead, id)
            .await
            .map(|m| m.intents)
            .unwrap_or_default();
        if !intents.contains("row") {
            problems.push(format!(
                "after the kill the mapping holds intents {intents:?}"
            ));
        }
    }
    expire_lead_claims(ctx, tenant).await;
    let again = push_once(services, body).await;
    if !is_done(&again) {
        problems.push(format!("redelivery: {again:?}"));
    }
    problems
}

#[tokio::test]
async fn a_new_lead_killed_after_each_sheets_call_then_redelivered_is_one_header_and_one_row() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.google.base_url()).await;
    let services = ctx.services_with_provider_endpoint("google_sheets", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    // The first lead of an empty sheet: lead-id column, first row, header, append.
    choose_new_spreadsheet(&ctx, &tenant).await;
    let first = reference_calls(
        &services,
        &proxy,
        &message(&tenant, "lead-ref", "qualified", "Hi", FIRST_AT),
    )
    .await;
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(
        first[2].starts_with("PUT") && first[3].starts_with("POST"),
        "{first:?}"
    );
    // A lead in a sheet already in use: lead-id column, append.
    let second = reference_calls(
        &services,
        &proxy,
        &message(&tenant, "lead-ref-2", "new", "Hello", FIRST_AT),
    )
    .await;
    assert_eq!(second.len(), 2, "{second:?}");

    let mut failures = Vec::new();
    for i in 1..=first.len() {
        let id = choose_new_spreadsheet(&ctx, &tenant).await;
        let lead = format!("lead-empty-{i}");
        let body = message(&tenant, &lead, "qualified", "Wants a family car", FIRST_AT);
        let write = !first[i - 1].starts_with("GET");
        let mut problems = kill_and_redeliver(
            &ctx,
            &services,
            &proxy,
            (&tenant, &id, &lead),
            i,
            &body,
            write,
        )
        .await;
        problems.extend(sheet_problems(
            &ctx,
            &id,
            &lead,
            "qualified",
            "Wants a family car",
            0,
        ));
        problems.extend(mapping_problems(&ctx, &tenant, &lead, &id).await);
        if !problems.is_empty() {
            failures.push(format!(
                "empty sheet, kill after call {i} ({}): {}",
                first[i - 1],
                problems.join("; ")
            ));
        }
    }
    for i in 1..=second.len() {
        let id = choose_new_spreadsheet(&ctx, &tenant).await;
        let done = push_once(
            &ctx.services,
            &message(&tenant, "lead-before", "new", "Earlier", FIRST_AT),
        )
        .await;
        assert!(is_done(&done), "{done:?}");
        let lead = format!("lead-used-{i}");
        let body = message(&tenant, &lead, "qualified", "Wants a family car", FIRST_AT);
        let write = !second[i - 1].starts_with("GET");
        let mut problems = kill_and_redeliver(
            &ctx,
            &services,
            &proxy,
            (&tenant, &id, &lead),
            i,
            &body,
            write,
        )
        .await;
        problems.extend(sheet_problems(
            &ctx,
            &id,
            &lead,
            "qualified",
            "Wants a family car",
            1,
        ));
        problems.extend(mapping_problems(&ctx, &tenant, &lead, &id).await);
        if !problems.is_empty() {
            failures.push(format!(
                "used sheet, kill after call {i} ({}): {}",
                second[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_lead_moved_to_a_later_stage_killed_after_each_sheets_call_has_its_one_row_updated() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.google.base_url()).await;
    let services = ctx.services_with_provider_endpoint("google_sheets", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    choose_new_spreadsheet(&ctx, &tenant).await;
    let done = push_once(
        &services,
        &message(&tenant, "lead-ref", "qualified", "Hi", FIRST_AT),
    )
    .await;
    assert!(is_done(&done), "{done:?}");
    // The lead changed: its row read back, its row updated.
    let update = reference_calls(
        &services,
        &proxy,
        &message(&tenant, "lead-ref", "won", "Bought the SUV", LATER_AT),
    )
    .await;
    assert_eq!(update.len(), 2, "{update:?}");
    assert!(
        update[0].starts_with("GET") && update[1].starts_with("PUT"),
        "{update:?}"
    );

    let mut failures = Vec::new();
    for i in 1..=update.len() {
        let id = choose_new_spreadsheet(&ctx, &tenant).await;
        let lead = format!("lead-moved-{i}");
        let done = push_once(
            &ctx.services,
            &message(&tenant, &lead, "qualified", "Wants a family car", FIRST_AT),
        )
        .await;
        assert!(is_done(&done), "{done:?}");
        let body = message(&tenant, &lead, "won", "Bought the SUV", LATER_AT);
        let mut problems = kill_and_redeliver(
            &ctx,
            &services,
            &proxy,
            (&tenant, &id, &lead),
            i,
            &body,
            false,
        )
        .await;
        problems.extend(sheet_problems(&ctx, &id, &lead, "won", "Bought the SUV", 0));
        problems.extend(mapping_problems(&ctx, &tenant, &lead, &id).await);
        if !problems.is_empty() {
            failures.push(format!(
                "update, kill after call {i} ({}): {}",
                update[i - 1],
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_append_whose_answer_is_lost_is_found_by_its_lead_id_not_appended_again() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.google.base_url()).await;
    let services = ctx.services_with_provider_endpoint("google_sheets", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    let mut failures = Vec::new();
    for fault in [
        ProxyFault::LoseAnswer(500),
        ProxyFault::LoseAnswer(502),
        ProxyFault::GarbageAfterApply,
        ProxyFault::ResetAfterApply,
    ] {
        let id = choose_new_spreadsheet(&ctx, &tenant).await;
        let lead = "lead-lost";
        let body = message(&tenant, lead, "qualified", "Wants a family car", FIRST_AT);
        proxy.clear();
        let lost = proxy.on(appends(), 1, fault.clone());
        let first = push_once(&services, &body).await;
        let mut problems = Vec::new();
        if !lost.has_fired() || !matches!(first, MessageOutcome::Retry { .. }) {
            problems.push(format!(
                "first delivery: {first:?} (fault fired: {})",
                lost.has_fired()
            ));
        }
        let in_doubt = mapping(&ctx, &tenant, lead, &id)
            .await
            .is_some_and(|m| m.intents.contains("row") && !m.records.contains_key("row"));
        if !in_doubt {
            problems.push("the mapping does not keep the append in doubt".into());
        }
        expire_lead_claims(&ctx, &tenant).await;
        let again = push_once(&services, &body).await;
        if !is_done(&again) {
            problems.push(format!("redelivery: {again:?}"));
        }
        let appended = proxy
            .calls()
            .iter()
            .filter(|c| appends().matches(c))
            .count();
        if appended != 1 {
            problems.push(format!("{appended} appends sent"));
        }
        problems.extend(sheet_problems(
            &ctx,
            &id,
            lead,
            "qualified",
            "Wants a family car",
            0,
        ));
        problems.extend(mapping_problems(&ctx, &tenant, lead, &id).await);
        if !problems.is_empty() {
            failures.push(format!("{fault:?} on the append: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_header_write_whose_answer_is_lost_leaves_one_header() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.google.base_url()).await;
    let services = ctx.services_with_provider_endpoint("google_sheets", &proxy.endpoint());
    let tenant = connected(&ctx).await;
    let header_write = CallMatch::method_and_path("PUT", "/values/");

    let mut failures = Vec::new();
    for fault in [
        ProxyFault::LoseAnswer(500),
        ProxyFault::LoseAnswer(502),
        ProxyFault::GarbageAfterApply,
        ProxyFault::ResetAfterApply,
    ] {
        let id = choose_new_spreadsheet(&ctx, &tenant).await;
        let lead = "lead-header";
        let body = message(&tenant, lead, "new", "First of the sheet", FIRST_AT);
        proxy.clear();
        let lost = proxy.on(header_write.clone(), 1, fault.clone());
        let mut outcomes = Vec::new();
        // A 5xx on the header (a PUT, safe to resend) is resent within the push; the others
        // fail the delivery and the next one carries on.
        for _ in 0..3 {
            let outcome = push_once(&services, &body).await;
            let done = is_done(&outcome);
            outcomes.push(outcome);
            if done {
                break;
            }
            expire_lead_claims(&ctx, &tenant).await;
        }
        let mut problems = Vec::new();
        if !lost.has_fired() || !outcomes.last().is_some_and(is_done) {
            problems.push(format!(
                "outcomes {outcomes:?} (fault fired: {})",
                lost.has_fired()
            ));
        }
        problems.extend(sheet_problems(
            &ctx,
            &id,
            lead,
            "new",
            "First of the sheet",
            0,
        ));
        problems.extend(mapping_problems(&ctx, &tenant, lead, &id).await);
        if !problems.is_empty() {
            failures.push(format!("{fault:?} on the header: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_success_answer_that_is_not_googles_is_not_taken_for_a_written_row() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.google.base_url()).await;
    let services = ctx.services_with_provider_endpoint("google_sheets", &proxy.endpoint());
    let tenant = connected(&ctx).await;
    let put = CallMatch::method_and_path("PUT", "/values/");

    // The header write answered 200 by something that never forwarded it: the push must not
    // go on to append the lead into row 1 as if the header were there.
    let id = choose_new_spreadsheet(&ctx, &tenant).await;
    let body = message(
        &tenant,
        "lead-a",
        "qualified",
        "Wants a family car",
        FIRST_AT,
    );
    proxy.clear();
    let header = proxy.on(put.clone(), 1, ProxyFault::Status(200));
    let first = push_once(&services, &body).await;
    assert!(header.has_fired());
    assert!(
        matches!(&first, MessageOutcome::Retry { .. }),
        "{first:?}; rows {:?}",
        ctx.google.rows(&id, TAB)
    );
    let again = push_once(&services, &body).await;
    assert!(is_done(&again), "{again:?}");
    assert_eq!(
        sheet_problems(&ctx, &id, "lead-a", "qualified", "Wants a family car", 0),
        None
    );

    // The row update answered the same way: the lead is not marked pushed in its old stage.
    let moved = message(&tenant, "lead-a", "won", "Bought the SUV", LATER_AT);
    let update = proxy.on(put, 1, ProxyFault::Status(200));
    let first = push_once(&services, &moved).await;
    assert!(update.has_fired());
    assert!(matches!(&first, MessageOutcome::Retry { .. }), "{first:?}");
    let again = push_once(&services, &moved).await;
    assert!(is_done(&again), "{again:?}");
    assert_eq!(
        sheet_problems(&ctx, &id, "lead-a", "won", "Bought the SUV", 0),
        None
    );
    assert_eq!(mapping_problems(&ctx, &tenant, "lead-a", &id).await, None);
}

#[tokio::test]
async fn choosing_another_spreadsheet_starts_afresh_there_and_leaves_the_old_row_alone() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let old = choose_new_spreadsheet(&ctx, &tenant).await;
    let body = message(
        &tenant,
        "lead-1",
        "qualified",
        "Wants a family car",
        FIRST_AT,
    );
    let delivery = ctx.deliver(std::slice::from_ref(&body)).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    let old_rows = ctx.google.rows(&old, TAB);
    assert_eq!(old_rows.len(), 2);

    // The same message again after the tenant chose another spreadsheet: a first push there.
    let new = choose_new_spreadsheet(&ctx, &tenant).await;
    let before = ctx.google.api_calls();
    let delivery = ctx.deliver(std::slice::from_ref(&body)).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(
        ctx.google.api_calls() - before,
        4,
        "lead-id column, first row, header, append in the new sheet"
    );
    assert_eq!(
        sheet_problems(&ctx, &new, "lead-1", "qualified", "Wants a family car", 0),
        None
    );
    assert_eq!(
        ctx.google.rows(&old, TAB),
        old_rows,
        "the old row untouched"
    );
    assert_eq!(mapping_problems(&ctx, &tenant, "lead-1", &new).await, None);
    assert_eq!(mapping_problems(&ctx, &tenant, "lead-1", &old).await, None);
    let requests = ctx.google.api_requests();
    assert!(
        requests[before..].iter().all(|r| !r.path.contains(&old)),
        "nothing sent to the old spreadsheet"
    );

    // Back to the first one, the lead changed: its row there is updated in place (row read back,
    // row update), and the second sheet is left as it is.
    choose_spreadsheet(&ctx, &tenant, &old).await;
    let new_rows = ctx.google.rows(&new, TAB);
    let before = ctx.google.api_calls();
    let moved = message(&tenant, "lead-1", "won", "Bought the SUV", LATER_AT);
    let delivery = ctx.deliver(&[moved]).await;
    assert!(delivery.failed.is_empty(), "{delivery:?}");
    assert_eq!(ctx.google.api_calls() - before, 2);
    assert_eq!(
        sheet_problems(&ctx, &old, "lead-1", "won", "Bought the SUV", 0),
        None
    );
    assert_eq!(ctx.google.rows(&new, TAB), new_rows);
}

/// The row found by its lead id when the lead's recorded row moved is recorded again; a row
/// deleted by hand is appended anew, once, and the mapping follows it.
#[tokio::test]
async fn a_row_that_moved_or_was_deleted_is_found_or_written_once() {
    let ctx = TestContext::new().await;
    let tenant = connected(&ctx).await;
    let id = choose_new_spreadsheet(&ctx, &tenant).await;
    for (lead, at) in [("lead-1", FIRST_AT), ("lead-2", FIRST_AT)] {
        let done = push_once(&ctx.services, &message(&tenant, lead, "new", "Hi", at)).await;
        assert!(is_done(&done), "{done:?}");
    }
    // Someone sorts the sheet: lead-2's row first.
    let mut rows = ctx.google.rows(&id, TAB);
    rows.swap(1, 2);
    ctx.google.seed_rows(&id, TAB, rows);
    let done = push_once(
        &ctx.services,
        &message(&tenant, "lead-1", "qualified", "Moved", LATER_AT),
    )
    .await;
    assert!(is_done(&done), "{done:?}");
    assert_eq!(
        sheet_problems(&ctx, &id, "lead-1", "qualified", "Moved", 1),
        None
    );
    assert_eq!(mapping_problems(&ctx, &tenant, "lead-1", &id).await, None);

    // Someone deletes lead-1's row (now row 3): a later change appends it again, once.
    let rows: Vec<Vec<Cell>> = ctx.google.rows(&id, TAB).into_iter().take(2).collect();
    ctx.google.seed_rows(&id, TAB, rows);
    let done = push_once(
        &ctx.services,
        &message(&tenant, "lead-1", "won", "Deleted", "2026-11-30T10:00:00Z"),
    )
    .await;
    assert!(is_done(&done), "{done:?}");
    assert_eq!(
        sheet_problems(&ctx, &id, "lead-1", "won", "Deleted", 1),
        None
    );
    assert_eq!(mapping_problems(&ctx, &tenant, "lead-1", &id).await, None);
}
