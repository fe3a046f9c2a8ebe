//! Smart spaces: the rooms in which entities exchange messages and tool calls. Created and changed with
//! the secret key; read by their members.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate, authenticate_secret, Caller};
use super::error::{parse_body, parse_query, SpacesError, SpacesResult};
use super::{json_column, to_column};
use crate::backplane::Broadcast;
use crate::db::spaces::{self as repo, SpaceChanges, SpaceRow};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpaceBody {
    name: Option<String>,
    description: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    entity_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The API form of a space.
pub fn space_json(s: &SpaceRow) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "metadata": json_column(&s.metadata),
        "createdAt": ms_to_rfc3339(s.created_at),
        "updatedAt": ms_to_rfc3339(s.updated_at),
    })
}

pub(super) async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: SpaceBody = if body.iter().all(u8::is_ascii_whitespace) {
        SpaceBody { name: None, description: None, metadata: None }
    } else {
        parse_body(&body)?
    };
    let now = now_ms();
    let row = SpaceRow {
        id: super::new_id(),
        name: input.name,
        description: input.description,
        metadata: to_column(&input.metadata),
        message_seq: 0,
        event_seq: 0,
        created_at: now,
        updated_at: now,
    };
    let space = repo::insert_space(&state.db, row).await?;
    Ok(HttpResponse::Created().json(json!({ "smartSpace": space_json(&space) })))
}

/// GET /api/smart-spaces: the secret key lists all (or an entity's with ?entityId=), a JWT caller its own.
pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(50).clamp(1, state.spaces.config.max_list_limit);
    let offset = q.offset.unwrap_or(0).max(0);
    let member = match &caller {
        Caller::Secret { .. } => q.entity_id,
        // The caller's own spaces, whatever ?entityId= says.
        Caller::Public { entity } => Some(entity.id.clone()),
    };
    let rows = repo::list_spaces(&state.db, member.as_deref(), limit, offset).await?;
    Ok(HttpResponse::Ok().json(json!({ "smartSpaces": rows.iter().map(space_json).collect::<Vec<_>>() })))
}

pub(super) async fn get(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    caller.require_member(&state.db, &id).await?;
    let space = repo::get_space(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "smartSpace": space_json(&space) })))
}

pub(super) async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: SpaceBody = parse_body(&body)?;
    let changes = SpaceChanges {
        name: input.name.map(Some),
        description: input.description.map(Some),
        metadata: input.metadata.map(|m| to_column(&Some(m))),
        updated_at: Some(now_ms()),
    };
    let space = repo::update_space(&state.db, &id, changes)
        .await?
        .ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "smartSpace": space_json(&space) })))
}

pub(super) async fn delete(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    if !repo::delete_space(&state.db, &id).await? {
        return Err(SpacesError::not_found("SmartSpace not found"));
    }
    // Every stream of the space stops at once.
    state.backplane.do_send(Broadcast::SpaceRevoked { space_id: id.to_string(), entity_id: None });
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
