//! Stateful CRM provider simulators that run on loopback, for integration
//! tests and the demo.
//!
//! One folder per provider: [`hubspot`], [`zoho`] (every data centre on one
//! origin) and [`freshworks`] (Freshsales: every account host on one origin).
//! Generic building blocks live in their own modules so that every simulator
//! (Salesforce, Bitrix24 and Google Sheets to come) shares them:
//! - [`faults`] — FIFO fault queue keyed by a simulator's route enum;
//! - [`recorder`] — request capture and log;
//! - [`server`] — bind/serve/shutdown-on-drop;
//! - [`consent`] — a consent screen's redirect back and its error page;
//! - [`oauth`] — the OAuth authorization server, its policy tables and tests.

pub mod bitrix;
pub mod consent;
pub mod faults;
pub mod freshworks;
pub mod google;
pub mod hubspot;
pub mod oauth;
pub mod recorder;
pub mod salesforce;
pub mod server;
pub mod zoho;

pub use bitrix::{
    BitrixComment, BitrixRecord, BitrixRequest, BitrixRoute, BitrixSim, BitrixSimConfig,
};
pub use faults::{Fault, FaultQueue, FaultRoute};
pub use freshworks::{FreshsalesRoute, FreshsalesSim, FreshsalesSimConfig};
pub use google::{
    Cell, GoogleRequest, GoogleRoute, GoogleSeededTokens, GoogleSim, GoogleSimConfig,
};
pub use hubspot::{HubSpotSim, HubSpotSimConfig, Route, SeededTokens, SimObject};
pub use oauth::Rotation;
pub use recorder::{RecordedRequest, Recorder};
pub use salesforce::{
    SalesforceRoute, SalesforceSim, SalesforceSimConfig, SfField, SfOrgConfig, SfPicklistValue,
    SfRecordType, SfRequest, SfSeededTokens,
};
pub use server::{Reject, ServerHandle};
pub use zoho::{
    ZohoDc, ZohoField, ZohoParent, ZohoPipeline, ZohoRecord, ZohoRequest, ZohoRoute, ZohoSchema,
    ZohoSeededTokens, ZohoSim, ZohoSimConfig, ZohoStage,
};
