//! REST and SOAP tests: describe, create/update validation, SOQL, composite,
//! collections, ui-api, duplicate rule, convertLead, usage and faults.

use reqwest::Method;
use serde_json::{json, Value};

use super::oauth_tests::{client, ACME_HOST};
use super::*;
use crate::sim::shell::testkit::get_json;

const V: &str = "/services/data/v62.0/";

struct Api {
    sim: SalesforceSim,
    token: String,
}

struct Answer {
    status: u16,
    limit_info: Option<String>,
    body: Value,
}

impl Api {
    async fn new() -> Api {
        Api::with(SalesforceSimConfig::default()).await
    }

    async fn with(config: SalesforceSimConfig) -> Api {
        let sim = SalesforceSim::start(config).await;
        let token = sim.seed_connection("acme").access_token;
        Api { sim, token }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if path.starts_with('/') {
            format!("{}{path}", self.sim.base_url())
        } else {
            format!("{}{V}{path}", self.sim.base_url())
        };
        let mut request = client()
            .request(method, url)
            .header(FORWARDED_HOST_HEADER, ACME_HOST)
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let limit_info = response
            .headers()
            .get(LIMIT_INFO_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            limit_info,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body), &[]).await
    }

    async fn query(&self, soql: &str) -> Answer {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        self.get(&format!("query?q={encoded}")).await
    }

    async fn soap(&self, session: &str, lead_converts: &str) -> (u16, String) {
        let envelope = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader><urn:sessionId>{session}</urn:sessionId></urn:SessionHeader></soapenv:Header><soapenv:Body><urn:convertLead>{lead_converts}</urn:convertLead></soapenv:Body></soapenv:Envelope>"#
        );
        let response = client()
            .post(format!("{}/services/Soap/u/62.0", self.sim.base_url()))
            .header(FORWARDED_HOST_HEADER, ACME_HOST)
            .header("content-type", "text/xml; charset=UTF-8")
            .header("SOAPAction", "convertLead")
            .body(envelope)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn error_code(body: &Value) -> &str {
    body[0]["errorCode"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn describe_reports_salesforce_metadata_and_counts_usage() {
    let api = Api::new().await;
    let lead = api.get("sobjects/Lead/describe").await;
    assert_eq!(lead.status, 200);
    assert_eq!(lead.limit_info.as_deref(), Some("api-usage=1/15000"));
    let fields = lead.body["fields"].as_array().unwrap();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| {
            f["nillable"] == false && f["createable"] == true && f["defaultedOnCreate"] == false
        })
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(required, ["LastName", "Company"]);
    let status = fields.iter().find(|f| f["name"] == "Status").unwrap();
    assert_eq!(status["restrictedPicklist"], true);
    assert_eq!(status["picklistValues"][0]["defaultValue"], true);
    let source = fields.iter().find(|f| f["name"] == "LeadSource").unwrap();
    assert_eq!(source["restrictedPicklist"], false);
    assert_eq!(source["type"], "picklist");

    api.sim.add_field(
        "acme",
        "Lead",
        SfField::double("LeadRelay_Score__c", "Score"),
    );
    let opp = api.get("sobjects/Opportunity/describe").await;
    assert_eq!(opp.limit_info.as_deref(), Some("api-usage=2/15000"));
    assert_eq!(
        opp.body["recordTypeInfos"][0]["recordTypeId"],
        MASTER_RECORD_TYPE_ID
    );
    assert_eq!(opp.body["recordTypeInfos"][0]["master"], true);
    let lead = api.get("sobjects/Lead/describe").await;
    let score = lead.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "LeadRelay_Score__c")
        .unwrap();
    assert_eq!(
        (score["type"].as_str(), score["custom"].as_bool()),
        (Some("double"), Some(true))
    );
    assert_eq!(api.get("sobjects/Widget__c/describe").await.status, 404);
    assert_eq!(api.sim.api_usage("acme"), 4);
    let recorded = api.sim.requests();
    assert_eq!(
        recorded.last().unwrap().limit_info.as_deref(),
        Some("api-usage=4/15000")
    );
    assert_eq!(
        recorded.last().unwrap().api_version().as_deref(),
        Some("62.0")
    );
}

#[tokio::test]
async fn create_validates_in_salesforce_order() {
    let api = Api::new().await;
    let missing = api.post("sobjects/Lead", json!({"LastName": "Doe"})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(error_code(&missing.body), "REQUIRED_FIELD_MISSING");
    assert_eq!(missing.body[0]["fields"], json!(["Company"]));
    assert_eq!(
        missing.body[0]["message"],
        "Required fields are missing: [Company]"
    );
    let both = api.post("sobjects/Lead", json!({"Email": "a@b.c"})).await;
    assert_eq!(both.body[0]["fields"], json!(["LastName", "Company"]));

    let unknown = api
        .post("sobjects/Lead", json!({"LastName": "Doe", "Nope__c": 1}))
        .await;
    assert_eq!(error_code(&unknown.body), "INVALID_FIELD");
    let read_only = api
        .post(
            "sobjects/Lead",
            json!({"LastName": "Doe", "Company": "X", "IsConverted": true}),
        )
        .await;
    assert_eq!(
        error_code(&read_only.body),
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    assert_eq!(read_only.body[0]["fields"], json!(["IsConverted"]));
    let picklist = api
        .post(
            "sobjects/Task",
            json!({"Subject": "x", "Status": "Done-ish"}),
        )
        .await;
    assert_eq!(
        error_code(&picklist.body),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    let too_long = api
        .post(
            "sobjects/Lead",
            json!({"LastName": "D".repeat(81), "Company": "X"}),
        )
        .await;
    assert_eq!(error_code(&too_long.body), "STRING_TOO_LONG");
    let bad_ref = api
        .post(
            "sobjects/Task",
            json!({"Subject": "x", "WhoId": "00Q5g0000000009999AAA"}),
        )
        .await;
    assert_eq!(error_code(&bad_ref.body), "INVALID_CROSS_REFERENCE_KEY");

    // Unrestricted picklists take any value; defaults are applied.
    let created = api
        .post(
            "sobjects/Lead",
            json!({"LastName": "Doe", "Company": "Acme", "LeadSource": "Carrier pigeon"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["success"], true);
    assert_eq!(created.body["errors"], json!([]));
    let id = created.body["id"].as_str().unwrap();
    assert!(id.starts_with("00Q") && id.len() == 18, "{id}");
    let lead = api.sim.record("acme", "Lead", id).unwrap();
    assert_eq!(lead["Status"], "Open - Not Contacted");
    assert_eq!(lead["IsConverted"], false);
    let task = api
        .post("sobjects/Task", json!({"Subject": "Call", "WhoId": id}))
        .await;
    assert_eq!(task.status, 201);
    let task = api
        .get(&format!(
            "sobjects/Task/{}",
            task.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(task.body["Priority"], "Normal");
    assert_eq!(task.body["Status"], "Not Started");
    assert_eq!(task.body["attributes"]["type"], "Task");

    // Required custom picklist added by a test.
    api.sim.add_field(
        "acme",
        "Lead",
        SfField::picklist("Region__c", "Region", &["EMEA", "APAC"])
            .restricted()
            .required(),
    );
    let missing = api
        .post("sobjects/Lead", json!({"LastName": "Doe", "Company": "X"}))
        .await;
    assert_eq!(missing.body[0]["fields"], json!(["Region__c"]));
}

#[tokio::test]
async fn update_rules() {
    let api = Api::new().await;
    let id = api
        .sim
        .seed_record("acme", "Lead", json!({"LastName": "Doe", "Company": "X"}));
    let ok = api
        .patch(&format!("sobjects/Lead/{id}"), json!({"Rating": "Hot"}))
        .await;
    assert_eq!(ok.status, 204);
    assert_eq!(
        api.sim.record("acme", "Lead", &id).unwrap()["Rating"],
        "Hot"
    );
    let blank = api
        .patch(&format!("sobjects/Lead/{id}"), json!({"Company": ""}))
        .await;
    assert_eq!(error_code(&blank.body), "REQUIRED_FIELD_MISSING");
    let read_only = api
        .patch(&format!("sobjects/Lead/{id}"), json!({"IsConverted": true}))
        .await;
    assert_eq!(
        error_code(&read_only.body),
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    let missing = api
        .patch(
            "sobjects/Lead/00Q5g0000000000404AAA",
            json!({"Rating": "Hot"}),
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(error_code(&missing.body), "NOT_FOUND");
    let converted = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "Old", "Company": "Y", "IsConverted": true}),
    );
    let refused = api
        .patch(
            &format!("sobjects/Lead/{converted}"),
            json!({"Rating": "Hot"}),
        )
        .await;
    assert_eq!(error_code(&refused.body), "CANNOT_UPDATE_CONVERTED_LEAD");
}

#[tokio::test]
async fn soql_escapes_and_strictness() {
    let api = Api::new().await;
    let first = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "O'Brien", "Company": "X", "Email": "o'brien@example.com"}),
    );
    let second = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "B", "Company": "X", "Phone": "+97455512345"}),
    );
    api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "C", "Company": "X", "Email": "o'brien@example.com", "IsConverted": true}),
    );
    let found = api
        .query("SELECT Id, Email, Phone FROM Lead WHERE IsConverted = false AND (Email = 'O\\'Brien@Example.com' OR Phone = '+97455512345') ORDER BY CreatedDate ASC LIMIT 10")
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["totalSize"], 2);
    assert_eq!(found.body["done"], true);
    let records = found.body["records"].as_array().unwrap();
    assert_eq!(records[0]["Id"], first.as_str());
    assert_eq!(records[1]["Id"], second.as_str());
    assert_eq!(records[0]["attributes"]["type"], "Lead");
    assert_eq!(
        records[0]["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Lead/{first}")
    );
    assert_eq!(records[1]["Email"], Value::Null);
    let desc = api
        .query("SELECT Id FROM Lead WHERE IsConverted = false ORDER BY CreatedDate DESC LIMIT 1")
        .await;
    assert_eq!(desc.body["records"][0]["Id"], second.as_str());

    let raw = api
        .query("SELECT Id FROM Lead WHERE Email = 'o'brien@example.com'")
        .await;
    assert_eq!(raw.status, 400);
    assert_eq!(error_code(&raw.body), "MALFORMED_QUERY");
    let field = api.query("SELECT Id, Nope FROM Lead").await;
    assert_eq!(error_code(&field.body), "INVALID_FIELD");
    let object = api.query("SELECT Id FROM Widget").await;
    assert_eq!(error_code(&object.body), "INVALID_TYPE");

    let status = api
        .query("SELECT MasterLabel FROM LeadStatus WHERE IsConverted = true ORDER BY SortOrder ASC LIMIT 1")
        .await;
    assert_eq!(
        status.body["records"][0]["MasterLabel"],
        "Closed - Converted"
    );
    let stages = api
        .query("SELECT ApiName, MasterLabel, IsClosed, IsWon, SortOrder FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder ASC")
        .await;
    let stages = stages.body["records"].as_array().unwrap();
    assert_eq!(stages.len(), 10);
    assert_eq!(stages[0]["ApiName"], "Prospecting");
    assert_eq!(stages[0]["SortOrder"], 1);
    assert_eq!(stages[8]["ApiName"], "Closed Won");
    assert_eq!(
        (
            stages[8]["IsClosed"].as_bool(),
            stages[8]["IsWon"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(
        (
            stages[9]["IsClosed"].as_bool(),
            stages[9]["IsWon"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(
        api.sim.requests().last().unwrap().soql().as_deref(),
        Some("SELECT ApiName, MasterLabel, IsClosed, IsWon, SortOrder FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder ASC")
    );
}

#[tokio::test]
async fn a_long_text_area_is_selected_but_never_filtered_on() {
    let api = Api::new().await;
    let id = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "Doe", "Company": "X", "Description": "LeadRelay lead: l-1"}),
    );
    let filtered = api
        .query("SELECT Id FROM Lead WHERE Description = 'LeadRelay lead: l-1'")
        .await;
    assert_eq!(filtered.status, 400, "{}", filtered.body);
    assert_eq!(error_code(&filtered.body), "INVALID_FIELD");
    let selected = api
        .query("SELECT Id, Description FROM Lead WHERE LastName = 'Doe' OR Email = 'x@example.com'")
        .await;
    assert_eq!(selected.status, 200, "{}", selected.body);
    assert_eq!(selected.body["records"][0]["Id"], id.as_str());
    assert_eq!(
        selected.body["records"][0]["Description"],
        "LeadRelay lead: l-1"
    );
    let task = api
        .query("SELECT Id, WhoId FROM Task WHERE Subject = 'x' ORDER BY CreatedDate ASC LIMIT 1")
        .await;
    assert_eq!(
        task.status, 200,
        "a short text field filters: {}",
        task.body
    );
    let described = api.get("/services/data/v62.0/sobjects/Lead/describe").await;
    let field = |name: &str| {
        described.body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(field("Description")["filterable"], false);
    assert_eq!(field("LastName")["filterable"], true);
}

fn composite_body(all_or_none: bool, items: Value) -> Value {
    json!({"allOrNone": all_or_none, "compositeRequest": items})
}

#[tokio::test]
async fn composite_resolves_references_and_counts_once() {
    let api = Api::new().await;
    let answer = api
        .post(
            "composite",
            composite_body(
                true,
                json!([
                    {"method": "POST", "url": "/services/data/v62.0/sobjects/Lead", "referenceId": "newLead",
                     "body": {"LastName": "Doe", "Company": "Acme", "Email": "doe@example.com"}},
                    {"method": "POST", "url": "/services/data/v62.0/sobjects/Task", "referenceId": "newTask",
                     "body": {"Subject": "Follow up", "WhoId": "@{newLead.id}", "Description": "lead @{newLead.id}"}},
                    {"method": "GET", "url": "/services/data/v62.0/query?q=SELECT+Id,Email+FROM+Lead+WHERE+Id+=+'@{newLead.id}'", "referenceId": "found"},
                    {"method": "PATCH", "url": "/services/data/v62.0/sobjects/Lead/@{found.records[0].Id}", "referenceId": "touch",
                     "body": {"Rating": "Warm"}},
                    {"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/describe", "referenceId": "describe"}
                ]),
            ),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.limit_info.as_deref(), Some("api-usage=1/15000"));
    let results = answer.body["compositeResponse"].as_array().unwrap();
    let codes: Vec<u64> = results
        .iter()
        .map(|r| r["httpStatusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [201, 201, 200, 204, 200]);
    let lead_id = results[0]["body"]["id"].as_str().unwrap();
    assert!(results[0]["httpHeaders"]["Location"]
        .as_str()
        .unwrap()
        .ends_with(lead_id));
    assert_eq!(results[2]["body"]["totalSize"], 1);
    assert_eq!(results[3]["body"], Value::Null);
    let task = &api.sim.records("acme", "Task")[0];
    assert_eq!(task["WhoId"], lead_id);
    assert_eq!(task["Description"], format!("lead {lead_id}"));
    assert_eq!(
        api.sim.record("acme", "Lead", lead_id).unwrap()["Rating"],
        "Warm"
    );
    assert_eq!(api.sim.api_usage("acme"), 1);
    let subs: Vec<SfRequest> = api.sim.requests().into_iter().filter(|r| r.sub).collect();
    assert_eq!(subs.len(), 5);
    assert_eq!(subs[1].body["WhoId"], lead_id);
    assert_eq!(subs[1].reference_id.as_deref(), Some("newTask"));
    assert_eq!(subs[1].status, Some(201));

    // Envelope errors.
    let too_many: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/describe", "referenceId": format!("r{i}")}))
        .collect();
    let refused = api
        .post("composite", composite_body(false, json!(too_many)))
        .await;
    assert_eq!(
        (refused.status, error_code(&refused.body)),
        (400, "INVALID_API_INPUT")
    );
    let duplicate = api
        .post(
            "composite",
            composite_body(
                false,
                json!([
                    {"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/describe", "referenceId": "a"},
                    {"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/describe", "referenceId": "a"}
                ]),
            ),
        )
        .await;
    assert_eq!(duplicate.status, 400);
}

#[tokio::test]
async fn composite_all_or_none_rolls_back() {
    let api = Api::new().await;
    let items = json!([
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Lead", "referenceId": "newLead",
         "body": {"LastName": "Doe", "Company": "Acme"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Task", "referenceId": "badTask",
         "body": {"Subject": "x", "WhoId": "@{newLead.id}", "Priority": "Urgent"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Task", "referenceId": "later",
         "body": {"Subject": "y"}}
    ]);
    let answer = api
        .post("composite", composite_body(true, items.clone()))
        .await;
    assert_eq!(answer.status, 200);
    let results = answer.body["compositeResponse"].as_array().unwrap();
    assert_eq!(error_code(&results[0]["body"]), "PROCESSING_HALTED");
    assert_eq!(results[0]["httpStatusCode"], 400);
    assert_eq!(
        error_code(&results[1]["body"]),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(error_code(&results[2]["body"]), "PROCESSING_HALTED");
    assert!(api.sim.records("acme", "Lead").is_empty());
    assert!(api.sim.records("acme", "Task").is_empty());

    // allOrNone=false: the lead stays, the independent task runs, a
    // subrequest that references the failed one is halted.
    let mut items = items;
    items.as_array_mut().unwrap().push(json!(
        {"method": "PATCH", "url": "/services/data/v62.0/sobjects/Task/@{badTask.id}", "referenceId": "dependent",
         "body": {"Subject": "z"}}
    ));
    items.as_array_mut().unwrap().push(json!(
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Lead/@{nobody.id}", "referenceId": "unknownRef"}
    ));
    let answer = api.post("composite", composite_body(false, items)).await;
    let results = answer.body["compositeResponse"].as_array().unwrap();
    let codes: Vec<u64> = results
        .iter()
        .map(|r| r["httpStatusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [201, 400, 201, 400, 400]);
    assert_eq!(error_code(&results[3]["body"]), "PROCESSING_HALTED");
    assert_eq!(error_code(&results[4]["body"]), "INVALID_API_INPUT");
    assert_eq!(api.sim.records("acme", "Lead").len(), 1);
    assert_eq!(api.sim.records("acme", "Task").len(), 1);
}

#[tokio::test]
async fn collections_create_and_update() {
    let api = Api::new().await;
    let account = api
        .sim
        .seed_record("acme", "Account", json!({"Name": "Acme"}));
    let created = api
        .post(
            "composite/sobjects",
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "One", "AccountId": account},
                {"attributes": {"type": "Contact"}, "FirstName": "NoLast"},
                {"attributes": {"type": "Account"}, "Name": "Mixed"}
            ]}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let results = created.body.as_array().unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(results[1]["errors"][0]["fields"], json!(["LastName"]));
    assert!(results[1]["errors"][0].get("errorCode").is_none());
    assert_eq!(results[2]["success"], true);
    let contact = results[0]["id"].as_str().unwrap().to_owned();

    let updated = api
        .patch(
            "composite/sobjects",
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Contact"}, "Id": contact, "Phone": "+1555"},
                {"attributes": {"type": "Contact"}, "Id": contact, "Bogus__c": "x"}
            ]}),
        )
        .await;
    let results = updated.body.as_array().unwrap();
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(
        api.sim.record("acme", "Contact", &contact).unwrap()["Phone"],
        Value::Null
    );

    let updated = api
        .patch(
            "composite/sobjects",
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "Id": contact, "Phone": "+1555"}
            ]}),
        )
        .await;
    assert_eq!(
        updated.body,
        json!([{"id": contact, "success": true, "errors": []}])
    );
    assert_eq!(
        api.sim.record("acme", "Contact", &contact).unwrap()["Phone"],
        "+1555"
    );

    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("A{i}")}))
        .collect();
    let refused = api
        .post(
            "composite/sobjects",
            json!({"allOrNone": false, "records": many}),
        )
        .await;
    assert_eq!(
        (refused.status, error_code(&refused.body)),
        (400, "EXCEEDED_ID_LIMIT")
    );
}

#[tokio::test]
async fn duplicate_rule_blocks_unless_allow_save() {
    let api = Api::new().await;
    let existing = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"LastName": "A", "Company": "X", "Email": "dup@example.com"}),
    );
    let body = json!({"LastName": "B", "Company": "Y", "Email": "DUP@example.com"});
    api.sim.set_duplicate_rule("acme", "Lead", true);
    let refused = api.post("sobjects/Lead", body.clone()).await;
    assert_eq!(refused.status, 400);
    assert_eq!(error_code(&refused.body), "DUPLICATES_DETECTED");
    let result = &refused.body[0]["duplicateResut"];
    assert_eq!(result["allowSave"], false);
    assert_eq!(
        result["matchResults"][0]["matchRecords"][0]["record"]["Id"],
        existing.as_str()
    );
    let allowed = api
        .call(
            Method::POST,
            "sobjects/Lead",
            Some(body.clone()),
            &[("Sforce-Duplicate-Rule-Header", "allowSave=true")],
        )
        .await;
    assert_eq!(allowed.status, 201);
    api.sim.set_duplicate_rule("acme", "Lead", false);
    assert_eq!(api.post("sobjects/Lead", body).await.status, 201);
}

#[tokio::test]
async fn ui_api_stage_values_per_record_type() {
    let api = Api::new().await;
    api.sim.add_record_type(
        "acme",
        "Opportunity",
        "0125g000000RTLAAA2",
        "Retail",
        "Retail",
        vec!["Prospecting", "Closed Won", "Closed Lost"],
    );
    let master = api
        .get(&format!(
            "ui-api/object-info/Opportunity/picklist-values/{MASTER_RECORD_TYPE_ID}/StageName"
        ))
        .await;
    assert_eq!(master.status, 200);
    assert_eq!(master.body["values"].as_array().unwrap().len(), 10);
    assert_eq!(master.body["defaultValue"], Value::Null);
    let retail = api
        .get("ui-api/object-info/Opportunity/picklist-values/0125g000000RTLAAA2/StageName")
        .await;
    let values = retail.body["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert_eq!(values[1]["value"], "Closed Won");
    assert_eq!(values[1]["attributes"]["won"], true);
    assert_eq!(values[1]["attributes"]["closed"], true);
    assert_eq!(values[0]["attributes"]["defaultProbability"], 10);
    let unknown = api
        .get("ui-api/object-info/Opportunity/picklist-values/0125g0000000000AAA/StageName")
        .await;
    assert_eq!(unknown.status, 404);
    let describe = api.get("sobjects/Opportunity/describe").await;
    assert_eq!(
        describe.body["recordTypeInfos"][1]["developerName"],
        "Retail"
    );
    // A stage the record type does not offer.
    let account = api.sim.seed_record("acme", "Account", json!({"Name": "A"}));
    let refused = api
        .post(
            "sobjects/Opportunity",
            json!({"Name": "o", "StageName": "Qualification", "CloseDate": "2030-01-01",
                   "AccountId": account, "RecordTypeId": "0125g000000RTLAAA2"}),
        )
        .await;
    assert_eq!(
        error_code(&refused.body),
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
}

#[tokio::test]
async fn soap_convert_lead_creates_contact_account_opportunity_and_moves_tasks() {
    let api = Api::new().await;
    let lead = api.sim.seed_record(
        "acme",
        "Lead",
        json!({"FirstName": "Noura", "LastName": "Al-Thani", "Company": "Gulf Logistics",
               "Email": "noura@example.qa", "Phone": "+97455501234", "LeadSource": "Web"}),
    );
    let task = api
        .sim
        .seed_record("acme", "Task", json!({"Subject": "Call", "WhoId": lead}));
    let (status, xml) = api
        .soap(
            &api.token.clone(),
            &format!(
                "<urn:leadConverts><urn:convertedStatus>Closed - Converted</urn:convertedStatus><urn:leadId>{lead}</urn:leadId><urn:sendNotificationEmail>false</urn:sendNotificationEmail><urn:doNotCreateOpportunity>false</urn:doNotCreateOpportunity></urn:leadConverts>\
                 <urn:leadConverts><urn:convertedStatus>Working - Contacted</urn:convertedStatus><urn:leadId>{lead}</urn:leadId></urn:leadConverts>"
            ),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<success>true</success>"), "{xml}");
    assert!(
        xml.contains("<statusCode>CANNOT_UPDATE_CONVERTED_LEAD</statusCode>"),
        "{xml}"
    );
    let contacts = api.sim.records("acme", "Contact");
    let accounts = api.sim.records("acme", "Account");
    let opportunities = api.sim.records("acme", "Opportunity");
    assert_eq!(
        (contacts.len(), accounts.len(), opportunities.len()),
        (1, 1, 1)
    );
    let contact_id = contacts[0]["Id"].as_str().unwrap();
    let opportunity_id = opportunities[0]["Id"].as_str().unwrap();
    assert!(xml.contains(&format!("<contactId>{contact_id}</contactId>")));
    assert_eq!(contacts[0]["Email"], "noura@example.qa");
    assert_eq!(contacts[0]["AccountId"], accounts[0]["Id"]);
    assert_eq!(accounts[0]["Name"], "Gulf Logistics");
    assert_eq!(opportunities[0]["Name"], "Gulf Logistics-");
    assert_eq!(opportunities[0]["StageName"], "Prospecting");
    assert_eq!(opportunities[0]["LeadSource"], "Web");
    let converted = api.sim.record("acme", "Lead", &lead).unwrap();
    assert_eq!(converted["IsConverted"], true);
    assert_eq!(converted["Status"], "Closed - Converted");
    assert_eq!(converted["ConvertedOpportunityId"], opportunity_id);
    let task = api.sim.record("acme", "Task", &task).unwrap();
    assert_eq!(task["WhoId"], contact_id);
    assert_eq!(task["WhatId"], opportunity_id);
    assert_eq!(api.sim.api_usage("acme"), 1);

    // A status that is not a converted one; an unknown lead; an existing contact.
    let other = api
        .sim
        .seed_record("acme", "Lead", json!({"LastName": "B", "Company": "C"}));
    let account = accounts[0]["Id"].as_str().unwrap();
    let (_, xml) = api
        .soap(
            &api.token.clone(),
            &format!(
                "<leadConverts><convertedStatus>Working - Contacted</convertedStatus><leadId>{other}</leadId></leadConverts>\
                 <leadConverts><convertedStatus>Closed - Converted</convertedStatus><leadId>00Q5g0000009999999A</leadId></leadConverts>\
                 <leadConverts><convertedStatus>Closed - Converted</convertedStatus><leadId>{other}</leadId><contactId>{contact_id}</contactId><accountId>{account}</accountId><doNotCreateOpportunity>true</doNotCreateOpportunity></leadConverts>"
            ),
        )
        .await;
    assert!(
        xml.contains("<statusCode>INVALID_STATUS</statusCode>"),
        "{xml}"
    );
    assert!(
        xml.contains("<statusCode>INVALID_CROSS_REFERENCE_KEY</statusCode>"),
        "{xml}"
    );
    assert!(xml.contains("<opportunityId xsi:nil=\"true\"/>"), "{xml}");
    assert_eq!(api.sim.records("acme", "Contact").len(), 1);
    assert_eq!(api.sim.records("acme", "Opportunity").len(), 1);

    // Invalid session and garbage.
    let (status, xml) = api.soap("00Dbogus!AR", "").await;
    assert_eq!(status, 500);
    assert!(
        xml.contains("<faultcode>sf:INVALID_SESSION_ID</faultcode>"),
        "{xml}"
    );
    let response = client()
        .post(format!("{}/services/Soap/u/62.0", api.sim.base_url()))
        .header(FORWARDED_HOST_HEADER, ACME_HOST)
        .body("<not-xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert!(response.text().await.unwrap().contains("soapenv:Client"));
}

#[tokio::test]
async fn usage_ceiling_and_faults() {
    let api = Api::new().await;
    api.sim.set_api_usage("acme", 14_999);
    let last = api.get("sobjects/Lead/describe").await;
    assert_eq!(last.status, 200);
    assert_eq!(last.limit_info.as_deref(), Some("api-usage=15000/15000"));
    let over = api.get("sobjects/Lead/describe").await;
    assert_eq!(over.status, 403);
    assert_eq!(error_code(&over.body), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(over.body[0]["message"], "TotalRequests Limit exceeded.");
    assert_eq!(api.sim.api_usage("acme"), 15_000);
    let (status, xml) = api.soap(&api.token.clone(), "").await;
    assert_eq!(status, 500);
    assert!(xml.contains("sf:REQUEST_LIMIT_EXCEEDED"), "{xml}");
    api.sim.set_api_usage("acme", 0);

    api.sim
        .inject(SalesforceRoute::Describe, Fault::Status(503, "down".into()));
    api.sim.inject(SalesforceRoute::Query, Fault::Throttle);
    assert_eq!(api.query("SELECT Id FROM Lead").await.status, 403);
    assert_eq!(api.get("sobjects/Lead/describe").await.status, 503);
    assert_eq!(api.get("sobjects/Lead/describe").await.status, 200);
    assert_eq!(
        api.sim.api_usage("acme"),
        1,
        "faulted calls are not counted"
    );
    assert_eq!(
        SalesforceRoute::of_path("/services/data/v62.0/composite/sobjects"),
        Some(SalesforceRoute::Collections)
    );
    assert_eq!(
        SalesforceRoute::of_path("/services/data/v62.0/sobjects/Lead/00Q"),
        Some(SalesforceRoute::SObject)
    );

    // /_sim/state and /health.
    let before = api.sim.requests().len();
    let state = get_json(format!("{}/_sim/state?org=acme", api.sim.base_url())).await;
    assert!(state["records"]["Lead"].is_array());
    assert_eq!(api.sim.requests().len(), before);
    api.sim
        .inject(SalesforceRoute::Any, Fault::Status(500, "x".into()));
    let health = client()
        .get(format!("{}/health", api.sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn a_validation_rule_fails_its_record_alone_and_the_collection_counts_once() {
    let api = Api::new().await;
    api.sim.add_validation_rule(
        "acme",
        "Lead",
        "email",
        "blocked",
        "Leads from this address are not accepted",
    );
    let created = api
        .post(
            "composite/sobjects",
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Lead"}, "LastName": "Ok", "Company": "A",
                 "Email": "ok@example.com"},
                {"attributes": {"type": "Lead"}, "LastName": "No", "Company": "B",
                 "Email": "someone@BLOCKED.example"}
            ]}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let results = created.body.as_array().unwrap();
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[1]["success"], false);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert_eq!(results[1]["errors"][0]["fields"], json!(["Email"]));
    assert_eq!(api.sim.records("acme", "Lead").len(), 1);
    assert_eq!(
        api.sim.api_usage("acme"),
        1,
        "one call for the whole collection"
    );

    // An update breaking the rule is refused too, and changes nothing.
    let id = results[0]["id"].as_str().unwrap().to_owned();
    let updated = api
        .patch(
            "composite/sobjects",
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Lead"}, "id": id, "Email": "x@blocked.example"}
            ]}),
        )
        .await;
    assert_eq!(
        updated.body[0]["errors"][0]["statusCode"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert_eq!(
        api.sim.record("acme", "Lead", &id).unwrap()["Email"],
        "ok@example.com"
    );
}

#[tokio::test]
async fn soql_in_lists_match_any_of_their_values() {
    let api = Api::new().await;
    for (name, email) in [
        ("A", "a@example.com"),
        ("B", "b@example.com"),
        ("C", "c@example.com"),
    ] {
        api.sim.seed_record(
            "acme",
            "Lead",
            json!({"LastName": name, "Company": name, "Email": email}),
        );
    }
    let found = api
        .query("SELECT Id, LastName FROM Lead WHERE Email IN ('A@example.com', 'c@example.com') OR LastName IN ('B') ORDER BY LastName ASC")
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    let names: Vec<&str> = found.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "C"]);
    let not_in = api
        .query("SELECT Id, LastName FROM Lead WHERE LastName NOT IN ('A', 'B')")
        .await;
    assert_eq!(not_in.body["totalSize"], 1, "{}", not_in.body);
}
