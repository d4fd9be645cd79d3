//! One OAuth authorization server for every simulator. A provider's OAuth
//! behaviour is a table ([`OAuthPolicy`], its `oauth_policy(config)`); the
//! bookkeeping ([`OAuthServer`]) is shared, and so are its tests, which run
//! once over every provider's table (`tests.rs`). A provider keeps its
//! routes, request parsing, error dialect and answer extras.

pub mod pkce;
pub mod policy;
pub mod server;

pub use pkce::{check_s256, is_s256_challenge, is_valid_verifier, s256_challenge, PkceProblem};
pub use policy::{
    Alphabet, AnswerShape, Endpoints, OAuthPolicy, Pkce, RefreshEcho, Rotation, ScopeField,
    TokenFormat, TokenHost,
};
pub use server::{CodeRequest, Issued, OAuthCounters, OAuthFailure, OAuthServer, Redemption};

#[cfg(test)]
pub mod testkit;
#[cfg(test)]
mod tests;
