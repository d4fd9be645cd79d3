//! The two lanes a lead arrives by: live leads (the lead queue) and a backfill (historic leads
//! of a tenant that just connected a CRM, on the backfill queue). A backfill is pushed only
//! with the capacity the live lane leaves (see `crate::ratelimit`).

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lane {
    #[default]
    Live,
    Backfill,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Live => "live",
            Lane::Backfill => "backfill",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
