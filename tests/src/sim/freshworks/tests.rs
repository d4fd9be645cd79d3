//! The simulator's own behaviour, over HTTP.

use serde_json::{json, Value};

use super::*;

const HOST: &str = "acme.myfreshworks.com";
const KEY: &str = "k-123";

async fn sim() -> FreshsalesSim {
    let sim = FreshsalesSim::start(FreshsalesSimConfig::default()).await;
    sim.add_account(HOST, KEY);
    sim.add_account("oldco.freshsales.io", "old-key");
    sim
}

async fn call(
    sim: &FreshsalesSim,
    method: &str,
    host: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), format!("{}{path}", sim.base_url()))
        .header("x-forwarded-host", host)
        .header("authorization", format!("Token token={key}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn hosts_answer_under_their_own_prefix_and_unknown_hosts_or_keys_are_refused() {
    let sim = sim().await;
    let (status, body) = call(
        &sim,
        "GET",
        HOST,
        "/crm/sales/api/selector/lead_sources",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["lead_sources"].as_array().unwrap().len() > 3);
    let (status, _) = call(
        &sim,
        "GET",
        "oldco.freshsales.io",
        "/api/selector/lead_sources",
        "old-key",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&sim, "GET", HOST, "/api/selector/lead_sources", KEY, None).await;
    assert_eq!(status, 404, "the wrong prefix for the host");
    let (status, _) = call(
        &sim,
        "GET",
        "nobody.myfreshworks.com",
        "/crm/sales/api/selector/lead_sources",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = call(
        &sim,
        "GET",
        HOST,
        "/crm/sales/api/selector/lead_sources",
        "wrong",
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["login"], "failed");
    sim.deny_permissions(HOST);
    let (status, _) = call(
        &sim,
        "GET",
        HOST,
        "/crm/sales/api/selector/lead_sources",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn upsert_creates_then_updates_and_lookup_finds_by_email_or_mobile() {
    let sim = sim().await;
    let upsert = |first: &str| json!({"unique_identifier": {"emails": "a@b.qa"}, "contact": {"first_name": first, "last_name": "X", "mobile_number": "+97455550000"}});
    let (status, created) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts/upsert",
        KEY,
        Some(upsert("A")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, updated) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts/upsert",
        KEY,
        Some(upsert("B")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(created["contact"]["id"], updated["contact"]["id"]);
    assert_eq!(sim.contacts(HOST).len(), 1);
    assert_eq!(sim.contacts(HOST)[0].fields["first_name"], "B");
    for query in [
        "q=A%40B.qa&f=email&entities=contact",
        "q=%2B97455550000&f=mobile_number&entities=contact",
    ] {
        let (status, found) = call(
            &sim,
            "GET",
            HOST,
            &format!("/crm/sales/api/lookup?{query}"),
            KEY,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            found["contacts"]["contacts"][0]["id"], created["contact"]["id"],
            "{query}"
        );
    }
    let (status, body) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts",
        KEY,
        Some(json!({"contact": {"email": "a@b.qa"}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn contact_fields_lead_sources_and_a_read_only_score_are_validated() {
    let sim = sim().await;
    let source = sim.lead_sources(HOST)["WhatsApp"].parse::<u64>().unwrap();
    let (status, _) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts",
        KEY,
        Some(json!({"contact": {"last_name": "X", "lead_source_id": source, "lead_score": 50}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts",
        KEY,
        Some(json!({"contact": {"last_name": "Y", "lead_source_id": 1}})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts",
        KEY,
        Some(json!({"contact": {"last_name": "Z", "favourite_colour": "red"}})),
    )
    .await;
    assert_eq!(status, 400);
    sim.set_lead_score_writable(HOST, false);
    let (status, body) = call(
        &sim,
        "POST",
        HOST,
        "/crm/sales/api/contacts",
        KEY,
        Some(json!({"contact": {"last_name": "W", "lead_score": 50}})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["errors"]["message"][0]
        .as_str()
        .unwrap()
        .contains("lead_score"));
}

#[tokio::test]
async fn deals_need_a_stage_of_their_pipeline_and_notes_an_existing_target() {
    let sim = sim().await;
    let contact = sim
        .seed_contact(HOST, json!({"last_name": "X"}))
        .parse::<u64>()
        .unwrap();
    let pipelines = sim.pipelines(HOST);
    let (default, other) = (&pipelines[0], &pipelines[1]);
    let stage = |p: &FsPipeline| p.stages[1].id.parse::<u64>().unwrap();
    let pid = |p: &FsPipeline| p.id.parse::<u64>().unwrap();
    let (status, body) = call(&sim, "POST", HOST, "/crm/sales/api/deals", KEY, Some(json!({"deal": {"name": "D", "amount": 0, "deal_pipeline_id": pid(default), "deal_stage_id": stage(other), "contacts_added_list": [contact]}}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&sim, "POST", HOST, "/crm/sales/api/deals", KEY, Some(json!({"deal": {"name": "D", "amount": 0, "deal_pipeline_id": pid(default), "deal_stage_id": stage(default), "contacts_added_list": [contact]}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deal"]["amount"], "0.0");
    let deal = body["deal"]["id"].as_u64().unwrap();
    let (status, _) = call(
        &sim,
        "PUT",
        HOST,
        &format!("/crm/sales/api/deals/{deal}"),
        KEY,
        Some(json!({"deal": {"deal_stage_id": stage(other)}})),
    )
    .await;
    assert_eq!(status, 400, "a stage of another pipeline");
    let (status, _) = call(&sim, "POST", HOST, "/crm/sales/api/notes", KEY, Some(json!({"note": {"description": "hi", "targetable_type": "Contact", "targetable_id": 42}}))).await;
    assert_eq!(status, 400);
    let (status, _) = call(&sim, "POST", HOST, "/crm/sales/api/notes", KEY, Some(json!({"note": {"description": "hi", "targetable_type": "Contact", "targetable_id": contact}}))).await;
    assert_eq!(status, 201);
    assert_eq!(sim.notes(HOST).len(), 1);
}

#[tokio::test]
async fn the_hourly_limit_answers_429_with_retry_after_and_faults_fire_once() {
    let sim = sim().await;
    sim.set_rate_limit(HOST, 2, std::time::Duration::from_secs(3600));
    for _ in 0..2 {
        assert_eq!(
            call(
                &sim,
                "GET",
                HOST,
                "/crm/sales/api/selector/deal_pipelines",
                KEY,
                None
            )
            .await
            .0,
            200
        );
    }
    let response = reqwest::Client::new()
        .get(format!(
            "{}/crm/sales/api/selector/deal_pipelines",
            sim.base_url()
        ))
        .header("x-forwarded-host", HOST)
        .header("authorization", format!("Token token={KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(sim.api_calls(HOST), 2);

    sim.add_account("b.myfreshworks.com", "kb");
    sim.inject(FreshsalesRoute::Upsert, Fault::Throttle);
    let body = json!({"unique_identifier": {"emails": "x@y.z"}, "contact": {"last_name": "X"}});
    assert_eq!(
        call(
            &sim,
            "POST",
            "b.myfreshworks.com",
            "/crm/sales/api/contacts/upsert",
            "kb",
            Some(body.clone())
        )
        .await
        .0,
        429
    );
    assert_eq!(
        call(
            &sim,
            "POST",
            "b.myfreshworks.com",
            "/crm/sales/api/contacts/upsert",
            "kb",
            Some(body)
        )
        .await
        .0,
        201
    );
}

#[tokio::test]
async fn a_contact_is_read_with_its_deals_and_notes_side_loaded_and_found_by_external_id() {
    let sim = sim().await;
    let api = "/crm/sales/api";
    let (_, created) = call(
        &sim,
        "POST",
        HOST,
        &format!("{api}/contacts"),
        KEY,
        Some(json!({"contact": {"last_name": "Unknown", "external_id": "lead-9"}})),
    )
    .await;
    let contact = created["contact"]["id"].as_u64().unwrap();
    let other = sim.seed_contact(HOST, json!({"last_name": "Other"}));
    let (status, _) = call(
        &sim,
        "POST",
        HOST,
        &format!("{api}/deals"),
        KEY,
        Some(
            json!({"deal": {"name": "Unknown (LeadRelay) [lead-9]", "amount": 0,
                             "contacts_added_list": [contact]}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    for (target, text) in [(contact.to_string(), "Lead: lead-9"), (other, "elsewhere")] {
        let (status, _) = call(
            &sim,
            "POST",
            HOST,
            &format!("{api}/notes"),
            KEY,
            Some(
                json!({"note": {"description": text, "targetable_type": "Contact",
                                 "targetable_id": target.parse::<u64>().unwrap()}}),
            ),
        )
        .await;
        assert_eq!(status, 201);
    }

    let (status, read) = call(
        &sim,
        "GET",
        HOST,
        &format!("{api}/contacts/{contact}?include=deals,notes"),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["contact"]["id"], contact);
    let deals = read["deals"].as_array().unwrap();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0]["name"], "Unknown (LeadRelay) [lead-9]");
    assert_eq!(deals[0]["amount"], "0.0", "amounts answered as strings");
    assert!(deals[0]["deal_stage_id"].as_u64().is_some());
    let notes = read["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "only this contact's notes: {notes:?}");
    assert_eq!(notes[0]["description"], "Lead: lead-9");

    let (_, plain) = call(
        &sim,
        "GET",
        HOST,
        &format!("{api}/contacts/{contact}"),
        KEY,
        None,
    )
    .await;
    assert!(plain.get("deals").is_none() && plain.get("notes").is_none());

    let (_, found) = call(
        &sim,
        "GET",
        HOST,
        &format!("{api}/lookup?q=lead-9&f=external_id&entities=contact"),
        KEY,
        None,
    )
    .await;
    assert_eq!(found["contacts"]["contacts"][0]["id"], contact);
}
