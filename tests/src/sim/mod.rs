//! Stateful CRM provider simulators that run on loopback, for integration
//! tests and the demo.
//!
//! Generic building blocks live in their own modules so that every simulator
//! (HubSpot today; Zoho, Freshsales, Salesforce, Bitrix24 and Google Sheets
//! later) shares them:
//! - [`faults`] — FIFO fault queue keyed by a simulator's route enum;
//! - [`recorder`] — request capture and log;
//! - [`server`] — bind/serve/shutdown-on-drop.

pub mod consent;
pub mod faults;
pub mod freshworks;
pub mod hubspot;
pub mod recorder;
pub mod server;
pub mod zoho;

pub use faults::{Fault, FaultQueue, FaultRoute};
pub use freshworks::{FreshsalesRoute, FreshsalesSim, FreshsalesSimConfig};
pub use hubspot::{HubSpotSim, HubSpotSimConfig, Rotation, Route, SeededTokens, SimObject};
pub use recorder::{RecordedRequest, Recorder};
pub use server::{Reject, ServerHandle};
pub use zoho::{
    ZohoDc, ZohoField, ZohoParent, ZohoPipeline, ZohoRecord, ZohoRequest, ZohoRoute, ZohoSchema,
    ZohoSeededTokens, ZohoSim, ZohoSimConfig, ZohoStage,
};
