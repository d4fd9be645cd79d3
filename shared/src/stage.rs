//! LeadRelay's own lead stages: the keys of a connection's stage mapping.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStage {
    New,
    Contacted,
    Qualified,
    Proposal,
    Won,
    Lost,
}

impl LeadStage {
    pub const ALL: [LeadStage; 6] = [
        LeadStage::New,
        LeadStage::Contacted,
        LeadStage::Qualified,
        LeadStage::Proposal,
        LeadStage::Won,
        LeadStage::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStage::New => "new",
            LeadStage::Contacted => "contacted",
            LeadStage::Qualified => "qualified",
            LeadStage::Proposal => "proposal",
            LeadStage::Won => "won",
            LeadStage::Lost => "lost",
        }
    }
}

impl fmt::Display for LeadStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
