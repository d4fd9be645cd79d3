//! CRM endpoints: records, associations, validation, limits and faults.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::sim::shell::testkit::{answer, get_json};

struct Api {
    sim: HubSpotSim,
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn start() -> Api {
        Self::with(HubSpotSimConfig::default()).await
    }

    async fn with(config: HubSpotSimConfig) -> Api {
        let sim = HubSpotSim::start(config).await;
        let token = sim.seed_connection(&["oauth"]).access_token;
        Api {
            sim,
            http: reqwest::Client::new(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        answer(self.raw(method, path, body).await).await
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn upsert(&self, email: &str, properties: Value) -> (u16, Value) {
        self.post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [{"id": email, "idProperty": "email", "properties": properties}]}),
        )
        .await
    }

    async fn search_contacts(&self, property: &str, value: &str) -> (u16, Value) {
        self.post(
            "/crm/objects/2026-09/contacts/search",
            json!({
                "filterGroups": [{"filters": [{"propertyName": property, "operator": "EQ", "value": value}]}],
                "properties": ["email", "phone", "firstname"],
                "limit": 10,
            }),
        )
        .await
    }

    async fn create_deal(&self, contact_id: &str, stage: &str) -> (u16, Value) {
        self.post(
            "/crm/objects/2026-09/deals",
            json!({
                "properties": {"dealname": "Ana — WhatsApp lead", "pipeline": "default", "dealstage": stage},
                "associations": [{
                    "to": {"id": contact_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }],
            }),
        )
        .await
    }
}

fn embedded_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_owned(),
                e["context"]["propertyName"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn upsert_creates_then_updates_by_email() {
    let api = Api::start().await;
    let (status, body) = api
        .upsert(
            "Ana@Example.com",
            json!({"firstname": "Ana", "lastname": "Silva", "phone": "+974 5555 1234"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());
    let first = &body["results"][0];
    assert_eq!(first["new"], true);
    assert_eq!(first["archived"], false);
    assert!(first["createdAt"].is_string() && first["updatedAt"].is_string());
    assert_eq!(first["properties"]["email"], "ana@example.com");
    assert_eq!(first["properties"]["hs_object_id"], first["id"]);
    let id = first["id"].as_str().unwrap().to_owned();

    // Same email, other case: an update of the same record.
    let (status, body) = api
        .upsert(
            "ana@EXAMPLE.com",
            json!({"hs_lead_status": "OPEN", "firstname": "Ana Maria"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = &body["results"][0];
    assert_eq!(second["new"], false);
    assert_eq!(second["id"], id.as_str());
    assert_eq!(second["properties"]["lastname"], "Silva");

    let contacts = api.sim.contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].id, id);
    assert_eq!(contacts[0].properties["firstname"], "Ana Maria");
    assert_eq!(contacts[0].properties["hs_lead_status"], "OPEN");
    assert!(contacts[0].updated_at >= contacts[0].created_at);

    // Two new contacts in one batch.
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "b@example.com", "idProperty": "email", "properties": {"firstname": "B"}},
                {"id": "c@example.com", "idProperty": "email", "properties": {}},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert_eq!(api.sim.contacts().len(), 3);
}

#[tokio::test]
async fn upsert_rejects_bad_batches() {
    let api = Api::start().await;
    let inputs: Vec<Value> = (0..101)
        .map(
            |i| json!({"id": format!("p{i}@example.com"), "idProperty": "email", "properties": {}}),
        )
        .collect();
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");

    // Duplicate ids in one batch (case-insensitive emails).
    let (status, _) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [
                {"id": "d@example.com", "idProperty": "email", "properties": {}},
                {"id": "D@example.com", "idProperty": "email", "properties": {}},
            ]}),
        )
        .await;
    assert_eq!(status, 400);

    // No idProperty: the id is a record id, and an email is not one.
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [{"id": "e@example.com", "properties": {"firstname": "E"}}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("idProperty"),
        "{body}"
    );

    // A non-unique idProperty.
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [{"id": "1", "idProperty": "hs_object_id", "properties": {}}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Unable to perform update/upsert by non-unique 0-1 property"));

    // Unknown property and bad option: both reported, nothing written.
    let (status, body) = api
        .upsert(
            "f@example.com",
            json!({"lead_score": "9", "hs_lead_status": "Hot"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Property values were not valid: [{"),
        "{message}"
    );
    let mut errors = embedded_errors(&body);
    errors.sort();
    assert_eq!(
        errors,
        [
            ("INVALID_OPTION".to_owned(), "hs_lead_status".to_owned()),
            ("PROPERTY_DOESNT_EXIST".to_owned(), "lead_score".to_owned()),
        ]
    );
    assert!(api.sim.contacts().is_empty());

    // A custom property added by the test is accepted.
    api.sim.add_property("contacts", "lead_score");
    let (status, body) = api
        .upsert("f@example.com", json!({"lead_score": "9"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Without idProperty, an existing record id updates that record.
    let id = api.sim.contacts()[0].id.clone();
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/batch/upsert",
            json!({"inputs": [{"id": id, "properties": {"city": "Doha"}}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["new"], false);
    assert_eq!(api.sim.contacts()[0].properties["city"], "Doha");
}

#[tokio::test]
async fn create_conflicts_on_existing_email() {
    let api = Api::start().await;
    let existing = api
        .sim
        .seed_contact(json!({"email": "Old@Example.com", "firstname": "Old"}));
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts",
            json!({"properties": {"email": "old@example.com", "firstname": "New"}, "associations": []}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["category"], "CONFLICT");
    assert_eq!(body["status"], "error");
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {existing}")
    );
    assert!(body["correlationId"].is_string());

    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts",
            json!({"properties": {"email": "new@example.com", "firstname": "New"}, "associations": []}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["properties"]["firstname"], "New");

    // PATCH: unknown id → 404; taking another contact's email → 409.
    let (status, body) = api
        .patch(
            "/crm/objects/2026-09/contacts/999",
            json!({"properties": {"firstname": "X"}}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    let (status, body) = api
        .patch(
            &format!("/crm/objects/2026-09/contacts/{id}"),
            json!({"properties": {"email": "OLD@example.com"}}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api
        .patch(
            &format!("/crm/objects/2026-09/contacts/{id}"),
            json!({"properties": {"jobtitle": "CTO", "firstname": ""}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = api.sim.contacts().into_iter().find(|c| c.id == id).unwrap();
    assert_eq!(stored.properties["jobtitle"], "CTO");
    assert!(
        !stored.properties.contains_key("firstname"),
        "empty string clears"
    );

    // PATCH by email.
    let (status, _) = api
        .patch(
            "/crm/objects/2026-09/contacts/old@example.com?idProperty=email",
            json!({"properties": {"city": "Perth"}}),
        )
        .await;
    assert_eq!(status, 200);
    let old = api
        .sim
        .contacts()
        .into_iter()
        .find(|c| c.id == existing)
        .unwrap();
    assert_eq!(old.properties["city"], "Perth");
}

#[tokio::test]
async fn search_matches_phone_digits_email_case_and_record_id() {
    // More than five searches below: lift the search limit for this test.
    let api = Api::with(HubSpotSimConfig {
        search_rate_limit: (100, Duration::from_secs(1)),
        ..HubSpotSimConfig::default()
    })
    .await;
    let qatar = api.sim.seed_contact(
        json!({"email": "q@example.com", "phone": "+974 5555 1234", "firstname": "Q"}),
    );
    let australia = api
        .sim
        .seed_contact(json!({"email": "au@example.com", "mobilephone": "+61 412 345 678"}));

    let (status, body) = api.search_contacts("phone", "+97455551234").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    assert_eq!(body["results"][0]["id"], qatar.as_str());
    assert_eq!(body["results"][0]["properties"]["phone"], "+974 5555 1234");
    assert_eq!(body["results"][0]["properties"]["firstname"], "Q");
    assert!(body["results"][0]["properties"]["hs_object_id"].is_string());
    assert!(body["results"][0]["createdAt"].is_string());

    let (_, body) = api.search_contacts("phone", "(974) 5555-1234").await;
    assert_eq!(body["total"], 1);
    let (_, body) = api.search_contacts("mobilephone", "+61412345678").await;
    assert_eq!(body["results"][0]["id"], australia.as_str());
    let (_, body) = api.search_contacts("email", "Q@EXAMPLE.COM").await;
    assert_eq!(body["results"][0]["id"], qatar.as_str());
    let (_, body) = api.search_contacts("hs_object_id", &australia).await;
    assert_eq!(body["total"], 1);
    let (_, body) = api.search_contacts("phone", "+974 0000 0000").await;
    assert_eq!(body["total"], 0);
    assert_eq!(body["results"], json!([]));

    // OR across groups: email or phone.
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts/search",
            json!({"filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "nobody@example.com"}]},
                {"filters": [{"propertyName": "mobilephone", "operator": "EQ", "value": "0061 412 345 678"}]},
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 0, "0061… has other digits than +61…");
    let (_, body) = api
        .post(
            "/crm/objects/2026-09/contacts/search",
            json!({"filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": "nobody@example.com"}]},
                {"filters": [{"propertyName": "phone", "operator": "EQ", "value": "+974-5555-1234"}]},
            ]}),
        )
        .await;
    assert_eq!(body["total"], 1);
    // Default properties when none are asked for.
    assert_eq!(body["results"][0]["properties"]["email"], "q@example.com");

    // Searches send no rate-limit headers.
    let response = api
        .raw(
            reqwest::Method::POST,
            "/crm/objects/2026-09/contacts/search",
            Some(json!({"filterGroups": []})),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("x-hubspot-ratelimit-max"));

    // Unknown property in a filter.
    let (status, _) = api.search_contacts("no_such_property", "x").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn deals_validate_pipeline_and_stage() {
    let api = Api::start().await;
    let contact = api.sim.seed_contact(json!({"email": "d@example.com"}));

    let (status, body) = api.create_deal(&contact, "not-a-stage").await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(
        embedded_errors(&body),
        [("INVALID_OPTION".to_owned(), "dealstage".to_owned())]
    );
    assert!(body["message"].as_str().unwrap().contains("dealstage"));

    // A stage of the other pipeline is refused for the default pipeline.
    let custom_pipeline = (7_000_000 + api.sim.config().hub_id % 1_000_000).to_string();
    let custom_stage = format!("{custom_pipeline}01");
    let (status, body) = api.create_deal(&contact, &custom_stage).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        embedded_errors(&body),
        [("INVALID_OPTION".to_owned(), "dealstage".to_owned())]
    );

    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals",
            json!({"properties": {"dealname": "x", "pipeline": "nope", "dealstage": "closedwon"}, "associations": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(embedded_errors(&body)[0].1, "pipeline");

    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals",
            json!({"properties": {"dealname": "x"}, "associations": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        embedded_errors(&body),
        [("REQUIRED_PROPERTY".to_owned(), "dealstage".to_owned())]
    );
    assert!(api.sim.deals().is_empty());

    let (status, body) = api.create_deal(&contact, "appointmentscheduled").await;
    assert_eq!(status, 201, "{body}");
    let deal = body["id"].as_str().unwrap().to_owned();

    // Move the deal.
    let path = format!("/crm/objects/2026-09/deals/{deal}");
    let (status, body) = api
        .patch(
            &path,
            json!({"properties": {"dealstage": "qualifiedtobuy"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["dealstage"], "qualifiedtobuy");
    let (status, _) = api
        .patch(&path, json!({"properties": {"dealstage": custom_stage}}))
        .await;
    assert_eq!(status, 400);
    // Moving to the other pipeline with one of its stages works.
    let (status, body) = api
        .patch(
            &path,
            json!({"properties": {"pipeline": custom_pipeline, "dealstage": custom_stage}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.sim.deals()[0].properties["dealstage"], custom_stage);
}

#[tokio::test]
async fn inline_associations_are_recorded_both_ways() {
    let api = Api::start().await;
    let contact = api.sim.seed_contact(json!({"email": "a@example.com"}));
    let (status, body) = api.create_deal(&contact, "appointmentscheduled").await;
    assert_eq!(status, 201, "{body}");
    let deal = body["id"].as_str().unwrap().to_owned();

    let (status, body) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({
                "properties": {"hs_note_body": "Asked for a viewing on Saturday", "hs_timestamp": "1735689600000"},
                "associations": [
                    {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
                    {"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]},
                ],
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let note = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["properties"]["hs_timestamp"],
        "2025-01-01T00:00:00.000Z"
    );

    assert_eq!(
        api.sim.associations("deals", &deal),
        [
            ("contacts".to_owned(), contact.clone(), 3),
            ("notes".to_owned(), note.clone(), 213),
        ]
    );
    assert_eq!(
        api.sim.associations("contact", &contact),
        [
            ("deals".to_owned(), deal.clone(), 4),
            ("notes".to_owned(), note.clone(), 201),
        ]
    );
    assert_eq!(
        api.sim.associations("notes", &note),
        [
            ("contacts".to_owned(), contact.clone(), 202),
            ("deals".to_owned(), deal.clone(), 214),
        ]
    );

    // GET with ?associations=.
    let (status, body) = api
        .get(&format!(
            "/crm/objects/2026-09/contacts/{contact}?associations=deals,notes&properties=email"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["email"], "a@example.com");
    assert_eq!(
        body["associations"]["deals"]["results"],
        json!([{"id": deal, "type": "contact_to_deal"}])
    );
    assert_eq!(
        body["associations"]["notes"]["results"],
        json!([{"id": note, "type": "contact_to_note"}])
    );
    let (_, body) = api.get(&format!("/crm/objects/2026-09/deals/{deal}")).await;
    assert!(body.get("associations").is_none());
    assert_eq!(body["properties"]["dealstage"], "appointmentscheduled");
    assert!(body["properties"]["amount"].is_null());

    // Wrong type id for the pair, and a target that does not exist.
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({
                "properties": {"hs_timestamp": "2025-01-01T00:00:00Z"},
                "associations": [{"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({
                "properties": {"hs_timestamp": "2025-01-01T00:00:00Z"},
                "associations": [{"to": {"id": "123"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}],
            }),
        )
        .await;
    assert_eq!(status, 400);
    // A deal id where a contact id belongs.
    let (status, _) = api.create_deal(&deal, "appointmentscheduled").await;
    assert_eq!(status, 400);
    assert_eq!(api.sim.notes().len(), 1);
    assert_eq!(api.sim.deals().len(), 1);

    let state = api.sim.state_json();
    assert_eq!(state["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(state["associations"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn notes_need_a_timestamp_and_a_short_enough_body() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({"properties": {"hs_note_body": "hello"}, "associations": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        embedded_errors(&body),
        [("REQUIRED_PROPERTY".to_owned(), "hs_timestamp".to_owned())]
    );

    let too_long = "x".repeat(65_537);
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({"properties": {"hs_note_body": too_long, "hs_timestamp": "2025-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(embedded_errors(&body)[0].1, "hs_note_body");

    let just_fits = "ق".repeat(65_536);
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/notes",
            json!({"properties": {"hs_note_body": just_fits, "hs_timestamp": "2025-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(status, 201, "{}", body["message"]);
    let note = body["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .patch(
            &format!("/crm/objects/2026-09/notes/{note}"),
            json!({"properties": {"hs_note_body": "edited"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(api.sim.notes()[0].properties["hs_note_body"], "edited");

    // Malformed JSON.
    let response = api
        .http
        .post(api.url("/crm/objects/2026-09/notes"))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn properties_endpoints_describe_the_schema() {
    let api = Api::start().await;
    let (status, body) = api.get("/crm/properties/2026-09/contacts").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"email") && names.contains(&"hs_lead_status"));
    assert!(!names.contains(&"lead_source"));

    let (status, body) = api
        .get("/crm/properties/2026-09/contacts/hs_lead_status")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["type"], "enumeration");
    for field in [
        "name",
        "label",
        "type",
        "fieldType",
        "description",
        "groupName",
        "options",
    ] {
        assert!(body.get(field).is_some(), "{field} missing");
    }
    let values: Vec<&str> = body["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "NEW",
            "OPEN",
            "IN_PROGRESS",
            "OPEN_DEAL",
            "UNQUALIFIED",
            "ATTEMPTED_TO_CONTACT",
            "CONNECTED",
            "BAD_TIMING"
        ]
    );

    let (status, body) = api.get("/crm/properties/2026-09/deals/dealstage").await;
    assert_eq!(status, 200);
    assert!(body["options"].as_array().unwrap().len() >= 12);

    api.sim
        .add_enum_property("contacts", "lead_source", &["whatsapp", "web"]);
    let (status, body) = api.get("/crm/properties/2026-09/0-1/lead_source").await;
    assert_eq!(status, 200);
    assert!(body.get("hubspotDefined").is_none());
    assert_eq!(body["options"][0]["value"], "whatsapp");

    assert_eq!(
        api.get("/crm/properties/2026-09/contacts/nope").await.0,
        404
    );
    assert_eq!(api.get("/crm/properties/2026-09/widgets").await.0, 400);
}

#[tokio::test]
async fn rate_limit_429_after_100_calls_in_the_window() {
    let api = Api::start().await;
    let contact = api.sim.seed_contact(json!({"email": "r@example.com"}));
    let path = format!("/crm/objects/2026-09/contacts/{contact}");
    for i in 0..100u32 {
        let response = api.raw(reqwest::Method::GET, &path, None).await;
        assert_eq!(response.status(), 200, "call {i}");
        assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "100");
        assert_eq!(
            response.headers()["x-hubspot-ratelimit-remaining"],
            (99 - i).to_string().as_str()
        );
    }
    let response = api
        .raw(
            reqwest::Method::POST,
            "/crm/objects/2026-09/contacts",
            Some(json!({"properties": {"email": "s@example.com"}})),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "0");
    assert_eq!(
        response.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(
        api.sim.contacts().len(),
        1,
        "a throttled create writes nothing"
    );

    // Searches are exempt from the ten-secondly window.
    let (status, _) = api.search_contacts("email", "r@example.com").await;
    assert_eq!(status, 200);

    // Another hub has its own window.
    let other = api.sim.seed_connection_in_hub(99, &["oauth"]);
    let response = api
        .http
        .get(api.url("/crm/properties/2026-09/deals"))
        .bearer_auth(&other.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-hubspot-ratelimit-remaining"], "99");
    assert_eq!(api.sim.crm_call_count(), 103);
}

#[tokio::test]
async fn search_has_its_own_secondly_limit() {
    let api = Api::with(HubSpotSimConfig {
        search_rate_limit: (5, Duration::from_millis(600)),
        ..HubSpotSimConfig::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(api.search_contacts("email", "x@example.com").await.0, 200);
    }
    let response = api
        .raw(
            reqwest::Method::POST,
            "/crm/objects/2026-09/contacts/search",
            Some(json!({"filterGroups": []})),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert!(!response.headers().contains_key("x-hubspot-ratelimit-max"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "SECONDLY");

    // Other calls are unaffected, and the window rolls.
    assert_eq!(api.get("/crm/properties/2026-09/contacts").await.0, 200);
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(api.search_contacts("email", "x@example.com").await.0, 200);
}

#[tokio::test]
async fn queued_crm_faults_fire_once_on_their_kind_of_call() {
    let api = Api::start().await;
    api.sim.inject(
        Route::Search,
        Fault::Status(500, "{\"status\":\"error\"}".into()),
    );
    api.sim.inject(Route::Notes, Fault::Garbage);
    api.sim.inject(Route::Deals, Fault::Throttle);

    // An upsert is a Contacts call, not a Search: no fault.
    assert_eq!(api.upsert("a@example.com", json!({})).await.0, 200);
    assert_eq!(api.search_contacts("email", "a@example.com").await.0, 500);
    assert_eq!(api.search_contacts("email", "a@example.com").await.0, 200);

    let response = api
        .raw(
            reqwest::Method::POST,
            "/crm/objects/2026-09/notes",
            Some(json!({"properties": {"hs_timestamp": "2025-01-01T00:00:00Z"}})),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.json::<Value>().await.is_err(),
        "garbage must not parse"
    );
    assert!(api.sim.notes().is_empty(), "a faulted call is not handled");

    let response = api
        .raw(reqwest::Method::GET, "/crm/objects/2026-09/deals/1", None)
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("x-hubspot-ratelimit-max"));
    assert_eq!(api.sim.pending_faults(), 0);
    assert_eq!(api.get("/crm/objects/2026-09/deals/1").await.0, 404);

    // Contacts covers a contact search too; a Throttle on a search answers
    // like the search limit (no headers).
    api.sim.inject(Route::Contacts, Fault::Throttle);
    let response = api
        .raw(
            reqwest::Method::POST,
            "/crm/objects/2026-09/contacts/search",
            Some(json!({})),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert!(!response.headers().contains_key("x-hubspot-ratelimit-max"));

    // A delay longer than the client's timeout is a timeout; the request was
    // never handled.
    api.sim
        .inject(Route::Contacts, Fault::Delay(Duration::from_millis(400)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let result = impatient
        .post(api.url("/crm/objects/2026-09/contacts/batch/upsert"))
        .bearer_auth(&api.token)
        .json(&json!({"inputs": [{"id": "late@example.com", "idProperty": "email", "properties": {}}]}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.sim.contacts().len(), 1);

    // DelayAfter: handled, but the client never hears back.
    api.sim.inject(
        Route::Contacts,
        Fault::DelayAfter(Duration::from_millis(400)),
    );
    let started = Instant::now();
    let result = impatient
        .post(api.url("/crm/objects/2026-09/contacts/batch/upsert"))
        .bearer_auth(&api.token)
        .json(&json!({"inputs": [{"id": "late@example.com", "idProperty": "email", "properties": {}}]}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    assert!(started.elapsed() < Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(api.sim.contacts().len(), 2, "the write happened anyway");
}

#[tokio::test]
async fn call_counting_auth_and_state_endpoint() {
    let api = Api::start().await;
    api.sim.reset_crm_call_count();
    assert_eq!(api.upsert("a@example.com", json!({})).await.0, 200);
    // Unauthenticated and OAuth calls are not CRM calls.
    let response = api
        .http
        .post(api.url("/crm/objects/2026-09/contacts"))
        .json(&json!({"properties": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(api.sim.crm_call_count(), 1);

    // /_sim/state needs no token, and is neither counted nor recorded.
    let before = api.sim.requests().len();
    let state = get_json(api.url(SIM_STATE_PATH)).await;
    assert_eq!(state["hubId"], api.sim.config().hub_id);
    assert_eq!(state["contacts"][0]["properties"]["email"], "a@example.com");
    assert_eq!(state["deals"], json!([]));
    assert_eq!(state["notes"], json!([]));
    assert_eq!(state["associations"], json!([]));
    assert_eq!(api.sim.crm_call_count(), 1);
    assert_eq!(api.sim.requests().len(), before);

    // Hubs are separate.
    let other = api.sim.seed_connection_in_hub(7, &["oauth"]);
    let response = api
        .http
        .post(api.url("/crm/objects/2026-09/contacts/search"))
        .bearer_auth(&other.access_token)
        .json(&json!({"filterGroups": []}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total"], 0);
    assert!(api.sim.objects_in_hub(7, "contacts").is_empty());
}

#[test]
fn routes_classify_crm_paths() {
    assert_eq!(
        Route::classify("/crm/objects/2026-09/contacts/batch/upsert"),
        Some(Route::Contacts)
    );
    assert_eq!(
        Route::classify("/crm/objects/2026-09/deals/search"),
        Some(Route::Search)
    );
    assert_eq!(
        Route::classify("/crm/objects/2026-09/0-46/12"),
        Some(Route::Notes)
    );
    assert_eq!(
        Route::classify("/crm/properties/2026-09/contacts"),
        Some(Route::Properties)
    );
    assert_eq!(Route::classify(TOKEN_PATH), Some(Route::Token));
    assert_eq!(Route::classify("/crm/objects/2026-09/companies"), None);
    assert!(Route::Deals.applies_to("/crm/objects/2026-09/deals/search"));
    assert!(Route::Search.applies_to("/crm/objects/2026-09/deals/search"));
    assert!(!Route::Contacts.applies_to("/crm/objects/2026-09/deals/search"));
    assert!(!Route::Contacts.applies_to("/crm/objects/2026-09/contactsx"));
    assert!(!Route::Any.applies_to(HEALTH_PATH));
    assert!(!Route::Any.applies_to(SIM_STATE_PATH));
    assert!(Route::Pipelines.applies_to(PIPELINES_PATH));
}

fn lead_id_property(unique: bool) -> Value {
    json!({
        "name": "leadrelay_lead_id",
        "label": "LeadRelay lead id",
        "type": "string",
        "fieldType": "text",
        "groupName": "dealinformation",
        "hasUniqueValue": unique,
    })
}

#[tokio::test]
async fn properties_are_created_per_hub_validated_and_limited_to_ten_unique_ones() {
    let api = Api::start().await;
    let (status, body) = api
        .post(
            "/crm/properties/2026-09/deals",
            json!({"name": "x", "label": "X"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("fieldType"));

    let (status, body) = api
        .post("/crm/properties/2026-09/deals", lead_id_property(true))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hasUniqueValue"], true);
    assert_eq!(body["name"], "leadrelay_lead_id");
    let (status, _) = api
        .post("/crm/properties/2026-09/deals", lead_id_property(true))
        .await;
    assert_eq!(status, 409, "a name that exists");
    let (status, body) = api
        .get("/crm/properties/2026-09/deals/leadrelay_lead_id")
        .await;
    assert_eq!((status, &body["hasUniqueValue"]), (200, &json!(true)));

    // Another hub does not see it.
    let other = api.sim.seed_connection_in_hub(777, &["oauth"]).access_token;
    let response = api
        .http
        .get(api.url("/crm/properties/2026-09/deals/leadrelay_lead_id"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    for i in 1..10 {
        let mut def = lead_id_property(true);
        def["name"] = json!(format!("unique_{i}"));
        let (status, body) = api.post("/crm/properties/2026-09/deals", def).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut eleventh = lead_id_property(true);
    eleventh["name"] = json!("unique_11");
    let (status, body) = api.post("/crm/properties/2026-09/deals", eleventh).await;
    assert_eq!(status, 400, "{body}");
    let mut plain = lead_id_property(false);
    plain["name"] = json!("not_unique");
    assert_eq!(
        api.post("/crm/properties/2026-09/deals", plain).await.0,
        201
    );
}

#[tokio::test]
async fn unique_values_are_enforced_and_records_read_by_them() {
    let api = Api::start().await;
    let deal = |lead: &str| {
        json!({"properties": {"dealname": "D", "dealstage": "appointmentscheduled",
                              "leadrelay_lead_id": lead}})
    };
    let (status, body) = api.post("/crm/objects/2026-09/deals", deal("lead-1")).await;
    assert_eq!(status, 400, "no such property yet: {body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("PROPERTY_DOESNT_EXIST"));
    api.post("/crm/properties/2026-09/deals", lead_id_property(true))
        .await;

    let (status, first) = api.post("/crm/objects/2026-09/deals", deal("lead-1")).await;
    assert_eq!(status, 201, "{first}");
    let (status, body) = api.post("/crm/objects/2026-09/deals", deal("lead-1")).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("already has that value") && message.contains("leadrelay_lead_id"));
    assert_eq!(api.sim.deals().len(), 1);

    let (status, second) = api.post("/crm/objects/2026-09/deals", deal("lead-2")).await;
    assert_eq!(status, 201);
    let (status, body) = api
        .patch(
            &format!(
                "/crm/objects/2026-09/deals/{}",
                second["id"].as_str().unwrap()
            ),
            json!({"properties": {"leadrelay_lead_id": "lead-1"}}),
        )
        .await;
    assert_eq!(status, 400, "an update may not take a value either: {body}");

    let (status, body) = api
        .get("/crm/objects/2026-09/deals/lead-1?idProperty=leadrelay_lead_id&properties=dealstage")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], first["id"]);
    assert_eq!(body["properties"]["dealstage"], "appointmentscheduled");
    let (status, _) = api
        .get("/crm/objects/2026-09/deals/lead-9?idProperty=leadrelay_lead_id")
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .get("/crm/objects/2026-09/deals/D?idProperty=dealname")
        .await;
    assert_eq!(status, 400, "not a unique property");
}

#[tokio::test]
async fn a_deals_notes_are_listed_and_read_in_a_batch() {
    let api = Api::start().await;
    let (_, contact) = api.upsert("ana@example.com", json!({})).await;
    let contact = contact["results"][0]["id"].as_str().unwrap().to_owned();
    let (_, deal) = api.create_deal(&contact, "appointmentscheduled").await;
    let deal = deal["id"].as_str().unwrap().to_owned();
    let mut notes = Vec::new();
    for body in ["first <p>lead-1</p>", "second"] {
        let (status, note) = api
            .post(
                "/crm/objects/2026-09/notes",
                json!({
                    "properties": {"hs_note_body": body, "hs_timestamp": "2026-01-01T00:00:00Z"},
                    "associations": [{"to": {"id": deal},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]}],
                }),
            )
            .await;
        assert_eq!(status, 201, "{note}");
        notes.push(note["id"].as_str().unwrap().to_owned());
    }

    let (status, listed) = api
        .get(&format!(
            "/crm/objects/2026-09/deals/{deal}/associations/notes"
        ))
        .await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<String> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["toObjectId"].as_u64().unwrap().to_string())
        .collect();
    assert_eq!(ids, notes);
    assert_eq!(listed["results"][0]["associationTypes"][0]["typeId"], 213);
    assert!(listed.get("paging").is_none());
    let (_, page) = api
        .get(&format!(
            "/crm/objects/2026-09/deals/{deal}/associations/notes?limit=1"
        ))
        .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["paging"]["next"]["after"], "1");
    let (status, _) = api
        .get("/crm/objects/2026-09/deals/99/associations/notes")
        .await;
    assert_eq!(status, 404);

    let (status, read) = api
        .post(
            "/crm/objects/2026-09/notes/batch/read",
            json!({"properties": ["hs_note_body"], "inputs": [{"id": notes[0]}, {"id": notes[1]}]}),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read["results"][0]["properties"]["hs_note_body"],
        "first <p>lead-1</p>"
    );
    assert_eq!(read["results"][1]["id"], notes[1].as_str());
    let (status, read) = api
        .post(
            "/crm/objects/2026-09/notes/batch/read",
            json!({"properties": ["hs_note_body"], "inputs": [{"id": notes[0]}, {"id": "5"}]}),
        )
        .await;
    assert_eq!(status, 207, "{read}");
    assert_eq!(read["results"].as_array().unwrap().len(), 1);
    assert_eq!(read["errors"][0]["context"]["ids"][0], "5");
}

#[tokio::test]
async fn search_lags_new_records_while_reads_by_unique_property_do_not() {
    let api = Api::with(HubSpotSimConfig {
        search_index_lag: Duration::from_secs(60),
        ..HubSpotSimConfig::default()
    })
    .await;
    let (status, created) = api
        .post(
            "/crm/objects/2026-09/contacts",
            json!({"properties": {"lastname": "Ana", "phone": "+97455551234"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, found) = api.search_contacts("phone", "+97455551234").await;
    assert_eq!(
        (status, &found["total"]),
        (200, &json!(0)),
        "not indexed yet"
    );
    let (status, read) = api
        .get(&format!(
            "/crm/objects/2026-09/contacts/{}",
            created["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &read["id"]), (200, &created["id"]));
}

#[tokio::test]
async fn lost_answers_and_nth_faults_apply_the_call_through_the_shell() {
    let api = Api::start().await;
    // The second upsert from now is applied, then its answer is lost.
    api.sim.inject_nth(
        Route::Contacts,
        2,
        Fault::LoseAnswer(Lost::Status(502, "bad gateway".into())),
    );
    assert_eq!(api.upsert("a@example.com", json!({})).await.0, 200);
    let (status, body) = api.upsert("b@example.com", json!({})).await;
    assert_eq!((status, body), (502, json!("bad gateway")));
    assert_eq!(api.sim.contacts().len(), 2, "the lost call was applied");

    // A reset after applying: no answer at all, yet the contact exists.
    api.sim
        .inject(Route::Contacts, Fault::LoseAnswer(Lost::Reset));
    let reset = api
        .raw_result(
            "/crm/objects/2026-09/contacts/batch/upsert",
            "c@example.com",
        )
        .await;
    assert!(reset.is_err(), "{reset:?}");
    assert_eq!(api.sim.contacts().len(), 3);
    assert_eq!(api.sim.pending_faults(), 0);
}

impl Api {
    /// An upsert of `email` whose transport outcome is kept (for resets).
    async fn raw_result(&self, path: &str, email: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&json!({"inputs": [{"id": email, "idProperty": "email", "properties": {}}]}))
            .send()
            .await
    }
}

#[tokio::test]
async fn the_numbered_versions_answer_404_and_the_date_version_answers() {
    let api = Api::start().await;
    for path in [
        "/crm/v3/objects/contacts",
        "/crm/v4/objects/deals/1/associations/notes",
    ] {
        let (status, _) = api.post(path, json!({"properties": {}})).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, body) = api.get(PIPELINES_PATH).await;
    assert_eq!(status, 200, "{body}");
    assert!(PIPELINES_PATH.contains(API_VERSION) && OBJECTS_PREFIX.contains(API_VERSION));
}

#[tokio::test]
async fn a_batch_create_with_trace_ids_answers_each_input_and_makes_the_valid_ones() {
    let api = Api::start().await;
    api.sim
        .require_when("deals", "closedate", "dealstage", "closedwon");
    let contact = api.sim.seed_contact(json!({"email": "ana@example.com"}));
    let deal = |stage: &str, trace: &str| {
        json!({
            "properties": {"dealname": format!("deal {trace}"), "pipeline": "default", "dealstage": stage},
            "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}],
            "objectWriteTraceId": trace,
        })
    };
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals/batch/create",
            json!({"inputs": [deal("appointmentscheduled", "0"), deal("closedwon", "1"), deal("qualifiedtobuy", "2")]}),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    let traces: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["objectWriteTraceId"].as_str().unwrap())
        .collect();
    assert_eq!(traces, ["0", "2"]);
    assert_eq!(body["numErrors"], 1);
    let error = &body["errors"][0];
    assert_eq!(error["category"], "VALIDATION_ERROR");
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["1"]));
    assert_eq!(
        error["errors"][0]["code"],
        "MISSING_CONDITIONAL_REQUIRED_PROPERTY"
    );
    assert_eq!(
        error["errors"][0]["context"]["propertyName"],
        json!(["closedate"])
    );
    assert_eq!(api.sim.deals().len(), 2);
    let first = &api.sim.deals()[0];
    assert!(api.sim.associations("deals", &first.id).contains(&(
        "contacts".to_owned(),
        contact.clone(),
        3
    )));

    // Without trace ids one refused input refuses the whole batch, and nothing is made.
    let mut bare = deal("closedwon", "x");
    bare.as_object_mut().unwrap().remove("objectWriteTraceId");
    let mut fine = deal("appointmentscheduled", "y");
    fine.as_object_mut().unwrap().remove("objectWriteTraceId");
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals/batch/create",
            json!({"inputs": [fine, bare]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(api.sim.deals().len(), 2);

    // All fine: 201, and one batch counts as one call.
    api.sim.reset_crm_call_count();
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals/batch/create",
            json!({"inputs": [deal("appointmentscheduled", "5"), deal("appointmentscheduled", "6")]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(api.sim.crm_call_count(), 1);
    let too_many: Vec<Value> = (0..101)
        .map(|i| deal("appointmentscheduled", &i.to_string()))
        .collect();
    let (status, _) = api
        .post(
            "/crm/objects/2026-09/deals/batch/create",
            json!({ "inputs": too_many }),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn portal_rules_refuse_single_writes_with_hubspots_error_shape() {
    let api = Api::start().await;
    api.sim.require_on_create("contacts", "firstname");
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/contacts",
            json!({"properties": {"email": "bo@example.com"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["errors"][0]["code"], "MISSING_REQUIRED_PROPERTY");
    assert_eq!(
        body["errors"][0]["message"],
        "A value for firstname must be provided"
    );
    // An upsert that would create is refused too; one that updates is not bound by it.
    let (status, _) = api.upsert("bo@example.com", json!({"lastname": "B"})).await;
    assert_eq!(status, 400);
    let id = api
        .sim
        .seed_contact(json!({"email": "cy@example.com", "firstname": "Cy"}));
    let (status, body) = api.upsert("cy@example.com", json!({"lastname": "C"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["id"], id.as_str());

    // A conditional rule binds updates as well.
    api.sim
        .require_when("deals", "closedate", "dealstage", "closedwon");
    let (status, body) = api
        .post(
            "/crm/objects/2026-09/deals",
            json!({"properties": {"dealname": "d", "dealstage": "appointmentscheduled"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let deal = body["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .patch(
            &format!("/crm/objects/2026-09/deals/{deal}"),
            json!({"properties": {"dealstage": "closedwon"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"][0]["code"],
        "MISSING_CONDITIONAL_REQUIRED_PROPERTY"
    );
}
