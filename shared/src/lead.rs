//! A qualified lead as the providers receive it. The inbound SQS message schema, validation and
//! normalisation arrive with the lead-push issue; this is the shape the provider trait takes.

use crate::stage::LeadStage;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead {
    pub id: String,
    pub first_name: Option<String>,
    /// Never empty: CRMs require a last name.
    pub last_name: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    pub source: Option<String>,
    pub score: Option<u32>,
    pub stage: LeadStage,
    pub summary: Option<String>,
}

/// What duplicate detection looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactQuery {
    pub email: Option<String>,
    pub phone: Option<String>,
}
