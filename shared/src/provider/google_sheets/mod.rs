//! Google Sheets: one row per lead in the spreadsheet the tenant names (`sheet.rs` reads its URL
//! and builds the row), appended or updated through the Sheets API v4 (`push.rs`). OAuth is
//! Google's, with offline access for a refresh token and the `spreadsheets` scope. Many leads
//! at once: one append and one batch update per batch (`batch.rs`).

mod batch;
mod push;
pub mod sheet;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::{CrmProvider, LeadBatch, Pipeline, PushProgress, Session};
use crate::error::ProviderError;
use crate::http::HttpResponse;
use crate::lead::{ContactField, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::ConnectionSettings;

pub struct GoogleSheets;

/// A spreadsheet's tab.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tab {
    pub sheet_id: i64,
    pub title: String,
}

/// What `spreadsheets.get` says of a spreadsheet the connected user can open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spreadsheet {
    pub id: String,
    pub title: String,
    pub tabs: Vec<Tab>,
}

#[async_trait]
impl CrmProvider for GoogleSheets {
    fn provider(&self) -> Provider {
        Provider::GoogleSheets
    }

    /// Google's token answer names no account; the spreadsheet comes with the settings.
    fn account_from_tokens(
        &self,
        _tokens: &TokenSet,
        _callback_params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        Ok(BTreeMap::new())
    }

    /// A spreadsheet has no pipelines: the settings name the spreadsheet instead.
    async fn get_pipelines(&self, _session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        Ok(Vec::new())
    }

    /// No duplicate search: a lead's row is found by its lead id (see `push`).
    async fn find_contact(
        &self,
        _session: &Session<'_>,
        _field: ContactField,
        _value: &str,
    ) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// Writes the lead's row; returns its range.
    async fn sync_contact(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        existing_id: Option<&str>,
    ) -> Result<String, ProviderError> {
        let mut progress = PushProgress::default();
        if let Some(range) = existing_id {
            progress.records.insert(push::ROW.into(), range.to_string());
        }
        push::push_lead(session, lead, None, &mut progress).await?;
        Ok(progress.records[push::ROW].clone())
    }

    async fn push_lead(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        settings: Option<&ConnectionSettings>,
        progress: &mut PushProgress,
    ) -> Result<(), ProviderError> {
        push::push_lead(session, lead, settings, progress).await
    }

    /// One read of the lead-id column, one batch update for the rows that exist, one append
    /// for the new ones.
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        batch::push_leads(session, settings, batch).await
    }
}

/// `GET /v4/spreadsheets/{id}`: the spreadsheet's title and tabs, which also proves the
/// connected user can open it.
pub async fn open_spreadsheet(
    session: &Session<'_>,
    id: &str,
) -> Result<Spreadsheet, ProviderError> {
    #[derive(Deserialize)]
    struct Properties {
        #[serde(default)]
        title: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct SheetProperties {
        sheet_id: i64,
        title: String,
    }
    #[derive(Deserialize)]
    struct Sheet {
        properties: SheetProperties,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        spreadsheet_id: String,
        properties: Properties,
        #[serde(default)]
        sheets: Vec<Sheet>,
    }
    let mut request = session.request(
        "spreadsheet.get",
        Method::GET,
        &format!("/v4/spreadsheets/{id}"),
    );
    request.url.query_pairs_mut().append_pair(
        "fields",
        "spreadsheetId,properties.title,sheets.properties(sheetId,title)",
    );
    let answer: Answer = read(session.http.send(request).await?)?.json()?;
    Ok(Spreadsheet {
        id: answer.spreadsheet_id,
        title: answer.properties.title,
        tabs: answer
            .sheets
            .into_iter()
            .map(|s| Tab {
                sheet_id: s.properties.sheet_id,
                title: s.properties.title,
            })
            .collect(),
    })
}

/// A 2xx answer, or the error Google's `{"error": {code, message, status}}` stands for: 401 is
/// the token (refreshed once by the caller), anything else a refusal with Google's status.
fn read(response: HttpResponse) -> Result<HttpResponse, ProviderError> {
    if response.is_success() {
        return Ok(response);
    }
    #[derive(Deserialize, Default)]
    struct Detail {
        #[serde(default)]
        status: String,
        #[serde(default)]
        message: String,
    }
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        error: Detail,
    }
    let body: Body = serde_json::from_slice(&response.body).unwrap_or_default();
    let code = if body.error.status.is_empty() {
        format!("http_{}", response.status)
    } else {
        body.error.status
    };
    if response.status == 401 {
        return Err(ProviderError::Unauthorized {
            provider: Provider::GoogleSheets,
            code,
        });
    }
    Err(ProviderError::Rejected {
        provider: Provider::GoogleSheets,
        status: response.status,
        code,
        message: body.error.message.chars().take(300).collect(),
    })
}
