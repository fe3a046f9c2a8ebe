//! Who is calling a chat REST endpoint: the user JWT's identity, or the development identity when
//! `chat.require_auth` is false.

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::error::ChatError;
use crate::auth::jwt::{bearer_token, ChatIdentity, JwtError, JwtVerifier};
use crate::state::AppState;

/// The identity of development mode (`REQUIRE_AUTH=false`).
pub fn dev_identity() -> ChatIdentity {
    ChatIdentity { tenant_id: "dev-tenant".into(), user_id: "dev-user".into(), session_id: "dev-session".into() }
}

/// Verifies an `Authorization` header value into an identity; the error texts are the contract's.
/// Without a configured verifier every token is refused as invalid.
pub async fn identity_from_header(
    verifier: Option<&JwtVerifier>,
    header: Option<&str>,
) -> Result<ChatIdentity, ChatError> {
    let token = bearer_token(header).map_err(|e| ChatError::Unauthorized(e.to_string()))?;
    let Some(verifier) = verifier else {
        return Err(ChatError::Unauthorized(JwtError::Invalid("no JWT key configured".into()).to_string()));
    };
    let claims = verifier.verify(token).await.map_err(|e| ChatError::Unauthorized(e.to_string()))?;
    claims.identity(verifier.settings()).map_err(|e| ChatError::Unauthorized(e.to_string()))
}

/// Extractor: the caller's identity. Put it first so nothing else is looked at before the caller is
/// known.
pub struct ChatUser(pub ChatIdentity);

impl FromRequest for ChatUser {
    type Error = ChatError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(AUTHORIZATION).map(|v| v.to_str().map(str::to_string));
        Box::pin(async move {
            let state = state.ok_or_else(|| ChatError::Internal("application state missing".into()))?;
            if !state.chat.settings.require_auth {
                return Ok(ChatUser(dev_identity()));
            }
            let header = match header {
                None => None,
                Some(Ok(value)) => Some(value),
                // A header that is not visible ASCII cannot be `Bearer <token>`.
                Some(Err(_)) => Some("?".to_string()),
            };
            identity_from_header(state.chat.jwt.as_ref(), header.as_deref()).await.map(ChatUser)
        })
    }
}
