//! One chat turn from question to `done`: the conversation is checked or created, the question
//! stored, the orchestrator streams its answer, the answer is stored, and exactly one final event
//! (`done` or `error`) ends the turn.

use std::time::Duration;

use tokio::sync::mpsc;

use super::orchestrator::{Confirmation, EventSink, HistoryEntry, OrchestratorError, Turn};
use super::protocol::{AgentEvent, ErrorType};
use super::ChatState;
use crate::auth::jwt::ChatIdentity;
use crate::db::conversations::{self as repo, Owner};

/// Earlier messages handed to the orchestrator.
const HISTORY_LIMIT: i64 = 50;
/// Longest stored conversation title, in characters.
const TITLE_CHARS: usize = 80;

/// What the socket asks for.
pub struct TurnRequest {
    pub run_id: String,
    pub identity: ChatIdentity,
    pub conversation_id: Option<String>,
    pub message: String,
    pub confirmations: mpsc::UnboundedReceiver<Confirmation>,
}

fn recoverable(message: &str) -> AgentEvent {
    AgentEvent::Error { error_type: ErrorType::Recoverable, message: message.into() }
}

/// Runs a turn to its end, sending every event through `sink`. Dropping the future cancels it.
pub async fn run(chat: ChatState, request: TurnRequest, mut sink: EventSink) {
    let owner = Owner { tenant_id: &request.identity.tenant_id, user_id: &request.identity.user_id };
    let db = &chat.db;
    let conversation = match &request.conversation_id {
        Some(id) => repo::get(db, owner, id).await,
        None => {
            let title: String = request.message.trim().chars().take(TITLE_CHARS).collect();
            repo::create(db, owner, &title).await.map(Some)
        }
    };
    let conversation = match conversation {
        Ok(Some(c)) => c,
        Ok(None) => {
            return sink.finish(AgentEvent::Error {
                error_type: ErrorType::ValidationError,
                message: "Conversation not found".into(),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot load a chat conversation");
            return sink.finish(recoverable("Could not load the conversation; please try again"));
        }
    };
    let history = match repo::messages(db, owner, &conversation.id, HISTORY_LIMIT).await {
        Ok(rows) => {
            rows.unwrap_or_default().into_iter().map(|m| HistoryEntry { role: m.role, content: m.content }).collect()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot load chat history");
            return sink.finish(recoverable("Could not load the conversation; please try again"));
        }
    };
    let mut count = match repo::append(db, owner, &conversation.id, "user", &request.message).await {
        Ok(Some(count)) => count,
        Ok(None) => {
            return sink.finish(AgentEvent::Error {
                error_type: ErrorType::ValidationError,
                message: "Conversation not found".into(),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store a chat message");
            return sink.finish(recoverable("Could not store your message; please try again"));
        }
    };

    let mut turn = Turn {
        run_id: request.run_id,
        identity: request.identity.clone(),
        conversation_id: conversation.id.clone(),
        message: request.message,
        history,
        confirmations: request.confirmations,
        confirmation_timeout: Duration::from_secs(chat.settings.confirmation_timeout_seconds),
    };
    let limit = Duration::from_secs(chat.settings.orchestrator_timeout_seconds);
    let outcome = tokio::time::timeout(limit, chat.orchestrator.run(&mut turn, &mut sink)).await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(OrchestratorError::Reported(message))) => {
            return sink.finish(recoverable(&message));
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, orchestrator = chat.orchestrator.name(), "chat answer failed");
            return sink.finish(recoverable("The assistant could not answer; please try again"));
        }
        Err(_) => {
            tracing::warn!(orchestrator = chat.orchestrator.name(), "chat answer timed out");
            chat.orchestrator.cancel(turn.run_id.clone()).await;
            return sink.finish(recoverable("The assistant took too long to answer; please try again"));
        }
    }
    if !sink.text().is_empty() {
        let text = sink.text().to_string();
        match repo::append(db, owner, &conversation.id, "assistant", &text).await {
            Ok(Some(c)) => count = c,
            Ok(None) => {
                return sink.finish(AgentEvent::Error {
                    error_type: ErrorType::ValidationError,
                    message: "Conversation not found".into(),
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store a chat answer");
                return sink.finish(recoverable("Could not store the answer; please try again"));
            }
        }
    }
    sink.finish(AgentEvent::Done { conversation_id: conversation.id, message_count: i64::from(count) });
}
