//! Structured logging. JSON lines on Lambda (`AWS_LAMBDA_LOG_FORMAT=JSON`), human-readable text
//! otherwise; the level comes from `RUST_LOG` (default `info`).
//!
//! Spans carry `tenant`, `provider`, `lead_id` and the Lambda `request_id`; no span or event
//! ever records a secret (the HTTP client logs paths and query *keys*, never values).

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(false);
    let builder = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    // Lambda adds its own timestamps to every line. The span list puts every enclosing span's
    // fields on each event: the request id (outermost), tenant and lead id, provider.
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
    if result.is_err() {
        // A subscriber is already installed (tests): keep it.
    }
}
