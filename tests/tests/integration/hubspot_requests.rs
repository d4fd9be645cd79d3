//! The HubSpot lead push against wiremock: the exact method, path, headers and JSON body of every
//! request, in order, and what the push records in `PushProgress`. Shapes from HubSpot's v3
//! object specs (`CRM/{Contacts,Deals,Notes}/Rollouts/424/v3`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use relay_tests::events::lead;
use relay_tests::mock_account::{sent, MockAccount, Sent};
use serde_json::{json, Value};
use shared::error::ProviderError;
use shared::lead::Lead;
use shared::provider::{text_digest, ProgressSnapshot, PushProgress};
use shared::stage::LeadStage;
use shared::store::ConnectionSettings;
use shared::Provider;

const TOKEN: &str = "test-token";
const CONTACTS: &str = "/crm/objects/2026-09/contacts";
const UPSERT: &str = "/crm/objects/2026-09/contacts/batch/upsert";
const SEARCH: &str = "/crm/objects/2026-09/contacts/search";
const DEALS: &str = "/crm/objects/2026-09/deals";
const NOTES: &str = "/crm/objects/2026-09/notes";

/// A portal on wiremock, reached the way production reaches HubSpot: the registry's API base
/// moved to the server by `HUBSPOT_ENDPOINT_URL`.
struct Portal(MockAccount);

impl Portal {
    async fn start() -> Portal {
        let account = BTreeMap::from([("hub_id".to_string(), "42".to_string())]);
        Portal(MockAccount::start(Provider::Hubspot, account).await)
    }

    async fn answer(&self, verb: &str, at: &str, status: u16, body: Value) {
        self.0.answer(verb, at, status, body).await;
    }

    async fn push(
        &self,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError> {
        let session = self.0.session(TOKEN);
        self.0
            .implementation()
            .push_lead(&session, lead, settings, progress)
            .await
    }

    /// Every request received, in order, after checking each one's credentials; HubSpot's
    /// calls carry no query string.
    async fn received(&self) -> Vec<Sent> {
        let sent = self.0.received("Bearer test-token", None).await;
        for request in &sent {
            assert_eq!(request.query, None, "{} {}", request.method, request.path);
        }
        sent
    }
}

fn object(id: &str) -> Value {
    json!({
        "id": id,
        "properties": {},
        "createdAt": "2026-11-28T04:00:01.000Z",
        "updatedAt": "2026-11-28T04:00:01.000Z",
        "archived": false
    })
}

fn upserted(id: &str) -> Value {
    json!({
        "status": "COMPLETE",
        "results": [{
            "id": id,
            "properties": {},
            "createdAt": "2026-11-28T04:00:01.000Z",
            "updatedAt": "2026-11-28T04:00:01.000Z",
            "archived": false,
            "new": true
        }],
        "startedAt": "2026-11-28T04:00:01.000Z",
        "completedAt": "2026-11-28T04:00:01.100Z"
    })
}

fn search_results(ids: &[&str]) -> Value {
    json!({ "total": ids.len(), "results": ids.iter().map(|id| object(id)).collect::<Vec<_>>() })
}

fn hubspot_error(category: &str, message: &str) -> Value {
    json!({
        "status": "error",
        "message": message,
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "category": category
    })
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        pipeline_id: "default".into(),
        stage_mapping: BTreeMap::from([
            (LeadStage::New, "appointmentscheduled".to_string()),
            (LeadStage::Qualified, "qualifiedtobuy".to_string()),
            (LeadStage::Won, "closedwon".to_string()),
        ]),
        convert_at: None,
        source_property: None,
        score_property: None,
        field_mapping: BTreeMap::new(),
        sheet: None,
        sheet_gid: None,
    }
}

const SUMMARY: &str = "Wants 12 seats <b>now</b> & a \"demo\"\nnext week";
/// [`SUMMARY`] as the note holds it: HTML-escaped, with what LeadRelay knows of the lead.
const NOTE_BODY: &str = "<p><strong>LeadRelay conversation summary</strong></p>\
    <p>Wants 12 seats &lt;b&gt;now&lt;/b&gt; &amp; a &quot;demo&quot;<br>next week</p>\
    <p>Lead: lead-1 · Source: whatsapp · Score: 82/100</p>\
    <p><small>LeadRelay lead lead-1</small></p>";

fn fatima(stage: &str, summary: &str) -> Lead {
    lead(
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa",
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82, "stage": stage}),
        Some(summary),
    )
}

fn fatima_properties() -> Value {
    json!({
        "firstname": "Fatima",
        "lastname": "Al-Kuwari",
        "email": "fatima@example.qa",
        "phone": "+97455551234"
    })
}

/// What a first push of `fatima("qualified", SUMMARY)` leaves behind.
fn known_fatima() -> PushProgress {
    PushProgress::resumed(ProgressSnapshot {
        records: BTreeMap::from([
            ("contact".to_string(), "501".to_string()),
            ("deal".to_string(), "9001".to_string()),
            ("note".to_string(), "7001".to_string()),
        ]),
        stage: Some("qualifiedtobuy".into()),
        summary_digest: Some(text_digest(NOTE_BODY)),
        intents: Default::default(),
    })
}

fn association(to: &str, type_id: u32) -> Value {
    json!({ "to": { "id": to }, "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }] })
}

/// Checks `hs_timestamp` (RFC 3339, UTC, milliseconds, about now) and replaces it with
/// `"<checked>"` so the rest of the note compares exactly.
fn take_note_timestamp(note: &mut Sent) {
    let stamp = note.body["properties"]["hs_timestamp"].take();
    let stamp = stamp.as_str().expect("hs_timestamp is a string");
    assert_eq!(stamp.len(), "2026-11-28T04:00:00.000Z".len(), "{stamp}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
        "{stamp}"
    );
    let at: DateTime<Utc> = stamp.parse().unwrap();
    assert!((Utc::now() - at).num_seconds().abs() < 60, "{stamp}");
    note.body["properties"]["hs_timestamp"] = json!("<checked>");
}

/// No property is ever sent as `null` or `""`: HubSpot would clear what the portal holds.
fn assert_nothing_blank(value: &Value, at: &str) {
    match value {
        Value::Null => panic!("null at {at}"),
        Value::String(s) => assert!(!s.is_empty(), "empty string at {at}"),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_nothing_blank(item, &format!("{at}[{i}]"));
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                assert_nothing_blank(item, &format!("{at}.{key}"));
            }
        }
        Value::Bool(_) | Value::Number(_) => {}
    }
}

#[tokio::test]
async fn a_new_lead_with_an_email_is_an_upsert_a_deal_and_a_note_in_exactly_three_requests() {
    let portal = Portal::start().await;
    portal.answer("POST", UPSERT, 200, upserted("501")).await;
    portal.answer("POST", DEALS, 201, object("9001")).await;
    portal.answer("POST", NOTES, 201, object("7001")).await;
    let mut progress = PushProgress::default();

    portal
        .push(
            &fatima("qualified", SUMMARY),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap();

    let mut requests = portal.received().await;
    assert_eq!(requests.len(), 3, "{requests:#?}");
    take_note_timestamp(&mut requests[2]);
    assert_eq!(
        requests,
        [
            sent(
                "POST",
                UPSERT,
                json!({
                    "inputs": [{ "id": "fatima@example.qa", "idProperty": "email", "properties": fatima_properties() }]
                })
            ),
            sent(
                "POST",
                DEALS,
                json!({
                    "properties": {
                        "dealname": "Fatima Al-Kuwari (LeadRelay)",
                        "pipeline": "default",
                        "dealstage": "qualifiedtobuy",
                        "leadrelay_lead_id": "lead-1"
                    },
                    "associations": [association("501", 3)]
                })
            ),
            sent(
                "POST",
                NOTES,
                json!({
                    "properties": { "hs_note_body": NOTE_BODY, "hs_timestamp": "<checked>" },
                    "associations": [association("501", 202), association("9001", 214)]
                })
            ),
        ]
    );
    assert_eq!(progress, known_fatima());
}

#[tokio::test]
async fn a_phone_only_lead_that_hubspot_does_not_know_is_searched_for_then_created() {
    let portal = Portal::start().await;
    portal
        .answer("POST", SEARCH, 200, search_results(&[]))
        .await;
    portal.answer("POST", CONTACTS, 201, object("601")).await;
    portal.answer("POST", DEALS, 201, object("9002")).await;
    portal.answer("POST", NOTES, 201, object("7002")).await;
    let lead = lead(
        json!({"id": "lead-2", "name": "Fatima Al-Kuwari", "phone": "5555 1234", "country": "QA", "stage": "new"}),
        Some("Called back"),
    );
    let mut progress = PushProgress::default();

    portal
        .push(&lead, Some(&settings()), &mut progress)
        .await
        .unwrap();

    let requests = portal.received().await;
    let paths: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", SEARCH),
            ("POST", CONTACTS),
            ("POST", DEALS),
            ("POST", NOTES)
        ]
    );
    assert_eq!(
        requests[..2],
        [
            sent(
                "POST",
                SEARCH,
                json!({
                    "filterGroups": [{ "filters": [{ "propertyName": "phone", "operator": "EQ", "value": "+97455551234" }] }],
                    "properties": ["email", "phone"],
                    "limit": 1
                })
            ),
            sent(
                "POST",
                CONTACTS,
                json!({
                    "properties": { "firstname": "Fatima", "lastname": "Al-Kuwari", "phone": "+97455551234", "leadrelay_lead_id": "lead-2" },
                    "associations": []
                })
            ),
        ]
    );
    assert_eq!(
        requests[2].body["properties"]["dealstage"],
        "appointmentscheduled"
    );
    assert_eq!(
        requests[2].body["associations"],
        json!([association("601", 3)])
    );
    assert_eq!(progress.records["contact"], "601");
}

#[tokio::test]
async fn a_phone_only_lead_that_hubspot_knows_updates_the_contact_it_found() {
    let portal = Portal::start().await;
    portal
        .answer("POST", SEARCH, 200, search_results(&["602"]))
        .await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/contacts/602",
            200,
            object("602"),
        )
        .await;
    portal.answer("POST", DEALS, 201, object("9003")).await;
    let lead = lead(
        json!({"id": "lead-3", "name": "Jack Jones", "phone": "0412 345 678", "country": "AU", "stage": "qualified"}),
        None,
    );
    let mut progress = PushProgress::default();

    portal
        .push(&lead, Some(&settings()), &mut progress)
        .await
        .unwrap();

    let requests = portal.received().await;
    assert_eq!(
        requests.len(),
        3,
        "search, update, deal; no summary, no note: {requests:#?}"
    );
    assert_eq!(
        requests[0].body["filterGroups"][0]["filters"][0]["value"],
        "+61412345678"
    );
    assert_eq!(
        requests[1],
        sent(
            "PATCH",
            "/crm/objects/2026-09/contacts/602",
            json!({
                "properties": { "firstname": "Jack", "lastname": "Jones", "phone": "+61412345678" }
            })
        )
    );
    assert_eq!(requests[2].path, DEALS);
    assert_eq!(
        requests[2].body["associations"],
        json!([association("602", 3)])
    );
    assert_eq!(
        progress.records.get("contact").map(String::as_str),
        Some("602")
    );
    assert_eq!(progress.records.get("note"), None);
}

#[tokio::test]
async fn a_known_lead_whose_stage_changed_moves_its_deal_and_leaves_the_unchanged_note_alone() {
    let portal = Portal::start().await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/contacts/501",
            200,
            object("501"),
        )
        .await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/deals/9001",
            200,
            object("9001"),
        )
        .await;
    let mut progress = known_fatima();

    portal
        .push(&fatima("won", SUMMARY), Some(&settings()), &mut progress)
        .await
        .unwrap();

    assert_eq!(
        portal.received().await,
        [
            sent(
                "PATCH",
                "/crm/objects/2026-09/contacts/501",
                json!({ "properties": fatima_properties() })
            ),
            sent(
                "PATCH",
                "/crm/objects/2026-09/deals/9001",
                json!({ "properties": { "dealstage": "closedwon" } })
            ),
        ]
    );
    let mut expected = known_fatima().snapshot();
    expected.stage = Some("closedwon".into());
    let expected = PushProgress::resumed(expected);
    assert_eq!(progress, expected);
}

#[tokio::test]
async fn a_known_lead_whose_summary_changed_rewrites_its_note_body_only() {
    let portal = Portal::start().await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/contacts/501",
            200,
            object("501"),
        )
        .await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/notes/7001",
            200,
            object("7001"),
        )
        .await;
    let mut progress = known_fatima();

    portal
        .push(
            &fatima("qualified", "Booked a demo for Tuesday"),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap();

    let body =
        "<p><strong>LeadRelay conversation summary</strong></p><p>Booked a demo for Tuesday</p>\
                <p>Lead: lead-1 · Source: whatsapp · Score: 82/100</p>\
    <p><small>LeadRelay lead lead-1</small></p>";
    assert_eq!(
        portal.received().await,
        [
            sent(
                "PATCH",
                "/crm/objects/2026-09/contacts/501",
                json!({ "properties": fatima_properties() })
            ),
            sent(
                "PATCH",
                "/crm/objects/2026-09/notes/7001",
                json!({ "properties": { "hs_note_body": body } })
            ),
        ]
    );
    let mut expected = known_fatima().snapshot();
    expected.summary_digest = Some(text_digest(body));
    let expected = PushProgress::resumed(expected);
    assert_eq!(progress, expected);
}

#[tokio::test]
async fn a_known_lead_with_nothing_new_costs_only_the_contact_update() {
    let portal = Portal::start().await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/contacts/501",
            200,
            object("501"),
        )
        .await;
    let mut progress = known_fatima();

    portal
        .push(
            &fatima("qualified", SUMMARY),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap();

    assert_eq!(
        portal.received().await,
        [sent(
            "PATCH",
            "/crm/objects/2026-09/contacts/501",
            json!({ "properties": fatima_properties() })
        )]
    );
    assert_eq!(progress, known_fatima());
}

#[tokio::test]
async fn a_known_contact_deleted_in_hubspot_is_found_again_by_email() {
    let portal = Portal::start().await;
    portal
        .answer(
            "PATCH",
            "/crm/objects/2026-09/contacts/501",
            404,
            hubspot_error("OBJECT_NOT_FOUND", "resource not found"),
        )
        .await;
    portal.answer("POST", UPSERT, 200, upserted("777")).await;
    for path in [
        "/crm/objects/2026-09/deals/9001/associations/default/contacts/777",
        "/crm/objects/2026-09/notes/7001/associations/default/contacts/777",
    ] {
        portal
            .answer(
                "PUT",
                path,
                200,
                json!({"status": "COMPLETE", "results": []}),
            )
            .await;
    }
    let mut progress = known_fatima();

    portal
        .push(
            &fatima("qualified", SUMMARY),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap();

    let requests = portal.received().await;
    assert_eq!(
        requests[..2],
        [
            sent(
                "PATCH",
                "/crm/objects/2026-09/contacts/501",
                json!({ "properties": fatima_properties() })
            ),
            sent(
                "POST",
                UPSERT,
                json!({
                    "inputs": [{ "id": "fatima@example.qa", "idProperty": "email", "properties": fatima_properties() }]
                })
            ),
        ]
    );
    assert_eq!(progress.records["contact"], "777");
    // The deal and note the lead already had move onto the contact found again.
    assert_eq!(
        requests[2..],
        [
            sent(
                "PUT",
                "/crm/objects/2026-09/deals/9001/associations/default/contacts/777",
                Value::Null
            ),
            sent(
                "PUT",
                "/crm/objects/2026-09/notes/7001/associations/default/contacts/777",
                Value::Null
            ),
        ]
    );
}

#[tokio::test]
async fn what_the_lead_does_not_have_is_left_out_of_every_body_rather_than_sent_blank() {
    let portal = Portal::start().await;
    portal
        .answer("POST", SEARCH, 200, search_results(&[]))
        .await;
    portal.answer("POST", CONTACTS, 201, object("603")).await;
    portal.answer("POST", UPSERT, 200, upserted("604")).await;
    portal.answer("POST", DEALS, 201, object("9004")).await;
    portal.answer("POST", NOTES, 201, object("7004")).await;
    // One word is a last name; no email, source, score or summary.
    let phone_only = lead(
        json!({"id": "lead-4", "name": "Fatima", "phone": "+974 5555 1234", "stage": "new",
               "email": null, "source": "  ", "score": null}),
        None,
    );
    // No phone, no source, no score.
    let email_only = lead(
        json!({"id": "lead-5", "name": "Jack Jones", "email": "Jack@Example.com.au", "stage": "new"}),
        Some("Asked for a quote"),
    );

    portal
        .push(&phone_only, Some(&settings()), &mut PushProgress::default())
        .await
        .unwrap();
    portal
        .push(&email_only, Some(&settings()), &mut PushProgress::default())
        .await
        .unwrap();

    let mut requests = portal.received().await;
    let paths: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", SEARCH),
            ("POST", CONTACTS),
            ("POST", DEALS),
            ("POST", UPSERT),
            ("POST", DEALS),
            ("POST", NOTES)
        ],
        "no summary, no note"
    );
    take_note_timestamp(&mut requests[5]);
    for request in &requests {
        assert_nothing_blank(
            &request.body,
            &format!("{} {}", request.method, request.path),
        );
    }
    assert_eq!(
        requests[1].body["properties"],
        json!({ "lastname": "Fatima", "phone": "+97455551234", "leadrelay_lead_id": "lead-4" })
    );
    assert_eq!(
        requests[3].body["inputs"][0]["properties"],
        json!({ "firstname": "Jack", "lastname": "Jones", "email": "jack@example.com.au" })
    );
    assert_eq!(
        requests[5].body["properties"]["hs_note_body"],
        "<p><strong>LeadRelay conversation summary</strong></p><p>Asked for a quote</p><p>Lead: lead-5</p>\
         <p><small>LeadRelay lead lead-5</small></p>"
    );
}

/// A lead without a name is called "Unknown" so that CRMs requiring a last name accept it, but
/// HubSpot does not require one: sent on an upsert or update it overwrites the last name of the
/// contact the portal already holds (and leaves a stale first name beside it).
#[tokio::test]
async fn a_nameless_lead_does_not_overwrite_the_last_name_hubspot_already_holds() {
    let portal = Portal::start().await;
    portal.answer("POST", UPSERT, 200, upserted("501")).await;
    portal.answer("POST", DEALS, 201, object("9001")).await;
    let nameless = lead(
        json!({"id": "lead-6", "email": "fatima@example.qa", "stage": "new"}),
        None,
    );

    portal
        .push(&nameless, Some(&settings()), &mut PushProgress::default())
        .await
        .unwrap();

    let requests = portal.received().await;
    assert_eq!(
        requests[0].body["inputs"][0]["properties"],
        json!({ "email": "fatima@example.qa" })
    );
}

#[tokio::test]
async fn a_conflict_from_hubspot_is_a_permanent_rejection_carrying_its_category() {
    let portal = Portal::start().await;
    portal
        .answer("POST", SEARCH, 200, search_results(&[]))
        .await;
    portal
        .answer(
            "POST",
            CONTACTS,
            409,
            hubspot_error("CONFLICT", "Contact already exists. Existing ID: 12345"),
        )
        .await;
    let lead = lead(
        json!({"id": "lead-7", "name": "Fatima", "phone": "+97455551234", "stage": "new"}),
        None,
    );
    let mut progress = PushProgress::default();

    let error = portal
        .push(&lead, Some(&settings()), &mut progress)
        .await
        .unwrap_err();

    match &error {
        ProviderError::Rejected {
            provider,
            status,
            code,
            ..
        } => {
            assert_eq!(
                (*provider, *status, code.as_str()),
                (Provider::Hubspot, 409, "CONFLICT")
            )
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert!(!error.is_retryable());
    assert!(
        !error.to_string().contains("12345"),
        "HubSpot's prose stays out of Display: {error}"
    );
    assert_eq!(
        portal.received().await.len(),
        2,
        "search, create; not resent"
    );
    // The contact's intent stays: a retry reads it back by the lead id before creating it.
    let expected = PushProgress::resumed(ProgressSnapshot {
        intents: ["contact".to_string()].into(),
        ..ProgressSnapshot::default()
    });
    assert_eq!(progress, expected);
}

#[tokio::test]
async fn a_validation_error_on_the_deal_is_a_rejection_and_the_contact_already_made_is_remembered()
{
    let portal = Portal::start().await;
    portal.answer("POST", UPSERT, 200, upserted("501")).await;
    portal
        .answer(
            "POST",
            DEALS,
            400,
            hubspot_error("VALIDATION_ERROR", "Property values were not valid"),
        )
        .await;
    let mut progress = PushProgress::default();

    let error = portal
        .push(
            &fatima("qualified", SUMMARY),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ProviderError::Rejected { status: 400, code, .. } if code == "VALIDATION_ERROR"),
        "{error}"
    );
    assert!(!error.is_retryable());
    let paths: Vec<_> = portal
        .received()
        .await
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        [UPSERT, DEALS],
        "no note without its deal, and the deal is not resent"
    );
    // The deal's intent stays: the retry reads the deal by its lead id before creating it.
    let expected = PushProgress::resumed(ProgressSnapshot {
        records: BTreeMap::from([("contact".to_string(), "501".to_string())]),
        intents: ["deal".to_string()].into(),
        ..ProgressSnapshot::default()
    });
    assert_eq!(progress, expected, "a retry resumes from the contact");
}

#[tokio::test]
async fn a_401_from_hubspot_is_unauthorized_rather_than_a_rejection() {
    let portal = Portal::start().await;
    portal
        .answer(
            "POST",
            UPSERT,
            401,
            hubspot_error(
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found.",
            ),
        )
        .await;
    let mut progress = PushProgress::default();

    let error = portal
        .push(
            &fatima("qualified", SUMMARY),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ProviderError::Unauthorized { provider: Provider::Hubspot, code } if code == "INVALID_AUTHENTICATION"),
        "{error}"
    );
    assert!(!error.to_string().contains(TOKEN));
    assert_eq!(
        portal.received().await.len(),
        1,
        "refreshing is the caller's call, not the client's"
    );
    assert_eq!(progress, PushProgress::default());
}
