//! The Freshsales push against wiremock: the exact method, path, headers and JSON body of every
//! request, in order. Shapes from Freshworks' CRM API reference (contacts upsert, lookup,
//! deals, notes, selectors) and open-source integrations (n8n, RudderStack).
//!
//! The account is `acme.myfreshworks.com`: every call must name it, which the HTTP client's local
//! routing carries in `X-Forwarded-Host`, under the bundle's `/crm/sales/api` prefix.

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
use shared::store::ConnectionSettings;
use shared::Provider;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const KEY: &str = "sfg999666t673t7t82";
const API: &str = "/crm/sales/api";

/// A Freshsales account on wiremock, reached at its own host.
struct Account {
    mock: MockAccount,
    host: &'static str,
}

fn freshsales() -> &'static dyn CrmProvider {
    for_provider(Provider::Freshsales).unwrap()
}

impl Account {
    /// `domain` as the tenant pasted it.
    async fn start(domain: &'static str) -> Account {
        let mut account = freshsales().account_for_domain(domain).unwrap();
        account.insert(
            "lead_source_ids".into(),
            json!({"whatsapp": "31000123456", "web": "31000123457"}).to_string(),
        );
        let host = if domain.ends_with("freshsales.io") {
            "oldco.freshsales.io"
        } else {
            "acme.myfreshworks.com"
        };
        Account {
            mock: MockAccount::start(Provider::Freshsales, account).await,
            host,
        }
    }

    async fn answer(&self, verb: &str, at: &str, status: u16, body: Value) {
        self.mock.answer(verb, at, status, body).await;
    }

    fn session(&self) -> Session<'_> {
        self.mock.session(KEY)
    }

    async fn push(
        &self,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError> {
        freshsales()
            .push_lead(&self.session(), lead, settings, progress)
            .await
    }

    /// Every request received, in order: each with the key, at the account's own host.
    async fn received(&self) -> Vec<Sent> {
        self.mock
            .received("Token token=sfg999666t673t7t82", Some(self.host))
            .await
    }
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        pipeline_id: "31000000001".into(),
        stage_mapping: BTreeMap::from([
            (LeadStage::Qualified, "31000000012".to_string()),
            (LeadStage::Won, "31000000015".to_string()),
        ]),
        convert_at: None,
        source_property: None,
        score_property: None,
        field_mapping: BTreeMap::new(),
        sheet: None,
        sheet_gid: None,
    }
}

const SUMMARY: &str = "Wants 12 seats; demo next week";
const NOTE: &str = "LeadRelay conversation summary\n\nWants 12 seats; demo next week\n\nLead: lead-1 · Source: whatsapp · Score: 82/100";

fn fatima(stage: &str) -> Lead {
    lead(
        json!({"id": "lead-1", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa",
               "phone": "5555 1234", "country": "QA", "source": "whatsapp", "score": 82, "stage": stage}),
        Some(SUMMARY),
    )
}

fn fatima_contact(score: bool) -> Value {
    let mut contact = json!({
        "last_name": "Al-Kuwari",
        "first_name": "Fatima",
        "email": "fatima@example.qa",
        "mobile_number": "+97455551234",
        "lead_source_id": 31000123456u64
    });
    if score {
        contact["lead_score"] = json!(82);
    }
    contact
}

fn contact_answer(id: u64) -> Value {
    json!({"contact": {"id": id, "first_name": "Fatima", "last_name": "Al-Kuwari", "email": "fatima@example.qa"}})
}

#[tokio::test]
async fn a_new_lead_is_upserted_by_email_then_gets_a_deal_in_the_mapped_stage_and_a_note() {
    let account = Account::start("acme").await;
    account
        .answer(
            "POST",
            &format!("{API}/contacts/upsert"),
            201,
            contact_answer(402174844666),
        )
        .await;
    account
        .answer(
            "POST",
            &format!("{API}/deals"),
            200,
            json!({"deal": {"id": 31000900001u64, "amount": "0.0"}}),
        )
        .await;
    account
        .answer(
            "POST",
            &format!("{API}/notes"),
            201,
            json!({"note": {"id": 31000700001u64}}),
        )
        .await;
    let mut progress = PushProgress::default();
    account
        .push(&fatima("qualified"), Some(&settings()), &mut progress)
        .await
        .unwrap();

    assert_eq!(
        account.received().await,
        vec![
            sent(
                "POST",
                &format!("{API}/contacts/upsert"),
                json!({"unique_identifier": {"emails": "fatima@example.qa"}, "contact": fatima_contact(true)})
            ),
            sent(
                "POST",
                &format!("{API}/deals"),
                json!({"deal": {
                    // The lead id at the end: how a deal whose answer was lost is found again.
                    "name": "Fatima Al-Kuwari (LeadRelay) [lead-1]",
                    "amount": 0,
                    "deal_pipeline_id": 31000000001u64,
                    "deal_stage_id": 31000000012u64,
                    "contacts_added_list": [402174844666u64]
                }})
            ),
            sent(
                "POST",
                &format!("{API}/notes"),
                json!({"note": {"description": NOTE, "targetable_type": "Contact", "targetable_id": 402174844666u64}})
            ),
        ]
    );
    assert_eq!(progress.records["contact"], "402174844666");
    assert_eq!(progress.records["deal"], "31000900001");
    assert_eq!(progress.records["note"], "31000700001");
    assert_eq!(progress.stage.as_deref(), Some("31000000012"));
}

#[tokio::test]
async fn a_read_only_lead_score_is_dropped_and_the_contact_sent_again() {
    let account = Account::start("acme.myfreshworks.com").await;
    Mock::given(method("POST"))
        .and(path(format!("{API}/contacts/upsert")))
        .and(wiremock::matchers::body_partial_json(
            json!({"contact": {"lead_score": 82}}),
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"errors": {"code": 400, "message": ["lead_score is a read-only field"]}}),
        ))
        .mount(&account.mock.server)
        .await;
    account
        .answer(
            "POST",
            &format!("{API}/contacts/upsert"),
            200,
            contact_answer(7),
        )
        .await;
    let contact = freshsales()
        .sync_contact(&account.session(), &fatima("new"), None)
        .await
        .unwrap();
    assert_eq!(contact, "7");
    let bodies: Vec<Value> = account
        .received()
        .await
        .into_iter()
        .map(|s| s.body["contact"].clone())
        .collect();
    assert_eq!(bodies, vec![fatima_contact(true), fatima_contact(false)]);
}

#[tokio::test]
async fn a_phone_only_lead_is_looked_up_by_mobile_number_and_updated() {
    let account = Account::start("https://acme.myfreshworks.com/crm/sales/contacts").await;
    account
        .answer(
            "GET",
            &format!("{API}/lookup"),
            200,
            json!({"contacts": {"contacts": [{"id": 402174844999u64, "mobile_number": "+97455550000"}]}}),
        )
        .await;
    account
        .answer(
            "PUT",
            &format!("{API}/contacts/402174844999"),
            200,
            contact_answer(402174844999),
        )
        .await;
    let noor = lead(
        json!({"id": "lead-2", "name": "Noor Al-Marri", "phone": "+974 5555 0000", "stage": "new"}),
        None,
    );
    let id = freshsales()
        .sync_contact(&account.session(), &noor, None)
        .await
        .unwrap();
    assert_eq!(id, "402174844999");
    let received = account.received().await;
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].query.as_deref(),
        Some("q=%2B97455550000&f=mobile_number&entities=contact")
    );
    assert_eq!(
        received[1].body,
        json!({"contact": {"last_name": "Al-Marri", "first_name": "Noor", "mobile_number": "+97455550000"}})
    );
}

#[tokio::test]
async fn a_known_lead_with_a_new_stage_updates_its_contact_and_moves_its_deal() {
    let account = Account::start("acme").await;
    account
        .answer(
            "PUT",
            &format!("{API}/contacts/402174844666"),
            200,
            contact_answer(402174844666),
        )
        .await;
    account
        .answer(
            "PUT",
            &format!("{API}/deals/31000900001"),
            200,
            json!({"deal": {"id": 31000900001u64}}),
        )
        .await;
    let mut progress = PushProgress::resumed(ProgressSnapshot {
        records: BTreeMap::from([
            ("contact".to_string(), "402174844666".to_string()),
            ("deal".to_string(), "31000900001".to_string()),
            ("note".to_string(), "31000700001".to_string()),
        ]),
        stage: Some("31000000012".into()),
        summary_digest: Some(text_digest(NOTE)),
        intents: Default::default(),
    });
    account
        .push(&fatima("won"), Some(&settings()), &mut progress)
        .await
        .unwrap();
    assert_eq!(
        account.received().await,
        vec![
            sent(
                "PUT",
                &format!("{API}/contacts/402174844666"),
                json!({"contact": fatima_contact(true)})
            ),
            sent(
                "PUT",
                &format!("{API}/deals/31000900001"),
                json!({"deal": {"deal_stage_id": 31000000015u64}})
            ),
        ]
    );
    assert_eq!(progress.stage.as_deref(), Some("31000000015"));
}

#[tokio::test]
async fn a_legacy_account_is_reached_under_api_and_a_refused_key_is_unauthorized() {
    let account = Account::start("oldco.freshsales.io").await;
    account
        .answer(
            "GET",
            "/api/selector/deal_pipelines",
            401,
            json!({"login": "failed", "message": "Incorrect or expired API key"}),
        )
        .await;
    let error = freshsales()
        .get_pipelines(&account.session())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error}"
    );
    assert_eq!(
        account.received().await[0].path,
        "/api/selector/deal_pipelines"
    );
}
