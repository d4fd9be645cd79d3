use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{open_session, ConnectionView};
use crate::error::Error;
use crate::identity::Caller;
use crate::lead::LeadField;
use crate::provider::Pipeline;
use crate::registry::Provider;
use crate::services::Services;
use crate::stage::LeadStage;
use crate::store::{ConnectionSettings, ContactProperty};

/// `GET /connections`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant))]
pub async fn list_connections(
    services: &Services,
    caller: &Caller,
) -> Result<Vec<ConnectionView>, Error> {
    let connections = services.store.list_connections(&caller.tenant).await?;
    ConnectionView::with_parked_counts(services, caller, &connections).await
}

/// `GET /connections/{provider}/pipelines`.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn list_pipelines(
    services: &Services,
    caller: &Caller,
    provider: Provider,
) -> Result<Vec<Pipeline>, Error> {
    let mut open = open_session(services, &caller.tenant, provider).await?;
    let implementation = open.implementation;
    open.call(&mut (), |session, _| implementation.get_pipelines(session))
        .await
}

/// Body of `PUT /connections/{provider}/settings`. Unknown LeadRelay stages are refused when
/// the body is parsed.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    /// CRMs: a pipeline from `GET /connections/{provider}/pipelines`.
    #[serde(default)]
    pub pipeline_id: String,
    #[serde(default)]
    pub stage_mapping: BTreeMap<LeadStage, String>,
    /// A contact property to receive the lead's source (text or dropdown).
    #[serde(default)]
    pub source_property: Option<String>,
    /// A contact property to receive the lead's score, 0–100 (number or text).
    #[serde(default)]
    pub score_property: Option<String>,
    /// For CRMs that convert leads (Zoho): the LeadRelay stage at which the lead becomes a
    /// contact and a deal. Without it, leads stay leads.
    #[serde(default)]
    pub convert_at: Option<LeadStage>,
    /// For CRMs that take them (Salesforce): LeadRelay fields sent to fields the tenant names,
    /// such as custom fields (`LeadRelay_Score__c`). Each must exist on the CRM's lead and fit.
    #[serde(default)]
    pub field_mapping: BTreeMap<LeadField, String>,
    /// Google Sheets: the spreadsheet, as its URL (any form the browser shows) or its id.
    #[serde(default)]
    pub spreadsheet_url: Option<String>,
    /// Google Sheets: the tab's title; without it, the tab the URL names (`gid`), else the first.
    #[serde(default)]
    pub sheet: Option<String>,
}

/// `PUT /connections/{provider}/settings`: validates the pipeline and every mapped stage
/// against the provider's live pipelines, then saves them on the connection.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn save_settings(
    services: &Services,
    caller: &Caller,
    provider: Provider,
    input: SettingsInput,
) -> Result<ConnectionView, Error> {
    let mut open = open_session(services, &caller.tenant, provider).await?;
    if !provider.is_crm() {
        let settings = spreadsheet_settings(&mut open, input).await?;
        return store_settings(services, caller, &mut open, settings).await;
    }
    if input.spreadsheet_url.is_some() || input.sheet.is_some() {
        return Err(Error::BadRequest(format!(
            "{provider} is a CRM: spreadsheet_url and sheet are for Google Sheets"
        )));
    }
    if input.pipeline_id.is_empty() {
        return Err(Error::BadRequest("pipeline_id is required".into()));
    }
    let implementation = open.implementation;
    let pipelines = open
        .call(&mut (), |session, _| implementation.get_pipelines(session))
        .await?;
    let pipeline = pipelines
        .iter()
        .find(|p| p.id == input.pipeline_id)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "pipeline {:?} does not exist in {provider}",
                input.pipeline_id
            ))
        })?;
    for (stage, crm_stage) in &input.stage_mapping {
        if !pipeline.stages.iter().any(|s| &s.id == crm_stage) {
            return Err(Error::BadRequest(format!(
                "stage {crm_stage:?} (mapped from {stage}) is not a stage of pipeline {:?}",
                pipeline.label
            )));
        }
    }
    if let Some(stage) = input.convert_at {
        if !implementation.converts_leads() {
            return Err(Error::BadRequest(format!(
                "{provider} has no lead conversion; leave convert_at out"
            )));
        }
        if stage.rank().is_none() {
            return Err(Error::BadRequest(format!(
                "a lead cannot be converted at stage {stage}"
            )));
        }
    }
    let (default_source, default_score) = implementation.default_lead_properties();
    let source_property = chosen_property(
        &mut open,
        input.source_property.as_deref(),
        default_source,
        &["string", "enumeration"],
    )
    .await?;
    let score_property = chosen_property(
        &mut open,
        input.score_property.as_deref(),
        default_score,
        &["number", "string", "enumeration"],
    )
    .await?;
    if !input.field_mapping.is_empty() && !implementation.maps_lead_fields() {
        return Err(Error::BadRequest(format!(
            "{provider} takes no field mapping; leave field_mapping out"
        )));
    }
    let mut field_mapping = BTreeMap::new();
    for (field, name) in &input.field_mapping {
        let property = checked_property(&mut open, name, field.fitting_kinds()).await?;
        field_mapping.insert(*field, property);
    }
    let settings = ConnectionSettings {
        pipeline_id: input.pipeline_id,
        stage_mapping: input.stage_mapping,
        convert_at: input.convert_at,
        source_property,
        score_property,
        field_mapping,
        sheet: None,
        sheet_gid: None,
    };
    store_settings(services, caller, &mut open, settings).await
}

/// Saves checked settings on the connection, with the account facts read again: what the push
/// relies on (Freshsales' lead source ids) stays current.
async fn store_settings(
    services: &Services,
    caller: &Caller,
    open: &mut super::OpenConnection<'_>,
    settings: ConnectionSettings,
) -> Result<ConnectionView, Error> {
    let provider = open.connection.provider;
    let implementation = open.implementation;
    let details = open
        .call(&mut (), |session, _| {
            implementation.account_details(session)
        })
        .await?;
    let mut account = open.connection.account.clone();
    account.extend(details);
    let saved = services
        .store
        .save_settings(
            &caller.tenant,
            provider,
            open.connection.version,
            &settings,
            &account,
        )
        .await?
        .ok_or_else(|| {
            Error::Conflict("the connection changed meanwhile; reload and try again".into())
        })?;
    tracing::info!(pipeline = %settings.pipeline_id, mapped = settings.stage_mapping.len(), "settings saved");
    Ok(ConnectionView::from(&saved))
}

/// Google Sheets: the spreadsheet named by URL or id, opened with the connected account (which
/// proves it may write there) and the tab chosen by title, by the URL's `gid`, or the first.
async fn spreadsheet_settings(
    open: &mut super::OpenConnection<'_>,
    input: SettingsInput,
) -> Result<ConnectionSettings, Error> {
    let crm_only = !input.pipeline_id.is_empty()
        || !input.stage_mapping.is_empty()
        || input.source_property.is_some()
        || input.score_property.is_some()
        || input.convert_at.is_some()
        || !input.field_mapping.is_empty();
    if crm_only {
        return Err(Error::BadRequest(
            "Google Sheets takes spreadsheet_url (and optionally sheet) only".into(),
        ));
    }
    let pasted = input
        .spreadsheet_url
        .ok_or_else(|| Error::BadRequest("spreadsheet_url is required".into()))?;
    let named = crate::provider::google_sheets::sheet::parse_spreadsheet(&pasted)
        .map_err(Error::BadRequest)?;
    let id = named.id.clone();
    let opened = open
        .call(&mut &*id, |session, id| {
            Box::pin(crate::provider::google_sheets::open_spreadsheet(
                session, id,
            ))
        })
        .await;
    let spreadsheet = match opened {
        Ok(spreadsheet) => spreadsheet,
        Err(Error::Provider(crate::error::ProviderError::Rejected { status, .. }))
            if status == 403 || status == 404 =>
        {
            return Err(Error::BadRequest(
                "the connected Google account cannot open that spreadsheet: check the URL, or share the sheet with that account".into(),
            ))
        }
        Err(other) => return Err(other),
    };
    let tab = match (&input.sheet, named.sheet_id) {
        (Some(title), _) => spreadsheet.tabs.iter().find(|t| &t.title == title),
        (None, Some(gid)) => spreadsheet.tabs.iter().find(|t| t.sheet_id == gid),
        (None, None) => spreadsheet.tabs.first(),
    }
    .ok_or_else(|| Error::BadRequest("the spreadsheet has no such sheet".into()))?;
    Ok(ConnectionSettings {
        pipeline_id: spreadsheet.id,
        stage_mapping: BTreeMap::new(),
        convert_at: None,
        source_property: None,
        score_property: None,
        field_mapping: BTreeMap::new(),
        sheet: Some(tab.title.clone()),
        sheet_gid: Some(tab.sheet_id),
    })
}

/// The property the tenant named (which must exist and fit), or else the provider's default
/// (used only where the account has it in a fitting kind).
async fn chosen_property(
    open: &mut super::OpenConnection<'_>,
    named: Option<&str>,
    default: Option<&str>,
    kinds: &[&str],
) -> Result<Option<ContactProperty>, Error> {
    if let Some(name) = named {
        return checked_property(open, name, kinds).await.map(Some);
    }
    let Some(name) = default else {
        return Ok(None);
    };
    match checked_property(open, name, kinds).await {
        Ok(property) => Ok(Some(property)),
        Err(Error::BadRequest(reason)) => {
            tracing::info!(property = name, reason = %reason, "default property not usable; left out");
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// A contact property the tenant named, checked to exist with one of the `kinds` of value.
async fn checked_property(
    open: &mut super::OpenConnection<'_>,
    name: &str,
    kinds: &[&str],
) -> Result<ContactProperty, Error> {
    let provider = open.connection.provider;
    let well_formed = !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !well_formed {
        return Err(Error::BadRequest(format!(
            "{name:?} is not a property name"
        )));
    }
    let implementation = open.implementation;
    // Borrowed inputs travel in the call's state, which outlives each attempt.
    let info = open
        .call(&mut &*name, |session, name| {
            implementation.describe_contact_property(session, name)
        })
        .await?
        .ok_or_else(|| Error::BadRequest(format!("{provider} has no contact property {name:?}")))?;
    if !kinds.contains(&info.kind.as_str()) {
        return Err(Error::BadRequest(format!(
            "contact property {name:?} holds {} values; expected one of: {}",
            info.kind,
            kinds.join(", ")
        )));
    }
    Ok(ContactProperty {
        name: name.to_string(),
        options: info.options,
        kind: Some(info.kind),
    })
}

#[derive(Debug, Serialize)]
pub struct Disconnected {
    pub provider: Provider,
    pub revoked_at_provider: bool,
}

/// `DELETE /connections/{provider}`: revokes the grant at the provider where it can be revoked,
/// then deletes the row and its credentials. A failed revocation is logged and does not keep
/// the credentials: the tenant asked for them to be gone.
#[tracing::instrument(skip_all, fields(tenant = %caller.tenant, provider = %provider))]
pub async fn disconnect(
    services: &Services,
    caller: &Caller,
    provider: Provider,
) -> Result<Disconnected, Error> {
    let connection = services
        .store
        .get_connection(&caller.tenant, provider)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{provider} connection")))?;
    let revoked = super::revoke_stored_grant(services, &connection, None).await;
    if !services
        .store
        .delete_connection(&caller.tenant, provider)
        .await?
    {
        return Err(Error::NotFound(format!("{provider} connection")));
    }
    // The CRM records stay in the CRM; what the relay knew of them goes, so a later connect (to
    // this account or another) starts from what that account holds.
    match services
        .store
        .delete_lead_mappings(&caller.tenant, provider)
        .await
    {
        Ok(count) => tracing::info!(lead_mappings = count, "lead mappings removed"),
        // Harmless if left: they are keyed by account, and an upsert or lookup finds the
        // records again on a reconnect to the same account.
        Err(error) => tracing::warn!(error = %error, "could not remove every lead mapping"),
    }
    tracing::info!(revoked_at_provider = revoked, "connection deleted");
    services
        .events
        .publish(crate::events::LifecycleEvent::ConnectionDisconnected {
            tenant: caller.tenant.as_str().to_string(),
            provider,
            revoked_at_provider: revoked,
        })
        .await;
    Ok(Disconnected {
        provider,
        revoked_at_provider: revoked,
    })
}
