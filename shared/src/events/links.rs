//! The CRM record links a "Lead Pushed" event carries: each record's kind, id and, where the CRM
//! has a page for it, the address of that page in the CRM's own web app. The same builder as
//! the sync-status route's ([`crate::provider::links`]), so both say the same thing.

use std::collections::BTreeMap;

pub use crate::provider::links::RecordLink;
use crate::provider::links::{record_links, AccountFacts};
use crate::store::Connection;

/// The records of a lead in `connection`'s CRM account, with their links.
pub fn links_for(connection: &Connection, records: &BTreeMap<String, String>) -> Vec<RecordLink> {
    record_links(connection.provider, &AccountFacts::of(connection), records)
}
