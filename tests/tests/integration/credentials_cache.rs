//! Opened credentials cached per warm container (`shared::vault`): KMS `Decrypt` requests are
//! counted by an interceptor on the real KMS client (`relay_tests::aws_calls`), answered by
//! moto as ever.

use relay_tests::aws_calls::counted_services;
use relay_tests::context::TestContext;
use relay_tests::queue::lead_message;
use serde_json::json;
use shared::connections::open_session;
use shared::identity::TenantId;
use shared::push::{process_message, InboundMessage};
use shared::Provider;

const DECRYPT: &str = "TrentService.Decrypt";

#[tokio::test]
async fn ten_pushes_of_one_tenant_decrypt_its_credentials_once() {
    let ctx = TestContext::new().await;
    let who = relay_tests::setup::hubspot(&ctx)
        .await
        .expect("a connected HubSpot tenant");
    // A warm container of its own: its cache starts empty.
    let (services, calls) = counted_services(&ctx);
    for n in 0..10 {
        let lead = json!({"id": format!("lead-cache-{n}"), "name": "Fatima Al-Kuwari",
                          "email": format!("cache-{n}@example.qa"), "country": "QA",
                          "source": "whatsapp", "score": 82, "stage": "qualified"});
        let message = InboundMessage {
            message_id: format!("m-{n}"),
            body: lead_message(&who.tenant, who.plan, lead, Some("Wants 12 seats")),
            receive_count: 1,
            ..Default::default()
        };
        let outcome = process_message(&services, &message).await;
        assert!(outcome.is_settled(), "push {n}: {outcome:?}");
    }
    let seen = calls.take();
    let decrypts = seen.iter().filter(|c| c.as_str() == DECRYPT).count();
    println!(
        "10 pushes, one per invocation: {} AWS calls ({:.1} per lead), {decrypts} KMS Decrypt",
        seen.len(),
        seen.len() as f64 / 10.0
    );
    assert_eq!(decrypts, 1, "one Decrypt per tenant and token lifetime");
    assert_eq!(services.vault.cache().len(), 1);
}

#[tokio::test]
async fn a_refused_credential_is_dropped_from_the_cache() {
    let ctx = TestContext::new().await;
    let host = "cache-drop.myfreshworks.com";
    let who = relay_tests::setup::freshsales(&ctx, host)
        .await
        .expect("a connected Freshsales tenant");
    let tenant = TenantId::parse(&who.tenant).expect("tenant");
    let (services, _calls) = counted_services(&ctx);
    let freshsales = shared::provider::for_provider(Provider::Freshsales).expect("freshsales");
    let mut open = open_session(&services, &tenant, Provider::Freshsales)
        .await
        .expect("open");
    open.call(&mut (), |session, _| freshsales.get_pipelines(session))
        .await
        .expect("the key works");
    assert_eq!(services.vault.cache().len(), 1);
    // The tenant revokes the key at Freshsales: the next call is answered 401.
    ctx.freshsales.revoke_key(host);
    let refused = open
        .call(&mut (), |session, _| freshsales.get_pipelines(session))
        .await;
    assert!(refused.is_err(), "a revoked key is refused");
    assert!(
        services.vault.cache().is_empty(),
        "the refused credentials are no longer served from the cache"
    );
}
