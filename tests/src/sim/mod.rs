//! Stateful CRM provider simulators that run on loopback, for integration
//! tests and the demo.
//!
//! One folder per provider: [`hubspot`], [`zoho`] (every data centre on one
//! origin) and [`freshworks`] (Freshsales: every account host on one origin).
//! What every simulator shares:
//! - [`shell`] — server lifecycle, request log, faults, rate-limit windows
//!   (`faults`, `recorder` and `server` are its modules under older names);
//! - [`consent`] — a consent screen's redirect back and its error page;
//! - [`oauth`] — the OAuth authorization server, its policy tables and tests.

pub mod bitrix;
pub mod consent;
pub mod freshworks;
pub mod google;
pub mod hubspot;
pub mod oauth;
pub mod salesforce;
pub mod shell;
pub mod zoho;

pub use shell::log as recorder;
pub use shell::{faults, server};

pub use bitrix::{
    BitrixComment, BitrixDetails, BitrixRecord, BitrixRequest, BitrixRoute, BitrixSim,
    BitrixSimConfig,
};
pub use faults::{Fault, FaultQueue, FaultRoute, Lost};
pub use freshworks::{FreshsalesRoute, FreshsalesSim, FreshsalesSimConfig};
pub use google::{
    Cell, GoogleDetails, GoogleRequest, GoogleRoute, GoogleSeededTokens, GoogleSim, GoogleSimConfig,
};
pub use hubspot::{HubSpotSim, HubSpotSimConfig, Route, SeededTokens, SimObject};
pub use oauth::Rotation;
pub use recorder::{HostRequest, RecordedRequest, Recorder, RequestLog};
pub use salesforce::{
    SalesforceRoute, SalesforceSim, SalesforceSimConfig, SfDetails, SfField, SfOrgConfig,
    SfPicklistValue, SfRecordType, SfRequest, SfSeededTokens,
};
pub use server::{Reject, ServerHandle};
pub use shell::rate::RateWindow;
pub use shell::{Shell, ShellHandle};
pub use zoho::{
    ZohoDc, ZohoField, ZohoParent, ZohoPipeline, ZohoRecord, ZohoRequest, ZohoRoute, ZohoSchema,
    ZohoSeededTokens, ZohoSim, ZohoSimConfig, ZohoStage,
};
