//! Per-hub rate limits.
//!
//! - Ten-secondly rolling window (`rate_limit`, default 100 / 10 s) on every
//!   authenticated CRM call except search. Responses carry
//!   `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`; a
//!   429 has the `TEN_SECONDLY_ROLLING` body.
//! - Secondly window (`search_rate_limit`, default 5 / 1 s) on the search
//!   endpoints only. HubSpot's search responses carry no rate-limit headers,
//!   and the v3 specs mark search `x-hubspot-rate-limit-exemptions:
//!   ["ten-secondly"]`, so a search neither consumes nor reports the
//!   ten-secondly allowance. Its 429 body follows the `SECONDLY` policy
//!   seen in the wild (`"You have reached your secondly limit."`).

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{correlation_id, json_response, Shared};
use crate::sim::server::Reject;

const RATE_MAX_HEADER: &str = "x-hubspot-ratelimit-max";
const RATE_REMAINING_HEADER: &str = "x-hubspot-ratelimit-remaining";
const RATE_INTERVAL_HEADER: &str = "x-hubspot-ratelimit-interval-milliseconds";

impl Shared {
    /// Count one CRM API call against `hub_id`'s ten-secondly window. `Ok`
    /// carries the remaining allowance; `Err` is the 429 to send.
    pub(super) fn consume_rate(&self, hub_id: u64) -> Result<u32, Reject> {
        self.rate
            .take(&hub_id)
            .map_err(|_| self.throttle_response(hub_id).into())
    }

    /// Count one search against `hub_id`'s search window.
    pub(super) fn consume_search(&self, hub_id: u64) -> Result<(), Reject> {
        self.search_rate
            .take(&hub_id)
            .map(|_| ())
            .map_err(|_| self.search_throttle_response(hub_id).into())
    }

    /// Authenticate, meter against the ten-secondly window, run `handle` with
    /// the caller's hub, and stamp the rate-limit headers on whatever it
    /// answers (errors included, as HubSpot does).
    pub(super) fn metered(
        &self,
        headers: &HeaderMap,
        handle: impl FnOnce(u64) -> Result<Response, Reject>,
    ) -> Response {
        let hub_id = match self.authenticate(headers) {
            Ok(hub_id) => hub_id,
            Err(reject) => return reject.into_response(),
        };
        let remaining = match self.consume_rate(hub_id) {
            Ok(remaining) => remaining,
            Err(reject) => return reject.into_response(),
        };
        let mut response = handle(hub_id).unwrap_or_else(IntoResponse::into_response);
        self.add_rate_headers(&mut response, remaining);
        response
    }

    /// Like [`Shared::metered`] for the search endpoints: their own window,
    /// and no rate-limit headers.
    pub(super) fn search_metered(
        &self,
        headers: &HeaderMap,
        handle: impl FnOnce(u64) -> Result<Response, Reject>,
    ) -> Response {
        let hub_id = match self.authenticate(headers) {
            Ok(hub_id) => hub_id,
            Err(reject) => return reject.into_response(),
        };
        if let Err(reject) = self.consume_search(hub_id) {
            return reject.into_response();
        }
        handle(hub_id).unwrap_or_else(IntoResponse::into_response)
    }

    /// HubSpot's ten-secondly rolling limit response.
    pub(super) fn throttle_response(&self, hub_id: u64) -> Response {
        let body = json!({
            "status": "error",
            "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": "TEN_SECONDLY_ROLLING",
            // Opaque in HubSpot's responses; the exact format is not
            // documented, so this one is made up.
            "groupName": format!("publicapi:oauth:{}:{}", self.config.client_id, hub_id),
        });
        let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
        // No Retry-After: HubSpot documents X-HubSpot-RateLimit-* headers for
        // 429s, and no HubSpot source we found shows Retry-After on them.
        self.add_rate_headers(&mut response, 0);
        response
    }

    /// The search endpoints' secondly limit response: no rate-limit headers.
    pub(super) fn search_throttle_response(&self, hub_id: u64) -> Response {
        let body = json!({
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": "SECONDLY",
            // Made up, like the ten-secondly one.
            "groupName": format!("publicapi:crm-search-secondly:{hub_id}"),
        });
        json_response(StatusCode::TOO_MANY_REQUESTS, &body)
    }

    pub(super) fn add_rate_headers(&self, response: &mut Response, remaining: u32) {
        let (max, window) = self.config.rate_limit;
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(RATE_MAX_HEADER),
            HeaderValue::from(max),
        );
        headers.insert(
            HeaderName::from_static(RATE_REMAINING_HEADER),
            HeaderValue::from(remaining),
        );
        headers.insert(
            HeaderName::from_static(RATE_INTERVAL_HEADER),
            HeaderValue::from(window.as_millis() as u64),
        );
    }
}
