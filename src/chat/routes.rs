//! The chat's HTTP surface: routes, and the ticket endpoint.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::ChatUser;
use super::error::{parse_optional_json, ChatError};
use super::tickets::{StoreError, TicketError};
use crate::db::conversations::{self, Owner};
use crate::state::AppState;

/// Registers every chat route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/agent/ticket").route(web::post().to(issue_ticket)))
        .service(web::resource("/api/agent/ws").route(web::get().to(super::socket::connect)))
        .service(web::resource("/api/agent/conversations").route(web::get().to(super::conversations::list)))
        .service(
            web::resource("/api/agent/conversations/{id}")
                .route(web::get().to(super::conversations::get))
                .route(web::delete().to(super::conversations::delete)),
        )
        .route("/chat-demo", web::get().to(super::demo_page::serve))
        .route("/chat-demo/{path:.*}", web::get().to(super::demo_page::serve));
}

/// Body of `POST /api/agent/ticket` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    conversation_id: Option<String>,
}

/// `POST /api/agent/ticket`: exchanges the user's JWT for a one-time WebSocket ticket, optionally
/// bound to one of the user's conversations (404 if it is not theirs).
async fn issue_ticket(user: ChatUser, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ChatError> {
    let request: TicketRequest = parse_optional_json(&body)?;
    let chat = &state.chat;
    if let Some(id) = &request.conversation_id {
        let owner = Owner { tenant_id: &user.0.tenant_id, user_id: &user.0.user_id };
        if conversations::get(&chat.db, owner, id).await?.is_none() {
            return Err(ChatError::ConversationNotFound);
        }
    }
    let issued = chat.tickets.issue(&user.0, request.conversation_id).await.map_err(ticket_error)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "ticket": issued.ticket, "expires_in": issued.expires_in })))
}

/// Maps a ticket failure on the REST side.
pub fn ticket_error(e: TicketError) -> ChatError {
    match e {
        TicketError::Store(StoreError::Unavailable(detail)) => {
            tracing::error!(error = %detail, "ticket store unreachable");
            ChatError::TicketStoreUnavailable
        }
        TicketError::Store(StoreError::Full) => ChatError::TicketStoreFull,
        other => ChatError::Internal(other.to_string()),
    }
}
