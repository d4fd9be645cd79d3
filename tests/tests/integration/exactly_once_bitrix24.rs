//! Bitrix24 exactly once in effect: a push killed right after any of its CRM calls, or a create
//! whose answer was lost after Bitrix24 applied it, delivered again, still leaves the lead as one
//! contact, one deal in the right stage and one timeline comment. Kill points and lost answers
//! come from a `FaultProxy` in front of the Bitrix24 simulator.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxiedCall, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::setup;
use serde_json::{json, Value};
use shared::push::MessageOutcome;

const SOUQ: &str = "souq-bakery.bitrix24.com";

/// A Pro tenant with SOUQ connected (directly, not through the proxy) and a stage mapping on the
/// default category saved.
async fn connected(ctx: &TestContext) -> String {
    let settings = json!({"pipeline_id": "0", "stage_mapping": {
        "new": "NEW", "qualified": "PREPARATION", "won": "WON"}});
    setup::bitrix24_with_settings(ctx, SOUQ, settings)
        .await
        .expect("a connected Bitrix24 tenant")
        .tenant
}

/// One version of a lead: `email` and `phone` when given, `stage`, `summary`, at `at`.
struct Version {
    id: String,
    email: Option<String>,
    phone: Option<String>,
    stage: &'static str,
    summary: &'static str,
    at: &'static str,
}

impl Version {
    fn body(&self, tenant: &str) -> String {
        let mut lead = json!({"id": self.id, "name": "Noura Al-Kuwari", "source": "whatsapp",
                              "score": 77, "stage": self.stage});
        if let Some(email) = &self.email {
            lead["email"] = email.as_str().into();
        }
        if let Some(phone) = &self.phone {
            lead["phone"] = phone.as_str().into();
        }
        let mut body: Value =
            serde_json::from_str(&lead_message(tenant, "pro", lead, Some(self.summary))).unwrap();
        body["occurred_at"] = self.at.into();
        body.to_string()
    }

    /// What the simulator holds of this lead that is not exactly one contact, one deal in
    /// `stage` and one comment with this summary, linked together; `None` when all is right.
    fn problems(&self, ctx: &TestContext, stage: &str) -> Option<String> {
        let contacts: Vec<_> = ctx
            .bitrix
            .contacts(SOUQ)
            .into_iter()
            .filter(|c| {
                c.fields.get("ORIGIN_ID") == Some(&json!(self.id))
                    || self.email.as_ref().is_some_and(|e| {
                        values(&c.fields, "EMAIL")
                            .iter()
                            .any(|v| v.eq_ignore_ascii_case(e))
                    })
            })
            .collect();
        let deals: Vec<_> = ctx
            .bitrix
            .deals(SOUQ)
            .into_iter()
            .filter(|d| d.fields.get("ORIGIN_ID") == Some(&json!(self.id)))
            .collect();
        let marker = format!("Lead: {} ·", self.id);
        let comments: Vec<_> = ctx
            .bitrix
            .comments(SOUQ)
            .into_iter()
            .filter(|c| c.comment.contains(&marker))
            .collect();
        if contacts.len() != 1 || deals.len() != 1 || comments.len() != 1 {
            return Some(format!(
                "{} contacts, {} deals, {} comments (want one each)",
                contacts.len(),
                deals.len(),
                comments.len()
            ));
        }
        let (contact, deal, comment) = (&contacts[0], &deals[0], &comments[0]);
        let mut wrong = Vec::new();
        if deal.fields["CONTACT_ID"] != json!(contact.id.to_string()) {
            wrong.push(format!("deal's contact {}", deal.fields["CONTACT_ID"]));
        }
        if deal.fields["STAGE_ID"] != json!(stage) {
            wrong.push(format!(
                "deal in {} (want {stage})",
                deal.fields["STAGE_ID"]
            ));
        }
        if comment.entity_type != "deal" || comment.entity_id != deal.id {
            wrong.push(format!(
                "comment on {} {}",
                comment.entity_type, comment.entity_id
            ));
        }
        if !comment.comment.contains(self.summary) {
            wrong.push(format!("comment says {:?}", comment.comment));
        }
        (!wrong.is_empty()).then(|| wrong.join(", "))
    }
}

fn values(fields: &serde_json::Map<String, Value>, field: &str) -> Vec<String> {
    fields
        .get(field)
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .map(|x| x["VALUE"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Every REST call (the OAuth server's calls are not the CRM's).
fn rest() -> CallMatch {
    CallMatch::path("/rest/")
}

/// The REST methods of `calls`, in order.
fn methods(calls: &[ProxiedCall]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| rest().matches(c))
        .map(|c| c.path.rsplit('/').next().unwrap_or_default().to_string())
        .collect()
}

fn method(name: &str) -> CallMatch {
    CallMatch::path(&format!("/rest/{name}"))
}

const FIRST: &str = "2026-11-28T04:00:00Z";
const LATER: &str = "2026-11-28T05:00:00Z";

/// A Qatari mobile number of the lead's own, so that no lead's phone finds another's contact.
fn phone_of(id: &str) -> String {
    let n = id.bytes().fold(2_166_136_261_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    format!("+974 55{:06}", n % 1_000_000)
}

fn new_lead(id: &str, email: &str) -> Version {
    Version {
        id: id.to_string(),
        email: Some(email.to_string()),
        phone: Some(phone_of(id)),
        stage: "qualified",
        summary: "Wants 200 boxes of maamoul for Eid",
        at: FIRST,
    }
}

fn won(id: &str, email: &str) -> Version {
    Version {
        stage: "won",
        summary: "Paid the deposit",
        at: LATER,
        ..new_lead(id, email)
    }
}

/// Kills the push of `version` after its nth REST call for n = 1, 2, ... (a fresh lead each
/// time, pushed first as `before` when given), lets the claim lapse, delivers it again, and
/// returns what went wrong per kill point; `sequence` is the uninterrupted push's calls.
async fn kill_after_each_call(
    ctx: &TestContext,
    proxy: &FaultProxy,
    services: &shared::Services,
    tenant: &str,
    sequence: &[String],
    lead: impl Fn(&str, &str) -> (Option<Version>, Version),
    stage: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for n in 1..=sequence.len() {
        let id = format!("lead-kill-{}-{n}", stage.to_ascii_lowercase());
        let email = format!("{id}@example.qa");
        let (before, version) = lead(&id, &email);
        if let Some(before) = before {
            let done = push_once(services, &before.body(tenant)).await;
            assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
        }
        proxy.clear();
        let body = version.body(tenant);
        let killed = push_killed_after(services, proxy, rest(), n, &body).await;
        if killed != KillResult::Killed {
            failures.push(format!(
                "kill after {n} ({}): the push ended first: {killed:?}",
                sequence[n - 1]
            ));
            continue;
        }
        expire_lead_claims(ctx, tenant).await;
        let again = push_once(services, &body).await;
        let mut problems = Vec::new();
        if !matches!(again, MessageOutcome::Done { .. }) {
            problems.push(format!("redelivery: {again:?}"));
        }
        problems.extend(version.problems(ctx, stage));
        if !problems.is_empty() {
            failures.push(format!(
                "kill after {n} ({}): {}; calls {:?}",
                sequence[n - 1],
                problems.join("; "),
                methods(&proxy.calls())
            ));
        }
    }
    failures
}

#[tokio::test]
async fn a_new_leads_push_killed_after_each_crm_call_then_redelivered_leaves_one_of_each() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.bitrix.base_url()).await;
    let services = ctx.services_with_provider_endpoint("bitrix24", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    // An uninterrupted first push: both searches, then the three creates.
    proxy.clear();
    let reference = new_lead("lead-reference", "reference@example.qa");
    let done = push_once(&services, &reference.body(&tenant)).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    let sequence = methods(&proxy.calls());
    assert_eq!(
        sequence,
        [
            "crm.duplicate.findbycomm",
            "crm.duplicate.findbycomm",
            "crm.contact.add",
            "crm.deal.add",
            "crm.timeline.comment.add"
        ]
    );
    assert_eq!(reference.problems(&ctx, "PREPARATION"), None);

    let failures = kill_after_each_call(
        &ctx,
        &proxy,
        &services,
        &tenant,
        &sequence,
        |id, email| (None, new_lead(id, email)),
        "PREPARATION",
    )
    .await;
    assert!(
        failures.is_empty(),
        "a first push makes {sequence:?}; after a kill:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_stage_move_killed_after_each_crm_call_then_redelivered_ends_in_the_later_stage() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.bitrix.base_url()).await;
    let services = ctx.services_with_provider_endpoint("bitrix24", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    // An uninterrupted update: the contact's name, the deal's stage, the comment.
    let first = new_lead("lead-moved", "moved@example.qa");
    let done = push_once(&services, &first.body(&tenant)).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    proxy.clear();
    let later = won("lead-moved", "moved@example.qa");
    let done = push_once(&services, &later.body(&tenant)).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    let sequence = methods(&proxy.calls());
    assert_eq!(
        sequence,
        [
            "crm.contact.update",
            "crm.deal.update",
            "crm.timeline.comment.update"
        ]
    );
    assert_eq!(later.problems(&ctx, "WON"), None);

    let failures = kill_after_each_call(
        &ctx,
        &proxy,
        &services,
        &tenant,
        &sequence,
        |id, email| (Some(new_lead(id, email)), won(id, email)),
        "WON",
    )
    .await;
    assert!(
        failures.is_empty(),
        "an update makes {sequence:?}; after a kill:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn each_create_whose_answer_is_lost_after_bitrix24_applied_it_is_found_on_redelivery() {
    let ctx = TestContext::new().await;
    let proxy = FaultProxy::start(&ctx.bitrix.base_url()).await;
    let services = ctx.services_with_provider_endpoint("bitrix24", &proxy.endpoint());
    let tenant = connected(&ctx).await;

    // (create whose answer is lost, whether the lead has an email and phone, what the
    // redelivery calls: one list call finds the record, then the push goes on).
    let found_contact = [
        "crm.contact.list",
        "crm.contact.update",
        "crm.deal.add",
        "crm.timeline.comment.add",
    ];
    let cases: [(&str, bool, &[&str]); 4] = [
        ("crm.contact.add", true, &found_contact),
        // Nothing to search by: only the lead's id on the contact finds it.
        ("crm.contact.add", false, &found_contact),
        (
            "crm.deal.add",
            true,
            &[
                "crm.contact.update",
                "crm.deal.list",
                "crm.timeline.comment.add",
            ],
        ),
        (
            "crm.timeline.comment.add",
            true,
            &["crm.contact.update", "crm.timeline.comment.list"],
        ),
    ];
    let faults = [
        ProxyFault::LoseAnswer(500),
        ProxyFault::LoseAnswer(502),
        ProxyFault::GarbageAfterApply,
    ];
    let mut failures = Vec::new();
    for (create, reachable, redelivery) in cases {
        for fault in &faults {
            let id = format!("lead-lost-{create}-{reachable}-{fault:?}")
                .replace(['(', ')'], "")
                .replace("crm.", "")
                .replace(".add", "")
                .to_ascii_lowercase();
            let email = format!("{id}@example.qa");
            let full = new_lead(&id, &email);
            let version = Version {
                email: full.email.clone().filter(|_| reachable),
                phone: full.phone.clone().filter(|_| reachable),
                ..full
            };
            let body = version.body(&tenant);
            proxy.clear();
            let lost = proxy.on(method(create), 1, fault.clone());
            let first = push_once(&services, &body).await;
            let case = format!("{create} answer lost as {fault:?}, email and phone: {reachable}");
            if !lost.has_fired() {
                failures.push(format!("{case}: never sent: {first:?}"));
                continue;
            }
            if !matches!(first, MessageOutcome::Retry { .. }) {
                failures.push(format!("{case}: not handed back for a retry: {first:?}"));
            }
            expire_lead_claims(&ctx, &tenant).await;
            proxy.clear();
            let again = push_once(&services, &body).await;
            let calls = methods(&proxy.calls());
            if !matches!(again, MessageOutcome::Done { .. }) {
                failures.push(format!("{case}: redelivery {again:?}"));
            }
            if let Some(problem) = version.problems(&ctx, "PREPARATION") {
                failures.push(format!("{case}: {problem}; redelivery called {calls:?}"));
            } else if calls != redelivery {
                failures.push(format!("{case}: redelivery called {calls:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
