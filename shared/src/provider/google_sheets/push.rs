//! One row per lead, found again by the lead id in column I:
//!
//! | lead | calls |
//! | --- | --- |
//! | first lead in an empty sheet | lead-id column (1), first row (1), header (1), append (1): 4 |
//! | new lead | lead-id column (1), append (1): 2 |
//! | repeated lead | its row read back (1), row update (1): 2 |
//! | repeated lead whose row moved (sorted, rows deleted) | + lead-id column (1) |
//! | identical replay | none (recognised before this module is called) |
//!
//! Every write uses `valueInputOption=RAW`, so no cell is ever read as a formula. The lead
//! mapping keeps the row's range under `row`; a row that no longer holds the lead's id (someone
//! sorted the sheet) is looked up again rather than overwritten.
//!
//! Exactly once: `values.append` has no idempotency key, and resending it adds a second row
//! (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/append>).
//! So the intent to add the row is stored before the sheet's first write (the header on an
//! empty sheet, else the append), the row's range is stored right after the append, and every
//! push that has no row recorded reads the lead-id column before appending: a row whose append
//! answer was lost, or whose push was killed before recording it, is found there and updated.
//! The header and row updates are `values.update` on a fixed range, which a resend overwrites
//! with the same cells
//! (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/update>): a
//! header written twice is still one header, and the next push sees column I in use and writes
//! no header at all.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::sheet::{self, a1, HEADER, LAST_COLUMN};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::Lead;
use crate::provider::{PushProgress, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// The record kind in the lead mapping: the row's A1 range.
pub(super) const ROW: &str = "row";

pub(super) async fn push_lead(
    session: &Session<'_>,
    lead: &Lead,
    settings: Option<&ConnectionSettings>,
    progress: &mut PushProgress,
) -> Result<(), ProviderError> {
    let (id, title) = spreadsheet(settings)?;
    let values = sheet::row(lead);
    if let Some(range) = progress.records.get(ROW).cloned() {
        if holds_lead(session, id, &range, &lead.id).await? {
            return write(session, id, &range, values).await;
        }
        tracing::warn!("the lead's row moved; looking it up again");
    }
    let ids = read(
        session,
        id,
        &a1(title, &format!("{LAST_COLUMN}:{LAST_COLUMN}")),
    )
    .await?;
    // A row already holding the lead: its row moved, or an append's answer was lost (or its
    // push was killed before the range was stored).
    if let Some(index) = ids
        .iter()
        .position(|r| r.first().and_then(Value::as_str) == Some(lead.id.as_str()))
    {
        if progress.in_doubt(ROW) {
            tracing::info!("the row of an append whose answer was lost was found by its lead id");
        }
        let n = index + 1;
        let range = a1(title, &format!("A{n}:{LAST_COLUMN}{n}"));
        write(session, id, &range, values).await?;
        return progress.record(ROW, range).await;
    }
    // A row recorded before but gone from the sheet (deleted by hand): not the lead's any more.
    progress.forget(ROW).await?;
    // Stored before the sheet's first write for this lead, so a push killed after the header
    // or the append is known to have been under way.
    progress.intend(ROW).await?;
    if ids.is_empty() {
        let first = a1(title, &format!("A1:{LAST_COLUMN}1"));
        if read(session, id, &first).await?.is_empty() {
            let header = HEADER.iter().map(|h| json!(h)).collect();
            write(session, id, &first, header).await?;
        }
    }
    let range = append(session, id, title, vec![Value::Array(values)]).await?;
    tracing::info!("lead appended as a row");
    progress.record(ROW, range).await
}

/// The spreadsheet and tab the settings name.
pub(super) fn spreadsheet(
    settings: Option<&ConnectionSettings>,
) -> Result<(&str, &str), ProviderError> {
    settings
        .and_then(|s| Some((s.pipeline_id.as_str(), s.sheet.as_deref()?)))
        .ok_or(ProviderError::Rejected {
            provider: Provider::GoogleSheets,
            status: 0,
            code: "NO_SPREADSHEET".into(),
            message: "no spreadsheet is chosen in the settings".into(),
        })
}

/// A range in a URL path: Google reads it percent-encoded (titles may hold `/`, `#`, spaces).
pub(super) fn path_range(range: &str) -> String {
    range
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'!' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `GET .../values/{range}`: the rows (empty when the range is empty).
pub(super) async fn read(
    session: &Session<'_>,
    id: &str,
    range: &str,
) -> Result<Vec<Vec<Value>>, ProviderError> {
    #[derive(Deserialize)]
    struct Values {
        #[serde(default)]
        values: Vec<Vec<Value>>,
    }
    let request = session.request(
        "values.get",
        Method::GET,
        &format!("/v4/spreadsheets/{id}/values/{}", path_range(range)),
    );
    let answer: Values = super::read(session.http.send(request).await?)?.json()?;
    Ok(answer.values)
}

/// Whether the row at `range` still holds the lead (its id in the last column).
async fn holds_lead(
    session: &Session<'_>,
    id: &str,
    range: &str,
    lead_id: &str,
) -> Result<bool, ProviderError> {
    let rows = read(session, id, range).await?;
    Ok(rows
        .first()
        .and_then(|r| r.get(HEADER.len() - 1))
        .and_then(Value::as_str)
        == Some(lead_id))
}

/// `PUT .../values/{range}?valueInputOption=RAW`: overwrites one row. Safe to resend. The
/// answer must be Google's (naming the range written): a 2xx that is not, such as a proxy's page,
/// does not prove the write happened, and is reported unreadable (retried).
async fn write(
    session: &Session<'_>,
    id: &str,
    range: &str,
    values: Vec<Value>,
) -> Result<(), ProviderError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "updatedRange")]
        _updated_range: String,
    }
    let mut request = session
        .request(
            "values.update",
            Method::PUT,
            &format!("/v4/spreadsheets/{id}/values/{}", path_range(range)),
        )
        .json(json!({"range": range, "majorDimension": "ROWS", "values": [values]}))
        .idempotency(Idempotency::Safe);
    request
        .url
        .query_pairs_mut()
        .append_pair("valueInputOption", "RAW");
    let _: Answer = super::read(session.http.send(request).await?)?.json()?;
    Ok(())
}

/// `POST .../values/{title}!A:I:append`: new rows after the table (one lead's, or a batch's);
/// returns the range written. Not resent once it may have reached Google (it would add the rows
/// twice); a retry finds the rows by their lead ids.
pub(super) async fn append(
    session: &Session<'_>,
    id: &str,
    title: &str,
    rows: Vec<Value>,
) -> Result<String, ProviderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Updates {
        updated_range: String,
    }
    #[derive(Deserialize)]
    struct Answer {
        updates: Updates,
    }
    let range = a1(title, &format!("A:{LAST_COLUMN}"));
    let mut request = session
        .request(
            "values.append",
            Method::POST,
            &format!("/v4/spreadsheets/{id}/values/{}:append", path_range(&range)),
        )
        .json(json!({"range": range, "majorDimension": "ROWS", "values": rows}))
        .idempotency(Idempotency::Unsafe);
    request
        .url
        .query_pairs_mut()
        .append_pair("valueInputOption", "RAW")
        .append_pair("insertDataOption", "INSERT_ROWS");
    let answer: Answer = super::read(session.http.send(request).await?)?.json()?;
    Ok(answer.updates.updated_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_encoded_for_the_path() {
        assert_eq!(path_range("'Leads'!A1:I1"), "%27Leads%27!A1:I1");
        assert_eq!(
            path_range("'Q3 / Doha #2'!I:I"),
            "%27Q3%20%2F%20Doha%20%232%27!I:I"
        );
    }
}
