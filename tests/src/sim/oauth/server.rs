//! The bookkeeping of an OAuth authorization server: codes, grants, refresh
//! and access tokens, rotation, revocation and counters. It knows no HTTP:
//! each provider parses its own requests, calls in here, and renders the
//! answer or the [`OAuthFailure`] in its own dialect.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::pkce;
use super::policy::{OAuthPolicy, Pkce, RefreshEcho, Rotation, ScopeField};

/// Why the server refused a code, a refresh token, an access token or a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthFailure {
    /// The code was never issued or was already presented once.
    CodeUnknown,
    CodeExpired,
    /// The code or refresh token belongs to another client.
    ClientMismatch,
    /// The provider's own check of the subject refused it (e.g. a Salesforce
    /// code redeemed on another org's login host).
    SubjectRefused,
    RedirectMismatch,
    VerifierMissing,
    /// Malformed verifier, or one that does not hash to the challenge.
    VerifierMismatch,
    RefreshUnknown,
    /// The grant was revoked (revocation, reuse detection, uninstall).
    RefreshRevoked,
    /// A single-use refresh token presented after its lifetime.
    RefreshExpired,
    /// A refresh token that a rotation already retired; `grant_revoked` when
    /// this presentation revoked the grant.
    RefreshReused {
        grant_revoked: bool,
    },
    AccessUnknown,
    AccessRevoked,
    /// Expired this long ago.
    AccessExpired(Duration),
    /// Revocation of a token the server never issued.
    TokenUnknown,
    /// Revocation of a token that no longer works.
    TokenAlreadyRevoked,
}

/// What a consent grants: the code's bindings and who consented.
#[derive(Debug, Clone)]
pub struct CodeRequest<S> {
    pub client_id: String,
    pub redirect_uri: String,
    /// The S256 challenge (validated by the provider's consent screen).
    pub challenge: Option<String>,
    pub scopes: Vec<String>,
    pub subject: S,
    /// Whether the exchange yields a refresh token (Google: offline access).
    pub with_refresh: bool,
}

/// The fields of an authorization-code token request.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    pub code: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub verifier: &'a str,
}

/// Tokens handed out by an exchange, a refresh or a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued<S> {
    pub access_token: String,
    /// The grant's current refresh token, if it has one.
    pub refresh_token: Option<String>,
    /// Whether this refresh replaced the refresh token.
    pub rotated: bool,
    pub expires_in: u64,
    pub scopes: Vec<String>,
    pub subject: S,
}

/// Counters a test inspects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OAuthCounters {
    pub access_minted: usize,
    /// Refresh requests that named a known refresh token.
    pub refresh_calls: usize,
    /// Successful revocations.
    pub revocations: usize,
    /// Grants revoked because a rotated-out refresh token came back.
    pub revoked_on_reuse: usize,
}

impl std::ops::AddAssign for OAuthCounters {
    fn add_assign(&mut self, other: Self) {
        self.access_minted += other.access_minted;
        self.refresh_calls += other.refresh_calls;
        self.revocations += other.revocations;
        self.revoked_on_reuse += other.revoked_on_reuse;
    }
}

struct PendingCode<S> {
    request: CodeRequest<S>,
    expires_at: Instant,
}

struct Grant<S> {
    client_id: String,
    subject: S,
    scopes: Vec<String>,
    current_refresh: Option<String>,
    live: bool,
}

struct RefreshRecord {
    grant: usize,
    /// Set when a rotation replaced this token.
    retired: bool,
    /// Only single-use tokens expire.
    expires_at: Option<Instant>,
}

struct AccessRecord {
    grant: usize,
    /// The refresh token current when this one was minted.
    via_refresh: Option<String>,
    expires_at: Instant,
    revoked: bool,
}

type AccessPrefix<S> = Box<dyn Fn(&S) -> String + Send + Sync>;

/// One provider's authorization server; `S` is who a grant belongs to
/// (hub, org, user, portal...).
pub struct OAuthServer<S> {
    policy: OAuthPolicy,
    access_prefix: Option<AccessPrefix<S>>,
    codes: HashMap<String, PendingCode<S>>,
    grants: Vec<Grant<S>>,
    refresh: HashMap<String, RefreshRecord>,
    refresh_order: Vec<String>,
    access: HashMap<String, AccessRecord>,
    access_order: Vec<String>,
    revoked_log: Vec<String>,
    counters: Vec<(S, OAuthCounters)>,
    refresh_attempts: usize,
}

impl<S> fmt::Debug for OAuthServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Token values stay out of debug output.
        f.debug_struct("OAuthServer")
            .field("policy", &self.policy)
            .field("codes", &self.codes.len())
            .field("grants", &self.grants.len())
            .finish_non_exhaustive()
    }
}

impl<S: Clone + PartialEq> OAuthServer<S> {
    pub fn new(policy: OAuthPolicy) -> Self {
        Self {
            policy,
            access_prefix: None,
            codes: HashMap::new(),
            grants: Vec::new(),
            refresh: HashMap::new(),
            refresh_order: Vec::new(),
            access: HashMap::new(),
            access_order: Vec::new(),
            revoked_log: Vec::new(),
            counters: Vec::new(),
            refresh_attempts: 0,
        }
    }

    /// Access tokens start with a prefix derived from their subject instead
    /// of the format's own (Salesforce: the org id).
    pub fn with_access_prefix(
        mut self,
        prefix: impl Fn(&S) -> String + Send + Sync + 'static,
    ) -> Self {
        self.access_prefix = Some(Box::new(prefix));
        self
    }

    pub fn policy(&self) -> &OAuthPolicy {
        &self.policy
    }

    // -- codes ----------------------------------------------------------------

    /// A new single-use code bound to the request.
    pub fn issue_code(&mut self, request: CodeRequest<S>) -> String {
        let code = self.policy.code_format.mint(None);
        let expires_at = Instant::now() + self.policy.code_lifetime;
        self.codes.insert(
            code.clone(),
            PendingCode {
                request,
                expires_at,
            },
        );
        code
    }

    pub fn exchange_code(&mut self, redemption: Redemption<'_>) -> Result<Issued<S>, OAuthFailure> {
        self.exchange_code_with(redemption, |_| true)
    }

    /// Redeem a code; `accept` is the provider's own check of the subject,
    /// run after client and expiry and before redirect and PKCE.
    pub fn exchange_code_with(
        &mut self,
        redemption: Redemption<'_>,
        accept: impl FnOnce(&S) -> bool,
    ) -> Result<Issued<S>, OAuthFailure> {
        // Single use: a presented code is gone, whatever the outcome.
        let pending = self
            .codes
            .remove(redemption.code)
            .ok_or(OAuthFailure::CodeUnknown)?;
        if Instant::now() >= pending.expires_at {
            return Err(OAuthFailure::CodeExpired);
        }
        let request = pending.request;
        if request.client_id != redemption.client_id {
            return Err(OAuthFailure::ClientMismatch);
        }
        if !accept(&request.subject) {
            return Err(OAuthFailure::SubjectRefused);
        }
        if request.redirect_uri != redemption.redirect_uri {
            return Err(OAuthFailure::RedirectMismatch);
        }
        let challenge = match self.policy.pkce {
            Pkce::NotSupported => None,
            Pkce::Optional => request.challenge.as_deref(),
            // A code without a challenge cannot satisfy a required PKCE.
            Pkce::RequiredS256 => Some(request.challenge.as_deref().unwrap_or_default()),
        };
        if let Some(challenge) = challenge {
            if redemption.verifier.is_empty() {
                return Err(OAuthFailure::VerifierMissing);
            }
            if !pkce::verifies(redemption.verifier, challenge) {
                return Err(OAuthFailure::VerifierMismatch);
            }
        }
        Ok(self.new_grant(
            request.client_id,
            request.subject,
            request.scopes,
            request.with_refresh,
        ))
    }

    /// Make every outstanding code expired as of now.
    pub fn expire_codes(&mut self) {
        let now = Instant::now();
        for code in self.codes.values_mut() {
            code.expires_at = code.expires_at.min(now);
        }
    }

    // -- grants ---------------------------------------------------------------

    /// A grant as if a user had consented and the app had exchanged the code.
    pub fn seed_grant(
        &mut self,
        client_id: &str,
        subject: S,
        scopes: Vec<String>,
        with_refresh: bool,
    ) -> Issued<S> {
        self.new_grant(client_id.to_owned(), subject, scopes, with_refresh)
    }

    fn new_grant(
        &mut self,
        client_id: String,
        subject: S,
        scopes: Vec<String>,
        with_refresh: bool,
    ) -> Issued<S> {
        self.grants.push(Grant {
            client_id,
            subject,
            scopes,
            current_refresh: None,
            live: true,
        });
        let grant = self.grants.len() - 1;
        if with_refresh {
            self.mint_refresh(grant);
        }
        self.issue(grant, false)
    }

    fn mint_refresh(&mut self, grant: usize) -> String {
        let token = self.policy.refresh_format.mint(None);
        let expires_at = match self.policy.rotation {
            Rotation::SingleUse { lifetime } => Some(Instant::now() + lifetime),
            _ => None,
        };
        self.refresh.insert(
            token.clone(),
            RefreshRecord {
                grant,
                retired: false,
                expires_at,
            },
        );
        self.refresh_order.push(token.clone());
        self.grants[grant].current_refresh = Some(token.clone());
        token
    }

    /// A new access token for `grant`, and the answer's view of the grant.
    fn issue(&mut self, grant: usize, rotated: bool) -> Issued<S> {
        let subject = self.grants[grant].subject.clone();
        let prefix = self.access_prefix.as_ref().map(|f| f(&subject));
        let token = self.policy.access_format.mint(prefix.as_deref());
        let lifetime = self.policy.access_lifetime;
        self.access.insert(
            token.clone(),
            AccessRecord {
                grant,
                via_refresh: self.grants[grant].current_refresh.clone(),
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        self.access_order.push(token.clone());
        self.counters_mut(&subject).access_minted += 1;
        Issued {
            access_token: token,
            refresh_token: self.grants[grant].current_refresh.clone(),
            rotated,
            expires_in: lifetime.as_secs(),
            scopes: self.grants[grant].scopes.clone(),
            subject,
        }
    }

    fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].live = false;
    }

    /// Revoke every grant whose subject matches (uninstall, password reset).
    /// Outstanding codes of those subjects die too.
    pub fn kill_grants(&mut self, mut matches: impl FnMut(&S) -> bool) {
        for grant in &mut self.grants {
            if matches(&grant.subject) {
                grant.live = false;
            }
        }
        self.codes.retain(|_, code| !matches(&code.request.subject));
    }

    // -- refresh --------------------------------------------------------------

    pub fn refresh(&mut self, token: &str, client_id: &str) -> Result<Issued<S>, OAuthFailure> {
        self.refresh_with(token, client_id, |_| true)
    }

    /// A refresh-token grant under the policy's rotation rule; `accept` is the
    /// provider's own check of the subject, run just before tokens are issued.
    pub fn refresh_with(
        &mut self,
        token: &str,
        client_id: &str,
        accept: impl FnOnce(&S) -> bool,
    ) -> Result<Issued<S>, OAuthFailure> {
        self.refresh_attempts += 1;
        let (grant, retired, expires_at) = match self.refresh.get(token) {
            Some(r) => (r.grant, r.retired, r.expires_at),
            None => return Err(OAuthFailure::RefreshUnknown),
        };
        let subject = self.grants[grant].subject.clone();
        self.counters_mut(&subject).refresh_calls += 1;
        if retired {
            let revokes = self.policy.rotation == Rotation::RotatingReuseRevokesGrant;
            let grant_revoked = revokes && self.grants[grant].live;
            if grant_revoked {
                self.revoke_grant(grant);
                self.counters_mut(&subject).revoked_on_reuse += 1;
            }
            return Err(OAuthFailure::RefreshReused { grant_revoked });
        }
        if !self.grants[grant].live {
            return Err(OAuthFailure::RefreshRevoked);
        }
        if self.grants[grant].client_id != client_id {
            return Err(OAuthFailure::ClientMismatch);
        }
        if expires_at.is_some_and(|at| Instant::now() >= at) {
            return Err(OAuthFailure::RefreshExpired);
        }
        if !accept(&subject) {
            return Err(OAuthFailure::SubjectRefused);
        }
        let rotates = self.policy.rotation.rotates();
        if rotates {
            if let Some(old) = self.refresh.get_mut(token) {
                old.retired = true;
            }
            if self.policy.rotation_retires_access {
                for access in self.access.values_mut() {
                    if access.via_refresh.as_deref() == Some(token) {
                        access.revoked = true;
                    }
                }
            }
            self.mint_refresh(grant);
        }
        Ok(self.issue(grant, rotates))
    }

    // -- access ---------------------------------------------------------------

    /// Who a bearer token speaks for.
    pub fn check_access(&self, token: &str) -> Result<S, OAuthFailure> {
        let access = self.access.get(token).ok_or(OAuthFailure::AccessUnknown)?;
        let grant = &self.grants[access.grant];
        if access.revoked || !grant.live {
            return Err(OAuthFailure::AccessRevoked);
        }
        let now = Instant::now();
        if now >= access.expires_at {
            return Err(OAuthFailure::AccessExpired(now - access.expires_at));
        }
        Ok(grant.subject.clone())
    }

    /// Make the access tokens of matching subjects expired as of now.
    pub fn expire_access(&mut self, mut matches: impl FnMut(&S) -> bool) {
        let now = Instant::now();
        for access in self.access.values_mut() {
            if matches(&self.grants[access.grant].subject) {
                access.expires_at = access.expires_at.min(now);
            }
        }
    }

    pub fn access_live(&self, token: &str) -> bool {
        self.check_access(token).is_ok()
    }

    /// Whether a refresh token would be accepted (ignoring the client).
    pub fn refresh_live(&self, token: &str) -> bool {
        self.refresh.get(token).is_some_and(|r| {
            !r.retired
                && self.grants[r.grant].live
                && r.expires_at.is_none_or(|at| Instant::now() < at)
        })
    }

    // -- revocation -----------------------------------------------------------

    /// Revoke a refresh token (its grant) or an access token (it alone, or
    /// its grant when the policy says so).
    pub fn revoke(&mut self, token: &str) -> Result<S, OAuthFailure> {
        let grant = if let Some(record) = self.refresh.get(token) {
            record.grant
        } else if let Some(access) = self.access.get_mut(token) {
            let grant = access.grant;
            if !self.policy.revoking_access_revokes_grant {
                if access.revoked || !self.grants[grant].live {
                    return Err(OAuthFailure::TokenAlreadyRevoked);
                }
                access.revoked = true;
                return Ok(self.log_revocation(token, grant));
            }
            grant
        } else {
            return Err(OAuthFailure::TokenUnknown);
        };
        if !self.grants[grant].live {
            return Err(OAuthFailure::TokenAlreadyRevoked);
        }
        self.revoke_grant(grant);
        Ok(self.log_revocation(token, grant))
    }

    fn log_revocation(&mut self, token: &str, grant: usize) -> S {
        let subject = self.grants[grant].subject.clone();
        self.revoked_log.push(token.to_owned());
        self.counters_mut(&subject).revocations += 1;
        subject
    }

    // -- inspection -----------------------------------------------------------

    /// The usable refresh tokens of matching subjects, in issue order.
    pub fn live_refresh_tokens(&self, mut matches: impl FnMut(&S) -> bool) -> Vec<String> {
        self.refresh_order
            .iter()
            .filter(|t| self.refresh_live(t))
            .filter(|t| matches(&self.grants[self.refresh[*t].grant].subject))
            .cloned()
            .collect()
    }

    /// Every access token ever issued, in issue order.
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.access_order.clone()
    }

    /// Tokens successfully passed to [`OAuthServer::revoke`], in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.revoked_log.clone()
    }

    /// The counters of matching subjects, summed.
    pub fn counters(&self, mut matches: impl FnMut(&S) -> bool) -> OAuthCounters {
        let mut total = OAuthCounters::default();
        for (subject, counters) in &self.counters {
            if matches(subject) {
                total += *counters;
            }
        }
        total
    }

    /// Every refresh request, unknown tokens included.
    pub fn refresh_attempts(&self) -> usize {
        self.refresh_attempts
    }

    fn counters_mut(&mut self, subject: &S) -> &mut OAuthCounters {
        let index = match self.counters.iter().position(|(s, _)| s == subject) {
            Some(index) => index,
            None => {
                self.counters
                    .push((subject.clone(), OAuthCounters::default()));
                self.counters.len() - 1
            }
        };
        &mut self.counters[index].1
    }

    // -- answers --------------------------------------------------------------

    /// The policy's common token-answer fields; the provider adds its extras.
    pub fn answer(&self, issued: &Issued<S>, refreshed: bool) -> Map<String, Value> {
        let shape = &self.policy.answer;
        let mut body = Map::new();
        body.insert("access_token".into(), json!(issued.access_token));
        if !shape.token_type.is_empty() {
            body.insert("token_type".into(), json!(shape.token_type));
        }
        if shape.expires_in {
            body.insert("expires_in".into(), json!(issued.expires_in));
        }
        match shape.scope {
            ScopeField::Omitted => {}
            ScopeField::SpaceSeparated(name) => {
                body.insert(name.into(), json!(issued.scopes.join(" ")));
            }
            ScopeField::List(name) => {
                body.insert(name.into(), json!(issued.scopes));
            }
        }
        let send_refresh =
            !refreshed || issued.rotated || shape.refresh_echo == RefreshEcho::Always;
        if let (true, Some(refresh)) = (send_refresh, &issued.refresh_token) {
            body.insert("refresh_token".into(), json!(refresh));
        }
        body
    }
}

// Additions for providers with rules of their own (Zoho's token caps and data
// centres, Bitrix24's portals and simulator clock).
impl<S: Clone + PartialEq> OAuthServer<S> {
    /// Who an outstanding code was issued for, without redeeming it (a Zoho
    /// code presented on another data centre stays redeemable where it was issued).
    pub fn code_subject(&self, code: &str) -> Option<&S> {
        self.codes.get(code).map(|pending| &pending.request.subject)
    }

    /// Whose grant a refresh or access token belongs to, whatever its state.
    pub fn token_subject(&self, token: &str) -> Option<&S> {
        let grant = match self.refresh.get(token) {
            Some(record) => record.grant,
            None => self.access.get(token)?.grant,
        };
        Some(&self.grants[grant].subject)
    }

    /// Access tokens minted while `refresh_token` was its grant's current
    /// one (the exchange's and those of refreshes that presented it), in issue order.
    pub fn access_tokens_via(&self, refresh_token: &str) -> Vec<String> {
        self.access_order
            .iter()
            .filter(|t| self.access[*t].via_refresh.as_deref() == Some(refresh_token))
            .cloned()
            .collect()
    }

    /// A provider's own rule retires a token (a cap was exceeded): a refresh
    /// token takes its whole grant with it, an access token only itself. Not
    /// a revocation: nothing is logged or counted. False for an unknown token.
    pub fn invalidate(&mut self, token: &str) -> bool {
        if let Some(record) = self.refresh.get(token) {
            let grant = record.grant;
            self.revoke_grant(grant);
            true
        } else if let Some(access) = self.access.get_mut(token) {
            access.revoked = true;
            true
        } else {
            false
        }
    }

    /// Every deadline (codes, access tokens, single-use refresh tokens) moves
    /// `by` earlier: the server behaves as if its clock had moved on by `by`.
    pub fn advance_clock(&mut self, by: Duration) {
        // A deadline that cannot move that far back lies before the clock's
        // origin, so it has passed either way.
        let earlier = |at: Instant| at.checked_sub(by).unwrap_or_else(|| at.min(Instant::now()));
        for code in self.codes.values_mut() {
            code.expires_at = earlier(code.expires_at);
        }
        for access in self.access.values_mut() {
            access.expires_at = earlier(access.expires_at);
        }
        for record in self.refresh.values_mut() {
            record.expires_at = record.expires_at.map(earlier);
        }
    }
}
