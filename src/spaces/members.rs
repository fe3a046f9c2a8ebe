//! Memberships: which entities belong to a space. Joining and leaving are announced to the space
//! (smartSpace.member.joined / .left), and a removed member's streams stop receiving the space at once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate, authenticate_secret};
use super::entities::entity_json;
use super::error::{parse_body, SpacesError, SpacesResult};
use crate::backplane::Broadcast;
use crate::db::spaces::{self as repo, EventDraft, MembershipRow, SpaceWrite};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddMember {
    entity_id: String,
    role: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateMember {
    role: Option<String>,
}

/// The API form of a membership.
pub fn membership_json(m: &MembershipRow) -> Value {
    json!({
        "smartSpaceId": m.space_id,
        "entityId": m.entity_id,
        "role": m.role,
        "joinedAt": ms_to_rfc3339(m.joined_at),
    })
}

/// An event about a member, announced to the space.
fn member_event(event_type: &str, m: &MembershipRow, entity_type: &str) -> EventDraft {
    let data = json!({ "entityId": m.entity_id, "role": m.role, "entityType": entity_type });
    EventDraft {
        event_type: event_type.into(),
        run_id: None,
        entity_id: Some(m.entity_id.clone()),
        entity_type: Some(entity_type.to_string()),
        agent_entity_id: None,
        data: Box::new(move |_| data.clone()),
    }
}

pub(super) async fn add(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: AddMember = parse_body(&body)?;
    repo::get_space(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    let entity = repo::get_entity(&state.db, &input.entity_id)
        .await?
        .ok_or_else(|| SpacesError::not_found("Entity not found"))?;
    let row =
        MembershipRow { space_id: id.to_string(), entity_id: entity.id.clone(), role: input.role, joined_at: now_ms() };
    if !repo::add_member(&state.db, &row).await? {
        let existing = repo::membership(&state.db, &id, &entity.id).await?.unwrap_or(row);
        return Ok(HttpResponse::Ok().json(json!({ "membership": membership_json(&existing) })));
    }
    // The entity's open streams start receiving the space before the joined event is written.
    let joined =
        Broadcast::SpaceJoined { space_id: id.to_string(), entity_id: entity.id.clone(), joined_at: row.joined_at };
    let _ = state.backplane.send(joined).await;
    let write = SpaceWrite {
        events: vec![member_event("smartSpace.member.joined", &row, &entity.entity_type)],
        ..SpaceWrite::default()
    };
    let (_, events) = repo::write(&state.db, &id, write).await?;
    super::publish(&state, events);
    Ok(HttpResponse::Created().json(json!({ "membership": membership_json(&row) })))
}

pub(super) async fn update(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let input: UpdateMember = parse_body(&body)?;
    let (space, entity) = path.into_inner();
    let m = repo::update_member(&state.db, &space, &entity, input.role)
        .await?
        .ok_or_else(|| SpacesError::not_found("Membership not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "membership": membership_json(&m) })))
}

pub(super) async fn remove(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> SpacesResult {
    authenticate_secret(&req, &state.spaces, &state.db).await?;
    let (space, entity_id) = path.into_inner();
    let m = repo::membership(&state.db, &space, &entity_id)
        .await?
        .ok_or_else(|| SpacesError::not_found("Membership not found"))?;
    let entity_type = repo::get_entity(&state.db, &entity_id).await?.map(|e| e.entity_type).unwrap_or_default();
    repo::remove_member(&state.db, &space, &entity_id).await?;
    // Before the left event is written: from now on nothing of the space reaches the removed member (a
    // stream opened meanwhile was checked against the membership, which is gone).
    let revoked = Broadcast::SpaceRevoked { space_id: space.clone(), entity_id: Some(entity_id.clone()) };
    let _ = state.backplane.send(revoked).await;
    let write =
        SpaceWrite { events: vec![member_event("smartSpace.member.left", &m, &entity_type)], ..SpaceWrite::default() };
    let (_, events) = repo::write(&state.db, &space, write).await?;
    super::publish(&state, events);
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

pub(super) async fn list(req: HttpRequest, id: web::Path<String>, state: web::Data<AppState>) -> SpacesResult {
    let caller = authenticate(&req, &state.spaces, &state.db).await?;
    caller.require_member(&state.db, &id).await?;
    repo::get_space(&state.db, &id).await?.ok_or_else(|| SpacesError::not_found("SmartSpace not found"))?;
    let members: Vec<Value> = repo::members(&state.db, &id)
        .await?
        .iter()
        .map(|(m, e)| {
            let mut v = membership_json(m);
            v["entity"] = entity_json(e);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "members": members })))
}
