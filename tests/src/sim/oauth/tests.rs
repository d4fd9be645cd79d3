//! The shared OAuth server's tests, run once over every provider's table.
//! Each provider's HTTP tests (its routes and error dialect) stay in its own
//! folder; what is the same for every provider is asserted here.

use std::time::Duration;

use serde_json::Value;

use super::testkit::{self, str_of};
use super::*;
use crate::sim::{bitrix, google, hubspot, salesforce, zoho};
use crate::sim::{BitrixSimConfig, HubSpotSimConfig, SalesforceSimConfig, ZohoSimConfig};
use crate::sim::{GoogleSim, GoogleSimConfig, HubSpotSim, SalesforceSim, ZohoSim};

const CLIENT: &str = "client-1";
const REDIRECT: &str = "https://relay.example.test/oauth/callback";

/// Every OAuth provider's table, under the name the failures print.
fn tables() -> Vec<(&'static str, OAuthPolicy)> {
    let hubspot_with = |rotation| {
        hubspot::oauth_policy(&HubSpotSimConfig {
            rotation,
            ..HubSpotSimConfig::default()
        })
    };
    let salesforce_with = |rotation| {
        salesforce::oauth_policy(&SalesforceSimConfig {
            rotation,
            ..SalesforceSimConfig::default()
        })
    };
    let zoho_with = |rotation| {
        zoho::oauth_policy(&ZohoSimConfig {
            rotation,
            ..ZohoSimConfig::default()
        })
    };
    vec![
        ("hubspot", hubspot_with(Rotation::Reusable)),
        ("hubspot rotating", hubspot_with(Rotation::Rotating)),
        (
            "hubspot rotating, reuse revokes",
            hubspot_with(Rotation::RotatingReuseRevokesGrant),
        ),
        (
            "salesforce",
            salesforce_with(Rotation::RotatingReuseRevokesGrant),
        ),
        (
            "salesforce without rotation",
            salesforce_with(Rotation::Reusable),
        ),
        ("google", google::oauth_policy()),
        ("zoho", zoho_with(Rotation::Reusable)),
        ("zoho rotating", zoho_with(Rotation::Rotating)),
        (
            "zoho rotating, reuse revokes",
            zoho_with(Rotation::RotatingReuseRevokesGrant),
        ),
        (
            "bitrix24",
            bitrix::oauth_policy(&BitrixSimConfig::default()),
        ),
    ]
}

/// Every table, and every table again under each rotation rule: the rules
/// hold whatever else a provider's table says.
fn tables_under_every_rotation() -> Vec<(String, OAuthPolicy)> {
    let rotations = [
        Rotation::Reusable,
        Rotation::Rotating,
        Rotation::RotatingReuseRevokesGrant,
        Rotation::SingleUse {
            lifetime: Duration::from_secs(3600),
        },
    ];
    let mut out = Vec::new();
    for (name, policy) in tables() {
        for rotation in rotations {
            let policy = OAuthPolicy {
                rotation,
                ..policy.clone()
            };
            out.push((format!("{name} under {rotation:?}"), policy));
        }
    }
    out
}

fn verifier() -> String {
    "v".repeat(43) + "-._~0123456789"
}

fn server(policy: &OAuthPolicy) -> OAuthServer<&'static str> {
    OAuthServer::new(policy.clone())
}

/// A code for `subject`, with the S256 challenge of [`verifier`] unless the
/// provider does not do PKCE.
fn code_for(server: &mut OAuthServer<&'static str>, subject: &'static str) -> String {
    let challenge =
        (server.policy().pkce != Pkce::NotSupported).then(|| s256_challenge(&verifier()));
    server.issue_code(CodeRequest {
        client_id: CLIENT.to_owned(),
        redirect_uri: REDIRECT.to_owned(),
        challenge,
        scopes: vec!["read".to_owned(), "write".to_owned()],
        subject,
        with_refresh: true,
    })
}

fn redeem<'a>(code: &'a str, verifier: &'a str) -> Redemption<'a> {
    Redemption {
        code,
        client_id: CLIENT,
        redirect_uri: REDIRECT,
        verifier,
    }
}

fn connect(server: &mut OAuthServer<&'static str>, subject: &'static str) -> Issued<&'static str> {
    let code = code_for(server, subject);
    server
        .exchange_code(redeem(&code, &verifier()))
        .expect("a fresh code with the right verifier is redeemed")
}

#[test]
fn a_code_is_redeemed_once_and_a_failed_attempt_burns_it() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let code = code_for(&mut server, "alice");
        let issued = server.exchange_code(redeem(&code, &verifier())).unwrap();
        assert_eq!(issued.subject, "alice", "{name}");
        assert_eq!(issued.scopes, ["read", "write"], "{name}");
        assert!(issued.refresh_token.is_some(), "{name}");
        assert_eq!(
            server.exchange_code(redeem(&code, &verifier())),
            Err(OAuthFailure::CodeUnknown),
            "{name}: single use"
        );
        assert_eq!(server.live_refresh_tokens(|_| true).len(), 1, "{name}");

        // Another redirect_uri, then the right one: the first attempt burnt the code.
        let code = code_for(&mut server, "alice");
        let right = verifier();
        let mut wrong = redeem(&code, &right);
        wrong.redirect_uri = "https://evil.example.test/cb";
        assert_eq!(
            server.exchange_code(wrong),
            Err(OAuthFailure::RedirectMismatch),
            "{name}"
        );
        assert_eq!(
            server.exchange_code(redeem(&code, &verifier())),
            Err(OAuthFailure::CodeUnknown),
            "{name}: burnt"
        );

        // Another client.
        let code = code_for(&mut server, "alice");
        let right = verifier();
        let mut wrong = redeem(&code, &right);
        wrong.client_id = "client-2";
        assert_eq!(
            server.exchange_code(wrong),
            Err(OAuthFailure::ClientMismatch),
            "{name}"
        );

        // The provider's own refusal of the subject.
        let code = code_for(&mut server, "alice");
        assert_eq!(
            server.exchange_code_with(redeem(&code, &verifier()), |s| *s != "alice"),
            Err(OAuthFailure::SubjectRefused),
            "{name}"
        );
        assert_eq!(server.live_refresh_tokens(|_| true).len(), 1, "{name}");
    }
}

#[test]
fn an_expired_code_is_refused() {
    for (name, policy) in tables() {
        // Bitrix24's codes live shortest, 30 s.
        assert!(policy.code_lifetime >= Duration::from_secs(30), "{name}");
        let mut server = server(&policy);
        let code = code_for(&mut server, "alice");
        server.expire_codes();
        assert_eq!(
            server.exchange_code(redeem(&code, &verifier())),
            Err(OAuthFailure::CodeExpired),
            "{name}"
        );
        // A code issued after the expiry is not affected.
        connect(&mut server, "alice");
    }
}

#[test]
fn pkce_is_checked_as_the_table_says() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let code = code_for(&mut server, "alice");
        let missing = server.exchange_code(redeem(&code, ""));
        let code = code_for(&mut server, "alice");
        let other_verifier = "w".repeat(43);
        let wrong = server.exchange_code(redeem(&code, &other_verifier));
        let code = code_for(&mut server, "alice");
        let malformed = server.exchange_code(redeem(&code, "short"));
        match policy.pkce {
            Pkce::RequiredS256 | Pkce::Optional => {
                assert_eq!(missing, Err(OAuthFailure::VerifierMissing), "{name}");
                assert_eq!(wrong, Err(OAuthFailure::VerifierMismatch), "{name}");
                assert_eq!(malformed, Err(OAuthFailure::VerifierMismatch), "{name}");
            }
            Pkce::NotSupported => {
                assert!(
                    missing.is_ok() && wrong.is_ok() && malformed.is_ok(),
                    "{name}"
                );
            }
        }
        // A code issued without a challenge.
        let code = server.issue_code(CodeRequest {
            client_id: CLIENT.to_owned(),
            redirect_uri: REDIRECT.to_owned(),
            challenge: None,
            scopes: Vec::new(),
            subject: "alice",
            with_refresh: true,
        });
        let result = server.exchange_code(redeem(&code, ""));
        match policy.pkce {
            Pkce::RequiredS256 => {
                assert_eq!(result, Err(OAuthFailure::VerifierMissing), "{name}")
            }
            Pkce::Optional | Pkce::NotSupported => assert!(result.is_ok(), "{name}"),
        }
    }
}

#[test]
fn refresh_follows_the_rotation_rule() {
    for (name, policy) in tables_under_every_rotation() {
        let mut server = server(&policy);
        let first = connect(&mut server, "alice");
        let original = first.refresh_token.clone().unwrap();
        let second = server.refresh(&original, CLIENT).unwrap();
        assert_ne!(second.access_token, first.access_token, "{name}");
        assert_eq!(second.scopes, first.scopes, "{name}");
        assert_eq!(second.subject, "alice", "{name}");
        let current = second.refresh_token.clone().unwrap();
        assert!(server.refresh_live(&current), "{name}");
        assert_eq!(
            server.live_refresh_tokens(|_| true),
            vec![current.clone()],
            "{name}"
        );
        match policy.rotation {
            Rotation::Reusable => {
                assert!(!second.rotated, "{name}");
                assert_eq!(current, original, "{name}");
                // The same token keeps working, and so do earlier access tokens.
                server.refresh(&original, CLIENT).unwrap();
                assert_eq!(
                    server.check_access(&first.access_token),
                    Ok("alice"),
                    "{name}"
                );
            }
            Rotation::Rotating | Rotation::SingleUse { .. } => {
                assert!(second.rotated, "{name}");
                assert_ne!(current, original, "{name}");
                assert_eq!(
                    server.refresh(&original, CLIENT),
                    Err(OAuthFailure::RefreshReused {
                        grant_revoked: false
                    }),
                    "{name}"
                );
                // Reuse of a retired token leaves the grant alone.
                assert!(server.refresh(&current, CLIENT).is_ok(), "{name}");
                assert_eq!(server.counters(|_| true).revoked_on_reuse, 0, "{name}");
            }
            Rotation::RotatingReuseRevokesGrant => {
                assert!(second.rotated, "{name}");
                assert_ne!(current, original, "{name}");
                assert_eq!(
                    server.refresh(&original, CLIENT),
                    Err(OAuthFailure::RefreshReused {
                        grant_revoked: true
                    }),
                    "{name}"
                );
                // The whole grant is gone: the new refresh token and its access token too.
                assert_eq!(
                    server.refresh(&current, CLIENT),
                    Err(OAuthFailure::RefreshRevoked),
                    "{name}"
                );
                assert_eq!(
                    server.check_access(&second.access_token),
                    Err(OAuthFailure::AccessRevoked),
                    "{name}"
                );
                assert!(server.live_refresh_tokens(|_| true).is_empty(), "{name}");
                // A second reuse does not count again.
                assert_eq!(
                    server.refresh(&original, CLIENT),
                    Err(OAuthFailure::RefreshReused {
                        grant_revoked: false
                    }),
                    "{name}"
                );
                assert_eq!(server.counters(|_| true).revoked_on_reuse, 1, "{name}");
            }
        }
        if policy.rotation.rotates() {
            // The retired token's access tokens live on or die as the table says.
            let first_access = server.check_access(&first.access_token);
            if policy.rotation_retires_access {
                assert_eq!(first_access, Err(OAuthFailure::AccessRevoked), "{name}");
            } else if policy.rotation != Rotation::RotatingReuseRevokesGrant {
                assert_eq!(first_access, Ok("alice"), "{name}");
            }
        }
    }
}

#[test]
fn refresh_refuses_unknown_tokens_other_clients_and_refused_subjects() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let issued = connect(&mut server, "alice");
        let refresh = issued.refresh_token.unwrap();
        assert_eq!(
            server.refresh("never-issued", CLIENT),
            Err(OAuthFailure::RefreshUnknown),
            "{name}"
        );
        assert_eq!(
            server.refresh(&refresh, "client-2"),
            Err(OAuthFailure::ClientMismatch),
            "{name}"
        );
        assert_eq!(
            server.refresh_with(&refresh, CLIENT, |_| false),
            Err(OAuthFailure::SubjectRefused),
            "{name}"
        );
        // None of these consumed the token.
        assert!(server.refresh(&refresh, CLIENT).is_ok(), "{name}");
        // Known tokens count per subject; every attempt counts in total.
        assert_eq!(
            server.counters(|s| *s == "alice").refresh_calls,
            3,
            "{name}"
        );
        assert_eq!(server.counters(|s| *s == "bob").refresh_calls, 0, "{name}");
        assert_eq!(server.refresh_attempts(), 4, "{name}");
        assert_eq!(server.counters(|_| true).access_minted, 2, "{name}");
    }
}

#[test]
fn a_single_use_refresh_token_expires_after_its_lifetime() {
    for (name, policy) in tables() {
        let policy = OAuthPolicy {
            rotation: Rotation::SingleUse {
                lifetime: Duration::from_secs(3600),
            },
            ..policy
        };
        let mut server = server(&policy);
        let issued = connect(&mut server, "alice");
        let refresh = issued.refresh_token.unwrap();
        server.advance_clock(Duration::from_secs(3600));
        assert!(!server.refresh_live(&refresh), "{name}");
        assert!(server.live_refresh_tokens(|_| true).is_empty(), "{name}");
        assert_eq!(
            server.refresh(&refresh, CLIENT),
            Err(OAuthFailure::RefreshExpired),
            "{name}"
        );
    }
}

#[test]
fn revocation_kills_a_grant_or_a_token_as_the_table_says() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let first = connect(&mut server, "alice");
        let other = connect(&mut server, "bob");

        // A refresh token takes its grant with it.
        let refresh = first.refresh_token.clone().unwrap();
        assert_eq!(server.revoke(&refresh), Ok("alice"), "{name}");
        assert_eq!(
            server.check_access(&first.access_token),
            Err(OAuthFailure::AccessRevoked),
            "{name}"
        );
        assert_eq!(
            server.refresh(&refresh, CLIENT),
            Err(OAuthFailure::RefreshRevoked),
            "{name}"
        );
        assert_eq!(
            server.revoke(&refresh),
            Err(OAuthFailure::TokenAlreadyRevoked),
            "{name}"
        );
        assert_eq!(
            server.revoke("never-issued"),
            Err(OAuthFailure::TokenUnknown),
            "{name}"
        );
        // The other connection is untouched.
        assert_eq!(
            server.check_access(&other.access_token),
            Ok("bob"),
            "{name}"
        );
        assert_eq!(
            server.live_refresh_tokens(|_| true),
            vec![other.refresh_token.clone().unwrap()],
            "{name}"
        );

        // An access token: itself, or its grant.
        assert_eq!(server.revoke(&other.access_token), Ok("bob"), "{name}");
        assert_eq!(
            server.check_access(&other.access_token),
            Err(OAuthFailure::AccessRevoked),
            "{name}"
        );
        let bob_refresh = other.refresh_token.clone().unwrap();
        assert_eq!(
            server.refresh_live(&bob_refresh),
            !policy.revoking_access_revokes_grant,
            "{name}"
        );
        assert_eq!(
            server.revoked_tokens(),
            vec![refresh.clone(), other.access_token.clone()],
            "{name}"
        );
        assert_eq!(server.counters(|s| *s == "alice").revocations, 1, "{name}");
        assert_eq!(server.counters(|_| true).revocations, 2, "{name}");
    }
}

#[test]
fn access_tokens_expire_and_grants_can_be_killed_by_subject() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let alice = connect(&mut server, "alice");
        let bob = connect(&mut server, "bob");
        assert_eq!(
            server.check_access("never-issued"),
            Err(OAuthFailure::AccessUnknown),
            "{name}"
        );
        server.expire_access(|s| *s == "alice");
        assert!(
            matches!(
                server.check_access(&alice.access_token),
                Err(OAuthFailure::AccessExpired(_))
            ),
            "{name}"
        );
        assert_eq!(server.check_access(&bob.access_token), Ok("bob"), "{name}");
        // An expired access token is what a refresh is for.
        let renewed = server
            .refresh(alice.refresh_token.as_deref().unwrap(), CLIENT)
            .unwrap();
        assert_eq!(
            server.check_access(&renewed.access_token),
            Ok("alice"),
            "{name}"
        );

        let pending = code_for(&mut server, "bob");
        server.kill_grants(|s| *s == "bob");
        assert_eq!(
            server.check_access(&bob.access_token),
            Err(OAuthFailure::AccessRevoked),
            "{name}"
        );
        assert_eq!(
            server.exchange_code(redeem(&pending, &verifier())),
            Err(OAuthFailure::CodeUnknown),
            "{name}: a killed subject's codes die too"
        );
        assert_eq!(
            server.live_refresh_tokens(|s| *s == "bob").len(),
            0,
            "{name}"
        );
        assert_eq!(
            server.live_refresh_tokens(|s| *s == "alice").len(),
            1,
            "{name}"
        );
        assert_eq!(server.issued_access_tokens().len(), 3, "{name}");
    }
}

#[test]
fn a_seeded_grant_behaves_like_an_exchanged_one() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let seeded = server.seed_grant(CLIENT, "alice", vec!["read".to_owned()], true);
        assert_eq!(
            server.check_access(&seeded.access_token),
            Ok("alice"),
            "{name}"
        );
        assert_eq!(
            seeded.expires_in,
            policy.access_lifetime.as_secs(),
            "{name}"
        );
        assert!(
            server
                .refresh(seeded.refresh_token.as_deref().unwrap(), CLIENT)
                .is_ok(),
            "{name}"
        );
        // Without offline access there is no refresh token.
        let online = server.seed_grant(CLIENT, "bob", Vec::new(), false);
        assert_eq!(online.refresh_token, None, "{name}");
        assert!(
            server.live_refresh_tokens(|s| *s == "bob").is_empty(),
            "{name}"
        );
    }
}

#[test]
fn tokens_have_the_tables_formats() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        let code = code_for(&mut server, "alice");
        let issued = server.exchange_code(redeem(&code, &verifier())).unwrap();
        let refresh = issued.refresh_token.clone().unwrap();
        for (what, format, token) in [
            ("code", &policy.code_format, &code),
            ("access token", &policy.access_format, &issued.access_token),
            ("refresh token", &policy.refresh_format, &refresh),
        ] {
            match format {
                TokenFormat::Uuid => {
                    assert!(
                        uuid::Uuid::parse_str(token).is_ok(),
                        "{name} {what}: {token}"
                    )
                }
                TokenFormat::Random {
                    prefix,
                    len,
                    alphabet,
                } => {
                    let rest = token
                        .strip_prefix(prefix.as_str())
                        .unwrap_or_else(|| panic!("{name} {what} lacks its prefix: {token}"));
                    assert_eq!(rest.len(), *len, "{name} {what}");
                    let allowed = |c: char| match alphabet {
                        Alphabet::Base64Url => c.is_ascii_alphanumeric() || c == '-' || c == '_',
                        Alphabet::Alnum => c.is_ascii_alphanumeric(),
                        Alphabet::HexLower => c.is_ascii_digit() || ('a'..='f').contains(&c),
                    };
                    assert!(rest.chars().all(allowed), "{name} {what}: {token}");
                }
            }
        }
        // Two mints never collide.
        assert_ne!(
            connect(&mut server, "alice").access_token,
            issued.access_token,
            "{name}"
        );
    }
}

#[test]
fn the_answer_has_the_tables_shape() {
    for (name, policy) in tables_under_every_rotation() {
        let mut server = server(&policy);
        let issued = connect(&mut server, "alice");
        let shape = policy.answer;
        let answer = server.answer(&issued, false);
        assert_eq!(
            answer["access_token"],
            issued.access_token.as_str(),
            "{name}"
        );
        if shape.token_type.is_empty() {
            assert!(!answer.contains_key("token_type"), "{name}");
        } else {
            assert_eq!(answer["token_type"], shape.token_type, "{name}");
        }
        assert_eq!(
            answer.contains_key("expires_in"),
            shape.expires_in,
            "{name}"
        );
        if shape.expires_in {
            assert_eq!(
                answer["expires_in"],
                policy.access_lifetime.as_secs(),
                "{name}"
            );
        }
        match shape.scope {
            ScopeField::Omitted => {
                assert!(!answer.contains_key("scope") && !answer.contains_key("scopes"))
            }
            ScopeField::SpaceSeparated(key) => assert_eq!(answer[key], "read write", "{name}"),
            ScopeField::List(key) => {
                assert_eq!(answer[key], serde_json::json!(["read", "write"]), "{name}")
            }
        }
        // An exchange always hands out the refresh token.
        let refresh = issued.refresh_token.clone().unwrap();
        assert_eq!(answer["refresh_token"], refresh.as_str(), "{name}");

        // A refresh names it when it rotated, or always if the table says so.
        let refreshed = server.refresh(&refresh, CLIENT).unwrap();
        let answer = server.answer(&refreshed, true);
        let named = answer.get("refresh_token").and_then(Value::as_str);
        if policy.rotation.rotates() {
            assert_eq!(named, refreshed.refresh_token.as_deref(), "{name}");
            assert_ne!(named, Some(refresh.as_str()), "{name}");
        } else if shape.refresh_echo == RefreshEcho::Always {
            assert_eq!(named, Some(refresh.as_str()), "{name}");
        } else {
            assert_eq!(named, None, "{name}");
        }
    }
}

#[test]
fn a_provider_can_peek_retire_and_age_tokens_without_revoking() {
    for (name, policy) in tables() {
        let mut server = server(&policy);
        // Peeking at a code's subject leaves it redeemable.
        let code = code_for(&mut server, "alice");
        assert_eq!(server.code_subject(&code), Some(&"alice"), "{name}");
        assert_eq!(server.code_subject("never-issued"), None, "{name}");
        let first = server.exchange_code(redeem(&code, &verifier())).unwrap();
        assert_eq!(server.code_subject(&code), None, "{name}: redeemed");
        let refresh = first.refresh_token.clone().unwrap();
        for token in [&refresh, &first.access_token] {
            assert_eq!(server.token_subject(token), Some(&"alice"), "{name}");
        }
        assert_eq!(server.token_subject("never-issued"), None, "{name}");

        // Access tokens by the refresh token current when they were minted.
        let second = server.refresh(&refresh, CLIENT).unwrap();
        let current = second.refresh_token.clone().unwrap();
        let mut via = server.access_tokens_via(&refresh);
        if current != refresh {
            via.extend(server.access_tokens_via(&current));
        }
        assert_eq!(
            via,
            [first.access_token.clone(), second.access_token.clone()],
            "{name}"
        );

        // An access token alone, then a refresh token with its grant.
        assert!(server.invalidate(&second.access_token), "{name}");
        assert_eq!(
            server.check_access(&second.access_token),
            Err(OAuthFailure::AccessRevoked),
            "{name}"
        );
        assert!(server.refresh_live(&current), "{name}");
        let bob = connect(&mut server, "bob");
        let bob_refresh = bob.refresh_token.clone().unwrap();
        assert!(server.invalidate(&bob_refresh), "{name}");
        assert!(!server.refresh_live(&bob_refresh), "{name}");
        assert_eq!(
            server.check_access(&bob.access_token),
            Err(OAuthFailure::AccessRevoked),
            "{name}"
        );
        assert!(!server.invalidate("never-issued"), "{name}");
        // Not revocations: nothing logged, nothing counted.
        assert!(server.revoked_tokens().is_empty(), "{name}");
        assert_eq!(server.counters(|_| true).revocations, 0, "{name}");

        // The clock moves on: codes and access tokens age with it.
        let code = code_for(&mut server, "carol");
        let carol = connect(&mut server, "carol");
        server.advance_clock(policy.code_lifetime);
        assert_eq!(
            server.exchange_code(redeem(&code, &verifier())),
            Err(OAuthFailure::CodeExpired),
            "{name}"
        );
        let left = policy.access_lifetime - policy.code_lifetime.min(policy.access_lifetime);
        server.advance_clock(left / 2);
        assert_eq!(
            server.check_access(&carol.access_token),
            Ok("carol"),
            "{name}"
        );
        server.advance_clock(left - left / 2);
        assert!(
            matches!(
                server.check_access(&carol.access_token),
                Err(OAuthFailure::AccessExpired(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn pkce_helpers_follow_rfc_7636() {
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_eq!(s256_challenge(verifier), challenge);
    assert!(is_valid_verifier(verifier));
    assert!(!is_valid_verifier("too-short"));
    assert!(!is_valid_verifier(&"a".repeat(129)));
    assert!(!is_valid_verifier(&("a".repeat(42) + "/")));
    assert_eq!(check_s256(challenge, "S256"), Ok(()));
    assert_eq!(check_s256("", "S256"), Err(PkceProblem::MissingChallenge));
    assert_eq!(
        check_s256(challenge, "plain"),
        Err(PkceProblem::MethodNotS256)
    );
    assert_eq!(
        check_s256("not-43-characters", "S256"),
        Err(PkceProblem::MalformedChallenge)
    );
}

#[test]
fn every_table_names_its_endpoints() {
    for (name, policy) in tables() {
        let endpoints = policy.endpoints;
        for path in [
            Some(endpoints.authorize_path),
            Some(endpoints.token_path),
            endpoints.revoke_path,
        ]
        .into_iter()
        .flatten()
        {
            assert!(path.starts_with('/'), "{name}: {path}");
        }
        assert!(policy.access_lifetime > Duration::ZERO, "{name}");
    }
}

// ---------------------------------------------------------------------------
// The same rules over HTTP, for every simulator
// ---------------------------------------------------------------------------

/// One simulator's consent screen and token endpoint, as data.
struct HttpCase {
    name: &'static str,
    base_url: String,
    authorize_path: &'static str,
    /// `X-Forwarded-Host` of token requests, where the token endpoint has a host of its own.
    token_host: Option<&'static str>,
    token_path: &'static str,
    client_id: String,
    client_secret: String,
    scope: &'static str,
    /// The status and `error` of a refused code or refresh token (RFC 6749:
    /// 400 `invalid_grant`; Zoho: 200 `invalid_code`).
    refused: (u16, &'static str),
    /// The `error` of an exchange with another redirect_uri (the status is `refused`'s).
    redirect_mismatch_error: &'static str,
    /// The status of a token request with a wrong client secret in its body.
    bad_secret_status: u16,
}

const HTTP_REDIRECT: &str = "https://relay.example.test/oauth/callback";

impl HttpCase {
    /// A fresh code from the consent screen, with the S256 challenge of `verifier`.
    async fn code(&self, verifier: &str) -> String {
        let request = testkit::ConsentRequest {
            base_url: &self.base_url,
            path: self.authorize_path,
            client_id: &self.client_id,
            redirect_uri: HTTP_REDIRECT,
            scope: self.scope,
            // Google's offline access; the other providers ignore these.
            more: &[("access_type", "offline"), ("prompt", "consent")],
        };
        let (status, query) = request.open(verifier, &[]).await;
        assert_eq!(status, 302, "{}", self.name);
        assert_eq!(query["state"], "st/ate+1", "{}", self.name);
        query["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, String, Value) {
        let url = format!("{}{}", self.base_url, self.token_path);
        let headers: Vec<(&str, &str)> = self
            .token_host
            .map(|host| ("x-forwarded-host", host))
            .into_iter()
            .collect();
        let (status, body) = testkit::post_form(&url, &headers, form).await;
        (status, str_of(&body, "error").to_owned(), body)
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, String, Value) {
        let (id, secret) = (&self.client_id, &self.client_secret);
        self.token(&testkit::code_grant(
            id,
            secret,
            code,
            HTTP_REDIRECT,
            verifier,
        ))
        .await
    }
}

async fn token_endpoint_rules(case: &HttpCase) {
    let name = case.name;
    let right = testkit::verifier();

    // A code is redeemed once.
    let code = case.code(&right).await;
    let (status, _, body) = case.exchange(&code, &right).await;
    assert_eq!(status, 200, "{name}: {body}");
    assert!(!str_of(&body, "access_token").is_empty(), "{name}: {body}");
    assert!(!str_of(&body, "refresh_token").is_empty(), "{name}: {body}");
    let (status, error, _) = case.exchange(&code, &right).await;
    assert_eq!((status, error.as_str()), case.refused, "{name}");

    // A wrong verifier is refused and burns the code.
    let code = case.code(&right).await;
    let (status, error, _) = case.exchange(&code, "not-the-verifier").await;
    assert_eq!((status, error.as_str()), case.refused, "{name}");
    let (status, error, _) = case.exchange(&code, &right).await;
    assert_eq!((status, error.as_str()), case.refused, "{name}: burnt");

    // No verifier at all.
    let code = case.code(&right).await;
    let (status, error, _) = case.exchange(&code, "").await;
    assert_eq!((status, error.as_str()), case.refused, "{name}");

    // A wrong client secret.
    let code = case.code(&right).await;
    let form = testkit::code_grant(&case.client_id, "wrong", &code, HTTP_REDIRECT, &right);
    let (status, error, _) = case.token(&form).await;
    assert_eq!(
        (status, error.as_str()),
        (case.bad_secret_status, "invalid_client"),
        "{name}"
    );

    // Another redirect_uri than the consent's.
    let code = case.code(&right).await;
    let (id, secret) = (&case.client_id, &case.client_secret);
    let form = testkit::code_grant(id, secret, &code, "https://elsewhere.example/cb", &right);
    let (status, error, _) = case.token(&form).await;
    assert_eq!(
        (status, error.as_str()),
        (case.refused.0, case.redirect_mismatch_error),
        "{name}"
    );

    // A refresh token never issued.
    let form = testkit::refresh_grant(id, secret, "never-issued");
    let (status, error, _) = case.token(&form).await;
    assert_eq!((status, error.as_str()), case.refused, "{name}");
}

#[tokio::test]
async fn every_token_endpoint_follows_the_same_rules_over_http() {
    let hubspot = HubSpotSim::start(HubSpotSimConfig::default()).await;
    let salesforce = SalesforceSim::start(SalesforceSimConfig::default()).await;
    let google = GoogleSim::start(GoogleSimConfig::default()).await;
    let zoho = ZohoSim::start(ZohoSimConfig::default()).await;
    let cases = [
        HttpCase {
            name: "hubspot",
            base_url: hubspot.base_url(),
            authorize_path: hubspot::AUTHORIZE_PATH,
            token_host: None,
            token_path: hubspot::TOKEN_PATH,
            client_id: hubspot.config().client_id.clone(),
            client_secret: hubspot.config().client_secret.clone(),
            scope: "oauth",
            refused: (400, "invalid_grant"),
            redirect_mismatch_error: "invalid_grant",
            bad_secret_status: 400,
        },
        HttpCase {
            name: "salesforce",
            base_url: salesforce.base_url(),
            authorize_path: salesforce::AUTHORIZE_PATH,
            token_host: Some(salesforce::DEFAULT_LOGIN_HOST),
            token_path: salesforce::TOKEN_PATH,
            client_id: salesforce.config().client_id.clone(),
            client_secret: salesforce.config().client_secret.clone(),
            scope: "api refresh_token",
            refused: (400, "invalid_grant"),
            redirect_mismatch_error: "invalid_grant",
            bad_secret_status: 400,
        },
        HttpCase {
            name: "google",
            base_url: google.base_url(),
            authorize_path: google::AUTHORIZE_PATH,
            token_host: Some(google::OAUTH2_HOST),
            token_path: google::TOKEN_PATH,
            client_id: google.config().client_id.clone(),
            client_secret: google.config().client_secret.clone(),
            scope: google::SPREADSHEETS_SCOPE,
            refused: (400, "invalid_grant"),
            redirect_mismatch_error: "redirect_uri_mismatch",
            bad_secret_status: 401,
        },
        HttpCase {
            name: "zoho",
            base_url: zoho.base_url(),
            authorize_path: zoho::AUTHORIZE_PATH,
            // The consent ran on the US accounts server (no forwarded host).
            token_host: Some(zoho::ZOHO_DCS[0].accounts_host),
            token_path: zoho::TOKEN_PATH,
            client_id: zoho.config().client_id.clone(),
            client_secret: zoho.config().client_secret.clone(),
            scope: "ZohoCRM.modules.leads.ALL",
            // Zoho answers token-endpoint errors with HTTP 200.
            refused: (200, "invalid_code"),
            redirect_mismatch_error: "invalid_redirect_uri",
            bad_secret_status: 200,
        },
        // Bitrix24 is not a case: its token endpoint takes GET, without PKCE or
        // redirect_uri (bitrix/oauth_tests.rs covers it).
    ];
    for case in &cases {
        token_endpoint_rules(case).await;
    }
}
