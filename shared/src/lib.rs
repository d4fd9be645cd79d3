//! LeadRelay CRM relay: everything that is not Lambda plumbing.
//!
//! The function binaries in `functions/` turn Lambda events into plain inputs, call one use case
//! from [`connections`] (or, later, lead push and token refresh) and turn the result back into a
//! Lambda response. Everything else lives here.

pub mod config;
pub mod connections;
pub mod credentials;
pub mod error;
pub mod events;
pub mod http;
pub mod identity;
pub mod lead;
pub mod leads;
pub mod metrics;
pub mod oauth;
pub mod plan;
pub mod provider;
pub mod push;
pub mod ratelimit;
pub mod refresh;
pub mod registry;
pub mod services;
pub mod stage;
pub mod store;
pub mod telemetry;
pub mod vault;

pub use error::Error;
pub use registry::Provider;
pub use services::Services;
