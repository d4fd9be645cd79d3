//! infra/template.yaml keeps the OAuth apps' client credentials in Secrets Manager: no
//! parameter or function environment variable holds one, every OAuth provider's secret is
//! created with a placeholder the code reads as "not set", each function gets only the
//! secrets' ARNs, and each role may read exactly those secrets.

use std::collections::BTreeSet;

use serde_yaml::Value;
use shared::config::secrets::{id_variable, AppSecret};
use shared::Provider;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("infra/template.yaml"))
        .expect("the template parses")
}

/// `!Ref Name` as written in the template.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "!Ref" => tagged.value.as_str().map(str::to_string),
        _ => None,
    }
}

fn resources_of_type(template: &Value, kind: &str) -> BTreeSet<String> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(name, _)| name.as_str().unwrap().to_string())
        .collect()
}

fn oauth_providers() -> Vec<Provider> {
    Provider::ALL
        .into_iter()
        .filter(|p| p.facts().and_then(|f| f.oauth()).is_some())
        .collect()
}

/// Every environment variable a function gets: the Globals' and its own.
fn function_environments(template: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    for (name, value) in globals.as_mapping().expect("global variables") {
        all.push((
            "Globals".to_string(),
            name.as_str().unwrap().to_string(),
            value.clone(),
        ));
    }
    for function in resources_of_type(template, "AWS::Serverless::Function") {
        let own =
            &template["Resources"][function.as_str()]["Properties"]["Environment"]["Variables"];
        for (name, value) in own.as_mapping().into_iter().flatten() {
            all.push((
                function.clone(),
                name.as_str().unwrap().to_string(),
                value.clone(),
            ));
        }
    }
    all
}

#[test]
fn no_parameter_or_function_variable_holds_a_client_secret() {
    let template = template();
    let secrets = resources_of_type(&template, "AWS::SecretsManager::Secret");
    for (name, parameter) in template["Parameters"].as_mapping().expect("Parameters") {
        let name = name.as_str().unwrap();
        assert!(
            parameter["NoEcho"].as_bool() != Some(true),
            "{name} is a secret parameter"
        );
        assert!(
            !name.contains("Client"),
            "{name}: OAuth app credentials are not parameters"
        );
    }
    for (owner, name, value) in function_environments(&template) {
        assert!(
            !name.contains("CLIENT_SECRET") && !name.contains("CLIENT_ID"),
            "{owner}: {name}"
        );
        if name.contains("SECRET") {
            assert!(name.ends_with("_APP_SECRET_ID"), "{owner}: {name}");
            let target = reference(&value).unwrap_or_default();
            assert!(
                secrets.contains(&target),
                "{owner}: {name} must be the ARN of one of the app secrets, not {value:?}"
            );
        }
    }
}

#[test]
fn every_oauth_provider_has_a_secret_created_unset() {
    let template = template();
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let mut referenced = BTreeSet::new();
    for provider in oauth_providers() {
        let variable = id_variable(provider);
        let secret = reference(&globals[variable])
            .unwrap_or_else(|| panic!("{variable} is not a !Ref to the provider's secret"));
        let resource = &template["Resources"][secret.as_str()];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::SecretsManager::Secret"),
            "{variable}"
        );
        let placeholder = resource["Properties"]["SecretString"]
            .as_str()
            .expect("a placeholder value");
        assert!(
            matches!(AppSecret::parse(placeholder), Ok(AppSecret::Unset)),
            "{secret}'s placeholder must read as not set"
        );
        assert!(referenced.insert(secret));
    }
    assert_eq!(
        referenced,
        resources_of_type(&template, "AWS::SecretsManager::Secret"),
        "one secret per OAuth provider, no other"
    );
}

#[test]
fn each_role_may_read_exactly_the_app_secrets() {
    let template = template();
    let secrets = resources_of_type(&template, "AWS::SecretsManager::Secret");
    let roles = resources_of_type(&template, "AWS::IAM::Role");
    let function_roles: BTreeSet<String> =
        resources_of_type(&template, "AWS::Serverless::Function")
            .iter()
            .map(|f| {
                let role = &template["Resources"][f.as_str()]["Properties"]["Role"];
                match role {
                    Value::Tagged(t) if t.tag == "!GetAtt" => t
                        .value
                        .as_str()
                        .unwrap()
                        .trim_end_matches(".Arn")
                        .to_string(),
                    other => panic!("{f}: role {other:?}"),
                }
            })
            .collect();
    assert_eq!(function_roles.len(), 4);
    for role in &roles {
        let mut granted = BTreeSet::new();
        for policy in template["Resources"][role.as_str()]["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .expect("statements")
            {
                let actions: Vec<String> = match &statement["Action"] {
                    Value::String(a) => vec![a.clone()],
                    Value::Sequence(list) => list
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    other => panic!("{role}: action {other:?}"),
                };
                if !actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                    continue;
                }
                assert_eq!(actions, ["secretsmanager:GetSecretValue"], "{role}");
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
                for resource in statement["Resource"].as_sequence().expect("a list") {
                    let name = reference(resource)
                        .unwrap_or_else(|| panic!("{role}: {resource:?} is not an app secret"));
                    assert!(secrets.contains(&name), "{role}: {name}");
                    granted.insert(name);
                }
            }
        }
        if function_roles.contains(role) {
            assert_eq!(granted, secrets, "{role} reads every app secret");
        } else {
            assert!(granted.is_empty(), "{role} is no function's");
        }
    }
    // Nothing else in the template grants Secrets Manager access.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap();
    assert_eq!(
        text.matches("secretsmanager:").count(),
        roles.len(),
        "one secretsmanager statement per role"
    );
}

#[test]
fn the_outputs_name_what_each_party_needs() {
    let template = template();
    let outputs = template["Outputs"].as_mapping().expect("Outputs");
    let names: BTreeSet<&str> = outputs.keys().map(|k| k.as_str().unwrap()).collect();
    for needed in [
        "ApiUrl",
        "LeadQueueUrl",
        "LeadQueueArn",
        "HubSpotRedirectUri",
        "ZohoRedirectUri",
        "SalesforceRedirectUri",
        "GoogleSheetsRedirectUri",
        "Bitrix24RedirectUri",
        "HubSpotAppSecretArn",
        "ZohoAppSecretArn",
        "SalesforceAppSecretArn",
        "GoogleSheetsAppSecretArn",
        "Bitrix24AppSecretArn",
    ] {
        assert!(names.contains(needed), "output {needed}");
    }
}
