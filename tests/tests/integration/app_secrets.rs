//! The OAuth apps' client credentials in Secrets Manager (moto): a provider whose secret is
//! unset, the template's placeholder, half filled or missing is not offered; a filled one is;
//! a secret rotated after the cold start is read again when the provider answers
//! `invalid_client`, at most once per provider per interval; no value reaches a log or an error.

use relay_tests::context::{app_secret_value, outcome, put_app_secret, TestContext};
use relay_tests::events::ApiEvent;
use secrecy::ExposeSecret;
use serde_json::json;
use shared::config::Config;
use shared::{Provider, Services};

/// Services built from the context's configuration with `changes`, reading their app secrets
/// from moto now, as a cold start does.
async fn cold_start(ctx: &TestContext, changes: &[(&str, &str)]) -> Services {
    let mut vars = ctx.vars.clone();
    for (k, v) in changes {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("configuration");
    Services::with_aws_config(config, &ctx.aws)
        .await
        .expect("the app secrets read")
}

fn unique(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

async fn authorize(ctx: &TestContext, provider: &str) -> relay_tests::context::ApiResponse {
    let mut event = ApiEvent::sample("connections-api/authorize.json")
        .provider(provider)
        .claims(&TestContext::tenant(), "business");
    if provider == "bitrix24" {
        event = event.body(json!({ "portal": "unset.bitrix24.com" }));
    }
    ctx.api(event).await
}

#[tokio::test]
async fn a_provider_whose_app_secret_holds_no_credentials_is_not_offered() {
    let mut ctx = TestContext::new().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&ctx.aws);
    // What the template creates: the placeholder with both fields empty.
    let placeholder = unique(&format!("{}/zoho-placeholder", ctx.table));
    put_app_secret(
        &ctx.aws,
        &placeholder,
        r#"{"client_id": "", "client_secret": ""}"#,
    )
    .await;
    // A secret created with no value at all (no version yet).
    let empty = unique(&format!("{}/salesforce-empty", ctx.table));
    secrets
        .create_secret()
        .name(&empty)
        .send()
        .await
        .expect("a secret without a value");
    // Half filled: a secret without its client id. The value must not be logged.
    let half_secret = unique("half-filled-client-secret");
    let half = unique(&format!("{}/bitrix24-half", ctx.table));
    put_app_secret(&ctx.aws, &half, &app_secret_value("", &half_secret)).await;
    let missing = unique(&format!("{}/google-never-created", ctx.table));

    ctx.services = cold_start(
        &ctx,
        &[
            ("ZOHO_APP_SECRET_ID", placeholder.as_str()),
            ("SALESFORCE_APP_SECRET_ID", empty.as_str()),
            ("BITRIX24_APP_SECRET_ID", half.as_str()),
            ("GOOGLE_SHEETS_APP_SECRET_ID", missing.as_str()),
        ],
    )
    .await;

    for provider in ["zoho", "salesforce", "bitrix24", "google_sheets"] {
        let refused = authorize(&ctx, provider).await;
        assert_eq!(refused.status, 404, "{provider}: {}", refused.body);
        assert_eq!(refused.body["error"], "not_supported", "{provider}");
    }
    let offered = authorize(&ctx, "hubspot").await;
    assert_eq!(offered.status, 200, "{}", offered.body);
    relay_tests::logs::assert_never_logged("half-filled client secret", &half_secret);
}

#[tokio::test]
async fn a_filled_app_secret_offers_its_provider_with_its_client_id() {
    let ctx = TestContext::new().await;
    for (provider, client_id) in [
        ("hubspot", "test-client-id"),
        ("zoho", "test-zoho-client-id"),
        ("salesforce", "test-salesforce-client-id"),
        ("google_sheets", "test-google-client-id"),
        ("bitrix24", "test-bitrix-client-id"),
    ] {
        let started = authorize(&ctx, provider).await;
        assert_eq!(started.status, 200, "{provider}: {}", started.body);
        let url = url::Url::parse(started.body["authorize_url"].as_str().unwrap()).unwrap();
        let sent: Vec<_> = url
            .query_pairs()
            .filter(|(k, _)| k == "client_id")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(sent, [client_id], "{provider}");
        assert!(!started.body.to_string().contains(&ctx.client_secret));
    }
}

#[tokio::test]
async fn a_secret_rotated_after_the_cold_start_is_read_again_after_invalid_client() {
    let mut ctx = TestContext::new().await;
    // The function starts while the secret still holds the old client secret ...
    let old_secret = unique("old-client-secret");
    ctx.put_app_secret("hubspot", &app_secret_value("test-client-id", &old_secret))
        .await;
    ctx.services = cold_start(&ctx, &[]).await;
    // ... then the team rotates it: HubSpot (the simulator) and the secret have the new one.
    ctx.put_app_secret(
        "hubspot",
        &app_secret_value("test-client-id", &ctx.client_secret),
    )
    .await;

    let tenant = TestContext::tenant();
    let back = outcome(&ctx.connect_hubspot(&tenant, "pro").await);
    assert_eq!(back["status"], "connected", "{back:?}");
    let held = ctx
        .services
        .config
        .oauth_apps
        .get(Provider::Hubspot)
        .expect("hubspot");
    assert_eq!(held.client_secret.expose_secret(), ctx.client_secret);
    assert!(!format!("{back:?}").contains(&old_secret));
    relay_tests::logs::assert_never_logged("old client secret", &old_secret);
    relay_tests::logs::assert_never_logged("client secret", &ctx.client_secret);
}

#[tokio::test]
async fn an_app_secret_is_read_again_at_most_once_per_interval() {
    let mut ctx = TestContext::new().await;
    let first = unique("first-wrong-secret");
    let second = unique("second-wrong-secret");
    ctx.put_app_secret("hubspot", &app_secret_value("test-client-id", &first))
        .await;
    ctx.services = cold_start(&ctx, &[("APP_SECRET_REREAD_SECONDS", "3600")]).await;
    ctx.put_app_secret("hubspot", &app_secret_value("test-client-id", &second))
        .await;

    // Refused with the first; read again, refused with the second too.
    let back = outcome(&ctx.connect_hubspot(&TestContext::tenant(), "pro").await);
    assert_ne!(back["status"], "connected", "{back:?}");
    let held = ctx.services.config.oauth_apps.get(Provider::Hubspot);
    assert_eq!(held.unwrap().client_secret.expose_secret(), second);

    // The right one is in place now, but the last read was less than an interval ago.
    ctx.put_app_secret(
        "hubspot",
        &app_secret_value("test-client-id", &ctx.client_secret),
    )
    .await;
    let back = outcome(&ctx.connect_hubspot(&TestContext::tenant(), "pro").await);
    assert_ne!(back["status"], "connected", "{back:?}");
    let held = ctx.services.config.oauth_apps.get(Provider::Hubspot);
    assert_eq!(held.unwrap().client_secret.expose_secret(), second);

    // With no interval the next refusal reads it again and the connect goes through.
    ctx.put_app_secret("hubspot", &app_secret_value("test-client-id", &first))
        .await;
    ctx.services = cold_start(&ctx, &[("APP_SECRET_REREAD_SECONDS", "0")]).await;
    ctx.put_app_secret(
        "hubspot",
        &app_secret_value("test-client-id", &ctx.client_secret),
    )
    .await;
    let back = outcome(&ctx.connect_hubspot(&TestContext::tenant(), "pro").await);
    assert_eq!(back["status"], "connected", "{back:?}");
    for (label, value) in [
        ("first wrong secret", &first),
        ("second wrong secret", &second),
    ] {
        relay_tests::logs::assert_never_logged(label, value);
    }
}

#[tokio::test]
async fn an_unreadable_app_secret_fails_the_cold_start_naming_its_variable_only() {
    let ctx = TestContext::new().await;
    // A secret scheduled for deletion cannot be read (InvalidRequestException): that is not
    // "unset", and the function must not start as if Zoho were simply not offered.
    let doomed = unique(&format!("{}/zoho-doomed", ctx.table));
    let value = unique("doomed-client-secret");
    put_app_secret(&ctx.aws, &doomed, &app_secret_value("zoho-id", &value)).await;
    aws_sdk_secretsmanager::Client::new(&ctx.aws)
        .delete_secret()
        .secret_id(&doomed)
        .send()
        .await
        .expect("scheduled for deletion");
    let mut vars = ctx.vars.clone();
    vars.insert("ZOHO_APP_SECRET_ID".into(), doomed.clone());
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("configuration");
    let err = match Services::with_aws_config(config, &ctx.aws).await {
        Ok(_) => panic!("the cold start must fail"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("ZOHO_APP_SECRET_ID"), "{err}");
    assert!(!err.contains(&value), "{err}");
    relay_tests::logs::assert_never_logged("doomed client secret", &value);
}

/// The token endpoint of a HubSpot app whose secret was rotated to `current`: `invalid_client`
/// for any other secret.
async fn rotated_token_endpoint(current: &str) -> wiremock::MockServer {
    use wiremock::matchers::{body_string_contains, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    let accepted = format!("client_secret={current}");
    Mock::given(path("/oauth/2026-03/token"))
        .and(body_string_contains(accepted.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "at2", "expires_in": 1800, "token_type": "bearer"
        })))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/2026-03/token/revoke"))
        .and(body_string_contains(accepted.as_str()))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/2026-03/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "status": "BAD_CLIENT_SECRET", "message": "no"
        })))
        .mount(&server)
        .await;
    Mock::given(path("/oauth/2026-03/token/revoke"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_refresh_and_a_revocation_refused_as_invalid_client_are_retried_once_with_the_rotated_secret(
) {
    use secrecy::SecretString;
    use shared::oauth::OAuthClient;
    let ctx = TestContext::new().await;
    let old = unique("old-secret");
    let new = unique("new-secret");
    let server = rotated_token_endpoint(&new).await;
    ctx.put_app_secret("hubspot", &app_secret_value("cid", &old))
        .await;
    let services = cold_start(&ctx, &[("HUBSPOT_ENDPOINT_URL", &server.uri())]).await;
    ctx.put_app_secret("hubspot", &app_secret_value("cid", &new))
        .await;

    let oauth = OAuthClient::new(Provider::Hubspot, &services.config, &services.http).unwrap();
    let refreshed = oauth
        .refresh(&SecretString::from("rt"))
        .await
        .expect("retried with the new secret");
    assert_eq!(refreshed.access_token.expose_secret(), "at2");
    // A client made before the re-read still holds the old secret, and is retried too (the
    // store already has the new one: no second read needed).
    assert!(oauth.revoke(&SecretString::from("rt")).await.unwrap());

    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "client_secret")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        sent,
        [old.clone(), new.clone(), old.clone(), new.clone()],
        "each call tried once more, no more"
    );
    relay_tests::logs::assert_never_logged("old client secret", &old);
    relay_tests::logs::assert_never_logged("new client secret", &new);
}
