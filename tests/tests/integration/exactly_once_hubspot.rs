//! HubSpot exactly-once: a push killed right after any of its CRM calls, or a create whose answer
//! was lost after HubSpot applied it, then delivered again, leaves the lead in HubSpot once: one
//! contact, one deal (in the lead's stage), one note, linked together. Faults come from a
//! `FaultProxy` in front of the HubSpot simulator; every check reads the simulator's records.

use relay_tests::context::TestContext;
use relay_tests::crash::{expire_lead_claims, push_killed_after, push_once, KillResult};
use relay_tests::fault_proxy::{CallMatch, FaultProxy, ProxyFault};
use relay_tests::queue::lead_message;
use relay_tests::sim::SimObject;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::push::MessageOutcome;
use shared::Provider;

/// A Pro tenant with HubSpot connected (directly, not through the proxy) and its stage mapping
/// saved (`new` → appointmentscheduled, `qualified` → qualifiedtobuy, `won` → closedwon).
async fn hubspot_tenant(ctx: &TestContext) -> String {
    relay_tests::setup::hubspot(ctx)
        .await
        .expect("a connected HubSpot tenant")
        .tenant
}

/// How a lead reaches HubSpot's contacts.
#[derive(Clone, Copy, Debug)]
enum Details {
    /// Upserted by email.
    Email,
    /// Searched for by phone, created with the lead id when not found.
    PhoneOnly,
}

#[derive(Clone, Debug)]
struct TestLead {
    id: String,
    details: Details,
}

impl TestLead {
    fn new(id: &str, details: Details) -> TestLead {
        TestLead {
            id: id.to_string(),
            details,
        }
    }

    fn email(&self) -> String {
        format!("{}@example.qa", self.id)
    }

    /// A phone number of the lead's own (digits derived from its id).
    fn phone(&self) -> String {
        let n: u32 = self.id.bytes().map(u32::from).sum::<u32>() * 7 + self.id.len() as u32;
        format!("5{:07}", n % 10_000_000)
    }

    /// Its message at `stage` with `summary`, occurring at `at` (RFC 3339).
    fn message(&self, tenant: &str, stage: &str, summary: &str, at: &str) -> String {
        let mut lead = json!({"id": self.id, "name": "Fatima Al-Kuwari", "country": "QA",
                              "source": "whatsapp", "score": 82, "stage": stage});
        match self.details {
            Details::Email => {
                lead["email"] = json!(self.email());
                lead["phone"] = json!(self.phone());
            }
            Details::PhoneOnly => lead["phone"] = json!(self.phone()),
        }
        let mut body: Value =
            serde_json::from_str(&lead_message(tenant, "pro", lead, Some(summary))).unwrap();
        body["occurred_at"] = json!(at);
        body.to_string()
    }

    fn first(&self, tenant: &str) -> String {
        self.message(
            tenant,
            "qualified",
            "Wants 12 seats",
            "2026-11-28T04:00:00Z",
        )
    }

    fn later(&self, tenant: &str) -> String {
        self.message(tenant, "won", "Signed for 14 seats", "2026-11-28T05:00:00Z")
    }
}

/// Every HubSpot call but the OAuth token endpoint's.
fn crm_calls() -> CallMatch {
    CallMatch::path("/oauth/").negate()
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// What is wrong with HubSpot's records of `lead`, given the deals and notes that existed before
/// its pushes; `None` when there is exactly one contact, one deal in `stage` and one note holding
/// `summary`, linked together, and the lead's mapping keeps no intent.
async fn problems(
    ctx: &TestContext,
    tenant: &str,
    lead: &TestLead,
    stage: &str,
    summary: &str,
    before: &Before,
) -> Option<String> {
    let phone = digits(&lead.phone());
    let contacts: Vec<SimObject> = ctx
        .hubspot
        .contacts()
        .into_iter()
        .filter(|c| match lead.details {
            Details::Email => c.properties.get("email") == Some(&lead.email()),
            // Stored in E.164 with the country's code in front.
            Details::PhoneOnly => c
                .properties
                .get("phone")
                .is_some_and(|p| digits(p).ends_with(&phone)),
        })
        .collect();
    let deals: Vec<SimObject> = ctx
        .hubspot
        .deals()
        .into_iter()
        .filter(|d| !before.deals.contains(&d.id))
        .collect();
    let notes: Vec<SimObject> = ctx
        .hubspot
        .notes()
        .into_iter()
        .filter(|n| !before.notes.contains(&n.id))
        .collect();
    let mut problems = Vec::new();
    if contacts.len() != 1 || deals.len() != 1 || notes.len() != 1 {
        problems.push(format!(
            "{} contacts, {} deals, {} notes (want one each)",
            contacts.len(),
            deals.len(),
            notes.len()
        ));
    } else {
        let (contact, deal, note) = (&contacts[0], &deals[0], &notes[0]);
        let deal_links = ctx.hubspot.associations("deals", &deal.id);
        let note_links = ctx.hubspot.associations("notes", &note.id);
        if !(deal_links.contains(&("contacts".into(), contact.id.clone(), 3))
            && note_links.contains(&("contacts".into(), contact.id.clone(), 202))
            && note_links.contains(&("deals".into(), deal.id.clone(), 214)))
        {
            problems.push(format!(
                "not linked: deal {deal_links:?}, note {note_links:?}"
            ));
        }
        if deal.properties.get("dealstage").map(String::as_str) != Some(stage) {
            problems.push(format!(
                "deal stage {:?}, want {stage}",
                deal.properties.get("dealstage")
            ));
        }
        let body = note
            .properties
            .get("hs_note_body")
            .cloned()
            .unwrap_or_default();
        if !body.contains(summary) {
            problems.push(format!("note body {body:?} lacks {summary:?}"));
        }
    }
    let mappings = ctx
        .services
        .store
        .lead_mappings_of(
            &TenantId::parse(tenant).unwrap(),
            Provider::Hubspot,
            &lead.id,
        )
        .await
        .unwrap();
    match &mappings[..] {
        [mapping] if mapping.intents.is_empty() && mapping.records.len() == 3 => {}
        other => problems.push(format!("mapping {other:?}")),
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The deals and notes of the hub before a lead's pushes.
struct Before {
    deals: Vec<String>,
    notes: Vec<String>,
}

impl Before {
    fn now(ctx: &TestContext) -> Before {
        Before {
            deals: ctx.hubspot.deals().into_iter().map(|d| d.id).collect(),
            notes: ctx.hubspot.notes().into_iter().map(|n| n.id).collect(),
        }
    }
}

/// One HubSpot portal behind a fault proxy, and a tenant connected to it.
struct Portal {
    ctx: TestContext,
    proxy: FaultProxy,
    services: shared::Services,
    tenant: String,
}

impl Portal {
    async fn start() -> Portal {
        // Search lags writes as HubSpot's does, so a lost create cannot be found by search.
        let ctx = TestContext::build(&[], |sim| {
            sim.search_index_lag = std::time::Duration::from_secs(60)
        })
        .await;
        let proxy = FaultProxy::start(&ctx.hubspot.base_url()).await;
        let services = ctx.services_with_provider_endpoint("hubspot", &proxy.endpoint());
        let tenant = hubspot_tenant(&ctx).await;
        proxy.clear();
        Portal {
            ctx,
            proxy,
            services,
            tenant,
        }
    }

    /// A portal where a lead was pushed already (its deal property exists): what every push but
    /// a portal's first one meets.
    async fn warmed() -> Portal {
        let portal = Portal::start().await;
        let warm = TestLead::new("lead-warm", Details::PhoneOnly);
        let done = push_once(&portal.services, &warm.first(&portal.tenant)).await;
        assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
        portal.proxy.clear();
        portal
    }

    /// `METHOD path` of every CRM call since the last clear.
    fn sequence(&self) -> Vec<String> {
        self.proxy
            .calls()
            .iter()
            .filter(|c| crm_calls().matches(c))
            .map(|c| format!("{} {}", c.method, c.path))
            .collect()
    }
}

/// The CRM calls an uninterrupted push of `body` makes in a fresh (or warmed) portal.
async fn reference(warm: bool, lead: &TestLead, later: bool) -> Vec<String> {
    let portal = if warm {
        Portal::warmed().await
    } else {
        Portal::start().await
    };
    let first = lead.first(&portal.tenant);
    if later {
        assert!(matches!(
            push_once(&portal.services, &first).await,
            MessageOutcome::Done { .. }
        ));
        portal.proxy.clear();
    }
    let body = if later {
        lead.later(&portal.tenant)
    } else {
        first
    };
    let done = push_once(&portal.services, &body).await;
    assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
    portal.sequence()
}

/// Kills the push of `lead` right after each of its CRM calls in turn (each time in a portal of
/// its own, fresh or warmed), lets the claim lapse, delivers the message again, and collects
/// what is wrong. `later`: the lead was pushed once before, and the killed message moves it to
/// a later stage with a new summary.
async fn crash_matrix(warm: bool, lead: &TestLead, later: bool) -> Vec<String> {
    let sequence = reference(warm, lead, later).await;
    let (stage, summary) = if later {
        ("closedwon", "Signed for 14 seats")
    } else {
        ("qualifiedtobuy", "Wants 12 seats")
    };
    let mut failures = Vec::new();
    for (i, call) in sequence.iter().enumerate() {
        let nth = i + 1;
        let portal = if warm {
            Portal::warmed().await
        } else {
            Portal::start().await
        };
        let before = Before::now(&portal.ctx);
        if later {
            let done = push_once(&portal.services, &lead.first(&portal.tenant)).await;
            assert!(matches!(done, MessageOutcome::Done { .. }), "{done:?}");
            portal.proxy.clear();
        }
        let body = if later {
            lead.later(&portal.tenant)
        } else {
            lead.first(&portal.tenant)
        };
        let killed =
            push_killed_after(&portal.services, &portal.proxy, crm_calls(), nth, &body).await;
        if killed != KillResult::Killed {
            failures.push(format!(
                "kill after call {nth} ({call}): push ended first: {killed:?}"
            ));
            continue;
        }
        expire_lead_claims(&portal.ctx, &portal.tenant).await;
        let redelivered = push_once(&portal.services, &body).await;
        if !matches!(redelivered, MessageOutcome::Done { .. }) {
            failures.push(format!(
                "kill after call {nth} ({call}): redelivery {redelivered:?}"
            ));
            continue;
        }
        if let Some(problem) =
            problems(&portal.ctx, &portal.tenant, lead, stage, summary, &before).await
        {
            failures.push(format!("kill after call {nth} ({call}): {problem}"));
        }
    }
    failures
}

#[tokio::test]
async fn a_new_lead_with_an_email_killed_after_each_call_is_in_hubspot_once() {
    let lead = TestLead::new("lead-email", Details::Email);
    let mut failures = crash_matrix(false, &lead, false).await;
    failures.extend(crash_matrix(true, &lead, false).await);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_new_phone_only_lead_killed_after_each_call_is_in_hubspot_once() {
    let lead = TestLead::new("lead-phone", Details::PhoneOnly);
    let mut failures = crash_matrix(false, &lead, false).await;
    failures.extend(crash_matrix(true, &lead, false).await);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_lead_moving_to_a_later_stage_killed_after_each_call_ends_in_that_stage_once() {
    let mut failures = crash_matrix(true, &TestLead::new("lead-move", Details::Email), true).await;
    failures.extend(
        crash_matrix(
            true,
            &TestLead::new("lead-move-p", Details::PhoneOnly),
            true,
        )
        .await,
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Each create's answer lost after HubSpot applied it (500, 502, or an unreadable 200), then the
/// message delivered again: one record of each.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_again_rather_than_repeated() {
    let creates = [
        (
            "contact",
            CallMatch::method_and_path("POST", "/crm/objects/2026-09/contacts")
                .and(CallMatch::path("/search").negate()),
        ),
        (
            "deal",
            CallMatch::method_and_path("POST", "/crm/objects/2026-09/deals"),
        ),
        (
            "note",
            CallMatch::method_and_path("POST", "/crm/objects/2026-09/notes"),
        ),
        (
            "deal property",
            CallMatch::method_and_path("POST", "/crm/properties/2026-09/deals"),
        ),
    ];
    let faults = [
        ProxyFault::LoseAnswer(500),
        ProxyFault::LoseAnswer(502),
        ProxyFault::GarbageAfterApply,
    ];
    let mut failures = Vec::new();
    for (kind, matcher) in creates {
        for fault in &faults {
            for warm in [false, true] {
                if warm && kind == "deal property" {
                    continue; // a warmed portal has it
                }
                let portal = if warm {
                    Portal::warmed().await
                } else {
                    Portal::start().await
                };
                let lead = TestLead::new(
                    &format!("lead-lost-{}", kind.replace(' ', "-")),
                    Details::PhoneOnly,
                );
                let body = lead.first(&portal.tenant);
                let before = Before::now(&portal.ctx);
                // The create that HubSpot applies (not a refused one): the nth match where the
                // first is refused for want of the property.
                let nth = if !warm && kind != "note" && kind != "deal property" {
                    2
                } else {
                    1
                };
                let fired = portal.proxy.on(matcher.clone(), nth, fault.clone());
                let first = push_once(&portal.services, &body).await;
                let label = format!(
                    "{kind} ({}), {fault:?}",
                    if warm { "warmed" } else { "fresh" }
                );
                if !fired.has_fired() {
                    failures.push(format!("{label}: the fault never fired"));
                    continue;
                }
                // The property create is keyed by name (a repeat is a 409), so the client may
                // retry it in place; the others go back to the queue.
                if kind != "deal property" && !matches!(first, MessageOutcome::Retry { .. }) {
                    failures.push(format!("{label}: first delivery {first:?}, want a retry"));
                }
                expire_lead_claims(&portal.ctx, &portal.tenant).await;
                let again = push_once(&portal.services, &body).await;
                if !matches!(again, MessageOutcome::Done { .. }) {
                    failures.push(format!("{label}: redelivery {again:?}"));
                    continue;
                }
                if let Some(problem) = problems(
                    &portal.ctx,
                    &portal.tenant,
                    &lead,
                    "qualifiedtobuy",
                    "Wants 12 seats",
                    &before,
                )
                .await
                {
                    failures.push(format!("{label}: {problem}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The calls a new lead costs: three with an email once the portal has its deal property, two
/// more on the portal's first push (the refused create and the property's creation).
#[tokio::test]
async fn calls_per_new_lead() {
    let email = TestLead::new("lead-count", Details::Email);
    assert_eq!(
        reference(true, &email, false).await,
        [
            "POST /crm/objects/2026-09/contacts/batch/upsert",
            "POST /crm/objects/2026-09/deals",
            "POST /crm/objects/2026-09/notes",
        ]
    );
    assert_eq!(
        reference(false, &email, false).await,
        [
            "POST /crm/objects/2026-09/contacts/batch/upsert",
            "POST /crm/objects/2026-09/deals",
            "POST /crm/properties/2026-09/deals",
            "POST /crm/objects/2026-09/deals",
            "POST /crm/objects/2026-09/notes",
        ]
    );
    let phone = TestLead::new("lead-count-p", Details::PhoneOnly);
    assert_eq!(
        reference(true, &phone, false).await,
        [
            "POST /crm/objects/2026-09/contacts/search",
            "POST /crm/objects/2026-09/contacts",
            "POST /crm/objects/2026-09/deals",
            "POST /crm/objects/2026-09/notes",
        ]
    );
    assert_eq!(
        reference(true, &email, true).await,
        [
            "PATCH /crm/objects/2026-09/contacts/10002",
            "PATCH /crm/objects/2026-09/deals/20000002",
            "PATCH /crm/objects/2026-09/notes/30000000002",
        ],
        "a known lead moving stage with a new summary"
    );
}
