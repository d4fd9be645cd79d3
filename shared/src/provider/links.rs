//! Links that open a lead's CRM records in the CRM's own web app, built from the connection's
//! stored account facts and the lead mapping's record ids. Nothing here calls a provider: the
//! forms are fixed per provider and checked against its documentation (see the "Record links"
//! section of each `docs/providers/<provider>.md`, which also says where no document confirms
//! a form).
//!
//! A record kind without a page of its own (a note, a timeline comment) keeps its id and gets
//! no link; so does any record whose account fact is missing or not the provider's, so a link
//! never points at a host the connection was not checked against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::registry::{Provider, BITRIX24, ZOHO};
use crate::store::Connection;

/// One CRM record of a lead: its kind (`contact`, `deal`, `lead`, `row`...), the CRM's id for
/// it and, where the CRM has a page for it, the address of that page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLink {
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a link needs to know about the CRM account: the connection's stored account facts and,
/// for Google Sheets, the spreadsheet and tab the settings name.
#[derive(Clone, Copy, Debug)]
pub struct AccountFacts<'a> {
    pub account: &'a BTreeMap<String, String>,
    /// Google Sheets: the spreadsheet id (the settings' `pipeline_id`).
    pub spreadsheet_id: Option<&'a str>,
    /// Google Sheets: the tab's numeric id (`gid`), when known.
    pub sheet_gid: Option<i64>,
}

impl<'a> AccountFacts<'a> {
    /// The facts a stored connection holds. Sheets settings saved before the tab's `gid` was
    /// kept have none; their links open the spreadsheet at the row's range without naming the tab.
    pub fn of(connection: &'a Connection) -> Self {
        let spreadsheet_id = match connection.provider {
            Provider::GoogleSheets => connection
                .settings
                .as_ref()
                .map(|s| s.pipeline_id.as_str())
                .filter(|id| !id.is_empty()),
            _ => None,
        };
        AccountFacts {
            account: &connection.account,
            spreadsheet_id,
            sheet_gid: match connection.provider {
                Provider::GoogleSheets => connection.settings.as_ref().and_then(|s| s.sheet_gid),
                _ => None,
            },
        }
    }
}

/// Every record of `records` (kind to id) with its link, in the mapping's (alphabetical) order.
pub fn record_links(
    provider: Provider,
    facts: &AccountFacts<'_>,
    records: &BTreeMap<String, String>,
) -> Vec<RecordLink> {
    records
        .iter()
        .map(|(kind, id)| RecordLink {
            kind: kind.clone(),
            id: id.clone(),
            url: record_url(provider, facts, kind, id),
        })
        .collect()
}

/// The web app's address of one record, or `None` when the kind has no page or the account
/// facts do not name the account.
pub fn record_url(
    provider: Provider,
    facts: &AccountFacts<'_>,
    kind: &str,
    id: &str,
) -> Option<String> {
    // Ids are the CRM's own; anything that could leave the path segment is not linked.
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return match provider {
            Provider::GoogleSheets => sheets_url(facts, kind, id),
            _ => None,
        };
    }
    match provider {
        Provider::Hubspot => hubspot_url(facts, kind, id),
        Provider::Salesforce => salesforce_url(facts, kind, id),
        Provider::Zoho => zoho_url(facts, kind, id),
        Provider::Freshsales => freshsales_url(facts, kind, id),
        Provider::Bitrix24 => bitrix24_url(facts, kind, id),
        Provider::GoogleSheets => sheets_url(facts, kind, id),
    }
}

fn fact<'a>(facts: &AccountFacts<'a>, key: &str) -> Option<&'a str> {
    facts
        .account
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `https://app.hubspot.com/contacts/{hub id}/record/{object type id}/{id}`; object type ids
/// are HubSpot's documented `0-1` (contacts) and `0-3` (deals). Notes have no record page.
fn hubspot_url(facts: &AccountFacts<'_>, kind: &str, id: &str) -> Option<String> {
    let object = match kind {
        "contact" => "0-1",
        "deal" => "0-3",
        _ => return None,
    };
    let hub = fact(facts, "hub_id").filter(|h| is_digits(h))?;
    Some(format!(
        "https://app.hubspot.com/contacts/{hub}/record/{object}/{id}"
    ))
}

/// `{instance}/lightning/r/{Object}/{id}/view` on the org's instance (its My Domain, which
/// sends the browser on to the org's Lightning domain).
fn salesforce_url(facts: &AccountFacts<'_>, kind: &str, id: &str) -> Option<String> {
    let object = match kind {
        "lead" => "Lead",
        "contact" => "Contact",
        "account" => "Account",
        "opportunity" => "Opportunity",
        "task" => "Task",
        _ => return None,
    };
    let instance = Url::parse(fact(facts, "instance_url")?).ok()?;
    let plain = matches!(instance.scheme(), "https" | "http")
        && instance.username().is_empty()
        && instance.password().is_none()
        && instance.host_str().is_some();
    if !plain {
        return None;
    }
    let origin = instance.origin().ascii_serialization();
    Some(format!("{origin}/lightning/r/{object}/{id}/view"))
}

/// `https://crm.zoho.{dc}/crm/org{org id}/tab/{Module}/{id}`: the CRM web host of the
/// connection's data centre (its accounts host with `crm.` for `accounts.`). Notes have no
/// page of their own.
fn zoho_url(facts: &AccountFacts<'_>, kind: &str, id: &str) -> Option<String> {
    let module = match kind {
        "lead" => "Leads",
        "contact" => "Contacts",
        "deal" => "Deals",
        "account" => "Accounts",
        _ => return None,
    };
    let code = fact(facts, "data_centre")?;
    let dc = ZOHO.data_centres.iter().find(|dc| dc.code == code)?;
    let web = dc.accounts_host.strip_prefix("accounts.")?;
    let org = fact(facts, "org_id").filter(|o| is_digits(o))?;
    Some(format!("https://crm.{web}/crm/org{org}/tab/{module}/{id}"))
}

/// `https://{alias}.myfreshworks.com/crm/sales/{contacts|deals}/{id}`, or without the
/// `/crm/sales` prefix on a pre-bundle `{alias}.freshsales.io` account. Notes have no page.
fn freshsales_url(facts: &AccountFacts<'_>, kind: &str, id: &str) -> Option<String> {
    let section = match kind {
        "contact" => "contacts",
        "deal" => "deals",
        _ => return None,
    };
    let domain = super::freshsales::domain::parse(fact(facts, "domain")?).ok()?;
    let prefix = if domain.host.ends_with(".freshsales.io") {
        ""
    } else {
        "/crm/sales"
    };
    Some(format!("https://{}{prefix}/{section}/{id}", domain.host))
}

/// `https://{portal}/crm/{contact|deal}/details/{id}/`, the card Bitrix24 opens for a CRM
/// path. Timeline comments have no page of their own.
fn bitrix24_url(facts: &AccountFacts<'_>, kind: &str, id: &str) -> Option<String> {
    let entity = match kind {
        "contact" => "contact",
        "deal" => "deal",
        "lead" => "lead",
        "company" => "company",
        _ => return None,
    };
    if !is_digits(id) {
        return None;
    }
    let portal = fact(facts, "portal")?.to_ascii_lowercase();
    let on_a_zone = BITRIX24.account_host_suffixes.iter().any(|zone| {
        portal
            .strip_suffix(zone)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|name| {
                !name.is_empty()
                    && name.len() <= 63
                    && !name.starts_with('-')
                    && !name.ends_with('-')
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    if !on_a_zone {
        return None;
    }
    Some(format!("https://{portal}/crm/{entity}/details/{id}/"))
}

/// `https://docs.google.com/spreadsheets/d/{id}/edit#gid={gid}&range={cells}`: the row's cells
/// (the range without its sheet title); without a known `gid` the `range` alone, which Sheets
/// applies to the tab it opens first.
fn sheets_url(facts: &AccountFacts<'_>, kind: &str, range: &str) -> Option<String> {
    if kind != "row" {
        return None;
    }
    let spreadsheet = facts
        .spreadsheet_id
        .filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .filter(|id| !id.is_empty())?;
    let cells = range.rsplit('!').next()?;
    let cells_ok = !cells.is_empty()
        && cells
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'$');
    if !cells_ok {
        return None;
    }
    let fragment = match facts.sheet_gid {
        Some(gid) => format!("gid={gid}&range={cells}"),
        None => format!("range={cells}"),
    };
    Some(format!(
        "https://docs.google.com/spreadsheets/d/{spreadsheet}/edit#{fragment}"
    ))
}

/// The records and links of one connection's lead mapping.
pub fn links_of(connection: &Connection, records: &BTreeMap<String, String>) -> Vec<RecordLink> {
    record_links(connection.provider, &AccountFacts::of(connection), records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn records(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        account(pairs)
    }

    fn facts(account: &BTreeMap<String, String>) -> AccountFacts<'_> {
        AccountFacts {
            account,
            spreadsheet_id: None,
            sheet_gid: None,
        }
    }

    fn urls(links: &[RecordLink]) -> BTreeMap<&str, Option<&str>> {
        links
            .iter()
            .map(|l| (l.kind.as_str(), l.url.as_deref()))
            .collect()
    }

    #[test]
    fn hubspot_contacts_and_deals_open_on_the_portal_and_notes_have_no_page() {
        let account = account(&[("hub_id", "4242"), ("user_id", "7")]);
        let links = record_links(
            Provider::Hubspot,
            &facts(&account),
            &records(&[("contact", "101"), ("deal", "202"), ("note", "303")]),
        );
        let urls = urls(&links);
        assert_eq!(
            urls["contact"],
            Some("https://app.hubspot.com/contacts/4242/record/0-1/101")
        );
        assert_eq!(
            urls["deal"],
            Some("https://app.hubspot.com/contacts/4242/record/0-3/202")
        );
        assert_eq!(urls["note"], None);
        assert_eq!(links.iter().find(|l| l.kind == "note").unwrap().id, "303");
    }

    #[test]
    fn hubspot_without_a_numeric_portal_gets_no_links() {
        for hub in ["", "12a", "../x"] {
            let account = account(&[("hub_id", hub)]);
            assert_eq!(
                record_url(Provider::Hubspot, &facts(&account), "contact", "1"),
                None
            );
        }
    }

    #[test]
    fn salesforce_records_open_in_lightning_on_the_orgs_instance() {
        let account = account(&[
            ("instance_url", "https://acme.my.salesforce.com"),
            ("org_id", "00D000000000001"),
        ]);
        let links = record_links(
            Provider::Salesforce,
            &facts(&account),
            &records(&[
                ("lead", "00Q5e000001AbcdEAA"),
                ("contact", "0035e000001AbcdAAA"),
                ("account", "0015e000001AbcdAAA"),
                ("opportunity", "0065e000001AbcdAAA"),
                ("task", "00T5e000001AbcdEAA"),
            ]),
        );
        let urls = urls(&links);
        let base = "https://acme.my.salesforce.com/lightning/r";
        assert_eq!(
            urls["lead"].unwrap(),
            format!("{base}/Lead/00Q5e000001AbcdEAA/view")
        );
        assert_eq!(
            urls["contact"].unwrap(),
            format!("{base}/Contact/0035e000001AbcdAAA/view")
        );
        assert_eq!(
            urls["account"].unwrap(),
            format!("{base}/Account/0015e000001AbcdAAA/view")
        );
        assert_eq!(
            urls["opportunity"].unwrap(),
            format!("{base}/Opportunity/0065e000001AbcdAAA/view")
        );
        assert_eq!(
            urls["task"].unwrap(),
            format!("{base}/Task/00T5e000001AbcdEAA/view")
        );
    }

    #[test]
    fn salesforce_keeps_only_the_instance_origin() {
        let account = account(&[("instance_url", "https://acme.my.salesforce.com/some/path/")]);
        assert_eq!(
            record_url(Provider::Salesforce, &facts(&account), "lead", "00Q1").as_deref(),
            Some("https://acme.my.salesforce.com/lightning/r/Lead/00Q1/view")
        );
        let none = account_none();
        assert_eq!(
            record_url(Provider::Salesforce, &facts(&none), "lead", "00Q1"),
            None
        );
    }

    fn account_none() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn zoho_records_open_on_the_data_centres_crm_host_and_org() {
        for (dc, host) in [
            ("us", "crm.zoho.com"),
            ("eu", "crm.zoho.eu"),
            ("in", "crm.zoho.in"),
            ("au", "crm.zoho.com.au"),
            ("jp", "crm.zoho.jp"),
            ("ca", "crm.zohocloud.ca"),
            ("cn", "crm.zoho.com.cn"),
            ("sa", "crm.zoho.sa"),
        ] {
            let account = account(&[("data_centre", dc), ("org_id", "60012345")]);
            let links = record_links(
                Provider::Zoho,
                &facts(&account),
                &records(&[
                    ("lead", "5725767000000411001"),
                    ("contact", "5725767000000411002"),
                    ("deal", "5725767000000411003"),
                    ("account", "5725767000000411004"),
                    ("note", "5725767000000411005"),
                ]),
            );
            let urls = urls(&links);
            let base = format!("https://{host}/crm/org60012345/tab");
            assert_eq!(
                urls["lead"].unwrap(),
                format!("{base}/Leads/5725767000000411001")
            );
            assert_eq!(
                urls["contact"].unwrap(),
                format!("{base}/Contacts/5725767000000411002")
            );
            assert_eq!(
                urls["deal"].unwrap(),
                format!("{base}/Deals/5725767000000411003")
            );
            assert_eq!(
                urls["account"].unwrap(),
                format!("{base}/Accounts/5725767000000411004")
            );
            assert_eq!(urls["note"], None);
        }
    }

    #[test]
    fn zoho_with_an_unknown_data_centre_or_no_org_gets_no_links() {
        for pairs in [
            vec![("data_centre", "xx"), ("org_id", "1")],
            vec![("data_centre", "us")],
        ] {
            let account = account(&pairs);
            assert_eq!(
                record_url(Provider::Zoho, &facts(&account), "lead", "1"),
                None
            );
        }
    }

    #[test]
    fn freshsales_links_follow_the_accounts_domain_form() {
        let bundle = account(&[("domain", "acme.myfreshworks.com")]);
        let links = record_links(
            Provider::Freshsales,
            &facts(&bundle),
            &records(&[("contact", "16000001"), ("deal", "16000002"), ("note", "3")]),
        );
        let urls = urls(&links);
        assert_eq!(
            urls["contact"],
            Some("https://acme.myfreshworks.com/crm/sales/contacts/16000001")
        );
        assert_eq!(
            urls["deal"],
            Some("https://acme.myfreshworks.com/crm/sales/deals/16000002")
        );
        assert_eq!(urls["note"], None);

        let legacy = account(&[("domain", "acme.freshsales.io")]);
        assert_eq!(
            record_url(Provider::Freshsales, &facts(&legacy), "contact", "9").as_deref(),
            Some("https://acme.freshsales.io/contacts/9")
        );
        let foreign = account(&[("domain", "evil.example.com")]);
        assert_eq!(
            record_url(Provider::Freshsales, &facts(&foreign), "contact", "9"),
            None
        );
    }

    #[test]
    fn bitrix24_cards_open_on_the_portal_and_comments_have_no_page() {
        let portal = account(&[("portal", "acme.bitrix24.com"), ("member_id", "abc")]);
        let links = record_links(
            Provider::Bitrix24,
            &facts(&portal),
            &records(&[("contact", "12"), ("deal", "34"), ("comment", "56")]),
        );
        let urls = urls(&links);
        assert_eq!(
            urls["contact"],
            Some("https://acme.bitrix24.com/crm/contact/details/12/")
        );
        assert_eq!(
            urls["deal"],
            Some("https://acme.bitrix24.com/crm/deal/details/34/")
        );
        assert_eq!(urls["comment"], None);
        let foreign = account(&[("portal", "acme.example.com")]);
        assert_eq!(
            record_url(Provider::Bitrix24, &facts(&foreign), "deal", "34"),
            None
        );
    }

    #[test]
    fn a_sheets_row_opens_at_its_range_in_its_tab_when_the_gid_is_known() {
        let empty = account_none();
        let id = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";
        let with_gid = AccountFacts {
            account: &empty,
            spreadsheet_id: Some(id),
            sheet_gid: Some(1234),
        };
        assert_eq!(
            record_url(Provider::GoogleSheets, &with_gid, "row", "'Leads'!A5:I5").as_deref(),
            Some(
                "https://docs.google.com/spreadsheets/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit#gid=1234&range=A5:I5"
            )
        );
        let without = AccountFacts {
            sheet_gid: None,
            ..with_gid
        };
        let links = record_links(
            Provider::GoogleSheets,
            &without,
            &records(&[("row", "'It''s ours'!A7:I7")]),
        );
        assert_eq!(links[0].id, "'It''s ours'!A7:I7");
        assert_eq!(
            links[0].url.as_deref(),
            Some(
                "https://docs.google.com/spreadsheets/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit#range=A7:I7"
            )
        );
        let no_sheet = AccountFacts {
            spreadsheet_id: None,
            ..with_gid
        };
        assert_eq!(
            record_url(Provider::GoogleSheets, &no_sheet, "row", "'Leads'!A5:I5"),
            None
        );
    }

    #[test]
    fn an_id_that_could_leave_its_path_segment_is_not_linked() {
        let account = account(&[("hub_id", "1")]);
        for id in ["1/../../x", "1?x=y", "1#f", "", "a b"] {
            assert_eq!(
                record_url(Provider::Hubspot, &facts(&account), "contact", id),
                None,
                "{id}"
            );
        }
    }
}
