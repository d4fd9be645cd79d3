//! infra/openapi.yaml and the router describe the same routes.

use std::collections::BTreeSet;

use connections_api::ROUTES;
use serde_json::json;

fn document() -> serde_yaml::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        if path.starts_with("/oauth/") {
            continue; // the callback is oauth-callback's, not this router's
        }
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_ascii_uppercase();
            if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method.as_str()) {
                routes.insert((method.clone(), routed_template(&method, path)));
            }
        }
    }
    routes
}

/// The router's template for a documented path. A provider's own operation
/// (`/connections/salesforce/authorize`, documented apart for its own body) is served by the
/// `{provider}` route, unless the router has that literal path itself (`PUT /connections/freshsales`).
fn routed_template(method: &str, path: &str) -> String {
    let literal = ROUTES.iter().any(|(_, m, t)| *m == method && *t == path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["", "connections", provider, rest @ ..]
            if !literal && provider.parse::<shared::Provider>().is_ok() =>
        {
            let mut template = vec!["", "connections", "{provider}"];
            template.extend(rest);
            template.join("/")
        }
        _ => path.to_string(),
    }
}

#[test]
fn every_documented_route_is_routed_and_every_route_is_documented() {
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(_, method, template)| (method.to_string(), template.to_string()))
        .collect();
    assert_eq!(documented(), routed);
}

#[test]
fn the_callback_route_is_documented_as_public() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let callback = &doc["paths"]["/oauth/{provider}/callback"]["get"];
    assert!(callback.is_mapping());
    assert_eq!(callback["security"], serde_yaml::Value::Sequence(vec![]));
}

/// The body schema of an operation, as JSON Schema: its `$ref` with the document's components
/// beside it, so that references inside resolve.
fn body_schema(doc: &serde_yaml::Value, path: &str, method: &str) -> serde_json::Value {
    let reference = doc["paths"][path][method]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path}: no body schema"));
    json!({
        "$ref": reference,
        "components": serde_json::to_value(&doc["components"]).unwrap(),
    })
}

fn valid(schema: &serde_json::Value, body: serde_json::Value) -> bool {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("a valid JSON Schema")
        .is_valid(&body)
}

/// What a request body may hold is said per provider, as the service parses it: a provider
/// with one login host takes nothing, Salesforce no portal, Bitrix24 only its portal, and no
/// body takes a member the service refuses.
#[test]
fn request_bodies_are_valid_by_the_document_exactly_when_the_service_takes_them() {
    let doc = document();
    let one_host = body_schema(&doc, "/connections/{provider}/authorize", "post");
    let salesforce = body_schema(&doc, "/connections/salesforce/authorize", "post");
    let bitrix = body_schema(&doc, "/connections/bitrix24/authorize", "post");
    let freshsales = body_schema(&doc, "/connections/freshsales", "put");
    let settings = body_schema(&doc, "/connections/{provider}/settings", "put");
    let zoho_settings = body_schema(&doc, "/connections/zoho/settings", "put");
    let salesforce_settings = body_schema(&doc, "/connections/salesforce/settings", "put");
    let sheets_settings = body_schema(&doc, "/connections/google_sheets/settings", "put");

    assert!(valid(&one_host, json!({})));
    assert!(!valid(&one_host, json!({"environment": "sandbox"})));
    assert!(!valid(&one_host, json!({"portal": "acme.bitrix24.com"})));

    assert!(valid(&salesforce, json!({})));
    assert!(valid(&salesforce, json!({"environment": "sandbox"})));
    assert!(valid(
        &salesforce,
        json!({"my_domain": "acme.my.salesforce.com"})
    ));
    assert!(valid(
        &salesforce,
        json!({"my_domain": "https://acme.lightning.force.com"})
    ));
    assert!(!valid(&salesforce, json!({"environment": "staging"})));
    assert!(!valid(
        &salesforce,
        json!({"my_domain": "acme.my.salesforce.com.evil.test"})
    ));
    assert!(!valid(
        &salesforce,
        json!({"my_domain": "acme.my.salesforce.com:8443"})
    ));
    assert!(!valid(&salesforce, json!({"portal": "acme.bitrix24.com"})));

    assert!(valid(
        &bitrix,
        json!({"portal": "souq-bakery.bitrix24.com"})
    ));
    assert!(valid(
        &bitrix,
        json!({"portal": "https://acme.bitrix24.com.br/"})
    ));
    assert!(!valid(&bitrix, json!({})));
    assert!(!valid(
        &bitrix,
        json!({"portal": "acme.bitrix24.com.evil.test"})
    ));
    assert!(!valid(
        &bitrix,
        json!({"portal": "acme.bitrix24.com", "environment": "sandbox"})
    ));

    let key = "k3y-0f-the-account";
    assert!(valid(
        &freshsales,
        json!({"domain": "acme", "api_key": key})
    ));
    assert!(valid(
        &freshsales,
        json!({"domain": "https://acme.myfreshworks.com/crm/sales", "api_key": key})
    ));
    assert!(valid(
        &freshsales,
        json!({"domain": "acme.freshsales.io", "api_key": key})
    ));
    assert!(!valid(&freshsales, json!({"domain": "", "api_key": key})));
    assert!(!valid(
        &freshsales,
        json!({"domain": "acme.evil.test", "api_key": key})
    ));
    assert!(!valid(
        &freshsales,
        json!({"domain": "acme", "api_key": "two words"})
    ));
    assert!(!valid(
        &freshsales,
        json!({"domain": "acme", "api_key": key, "tenant_id": "x"})
    ));

    assert!(valid(
        &settings,
        json!({"pipeline_id": "default", "stage_mapping": {"won": "closedwon"}})
    ));
    assert!(!valid(
        &settings,
        json!({"pipeline_id": "default", "stage_mapping": {}, "tenant_id": "x"})
    ));
    assert!(!valid(
        &settings,
        json!({"pipeline_id": "default", "stage_mapping": {"closed": "x"}})
    ));

    // Settings per provider, as save_settings refuses them: conversion only where the CRM
    // converts leads (never at `lost`), field mapping only for Salesforce, Sheets apart.
    let crm = json!({"pipeline_id": "p1", "stage_mapping": {"won": "s1"}});
    assert!(valid(&settings, json!({"pipeline_id": "p1"})));
    assert!(!valid(&settings, json!({"pipeline_id": ""})));
    assert!(!valid(
        &settings,
        json!({"pipeline_id": "p1", "convert_at": "qualified"})
    ));
    assert!(!valid(
        &settings,
        json!({"pipeline_id": "p1", "spreadsheet_url": "x"})
    ));
    assert!(valid(
        &zoho_settings,
        json!({"pipeline_id": "p1", "convert_at": "qualified"})
    ));
    assert!(!valid(
        &zoho_settings,
        json!({"pipeline_id": "p1", "convert_at": "lost"})
    ));
    assert!(!valid(
        &zoho_settings,
        json!({"pipeline_id": "p1", "field_mapping": {"score": "Rating"}})
    ));
    assert!(valid(&salesforce_settings, crm.clone()));
    assert!(valid(
        &salesforce_settings,
        json!({"pipeline_id": "p1", "field_mapping": {"score": "LeadRelay_Score__c"}})
    ));
    assert!(!valid(
        &salesforce_settings,
        json!({"pipeline_id": "p1", "field_mapping": {"owner": "OwnerId"}})
    ));
    assert!(valid(
        &sheets_settings,
        json!({"spreadsheet_url": "1AbC", "sheet": "Leads"})
    ));
    assert!(!valid(&sheets_settings, crm));
    assert!(!valid(&sheets_settings, json!({"sheet": "Leads"})));
}

/// The generic authorize route names only the providers whose body is `{}`.
#[test]
fn the_generic_authorize_route_names_only_providers_with_one_login_host() {
    let doc = document();
    let providers: Vec<&str> = doc["paths"]["/connections/{provider}/authorize"]["parameters"][0]
        ["schema"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(providers, ["hubspot", "zoho", "google_sheets"]);
}
