//! Clients: the devices or processes an entity runs (the @hsafa/node SDK's `clients` resource). A client
//! registers under its entity with a key of its own; registering again refreshes it rather than adding a
//! second. Secret key only, like every route the permission rule does not give a public-key caller.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authenticate_secret;
use super::error::{parse_body, parse_query, Body, SpacesError, SpacesResult};
use super::{json_column, to_column};
use crate::db::spaces::{self as repo, ClientRow};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterClient {
    entity_id: String,
    client_key: String,
    client_type: Option<String>,
    display_name: Option<String>,
    capabilities: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    entity_id: Option<String>,
}

/// The API form of a client (the SDK's Client type; `capabilities` is an object, `{}` when none).
pub fn client_json(c: &ClientRow) -> Value {
    let capabilities = match json_column(&c.capabilities) {
        Value::Null => json!({}),
        v => v,
    };
    json!({
        "id": c.id,
        "entityId": c.entity_id,
        "clientKey": c.client_key,
        "clientType": c.client_type,
        "displayName": c.display_name,
        "capabilities": capabilities,
        "lastSeenAt": ms_to_rfc3339(c.last_seen_at),
        "createdAt": ms_to_rfc3339(c.created_at),
    })
}

/// POST /api/clients/register: 201 for a new client, 200 for a refreshed one.
pub(super) async fn register(req: HttpRequest, body: Body, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: RegisterClient = parse_body(&body)?;
    if input.client_key.is_empty() || input.client_key.len() > 200 {
        return Err(SpacesError::bad_request("clientKey must be 1 to 200 characters"));
    }
    if input.capabilities.as_ref().is_some_and(|c| !c.is_object() && !c.is_null()) {
        return Err(SpacesError::bad_request("capabilities must be an object"));
    }
    repo::get_entity(&state.db, &input.entity_id).await?.ok_or_else(|| SpacesError::not_found("Entity not found"))?;
    let now = now_ms();
    let row = ClientRow {
        id: super::new_id(),
        entity_id: input.entity_id,
        client_key: input.client_key,
        client_type: input.client_type,
        display_name: input.display_name,
        capabilities: to_column(&input.capabilities),
        last_seen_at: now,
        created_at: now,
    };
    let (client, created) = repo::register_client(&state.db, row).await?;
    let body = json!({ "client": client_json(&client) });
    Ok(if created { HttpResponse::Created().json(body) } else { HttpResponse::Ok().json(body) })
}

/// GET /api/clients?entityId=…
pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    let entity =
        q.entity_id.filter(|e| !e.is_empty()).ok_or_else(|| SpacesError::bad_request("entityId is required"))?;
    let clients: Vec<Value> = repo::list_clients(&state.db, &entity).await?.iter().map(client_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "clients": clients })))
}

/// DELETE /api/clients/:id
pub(super) async fn delete(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    if !repo::delete_client(&state.db, &id).await? {
        return Err(SpacesError::not_found("Client not found"));
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
