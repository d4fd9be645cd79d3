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

    /// How far along the funnel the stage is; `None` for `lost`, which is off the funnel.
    pub fn rank(self) -> Option<u8> {
        match self {
            LeadStage::New => Some(0),
            LeadStage::Contacted => Some(1),
            LeadStage::Qualified => Some(2),
            LeadStage::Proposal => Some(3),
            LeadStage::Won => Some(4),
            LeadStage::Lost => None,
        }
    }

    /// Whether a lead at this stage has reached `threshold` (a lost lead reaches nothing).
    pub fn has_reached(self, threshold: LeadStage) -> bool {
        matches!((self.rank(), threshold.rank()), (Some(at), Some(needed)) if at >= needed)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_reach_the_ones_before_them_and_lost_reaches_nothing() {
        assert!(LeadStage::Qualified.has_reached(LeadStage::Qualified));
        assert!(LeadStage::Won.has_reached(LeadStage::Qualified));
        assert!(!LeadStage::Contacted.has_reached(LeadStage::Qualified));
        assert!(!LeadStage::Lost.has_reached(LeadStage::New));
        assert!(!LeadStage::Won.has_reached(LeadStage::Lost));
    }
}
