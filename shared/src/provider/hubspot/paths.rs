//! Every HubSpot CRM path, on HubSpot's date-based API (`/crm/{api}/{version}/...`).
//!
//! The version lives in [`API_VERSION`] alone. Sources (docs/providers/hubspot.md, "API
//! version"): the 2026-09 pipelines guide names `/crm/pipelines/2026-09/{objectType}/...`; the
//! date-versioned object, batch, search, association and property reference pages name
//! `/crm/objects/{version}/{objectType}[/batch/{create,upsert,read}|/search|/{id}]`,
//! `/crm/objects/{version}/{from}/{id}/associations/default/{to}/{toId}` and
//! `/crm/properties/{version}/{objectType}`.

/// HubSpot's date-based API version every CRM call is written against. From `2026-09` HubSpot
/// enforces the portal's own validation rules on CRM writes (see `push::refusal`).
pub const API_VERSION: &str = "2026-09";

/// `/crm/objects/{version}/{object}`: create (POST), and the prefix of every object path.
pub fn objects(object: &str) -> String {
    format!("/crm/objects/{API_VERSION}/{object}")
}

/// `/crm/objects/{version}/{object}/{id}`: read (GET) and update (PATCH).
pub fn object(object: &str, id: &str) -> String {
    format!("{}/{id}", objects(object))
}

/// `/crm/objects/{version}/{object}/batch/{action}` (`create`, `upsert`, `read`).
pub fn batch(object: &str, action: &str) -> String {
    format!("{}/batch/{action}", objects(object))
}

/// `/crm/objects/{version}/{object}/search`.
pub fn search(object: &str) -> String {
    format!("{}/search", objects(object))
}

/// `/crm/objects/{version}/{object}/{id}/associations/default/{to}/{to_id}` (PUT): the default,
/// unlabeled association.
pub fn default_association(object: &str, id: &str, to: &str, to_id: &str) -> String {
    format!(
        "{}/associations/default/{to}/{to_id}",
        self::object(object, id)
    )
}

/// `/crm/objects/{version}/{object}/{id}/associations/{to}` (GET): a record's associations.
pub fn associations(object: &str, id: &str, to: &str) -> String {
    format!("{}/associations/{to}", self::object(object, id))
}

/// `/crm/properties/{version}/{object}[/{name}]`.
pub fn properties(object: &str) -> String {
    format!("/crm/properties/{API_VERSION}/{object}")
}

pub fn property(object: &str, name: &str) -> String {
    format!("{}/{name}", properties(object))
}

/// `/crm/pipelines/{version}/deals`.
pub fn deal_pipelines() -> String {
    format!("/crm/pipelines/{API_VERSION}/deals")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_carries_the_one_version() {
        assert_eq!(
            batch("deals", "create"),
            "/crm/objects/2026-09/deals/batch/create"
        );
        assert_eq!(
            default_association("notes", "7", "contacts", "9"),
            "/crm/objects/2026-09/notes/7/associations/default/contacts/9"
        );
        assert_eq!(
            property("contacts", "email"),
            "/crm/properties/2026-09/contacts/email"
        );
        assert_eq!(deal_pipelines(), "/crm/pipelines/2026-09/deals");
    }
}
