//! Messages: posted by a member (a public-key caller always as its JWT's entity), numbered by a `seq`
//! that is gap-free per space, and each one starts a run for every other agent member of the space.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate, Caller, NOT_MEMBER};
use super::error::{parse_body, parse_query, Body, SpacesError, SpacesResult};
use super::runs::run_created_event;
use super::{json_column, to_column};
use crate::db::spaces::{self as repo, EntityRow, EventDraft, MessageRow, NewMessage, RunRow, SpaceWrite};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

/// Roles a secret-key caller may set explicitly.
const ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostMessage {
    content: Option<Value>,
    entity_id: Option<String>,
    metadata: Option<Value>,
    role: Option<String>,
    trigger_agents: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    after_seq: Option<i64>,
    before_seq: Option<i64>,
    limit: Option<i64>,
}

/// The API form of a message; `seq` is a string.
pub fn message_json(m: &MessageRow, sender: Option<&EntityRow>) -> Value {
    json!({
        "id": m.id,
        "smartSpaceId": m.space_id,
        "entityId": m.entity_id,
        "role": m.role,
        "content": m.content,
        "metadata": json_column(&m.metadata),
        "seq": m.seq.to_string(),
        "createdAt": ms_to_rfc3339(m.created_at),
        // The SDK's SmartSpaceMessage names its sender's kind and display name.
        "entityType": sender.map(|e| e.entity_type.as_str()),
        "entityName": sender.and_then(|e| e.display_name.as_deref()),
    })
}

/// The role a message takes from its sender's type.
pub fn role_for(entity_type: &str) -> &'static str {
    match entity_type {
        "agent" => "assistant",
        "system" => "system",
        _ => "user",
    }
}

pub(super) async fn post(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<AppState>,
) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let input: PostMessage = parse_body(&body)?;
    let space_id = id.into_inner();
    // A public-key caller is its JWT's entity, whatever the body says.
    let sender: EntityRow = match &caller {
        Caller::Public { entity } => entity.clone(),
        Caller::Secret { entity } => match (&input.entity_id, entity) {
            (Some(id), _) => {
                repo::get_entity(&state.db, id).await?.ok_or_else(|| SpacesError::not_found("Entity not found"))?
            }
            (None, Some(e)) => e.clone(),
            (None, None) => return Err(SpacesError::bad_request("entityId is required")),
        },
    };
    let content = match input.content {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => return Err(SpacesError::bad_request("content is required")),
        Some(other) => other.to_string(),
    };
    let members = repo::members(&state.db, &space_id).await?;
    if !members.iter().any(|(m, _)| m.entity_id == sender.id) {
        if matches!(caller, Caller::Secret { .. }) && repo::get_space(&state.db, &space_id).await?.is_none() {
            return Err(SpacesError::not_found("SmartSpace not found"));
        }
        return Err(SpacesError::forbidden(NOT_MEMBER));
    }
    let role = match (&caller, input.role.as_deref()) {
        (Caller::Secret { .. }, Some(r)) if ROLES.contains(&r) => r.to_string(),
        (Caller::Secret { .. }, Some(_)) => {
            return Err(SpacesError::bad_request("role must be one of: user, assistant, system, tool"))
        }
        _ => role_for(&sender.entity_type).to_string(),
    };
    let message_id = super::new_id();
    let now = now_ms();
    let runs: Vec<RunRow> = if input.trigger_agents == Some(false) {
        Vec::new()
    } else {
        members
            .iter()
            .filter(|(m, e)| e.entity_type == "agent" && m.entity_id != sender.id)
            .map(|(_, agent)| RunRow {
                id: super::new_id(),
                space_id: space_id.clone(),
                agent_entity_id: agent.id.clone(),
                agent_id: agent.agent_id.clone(),
                status: "queued".into(),
                trigger_message_id: Some(message_id.clone()),
                metadata: None,
                error: None,
                created_at: now,
                updated_at: now,
                completed_at: None,
                triggered_by_id: Some(sender.id.clone()),
                parent_run_id: None,
            })
            .collect()
    };
    let mut events = vec![EventDraft {
        event_type: "smartSpace.message".into(),
        run_id: None,
        entity_id: Some(sender.id.clone()),
        entity_type: Some(sender.entity_type.clone()),
        agent_entity_id: None,
        data: {
            let sender = sender.clone();
            Box::new(move |m| json!({ "message": m.map(|m| message_json(m, Some(&sender))) }))
        },
    }];
    events.extend(runs.iter().map(run_created_event));
    let write = SpaceWrite {
        message: Some(NewMessage {
            id: message_id,
            entity_id: Some(sender.id.clone()),
            role,
            content: Some(content),
            metadata: to_column(&input.metadata),
        }),
        runs: runs.clone(),
        events,
        ..SpaceWrite::default()
    };
    let (message, events) = repo::write(&state.db, &space_id, write).await?;
    super::publish(&state, events);
    let message = message.ok_or_else(|| SpacesError::Internal("message write returned no message".into()))?;
    let runs: Vec<Value> = runs.iter().map(|r| json!({ "runId": r.id, "agentEntityId": r.agent_entity_id })).collect();
    Ok(HttpResponse::Created().json(json!({ "message": message_json(&message, Some(&sender)), "runs": runs })))
}

pub(super) async fn list(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    caller.require_member(&state.db, &id).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    repo::get_space(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    let limit = q.limit.unwrap_or(50).clamp(1, state.spaces.config.max_list_limit);
    let rows = repo::list_messages(&state.db, &id, q.after_seq, q.before_seq, limit).await?;
    let mut ids: Vec<String> = rows.iter().filter_map(|m| m.entity_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let senders: std::collections::HashMap<String, EntityRow> =
        repo::entities_by_ids(&state.db, &ids).await?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let messages: Vec<Value> =
        rows.iter().map(|m| message_json(m, m.entity_id.as_ref().and_then(|id| senders.get(id)))).collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}
