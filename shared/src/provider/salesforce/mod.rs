//! Salesforce: OAuth web-server flow with PKCE at the production, sandbox or My Domain login
//! host (`account.rs`), every API call on the org's own instance and through one sender that
//! watches the org's daily allocation (`api.rs`), the org's objects described once and cached
//! (`schema.rs`), records fitted to them (`mapping.rs`), duplicate detection in escaped SOQL
//! (`soql.rs`), composite pushes (`push.rs`), batch pushes with sObject Collections
//! (`batch.rs`) and lead conversion over SOAP (`soap.rs`). Facts and their sources:
//! docs/providers/salesforce.md.

mod account;
mod api;
mod batch;
mod mapping;
mod push;
mod schema;
mod soap;
mod soql;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use super::{
    CrmProvider, LeadBatch, LoginChoice, Pipeline, PipelineStage, PropertyInfo, PushProgress,
    Session,
};
use crate::config::Config;
use crate::error::ProviderError;
use crate::http::Idempotency;
use crate::lead::{ContactField, ContactQuery, Lead};
use crate::oauth::TokenSet;
use crate::registry::Provider;
use crate::store::ConnectionSettings;
use api::Subrequest;
use schema::MASTER_RECORD_TYPE;

pub struct Salesforce;

#[async_trait]
impl CrmProvider for Salesforce {
    fn provider(&self) -> Provider {
        Provider::Salesforce
    }

    fn login_origin(&self, choice: &LoginChoice) -> Result<Option<Url>, String> {
        account::login_origin(choice)
    }

    /// Salesforce names no host in a consent callback except an Experience Cloud site's
    /// `sfdc_community_url`: it must be a Salesforce host, and the one the consent was sent to.
    fn check_callback_hosts(
        &self,
        params: &BTreeMap<String, String>,
        login_origin: Option<&Url>,
    ) -> Result<(), String> {
        account::check_callback_hosts(params, login_origin)
    }

    fn account_from_tokens(
        &self,
        tokens: &TokenSet,
        _callback_params: &BTreeMap<String, String>,
        login_origin: Option<&Url>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        account::from_tokens(tokens, login_origin)
    }

    fn account_after_refresh(
        &self,
        account: &BTreeMap<String, String>,
        tokens: &TokenSet,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        account::after_refresh(account, tokens)
    }

    /// `{instance_url}/services/data/{version}`: the org's own instance, the configured version.
    fn api_base(
        &self,
        config: &Config,
        default_base: Url,
        account: &BTreeMap<String, String>,
    ) -> Url {
        let Some(mut instance) = account::stored_origin(account, account::INSTANCE_URL) else {
            return default_base;
        };
        instance.set_path(&format!("/services/data/{}", config.salesforce.api_version));
        instance
    }

    /// Refresh and revocation go to the host the user logged in at, never the instance.
    fn token_origin(&self, account: &BTreeMap<String, String>) -> Option<Url> {
        account::stored_origin(account, account::LOGIN_ORIGIN)
    }

    fn converts_leads(&self) -> bool {
        true
    }

    fn maps_lead_fields(&self) -> bool {
        true
    }

    fn default_lead_properties(&self) -> (Option<&'static str>, Option<&'static str>) {
        (
            Some(mapping::DEFAULT_SOURCE_FIELD),
            Some(mapping::DEFAULT_SCORE_FIELD),
        )
    }

    /// Describes the org (at connect, which also proves the token works, the cache is written
    /// afresh: the admin may have changed the org), so the first push and the setup page start
    /// from the cache.
    async fn account_details(
        &self,
        session: &Session<'_>,
    ) -> Result<BTreeMap<String, String>, ProviderError> {
        schema::load(session).await?;
        Ok(BTreeMap::new())
    }

    async fn get_pipelines(&self, session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
        list_pipelines(session).await
    }

    /// A writable field of the Lead, from the (cached) describe.
    async fn describe_contact_property(
        &self,
        session: &Session<'_>,
        name: &str,
    ) -> Result<Option<PropertyInfo>, ProviderError> {
        let (schema, _) = schema::load(session).await?;
        Ok(schema
            .object("Lead")
            .field(name)
            .filter(|f| f.createable && f.updateable)
            .map(|f| PropertyInfo {
                kind: f.general_kind().to_string(),
                options: if f.general_kind() == "enumeration" {
                    f.values.clone()
                } else {
                    Vec::new()
                },
            }))
    }

    async fn find_contact(
        &self,
        session: &Session<'_>,
        field: ContactField,
        value: &str,
    ) -> Result<Option<String>, ProviderError> {
        let query = match field {
            ContactField::Email => ContactQuery {
                email: Some(value.to_string()),
                phone: None,
            },
            ContactField::Phone => ContactQuery {
                email: None,
                phone: Some(value.to_string()),
            },
        };
        let Some(soql) = soql::contacts_matching(&query) else {
            return Ok(None);
        };
        let request = session.request(
            "contacts.query",
            reqwest::Method::GET,
            &api::query_resource(&soql),
        );
        let answer = api::read(api::send(session, request).await?)?;
        Ok(api::records(&answer)
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    async fn sync_contact(
        &self,
        session: &Session<'_>,
        lead: &Lead,
        existing_id: Option<&str>,
    ) -> Result<String, ProviderError> {
        let mut progress = PushProgress::default();
        if let Some(id) = existing_id {
            progress.records.insert("lead".into(), id.to_string());
        }
        push::push_lead(session, lead, None, &mut progress).await?;
        progress
            .records
            .get("contact")
            .or(progress.records.get("lead"))
            .cloned()
            .ok_or(ProviderError::Garbage {
                provider: Provider::Salesforce,
                status: 0,
                detail: "the push named no record".into(),
            })
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

    /// New and known leads in a few sObject Collections calls (`batch.rs`); what a batch does
    /// not cover (contacts, conversions, doubts about them) lead by lead as `push_lead`.
    async fn push_leads(
        &self,
        session: &Session<'_>,
        settings: Option<&ConnectionSettings>,
        batch: &mut LeadBatch<'_>,
    ) -> Result<(), ProviderError> {
        batch::push_leads(session, settings, batch).await
    }
}

/// Opportunity stages as pipelines: one per active record type (its sales process's stages,
/// from the UI API), or one "Opportunities" pipeline of every active stage where the org has no
/// record types. Stage order and closedness come from `OpportunityStage`. One composite call.
async fn list_pipelines(session: &Session<'_>) -> Result<Vec<Pipeline>, ProviderError> {
    let (schema, _) = schema::load(session).await?;
    let record_types: Vec<&schema::RecordType> = schema
        .object("Opportunity")
        .record_types
        .iter()
        .filter(|r| !r.master)
        .collect();
    let mut subrequests = vec![Subrequest {
        method: "GET",
        resource: api::query_resource(soql::OPPORTUNITY_STAGES),
        reference: "stages",
        body: None,
    }];
    // References must be static; record types beyond the composite limit are not listed.
    const REFERENCES: [&str; 24] = [
        "rt0", "rt1", "rt2", "rt3", "rt4", "rt5", "rt6", "rt7", "rt8", "rt9", "rt10", "rt11",
        "rt12", "rt13", "rt14", "rt15", "rt16", "rt17", "rt18", "rt19", "rt20", "rt21", "rt22",
        "rt23",
    ];
    for (record_type, reference) in record_types.iter().zip(REFERENCES) {
        subrequests.push(Subrequest {
            method: "GET",
            resource: format!(
                "/ui-api/object-info/Opportunity/picklist-values/{}/StageName",
                record_type.id
            ),
            reference,
            body: None,
        });
    }
    let results = api::composite(
        session,
        "pipelines.list",
        false,
        subrequests,
        Idempotency::Safe,
    )
    .await?;
    let mut results = results.into_iter();
    let stages = api::records(
        &results
            .next()
            .expect("one result per subrequest")
            .into_result()?,
    );
    let all: Vec<PipelineStage> = stages
        .iter()
        .filter_map(|s| {
            Some(PipelineStage {
                id: s.get("ApiName")?.as_str()?.to_string(),
                label: s
                    .get("MasterLabel")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                display_order: s.get("SortOrder").and_then(Value::as_i64).unwrap_or(0),
                is_closed: s.get("IsClosed").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    if record_types.is_empty() {
        return Ok(vec![Pipeline {
            id: MASTER_RECORD_TYPE.into(),
            label: "Opportunities".into(),
            stages: all,
        }]);
    }
    let mut pipelines = Vec::new();
    for (record_type, result) in record_types.iter().zip(results) {
        let body = result.into_result()?;
        let values: Vec<String> = body
            .get("values")
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        pipelines.push(Pipeline {
            id: record_type.id.clone(),
            label: record_type.label.clone(),
            stages: all
                .iter()
                .filter(|s| values.contains(&s.id))
                .cloned()
                .collect(),
        });
    }
    Ok(pipelines)
}
