//! Entities: the humans, systems and agents that take part in spaces. A human's or system's externalId is
//! the id the backend already has for it, and what a user JWT's entity claim is matched against.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authenticate_secret;
use super::error::{parse_body, parse_query, SpacesError, SpacesResult};
use super::{json_column, to_column};
use crate::backplane::Broadcast;
use crate::db::spaces::{self as repo, EntityChanges, EntityRow};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

/// The kinds of entity.
pub const TYPES: [&str; 3] = ["human", "system", "agent"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateEntity {
    #[serde(rename = "type")]
    entity_type: String,
    external_id: Option<String>,
    display_name: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAgentEntity {
    agent_id: String,
    external_id: Option<String>,
    display_name: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateEntity {
    external_id: Option<String>,
    display_name: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "type")]
    entity_type: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The API form of an entity.
pub fn entity_json(e: &EntityRow) -> Value {
    json!({
        "id": e.id,
        "type": e.entity_type,
        "externalId": e.external_id,
        "displayName": e.display_name,
        "metadata": json_column(&e.metadata),
        "agentId": e.agent_id,
        "createdAt": ms_to_rfc3339(e.created_at),
        "updatedAt": ms_to_rfc3339(e.updated_at),
    })
}

fn is_unique_violation(e: &crate::db::DbError) -> bool {
    matches!(
        e,
        crate::db::DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// POST /api/entities: creates a human or system entity, or updates the one with that externalId.
pub(super) async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: CreateEntity = parse_body(&body)?;
    if input.entity_type == "agent" {
        return Err(SpacesError::bad_request("Agent entities are created with POST /api/entities/agent"));
    }
    if !TYPES.contains(&input.entity_type.as_str()) {
        return Err(SpacesError::bad_request("type must be one of: human, system"));
    }
    let external_id = input.external_id.filter(|s| !s.is_empty());
    // An existing externalId is updated (a backend may sync its users on every login).
    for _attempt in 0..2 {
        if let Some(ext) = &external_id {
            if let Some(existing) = repo::entity_by_external_id(&state.db, ext).await? {
                let changes = EntityChanges {
                    display_name: input.display_name.clone().map(Some),
                    metadata: input.metadata.as_ref().map(|m| to_column(&Some(m.clone()))),
                    updated_at: Some(now_ms()),
                    ..EntityChanges::default()
                };
                let updated = repo::update_entity(&state.db, &existing.id, changes).await?.unwrap_or(existing);
                return Ok(HttpResponse::Ok().json(json!({ "entity": entity_json(&updated) })));
            }
        }
        let now = now_ms();
        let row = EntityRow {
            id: super::new_id(),
            entity_type: input.entity_type.clone(),
            external_id: external_id.clone(),
            display_name: input.display_name.clone(),
            metadata: to_column(&input.metadata),
            agent_id: None,
            created_at: now,
            updated_at: now,
        };
        match repo::insert_entity(&state.db, row).await {
            Ok(entity) => return Ok(HttpResponse::Created().json(json!({ "entity": entity_json(&entity) }))),
            // Another request created the same externalId meanwhile: update that one instead.
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SpacesError::Conflict("An entity with this externalId already exists".into()))
}

/// POST /api/entities/agent: an entity that an agent runtime acts as.
pub(super) async fn create_agent(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: CreateAgentEntity = parse_body(&body)?;
    let agent =
        repo::get_agent(&state.db, &input.agent_id).await?.ok_or_else(|| SpacesError::not_found("Agent not found"))?;
    let now = now_ms();
    let row = EntityRow {
        id: super::new_id(),
        entity_type: "agent".into(),
        external_id: input.external_id.filter(|s| !s.is_empty()),
        display_name: input.display_name.or(agent.name),
        metadata: to_column(&input.metadata),
        agent_id: Some(agent.id),
        created_at: now,
        updated_at: now,
    };
    match repo::insert_entity(&state.db, row).await {
        Ok(entity) => Ok(HttpResponse::Created().json(json!({ "entity": entity_json(&entity) }))),
        Err(e) if is_unique_violation(&e) => {
            Err(SpacesError::Conflict("An entity with this externalId already exists".into()))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn list(req: HttpRequest, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let q: ListQuery = parse_query(req.query_string())?;
    if let Some(t) = &q.entity_type {
        if !TYPES.contains(&t.as_str()) {
            return Err(SpacesError::bad_request("type must be one of: human, system, agent"));
        }
    }
    let max = state.spaces.config.max_list_limit;
    let limit = q.limit.unwrap_or(50).clamp(1, max);
    let offset = q.offset.unwrap_or(0).max(0);
    let rows = repo::list_entities(&state.db, q.entity_type.as_deref(), limit, offset).await?;
    Ok(HttpResponse::Ok().json(json!({ "entities": rows.iter().map(entity_json).collect::<Vec<_>>() })))
}

pub(super) async fn get(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let entity = repo::get_entity(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("Entity not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "entity": entity_json(&entity) })))
}

pub(super) async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: UpdateEntity = parse_body(&body)?;
    let changes = EntityChanges {
        external_id: input.external_id.map(|s| Some(s).filter(|s| !s.is_empty())),
        display_name: input.display_name.map(Some),
        metadata: input.metadata.map(|m| to_column(&Some(m))),
        updated_at: Some(now_ms()),
    };
    match repo::update_entity(&state.db, &id, changes).await {
        Ok(Some(entity)) => Ok(HttpResponse::Ok().json(json!({ "entity": entity_json(&entity) }))),
        Ok(None) => Err(SpacesError::not_found("Entity not found")),
        Err(e) if is_unique_violation(&e) => {
            Err(SpacesError::Conflict("An entity with this externalId already exists".into()))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let spaces = repo::spaces_of(&state.db, &id).await?;
    if !repo::delete_entity(&state.db, &id).await? {
        return Err(SpacesError::not_found("Entity not found"));
    }
    // Its memberships went with it: its live streams stop receiving those spaces at once.
    for space in spaces {
        state.backplane.do_send(Broadcast::SpaceRevoked { space_id: space, entity_id: Some(id.to_string()) });
    }
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
