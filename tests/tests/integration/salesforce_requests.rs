//! The Salesforce push against wiremock: the exact composite subrequests, SOQL and record bodies
//! the org receives, in order, and how Salesforce's error arrays and usage header are read.
//! Shapes from Salesforce's REST API guide (composite, sObject describe, query, error array).
//!
//! The org's instance is `acme.my.salesforce.com`: every call must name it in
//! `X-Forwarded-Host` (the HTTP client's local routing) and carry the access token as a bearer.

use std::collections::BTreeMap;

use relay_tests::events::lead;
use relay_tests::mock_account::MockAccount;
use serde_json::{json, Value};
use shared::error::ProviderError;
use shared::lead::{Lead, LeadField};
use shared::provider::{for_provider, CrmProvider, PushProgress};
use shared::stage::LeadStage;
use shared::store::{ConnectionSettings, ContactProperty};
use shared::Provider;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

const TOKEN: &str = "00D5g000001ACME!token";
const COMPOSITE: &str = "/services/data/v62.0/composite";
const INSTANCE: &str = "acme.my.salesforce.com";

fn salesforce() -> &'static dyn CrmProvider {
    for_provider(Provider::Salesforce).unwrap()
}

/// An org on wiremock. `org_id` differs per test: the usage reading is kept per org.
async fn org(org_id: &str) -> MockAccount {
    let account = BTreeMap::from([
        ("instance_url".to_string(), format!("https://{INSTANCE}")),
        (
            "login_origin".to_string(),
            "https://login.salesforce.com".to_string(),
        ),
        ("org_id".to_string(), org_id.to_string()),
        ("user_id".to_string(), "0055g000009XyZAAA2".to_string()),
    ]);
    let org = MockAccount::start(Provider::Salesforce, account).await;
    assert_eq!(
        org.api_base.as_str(),
        "https://acme.my.salesforce.com/services/data/v62.0"
    );
    org
}

fn field(name: &str, kind: &str, required: bool, values: &[&str]) -> Value {
    json!({
        "name": name, "type": kind, "nillable": !required, "createable": name != "Id",
        "updateable": name != "Id", "defaultedOnCreate": name == "Status", "length": 80,
        "picklistValues": values.iter().map(|v| json!({"value": v, "active": true, "defaultValue": false})).collect::<Vec<_>>()
    })
}

/// What `describe` says of a customised org: Lead has a required custom picklist and a number
/// field for the score; Task's status offers `Completed`.
fn described() -> Value {
    let describe = |fields: Vec<Value>| json!({"fields": fields, "recordTypeInfos": []});
    let person = || {
        vec![
            field("Id", "id", false, &[]),
            field("FirstName", "string", false, &[]),
            field("LastName", "string", true, &[]),
            field("Email", "email", false, &[]),
            field("Phone", "phone", false, &[]),
            field("LeadSource", "picklist", false, &["Web", "Chat", "Other"]),
        ]
    };
    let mut lead = person();
    lead.extend([
        field("Company", "string", true, &[]),
        field("Rating", "picklist", false, &["Hot", "Warm", "Cold"]),
        field("Region__c", "picklist", true, &["GCC", "APAC"]),
        field("LeadRelay_Score__c", "double", false, &[]),
        field("Status", "picklist", false, &["Open - Not Contacted"]),
    ]);
    let result = |reference: &str, body: Value| json!({"body": body, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": reference});
    json!({"compositeResponse": [
        result("Lead", describe(lead)),
        result("Contact", describe(person())),
        result("Opportunity", describe(vec![
            field("Name", "string", true, &[]),
            field("StageName", "picklist", true, &["Prospecting", "Closed Won"]),
            field("CloseDate", "date", true, &[]),
            field("ContactId", "reference", false, &[]),
            field("AccountId", "reference", false, &[]),
        ])),
        result("Task", describe(vec![
            field("Subject", "string", false, &[]),
            field("Description", "textarea", false, &[]),
            field("WhoId", "reference", false, &[]),
            field("ActivityDate", "date", false, &[]),
            field("Status", "picklist", false, &["Not Started", "Completed"]),
        ])),
        result("ConvertedStatus", json!({"totalSize": 1, "done": true, "records": [
            {"attributes": {"type": "LeadStatus"}, "MasterLabel": "Closed - Converted"}
        ]})),
    ]})
}

/// Answers composite calls whose body contains `marker`.
async fn composite_answer(org: &MockAccount, marker: &str, status: u16, body: Value, limit: &str) {
    Mock::given(method("POST"))
        .and(path(COMPOSITE))
        .and(body_string_contains(marker))
        .respond_with(
            ResponseTemplate::new(status)
                .insert_header("Sforce-Limit-Info", limit)
                .set_body_json(body),
        )
        .mount(&org.server)
        .await;
}

/// The duplicate queries find nothing.
async fn no_duplicates(org: &MockAccount) {
    let nothing = json!({"totalSize": 0, "done": true, "records": []});
    composite_answer(
        org,
        "\"contacts\"",
        200,
        json!({"compositeResponse": [
            {"body": nothing, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "contacts"},
            {"body": nothing, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "leads"},
        ]}),
        "api-usage=11/15000",
    )
    .await;
}

/// Every composite call answered with `status` and Salesforce's error array of `code`.
async fn every_composite(org: &MockAccount, status: u16, code: &str) {
    Mock::given(method("POST"))
        .and(path(COMPOSITE))
        .respond_with(
            ResponseTemplate::new(status)
                .set_body_json(json!([{"message": "refused", "errorCode": code}])),
        )
        .mount(&org.server)
        .await;
}

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        pipeline_id: "012000000000000AAA".into(),
        stage_mapping: BTreeMap::from([(LeadStage::Won, "Closed Won".to_string())]),
        convert_at: Some(LeadStage::Qualified),
        source_property: Some(ContactProperty {
            name: "LeadSource".into(),
            options: vec!["Web".into(), "Chat".into(), "Other".into()],
            kind: Some("enumeration".into()),
        }),
        score_property: Some(ContactProperty {
            name: "Rating".into(),
            options: vec!["Hot".into(), "Warm".into(), "Cold".into()],
            kind: Some("enumeration".into()),
        }),
        field_mapping: BTreeMap::from([(
            LeadField::Score,
            ContactProperty {
                name: "LeadRelay_Score__c".into(),
                options: vec![],
                kind: Some("number".into()),
            },
        )]),
        sheet: None,
        sheet_gid: None,
    }
}

fn obrien() -> Lead {
    lead(
        json!({"id": "lead-7", "name": "Siobhan O'Brien", "email": "o'brien@example.com",
               "phone": "+61 400 000 001", "source": "chat", "score": 75, "stage": "contacted"}),
        Some("Wants a quote for 3 vans"),
    )
}

/// The composite requests the org received, as JSON, after checking each went to the
/// instance with the bearer token.
async fn composites(org: &MockAccount) -> Vec<Value> {
    org.received(&format!("Bearer {TOKEN}"), Some(INSTANCE))
        .await
        .into_iter()
        .map(|sent| {
            assert_eq!(
                (sent.method.as_str(), sent.path.as_str()),
                ("POST", COMPOSITE)
            );
            sent.body
        })
        .collect()
}

#[tokio::test]
async fn a_new_lead_is_searched_in_escaped_soql_then_created_with_its_task_in_one_composite() {
    let org = org("00D5g000001REQ1AAA").await;
    composite_answer(
        &org,
        "ConvertedStatus",
        200,
        described(),
        "api-usage=10/15000",
    )
    .await;
    no_duplicates(&org).await;
    composite_answer(&org, "\"/services/data/v62.0/sobjects/Lead\"", 200, json!({"compositeResponse": [
        {"body": {"id": "00Q5g000001abcDEAQ", "success": true, "errors": []}, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "lead"},
        {"body": {"id": "00T5g000001taskAAA", "success": true, "errors": []}, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "task"},
    ]}), "api-usage=12/15000").await;

    let mut progress = PushProgress::default();
    salesforce()
        .push_lead(
            &org.session(TOKEN),
            &obrien(),
            Some(&settings()),
            &mut progress,
        )
        .await
        .unwrap();

    let sent = composites(&org).await;
    assert_eq!(
        sent.len(),
        3,
        "describe, duplicate queries, create: {sent:#?}"
    );
    assert_eq!(
        sent[0]["compositeRequest"][0],
        json!({"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/describe", "referenceId": "Lead"})
    );
    // The quote in the email is escaped inside the literal; the query string is URL-encoded.
    let contacts_url = sent[1]["compositeRequest"][0]["url"].as_str().unwrap();
    let q: String = url::form_urlencoded::parse(contacts_url.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "q")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        q,
        "SELECT Id, AccountId, Email, Phone FROM Contact WHERE Email = 'o\\'brien@example.com' \
         OR Phone = '+61400000001' ORDER BY CreatedDate ASC LIMIT 10"
    );
    assert_eq!(
        sent[2],
        json!({"allOrNone": true, "compositeRequest": [
            {"method": "POST", "url": "/services/data/v62.0/sobjects/Lead", "referenceId": "lead", "body": {
                "LastName": "O'Brien", "FirstName": "Siobhan", "Email": "o'brien@example.com",
                "Phone": "+61400000001", "Company": "Siobhan O'Brien", "LeadSource": "Chat",
                "Rating": "Hot", "LeadRelay_Score__c": 75.0,
                // Required by this org, and LeadRelay has nothing for it: its first value.
                "Region__c": "GCC"
            }},
            {"method": "POST", "url": "/services/data/v62.0/sobjects/Task", "referenceId": "task", "body": {
                // The lead id in the subject finds the Task again after a lost answer.
                "Subject": "LeadRelay conversation summary [lead-7]",
                "Description": "Wants a quote for 3 vans\n\nLead: lead-7 · Source: chat · Score: 75/100",
                "WhoId": "@{lead.id}", "ActivityDate": chrono::Utc::now().date_naive().to_string(),
                "Status": "Completed"
            }}
        ]})
    );
    assert_eq!(progress.records["lead"], "00Q5g000001abcDEAQ");
    assert_eq!(progress.records["task"], "00T5g000001taskAAA");
    assert!(progress.summary_digest.is_some());
}

#[tokio::test]
async fn error_arrays_become_refusals_reauth_or_throttling() {
    let org = org("00D5g000001REQ2AAA").await;
    composite_answer(
        &org,
        "ConvertedStatus",
        200,
        described(),
        "api-usage=10/15000",
    )
    .await;
    // Salesforce answers a failed all-or-none composite with HTTP 200: the subrequest says why.
    composite_answer(&org, "\"leadUpdate\"", 200, json!({"compositeResponse": [
        {"body": [{"message": "Value too long for field", "errorCode": "STRING_TOO_LONG", "fields": ["Company"]}],
         "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "leadUpdate"},
        {"body": [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}],
         "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "task"},
    ]}), "api-usage=11/15000").await;
    let mut progress = PushProgress::default();
    progress
        .records
        .insert("lead".into(), "00Q5g000001abcDEAQ".into());
    let error = salesforce()
        .push_lead(&org.session(TOKEN), &obrien(), None, &mut progress)
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains("STRING_TOO_LONG Company"),
        "the DLQ reason names the code and field: {error}"
    );

    let expired = self::org("00D5g000001REQ3AAA").await;
    every_composite(&expired, 401, "INVALID_SESSION_ID").await;
    let error = salesforce()
        .push_lead(
            &expired.session(TOKEN),
            &obrien(),
            None,
            &mut PushProgress::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );

    let spent = self::org("00D5g000001REQ4AAA").await;
    every_composite(&spent, 403, "REQUEST_LIMIT_EXCEEDED").await;
    let error = salesforce()
        .push_lead(
            &spent.session(TOKEN),
            &obrien(),
            None,
            &mut PushProgress::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::Throttled { .. }),
        "{error:?}"
    );
    assert_eq!(
        spent.server.received_requests().await.unwrap().len(),
        1,
        "a spent daily allocation is not retried within the call"
    );
}

#[tokio::test]
async fn an_org_near_its_daily_allocation_gets_no_more_pushes() {
    let org = org("00D5g000001REQ5AAA").await;
    // The describe answer reports 13,600 of 15,000 calls used: above the 90 % ceiling.
    composite_answer(
        &org,
        "ConvertedStatus",
        200,
        described(),
        "api-usage=13600/15000",
    )
    .await;
    let error = salesforce()
        .push_lead(
            &org.session(TOKEN),
            &obrien(),
            None,
            &mut PushProgress::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ProviderError::Throttled {
                retry_after: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.is_retryable(),
        "the lead goes back to SQS, not to the DLQ"
    );
    assert_eq!(
        org.server.received_requests().await.unwrap().len(),
        1,
        "after the reading, nothing more was sent"
    );
    // The next lead for this org is held back before any call.
    let again = salesforce()
        .push_lead(
            &org.session(TOKEN),
            &obrien(),
            None,
            &mut PushProgress::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(again, ProviderError::Throttled { .. }));
    assert_eq!(org.server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_duplicate_rule_that_blocks_the_create_leads_to_the_record_it_matched() {
    let org = org("00D5g000001REQ6AAA").await;
    composite_answer(
        &org,
        "ConvertedStatus",
        200,
        described(),
        "api-usage=10/15000",
    )
    .await;
    no_duplicates(&org).await;
    let blocked = json!([{
        "message": "Use one of these records?", "errorCode": "DUPLICATES_DETECTED", "fields": [],
        "duplicateResut": {"allowSave": false, "duplicateRule": "Standard_Rule_for_Leads",
            "duplicateRuleEntityType": "Lead", "errorMessage": "Use one of these records?",
            "matchResults": [{"entityType": "Contact", "matchEngine": "FuzzyMatchEngine", "size": 1, "success": true,
                "rule": "Standard_Contact_Match_Rule_v1_1",
                "matchRecords": [{"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 88.0,
                    "record": {"attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/0035g000001dupAAA"},
                               "Id": "0035g000001dupAAA"}}]}]}
    }]);
    // The org's rule matched on the name, which LeadRelay's queries do not look at.
    composite_answer(&org, "\"/services/data/v62.0/sobjects/Lead\"", 200, json!({"compositeResponse": [
        {"body": blocked, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "lead"},
        {"body": [{"errorCode": "PROCESSING_HALTED", "message": "rolled back"}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "task"},
    ]}), "api-usage=12/15000").await;
    Mock::given(method("POST"))
        .and(path("/services/data/v62.0/sobjects/Lead"))
        .respond_with(ResponseTemplate::new(400).set_body_json(blocked.clone()))
        .mount(&org.server)
        .await;
    composite_answer(&org, "\"contactUpdate\"", 200, json!({"compositeResponse": [
        {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "contactUpdate"},
        {"body": {"id": "00T5g000001taskAAA", "success": true, "errors": []}, "httpHeaders": {}, "httpStatusCode": 201, "referenceId": "task"},
    ]}), "api-usage=14/15000").await;

    let mut progress = PushProgress::default();
    salesforce()
        .push_lead(&org.session(TOKEN), &obrien(), None, &mut progress)
        .await
        .unwrap();
    assert_eq!(
        progress.records.get("contact").map(String::as_str),
        Some("0035g000001dupAAA")
    );
    assert!(
        !progress.records.contains_key("lead"),
        "no lead was created"
    );
    assert_eq!(progress.records["task"], "00T5g000001taskAAA");
    let update = composites_and_posts(&org).await.into_iter().last().unwrap();
    assert_eq!(
        update["compositeRequest"][0]["url"],
        "/services/data/v62.0/sobjects/Contact/0035g000001dupAAA"
    );
    assert_eq!(
        update["compositeRequest"][1]["body"]["WhoId"],
        "0035g000001dupAAA"
    );
}

/// Every request body the org received, composite or not, in order.
async fn composites_and_posts(org: &MockAccount) -> Vec<Value> {
    org.received(&format!("Bearer {TOKEN}"), Some(INSTANCE))
        .await
        .into_iter()
        .map(|sent| sent.body)
        .collect()
}

#[tokio::test]
async fn a_lead_converted_in_salesforce_is_followed_to_its_contact_and_opportunity() {
    let org = org("00D5g000001REQ7AAA").await;
    composite_answer(
        &org,
        "ConvertedStatus",
        200,
        described(),
        "api-usage=10/15000",
    )
    .await;
    composite_answer(&org, "\"leadUpdate\"", 200, json!({"compositeResponse": [
        {"body": [{"message": "cannot reference converted lead", "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD", "fields": []}],
         "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "leadUpdate"},
    ]}), "api-usage=11/15000").await;
    Mock::given(method("GET"))
        .and(path(
            "/services/data/v62.0/sobjects/Lead/00Q5g000001abcDEAQ",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "attributes": {"type": "Lead"}, "ConvertedContactId": "0035g000001cnvAAA",
            "ConvertedAccountId": "0015g000001cnvAAA", "ConvertedOpportunityId": "0065g000001cnvAAA"
        })))
        .mount(&org.server)
        .await;
    composite_answer(&org, "\"contactUpdate\"", 200, json!({"compositeResponse": [
        {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "contactUpdate"},
        {"body": null, "httpHeaders": {}, "httpStatusCode": 204, "referenceId": "opportunityUpdate"},
    ]}), "api-usage=13/15000").await;

    // Someone converted the lead by hand (or a conversion's answer was lost): it is won now.
    let mut progress = PushProgress::default();
    progress
        .records
        .insert("lead".into(), "00Q5g000001abcDEAQ".into());
    let mut won = obrien();
    won.stage = LeadStage::Won;
    won.summary = None;
    salesforce()
        .push_lead(&org.session(TOKEN), &won, Some(&settings()), &mut progress)
        .await
        .unwrap();
    assert_eq!(progress.records["contact"], "0035g000001cnvAAA");
    assert_eq!(progress.records["account"], "0015g000001cnvAAA");
    assert_eq!(progress.records["opportunity"], "0065g000001cnvAAA");
    assert_eq!(progress.stage.as_deref(), Some("Closed Won"));
    let sent = composites_and_posts(&org).await;
    let last = sent.last().unwrap();
    assert_eq!(
        last["compositeRequest"][1],
        json!({"method": "PATCH", "url": "/services/data/v62.0/sobjects/Opportunity/0065g000001cnvAAA",
               "referenceId": "opportunityUpdate", "body": {"StageName": "Closed Won"}})
    );
}
