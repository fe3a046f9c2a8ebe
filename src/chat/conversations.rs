//! Conversations over REST: list, read and delete the caller's own. Another tenant's or user's
//! conversation answers 404, exactly like one that does not exist.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::auth::ChatUser;
use super::error::ChatError;
use crate::auth::credentials::query_param;
use crate::db::conversations::{self as repo, ConversationRow, Owner};
use crate::db::ms_to_rfc3339;
use crate::state::AppState;

/// Most messages returned with one conversation.
const MESSAGES_LIMIT: i64 = 1000;

fn owner(user: &ChatUser) -> Owner<'_> {
    Owner { tenant_id: &user.0.tenant_id, user_id: &user.0.user_id }
}

fn summary(row: &ConversationRow) -> Value {
    json!({
        "id": row.id,
        "title": row.title,
        "message_count": row.message_count,
        "created_at": ms_to_rfc3339(row.created_at),
        "updated_at": ms_to_rfc3339(row.updated_at),
    })
}

fn number(req: &HttpRequest, name: &str, default: i64, max: i64) -> Result<i64, ChatError> {
    match query_param(req.query_string(), name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| ChatError::BadRequest(format!("{name} must be a number from 0 to {max}"))),
    }
}

/// `GET /api/agent/conversations?limit=50&offset=0`: the caller's conversations, latest first.
pub async fn list(user: ChatUser, req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ChatError> {
    let limit = number(&req, "limit", 50, 200)?;
    let offset = number(&req, "offset", 0, i64::from(i32::MAX))?;
    let rows = repo::list(&state.chat.db, owner(&user), offset, limit).await?;
    let items: Vec<Value> = rows.iter().map(summary).collect();
    Ok(HttpResponse::Ok().json(json!({ "conversations": items })))
}

/// `GET /api/agent/conversations/{id}`: one conversation with its messages.
pub async fn get(user: ChatUser, id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ChatError> {
    let db = &state.chat.db;
    let row = repo::get(db, owner(&user), &id).await?.ok_or(ChatError::ConversationNotFound)?;
    let messages =
        repo::messages(db, owner(&user), &id, MESSAGES_LIMIT).await?.ok_or(ChatError::ConversationNotFound)?;
    let mut body = summary(&row);
    body["messages"] = messages
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "created_at": ms_to_rfc3339(m.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `DELETE /api/agent/conversations/{id}`: 204, or 404 when it is not the caller's.
pub async fn delete(
    user: ChatUser,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ChatError> {
    if repo::delete(&state.chat.db, owner(&user), &id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ChatError::ConversationNotFound)
    }
}
