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
const EVENT_BUS: &str = "leadrelay-demo";

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
    let events_queue = create_event_tap(&aws).await?;
    println!("EVENT_BUS_NAME={EVENT_BUS}");
    println!("LIFECYCLE_EVENTS_QUEUE_URL={events_queue}");
    Ok(())
}

/// The lifecycle bus, and what LeadRelay's app would set up to hear it: a rule on the relay's
/// source whose target is an SQS queue. moto delivers to the target during `PutEvents`.
async fn create_event_tap(aws: &aws_config::SdkConfig) -> Result<String> {
    let eventbridge = aws_sdk_eventbridge::Client::new(aws);
    eventbridge
        .create_event_bus()
        .name(EVENT_BUS)
        .send()
        .await
        .context("CreateEventBus")?;
    let sqs = aws_sdk_sqs::Client::new(aws);
    let url = sqs
        .create_queue()
        .queue_name(format!("{TABLE}-lifecycle-events"))
        .send()
        .await
        .context("CreateQueue")?
        .queue_url
        .context("queue url")?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .context("queue arn")?;
    eventbridge
        .put_rule()
        .name("leadrelay-app-lifecycle")
        .event_bus_name(EVENT_BUS)
        .event_pattern(json!({ "source": [shared::events::SOURCE] }).to_string())
        .send()
        .await
        .context("PutRule")?;
    eventbridge
        .put_targets()
        .rule("leadrelay-app-lifecycle")
        .event_bus_name(EVENT_BUS)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("app-queue")
                .arn(arn)
                .build()?,
        )
        .send()
        .await
        .context("PutTargets")?;
    Ok(url)
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

/// Starts the next numbered step of the story.
fn step(text: &str) {
    static SHOWN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SHOWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
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

    let callback = connect(
        &lambda,
        &browser,
        "hubspot",
        (tenant, plan),
        None,
        json!({}),
    )
    .await?;

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

    step("The same callback replayed (a back button, an attacker) is refused");
    let (_, headers, _) = lambda.http("oauth-callback", &callback).await?;
    say(format!(
        "-> {}",
        headers["location"].as_str().unwrap_or("?")
    ));

    step("GET /connections lists the connection, without secrets");
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

    step("GET /connections/hubspot/pipelines reads the deal pipelines from HubSpot");
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

    step("PUT /connections/hubspot/settings saves the pipeline and the stage mapping");
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

    step("A Free-plan tenant asking for HubSpot is told which plan it needs");
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

    step("The lead pipeline qualifies a lead in WhatsApp and puts it on the lead queue (SQS)");
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
    // The message contract (docs/message-contract.md): the tenant is the message group.
    say(format!(
        "sent with MessageGroupId {tenant}: one tenant's burst cannot hold back the others (SQS fair queue)"
    ));

    step("lead-push receives the batch (as Lambda's SQS trigger would) and pushes it");
    let delivered = deliver(&lambda, &queues, 1).await?;
    say(delivered);
    print_crm(&browser, "hubspot", json!({})).await?;

    step("The same message delivered again (SQS is at-least-once): nothing is duplicated");
    queues.send(&message).await;
    say(deliver(&lambda, &queues, 1).await?);

    step("The lead moves on: won. The deal moves to the mapped stage; still one contact, one deal, one note");
    let won = message.replace("\"qualified\"", "\"won\"");
    queues.send(&won).await;
    say(deliver(&lambda, &queues, 1).await?);
    print_crm(&browser, "hubspot", json!({})).await?;

    step("A message that is not a lead goes to the DLQ with its reason, and the batch goes on");
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

    step("token-refresh runs on its schedule: the HubSpot token is due (as if 20 minutes had passed)");
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
    if !changed(&old.access_token, &new.access_token) {
        bail!("the scheduled refresh replaced no token: {summary}");
    }

    run_zoho(&lambda, &browser, &services).await?;
    run_freshsales(&lambda, &browser, &services).await?;
    run_salesforce(&lambda, &browser, &services).await?;
    run_google_sheets(&lambda, &browser).await?;
    run_bitrix24(&lambda, &browser).await?;
    run_status_back(&lambda, &browser, &services).await?;

    println!("\nDone: one lead each into HubSpot, Zoho, Freshsales, Salesforce, Google Sheets and Bitrix24, and what LeadRelay's app hears back.");
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
    println!("\nZoho CRM: tenant {tenant:?} ({plan} plan), whose Zoho account lives in the AU data centre");

    connect(lambda, browser, "zoho", (tenant, plan), None, json!({})).await?;
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

    connect(
        lambda,
        browser,
        "zoho, a forged accounts server",
        ("sydney-solar-2", plan),
        None,
        json!({}),
    )
    .await?;

    step("Settings: Zoho's Standard pipeline, the stage mapping, and conversion at `qualified`");
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

    step("A lead from Facebook, still being talked to (contacted), lands as a Zoho Lead with its note");
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
    print_crm(browser, "zoho", json!({})).await?;

    step("The lead qualifies: Zoho converts it into a Contact and a Deal in the mapped stage");
    queues.send(&lead("qualified")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_crm(browser, "zoho", json!({})).await?;
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

    step("A domain that is not Freshworks' is refused before the key is sent anywhere");
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

    step("A wrong key is tried with one cheap call, refused, and nothing is stored");
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

    step("Pipelines and stages come from the account; the mapping is saved with its ids");
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

    step("A WhatsApp lead lands: contact (lead source by the account's id), deal in the mapped stage, note");
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
    print_crm(browser, "freshsales", json!({ "host": host })).await?;
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
    println!(
        "\nSalesforce: tenant {tenant:?} ({plan} plan), whose org requires its My Domain login"
    );
    let authorize = |who: &'static str, plan: &'static str, body: Value| {
        ApiEvent::sample("connections-api/authorize.json")
            .provider("salesforce")
            .claims(who, plan)
            .body(body)
    };

    step("A Pro tenant asks for Salesforce: it is the Business plan's CRM");
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

    step("A login host that is not Salesforce's is refused before any state is stored");
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

    let pasted = "https://acme.lightning.force.com/lightning/page/home";
    connect(
        lambda,
        browser,
        "salesforce",
        (tenant, plan),
        Some(json!({ "my_domain": pasted })),
        json!({ "pasted": pasted }),
    )
    .await?;
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

    step("Settings: the org's opportunity stages, conversion at `qualified`, the score into a custom field");
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

    step("A lead whose email holds a quote lands: escaped SOQL finds no duplicate; Lead and Task in one composite");
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
    print_crm(browser, "salesforce", json!({})).await?;

    step("The lead qualifies: SOAP convertLead makes a Contact, an Account and an Opportunity in the mapped stage");
    queues.send(&lead("qualified")).await;
    say(deliver(lambda, &queues, 1).await?);
    print_crm(browser, "salesforce", json!({})).await?;
    Ok(())
}

/// A Free tenant connects Google Sheets, names its spreadsheet by URL, and leads become rows.
async fn run_google_sheets(lambda: &Lambda, browser: &reqwest::Client) -> Result<()> {
    let tenant = "souq-bakery";
    let plan = "free";
    let spreadsheet = std::env::var("GOOGLE_SHEETS_DEMO_SPREADSHEET")?;
    println!("\nGoogle Sheets: tenant {tenant:?} ({plan} plan: Sheets is its one destination)");

    connect(
        lambda,
        browser,
        "google_sheets",
        (tenant, plan),
        None,
        json!({}),
    )
    .await?;

    step("The tenant pastes its spreadsheet's address; the relay opens it with the connected account before saving");
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

    step("Two leads arrive, one with a name that would be a formula; then the first one changes");
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

    step("The sheet: a header, one row per lead (the first updated in place), nothing turned into a formula");
    print_crm(
        browser,
        "google_sheets",
        json!({ "spreadsheet": spreadsheet }),
    )
    .await?;
    Ok(())
}

/// A Pro tenant connects its Bitrix24 portal, picks the Wholesale category, and a lead becomes a
/// contact, a deal and a timeline comment; then the deal moves on.
async fn run_bitrix24(lambda: &Lambda, browser: &reqwest::Client) -> Result<()> {
    let tenant = "al-waha-trading";
    let plan = "pro";
    let portal = std::env::var("BITRIX24_DEMO_PORTAL")?;
    println!("\nBitrix24: tenant {tenant:?} ({plan} plan), portal {portal}");

    let pasted = format!("https://{portal}/crm/deal/kanban/");
    connect(
        lambda,
        browser,
        "bitrix24",
        (tenant, plan),
        Some(json!({ "portal": pasted })),
        json!({ "pasted": pasted, "portal": portal }),
    )
    .await?;
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

    step("Deal categories and stages for the setup page; the tenant picks Wholesale");
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

    step("A qualified lead arrives, then wins");
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

    step("The portal now holds one contact, one deal in Wholesale at WON, one comment");
    print_crm(browser, "bitrix24", json!({ "portal": portal })).await?;
    Ok(())
}

/// What LeadRelay's app hears back: the sync status of the first lead (as the setup page asks
/// for it), a connection whose grant HubSpot revoked turning `needs_reauth` at the next
/// scheduled refresh, and every lifecycle event the demo's flows published, as they arrived on
/// the queue a rule on the bus targets.
async fn run_status_back(
    lambda: &Lambda,
    browser: &reqwest::Client,
    services: &shared::Services,
) -> Result<()> {
    let (tenant, plan, lead) = ("acme-doha", "pro", "lead-0001");
    step("The setup page asks GET /leads/lead-0001/sync: where the lead is in each connected CRM, with links into the CRM");
    let (status, _, body) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/lead-sync.json")
                .claims(tenant, plan)
                .path("GET", &format!("/leads/{lead}/sync")),
        )
        .await?;
    if status != 200 {
        bail!("the sync status answered {status}: {body}");
    }
    for destination in body["destinations"].as_array().into_iter().flatten() {
        tell(&SYNC_STATUS.destination, destination);
        for record in destination["records"].as_array().into_iter().flatten() {
            tell(&SYNC_STATUS.record, record);
        }
    }
    let pushed_with_links = body["destinations"].as_array().is_some_and(|d| {
        d.iter().any(|d| {
            d["status"] == "pushed"
                && d["records"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["url"].is_string()))
        })
    });
    if !pushed_with_links {
        bail!("lead-0001 shows no pushed CRM with a record link: {body}");
    }

    step("A HubSpot portal admin uninstalls the app, which revokes the grant; the next scheduled refresh finds out");
    let tenant_id = TenantId::parse(tenant)?;
    let before = services
        .store
        .get_connection(&tenant_id, Provider::Hubspot)
        .await?
        .context("connection")?;
    let credentials = services
        .vault
        .open(&tenant_id, Provider::Hubspot, &before.credentials)
        .await?;
    use secrecy::ExposeSecret;
    let refresh_token = credentials
        .refresh_token
        .as_ref()
        .context("no refresh token")?
        .expose_secret()
        .to_string();
    // HubSpot's side of the uninstall, on the simulator: its revoke endpoint, called with the
    // app's credentials (the simulator's defaults, which the demo's app secret holds too).
    let app = relay_tests::sim::HubSpotSimConfig::default();
    let revoked = browser
        .post(format!(
            "{}{}",
            std::env::var("HUBSPOT_ENDPOINT_URL")?,
            relay_tests::sim::hubspot::REVOKE_PATH
        ))
        .form(&[
            ("token", refresh_token.as_str()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ])
        .send()
        .await?;
    say(format!(
        "HubSpot revoked the refresh token: {}",
        revoked.status()
    ));
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
    let summary = lambda
        .invoke(
            "token-refresh",
            &relay_tests::events::load("token-refresh/schedule.json"),
        )
        .await?;
    say(format!("token-refresh -> {summary}"));
    let (_, _, listed) = lambda
        .http(
            "connections-api",
            &ApiEvent::sample("connections-api/list.json").claims(tenant, plan),
        )
        .await?;
    let hubspot = listed["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["provider"] == "hubspot")
        .context("hubspot in GET /connections")?;
    say(format!(
        "GET /connections: hubspot is {}: {}",
        hubspot["status"].as_str().unwrap_or("?"),
        hubspot["last_error"]["message"].as_str().unwrap_or("-")
    ));
    if hubspot["status"] != "needs_reauth" {
        bail!("the revoked connection is not needs_reauth: {hubspot}");
    }

    step("Lifecycle events on EventBridge, as LeadRelay's app receives them (moto delivers to the queue a rule on the bus targets)");
    let queue =
        std::env::var("LIFECYCLE_EVENTS_QUEUE_URL").context("LIFECYCLE_EVENTS_QUEUE_URL")?;
    let aws = relay_tests::aws::local_config().await?;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .send()
            .await?;
        let messages = batch.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let event: Value = serde_json::from_str(message.body().unwrap_or("{}"))?;
            let kind = event["detail-type"].as_str().unwrap_or("?").to_string();
            match EVENT_LINES.iter().find(|l| l.detail_type == kind) {
                Some(line) => say(render(line.says, &event, &event)),
                None => say(format!("{kind}: {}", event["detail"])),
            }
            seen.insert(kind);
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await?;
        }
    }
    for expected in [
        "Connection Connected",
        "Lead Pushed",
        "Lead Dead-Lettered",
        "Connection Needs Reauth",
    ] {
        if !seen.contains(expected) {
            bail!("no {expected:?} event arrived (saw {seen:?})");
        }
    }
    Ok(())
}

/// Receives what is on the queue, invokes lead-push with it as an SQS event, and deletes what
/// the function settled: what Lambda's event source mapping does.
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

// ---------------------------------------------------------------------------------------------
// The steps every provider goes through in the same shape, as data: the connect flow
// (authorize -> simulated consent -> callback) and a CRM's records as they stand in its
// simulator. One function drives each table; a provider's own steps stay code above.
//
// Lines are templates over a JSON value: `{a.b.0.c}` is that field (a string as is, absent or
// null as empty, anything else as JSON); `{path|x}` prints `x` when it is absent; filters:
// `{path:json}` the value as JSON (strings quoted), `{path:oneline}` / `{path:lines}` line breaks
// as spaces / " / ", `{path:html}` the text between the tags, `{path:if=TEXT}` TEXT when the value
// is `true`; `{path@list.field}` looks the value up by `id` in the record list `list` of the
// whole state and prints that record's `field`.

/// One beat of a flow: its step title (none: it continues the step before) and what it prints.
struct Beat {
    title: Option<&'static str>,
    says: &'static [&'static str],
}

/// A connect flow. Template values: authorize `{status, origin, path, q.<query>, body.<answer>}`
/// plus the caller's variables; consent `{path, back.<query>}` (the redirect to the callback);
/// callback `{status, location}`.
struct ConnectSteps {
    name: &'static str,
    provider: &'static str,
    authorize: Beat,
    /// Appended to the authorize URL: what the simulator's consent screen is told (who signs in).
    consent_query: &'static str,
    consent: Beat,
    callback: Beat,
}

const SILENT: Beat = Beat {
    title: None,
    says: &[],
};

static CONNECT_STEPS: &[ConnectSteps] = &[
    ConnectSteps {
        name: "hubspot",
        provider: "hubspot",
        authorize: Beat {
            title: Some("The setup page asks connections-api for a HubSpot authorize URL"),
            says: &[
                "{status} -> {origin}{path}",
                "scopes: {q.scope|-}; PKCE: {q.code_challenge_method|none}; state: single use, stored hashed, expires {body.expires_at|?}",
            ],
        },
        consent_query: "",
        consent: Beat {
            title: Some("The user consents at HubSpot (simulated), which redirects the browser to the callback"),
            says: &["redirected to {path} with a code and the state"],
        },
        callback: Beat {
            title: Some("oauth-callback consumes the state, exchanges the code and keeps the tokens pending for the user who started"),
            says: &["{status} -> {location|?}"],
        },
    },
    ConnectSteps {
        name: "zoho",
        provider: "zoho",
        authorize: Beat {
            title: Some("The setup page asks for a Zoho authorize URL"),
            says: &[
                "{status} -> https://accounts.zoho.com{path} (always the US accounts server; Zoho sends the user on)",
                "access_type={q.access_type|-}, prompt={q.prompt|-} (else no refresh token), PKCE {q.code_challenge_method|none}, scopes: {q.scope|-}",
            ],
        },
        // `sim_dc` is the simulator's stand-in for where the user's account lives.
        consent_query: "&sim_dc=au",
        consent: Beat {
            title: Some("The user signs in at Zoho; Zoho redirects back naming the user's data centre"),
            says: &["location={back.location}", "accounts-server={back.accounts-server}"],
        },
        callback: Beat {
            title: Some("oauth-callback exchanges the code at accounts.zoho.com.au and stores the connection"),
            says: &["{status} -> {location|?}"],
        },
    },
    ConnectSteps {
        name: "zoho, a forged accounts server",
        provider: "zoho",
        authorize: Beat {
            title: Some("A callback naming an accounts server that is not Zoho's is refused before any code is sent"),
            says: &[],
        },
        consent_query: "&sim_dc=au&sim_accounts_server=https://accounts.zoho.com.evil.example",
        consent: SILENT,
        callback: Beat {
            title: None,
            says: &["-> {location|?}"],
        },
    },
    ConnectSteps {
        name: "salesforce",
        provider: "salesforce",
        authorize: Beat {
            title: Some("The admin pastes the Lightning address; the consent goes to the org's My Domain, with PKCE"),
            says: &["{pasted}\n      -> https://acme.my.salesforce.com{path} (locally: the simulator), scopes {q.scope:json|\"-\"}, PKCE {q.code_challenge_method|none}"],
        },
        consent_query: "&sim_org=acme",
        consent: SILENT,
        callback: Beat {
            title: None,
            says: &["callback {status} -> {location|?}"],
        },
    },
    ConnectSteps {
        name: "google_sheets",
        provider: "google_sheets",
        authorize: Beat {
            title: Some("The setup page asks for a Google authorize URL: offline access, PKCE, the spreadsheets scope only"),
            says: &["{status} -> https://accounts.google.com{path}: scope {q.scope|-}, access_type={q.access_type|-}, prompt={q.prompt|-}, PKCE {q.code_challenge_method|none}"],
        },
        consent_query: "&sim_user=owner@souq-bakery.example",
        consent: SILENT,
        callback: Beat {
            title: None,
            says: &["callback {status} -> {location|?}"],
        },
    },
    ConnectSteps {
        name: "bitrix24",
        provider: "bitrix24",
        authorize: Beat {
            title: Some("The setup page sends the portal's address as the browser shows it; the consent is on that portal"),
            says: &["{pasted}\n      -> {status}: https://{portal}{path} (locally: the simulator)"],
        },
        consent_query: "&sim_portal={portal}",
        consent: SILENT,
        callback: Beat {
            title: None,
            says: &["callback {status} -> {location|?}"],
        },
    },
];

/// How the sync status answer prints: a line per connected CRM, a line per record.
struct SyncStatusLines {
    destination: Beat,
    record: Beat,
}

static SYNC_STATUS: SyncStatusLines = SyncStatusLines {
    destination: Beat {
        title: None,
        says: &["{provider}: {status} at {at|-} {reason|}{will_retry:if=(will retry)}"],
    },
    record: Beat {
        title: None,
        says: &["   {kind} {id}: {url|(no page of its own)}"],
    },
};

/// One line per lifecycle event as delivered (the EventBridge envelope; the detail under
/// `detail`), by detail-type (docs/events.md).
struct EventLine {
    detail_type: &'static str,
    says: &'static str,
}

static EVENT_LINES: &[EventLine] = &[
    EventLine {
        detail_type: "Connection Connected",
        says: "{time} {detail-type}: {detail.tenant_id} connected {detail.provider}{detail.reconnect:if= (a reconnect)}",
    },
    EventLine {
        detail_type: "Connection Needs Reauth",
        says: "{time} {detail-type}: {detail.tenant_id}'s {detail.provider} since {detail.since}: {detail.reason}",
    },
    EventLine {
        detail_type: "Connection Suspended",
        says: "{time} {detail-type}: {detail.tenant_id}'s {detail.provider} since {detail.since}: {detail.reason}",
    },
    EventLine {
        detail_type: "Connection Disconnected",
        says: "{time} {detail-type}: {detail.tenant_id} disconnected {detail.provider}",
    },
    EventLine {
        detail_type: "Lead Pushed",
        says: "{time} {detail-type}: {detail.tenant_id}'s {detail.lead_id} to {detail.provider}: {detail.records:json}; first link {detail.links.0.url|-}",
    },
    EventLine {
        detail_type: "Lead Failed",
        says: "{time} {detail-type}: {detail.tenant_id}'s {detail.lead_id} at {detail.providers:json}, attempt {detail.attempt}: {detail.reason}",
    },
    EventLine {
        detail_type: "Lead Dead-Lettered",
        says: "{time} {detail-type}: lead {detail.lead_id|-} of {detail.tenant_id|-}: {detail.reason}",
    },
];

/// Runs the connect flow `name` of [`CONNECT_STEPS`] for a tenant: asks connections-api for the
/// authorize URL (with `body`, if any), lets the browser through the simulated consent, and
/// hands what it was sent back with to oauth-callback. `vars` are extra template values (what
/// was pasted, the portal). Returns the callback event, for a replay.
async fn connect(
    lambda: &Lambda,
    browser: &reqwest::Client,
    name: &str,
    (tenant, plan): (&str, &str),
    body: Option<Value>,
    vars: Value,
) -> Result<ApiEvent> {
    let flow = CONNECT_STEPS
        .iter()
        .find(|f| f.name == name)
        .with_context(|| format!("no connect steps named {name:?}"))?;
    let mut event = ApiEvent::sample("connections-api/authorize.json")
        .provider(flow.provider)
        .claims(tenant, plan);
    if let Some(body) = body {
        event = event.body(body);
    }
    let (status, _, answer) = lambda.http("connections-api", &event).await?;
    if status != 200 {
        bail!("authorize answered {status}: {answer}");
    }
    let url = url::Url::parse(answer["authorize_url"].as_str().context("authorize_url")?)?;
    let query: serde_json::Map<String, Value> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut seen = json!({
        "status": status,
        "origin": url.origin().ascii_serialization(),
        "path": url.path(),
        "q": query,
        "body": answer,
    });
    merge(&mut seen, &vars);
    tell(&flow.authorize, &seen);

    let consent_url = format!("{url}{}", render(flow.consent_query, &vars, &vars));
    let consent = browser.get(consent_url).send().await?;
    let back = url::Url::parse(
        consent
            .headers()
            .get("location")
            .context("the consent screen did not redirect")?
            .to_str()?,
    )?;
    let pairs: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let back_query: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    tell(
        &flow.consent,
        &json!({"path": back.path(), "back": back_query}),
    );

    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let callback = ApiEvent::sample("oauth-callback/callback.json")
        .provider(flow.provider)
        .query(&pairs);
    let (status, headers, _) = lambda.http("oauth-callback", &callback).await?;
    tell(
        &flow.callback,
        &json!({"status": status, "location": headers["location"]}),
    );
    // The callback kept the consent pending; the setup page completes it with the JWT of the
    // user who started it (the sample's `sub`), as only that user can.
    let location = url::Url::parse(headers["location"].as_str().unwrap_or_default())?;
    if let Some((_, code)) = location.query_pairs().find(|(k, _)| k == "completion_code") {
        let complete = ApiEvent::sample("connections-api/complete.json")
            .provider(flow.provider)
            .claims(tenant, plan)
            .body(json!({ "completion_code": code }));
        let (status, _, answer) = lambda.http("connections-api", &complete).await?;
        say(format!(
            "the setup page posts the completion code with the same user's JWT: {status} {}",
            answer["status"].as_str().unwrap_or("?")
        ));
    }
    Ok(callback)
}

/// Prints a beat: its step title, if it starts a step, and its lines.
fn tell(beat: &Beat, values: &Value) {
    if let Some(title) = beat.title {
        step(title);
    }
    for line in beat.says {
        say(render(line, values, values));
    }
}

/// A CRM's records as its simulator holds them: where its state is read, and how each kind of
/// record is printed.
struct CrmView {
    provider: &'static str,
    /// The environment variable naming the simulator's base URL.
    base_env: &'static str,
    /// The `/_sim/state` query (a template over the caller's variables): which account.
    query: &'static str,
    shows: &'static [Show],
}

enum Show {
    /// One line per record of the list at this path.
    Each(&'static str, &'static str),
    /// One line with `{count}`: how many entries the list at this path has.
    Count(&'static str, &'static str),
    /// The whole state, as indented JSON.
    Everything,
}

static CRM_VIEWS: &[CrmView] = &[
    CrmView {
        provider: "hubspot",
        base_env: "HUBSPOT_ENDPOINT_URL",
        query: "",
        shows: &[
            Show::Each("contacts", "HubSpot contact {id|?}: {properties.firstname} {properties.lastname} <{properties.email}> {properties.phone}"),
            Show::Each("deals", "HubSpot deal {id|?}: {properties.dealname:json|\"\"} in pipeline {properties.pipeline}, stage {properties.dealstage}"),
            Show::Each("notes", "HubSpot note {id|?}: {properties.hs_note_body:html}"),
            Show::Count("associations", "associations: {count}"),
        ],
    },
    CrmView {
        provider: "zoho",
        base_env: "ZOHO_ENDPOINT_URL",
        query: "?dc=au",
        shows: &[
            Show::Each("leads", "Zoho (AU) lead {id}: {First_Name} {Last_Name} <{Email}> {Phone}, source {Lead_Source}{$converted:if=, converted}"),
            Show::Each("contacts", "Zoho (AU) contact {id}: {First_Name} {Last_Name} <{Email}>"),
            Show::Each("deals", "Zoho (AU) deal {id}: {Deal_Name:json|\"\"} in {Pipeline}, stage {Stage}, closing {Closing_Date}"),
            Show::Each("notes", "Zoho (AU) note {id} on {Parent_Id.module.api_name|?} {Parent_Id.id|?}: {Note_Content:oneline}"),
        ],
    },
    CrmView {
        provider: "freshsales",
        base_env: "FRESHSALES_ENDPOINT_URL",
        query: "?host={host}",
        shows: &[
            Show::Each("contacts", "Freshsales contact {id:json}: {first_name} {last_name} <{email}> {mobile_number}, lead source {lead_source_id:json} ({lead_source_id@lead_sources.name|-}), lead score {lead_score:json}"),
            Show::Each("deals", "Freshsales deal {id:json}: {name:json|\"\"} in pipeline {deal_pipeline_id:json}, stage {deal_stage_id:json}, contacts {contact_ids:json}"),
            Show::Each("notes", "Freshsales note {id:json} on {targetable_type|?} {targetable_id:json}: {description:oneline}"),
        ],
    },
    CrmView {
        provider: "salesforce",
        base_env: "SALESFORCE_ENDPOINT_URL",
        query: "?org=acme",
        shows: &[
            Show::Each("records.Lead", "Salesforce Lead {Id|?}: FirstName={FirstName:oneline}, LastName={LastName:oneline}, Email={Email:oneline}, Phone={Phone:oneline}, Company={Company:oneline}, Rating={Rating:oneline}, LeadRelay_Score__c={LeadRelay_Score__c:oneline}, LeadRelay_Id__c={LeadRelay_Id__c:oneline}, IsConverted={IsConverted:oneline}"),
            Show::Each("records.Contact", "Salesforce Contact {Id|?}: FirstName={FirstName:oneline}, LastName={LastName:oneline}, AccountId={AccountId:oneline}"),
            Show::Each("records.Opportunity", "Salesforce Opportunity {Id|?}: Name={Name:oneline}, StageName={StageName:oneline}, CloseDate={CloseDate:oneline}"),
            Show::Each("records.Task", "Salesforce Task {Id|?}: WhoId={WhoId:oneline}, Subject={Subject:oneline}, Status={Status:oneline}, Description={Description:oneline}"),
        ],
    },
    CrmView {
        provider: "google_sheets",
        base_env: "GOOGLE_SHEETS_ENDPOINT_URL",
        query: "?spreadsheet={spreadsheet}",
        shows: &[Show::Everything],
    },
    CrmView {
        provider: "bitrix24",
        base_env: "BITRIX24_ENDPOINT_URL",
        query: "?portal={portal}",
        shows: &[
            Show::Each("contacts", "contact {ID:json}: {NAME} {LAST_NAME}, phone {PHONE.0.VALUE:json}, email {EMAIL.0.VALUE:json}"),
            Show::Each("deals", "deal {ID:json}: {TITLE:json|\"\"}, category {CATEGORY_ID:json}, stage {STAGE_ID:json}, contact {CONTACT_ID:json}"),
            Show::Each("comments", "comment on {ENTITY_TYPE|?} {ENTITY_ID|?}: {COMMENT:lines|?}"),
        ],
    },
];

/// Prints what `provider`'s simulator now holds, as its [`CRM_VIEWS`] entry says. `vars` fill
/// the state query (which host, spreadsheet or portal).
async fn print_crm(browser: &reqwest::Client, provider: &str, vars: Value) -> Result<()> {
    let view = CRM_VIEWS
        .iter()
        .find(|v| v.provider == provider)
        .with_context(|| format!("no view of {provider}"))?;
    let base = std::env::var(view.base_env).with_context(|| view.base_env)?;
    let state: Value = browser
        .get(format!(
            "{base}/_sim/state{}",
            render(view.query, &vars, &vars)
        ))
        .send()
        .await?
        .json()
        .await?;
    for show in view.shows {
        match show {
            Show::Each(list, line) => {
                for record in lookup(&state, list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    say(render(line, record, &state));
                }
            }
            Show::Count(list, line) => {
                let count = lookup(&state, list)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                say(render(line, &json!({ "count": count }), &state));
            }
            Show::Everything => say(serde_json::to_string_pretty(&state)?.replace('\n', "\n   ")),
        }
    }
    Ok(())
}

/// The value at a dotted path (`a.b.0.c`: object keys and array indexes).
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(key),
    })
}

/// Fills a line template (see the top of this section) from `values`; `root` is what
/// `{path@list.field}` looks records up in.
fn render(template: &str, values: &Value, root: &Value) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&placeholder(&rest[open + 1..open + close], values, root));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn placeholder(spec: &str, values: &Value, root: &Value) -> String {
    let (spec, default) = match spec.rsplit_once('|') {
        Some((spec, default)) => (spec, Some(default)),
        None => (spec, None),
    };
    let (path, filter) = spec.split_once(':').unwrap_or((spec, ""));
    let (path, join) = match path.split_once('@') {
        Some((path, join)) => (path, Some(join)),
        None => (path, None),
    };
    let mut value = lookup(values, path);
    if let (Some(key), Some((list, field))) = (value, join.and_then(|j| j.rsplit_once('.'))) {
        value = lookup(root, list)
            .and_then(Value::as_array)
            .and_then(|records| records.iter().find(|r| &r["id"] == key))
            .and_then(|r| r.get(field));
    }
    let absent = value.is_none_or(Value::is_null);
    if let Some(text) = filter.strip_prefix("if=") {
        return if value == Some(&Value::Bool(true)) {
            text.to_string()
        } else {
            String::new()
        };
    }
    if absent && (default.is_some() || filter != "json") {
        return default.unwrap_or("").to_string();
    }
    let value = value.unwrap_or(&Value::Null);
    let text = match (filter, value) {
        ("json", v) => return v.to_string(),
        (_, Value::String(s)) => s.clone(),
        (_, v) => v.to_string(),
    };
    match filter {
        "oneline" => text.replace('\n', " "),
        "lines" => text.replace('\n', " / "),
        "html" => {
            let between_tags: Vec<&str> = text
                .split(['<', '>'])
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, t)| t)
                .collect();
            between_tags
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => text,
    }
}

/// Adds the keys of `extra` (an object) to `into` (an object).
fn merge(into: &mut Value, extra: &Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            into.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(template: &str, values: Value) -> String {
        render(template, &values, &values)
    }

    #[test]
    fn a_field_prints_as_text_a_number_as_json_and_an_absent_one_as_its_default() {
        let record = json!({"name": "Hala", "score": 71, "tags": ["a"], "gone": null});
        assert_eq!(
            line("{name} {score} {tags}", record.clone()),
            "Hala 71 [\"a\"]"
        );
        assert_eq!(line("<{gone}><{missing}>", record.clone()), "<><>");
        assert_eq!(line("{missing|?} {gone|-}", record), "? -");
    }

    #[test]
    fn json_quotes_strings_and_shows_an_absent_value_as_null_unless_told_otherwise() {
        let record = json!({"title": "Deal \"A\"", "id": "1"});
        assert_eq!(
            line("{title:json} {id:json}", record.clone()),
            r#""Deal \"A\"" "1""#
        );
        assert_eq!(line("{missing:json}", record.clone()), "null");
        assert_eq!(line("{missing:json|\"\"}", record), "\"\"");
    }

    #[test]
    fn paths_reach_into_objects_and_arrays() {
        let record = json!({"PHONE": [{"VALUE": "+97466007788"}], "p": {"q": {"r": "deep"}}});
        assert_eq!(
            line("{PHONE.0.VALUE} {p.q.r} {PHONE.1.VALUE|none}", record),
            "+97466007788 deep none"
        );
    }

    #[test]
    fn filters_flatten_lines_strip_tags_and_print_a_flag() {
        let record = json!({
            "text": "one\ntwo",
            "body": "<p><b>Summary</b></p><br>Wants   a demo.<br>Lead: l-1",
            "done": true,
            "open": false
        });
        assert_eq!(
            line("{text:oneline} | {text:lines}", record.clone()),
            "one two | one / two"
        );
        assert_eq!(
            line("{body:html}", record.clone()),
            "Summary Wants a demo. Lead: l-1"
        );
        assert_eq!(
            line(
                "x{done:if=, done}{open:if=, open}{missing:if=, missing}",
                record
            ),
            "x, done"
        );
    }

    #[test]
    fn a_join_looks_the_value_up_by_id_in_a_list_of_the_whole_state() {
        let state =
            json!({"lead_sources": [{"id": 6, "name": "Web"}, {"id": 7, "name": "WhatsApp"}]});
        let contact = json!({"lead_source_id": 7, "other_id": 9});
        assert_eq!(
            render("{lead_source_id@lead_sources.name|-}", &contact, &state),
            "WhatsApp"
        );
        assert_eq!(
            render("{other_id@lead_sources.name|-}", &contact, &state),
            "-"
        );
    }

    #[test]
    fn every_lifecycle_event_kind_has_one_line() {
        for (detail_type, _) in shared::events::KINDS {
            let lines = EVENT_LINES
                .iter()
                .filter(|l| l.detail_type == detail_type)
                .count();
            assert_eq!(lines, 1, "{detail_type}");
        }
        assert_eq!(EVENT_LINES.len(), shared::events::KINDS.len());
    }

    #[test]
    fn every_flow_and_view_has_its_own_name_and_every_provider_a_view() {
        let mut names: Vec<&str> = CONNECT_STEPS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CONNECT_STEPS.len());
        for provider in Provider::ALL {
            let views = CRM_VIEWS
                .iter()
                .filter(|v| v.provider == provider.slug())
                .count();
            assert_eq!(views, 1, "{provider:?}");
        }
    }
}
