//! The chat surface's error type and its one HTTP shape: `{"detail":"…"}` (the shape the widget and
//! the original service use), with `WWW-Authenticate: Bearer` on every 401.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;

/// The detail answered (503) and the close reason (4003) when the ticket store cannot be reached.
pub const TICKET_STORE_UNAVAILABLE: &str = "Ticket auth not configured";

/// Everything a chat REST handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// 401: the JWT is missing or refused; the text is one of the verifier's contract texts.
    #[error("{0}")]
    Unauthorized(String),
    /// 400: the request body is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// 404: absent, or someone else's (the two are never told apart).
    #[error("Conversation not found")]
    ConversationNotFound,
    /// 404 for the demo page when the widget was not built.
    #[error("Chat demo not built: run `npm ci && npm run build` in web/")]
    DemoNotBuilt,
    /// 503: the configured ticket store cannot be reached.
    #[error("{TICKET_STORE_UNAVAILABLE}")]
    TicketStoreUnavailable,
    /// 503: the in-process ticket store is full of unexpired tickets.
    #[error("Too many pending tickets; retry shortly")]
    TicketStoreFull,
    /// 503: the database cannot be reached.
    #[error("The database is unavailable")]
    DatabaseUnavailable,
    /// 500: the detail is logged, never sent.
    #[error("Internal server error")]
    Internal(String),
}

impl From<DbError> for ChatError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                ChatError::DatabaseUnavailable
            }
            other => ChatError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ChatError {
    fn status_code(&self) -> StatusCode {
        match self {
            ChatError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ChatError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ChatError::ConversationNotFound | ChatError::DemoNotBuilt => StatusCode::NOT_FOUND,
            ChatError::TicketStoreUnavailable | ChatError::TicketStoreFull | ChatError::DatabaseUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ChatError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ChatError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ChatError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({ "detail": self.to_string() }))
    }
}

/// Parses an optional JSON request body (empty means `T::default()`), naming a bad field.
pub fn parse_optional_json<T>(body: &[u8]) -> Result<T, ChatError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ChatError::BadRequest(format!("Malformed JSON: {inner}"))
        } else {
            ChatError::BadRequest(format!("Invalid value for '{path}': {inner}"))
        }
    })?;
    de.end().map_err(|e| ChatError::BadRequest(format!("Malformed JSON: {e}")))?;
    Ok(value)
}
