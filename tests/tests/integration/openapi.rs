//! infra/openapi.yaml and the router describe the same routes.

use std::collections::BTreeSet;

use connections_api::ROUTES;

fn documented() -> BTreeSet<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        if path.starts_with("/oauth/") {
            continue; // the callback is oauth-callback's, not this router's
        }
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_ascii_uppercase();
            if ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&method.as_str()) {
                routes.insert((method, path.to_string()));
            }
        }
    }
    routes
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
