//! The demo driver, run by `make demo` (scripts/demo.sh).
//!
//! `demo provision` creates the local table and KMS key on moto and prints `KEY=VALUE` lines.
//! `demo run` drives the real function binaries, served by `cargo lambda watch`, through the
//! HubSpot and Zoho connect flows and lead pushes, and prints what happened in words.

use anyhow::{bail, Context, Result};
use relay_tests::events::ApiEvent;
use serde_json::{json, Value};
use shared::identity::TenantId;
use shared::Provider;

const TABLE: &str = "leadrelay-demo";
const KEY_ALIAS: &str = "alias/leadrelay-demo-credentials";

#[tokio::main]
async fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("provision") => provision().await,
        Some("run") => run().await,
        _ => bail!("usage: demo provision | demo run"),
    }
}

async fn provision() -> Result<()> {
    let aws = relay_tests::aws::local_config().await?;
    relay_tests::aws::create_table(&aws, TABLE).await?;
    let key_id = relay_tests::aws::create_key(&aws, Some(KEY_ALIAS)).await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    println!("TABLE_NAME={TABLE}");
    println!("KMS_KEY_ID={key_id}");
    println!("LEAD_QUEUE_URL={}", queues.url);
    println!("DEAD_LETTER_QUEUE_URL={}", queues.dead_letter_url);
    Ok(())
}

struct Lambda {
    http: reqwest::Client,
    base: String,
}

impl Lambda {
    /// Invokes a function the way `cargo lambda invoke` does.
    async fn invoke(&self, function: &str, event: &Value) -> Result<Value> {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base);
        let response = self
            .http
            .post(&url)
            .json(event)
            .send()
            .await
            .with_context(|| format!("invoking {function}"))?;
        let status = response.status();
        let body: Value = response.json().await.context("invocation result")?;
        if !status.is_success() {
            bail!("{function} failed: {body}");
        }
        Ok(body)
    }

    /// Invokes an HTTP function; returns (status, headers, JSON body or null).
    async fn http(&self, function: &str, event: &ApiEvent) -> Result<(u16, Value, Value)> {
        let result = self.invoke(function, &event.0).await?;
        let status = result["statusCode"].as_u64().unwrap_or(0) as u16;
        let body = result["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        Ok((status, result["headers"].clone(), body))
    }
}

fn step(n: u32, text: &str) {
    println!("\n\x1b[1m{n}. {text}\x1b[0m");
}

fn say(text: impl AsRef<str>) {
    println!("   {}", text.as_ref());
}

async fn run() -> Result<()> {
    let lambda = Lambda {
        http: reqwest::Client::new(),
        base: std::env::var("LAMBDA_INVOKE_URL").context("LAMBDA_INVOKE_URL is not set")?,
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let tenant = "acme-doha";
    let plan = "pro";
    println!("LeadRelay CRM relay: local demo (moto for AWS, a simulated HubSpot, the real Lambda binaries)");
    say(format!(
        "tenant {tenant:?} on the {plan} plan (from its JWT claims)"
    ));

    step(
        1,
        "The setup page asks connections-api for a HubSpot authorize URL",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/authorize.json").claims(tenant, plan),
        )
        .await?;
    if status != 200 {
        bail!("authorize answered {status}: {body}");
    }
    let authorize_url = url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
    let params: std::collections::HashMap<_, _> =
        authorize_url.query_pairs().into_owned().collect();
    say(format!(
        "{} -> {}{}",
        status,
        authorize_url.origin().ascii_serialization(),
        authorize_url.path()
    ));
    say(format!(
        "scopes: {}; PKCE: {}; state: single use, stored hashed, expires {}",
        params.get("scope").map(String::as_str).unwrap_or("-"),
        params
            .get("code_challenge_method")
            .map(String::as_str)
            .unwrap_or("none"),
        body["expires_at"].as_str().unwrap_or("?")
    ));

    step(
        2,
        "The user consents at HubSpot (simulated), which redirects the browser to the callback",
    );
    let consent = browser.get(authorize_url.as_str()).send().await?;
    let location = consent
        .headers()
        .get("location")
        .context("the consent screen did not redirect")?
        .to_str()?
        .to_string();
    let back = url::Url::parse(&location)?;
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    say(format!(
        "redirected to {} with a code and the state",
        back.path()
    ));

    step(
        3,
        "oauth-callback consumes the state, exchanges the code and stores the tokens",
    );
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let callback = ApiEvent::sample("oauth-callback/callback.json").query(&pairs);
    let (status, headers, _) = lambda.http("oauth-callback", &callback).await?;
    say(format!(
        "{status} -> {}",
        headers["location"].as_str().unwrap_or("?")
    ));

    let services = shared::Services::from_env().await?;
    let tenant_id = TenantId::parse(tenant)?;
    let stored = services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await?
        .context("no connection was stored")?;
    say(format!(
        "stored in DynamoDB: status {:?}, HubSpot portal {}, version {}",
        stored.status,
        stored
            .account
            .get("hub_id")
            .map(String::as_str)
            .unwrap_or("?"),
        stored.version
    ));
    say(format!(
        "credentials: {} bytes of KMS ciphertext, encryption context {{tenant_id: {tenant}, provider: hubspot}}; no token is printed, logged or returned",
        stored.credentials.len()
    ));
    say(format!(
        "access token expires at {}",
        stored
            .token_expiry()
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into())
    ));

    step(
        4,
        "The same callback replayed (a back button, an attacker) is refused",
    );
    let (_, headers, _) = lambda.http("oauth-callback", &callback).await?;
    say(format!(
        "-> {}",
        headers["location"].as_str().unwrap_or("?")
    ));

    step(5, "GET /connections lists the connection, without secrets");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/list.json").claims(tenant, plan),
        )
        .await?;
    for c in body["connections"].as_array().into_iter().flatten() {
        say(format!(
            "{status}: {} is {} since {}",
            c["provider"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?"),
            c["connected_at"].as_str().unwrap_or("?")
        ));
    }

    step(
        6,
        "GET /connections/hubspot/pipelines reads the deal pipelines from HubSpot",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/pipelines.json").claims(tenant, plan),
        )
        .await?;
    for p in body["pipelines"].as_array().into_iter().flatten() {
        let stages: Vec<&str> = p["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str())
            .collect();
        say(format!(
            "{status}: {} ({}): {}",
            p["label"].as_str().unwrap_or("?"),
            p["id"].as_str().unwrap_or("?"),
            stages.join(", ")
        ));
    }

    step(
        7,
        "PUT /connections/hubspot/settings saves the pipeline and the stage mapping",
    );
    let mapping = json!({
        "pipeline_id": "default",
        "stage_mapping": {"new": "appointmentscheduled", "qualified": "qualifiedtobuy", "proposal": "contractsent", "won": "closedwon", "lost": "closedlost"}
    });
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .claims(tenant, plan)
                .body(mapping),
        )
        .await?;
    say(format!(
        "{status}: pipeline {}",
        body["settings"]["pipeline_id"].as_str().unwrap_or("?")
    ));
    if let Some(map) = body["settings"]["stage_mapping"].as_object() {
        for (ours, theirs) in map {
            say(format!(
                "   LeadRelay {ours:<10} -> HubSpot {}",
                theirs.as_str().unwrap_or("?")
            ));
        }
    }
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .claims(tenant, plan)
                .body(json!({"pipeline_id": "default", "stage_mapping": {"won": "no-such-stage"}})),
        )
        .await?;
    say(format!(
        "a mapping to a stage HubSpot does not have: {status} {}",
        body["message"].as_str().unwrap_or("")
    ));

    step(
        8,
        "A Free-plan tenant asking for HubSpot is told which plan it needs",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/authorize.json").claims("corner-shop", "free"),
        )
        .await?;
    say(format!(
        "{status} {}: {}",
        body["error"].as_str().unwrap_or(""),
        body["message"].as_str().unwrap_or("")
    ));

    step(
        9,
        "The lead pipeline qualifies a lead in WhatsApp and puts it on the lead queue (SQS)",
    );
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    let message = relay_tests::queue::lead_message(
        tenant,
        plan,
        json!({"id": "lead-0001", "name": "Fatima Al-Kuwari", "email": "Fatima@Example.qa", "phone": "5555 1234",
               "country": "QA", "locale": "ar-QA", "source": "whatsapp", "score": 82, "stage": "qualified"}),
        Some("Asked about the annual plan for 12 seats; wants a demo next week."),
    );
    queues.send(&message).await;
    say("lead-0001: \"Fatima Al-Kuwari\", phone \"5555 1234\" (Qatar), stage qualified, score 82");

    step(
        10,
        "lead-push receives the batch (as Lambda's SQS trigger would) and pushes it",
    );
    let delivered = deliver(&lambda, &queues, 1).await?;
    say(delivered);
    print_hubspot(&browser, &std::env::var("HUBSPOT_ENDPOINT_URL")?).await?;

    step(
        11,
        "The same message delivered again (SQS is at-least-once): nothing is duplicated",
    );
    queues.send(&message).await;
    say(deliver(&lambda, &queues, 1).await?);

    step(12, "The lead moves on: won. The deal moves to the mapped stage; still one contact, one deal, one note");
    let won = message.replace("\"qualified\"", "\"won\"");
    queues.send(&won).await;
    say(deliver(&lambda, &queues, 1).await?);
    print_hubspot(&browser, &std::env::var("HUBSPOT_ENDPOINT_URL")?).await?;

    step(
        13,
        "A message that is not a lead goes to the DLQ with its reason, and the batch goes on",
    );
    queues.send("{\"version\": 2}").await;
    say(deliver(&lambda, &queues, 1).await?);
    for (_, attributes) in queues.dead_letters().await {
        say(format!(
            "DLQ: {}",
            attributes
                .get("failure_reason")
                .map(String::as_str)
                .unwrap_or("?")
        ));
    }

    let (_, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/list.json").claims(tenant, plan),
        )
        .await?;
    say(format!(
        "GET /connections: hubspot last_sync_at {}",
        body["connections"][0]["last_sync_at"]
            .as_str()
            .unwrap_or("-")
    ));

    step(14, "token-refresh runs on its schedule: the HubSpot token is due (as if 20 minutes had passed)");
    let before = services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await?
        .context("connection")?;
    let old = services
        .vault
        .open(&tenant_id, Provider::Hubspot, &before.credentials)
        .await?;
    let now = chrono::Utc::now().timestamp();
    services
        .store
        .update_tokens(
            &tenant_id,
            Provider::Hubspot,
            before.version,
            &before.credentials,
            shared::store::TokenSchedule {
                token_expires_at: Some(now + 300),
                refresh_due_at: Some(now + 300),
            },
        )
        .await?;
    say("access token now expires in 5 minutes: inside the 15-minute lookahead");
    let summary = lambda
        .invoke(
            "token-refresh",
            &relay_tests::events::load("token-refresh/schedule.json"),
        )
        .await?;
    say(format!("token-refresh -> {summary}"));
    let after = services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await?
        .context("connection")?;
    let new = services
        .vault
        .open(&tenant_id, Provider::Hubspot, &after.credentials)
        .await?;
    use secrecy::ExposeSecret;
    let changed = |a: &Option<secrecy::SecretString>, b: &Option<secrecy::SecretString>| {
        a.as_ref().map(|s| s.expose_secret().to_string())
            != b.as_ref().map(|s| s.expose_secret().to_string())
    };
    say(format!(
        "access token expiry {} -> {}; version {} -> {}; lease released: {}",
        chrono::DateTime::<chrono::Utc>::from_timestamp(now + 300, 0)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default(),
        after
            .token_expiry()
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default(),
        before.version + 1,
        after.version,
        after.refresh_lease_owner.is_none()
    ));
    say(format!(
        "access token replaced: {}; refresh token {} (whatever a refresh response carries is stored before use)",
        changed(&old.access_token, &new.access_token),
        if changed(&old.refresh_token, &new.refresh_token) {
            "rotated: the new one is stored"
        } else {
            "kept: HubSpot does not rotate refresh tokens"
        }
    ));

    run_zoho(&lambda, &browser, &services).await?;
    run_freshsales(&lambda, &browser, &services).await?;
    run_salesforce(&lambda, &browser, &services).await?;
    run_google_sheets(&lambda, &browser).await?;
    run_bitrix24(&lambda, &browser).await?;

    println!("\nDone: one lead each into HubSpot, Zoho, Freshsales, Salesforce, Google Sheets and Bitrix24.");
    Ok(())
}

/// A second tenant, in Australia, connects Zoho CRM: its account lives in Zoho's AU data
/// centre, so every call after the consent goes to the AU hosts.
async fn run_zoho(
    lambda: &Lambda,
    browser: &reqwest::Client,
    services: &shared::Services,
) -> Result<()> {
    let tenant = "sydney-solar";
    let plan = "pro";
    let zoho_sim = std::env::var("ZOHO_ENDPOINT_URL")?;
    println!("\nZoho CRM: tenant {tenant:?} ({plan} plan), whose Zoho account lives in the AU data centre");

    step(15, "The setup page asks for a Zoho authorize URL");
    let authorize = |who: &'static str| {
        ApiEvent::sample("connections-api/authorize.json")
            .provider("zoho")
            .claims(who, plan)
    };
    let (status, _, body) = lambda.http("connections-api", &authorize(tenant)).await?;
    if status != 200 {
        bail!("authorize answered {status}: {body}");
    }
    let url = url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    say(format!("{status} -> https://accounts.zoho.com{} (always the US accounts server; Zoho sends the user on)", url.path()));
    say(format!(
        "access_type={}, prompt={} (else no refresh token), PKCE {}, scopes: {}",
        params.get("access_type").map(String::as_str).unwrap_or("-"),
        params.get("prompt").map(String::as_str).unwrap_or("-"),
        params
            .get("code_challenge_method")
            .map(String::as_str)
            .unwrap_or("none"),
        params.get("scope").map(String::as_str).unwrap_or("-")
    ));

    step(
        16,
        "The user signs in at Zoho; Zoho redirects back naming the user's data centre",
    );
    // `sim_dc` is the simulator's stand-in for where the user's account lives.
    let consent = browser.get(format!("{url}&sim_dc=au")).send().await?;
    let back = url::Url::parse(
        consent
            .headers()
            .get("location")
            .context("the consent screen did not redirect")?
            .to_str()?,
    )?;
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    for (name, value) in &query {
        if name == "location" || name == "accounts-server" {
            say(format!("{name}={value}"));
        }
    }

    step(
        17,
        "oauth-callback exchanges the code at accounts.zoho.com.au and stores the connection",
    );
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let callback = ApiEvent::sample("oauth-callback/callback.json")
        .provider("zoho")
        .query(&pairs);
    let (status, headers, _) = lambda.http("oauth-callback", &callback).await?;
    say(format!(
        "{status} -> {}",
        headers["location"].as_str().unwrap_or("?")
    ));
    let tenant_id = TenantId::parse(tenant)?;
    let stored = services
        .store
        .get_connection(&tenant_id, Provider::Zoho)
        .await?
        .context("no Zoho connection was stored")?;
    for key in ["data_centre", "accounts_server", "api_domain", "org_id"] {
        say(format!(
            "{key}: {}",
            stored.account.get(key).map(String::as_str).unwrap_or("-")
        ));
    }
    say(format!(
        "credentials: {} bytes of KMS ciphertext under {{tenant_id: {tenant}, provider: zoho}}",
        stored.credentials.len()
    ));

    step(18, "A callback naming an accounts server that is not Zoho's is refused before any code is sent");
    let (_, _, body) = lambda
        .http("connections-api", &authorize("sydney-solar-2"))
        .await?;
    let forged_url = format!(
        "{}&sim_dc=au&sim_accounts_server=https://accounts.zoho.com.evil.example",
        body["authorize_url"].as_str().context("authorize_url")?
    );
    let consent = browser.get(forged_url).send().await?;
    let back = url::Url::parse(consent.headers()["location"].to_str()?)?;
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (_, headers, _) = lambda
        .http(
            "oauth-callback",
            &ApiEvent::sample("oauth-callback/callback.json")
                .provider("zoho")
                .query(&pairs),
        )
        .await?;
    say(format!(
        "-> {}",
        headers["location"].as_str().unwrap_or("?")
    ));

    step(
        19,
        "Settings: Zoho's Standard pipeline, the stage mapping, and conversion at `qualified`",
    );
    let settings = json!({
        "pipeline_id": "Standard (Standard)",
        "stage_mapping": {"qualified": "Needs Analysis", "proposal": "Proposal/Price Quote",
                          "won": "Closed Won", "lost": "Closed Lost"},
        "convert_at": "qualified"
    });
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .provider("zoho")
                .claims(tenant, plan)
                .body(settings),
        )
        .await?;
    say(format!(
        "{status}: pipeline {}, convert at {}, source -> {}, score -> {}",
        body["settings"]["pipeline_id"].as_str().unwrap_or("?"),
        body["settings"]["convert_at"].as_str().unwrap_or("-"),
        body["settings"]["source_property"]["name"]
            .as_str()
            .unwrap_or("-"),
        body["settings"]["score_property"]["name"]
            .as_str()
            .unwrap_or("-"),
    ));

    step(20, "A lead from Facebook, still being talked to (contacted), lands as a Zoho Lead with its note");
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    let lead = |stage: &str| {
        relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-au-7", "name": "Liam O'Brien", "email": "liam@obrien.example.com.au",
                   "phone": "0412 345 678", "country": "AU", "source": "facebook", "score": 64, "stage": stage}),
            Some("Wants a 6.6 kW rooftop system quoted for a house in Parramatta."),
        )
    };
    queues.send(&lead("contacted")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_zoho(browser, &zoho_sim).await?;

    step(
        21,
        "The lead qualifies: Zoho converts it into a Contact and a Deal in the mapped stage",
    );
    queues.send(&lead("qualified")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_zoho(browser, &zoho_sim).await?;
    Ok(())
}

/// A third tenant, in Doha, connects Freshsales with an API key.
async fn run_freshsales(
    lambda: &Lambda,
    browser: &reqwest::Client,
    services: &shared::Services,
) -> Result<()> {
    let tenant = "doha-motors";
    let plan = "pro";
    let sim = std::env::var("FRESHSALES_ENDPOINT_URL")?;
    let host = std::env::var("FRESHSALES_DEMO_DOMAIN")?;
    let key = std::env::var("FRESHSALES_DEMO_API_KEY")?;
    println!(
        "\nFreshsales: tenant {tenant:?} ({plan} plan) pastes its account's address and API key"
    );
    let connect = |body: Value| {
        ApiEvent::sample("connections-api/connect-freshsales.json")
            .claims(tenant, plan)
            .body(body)
    };

    step(
        22,
        "A domain that is not Freshworks' is refused before the key is sent anywhere",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &connect(
                json!({"domain": "doha-motors.myfreshworks.com.evil.example", "api_key": key}),
            ),
        )
        .await?;
    say(format!(
        "{status}: {}",
        body["message"].as_str().unwrap_or("")
    ));

    step(
        23,
        "A wrong key is tried with one cheap call, refused, and nothing is stored",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &connect(json!({"domain": "doha-motors", "api_key": "not-the-key"})),
        )
        .await?;
    say(format!(
        "{status}: {}",
        body["message"].as_str().unwrap_or("")
    ));

    step(
        24,
        "The URL pasted from the browser and the right key: checked, sealed with KMS, never echoed",
    );
    let pasted = format!("https://{host}/crm/sales/contacts/view/402174844666");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &connect(json!({"domain": pasted, "api_key": key})),
        )
        .await?;
    if status != 200 {
        bail!("connect answered {status}: {body}");
    }
    say(format!(
        "{pasted}\n      -> {status}: account {}, status {}, key in the answer: {}",
        body["account"]["domain"].as_str().unwrap_or("?"),
        body["status"].as_str().unwrap_or("?"),
        body.to_string().contains(&key)
    ));
    let stored = services
        .store
        .get_connection(&TenantId::parse(tenant)?, Provider::Freshsales)
        .await?
        .context("no Freshsales connection was stored")?;
    say(format!(
        "stored: {} bytes of KMS ciphertext; lead sources cached by name; nothing to refresh (refresh due: {:?})",
        stored.credentials.len(),
        stored.refresh_due_at
    ));

    step(
        25,
        "Pipelines and stages come from the account; the mapping is saved with its ids",
    );
    let (_, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/pipelines.json")
                .provider("freshsales")
                .claims(tenant, plan),
        )
        .await?;
    let pipeline = &body["pipelines"][0];
    let stage = |name: &str| -> String {
        pipeline["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["label"] == name)
            .and_then(|s| s["id"].as_str())
            .unwrap_or("")
            .to_string()
    };
    say(format!(
        "{} ({}): {}",
        pipeline["label"].as_str().unwrap_or("?"),
        pipeline["id"].as_str().unwrap_or("?"),
        pipeline["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!(
                "{} {}",
                s["label"].as_str().unwrap_or("?"),
                s["id"].as_str().unwrap_or("?")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (status, _, _) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .provider("freshsales")
                .claims(tenant, plan)
                .body(json!({
                    "pipeline_id": pipeline["id"],
                    "stage_mapping": {"qualified": stage("Qualification"), "won": stage("Won"), "lost": stage("Lost")}
                })),
        )
        .await?;
    say(format!("settings saved: {status}"));

    step(26, "A WhatsApp lead lands: contact (lead source by the account's id), deal in the mapped stage, note");
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    queues
        .send(&relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-fs-3", "name": "Khalid Al-Sulaiti", "email": "khalid@sulaiti.example.qa",
                   "phone": "+974 3311 2244", "source": "whatsapp", "score": 77, "stage": "qualified"}),
            Some("Wants a test drive of the hybrid SUV on Saturday morning."),
        ))
        .await;
    say(deliver(lambda, &queues, 1).await?);
    let state: Value = browser
        .get(format!("{sim}/_sim/state?host={host}"))
        .send()
        .await?
        .json()
        .await?;
    let source_name = |id: &Value| -> String {
        state["lead_sources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| &s["id"] == id)
            .and_then(|s| s["name"].as_str())
            .unwrap_or("-")
            .to_string()
    };
    for c in state["contacts"].as_array().into_iter().flatten() {
        say(format!(
            "Freshsales contact {}: {} {} <{}> {}, lead source {} ({}), lead score {}",
            c["id"],
            c["first_name"].as_str().unwrap_or(""),
            c["last_name"].as_str().unwrap_or(""),
            c["email"].as_str().unwrap_or(""),
            c["mobile_number"].as_str().unwrap_or(""),
            c["lead_source_id"],
            source_name(&c["lead_source_id"]),
            c["lead_score"]
        ));
    }
    for d in state["deals"].as_array().into_iter().flatten() {
        say(format!(
            "Freshsales deal {}: {:?} in pipeline {}, stage {}, contacts {}",
            d["id"],
            d["name"].as_str().unwrap_or(""),
            d["deal_pipeline_id"],
            d["deal_stage_id"],
            d["contact_ids"]
        ));
    }
    for n in state["notes"].as_array().into_iter().flatten() {
        say(format!(
            "Freshsales note {} on {} {}: {}",
            n["id"],
            n["targetable_type"].as_str().unwrap_or("?"),
            n["targetable_id"],
            n["description"].as_str().unwrap_or("").replace('\n', " ")
        ));
    }
    Ok(())
}

/// A Business tenant connects Salesforce at its My Domain and maps a custom field.
async fn run_salesforce(
    lambda: &Lambda,
    browser: &reqwest::Client,
    services: &shared::Services,
) -> Result<()> {
    let tenant = "gulf-freight";
    let plan = "business";
    let sim = std::env::var("SALESFORCE_ENDPOINT_URL")?;
    println!(
        "\nSalesforce: tenant {tenant:?} ({plan} plan), whose org requires its My Domain login"
    );
    let authorize = |who: &'static str, plan: &'static str, body: Value| {
        ApiEvent::sample("connections-api/authorize.json")
            .provider("salesforce")
            .claims(who, plan)
            .body(body)
    };

    step(
        27,
        "A Pro tenant asks for Salesforce: it is the Business plan's CRM",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &authorize("doha-motors", "pro", json!({})),
        )
        .await?;
    say(format!(
        "{status}: {}",
        body["message"].as_str().unwrap_or("")
    ));

    step(
        28,
        "A login host that is not Salesforce's is refused before any state is stored",
    );
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &authorize(
                tenant,
                plan,
                json!({"my_domain": "gulf-freight.my.salesforce.com.evil.example"}),
            ),
        )
        .await?;
    say(format!(
        "{status}: {}",
        body["message"].as_str().unwrap_or("")
    ));

    step(29, "The admin pastes the Lightning address; the consent goes to the org's My Domain, with PKCE");
    let pasted = "https://acme.lightning.force.com/lightning/page/home";
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &authorize(tenant, plan, json!({"my_domain": pasted})),
        )
        .await?;
    if status != 200 {
        bail!("authorize answered {status}: {body}");
    }
    let url = url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    say(format!(
        "{pasted}\n      -> https://acme.my.salesforce.com{} (locally: the simulator), scopes {:?}, PKCE {}",
        url.path(),
        params.get("scope").map(String::as_str).unwrap_or("-"),
        params.get("code_challenge_method").map(String::as_str).unwrap_or("none"),
    ));
    say(consent_and_callback(
        lambda,
        browser,
        "salesforce",
        &format!("{url}&sim_org=acme"),
    )
    .await?);
    let stored = services
        .store
        .get_connection(&TenantId::parse(tenant)?, Provider::Salesforce)
        .await?
        .context("no Salesforce connection was stored")?;
    for key in ["login_origin", "instance_url", "org_id"] {
        say(format!(
            "{key}: {}",
            stored.account.get(key).map(String::as_str).unwrap_or("-")
        ));
    }
    say(format!(
        "no expires_in from Salesforce: the session is taken to last until {} (SALESFORCE_SESSION_SECONDS); {} bytes of KMS ciphertext",
        stored
            .token_expiry()
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "-".into()),
        stored.credentials.len()
    ));

    step(30, "Settings: the org's opportunity stages, conversion at `qualified`, the score into a custom field");
    let (_, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/pipelines.json")
                .provider("salesforce")
                .claims(tenant, plan),
        )
        .await?;
    let pipeline = &body["pipelines"][0];
    say(format!(
        "{} ({}): {}",
        pipeline["label"].as_str().unwrap_or("?"),
        pipeline["id"].as_str().unwrap_or("?"),
        pipeline["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .provider("salesforce")
                .claims(tenant, plan)
                .body(json!({
                    "pipeline_id": pipeline["id"],
                    "stage_mapping": {"qualified": "Qualification", "proposal": "Proposal/Price Quote",
                                      "won": "Closed Won", "lost": "Closed Lost"},
                    "convert_at": "qualified",
                    "field_mapping": {"score": "LeadRelay_Score__c", "lead_id": "LeadRelay_Id__c"}
                })),
        )
        .await?;
    say(format!(
        "{status}: field_mapping {}",
        body["settings"]["field_mapping"]
    ));

    step(31, "A lead whose email holds a quote lands: escaped SOQL finds no duplicate; Lead and Task in one composite");
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    let lead = |stage: &str| {
        relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-sf-9", "name": "Aisling O'Neill", "email": "aisling.o'neill@freight.example.ie",
                   "phone": "+353 85 123 4567", "source": "web", "score": 88, "stage": stage}),
            Some("Ships 40 reefer containers a month Dublin to Doha; wants a quote."),
        )
    };
    queues.send(&lead("contacted")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_salesforce(browser, &sim).await?;

    step(32, "The lead qualifies: SOAP convertLead makes a Contact, an Account and an Opportunity in the mapped stage");
    queues.send(&lead("qualified")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_salesforce(browser, &sim).await?;
    Ok(())
}

/// A Free tenant connects Google Sheets, names its spreadsheet by URL, and leads become rows.
async fn run_google_sheets(lambda: &Lambda, browser: &reqwest::Client) -> Result<()> {
    let tenant = "souq-bakery";
    let plan = "free";
    let sim = std::env::var("GOOGLE_SHEETS_ENDPOINT_URL")?;
    let spreadsheet = std::env::var("GOOGLE_SHEETS_DEMO_SPREADSHEET")?;
    println!("\nGoogle Sheets: tenant {tenant:?} ({plan} plan: Sheets is its one destination)");

    step(33, "The setup page asks for a Google authorize URL: offline access, PKCE, the spreadsheets scope only");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/authorize.json")
                .provider("google_sheets")
                .claims(tenant, plan),
        )
        .await?;
    if status != 200 {
        bail!("authorize answered {status}: {body}");
    }
    let url = url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    say(format!(
        "{status} -> https://accounts.google.com{}: scope {}, access_type={}, prompt={}, PKCE {}",
        url.path(),
        params.get("scope").map(String::as_str).unwrap_or("-"),
        params.get("access_type").map(String::as_str).unwrap_or("-"),
        params.get("prompt").map(String::as_str).unwrap_or("-"),
        params
            .get("code_challenge_method")
            .map(String::as_str)
            .unwrap_or("none"),
    ));
    let consent = format!("{url}&sim_user=owner@souq-bakery.example");
    say(consent_and_callback(lambda, browser, "google_sheets", &consent).await?);

    step(34, "The tenant pastes its spreadsheet's address; the relay opens it with the connected account before saving");
    let pasted = format!("https://docs.google.com/spreadsheets/d/{spreadsheet}/edit#gid=0");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .provider("google_sheets")
                .claims(tenant, plan)
                .body(json!({"spreadsheet_url": pasted})),
        )
        .await?;
    say(format!(
        "{pasted}\n      -> {status}: spreadsheet {}, sheet {:?}",
        body["settings"]["pipeline_id"].as_str().unwrap_or("?"),
        body["settings"]["sheet"].as_str().unwrap_or("?")
    ));

    step(
        35,
        "Two leads arrive, one with a name that would be a formula; then the first one changes",
    );
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    let hala = |stage: &str, summary: &str| {
        relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-gs-1", "name": "Hala Nasser", "email": "hala@example.qa",
                   "phone": "+974 3300 1122", "source": "instagram", "score": 71, "stage": stage}),
            Some(summary),
        )
    };
    queues
        .send(&hala("qualified", "Wants 200 maamoul boxes for Eid."))
        .await;
    queues
        .send(&relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-gs-2", "name": "=HYPERLINK(\"https://evil.example\",\"Click\")", "stage": "new"}),
            Some("+SUM(1,2)"),
        ))
        .await;
    say(deliver(lambda, &queues, 2).await?);
    queues
        .send(&hala("won", "Ordered 200 boxes, delivery on Thursday."))
        .await;
    say(deliver(lambda, &queues, 1).await?);

    step(36, "The sheet: a header, one row per lead (the first updated in place), nothing turned into a formula");
    let state: Value = browser
        .get(format!("{sim}/_sim/state?spreadsheet={spreadsheet}"))
        .send()
        .await?
        .json()
        .await?;
    say(serde_json::to_string_pretty(&state)?.replace('\n', "\n   "));
    Ok(())
}

/// A Pro tenant connects its Bitrix24 portal, picks the Wholesale category, and a lead becomes a
/// contact, a deal and a timeline comment; then the deal moves on.
async fn run_bitrix24(lambda: &Lambda, browser: &reqwest::Client) -> Result<()> {
    let tenant = "al-waha-trading";
    let plan = "pro";
    let sim = std::env::var("BITRIX24_ENDPOINT_URL")?;
    let portal = std::env::var("BITRIX24_DEMO_PORTAL")?;
    println!("\nBitrix24: tenant {tenant:?} ({plan} plan), portal {portal}");

    step(37, "The setup page sends the portal's address as the browser shows it; the consent is on that portal");
    let pasted = format!("https://{portal}/crm/deal/kanban/");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/authorize.json")
                .provider("bitrix24")
                .claims(tenant, plan)
                .body(json!({ "portal": pasted })),
        )
        .await?;
    if status != 200 {
        bail!("authorize answered {status}: {body}");
    }
    let url = url::Url::parse(body["authorize_url"].as_str().context("authorize_url")?)?;
    say(format!(
        "{pasted}\n      -> {status}: https://{portal}{} (locally: the simulator)",
        url.path()
    ));
    let consent = format!("{url}&sim_portal={portal}");
    say(consent_and_callback(lambda, browser, "bitrix24", &consent).await?);
    let services = shared::Services::from_env().await?;
    let stored = services
        .store
        .get_connection(&TenantId::parse(tenant)?, Provider::Bitrix24)
        .await?
        .context("no Bitrix24 connection was stored")?;
    say(format!(
        "stored: REST endpoint {}, member id {}, tokens from {} (by GET, as Bitrix24 documents), access token until {}",
        stored.account.get("rest_endpoint").map(String::as_str).unwrap_or("?"),
        stored.account.get("member_id").map(String::as_str).unwrap_or("?"),
        stored.account.get("oauth_server").map(String::as_str).unwrap_or("?"),
        stored.token_expiry().map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
    ));
    say("scheduled refresh: only a keep-alive three weeks on; access tokens are refreshed when a push needs one");

    step(
        38,
        "Deal categories and stages for the setup page; the tenant picks Wholesale",
    );
    let (_, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/pipelines.json")
                .provider("bitrix24")
                .claims(tenant, plan),
        )
        .await?;
    let mut wholesale = None;
    for p in body["pipelines"].as_array().into_iter().flatten() {
        let stages: Vec<&str> = p["stages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str())
            .collect();
        say(format!(
            "{} ({}): {}",
            p["label"].as_str().unwrap_or("?"),
            p["id"].as_str().unwrap_or("?"),
            stages.join(", ")
        ));
        if p["label"] == "Wholesale" {
            wholesale = p["id"].as_str().map(str::to_string);
        }
    }
    let category = wholesale.context("no Wholesale category")?;
    let mapping = json!({"pipeline_id": category, "stage_mapping": {
        "new": format!("C{category}:NEW"),
        "qualified": format!("C{category}:PREPARATION"),
        "won": format!("C{category}:WON"),
        "lost": format!("C{category}:LOSE")}});
    let (status, _, _) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/settings.json")
                .provider("bitrix24")
                .claims(tenant, plan)
                .body(mapping.clone()),
        )
        .await?;
    say(format!("settings {status}: {}", mapping["stage_mapping"]));

    step(39, "A qualified lead arrives, then wins");
    let aws = relay_tests::aws::local_config().await?;
    let queues = relay_tests::queue::LeadQueues::create(&aws, TABLE).await?;
    let khalid = |stage: &str, summary: &str| {
        relay_tests::queue::lead_message(
            tenant,
            plan,
            json!({"id": "lead-b24-1", "name": "Khalid Al-Mansoori", "email": "khalid@example.qa",
                   "phone": "+974 6600 7788", "source": "whatsapp", "score": 88, "stage": stage}),
            Some(summary),
        )
    };
    queues
        .send(&khalid(
            "qualified",
            "Restaurant owner: 40 kg of dates a month.",
        ))
        .await;
    say(deliver(lambda, &queues, 1).await?);
    queues
        .send(&khalid("won", "Signed a yearly supply contract."))
        .await;
    say(deliver(lambda, &queues, 1).await?);

    step(
        40,
        "The portal now holds one contact, one deal in Wholesale at WON, one comment",
    );
    let state: Value = browser
        .get(format!("{sim}/_sim/state?portal={portal}"))
        .send()
        .await?
        .json()
        .await?;
    for contact in state["contacts"].as_array().into_iter().flatten() {
        say(format!(
            "contact {}: {} {}, phone {}, email {}",
            contact["ID"],
            contact["NAME"].as_str().unwrap_or(""),
            contact["LAST_NAME"].as_str().unwrap_or(""),
            contact["PHONE"][0]["VALUE"],
            contact["EMAIL"][0]["VALUE"],
        ));
    }
    for deal in state["deals"].as_array().into_iter().flatten() {
        say(format!(
            "deal {}: {:?}, category {}, stage {}, contact {}",
            deal["ID"],
            deal["TITLE"].as_str().unwrap_or(""),
            deal["CATEGORY_ID"],
            deal["STAGE_ID"],
            deal["CONTACT_ID"]
        ));
    }
    for comment in state["comments"].as_array().into_iter().flatten() {
        say(format!(
            "comment on {} {}: {}",
            comment["ENTITY_TYPE"].as_str().unwrap_or("?"),
            comment["ENTITY_ID"].as_str().unwrap_or("?"),
            comment["COMMENT"]
                .as_str()
                .unwrap_or("?")
                .replace('\n', " / ")
        ));
    }
    Ok(())
}

/// What the simulated Salesforce org now holds.
async fn print_salesforce(browser: &reqwest::Client, base: &str) -> Result<()> {
    let state: Value = browser
        .get(format!("{base}/_sim/state?org=acme"))
        .send()
        .await?
        .json()
        .await?;
    let records = |object: &str| -> Vec<Value> {
        state["records"][object]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    // Each object with the fields worth showing.
    let shown: [(&str, &[&str]); 4] = [
        (
            "Lead",
            &[
                "FirstName",
                "LastName",
                "Email",
                "Phone",
                "Company",
                "Rating",
                "LeadRelay_Score__c",
                "LeadRelay_Id__c",
                "IsConverted",
            ],
        ),
        ("Contact", &["FirstName", "LastName", "AccountId"]),
        ("Opportunity", &["Name", "StageName", "CloseDate"]),
        ("Task", &["WhoId", "Subject", "Status", "Description"]),
    ];
    for (object, fields) in shown {
        for record in records(object) {
            let values: Vec<String> = fields
                .iter()
                .map(|f| {
                    let v = &record[*f];
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    format!("{f}={}", text.replace('\n', " "))
                })
                .collect();
            say(format!(
                "Salesforce {object} {}: {}",
                record["Id"].as_str().unwrap_or("?"),
                values.join(", ")
            ));
        }
    }
    Ok(())
}

/// What the simulated Zoho AU data centre now holds.
async fn print_zoho(browser: &reqwest::Client, base: &str) -> Result<()> {
    let state: Value = browser
        .get(format!("{base}/_sim/state?dc=au"))
        .send()
        .await?
        .json()
        .await?;
    let list = |kind: &str| state[kind].as_array().cloned().unwrap_or_default();
    let text = |r: &Value, f: &str| r[f].as_str().unwrap_or("").to_string();
    for lead in list("leads") {
        say(format!(
            "Zoho (AU) lead {}: {} {} <{}> {}, source {}{}",
            text(&lead, "id"),
            text(&lead, "First_Name"),
            text(&lead, "Last_Name"),
            text(&lead, "Email"),
            text(&lead, "Phone"),
            text(&lead, "Lead_Source"),
            if lead["$converted"] == json!(true) {
                ", converted"
            } else {
                ""
            }
        ));
    }
    for contact in list("contacts") {
        say(format!(
            "Zoho (AU) contact {}: {} {} <{}>",
            text(&contact, "id"),
            text(&contact, "First_Name"),
            text(&contact, "Last_Name"),
            text(&contact, "Email")
        ));
    }
    for deal in list("deals") {
        say(format!(
            "Zoho (AU) deal {}: {:?} in {}, stage {}, closing {}",
            text(&deal, "id"),
            text(&deal, "Deal_Name"),
            text(&deal, "Pipeline"),
            text(&deal, "Stage"),
            text(&deal, "Closing_Date")
        ));
    }
    for note in list("notes") {
        say(format!(
            "Zoho (AU) note {} on {} {}: {}",
            text(&note, "id"),
            note["Parent_Id"]["module"]["api_name"]
                .as_str()
                .unwrap_or("?"),
            note["Parent_Id"]["id"].as_str().unwrap_or("?"),
            text(&note, "Note_Content").replace('\n', " ")
        ));
    }
    Ok(())
}

/// Receives what is on the queue, invokes lead-push with it as an SQS event, and deletes what
/// the function settled: what Lambda's event source mapping does.
/// The browser at a simulated consent screen, then oauth-callback with what it was sent back
/// with; returns `callback STATUS -> setup-page URL`.
async fn consent_and_callback(
    lambda: &Lambda,
    browser: &reqwest::Client,
    provider: &str,
    consent_url: &str,
) -> Result<String> {
    let consent = browser.get(consent_url).send().await?;
    let back = url::Url::parse(
        consent
            .headers()
            .get("location")
            .context("the consent screen did not redirect")?
            .to_str()?,
    )?;
    let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, headers, _) = lambda
        .http(
            "oauth-callback",
            &ApiEvent::sample("oauth-callback/callback.json")
                .provider(provider)
                .query(&pairs),
        )
        .await?;
    Ok(format!(
        "callback {status} -> {}",
        headers["location"].as_str().unwrap_or("?")
    ))
}

async fn deliver(
    lambda: &Lambda,
    queues: &relay_tests::queue::LeadQueues,
    expected: usize,
) -> Result<String> {
    let event = queues.receive(expected).await;
    let result = lambda
        .invoke("lead-push", &serde_json::to_value(&event)?)
        .await?;
    let response: aws_lambda_events::event::sqs::SqsBatchResponse = serde_json::from_value(result)?;
    let delivery = queues.settle(&event, &response).await;
    Ok(format!(
        "lead-push settled {} of {} message(s); {} handed back for retry",
        delivery.received.len() - delivery.failed.len(),
        delivery.received.len(),
        delivery.failed.len()
    ))
}

/// What the simulated HubSpot portal now holds.
async fn print_hubspot(browser: &reqwest::Client, base: &str) -> Result<()> {
    let state: Value = browser
        .get(format!("{base}/_sim/state"))
        .send()
        .await?
        .json()
        .await?;
    let list = |kind: &str| state[kind].as_array().cloned().unwrap_or_default();
    for contact in list("contacts") {
        let p = &contact["properties"];
        say(format!(
            "HubSpot contact {}: {} {} <{}> {}",
            contact["id"].as_str().unwrap_or("?"),
            p["firstname"].as_str().unwrap_or(""),
            p["lastname"].as_str().unwrap_or(""),
            p["email"].as_str().unwrap_or(""),
            p["phone"].as_str().unwrap_or("")
        ));
    }
    for deal in list("deals") {
        let p = &deal["properties"];
        say(format!(
            "HubSpot deal {}: {:?} in pipeline {}, stage {}",
            deal["id"].as_str().unwrap_or("?"),
            p["dealname"].as_str().unwrap_or(""),
            p["pipeline"].as_str().unwrap_or(""),
            p["dealstage"].as_str().unwrap_or("")
        ));
    }
    for note in list("notes") {
        let body = note["properties"]["hs_note_body"].as_str().unwrap_or("");
        let text: String = body
            .replace("<br>", " ")
            .split(['<', '>'])
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(" ");
        say(format!(
            "HubSpot note {}: {}",
            note["id"].as_str().unwrap_or("?"),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    say(format!(
        "associations: {}",
        state["associations"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    ));
    Ok(())
}
