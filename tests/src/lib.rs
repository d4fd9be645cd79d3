
pub mod sim;
