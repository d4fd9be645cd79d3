//! Test support: provider simulators, local AWS provisioning (moto), sample events, log capture
//! and a per-test context. Used by the integration tests in `tests/tests/` and by the demo.

pub mod aws;
pub mod aws_calls;
pub mod aws_faults;
pub mod context;
pub mod crash;
pub mod events;
pub mod fault_proxy;
pub mod logs;
pub mod mock_account;
pub mod queue;
pub mod setup;
pub mod sim;
