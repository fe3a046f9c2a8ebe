//! Runs: one agent's turn in a space. Switchyard runs no model: the agent runtime (secret key) reports a
//! run's events, and Switchyard stores, orders and fans them out; status events move the run through
//! queued → running ⇄ waiting_tool → completed | failed | canceled. Tool results are accepted once per
//! call and announced as tool-output-available, where the runtime picks them up.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate, authenticate_secret, Caller, NOT_MEMBER};
use super::error::{parse_body, parse_query, Body, SpacesError, SpacesResult};
use super::{event_json, json_column, to_column};
use crate::db::spaces::{self as repo, EventDraft, RunFilter, RunRow, SpaceWrite, ToolResultRow, RUN_TERMINAL};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

/// Every run status.
pub const STATUSES: [&str; 6] = ["queued", "running", "waiting_tool", "completed", "failed", "canceled"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRun {
    smart_space_id: String,
    agent_entity_id: String,
    trigger_message_id: Option<String>,
    metadata: Option<Value>,
    /// The SDK's CreateRunParams: who caused the run, and the run it was started from.
    triggered_by_id: Option<String>,
    parent_run_id: Option<String>,
    /// The SDK's `start: true`: the run begins as running (run.created then run.started).
    start: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    smart_space_id: Option<String>,
    agent_entity_id: Option<String>,
    agent_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Deserialize)]
struct RunEvent {
    #[serde(rename = "type")]
    event_type: String,
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpaceToolResult {
    run_id: String,
    tool_call_id: String,
    result: Value,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunToolResult {
    call_id: String,
    result: Value,
    source: Option<String>,
    client_id: Option<String>,
}

/// The API form of a run.
pub fn run_json(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "smartSpaceId": r.space_id,
        "agentEntityId": r.agent_entity_id,
        "agentId": r.agent_id,
        "status": r.status,
        "triggerMessageId": r.trigger_message_id,
        "triggeredById": r.triggered_by_id,
        "parentRunId": r.parent_run_id,
        "metadata": json_column(&r.metadata),
        // The SDK's Run type reads the failure text as `errorMessage`.
        "errorMessage": r.error,
        "createdAt": ms_to_rfc3339(r.created_at),
        "updatedAt": ms_to_rfc3339(r.updated_at),
        "completedAt": r.completed_at.map(ms_to_rfc3339),
    })
}

/// The run.created event announcing a new run to its space (and so to its agent's stream).
pub fn run_created_event(r: &RunRow) -> EventDraft {
    let data = json!({
        "runId": r.id,
        "agentEntityId": r.agent_entity_id,
        "agentId": r.agent_id,
        "status": r.status,
        "triggerMessageId": r.trigger_message_id,
        "triggeredById": r.triggered_by_id,
    });
    EventDraft {
        event_type: "run.created".into(),
        run_id: Some(r.id.clone()),
        entity_id: Some(r.agent_entity_id.clone()),
        entity_type: Some("agent".into()),
        agent_entity_id: Some(r.agent_entity_id.clone()),
        data: Box::new(move |_| data.clone()),
    }
}

/// An event of a run, reported by its runtime or caused by a caller.
fn run_event(r: &RunRow, event_type: &str, data: Value) -> EventDraft {
    EventDraft {
        event_type: event_type.to_string(),
        run_id: Some(r.id.clone()),
        entity_id: Some(r.agent_entity_id.clone()),
        entity_type: Some("agent".into()),
        agent_entity_id: Some(r.agent_entity_id.clone()),
        data: Box::new(move |_| data.clone()),
    }
}

/// The status a reported event type moves a run to, if any.
fn status_for(event_type: &str) -> Option<&'static str> {
    match event_type {
        "run.started" | "run.running" => Some("running"),
        "run.waiting_tool" => Some("waiting_tool"),
        "run.completed" => Some("completed"),
        "run.failed" => Some("failed"),
        "run.canceled" | "run.cancelled" => Some("canceled"),
        _ => None,
    }
}

async fn load_run(state: &AppState, id: &str) -> Result<RunRow, SpacesError> {
    repo::get_run(&state.db, id).await?.ok_or_else(|| SpacesError::not_found("Run not found"))
}

/// The run `id` if `caller` may see it (a member of its space). A public-key caller gets the same 403 for a
/// run that does not exist as for one in a space it is not in, so it cannot learn which runs exist.
pub(super) async fn visible_run(state: &AppState, caller: &Caller, id: &str) -> Result<RunRow, SpacesError> {
    match repo::get_run(&state.db, id).await? {
        Some(run) => {
            caller.require_member(&state.db, &run.space_id).await?;
            Ok(run)
        }
        None if matches!(caller, Caller::Public { .. }) => Err(SpacesError::forbidden(NOT_MEMBER)),
        None => Err(SpacesError::not_found("Run not found")),
    }
}

/// The wire form of a stored run event in GET /api/runs/:id/events: the stream form plus the SDK's RunEvent
/// fields `payload` and `createdAt`.
fn run_event_json(e: &crate::db::spaces::EventRow) -> Value {
    let mut v = event_json(e);
    v["payload"] = v["data"].clone();
    v["createdAt"] = v["ts"].clone();
    v
}

pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    if let Some(s) = &q.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(SpacesError::bad_request(format!("status must be one of: {}", STATUSES.join(", "))));
        }
    }
    let limit = q.limit.unwrap_or(50).clamp(1, state.spaces.config.max_list_limit);
    let filter = RunFilter {
        space_id: q.smart_space_id,
        agent_entity_id: q.agent_entity_id,
        agent_id: q.agent_id,
        status: q.status,
    };
    let runs = repo::list_runs(&state.db, &filter, limit, q.offset.unwrap_or(0).max(0)).await?;
    Ok(HttpResponse::Ok().json(json!({ "runs": runs.iter().map(run_json).collect::<Vec<_>>() })))
}

pub(super) async fn create(req: HttpRequest, body: Body, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: CreateRun = parse_body(&body)?;
    let agent = repo::get_entity(&state.db, &input.agent_entity_id)
        .await?
        .filter(|e| e.entity_type == "agent")
        .ok_or_else(|| SpacesError::not_found("Agent entity not found"))?;
    if repo::membership(&state.db, &input.smart_space_id, &agent.id).await?.is_none() {
        if repo::get_space(&state.db, &input.smart_space_id).await?.is_none() {
            return Err(SpacesError::not_found("SmartSpace not found"));
        }
        return Err(SpacesError::forbidden(NOT_MEMBER));
    }
    let now = now_ms();
    let start = input.start == Some(true);
    let run = RunRow {
        id: super::new_id(),
        space_id: input.smart_space_id.clone(),
        agent_entity_id: agent.id.clone(),
        agent_id: agent.agent_id.clone(),
        status: if start { "running" } else { "queued" }.into(),
        trigger_message_id: input.trigger_message_id,
        metadata: to_column(&input.metadata),
        error: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        triggered_by_id: input.triggered_by_id,
        parent_run_id: input.parent_run_id,
    };
    let mut events = vec![run_created_event(&run)];
    if start {
        events.push(run_event(&run, "run.started", json!({ "runId": run.id, "status": "running" })));
    }
    let write = SpaceWrite { runs: vec![run.clone()], events, ..SpaceWrite::default() };
    let (_, events) = repo::write(&state.db, &input.smart_space_id, write).await?;
    super::publish(&state, events);
    Ok(HttpResponse::Created().json(json!({
        "runId": run.id,
        "status": run.status,
        "streamUrl": format!("/api/runs/{}/stream", run.id),
    })))
}

pub(super) async fn get(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let run = visible_run(&state, &caller, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "run": run_json(&run) })))
}

pub(super) async fn cancel(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let run = load_run(&state, &id).await?;
    let write = SpaceWrite {
        run_status: Some((run.id.clone(), "canceled".into(), None)),
        events: vec![run_event(&run, "run.canceled", json!({ "runId": run.id, "status": "canceled" }))],
        ..SpaceWrite::default()
    };
    match repo::write(&state.db, &run.space_id, write).await {
        Ok((_, events)) => {
            super::publish(&state, events);
            Ok(HttpResponse::Ok().json(json!({ "success": true, "status": "canceled" })))
        }
        Err(repo::WriteRefused::RunFinished) => {
            let now = load_run(&state, &id).await?;
            Ok(HttpResponse::Ok().json(json!({ "success": false, "status": now.status })))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    if !repo::delete_run(&state.db, &id).await? {
        return Err(SpacesError::not_found("Run not found"));
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

pub(super) async fn events(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let run = visible_run(&state, &caller, &id).await?;
    let events = repo::run_events(&state.db, &run.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "events": events.iter().map(run_event_json).collect::<Vec<_>>() })))
}

/// POST /api/runs/:id/events: the agent runtime reports one event of its run.
pub(super) async fn report(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: RunEvent = parse_body(&body)?;
    if input.event_type.is_empty() || input.event_type.len() > 100 {
        return Err(SpacesError::bad_request("type must be 1 to 100 characters"));
    }
    let run = load_run(&state, &id).await?;
    if RUN_TERMINAL.contains(&run.status.as_str()) {
        return Err(SpacesError::Conflict("Run is already finished".into()));
    }
    let data = input.data.unwrap_or(Value::Null);
    let status = status_for(&input.event_type).map(|s| {
        // The SDK's sendAndWait reads a failure's text from `errorMessage`; `error` is accepted too.
        let error = (s == "failed")
            .then(|| {
                data.get("errorMessage")
                    .or_else(|| data.get("error"))
                    .map(|e| e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string()))
            })
            .flatten();
        (run.id.clone(), s.to_string(), error)
    });
    let write = SpaceWrite {
        run_status: status,
        events: vec![run_event(&run, &input.event_type, data)],
        ..SpaceWrite::default()
    };
    let (_, events) = repo::write(&state.db, &run.space_id, write).await?;
    let seq = events.first().map(|e| e.seq.to_string());
    super::publish(&state, events);
    Ok(HttpResponse::Created().json(json!({ "success": true, "seq": seq })))
}

/// Stores a tool result once and announces it as tool-output-available.
async fn submit_tool_result(
    state: &AppState,
    run: &RunRow,
    call_id: String,
    result: Value,
    source: Option<String>,
    client_id: Option<String>,
) -> SpacesResult {
    if call_id.is_empty() {
        return Err(SpacesError::bad_request("toolCallId is required"));
    }
    let data = json!({
        "runId": run.id,
        "toolCallId": call_id,
        "output": result,
        "source": source,
        "clientId": client_id,
    });
    let write = SpaceWrite {
        tool_result: Some(ToolResultRow {
            run_id: run.id.clone(),
            call_id,
            result: result.to_string(),
            source,
            created_at: now_ms(),
        }),
        events: vec![run_event(run, "tool-output-available", data)],
        ..SpaceWrite::default()
    };
    let (_, events) = repo::write(&state.db, &run.space_id, write).await?;
    super::publish(state, events);
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

/// POST /api/smart-spaces/:id/tool-results (member).
pub(super) async fn space_tool_result(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    caller.require_member(&state.db, &id).await?;
    let input: SpaceToolResult = parse_body(&body)?;
    // A run of another space and one that does not exist answer alike, so a member learns nothing about
    // spaces it is not in; only the secret key is told that the run does not exist.
    let run = match repo::get_run(&state.db, &input.run_id).await? {
        Some(run) if run.space_id == *id => run,
        None if matches!(caller, Caller::Secret { .. }) => return Err(SpacesError::not_found("Run not found")),
        _ => return Err(SpacesError::bad_request("Run does not belong to this SmartSpace")),
    };
    submit_tool_result(&state, &run, input.tool_call_id, input.result, input.source, None).await
}

/// POST /api/runs/:id/tool-results (member of the run's space).
pub(super) async fn run_tool_result(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let run = visible_run(&state, &caller, &id).await?;
    let input: RunToolResult = parse_body(&body)?;
    submit_tool_result(&state, &run, input.call_id, input.result, input.source, input.client_id).await
}
