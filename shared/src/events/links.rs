//! The CRM record links a "Lead Pushed" event carries: each record's kind, id and, where the CRM
//! has a page for it, the address of that page in the CRM's own web app.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::Connection;

/// One CRM record of a pushed lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordLink {
    pub kind: String,
    pub id: String,
    /// Absent when the record kind has no page of its own (a note) or the account facts do not
    /// name the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The records of a lead in `connection`'s CRM account, with their links.
pub fn links_for(_connection: &Connection, records: &BTreeMap<String, String>) -> Vec<RecordLink> {
    // Until the link builder lands, the ids go out without addresses.
    records
        .iter()
        .map(|(kind, id)| RecordLink {
            kind: kind.clone(),
            id: id.clone(),
            url: None,
        })
        .collect()
}
