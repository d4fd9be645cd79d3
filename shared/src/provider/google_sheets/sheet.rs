//! Spreadsheets as the browser shows them and ranges as the Sheets API reads them: the id in
//! whatever URL the tenant pastes, A1 ranges with quoted sheet titles, and the lead's row.

use serde_json::{json, Value};

use crate::lead::{truncate_chars, Lead};

/// The row's columns, in order (documented in docs/providers/google_sheets.md).
pub(super) const HEADER: [&str; 9] = [
    "Time", "Name", "Phone", "Email", "Source", "Score", "Stage", "Summary", "Lead ID",
];
/// The last column (`I`): the lead id, by which a lead's row is found again.
pub(super) const LAST_COLUMN: char = 'I';
/// Google's limit for one cell.
const CELL_LIMIT: usize = 50_000;

/// A spreadsheet the tenant named: its id and, when the URL named one, the tab (`gid`).
#[derive(Debug, PartialEq, Eq)]
pub struct SpreadsheetRef {
    pub id: String,
    pub sheet_id: Option<i64>,
}

fn is_id(candidate: &str) -> bool {
    (25..=128).contains(&candidate.len())
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The spreadsheet in a URL as the browser gives it (`/spreadsheets/d/{id}/edit#gid=0`,
/// `/spreadsheets/u/1/d/{id}/edit?usp=sharing`, without the scheme), or a bare id. Only
/// `docs.google.com` URLs are accepted.
pub fn parse_spreadsheet(raw: &str) -> Result<SpreadsheetRef, String> {
    let raw = raw.trim();
    if is_id(raw) {
        return Ok(SpreadsheetRef {
            id: raw.to_string(),
            sheet_id: None,
        });
    }
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|_| "spreadsheet_url is not a spreadsheet's URL or id".to_string())?;
    if url.scheme() != "https" || url.host_str() != Some("docs.google.com") {
        return Err(
            "spreadsheet_url must be a https://docs.google.com/spreadsheets/... URL".into(),
        );
    }
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let id = segments
        .windows(2)
        .find(|pair| pair[0] == "d" && is_id(pair[1]))
        .map(|pair| pair[1].to_string())
        .filter(|_| segments.first() == Some(&"spreadsheets"))
        .ok_or_else(|| {
            "spreadsheet_url names no spreadsheet (…/spreadsheets/d/<id>/…)".to_string()
        })?;
    // The tab: `#gid=123` (what the address bar shows) or `?gid=123`.
    let gid_of = |text: &str| {
        text.split(['&', '#'])
            .find_map(|pair| pair.strip_prefix("gid="))
            .and_then(|v| v.parse::<i64>().ok())
    };
    let sheet_id = url
        .fragment()
        .and_then(gid_of)
        .or_else(|| url.query().and_then(gid_of));
    Ok(SpreadsheetRef { id, sheet_id })
}

/// `'title'!range`, the title quoted (and its quotes doubled) so any title is one token.
pub fn a1(title: &str, range: &str) -> String {
    format!("'{}'!{range}", title.replace('\'', "''"))
}

/// The 1-based row of an A1 range such as `'Leads'!A5:I5`.
pub fn row_of(range: &str) -> Option<u64> {
    let cells = range.rsplit('!').next()?;
    let first = cells.split(':').next()?;
    first
        .trim_start_matches(|c: char| c.is_ascii_alphabetic() || c == '$')
        .parse()
        .ok()
}

/// The lead as a row. Values are written with `valueInputOption=RAW`: Sheets stores each as
/// given and never reads a cell as a formula, whatever it starts with (`=`, `+`, `-`, `@`).
pub fn row(lead: &Lead) -> Vec<Value> {
    let text =
        |v: Option<&str>| json!(v.map(|t| truncate_chars(t, CELL_LIMIT)).unwrap_or_default());
    vec![
        json!(lead
            .occurred_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()),
        text(Some(&lead.full_name)),
        text(lead.phone.as_deref()),
        text(lead.email.as_deref()),
        text(lead.source.as_deref()),
        lead.score.map(|s| json!(s)).unwrap_or(json!("")),
        json!(lead.stage.to_string()),
        text(lead.summary.as_deref()),
        json!(lead.id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";

    #[test]
    fn every_url_form_the_browser_gives_yields_the_id_and_tab() {
        for (pasted, gid) in [
            (
                format!("https://docs.google.com/spreadsheets/d/{ID}/edit#gid=0"),
                Some(0),
            ),
            (
                format!("https://docs.google.com/spreadsheets/d/{ID}/edit?usp=sharing"),
                None,
            ),
            (
                format!("https://docs.google.com/spreadsheets/u/1/d/{ID}/edit#gid=1822"),
                Some(1822),
            ),
            (format!("docs.google.com/spreadsheets/d/{ID}"), None),
            (
                format!("https://docs.google.com/spreadsheets/d/{ID}/edit?gid=42#gid=42"),
                Some(42),
            ),
            (ID.to_string(), None),
        ] {
            let parsed = parse_spreadsheet(&pasted).unwrap_or_else(|e| panic!("{pasted}: {e}"));
            assert_eq!(
                parsed,
                SpreadsheetRef {
                    id: ID.to_string(),
                    sheet_id: gid
                },
                "{pasted}"
            );
        }
    }

    #[test]
    fn other_hosts_and_shapes_are_refused() {
        for bad in [
            format!("https://docs.google.com.evil.example/spreadsheets/d/{ID}/edit"),
            format!("http://docs.google.com/spreadsheets/d/{ID}/edit"),
            format!("https://docs.google.com/document/d/{ID}/edit"),
            "https://docs.google.com/spreadsheets/d/short/edit".to_string(),
            "not a url at all".to_string(),
        ] {
            assert!(parse_spreadsheet(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles_are_quoted_and_rows_read_back() {
        assert_eq!(a1("Leads", "A1:I1"), "'Leads'!A1:I1");
        assert_eq!(a1("Bob's leads", "I:I"), "'Bob''s leads'!I:I");
        assert_eq!(row_of("'Leads'!A5:I5"), Some(5));
        assert_eq!(row_of("Sheet1!A12:I12"), Some(12));
        assert_eq!(row_of("'A!B'!A3:I3"), Some(3));
    }
}
