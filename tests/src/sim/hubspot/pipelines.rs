//! `GET /crm/pipelines/2026-09/deals` (and the 2026-03 path).
//!
//! Source: Pipelines 2026-03 OpenAPI spec
//! (`PublicApiSpecs/CRM/Pipelines/Rollouts/145896/2026-03/pipelines.json`):
//! `Pipeline`/`PipelineStage` shapes; ids, dates and metadata values are
//! strings, `displayOrder` an integer, default pipelines have `createdAt` = epoch.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::{json_response, Shared};
use crate::sim::server::Reject;

pub(super) async fn pipelines(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    Ok(shared.metered(&headers, |hub_id| {
        Ok(json_response(StatusCode::OK, &deal_pipelines(hub_id)))
    }))
}

/// Two deal pipelines: HubSpot's default "Sales Pipeline" with its real
/// stage ids, and a custom pipeline with numeric ids derived from the hub.
pub fn deal_pipelines(hub_id: u64) -> Value {
    const EPOCH: &str = "1970-01-01T00:00:00Z";
    let default_stages = [
        (
            "appointmentscheduled",
            "Appointment Scheduled",
            "0.2",
            false,
        ),
        ("qualifiedtobuy", "Qualified To Buy", "0.4", false),
        (
            "presentationscheduled",
            "Presentation Scheduled",
            "0.6",
            false,
        ),
        (
            "decisionmakerboughtin",
            "Decision Maker Bought-In",
            "0.8",
            false,
        ),
        ("contractsent", "Contract Sent", "0.9", false),
        ("closedwon", "Closed Won", "1.0", true),
        ("closedlost", "Closed Lost", "0.0", true),
    ];
    let default_pipeline = pipeline_json(
        "default",
        "Sales Pipeline",
        0,
        EPOCH,
        EPOCH,
        default_stages
            .iter()
            .map(|(id, label, p, closed)| ((*id).to_owned(), *label, *p, *closed)),
    );

    let custom_id = 7_000_000 + hub_id % 1_000_000;
    let created = "2024-03-14T09:26:53.589Z";
    let updated = "2025-11-02T16:40:12.118Z";
    let custom_stages = [
        ("Discovery", "0.1", false),
        ("Proposal Sent", "0.5", false),
        ("Negotiation", "0.7", false),
        ("Won", "1.0", true),
        ("Lost", "0.0", true),
    ];
    let custom_pipeline = pipeline_json(
        &custom_id.to_string(),
        "Partner Pipeline",
        1,
        created,
        updated,
        custom_stages
            .iter()
            .enumerate()
            .map(|(i, (label, p, closed))| {
                (format!("{}{:02}", custom_id, i + 1), *label, *p, *closed)
            }),
    );
    json!({ "results": [default_pipeline, custom_pipeline] })
}

fn pipeline_json<'a>(
    id: &str,
    label: &str,
    display_order: i32,
    created_at: &str,
    updated_at: &str,
    stages: impl Iterator<Item = (String, &'a str, &'a str, bool)>,
) -> Value {
    let stages: Vec<Value> = stages
        .enumerate()
        .map(|(order, (stage_id, stage_label, probability, closed))| {
            json!({
                "id": stage_id,
                "label": stage_label,
                "displayOrder": order,
                "metadata": {
                    "isClosed": if closed { "true" } else { "false" },
                    "probability": probability,
                },
                "createdAt": created_at,
                "updatedAt": updated_at,
                "archived": false,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            })
        })
        .collect();
    json!({
        "id": id,
        "label": label,
        "displayOrder": display_order,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "archived": false,
        "stages": stages,
    })
}

/// `(pipeline id, [stage ids in display order])` for every deal pipeline of
/// `hub_id`, read back from [`deal_pipelines`] so the two never disagree.
pub(super) fn pipeline_stages(hub_id: u64) -> Vec<(String, Vec<String>)> {
    let pipelines = deal_pipelines(hub_id);
    let Some(results) = pipelines["results"].as_array() else {
        return Vec::new();
    };
    results
        .iter()
        .map(|pipeline| {
            let id = pipeline["id"].as_str().unwrap_or_default().to_owned();
            let stages = pipeline["stages"]
                .as_array()
                .map(|stages| {
                    stages
                        .iter()
                        .filter_map(|s| s["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (id, stages)
        })
        .collect()
}

/// `(id, label)` pairs of a property's options.
pub(super) type Options = Vec<(String, String)>;

/// `(pipeline id, label)` and `(stage id, label)` pairs, for the `pipeline`
/// and `dealstage` property definitions.
pub(super) fn pipeline_and_stage_labels(hub_id: u64) -> (Options, Options) {
    let pipelines = deal_pipelines(hub_id);
    let mut pipeline_options = Vec::new();
    let mut stage_options = Vec::new();
    for pipeline in pipelines["results"].as_array().into_iter().flatten() {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        pipeline_options.push((text(&pipeline["id"]), text(&pipeline["label"])));
        for stage in pipeline["stages"].as_array().into_iter().flatten() {
            stage_options.push((
                text(&stage["id"]),
                format!("{} ({})", text(&stage["label"]), text(&pipeline["label"])),
            ));
        }
    }
    (pipeline_options, stage_options)
}
