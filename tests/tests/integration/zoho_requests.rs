//! The Zoho push against wiremock: the exact method, path, headers and JSON body of every
//! request, in order, and what the push records. Shapes from Zoho's v8 OpenAPI specs
//! (`zoho/crm-oas`: upsertRecords, updateRecord, notes, convertLead, pipeline, layouts).
//!
//! The connection lives in Zoho's Australian data centre: every call must name
//! `www.zohoapis.com.au`, which the HTTP client's local routing carries in `X-Forwarded-Host`.

use std::collections::BTreeMap;

use relay_tests::events::lead;
use relay_tests::mock_account::{sent, MockAccount, Sent};
use serde_json::{json, Value};
use shared::error::ProviderError;
use shared::lead::Lead;
use shared::provider::{
    for_provider, text_digest, CrmProvider, ProgressSnapshot, PushProgress, Session,
};
use shared::stage::LeadStage;
use shared::store::{ConnectionSettings, ContactProperty};
use shared::Provider;

const TOKEN: &str = "1000.test-token";
const UPSERT: &str = "/crm/v8/Leads/upsert";
const NOTES: &str = "/crm/v8/Notes";
const SUMMARY: &str = "Wants 12 seats <b>now</b> & a demo next week";
/// [`SUMMARY`] as the note holds it: plain text, with what LeadRelay knows of the lead.
const NOTE: &str = "LeadRelay conversation summary\n\nWants 12 seats <b>now</b> & a demo next week\n\nLead: lead-1 · Source: whatsapp · Score: 82/100";

/// A Zoho org on wiremock, in the AU data centre.
struct Org(MockAccount);

fn zoho() -> &'static dyn CrmProvider {
    for_provider(Provider::Zoho).unwrap()
}

impl Org {
    async fn start() -> Org {
        let account = BTreeMap::from([
            (
                "accounts_server".to_string(),
                "https://accounts.zoho.com.au".to_string(),
            ),
            (
                "api_domain".to_string(),
                "https://www.zohoapis.com.au".to_string(),
            ),
            ("data_centre".to_string(), "au".to_string()),
        ]);
        let org = MockAccount::start(Provider::Zoho, account).await;
        assert_eq!(org.api_base.as_str(), "https://www.zohoapis.com.au/");
        Org(org)
    }

    async fn answer(&self, verb: &str, at: &str, status: u16, body: Value) {
        self.0.answer(verb, at, status, body).await;
    }

    fn session(&self) -> Session<'_> {
        self.0.session(TOKEN)
    }

    async fn push(
        &self,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError> {
        zoho()
            .push_lead(&self.session(), lead, settings, progress)
            .await
    }

    /// Every request received, in order: each with Zoho's token scheme, at the AU API host.
    async fn received(&self) -> Vec<Sent> {
        self.0
            .received(
                "Zoho-oauthtoken 1000.test-token",
                Some("www.zohoapis.com.au"),
            )
            .await
    }
}

fn success(id: &str, message: &str) -> Value {
    json!({"data": [{
        "code": "SUCCESS",
        "details": {
            "Modified_Time": "2026-11-28T08:00:00+04:00",
            "Modified_By": {"name": "Sales", "id": "5725767000000411001"},
            "Created_Time": "2026-11-28T08:00:00+04:00",
            "id": id,
            "Created_By": {"name": "Sales", "id": "5725767000000411001"}
        },
        "message": message,
        "status": "success"
    }]})
}

fn upserted(id: &str, action: &str) -> Value {
    let mut body = success(id, "record added");
    body["data"][0]["action"] = json!(action);
    body["data"][0]["duplicate_field"] = if action == "update" {
        json!("Email")
    } else {
        Value::Null
    };
    body
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        pipeline_id: "Standard (Standard)".into(),
        stage_mapping: BTreeMap::from([
            (LeadStage::Qualified, "Needs Analysis".to_string()),
            (LeadStage::Won, "Closed Won".to_string()),
        ]),
        convert_at: Some(LeadStage::Qualified),
        source_property: Some(ContactProperty {
            name: "Lead_Source".into(),
            options: vec!["Chat".into(), "WhatsApp".into(), "Facebook".into()],
            kind: None,
        }),
        score_property: Some(ContactProperty {
            name: "Rating".into(),
            options: vec![
                "Acquired".into(),
                "Hot".into(),
                "Warm".into(),
                "Cold".into(),
            ],
            kind: None,
        }),
        field_mapping: BTreeMap::new(),
        sheet: None,
        sheet_gid: None,
    }
}

fn fatima(stage: &str) -> Lead {
    lead(
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa",
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82, "stage": stage}),
        Some(SUMMARY),
    )
}

fn fatima_record() -> Value {
    json!({
        "Last_Name": "Al-Kuwari",
        "First_Name": "Fatima",
        "Email": "fatima@example.qa",
        "Phone": "+97455551234",
        "Lead_Source": "WhatsApp",
        "Rating": "Hot"
    })
}

fn progress(records: &[(&str, &str)], stage: Option<&str>) -> PushProgress {
    PushProgress::resumed(ProgressSnapshot {
        records: records
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        stage: stage.map(str::to_string),
        summary_digest: Some(text_digest(NOTE)),
        intents: Default::default(),
    })
}

#[tokio::test]
async fn a_new_lead_is_upserted_with_the_plans_mapping_and_gets_its_summary_as_a_note() {
    let org = Org::start().await;
    org.answer("POST", UPSERT, 200, upserted("3001", "insert"))
        .await;
    org.answer("POST", NOTES, 201, success("7001", "record added"))
        .await;
    let mut progress = PushProgress::default();
    org.push(&fatima("contacted"), Some(&settings()), &mut progress)
        .await
        .unwrap();

    assert_eq!(
        org.received().await,
        vec![
            sent(
                "POST",
                UPSERT,
                json!({
                    "data": [fatima_record()],
                    "duplicate_check_fields": ["Email", "Phone"],
                    "trigger": ["workflow"]
                })
            ),
            sent(
                "POST",
                NOTES,
                json!({"data": [{
                    "Note_Title": "LeadRelay conversation summary",
                    "Note_Content": NOTE,
                    "Parent_Id": {"module": {"api_name": "Leads"}, "id": "3001"}
                }]})
            ),
        ]
    );
    assert_eq!(progress.records["lead"], "3001");
    assert_eq!(progress.records["note"], "7001");
    assert_eq!(
        progress.stage, None,
        "a lead that is not converted has no deal"
    );
    assert_eq!(progress.summary_digest, Some(text_digest(NOTE)));
}

#[tokio::test]
async fn a_lead_reaching_the_conversion_stage_becomes_a_contact_and_a_deal_in_the_mapped_stage() {
    let org = Org::start().await;
    org.answer(
        "PUT",
        "/crm/v8/Leads/3001",
        200,
        success("3001", "record updated"),
    )
    .await;
    org.answer(
        "POST",
        "/crm/v8/Leads/3001/actions/convert",
        200,
        json!({"data": [{
            "code": "SUCCESS",
            "details": {
                "Contacts": {"name": "Fatima Al-Kuwari", "id": "4001"},
                "Deals": {"name": "Fatima Al-Kuwari (LeadRelay)", "id": "5001"},
                "Accounts": null
            },
            "message": "The record has been converted successfully",
            "status": "success"
        }]}),
    )
    .await;
    let mut progress = progress(&[("lead", "3001"), ("note", "7001")], None);
    org.push(&fatima("qualified"), Some(&settings()), &mut progress)
        .await
        .unwrap();

    let received = org.received().await;
    assert_eq!(received.len(), 2, "the note is unchanged: {received:?}");
    assert_eq!(
        received[0],
        sent(
            "PUT",
            "/crm/v8/Leads/3001",
            json!({"data": [fatima_record()], "trigger": ["workflow"]})
        )
    );
    let convert = &received[1];
    assert_eq!(
        (convert.method.as_str(), convert.path.as_str()),
        ("POST", "/crm/v8/Leads/3001/actions/convert")
    );
    let closing = convert.body["data"][0]["Deals"]["Closing_Date"]
        .as_str()
        .unwrap()
        .to_string();
    let closing = chrono::NaiveDate::parse_from_str(&closing, "%Y-%m-%d").unwrap();
    let days = (closing - chrono::Utc::now().date_naive()).num_days();
    assert!(
        (29..=30).contains(&days),
        "closing date {closing} is 30 days out"
    );
    assert_eq!(
        convert.body,
        json!({"data": [{
            "overwrite": false,
            "notify_lead_owner": false,
            "notify_new_entity_owner": false,
            "Deals": {
                "Deal_Name": "Fatima Al-Kuwari (LeadRelay)",
                "Closing_Date": closing.format("%Y-%m-%d").to_string(),
                "Stage": "Needs Analysis",
                "Pipeline": "Standard (Standard)"
            }
        }]})
    );
    assert_eq!(progress.records["contact"], "4001");
    assert_eq!(progress.records["deal"], "5001");
    assert!(!progress.records.contains_key("account"));
    assert_eq!(progress.stage.as_deref(), Some("Needs Analysis"));
}

#[tokio::test]
async fn a_converted_lead_updates_its_contact_and_moves_its_deal() {
    let org = Org::start().await;
    org.answer(
        "PUT",
        "/crm/v8/Contacts/4001",
        200,
        success("4001", "record updated"),
    )
    .await;
    org.answer(
        "PUT",
        "/crm/v8/Deals/5001",
        200,
        success("5001", "record updated"),
    )
    .await;
    let mut progress = progress(
        &[
            ("lead", "3001"),
            ("contact", "4001"),
            ("deal", "5001"),
            ("note", "7001"),
        ],
        Some("Needs Analysis"),
    );
    org.push(&fatima("won"), Some(&settings()), &mut progress)
        .await
        .unwrap();

    assert_eq!(
        org.received().await,
        vec![
            sent(
                "PUT",
                "/crm/v8/Contacts/4001",
                json!({"data": [{
                    "Last_Name": "Al-Kuwari", "First_Name": "Fatima",
                    "Email": "fatima@example.qa", "Phone": "+97455551234"
                }], "trigger": ["workflow"]})
            ),
            sent(
                "PUT",
                "/crm/v8/Deals/5001",
                json!({"data": [{"Stage": "Closed Won"}], "trigger": ["workflow"]})
            ),
        ]
    );
    assert_eq!(progress.stage.as_deref(), Some("Closed Won"));
}

#[tokio::test]
async fn a_record_error_inside_http_200_fails_the_push_and_names_the_field() {
    let org = Org::start().await;
    org.answer(
        "POST",
        UPSERT,
        200,
        json!({"data": [{
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Last_Name", "json_path": "$.data[0].Last_Name"},
            "message": "required field not found",
            "status": "error"
        }]}),
    )
    .await;
    let mut progress = PushProgress::default();
    let error = org
        .push(&fatima("new"), Some(&settings()), &mut progress)
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(
        error.to_string().contains("MANDATORY_NOT_FOUND Last_Name"),
        "{error}"
    );
    assert_eq!(
        org.received().await.len(),
        1,
        "nothing after the failed upsert"
    );
    assert!(progress.records.is_empty());
}

#[tokio::test]
async fn an_invalid_token_asks_for_a_refresh_and_a_scope_mismatch_for_a_reconnect() {
    let org = Org::start().await;
    org.answer(
        "POST",
        UPSERT,
        401,
        json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}),
    )
    .await;
    let error = org
        .push(&fatima("new"), None, &mut PushProgress::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error}"
    );

    let org = Org::start().await;
    org.answer(
        "POST",
        UPSERT,
        401,
        json!({"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope to access this URL", "status": "error"}),
    )
    .await;
    let error = org
        .push(&fatima("new"), None, &mut PushProgress::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidGrant { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_nameless_lead_is_looked_up_first_so_its_placeholder_never_overwrites_a_real_name() {
    let org = Org::start().await;
    org.answer(
        "GET",
        "/crm/v8/Leads/search",
        200,
        json!({"data": [{"id": "3009", "Last_Name": "Al-Marri"}], "info": {"count": 1, "more_records": false}}),
    )
    .await;
    org.answer(
        "PUT",
        "/crm/v8/Leads/3009",
        200,
        success("3009", "record updated"),
    )
    .await;
    let nameless = lead(
        json!({"id": "lead-2", "email": "noor@example.qa", "stage": "new"}),
        None,
    );
    let mut progress = PushProgress::default();
    org.push(&nameless, None, &mut progress).await.unwrap();
    let received = org.received().await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].path, "/crm/v8/Leads/search");
    assert_eq!(
        received[0].query.as_deref(),
        Some("email=noor%40example.qa")
    );
    assert_eq!(
        received[1].body,
        json!({"data": [{"Email": "noor@example.qa"}], "trigger": ["workflow"]}),
        "no Last_Name placeholder on a lead Zoho already has"
    );
    assert_eq!(progress.records["lead"], "3009");
}

#[tokio::test]
async fn pipelines_are_read_per_deal_layout_with_actual_values_as_ids() {
    let org = Org::start().await;
    org.answer(
        "GET",
        "/crm/v8/settings/layouts",
        200,
        json!({"layouts": [{"id": "111", "name": "Standard", "status": "active"},
                           {"id": "222", "name": "Old", "status": "inactive"}]}),
    )
    .await;
    org.answer(
        "GET",
        "/crm/v8/settings/pipeline",
        200,
        json!({"pipeline": [{
            "display_value": "Standard", "actual_value": "Standard (Standard)", "default": true, "id": "9",
            "maps": [
                {"display_value": "Identify Decision Makers", "actual_value": "Id. Decision Makers", "id": "2", "sequence_number": 2, "forecast_type": "Open", "forecast_category": {"name": "Pipeline", "id": "1"}},
                {"display_value": "Qualification", "actual_value": "Qualification", "id": "1", "sequence_number": 1, "forecast_type": "Open", "forecast_category": {"name": "Pipeline", "id": "1"}},
                {"display_value": "Closed Won", "actual_value": "Closed Won", "id": "3", "sequence_number": 3, "forecast_type": "Closed Won", "forecast_category": {"name": "Closed", "id": "2"}}
            ]
        }]}),
    )
    .await;
    let pipelines = zoho().get_pipelines(&org.session()).await.unwrap();
    assert_eq!(pipelines.len(), 1);
    let stages: Vec<(&str, bool)> = pipelines[0]
        .stages
        .iter()
        .map(|s| (s.id.as_str(), s.is_closed))
        .collect();
    assert_eq!(
        stages,
        vec![
            ("Qualification", false),
            ("Id. Decision Makers", false),
            ("Closed Won", true)
        ]
    );
    let received = org.received().await;
    assert_eq!(
        received
            .iter()
            .map(|r| format!("{} {}", r.path, r.query.clone().unwrap_or_default()))
            .collect::<Vec<_>>(),
        vec![
            "/crm/v8/settings/layouts module=Deals",
            "/crm/v8/settings/pipeline layout_id=111"
        ],
        "only the active layout's pipelines are read"
    );
}

#[tokio::test]
async fn a_changed_summary_updates_the_note_it_already_made() {
    let org = Org::start().await;
    org.answer(
        "PUT",
        "/crm/v8/Leads/3001",
        200,
        success("3001", "record updated"),
    )
    .await;
    org.answer(
        "PUT",
        "/crm/v8/Notes/7001",
        200,
        success("7001", "record updated"),
    )
    .await;
    let mut progress = progress(&[("lead", "3001"), ("note", "7001")], None);
    let later = lead(
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa",
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82, "stage": "contacted"}),
        Some("Now wants 20 seats"),
    );
    org.push(&later, Some(&settings()), &mut progress)
        .await
        .unwrap();
    let received = org.received().await;
    assert_eq!(received.len(), 2, "{received:?}");
    let content = "LeadRelay conversation summary\n\nNow wants 20 seats\n\nLead: lead-1 · Source: whatsapp · Score: 82/100";
    assert_eq!(
        received[1],
        sent(
            "PUT",
            "/crm/v8/Notes/7001",
            json!({"data": [{"Note_Content": content}]})
        ),
        "a note update takes no trigger"
    );
    assert_eq!(progress.summary_digest, Some(text_digest(content)));
}
