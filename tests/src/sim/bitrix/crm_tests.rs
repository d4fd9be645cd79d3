//! REST tests: duplicate search, contacts (multi-field merging), deals
//! (stages per category), timeline comments, lists, limits, faults.

use serde_json::{json, Value};

use super::oauth_tests::{client, error_of, rest, started, PORTAL};
use super::*;
use crate::sim::shell::testkit::get_json;

/// A started simulator with one portal and a live access token.
async fn ready() -> (BitrixSim, String) {
    let sim = started().await;
    let (access, _) = sim.seed_tokens(PORTAL);
    (sim, access)
}

async fn call(sim: &BitrixSim, token: &str, method: &str, body: Value) -> (u16, Value) {
    rest(sim, PORTAL, method, Some(token), body).await
}

#[tokio::test]
async fn findbycomm_answers_an_empty_array_or_the_contact_ids() {
    let (sim, token) = ready().await;
    let (status, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "CONTACT", "type": "EMAIL", "values": ["ada@example.com"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!([]));
    assert!(body["time"]["start"].is_f64() && body["time"]["operating"] == 0);

    let ada = sim.seed_contact(
        PORTAL,
        json!({"NAME": "Ada", "EMAIL": [{"VALUE": "Ada@Example.com", "VALUE_TYPE": "WORK"}],
               "PHONE": [{"VALUE": "+1 (555) 010-2000"}]}),
    );
    let bob = sim.seed_contact(
        PORTAL,
        json!({"NAME": "Bob", "PHONE": [{"VALUE": "15550102000"}]}),
    );
    let (_, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "CONTACT", "type": "EMAIL", "values": ["  ada@EXAMPLE.com", "x@y.z"]}),
    )
    .await;
    assert_eq!(body["result"], json!({"CONTACT": [ada]}));
    let (_, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "CONTACT", "type": "PHONE", "values": ["+1 555-010-2000"]}),
    )
    .await;
    assert_eq!(body["result"], json!({"CONTACT": [ada, bob]}));
    // Leads are never stored: nothing found.
    let (_, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "LEAD", "type": "PHONE", "values": ["15550102000"]}),
    )
    .await;
    assert_eq!(body["result"], json!([]));

    // No type; more than 20 values.
    let (status, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "CONTACT", "values": ["a@b.c"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body), "Communication type is not defined");
    let many: Vec<String> = (0..21).map(|i| format!("u{i}@example.com")).collect();
    let (status, body) = call(
        &sim,
        &token,
        "crm.duplicate.findbycomm",
        json!({"entity_type": "CONTACT", "type": "EMAIL", "values": many}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
}

#[tokio::test]
async fn contacts_add_get_and_update_appends_multi_fields_without_id() {
    let (sim, token) = ready().await;
    let (status, body) = call(
        &sim,
        &token,
        "crm.contact.add",
        json!({"fields": {
            "NAME": "Ada", "LAST_NAME": "Lovelace", "SOURCE_ID": "WEB",
            "SOURCE_DESCRIPTION": "LeadRelay", "COMMENTS": "hello",
            "EMAIL": [{"VALUE": "ada@example.com", "VALUE_TYPE": "WORK"}],
            "PHONE": [{"VALUE": "+15550100", "VALUE_TYPE": "MOBILE"}],
        }, "params": {"REGISTER_SONET_EVENT": "N"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["result"].as_i64().unwrap();

    let (_, body) = call(
        &sim,
        &token,
        "crm.contact.get",
        json!({"id": id.to_string()}),
    )
    .await;
    let contact = &body["result"];
    assert_eq!(contact["ID"], id.to_string());
    assert_eq!(contact["NAME"], "Ada");
    assert_eq!(contact["LAST_NAME"], "Lovelace");
    assert_eq!(contact["SOURCE_DESCRIPTION"], "LeadRelay");
    assert_eq!(contact["HAS_EMAIL"], "Y");
    assert_eq!(contact["EMAIL"][0]["VALUE"], "ada@example.com");
    assert_eq!(contact["EMAIL"][0]["TYPE_ID"], "EMAIL");
    assert_eq!(contact["PHONE"][0]["VALUE_TYPE"], "MOBILE");
    let email_id = contact["EMAIL"][0]["ID"].as_str().unwrap().to_owned();
    assert_ne!(email_id, contact["PHONE"][0]["ID"].as_str().unwrap());

    // Without ID: appended (duplicated). With ID: replaced.
    let (status, body) = call(
        &sim,
        &token,
        "crm.contact.update",
        json!({"id": id, "fields": {
            "EMAIL": [{"VALUE": "ada@example.com", "VALUE_TYPE": "WORK"}],
            "COMMENTS": "again",
        }}),
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &json!(true)), "{body}");
    let emails = &sim.contacts(PORTAL)[0].fields["EMAIL"];
    assert_eq!(emails.as_array().unwrap().len(), 2, "{emails}");
    let (_, body) = call(
        &sim,
        &token,
        "crm.contact.update",
        json!({"id": id, "fields": {"EMAIL": [{"ID": email_id, "VALUE": "lovelace@example.com"}]}}),
    )
    .await;
    assert_eq!(body["result"], true);
    let contact = &sim.contacts(PORTAL)[0];
    assert_eq!(contact.id, id);
    assert_eq!(contact.fields["COMMENTS"], "again");
    let values: Vec<&str> = contact.fields["EMAIL"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["VALUE"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["lovelace@example.com", "ada@example.com"]);
    // With ID and an empty VALUE: deleted.
    let phone_id = contact.fields["PHONE"][0]["ID"].clone();
    let (_, body) = call(
        &sim,
        &token,
        "crm.contact.update",
        json!({"id": id, "fields": {"PHONE": [{"ID": phone_id, "VALUE": ""}]}}),
    )
    .await;
    assert_eq!(body["result"], true);
    let (_, body) = call(&sim, &token, "crm.contact.get", json!({"ID": id})).await;
    assert!(body["result"].get("PHONE").is_none(), "{body}");
    assert_eq!(body["result"]["HAS_PHONE"], "N");

    // Errors: bad e-mail, unknown contact.
    let (status, body) = call(
        &sim,
        &token,
        "crm.contact.add",
        json!({"fields": {"NAME": "X", "EMAIL": [{"VALUE": "not an email"}]}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
    assert_eq!(sim.contacts(PORTAL).len(), 1);
    for (method, body) in [
        (
            "crm.contact.update",
            json!({"id": 999, "fields": {"NAME": "Y"}}),
        ),
        ("crm.contact.get", json!({"id": 999})),
    ] {
        let (status, body) = call(&sim, &token, method, body).await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"error": "NOT_FOUND", "error_description": "Not found"})
            )
        );
    }
}

#[tokio::test]
async fn php_style_form_bodies_are_accepted() {
    let (sim, token) = ready().await;
    let response = client()
        .post(format!("{}/rest/crm.contact.add.json", sim.base_url()))
        .header(FORWARDED_HOST_HEADER, PORTAL)
        .form(&[
            ("auth", token.as_str()),
            ("fields[NAME]", "Grace"),
            ("fields[PHONE][0][VALUE]", "+1 555 0199"),
            ("fields[PHONE][0][VALUE_TYPE]", "WORK"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let contact = &sim.contacts(PORTAL)[0];
    assert_eq!(contact.fields["NAME"], "Grace");
    assert_eq!(contact.fields["PHONE"][0]["VALUE"], "+1 555 0199");
    let request = sim.requests().pop().unwrap();
    assert_eq!(request.rest_method.as_deref(), Some("crm.contact.add"));
    assert_eq!(request.params()["fields"]["NAME"], "Grace");
}

#[tokio::test]
async fn deal_stages_are_checked_against_the_deal_category() {
    let (sim, token) = ready().await;
    let contact = sim.seed_contact(PORTAL, json!({"NAME": "Ada"}));
    let sales = sim.add_category(
        PORTAL,
        "Inbound",
        &[
            ("NEW", "Fresh", None),
            ("QUALIFIED", "Qualified", None),
            ("WON", "Won", Some("S")),
            ("LOSE", "Lost", Some("F")),
        ],
    );
    assert_eq!(sales, 1);

    // Default category: first stage when absent.
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Web lead", "CONTACT_ID": contact, "OPPORTUNITY": 1500,
                          "CURRENCY_ID": "USD", "SOURCE_DESCRIPTION": "LeadRelay"},
               "params": {"REGISTER_SONET_EVENT": "N"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first = body["result"].as_i64().unwrap();
    let (_, body) = call(&sim, &token, "crm.deal.get", json!({"id": first})).await;
    let deal = &body["result"];
    assert_eq!(deal["CATEGORY_ID"], "0");
    assert_eq!(deal["STAGE_ID"], "NEW");
    assert_eq!(deal["CONTACT_ID"], contact.to_string());
    assert_eq!(deal["OPPORTUNITY"], "1500.00");
    assert_eq!(deal["TITLE"], "Web lead");

    // Category 1: its own stage ids.
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Pipeline", "CATEGORY_ID": "1", "STAGE_ID": "C1:QUALIFIED"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let second = body["result"].as_i64().unwrap();
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Wrong", "CATEGORY_ID": 1, "STAGE_ID": "NEW"}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("STAGE_ID"));
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"CATEGORY_ID": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let third = body["result"].as_i64().unwrap();
    let deals = sim.deals(PORTAL);
    assert_eq!(deals[2].fields["STAGE_ID"], "C1:NEW");
    assert_eq!(deals[2].fields["TITLE"], format!("Deal #{third}"));

    // Update: checked against the deal's own category.
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.update",
        json!({"id": second, "fields": {"STAGE_ID": "WON"}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.update",
        json!({"id": second, "fields": {"STAGE_ID": "C1:WON", "COMMENTS": "closed"}}),
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &json!(true)), "{body}");
    let deal = &sim.deals(PORTAL)[1];
    assert_eq!(deal.fields["STAGE_ID"], "C1:WON");
    assert_eq!(deal.fields["STAGE_SEMANTIC_ID"], "S");
    assert_eq!(deal.fields["CLOSED"], "Y");

    // Unknown contact, unknown deal.
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Orphan", "CONTACT_ID": 4242}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
    let (status, body) = call(
        &sim,
        &token,
        "crm.deal.update",
        json!({"id": 4242, "fields": {"TITLE": "x"}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "NOT_FOUND"));
    assert_eq!(sim.deals(PORTAL).len(), 3);
}

#[tokio::test]
async fn timeline_comments_add_and_update() {
    let (sim, token) = ready().await;
    let contact = sim.seed_contact(PORTAL, json!({"NAME": "Ada"}));
    let (_, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Deal"}}),
    )
    .await;
    let deal = body["result"].as_i64().unwrap();

    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.add",
        json!({"fields": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": "Lead details"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let comment = body["result"].as_i64().unwrap();
    let (status, _) = call(
        &sim,
        &token,
        "crm.timeline.comment.add",
        json!({"fields": {"ENTITY_ID": contact.to_string(), "ENTITY_TYPE": "contact", "COMMENT": "On contact"}}),
    )
    .await;
    assert_eq!(status, 200);

    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.add",
        json!({"fields": {"ENTITY_ID": 999, "ENTITY_TYPE": "deal", "COMMENT": "x"}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "OWNER_NOT_FOUND"));
    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.add",
        json!({"fields": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": "  "}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));

    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.update",
        json!({"id": comment, "ownerTypeId": 2, "ownerId": deal, "fields": {"COMMENT": "Edited"}}),
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &json!(true)), "{body}");
    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.update",
        json!({"id": 77, "fields": {"COMMENT": "Edited"}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "NOT_FOUND"));

    let comments = sim.comments(PORTAL);
    assert_eq!(comments.len(), 2);
    assert_eq!(
        comments[0],
        BitrixComment {
            id: comment,
            entity_type: "deal".to_owned(),
            entity_id: deal,
            comment: "Edited".to_owned(),
            updates: 1,
        }
    );
    assert_eq!(comments[1].entity_type, "contact");
}

#[tokio::test]
async fn category_and_status_lists() {
    let (sim, token) = ready().await;
    let extra = sim.add_category(PORTAL, "Partners", &[]);
    let (status, body) = call(
        &sim,
        &token,
        "crm.category.list",
        json!({"entityTypeId": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["categories"],
        json!([
            {"id": 0, "name": "General", "sort": 100, "entityTypeId": 2, "isDefault": "Y"},
            {"id": extra, "name": "Partners", "sort": 200, "entityTypeId": 2, "isDefault": "N"},
        ])
    );

    let (_, body) = call(
        &sim,
        &token,
        "crm.status.list",
        json!({"filter": {"ENTITY_ID": "DEAL_STAGE"}}),
    )
    .await;
    let stages = body["result"].as_array().unwrap();
    let ids: Vec<&str> = stages
        .iter()
        .map(|s| s["STATUS_ID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "NEW",
            "PREPARATION",
            "PREPAYMENT_INVOICE",
            "EXECUTING",
            "FINAL_INVOICE",
            "WON",
            "LOSE"
        ]
    );
    assert_eq!(stages[0]["ENTITY_ID"], "DEAL_STAGE");
    assert_eq!(stages[0]["CATEGORY_ID"], "0");
    assert_eq!(stages[0]["SEMANTICS"], Value::Null);
    assert!(stages[0]["ID"].is_string() && stages[0]["SORT"].is_i64());
    assert_eq!(stages[5]["SEMANTICS"], "S");
    assert_eq!(stages[6]["SEMANTICS"], "F");

    let (_, body) = call(
        &sim,
        &token,
        "crm.status.list",
        json!({"filter": {"ENTITY_ID": format!("DEAL_STAGE_{extra}")}}),
    )
    .await;
    let stages = body["result"].as_array().unwrap();
    assert_eq!(stages.len(), 7);
    assert_eq!(stages[0]["STATUS_ID"], format!("C{extra}:NEW"));
    assert_eq!(stages[0]["CATEGORY_ID"], extra.to_string());
    assert_eq!(stages[0]["ENTITY_ID"], format!("DEAL_STAGE_{extra}"));
}

#[tokio::test]
async fn query_limit_throttle_fault_and_unknown_method() {
    let sim = BitrixSim::start(BitrixSimConfig {
        requests_per_second: 3,
        ..BitrixSimConfig::default()
    })
    .await;
    sim.add_portal(PORTAL);
    let (token, _) = sim.seed_tokens(PORTAL);
    let limited =
        json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = call(&sim, &token, "app.info", json!({})).await;
        if status == 503 {
            assert_eq!(body, limited);
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 503]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    sim.inject(BitrixRoute::Rest("crm.contact.add"), Fault::Throttle);
    let (status, body) = call(&sim, &token, "app.info", json!({})).await;
    assert_eq!(status, 200, "the fault waits for its method: {body}");
    let (status, body) = call(
        &sim,
        &token,
        "crm.contact.add",
        json!({"fields": {"NAME": "X"}}),
    )
    .await;
    assert_eq!((status, body), (503, limited));
    assert!(sim.contacts(PORTAL).is_empty());

    let (status, body) = call(&sim, &token, "crm.lead.add", json!({})).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})
        )
    );
    assert_eq!(sim.rest_calls(PORTAL), 7);
    assert_eq!(
        sim.rest_methods(PORTAL)[4..],
        ["app.info", "crm.contact.add", "crm.lead.add"]
    );
}

#[tokio::test]
async fn sim_state_is_served_unrecorded() {
    let (sim, _) = ready().await;
    sim.seed_contact(PORTAL, json!({"NAME": "Ada"}));
    let body = get_json(format!(
        "{}{SIM_STATE_PATH}?portal={PORTAL}",
        sim.base_url()
    ))
    .await;
    assert_eq!(body, sim.state_json(PORTAL));
    assert_eq!(body["contacts"][0]["NAME"], "Ada");
    assert_eq!(body["member_id"], sim.member_id(PORTAL));
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn contact_deal_and_comment_lists_filter_select_order_and_page_by_50() {
    let sim = BitrixSim::start(BitrixSimConfig {
        requests_per_second: 1_000,
        ..BitrixSimConfig::default()
    })
    .await;
    sim.add_portal(PORTAL);
    let (token, _) = sim.seed_tokens(PORTAL);

    // Contacts by the external-source fields; multi-fields only when selected.
    let mut ours = Vec::new();
    for origin in ["lead-1", "lead-2", "lead-1"] {
        let (_, body) = call(
            &sim,
            &token,
            "crm.contact.add",
            json!({"fields": {"NAME": "Ada", "ORIGINATOR_ID": "relay", "ORIGIN_ID": origin,
                              "EMAIL": [{"VALUE": "ada@example.com"}]}}),
        )
        .await;
        ours.push(body["result"].as_i64().unwrap());
    }
    let (status, body) = call(
        &sim,
        &token,
        "crm.contact.list",
        json!({"filter": {"ORIGINATOR_ID": "relay", "ORIGIN_ID": "lead-1"}, "select": ["ID"],
               "order": {"ID": "DESC"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"],
        json!([{"ID": ours[2].to_string()}, {"ID": ours[0].to_string()}])
    );
    assert_eq!(body["total"], 2);
    assert!(body.get("next").is_none());
    let (_, body) = call(
        &sim,
        &token,
        "crm.contact.list",
        json!({"filter": {"ORIGIN_ID": "lead-2"}}),
    )
    .await;
    let listed = &body["result"][0];
    assert_eq!(listed["NAME"], "Ada");
    assert!(listed.get("EMAIL").is_none(), "{listed}");
    let (_, body) = call(
        &sim,
        &token,
        "crm.contact.list",
        json!({"filter": {"ORIGIN_ID": "lead-9"}}),
    )
    .await;
    assert_eq!((&body["result"], &body["total"]), (&json!([]), &json!(0)));

    // Deals: the same filter, with the selected stage.
    let (_, body) = call(
        &sim,
        &token,
        "crm.deal.add",
        json!({"fields": {"TITLE": "Deal", "ORIGINATOR_ID": "relay", "ORIGIN_ID": "lead-1"}}),
    )
    .await;
    let deal = body["result"].as_i64().unwrap();
    let (_, body) = call(
        &sim,
        &token,
        "crm.deal.list",
        json!({"filter": {"ORIGINATOR_ID": "relay", "ORIGIN_ID": "lead-1"},
               "select": ["ID", "STAGE_ID"]}),
    )
    .await;
    assert_eq!(
        body["result"],
        json!([{"ID": deal.to_string(), "STAGE_ID": "NEW"}])
    );

    // A deal's comments: both filter keys required, pages of 50 with `next`.
    let (status, body) = call(
        &sim,
        &token,
        "crm.timeline.comment.list",
        json!({"filter": {"ENTITY_ID": deal}}),
    )
    .await;
    assert_eq!((status, error_of(&body)), (400, "INVALID_ARG_VALUE"));
    let mut comments = Vec::new();
    for n in 0..52 {
        let (_, body) = call(
            &sim,
            &token,
            "crm.timeline.comment.add",
            json!({"fields": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal", "COMMENT": format!("c{n}")}}),
        )
        .await;
        comments.push(body["result"].as_i64().unwrap());
    }
    let contact = ours[0];
    call(
        &sim,
        &token,
        "crm.timeline.comment.add",
        json!({"fields": {"ENTITY_ID": contact, "ENTITY_TYPE": "contact", "COMMENT": "elsewhere"}}),
    )
    .await;
    let filter = json!({"ENTITY_ID": deal, "ENTITY_TYPE": "deal"});
    let (_, first) = call(
        &sim,
        &token,
        "crm.timeline.comment.list",
        json!({"filter": filter, "select": ["ID", "COMMENT"], "order": {"ID": "DESC"}}),
    )
    .await;
    let page = first["result"].as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(
        page[0],
        json!({"ID": comments[51].to_string(), "COMMENT": "c51"})
    );
    assert_eq!((&first["next"], &first["total"]), (&json!(50), &json!(52)));
    let (_, second) = call(
        &sim,
        &token,
        "crm.timeline.comment.list",
        json!({"filter": filter, "order": {"ID": "DESC"}, "start": 50}),
    )
    .await;
    let page = second["result"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1]["ID"], comments[0].to_string().as_str());
    assert_eq!(page[1]["ENTITY_TYPE"], "deal");
    assert!(second.get("next").is_none());
}

#[tokio::test]
async fn batch_runs_each_command_with_its_own_result_or_error_and_counts_once() {
    // Two requests a second: a batch of many commands is still one of them.
    let sim = BitrixSim::start(BitrixSimConfig {
        requests_per_second: 2,
        ..BitrixSimConfig::default()
    })
    .await;
    sim.add_portal(PORTAL);
    let (token, _) = sim.seed_tokens(PORTAL);
    let mut cmd = serde_json::Map::new();
    for n in 0..5 {
        cmd.insert(
            format!("a{n}"),
            json!(format!(
                "crm.contact.add?fields%5BNAME%5D=Ada{n}&fields%5BEMAIL%5D%5B0%5D%5BVALUE%5D=ada{n}%40example.com"
            )),
        );
    }
    cmd.insert(
        "bad".into(),
        json!("crm.contact.add?fields%5BEMAIL%5D%5B0%5D%5BVALUE%5D=not-an-email"),
    );
    cmd.insert("z".into(), json!("crm.contact.get?id=1"));
    let (status, body) = call(&sim, &token, "batch", json!({"halt": 0, "cmd": cmd})).await;
    assert_eq!(status, 200, "{body}");
    let result = &body["result"];
    for n in 0..5 {
        assert_eq!(result["result"][format!("a{n}")], json!(n + 1), "{body}");
    }
    assert_eq!(result["result_error"]["bad"]["error"], "INVALID_ARG_VALUE");
    assert_eq!(
        result["result"]["z"]["NAME"], "Ada0",
        "later commands still ran"
    );
    assert_eq!(
        sim.contacts(PORTAL).len(),
        5,
        "the refused command made nothing"
    );

    // halt=1 stops at the first error; an empty map is PHP's `[]`.
    let (_, body) = call(
        &sim,
        &token,
        "batch",
        json!({"halt": 1, "cmd": {
            "x": "crm.contact.update?id=999&fields%5BNAME%5D=Nobody",
            "y": "crm.contact.add?fields%5BNAME%5D=Never"
        }}),
    )
    .await;
    assert_eq!(body["result"]["result"], json!([]));
    assert_eq!(body["result"]["result_error"]["x"]["error"], "NOT_FOUND");
    assert_eq!(sim.contacts(PORTAL).len(), 5);

    // More than 50 commands, or a batch inside a batch, is refused.
    let many: serde_json::Map<String, Value> = (0..51)
        .map(|n| (format!("c{n}"), json!("app.info")))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = call(&sim, &token, "batch", json!({"cmd": many})).await;
    assert_eq!(status, 400, "{body}");
    let (_, body) = call(
        &sim,
        &token,
        "batch",
        json!({"cmd": {"n": "batch?cmd%5Bx%5D=app.info"}}),
    )
    .await;
    assert_eq!(
        body["result"]["result_error"]["n"]["error"],
        "INVALID_ARG_VALUE"
    );
    assert_eq!(
        sim.rest_methods(PORTAL),
        ["batch", "batch", "batch", "batch"]
    );
}
