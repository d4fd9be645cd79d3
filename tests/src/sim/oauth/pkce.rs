//! PKCE (RFC 7636) with the S256 method, the only one these providers take.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What is wrong with an authorization request's PKCE parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceProblem {
    MissingChallenge,
    MethodNotS256,
    /// Not 43 base64url characters.
    MalformedChallenge,
}

/// BASE64URL-NOPAD(SHA256(verifier)), RFC 7636 §4.2.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// An S256 challenge is 43 base64url characters.
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Validate the `code_challenge`/`code_challenge_method` pair of an
/// authorization request that must carry one.
pub fn check_s256(challenge: &str, method: &str) -> Result<(), PkceProblem> {
    if challenge.is_empty() {
        Err(PkceProblem::MissingChallenge)
    } else if method != "S256" {
        Err(PkceProblem::MethodNotS256)
    } else if !is_s256_challenge(challenge) {
        Err(PkceProblem::MalformedChallenge)
    } else {
        Ok(())
    }
}

/// Whether `verifier` is well formed and hashes to `challenge`.
pub fn verifies(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier) && s256_challenge(verifier) == challenge
}
