//! Agents: stored configurations an agent runtime executes. Switchyard keeps them opaque; the same
//! configuration is the same agent (matched by a hash of its canonical JSON), so a backend may register
//! its agents on every start without creating duplicates.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authenticate_secret;
use super::error::{parse_body, parse_query, Body, SpacesError, SpacesResult};
use crate::auth::secrets::sha256_hex;
use crate::db::spaces::{self as repo, AgentRow};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAgent {
    name: Option<String>,
    config: Value,
}

/// The SDK's paging of GET /api/agents.
#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The API form of an agent.
pub fn agent_json(a: &AgentRow) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        // The SDK's Agent type names the stored configuration `configJson`.
        "configJson": serde_json::from_str::<Value>(&a.config).unwrap_or(Value::Null),
        "configHash": a.config_hash,
        "createdAt": ms_to_rfc3339(a.created_at),
        "updatedAt": ms_to_rfc3339(a.updated_at),
    })
}

/// JSON with object keys sorted at every level, so that equal configurations hash equally whatever the
/// order their keys were sent in.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

pub(super) async fn create(req: HttpRequest, body: Body, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: CreateAgent = parse_body(&body)?;
    if !input.config.is_object() {
        return Err(SpacesError::bad_request("config must be an object"));
    }
    let hash = sha256_hex(&canonical(&input.config));
    let now = now_ms();
    let row = AgentRow {
        id: super::new_id(),
        name: input.name.or_else(|| input.config.get("name").and_then(Value::as_str).map(str::to_string)),
        config: input.config.to_string(),
        config_hash: hash,
        created_at: now,
        updated_at: now,
    };
    let (agent, created) = repo::insert_agent(&state.db, row).await?;
    let body = json!({ "agentId": agent.id, "configHash": agent.config_hash, "created": created });
    Ok(if created { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(state.spaces.config.max_list_limit).clamp(1, state.spaces.config.max_list_limit);
    let offset = q.offset.unwrap_or(0).max(0);
    let agents: Vec<Value> = repo::list_agents(&state.db, limit, offset).await?.iter().map(agent_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "agents": agents })))
}

pub(super) async fn get(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let agent = repo::get_agent(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("Agent not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "agent": agent_json(&agent) })))
}

pub(super) async fn delete(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    if !repo::delete_agent(&state.db, &id).await? {
        return Err(SpacesError::not_found("Agent not found"));
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":3}],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&b), r#"{"a":{"x":"s","y":[1,{"p":3,"q":2}]},"b":1}"#);
    }
}
