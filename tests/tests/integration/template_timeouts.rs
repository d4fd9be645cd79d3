//! The refresh protocol's durations against infra/template.yaml, so that they line up by test,
//! not by comment: a lease outlives every function that may hold it (a lapsed lease means its
//! holder is dead), and connections-api can both wait for another's refresh and make one of
//! its own within its timeout.

use std::time::Duration;

use serde_yaml::Value;
use shared::config::HttpSettings;
use shared::refresh::{rotating_refresh_budget_with, LEASE_SECONDS, WAIT_LIMIT};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("infra/template.yaml"))
        .expect("the template parses")
}

/// Every function's binary and timeout (its own, else the Globals').
fn function_timeouts(template: &Value) -> Vec<(String, u64)> {
    let default = template["Globals"]["Function"]["Timeout"].as_u64();
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| name.as_str().unwrap_or_default().to_string());
            let timeout = r["Properties"]["Timeout"]
                .as_u64()
                .or(default)
                .expect("every function has a timeout");
            (binary, timeout)
        })
        .collect()
}

#[test]
fn the_refresh_lease_outlives_every_function_and_connections_api_fits_a_refresh() {
    let functions = function_timeouts(&template());
    assert!(functions.len() >= 4, "{functions:?}");
    for (binary, timeout) in &functions {
        assert!(
            (*timeout as i64) < LEASE_SECONDS,
            "{binary}: its {timeout} s timeout must stay below the {LEASE_SECONDS} s refresh lease"
        );
    }
    let api = functions
        .iter()
        .find(|(b, _)| b == "connections-api")
        .map(|(_, t)| Duration::from_secs(*t))
        .expect("connections-api");
    assert!(
        WAIT_LIMIT < api,
        "waiting for another's refresh ({WAIT_LIMIT:?}) must end within connections-api's {api:?}"
    );
    let budget = rotating_refresh_budget_with(HttpSettings::default().request_timeout);
    assert!(
        budget < api,
        "a rotating refresh ({budget:?}) must fit in connections-api's {api:?}"
    );
}
