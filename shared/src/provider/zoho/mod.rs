//! Zoho CRM: OAuth per data centre (`account.rs`), the v8 REST API with its per-record error
//! envelope (`envelope.rs`), Leads with upsert, conversion into Contact and Deal, and notes
//! (`push.rs`), many leads at once with the multi-record APIs (`batch.rs`). Facts checked
//! against Zoho's v8 OpenAPI specs (`zoho/crm-oas`) and Zoho's OAuth pages; see
//! docs/providers/zoho.md.

mod account;
mod batch;
mod envelope;
mod mapping;
mod push;

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::{CrmProvider, LeadBatch, Pipeline, PropertyInfo, PushProgress, Session};
use crate::error::ProviderError;
use crate::lead::{ContactField, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::ConnectionSettings;

/// Every API path starts here: v8, the version Zoho publishes OpenAPI specs for.
pub(crate) const API: &str = "/crm/v8";

pub struct Zoho;

#[async_trait]
impl CrmProvider for Zoho {
    fn provider(&self) -> Provider {
        Provider::Zoho
    }

    fn auth_scheme(&self) -> &'static str {
        "Zoho-oauthtoken"
    }

    fn token_origin_from_callback(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<Url>, ProviderError> {
        account::token_origin_from_callback(params)
    }

    /// `accounts-server` must be a Zoho accounts host and `location` the code of its data
    /// centre (the US one when Zoho names no accounts server).
    fn check_callback_hosts(
        &self,
        params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<(), String> {
        account::check_callback_hosts(params)
    }

    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
        callback_params: &BTreeMap<String, String>,
        _login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        let api_domain = tokens.extras.get("api_domain").and_then(|v| v.as_str());
        account::from_connect(api_domain, callback_params)
    }

    /// `GET /org`: the organisation the consent was for, so a reconnect to another org is
    /// told apart from a reconnect to the same one (and the new token is proven to work).
    async fn account_details(
        &self,
        session: &Session<'_>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        #[derive(Deserialize)]
        struct Orgs {
            org: Vec<serde_json::Value>,
        }
        let orgs: Orgs = read(
            session,
            session.request("org.read", Method::GET, &format!("{API}/org")),
        )
        .await?;
        let id = orgs
            .org
            .first()
            .and_then(envelope::id_of)
            .ok_or(ProviderError::Garbage {
                provider: Provider::Zoho,
                status: 200,
                detail: "the org answer names no organisation".into(),
            })?;
        Ok(BTreeMap::from([("org_id".to_string(), id)]))
    }

    fn api_base(
        &self,
        _config: &crate::config::Config,
        default_base: Url,
        account: &BTreeMap<String, String>,
    ) -> Url {
        account::stored_origin(account, account::API_DOMAIN).unwrap_or(default_base)
    }

    fn token_origin(&self, account: &BTreeMap<String, String>) -> Option<Url> {
        account::stored_origin(account, account::ACCOUNTS_SERVER)
    }

    fn converts_leads(&self) -> bool {
        true
    }

    fn default_lead_properties(&self) -> (Option<&'static str>, Option<&'static str>) {
        (Some("Lead_Source"), Some("Rating"))
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        list_pipelines(session).await
    }

    /// A field of the Leads module, from `GET /settings/fields?module=Leads`.
    async fn describe_contact_property(
        &self,
        session: &Session<'_>,
        name: &str,
    ) -> Result<Option<PropertyInfo>, ProviderError> {
        let mut request = session.request(
            "fields.list",
            Method::GET,
            &format!("{API}/settings/fields"),
        );
        request.url.query_pairs_mut().append_pair("module", "Leads");
        let fields: mapping::FieldsResponse = read(session, request).await?;
        Ok(fields
            .fields
            .into_iter()
            .find(|f| f.api_name == name)
            .map(mapping::property_info))
    }

    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
    ) -> Result<Option<String>, ProviderError> {
        push::search_lead(session, field, value).await
    }

    async fn sync_contact(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        existing_id: Option<&str>,
    ) -> Result<String, ProviderError> {
        push::sync_lead(session, lead, None, existing_id).await
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

    /// New leads in one Leads upsert and one Notes create per 100 (`batch.rs`); the others
    /// one by one.
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        batch::push_leads(session, settings, batch).await
    }
}

/// Deal pipelines are per layout: `GET /settings/layouts?module=Deals`, then
/// `GET /settings/pipeline?layout_id=` for each active layout (the spec requires the id).
pub(super) async fn list_pipelines(session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
    let mut request = session.request(
        "layouts.list",
        Method::GET,
        &format!("{API}/settings/layouts"),
    );
    request.url.query_pairs_mut().append_pair("module", "Deals");
    let layouts: mapping::LayoutsResponse = read(session, request).await?;
    let mut responses = Vec::new();
    for layout in layouts.layouts.iter().filter(|l| l.is_active()) {
        let mut request = session.request(
            "pipelines.list",
            Method::GET,
            &format!("{API}/settings/pipeline"),
        );
        request
            .url
            .query_pairs_mut()
            .append_pair("layout_id", &layout.id);
        let response = session.http.send(request).await?;
        // 204: a layout without pipelines.
        if response.status == 204 {
            continue;
        }
        if !response.is_success() {
            return Err(failure(response));
        }
        responses.push(response.json()?);
    }
    Ok(mapping::pipelines(responses))
}

/// A GET whose 2xx answer is read as `T`.
async fn read<T: serde::de::DeserializeOwned>(
    session: &Session<'_>,
    request: crate::http::OutboundRequest,
) -> Result<T, ProviderError> {
    let response = session.http.send(request).await?;
    if !response.is_success() {
        return Err(failure(response));
    }
    response.json()
}

/// The error a non-2xx answer carries.
fn failure(response: crate::http::HttpResponse) -> ProviderError {
    let status = response.status;
    envelope::single_record(response)
        .err()
        .unwrap_or(ProviderError::Garbage {
            provider: Provider::Zoho,
            status,
            detail: "a failed answer read as a success".into(),
        })
}
