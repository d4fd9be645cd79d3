//! CRM API tests: upsert and duplicate check, validation, updates, search,
//! notes, conversion, metadata, API credits, per-DC orgs and faults.

use std::time::Duration;

use axum::http::header;
use serde_json::{json, Value};

use super::*;
use crate::sim::shell::testkit::answer;

struct Api {
    sim: ZohoSim,
    http: reqwest::Client,
    token: String,
    dc: &'static ZohoDc,
}

impl Api {
    async fn start() -> Api {
        Self::with(ZohoSimConfig::default(), "au").await
    }

    async fn with(config: ZohoSimConfig, dc_code: &str) -> Api {
        let sim = ZohoSim::start(config).await;
        let token = sim.seed_connection(dc_code, DEFAULT_USER).access_token;
        Api {
            sim,
            http: reqwest::Client::new(),
            token,
            dc: dc(dc_code).unwrap(),
        }
    }

    /// Another user's (or DC's) connection on the same simulator.
    fn as_user(&self, dc_code: &str, user: &str) -> Api {
        Api {
            sim: self.sim.clone(),
            http: self.http.clone(),
            token: self.sim.seed_connection(dc_code, user).access_token,
            dc: dc(dc_code).unwrap(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.sim.base_url(), path))
            .header(FORWARDED_HOST_HEADER, self.dc.api_host)
            .header(
                header::AUTHORIZATION,
                format!("Zoho-oauthtoken {}", self.token),
            );
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn upsert(&self, records: Value) -> (u16, Value) {
        self.post(
            "/crm/v8/Leads/upsert",
            json!({"data": records, "duplicate_check_fields": ["Email", "Phone"], "trigger": ["workflow"]}),
        )
        .await
    }

    /// Upsert one valid lead; its id.
    async fn lead(&self, record: Value) -> String {
        let (status, body) = self.upsert(json!([record])).await;
        assert_eq!(status, 200, "{body}");
        body["data"][0]["details"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn leads(&self) -> Vec<ZohoRecord> {
        self.sim.leads(self.dc.code)
    }
}

fn convert_body(deals: Option<Value>) -> Value {
    let mut item =
        json!({"overwrite": false, "notify_lead_owner": false, "notify_new_entity_owner": false});
    if let Some(deals) = deals {
        item["Deals"] = deals;
    }
    json!({ "data": [item] })
}

fn deal(stage: &str, pipeline: &str) -> Value {
    json!({"Deal_Name": "Ada Lovelace (LeadRelay)", "Closing_Date": "2026-12-28", "Stage": stage, "Pipeline": pipeline})
}

#[tokio::test]
async fn upsert_inserts_then_updates_by_email_then_phone() {
    let api = Api::start().await;
    let (status, body) = api
        .upsert(
            json!([{"Last_Name": "Lovelace", "First_Name": "Ada", "Email": "ada@example.com",
                        "Phone": "+61400000001", "Lead_Source": "Chat", "Lead_Score__c": 42}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["code"], "SUCCESS");
    assert_eq!(item["status"], "success");
    assert_eq!(item["action"], "insert");
    assert_eq!(item["duplicate_field"], Value::Null);
    assert_eq!(item["message"], "record added");
    let id = item["details"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 19);
    for key in ["Created_Time", "Modified_Time", "Created_By", "Modified_By"] {
        assert!(!item["details"][key].is_null(), "{key} in {item}");
    }

    // The same email in another case: updated, absent fields untouched.
    let (status, body) = api
        .upsert(json!([{"Last_Name": "King", "Email": "ADA@example.com", "Rating": "Active"}]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["duplicate_field"], "Email");
    assert_eq!(body["data"][0]["message"], "record updated");
    assert_eq!(body["data"][0]["details"]["id"], id.as_str());

    // A new email but a known phone: matched on Phone.
    let (_, body) = api
        .upsert(json!([{"Email": "countess@example.com", "Phone": "+61400000001"}]))
        .await;
    assert_eq!(body["data"][0]["action"], "update");
    assert_eq!(body["data"][0]["duplicate_field"], "Phone");

    let leads = api.leads();
    assert_eq!(leads.len(), 1);
    let lead = &leads[0];
    assert_eq!(lead.id, id);
    assert_eq!(lead.text("Last_Name"), Some("King"));
    assert_eq!(lead.text("First_Name"), Some("Ada"));
    assert_eq!(lead.text("Email"), Some("countess@example.com"));
    assert_eq!(lead.text("Lead_Source"), Some("Chat"));
    assert_eq!(lead.text("Rating"), Some("Active"));
    assert_eq!(lead.field("Lead_Score__c"), Some(&json!(42)));
    assert_eq!(lead.user, DEFAULT_USER);
    assert!(!lead.converted);

    // No match: a second lead.
    api.lead(json!({"Last_Name": "Babbage", "Email": "charles@example.com"}))
        .await;
    assert_eq!(api.leads().len(), 2);

    // Duplicate check defaults to Email only.
    let (_, body) = api
        .post(
            "/crm/v8/Leads/upsert",
            json!({"data": [{"Last_Name": "Other", "Phone": "+61400000001"}]}),
        )
        .await;
    assert_eq!(body["data"][0]["action"], "insert");
}

#[tokio::test]
async fn upsert_reports_missing_mandatory_fields() {
    let api = Api::start().await;
    let (status, body) = api.upsert(json!([{"Email": "nameless@example.com"}])).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"][0],
        json!({
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Last_Name", "json_path": "$.data[0].Last_Name"},
            "message": "required field not found",
            "status": "error",
        })
    );
    let (status, body) = api
        .upsert(json!([{"Last_Name": "  ", "Email": "x@example.com"}]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "MANDATORY_NOT_FOUND");
    assert!(api.leads().is_empty());

    // Updating a match needs no Last_Name.
    api.lead(json!({"Last_Name": "Known", "Email": "known@example.com"}))
        .await;
    let (status, body) = api
        .upsert(json!([{"Email": "known@example.com", "First_Name": "K"}]))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn mixed_results_answer_207_with_per_record_errors() {
    let api = Api::start().await;
    let (status, body) = api
        .upsert(json!([
            {"Last_Name": "Good", "Email": "good@example.com"},
            {"Last_Name": "Bad", "Email": "not-an-email"},
            {"Last_Name": "Bad", "Lead_Source": "Carrier Pigeon"},
            {"Last_Name": "Bad", "Favourite_Colour": "green"},
            {"Last_Name": "x".repeat(81)},
            {"Last_Name": "Bad", "Lead_Score__c": "high"},
        ]))
        .await;
    assert_eq!(status, 207, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data[0]["status"], "success");
    let errors: Vec<(&str, &str)> = data[1..]
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "error");
            (
                e["code"].as_str().unwrap(),
                e["details"]["api_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("INVALID_DATA", "Email"),
            ("INVALID_DATA", "Lead_Source"),
            ("INVALID_DATA", "Favourite_Colour"),
            ("INVALID_DATA", "Last_Name"),
            ("INVALID_DATA", "Lead_Score__c"),
        ]
    );
    assert_eq!(data[2]["details"]["json_path"], "$.data[2].Lead_Source");
    assert_eq!(data[4]["details"]["maximum_length"], 80);
    assert_eq!(api.leads().len(), 1);

    // Request-level problems.
    let (status, body) = api.post("/crm/v8/Leads/upsert", json!({"data": []})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("MANDATORY_NOT_FOUND"))
    );
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"Last_Name": format!("L{i}")}))
        .collect();
    let (status, body) = api.upsert(Value::Array(too_many)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("LIMIT_EXCEEDED"))
    );
}

#[tokio::test]
async fn updates_by_id_and_invalid_ids() {
    let api = Api::start().await;
    let id = api
        .lead(json!({"Last_Name": "Lovelace", "Email": "ada@example.com"}))
        .await;
    let (status, body) = api
        .put(
            &format!("/crm/v8/Leads/{id}"),
            json!({"data": [{"First_Name": "Ada"}], "trigger": ["workflow"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["message"], "record updated");
    assert_eq!(api.leads()[0].text("First_Name"), Some("Ada"));

    let (status, body) = api
        .put(
            "/crm/v8/Leads/5725767000009999999",
            json!({"data": [{"First_Name": "X"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"][0],
        json!({
            "code": "INVALID_DATA",
            "details": {"api_name": "id", "json_path": "$.data[0].id"},
            "message": "the related id given seems to be invalid",
            "status": "error",
        })
    );

    let (status, body) = api.get(&format!("/crm/v8/Leads/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], id.as_str());
    assert_eq!(body["data"][0]["Full_Name"], "Ada Lovelace");
    assert_eq!(body["data"][0]["$converted"], false);
    assert_eq!(body["data"][0]["Owner"]["email"], DEFAULT_USER);
    let (status, _) = api.get("/crm/v7/Leads/5725767000009999999").await;
    assert_eq!(status, 204);

    // A converted lead is no longer writable.
    let (status, _) = api
        .post(
            &format!("/crm/v8/Leads/{id}/actions/convert"),
            convert_body(None),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .put(
            &format!("/crm/v8/Leads/{id}"),
            json!({"data": [{"First_Name": "Y"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["details"]["api_name"], "id");

    // Deleted records are gone.
    let other = api
        .lead(json!({"Last_Name": "Gone", "Email": "gone@example.com"}))
        .await;
    assert!(api.sim.delete_record("au", "Leads", &other));
    let (status, _) = api
        .put(
            &format!("/crm/v8/Leads/{other}"),
            json!({"data": [{"First_Name": "Y"}]}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn search_finds_unconverted_leads_or_answers_204() {
    let api = Api::start().await;
    let id = api
        .lead(json!({"Last_Name": "Lovelace", "Email": "ada@example.com", "Phone": "+61400000001"}))
        .await;
    let (status, body) = api
        .get("/crm/v8/Leads/search?email=ADA%40example.com")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["id"], id.as_str());
    assert_eq!(body["info"]["count"], 1);
    assert_eq!(body["info"]["more_records"], false);

    let (status, body) = api.get("/crm/v8/Leads/search?phone=%2B61400000001").await;
    assert_eq!(
        (status, body["data"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (status, body) = api
        .get("/crm/v8/Leads/search?email=nobody%40example.com")
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = api.get("/crm/v8/Leads/search").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("REQUIRED_PARAM_MISSING"))
    );

    api.post(
        &format!("/crm/v8/Leads/{id}/actions/convert"),
        convert_body(None),
    )
    .await;
    let (status, _) = api
        .get("/crm/v8/Leads/search?email=ada%40example.com")
        .await;
    assert_eq!(status, 204);
    // A converted lead no longer takes part in the duplicate check.
    let (_, body) = api
        .upsert(json!([{"Last_Name": "Lovelace", "Email": "ada@example.com"}]))
        .await;
    assert_eq!(body["data"][0]["action"], "insert");
}

#[tokio::test]
async fn notes_need_content_and_an_existing_parent() {
    let api = Api::start().await;
    let lead = api
        .lead(json!({"Last_Name": "Lovelace", "Email": "ada@example.com"}))
        .await;
    let (status, body) = api
        .post(
            "/crm/v8/Notes",
            json!({"data": [{"Note_Title": "Summary", "Note_Content": "Wants a demo",
                            "Parent_Id": {"module": {"api_name": "Leads"}, "id": lead}}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"][0]["message"], "record added");
    let note = body["data"][0]["details"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = api
        .post(
            "/crm/v8/Notes",
            json!({"data": [
                {"Note_Content": "x", "Parent_Id": {"module": {"api_name": "Leads"}, "id": "5725767000009999999"}},
                {"Note_Title": "no content", "Parent_Id": {"module": {"api_name": "Leads"}, "id": lead}},
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "INVALID_DATA");
    assert_eq!(body["data"][0]["details"]["api_name"], "Parent_Id");
    assert_eq!(body["data"][1]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(body["data"][1]["details"]["api_name"], "Note_Content");

    let (status, body) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/Notes"),
            json!({"data": [{"Note_Title": "t", "Note_Content": "second"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = api
        .put(
            &format!("/crm/v8/Notes/{note}"),
            json!({"data": [{"Note_Content": "Wants two demos"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let notes = api.sim.notes("au");
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0].text("Note_Content"), Some("Wants two demos"));
    assert_eq!(
        notes[0].parent,
        Some(ZohoParent {
            module: "Leads".into(),
            id: lead.clone()
        })
    );
}

#[tokio::test]
async fn convert_makes_contact_account_and_deal_and_moves_notes() {
    let api = Api::start().await;
    let lead = api
        .lead(json!({"First_Name": "Ada", "Last_Name": "Lovelace", "Email": "ada@example.com",
                     "Phone": "+61400000001", "Company": "Analytical Engines", "Lead_Source": "Chat"}))
        .await;
    api.post(
        "/crm/v8/Notes",
        json!({"data": [{"Note_Content": "summary", "Parent_Id": {"module": {"api_name": "Leads"}, "id": lead}}]}),
    )
    .await;
    let credits_before = api.sim.credits_used("au", DEFAULT_USER);

    let (status, body) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            convert_body(Some(deal("Id. Decision Makers", "Standard (Standard)"))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["code"], "SUCCESS");
    assert_eq!(
        item["message"],
        "The record has been converted successfully"
    );
    let details = &item["details"];
    assert_eq!(details["Contacts"]["name"], "Ada Lovelace");
    assert_eq!(details["Deals"]["name"], "Ada Lovelace (LeadRelay)");
    assert_eq!(details["Accounts"]["name"], "Analytical Engines");
    assert_eq!(api.sim.credits_used("au", DEFAULT_USER) - credits_before, 5);

    let contact_id = details["Contacts"]["id"].as_str().unwrap();
    let contacts = api.sim.contacts("au");
    assert_eq!(contacts.len(), 1);
    let contact = &contacts[0];
    assert_eq!(contact.id, contact_id);
    for (field, value) in [
        ("First_Name", "Ada"),
        ("Last_Name", "Lovelace"),
        ("Email", "ada@example.com"),
        ("Phone", "+61400000001"),
        ("Lead_Source", "Chat"),
    ] {
        assert_eq!(contact.text(field), Some(value), "{field}");
    }
    let deals = api.sim.deals("au");
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].text("Stage"), Some("Id. Decision Makers"));
    assert_eq!(deals[0].field("Contact_Name").unwrap()["id"], contact_id);
    assert_eq!(api.sim.accounts("au").len(), 1);
    assert!(api.leads()[0].converted);
    assert_eq!(
        api.sim.notes("au")[0].parent,
        Some(ZohoParent {
            module: "Contacts".into(),
            id: contact_id.to_owned()
        })
    );

    // A second conversion.
    let (status, body) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            convert_body(None),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "ID_ALREADY_CONVERTED", "details": {"resource_path_index": 1},
               "message": "id already converted", "status": "error"})
    );

    // No company, no deal: only a contact.
    let plain = api
        .lead(json!({"Last_Name": "Babbage", "Email": "charles@example.com"}))
        .await;
    let (status, body) = api
        .post(
            &format!("/crm/v8/Leads/{plain}/actions/convert"),
            convert_body(None),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["details"]["Deals"], Value::Null);
    assert_eq!(body["data"][0]["details"]["Accounts"], Value::Null);
    assert_eq!(api.sim.contacts("au").len(), 2);

    // Later updates of the contact and the deal.
    let deal_id = details["Deals"]["id"].as_str().unwrap();
    let (status, _) = api
        .put(
            &format!("/crm/v8/Contacts/{contact_id}"),
            json!({"data": [{"Phone": "+61400000002"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .put(
            &format!("/crm/v8/Deals/{deal_id}"),
            json!({"data": [{"Stage": "Closed Won"}]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .put(
            &format!("/crm/v8/Deals/{deal_id}"),
            json!({"data": [{"Stage": "Security Review"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "MAPPING_MISMATCH");
}

#[tokio::test]
async fn convert_validates_the_deal() {
    let api = Api::start().await;
    let lead = api
        .lead(json!({"Last_Name": "Lovelace", "Email": "ada@example.com"}))
        .await;
    let path = format!("/crm/v8/Leads/{lead}/actions/convert");

    let (status, body) = api
        .post(
            &path,
            convert_body(Some(deal("Security Review", "Standard (Standard)"))),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"][0],
        json!({"code": "MAPPING_MISMATCH",
               "details": {"mapped_field": "Pipeline", "api_name": "Stage", "json_path": "$.data[0].Stage"},
               "message": "Pipeline doesn't contain the Stage", "status": "error"})
    );

    let mut missing = deal("Qualification", "Standard (Standard)");
    missing.as_object_mut().unwrap().remove("Closing_Date");
    let (status, body) = api.post(&path, convert_body(Some(missing))).await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(body["data"][0]["details"]["api_name"], "Closing_Date");

    let mut bad_date = deal("Qualification", "Standard (Standard)");
    bad_date["Closing_Date"] = json!("28/12/2026");
    let (_, body) = api.post(&path, convert_body(Some(bad_date))).await;
    assert_eq!(body["data"][0]["code"], "INVALID_DATA");
    assert_eq!(body["data"][0]["details"]["api_name"], "Closing_Date");

    let (_, body) = api
        .post(&path, convert_body(Some(deal("Qualification", "Nope"))))
        .await;
    assert_eq!(body["data"][0]["details"]["api_name"], "Pipeline");

    let (status, body) = api
        .post(
            "/crm/v8/Leads/5725767000009999999/actions/convert",
            convert_body(None),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"][0]["code"], "INVALID_DATA");

    assert!(!api.leads()[0].converted);
    assert!(api.sim.contacts("au").is_empty());

    // The Enterprise pipeline has its own stages.
    let (status, body) = api
        .post(
            &path,
            convert_body(Some(deal("Security Review", "Enterprise"))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn metadata_layouts_pipelines_and_fields() {
    let api = Api::start().await;
    let (status, body) = api.get("/crm/v8/settings/layouts?module=Deals").await;
    assert_eq!(status, 200);
    let layout = &body["layouts"][0];
    assert_eq!(layout["name"], "Standard");
    assert_eq!(layout["status"], "active");
    let layout_id = layout["id"].as_str().unwrap();

    let (status, body) = api.get("/crm/v8/settings/pipeline").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "INVALID_DATA");
    assert_eq!(body["details"], json!({"param_name": "layout_id"}));
    let (status, _) = api.get("/crm/v8/settings/pipeline?layout_id=123").await;
    assert_eq!(status, 400);

    let (status, body) = api
        .get(&format!("/crm/v8/settings/pipeline?layout_id={layout_id}"))
        .await;
    assert_eq!(status, 200);
    let standard = &body["pipeline"][0];
    assert_eq!(standard["display_value"], "Standard");
    assert_eq!(standard["actual_value"], "Standard (Standard)");
    assert_eq!(standard["default"], true);
    let maps = standard["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 9);
    assert_eq!(maps[3]["display_value"], "Identify Decision Makers");
    assert_eq!(maps[3]["actual_value"], "Id. Decision Makers");
    assert_eq!(maps[6]["forecast_type"], "Closed Won");
    assert_eq!(maps[8]["forecast_type"], "Closed Lost");
    assert!(maps[0]["forecast_category"]["name"].is_string());
    assert_eq!(body["pipeline"][1]["actual_value"], "Enterprise");

    let (status, body) = api.get("/crm/v8/settings/fields?module=Leads").await;
    assert_eq!(status, 200);
    let fields = body["fields"].as_array().unwrap();
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["api_name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(field("Last_Name")["system_mandatory"], true);
    assert_eq!(field("Lead_Score__c")["custom_field"], true);
    assert_eq!(field("Lead_Score__c")["data_type"], "integer");
    assert_eq!(field("Channel__c")["data_type"], "text");
    let source_field = field("Lead_Source");
    let sources: Vec<&str> = source_field["pick_list_values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["actual_value"].as_str().unwrap())
        .collect();
    assert_eq!(sources.first(), Some(&"-None-"));
    assert!(sources.contains(&"X (Twitter)") && sources.contains(&"WhatsApp"));
    let (status, _) = api.get("/crm/v8/settings/fields?module=Widgets").await;
    assert_eq!(status, 400);

    // Tests can extend the schema.
    api.sim
        .add_picklist_value("Leads", "Lead_Source", "LeadRelay");
    api.sim.add_field(
        "Leads",
        ZohoField::picklist("Tier__c", "Tier", &["Gold"]).custom(),
    );
    api.sim.add_pipeline(ZohoPipeline::new(
        "Partners",
        "Partners",
        false,
        vec![
            ZohoStage::open("Referred"),
            ZohoStage::new("Signed", "Signed", "Closed Won"),
        ],
    ));
    let (status, body) = api
        .upsert(json!([{"Last_Name": "New", "Lead_Source": "LeadRelay", "Tier__c": "Gold"}]))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = api
        .get(&format!("/crm/v8/settings/pipeline?layout_id={layout_id}"))
        .await;
    assert_eq!(body["pipeline"][2]["maps"][1]["actual_value"], "Signed");
}

#[tokio::test]
async fn api_credits_run_out_with_429() {
    let config = ZohoSimConfig {
        api_credits: (6, Duration::from_secs(60)),
        ..ZohoSimConfig::default()
    };
    let api = Api::with(config, "us").await;
    let lead = api.lead(json!({"Last_Name": "Lovelace"})).await;
    let (status, _) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            convert_body(None),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api.get("/crm/v8/org").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    assert_eq!(body["status"], "error");
    assert_eq!(api.sim.credits_used("us", DEFAULT_USER), 6);

    // Credits are per org: another user still has them.
    let other = api.as_user("us", "bob@example.com");
    assert_eq!(other.get("/crm/v8/org").await.0, 200);
}

#[tokio::test]
async fn each_dc_and_user_has_its_own_org() {
    let au = Api::start().await;
    let us = au.as_user("us", DEFAULT_USER);
    let bob = au.as_user("au", "bob@example.com");
    au.lead(json!({"Last_Name": "Aussie", "Email": "same@example.com"}))
        .await;
    us.lead(json!({"Last_Name": "Yankee", "Email": "same@example.com"}))
        .await;
    bob.lead(json!({"Last_Name": "Bobs", "Email": "same@example.com"}))
        .await;

    assert_eq!(au.sim.leads("us").len(), 1);
    assert_eq!(au.sim.leads("au").len(), 2);
    assert_ne!(
        au.sim.org_id("au", DEFAULT_USER),
        au.sim.org_id("us", DEFAULT_USER)
    );
    // Bob cannot see Alice's lead.
    let alice_lead = &au.sim.leads("au")[0].id;
    let (status, _) = bob.get(&format!("/crm/v8/Leads/{alice_lead}")).await;
    assert_eq!(status, 204);

    let seeded = au.sim.seed_lead(
        "au",
        None,
        json!({"Last_Name": "Seeded", "Phone": "+61400000009"}),
    );
    let (_, body) = au
        .upsert(json!([{"Last_Name": "X", "Phone": "+61400000009"}]))
        .await;
    assert_eq!(body["data"][0]["details"]["id"], seeded.as_str());

    let state: Value = reqwest::get(format!("{}{}?dc=au", au.sim.base_url(), SIM_STATE_PATH))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["dc"], "au");
    assert_eq!(state["api_domain"], "https://www.zohoapis.com.au");
    assert_eq!(state["leads"].as_array().unwrap().len(), 3);
    assert_eq!(state["orgs"].as_array().unwrap().len(), 2);
    assert!(state["contacts"].as_array().unwrap().is_empty());
    assert_eq!(state, au.sim.state_json("au"));
    assert!(
        au.sim
            .requests()
            .iter()
            .all(|r| !r.path.starts_with(SIM_PREFIX)),
        "/_sim/ is not recorded"
    );
    let us_requests = au
        .sim
        .requests()
        .iter()
        .filter(|r| r.dc == Some("us"))
        .count();
    assert_eq!(us_requests, 1);
}

#[tokio::test]
async fn injected_record_errors_and_faults() {
    let api = Api::start().await;
    api.sim.fail_next_upsert(
        200,
        record_error(
            "DUPLICATE_DATA",
            json!({"api_name": "Email", "json_path": "$.data[0].Email"}),
            "duplicate data",
        ),
    );
    let (status, body) = api
        .upsert(json!([{"Last_Name": "X", "Email": "x@example.com"}]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["code"], "DUPLICATE_DATA");
    assert_eq!(body["data"][0]["status"], "error");
    assert!(
        api.leads().is_empty(),
        "the faulted request was not handled"
    );

    // An upsert fault does not fire on other lead calls.
    api.sim
        .inject(ZohoRoute::Upsert, Fault::Status(500, "{}".into()));
    let (status, _) = api.get("/crm/v8/Leads/5725767000009999999").await;
    assert_eq!(status, 204);
    assert_eq!(api.sim.faults().pending(), 1);
    api.sim.faults().clear();

    api.sim.inject(ZohoRoute::Leads, Fault::Throttle);
    let (status, body) = api.upsert(json!([{"Last_Name": "X"}])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("TOO_MANY_REQUESTS"))
    );
    api.sim.inject(ZohoRoute::Convert, Fault::Garbage);
    let lead = api.lead(json!({"Last_Name": "Y"})).await;
    let (status, body) = api
        .post(
            &format!("/crm/v8/Leads/{lead}/actions/convert"),
            convert_body(None),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.is_string(), "garbage is not JSON");
    assert!(!api.leads()[0].converted);
}

#[tokio::test]
async fn unknown_modules_and_versions() {
    let api = Api::start().await;
    let (status, body) = api
        .post("/crm/v8/Widgets/upsert", json!({"data": [{}]}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_MODULE"))
    );
    let (status, body) = api.get("/crm/v2/org").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("INVALID_URL_PATTERN"))
    );
    let (status, body) = api.get("/crm/v8/no/such/path/here/at/all").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("INVALID_URL_PATTERN"))
    );
    let (status, body) = api
        .post("/crm/v8/Leads/upsert", json!("not an object"))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_DATA")));
}

/// A multi-record upsert or notes create is one API call (one credit, as Zoho's credit
/// table counts a call of up to 100 records), answers one result per record in order, and
/// may be applied while its answer is lost.
#[tokio::test]
async fn multi_record_writes_answer_per_record_cost_one_credit_and_can_lose_their_answer() {
    let api = Api::start().await;
    api.sim
        .refuse_records("Leads", "Email", "refused", "INVALID_DATA");
    let before = api.sim.credits_used("au", DEFAULT_USER);
    let (status, body) = api
        .upsert(json!([
            {"Last_Name": "A", "Email": "a@example.com"},
            {"Last_Name": "B", "Email": "b.refused@example.com"},
            {"Last_Name": "C", "Phone": "+97455501234"},
        ]))
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["data"][0]["status"], "success");
    assert_eq!(body["data"][1]["code"], "INVALID_DATA");
    assert_eq!(body["data"][1]["details"]["json_path"], "$.data[1].Email");
    assert_eq!(body["data"][2]["details"]["id"].as_str().unwrap().len(), 19);
    assert_eq!(api.sim.credits_used("au", DEFAULT_USER) - before, 1);
    assert_eq!(
        api.leads().len(),
        2,
        "the refused record alone was not applied"
    );

    let parents: Vec<String> = api.leads().iter().map(|l| l.id.clone()).collect();
    let notes: Vec<Value> = parents
        .iter()
        .map(|id| {
            json!({"Note_Content": format!("on {id}"),
                         "Parent_Id": {"module": {"api_name": "Leads"}, "id": id}})
        })
        .collect();
    let (status, body) = api.post("/crm/v8/Notes", json!({ "data": notes })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(api.sim.credits_used("au", DEFAULT_USER) - before, 2);

    let too_many: Vec<Value> = (0..=crm::MAX_RECORDS)
        .map(|i| json!({"Last_Name": format!("N{i}")}))
        .collect();
    let (status, body) = api.upsert(json!(too_many)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("LIMIT_EXCEEDED"))
    );

    api.sim.inject(
        ZohoRoute::Upsert,
        Fault::LoseAnswer(Lost::Status(504, "gateway timeout".into())),
    );
    let (status, _) = api
        .upsert(json!([
            {"Last_Name": "D", "Email": "d@example.com"},
            {"Last_Name": "E", "Email": "e@example.com"},
        ]))
        .await;
    assert_eq!(status, 504);
    assert_eq!(api.leads().len(), 4, "both records were applied");
}
