//! Many leads' rows in a few calls: one read of the lead-id column, one `values.batchUpdate` for
//! the rows that exist (and the header of an empty sheet), one `values.append` with every new
//! row.
//!
//! | batch | calls |
//! | --- | --- |
//! | new leads | lead-id column (1), append (1): 2 (+ first row and header on an empty sheet: 4) |
//! | leads with rows | lead-id column (1), batchUpdate (1): 2 |
//! | both | 3 |
//!
//! `values.batchUpdate` writes each range as `values.update` would, so a resend overwrites the
//! same cells with the same values
//! (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/batchUpdate>);
//! `values.append` takes many rows and names the range it wrote in `updates.updatedRange`
//! (<https://developers.google.com/sheets/api/reference/rest/v4/spreadsheets.values/append>).
//!
//! Exactly once, as one lead at a time ([`super::push`]): every row is found by its lead id in
//! column I, read before anything is written, so a row whose append answer was lost is updated,
//! not appended again. The intent to append is noted on each new lead and all of them stored in
//! one write before the sheet's first write; the rows' ranges are noted from the append's answer
//! and stored in one write. A lead that appears twice in one batch is pushed alone afterwards
//! (it finds the row its twin appended); so is a batch of one lead (the same calls either way).

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::push::{append, push_lead, read, spreadsheet, ROW};
use super::sheet::{self, a1, row_of, HEADER, LAST_COLUMN};
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::provider::{is_session_error, LeadBatch, Session};
use crate::registry::Provider;
use crate::store::ConnectionSettings;

pub(super) async fn push_leads(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
) -> Result<(), ProviderError> {
    let (id, title) = spreadsheet(settings)?;
    let open = batch.open();
    if open.len() <= 1 {
        // A lone lead: the same calls either way; the one-lead push is the tested path.
        return push_alone(session, settings, batch, open).await;
    }
    let column = format!("{LAST_COLUMN}:{LAST_COLUMN}");
    let ids = read(session, id, &a1(title, &column)).await?;
    // The first row holding each lead id, 1-based.
    let mut rows: HashMap<String, usize> = HashMap::new();
    for (index, row) in ids.iter().enumerate() {
        if let Some(lead_id) = row.first().and_then(Value::as_str) {
            rows.entry(lead_id.to_string()).or_insert(index + 1);
        }
    }

    let mut data: Vec<Value> = Vec::new();
    let mut appends: Vec<usize> = Vec::new();
    let mut alone: Vec<usize> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for index in batch.open() {
        let item = batch.lead_mut(index);
        let lead = item.lead;
        if !seen.insert(lead.id.clone()) {
            alone.push(index);
            continue;
        }
        let values = sheet::row(lead);
        match rows.get(&lead.id) {
            // Its row, wherever it is now (moved, or appended by an answer that was lost).
            Some(&n) => {
                let range = a1(title, &format!("A{n}:{LAST_COLUMN}{n}"));
                if item.progress.in_doubt(ROW) {
                    tracing::info!(
                        "the row of an append whose answer was lost was found by its lead id"
                    );
                }
                data.push(json!({"range": range, "majorDimension": "ROWS", "values": [values]}));
                item.progress.note_record(ROW, range);
            }
            None => {
                // A row recorded before but gone from the sheet is not the lead's any more.
                item.progress.records.remove(ROW);
                item.progress.note_intent(ROW);
                appends.push(index);
            }
        }
    }
    if ids.is_empty() && !appends.is_empty() {
        let first = a1(title, &format!("A1:{LAST_COLUMN}1"));
        if read(session, id, &first).await?.is_empty() {
            let header: Vec<Value> = HEADER.iter().map(|h| json!(h)).collect();
            data.insert(
                0,
                json!({"range": first, "majorDimension": "ROWS", "values": [header]}),
            );
        }
    }

    // Stored before the sheet's first write: the intents of the appends, the rows found.
    batch.save().await?;
    if !data.is_empty() {
        batch_update(session, id, data).await?;
    }
    if !appends.is_empty() {
        let values: Vec<Value> = appends
            .iter()
            .map(|&index| Value::Array(sheet::row(batch.leads()[index].lead)))
            .collect();
        let written = append(session, id, title, values).await?;
        let start = row_of(&written).ok_or_else(|| ProviderError::Garbage {
            provider: Provider::GoogleSheets,
            status: 200,
            detail: "the append's answer names no row".into(),
        })?;
        for (k, &index) in appends.iter().enumerate() {
            let n = start + k as u64;
            batch
                .lead_mut(index)
                .progress
                .note_record(ROW, a1(title, &format!("A{n}:{LAST_COLUMN}{n}")));
        }
        tracing::info!(rows = appends.len(), "leads appended as rows");
        batch.save().await?;
    }

    push_alone(session, settings, batch, alone).await
}

/// These leads one after the other through the one-lead push, each journaled as it goes.
async fn push_alone(
    session: &Session<'_>,
    settings: Option<&ConnectionSettings>,
    batch: &mut LeadBatch<'_>,
    indexes: Vec<usize>,
) -> Result<(), ProviderError> {
    for index in indexes {
        let item = batch.lead_mut(index);
        let lead = item.lead;
        if let Err(error) = push_lead(session, lead, settings, &mut item.progress).await {
            if error.is_retryable() || is_session_error(&error) {
                return Err(error);
            }
            batch.fail(index, error);
        }
    }
    batch.save().await
}

/// `POST .../values:batchUpdate` with `valueInputOption=RAW`: each range overwritten. Safe to
/// resend. The answer must be Google's, one response per range written.
async fn batch_update(
    session: &Session<'_>,
    id: &str,
    data: Vec<Value>,
) -> Result<(), ProviderError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Written {
        #[serde(rename = "updatedRange")]
        _updated_range: String,
    }
    #[derive(Deserialize)]
    struct Answer {
        responses: Vec<Written>,
    }
    let ranges = data.len();
    let request = session
        .request(
            "values.batchUpdate",
            Method::POST,
            &format!("/v4/spreadsheets/{id}/values:batchUpdate"),
        )
        .json(json!({"valueInputOption": "RAW", "data": data}))
        .idempotency(Idempotency::Safe);
    let answer: Answer = super::read(session.http.send(request).await?)?.json()?;
    if answer.responses.len() != ranges {
        return Err(ProviderError::Garbage {
            provider: Provider::GoogleSheets,
            status: 200,
            detail: format!(
                "batchUpdate answered {} ranges for {ranges}",
                answer.responses.len()
            ),
        });
    }
    Ok(())
}
