//! The spaces surface's one error type and its one HTTP shape, `{"error":"…"}`: the shape the @hsafa/node
//! SDK reads. Internal failures are logged with their detail and answered with a text that leaks nothing.

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::json;

use crate::db::DbError;

/// Everything a spaces handler can answer besides success; the variant decides the status.
#[derive(Debug, thiserror::Error)]
pub enum SpacesError {
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413: a request body over [`MAX_BODY`].
    #[error("{0}")]
    TooLarge(String),
    /// 503: the database is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the detail is logged, never sent.
    #[error("Internal server error")]
    Internal(String),
}

impl SpacesError {
    /// 401 with a fixed text.
    pub fn unauthorized(text: &str) -> Self {
        SpacesError::Unauthorized(text.to_string())
    }
    /// 403 with a fixed text.
    pub fn forbidden(text: &str) -> Self {
        SpacesError::Forbidden(text.to_string())
    }
    /// 404 with a fixed text.
    pub fn not_found(text: &str) -> Self {
        SpacesError::NotFound(text.to_string())
    }
    /// 400 with a fixed text.
    pub fn bad_request(text: impl Into<String>) -> Self {
        SpacesError::BadRequest(text.into())
    }
}

impl From<DbError> for SpacesError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                SpacesError::Unavailable("The database is unavailable".into())
            }
            other => SpacesError::Internal(other.to_string()),
        }
    }
}

impl From<crate::db::spaces::WriteRefused> for SpacesError {
    fn from(e: crate::db::spaces::WriteRefused) -> Self {
        use crate::db::spaces::WriteRefused;
        match e {
            WriteRefused::NoSpace => SpacesError::not_found("SmartSpace not found"),
            WriteRefused::RunFinished => SpacesError::Conflict("Run is already finished".into()),
            WriteRefused::Duplicate => SpacesError::Conflict("Tool result already submitted for this call".into()),
            WriteRefused::Db(e) => e.into(),
        }
    }
}

impl ResponseError for SpacesError {
    fn status_code(&self) -> StatusCode {
        match self {
            SpacesError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            SpacesError::Forbidden(_) => StatusCode::FORBIDDEN,
            SpacesError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SpacesError::NotFound(_) => StatusCode::NOT_FOUND,
            SpacesError::Conflict(_) => StatusCode::CONFLICT,
            SpacesError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            SpacesError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            SpacesError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let SpacesError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        HttpResponse::build(self.status_code()).json(json!({ "error": self.to_string() }))
    }
}

/// The largest request body a spaces route reads (messages and tool results may be long).
pub const MAX_BODY: usize = 1024 * 1024;

/// A spaces route's request body, read up to [`MAX_BODY`]. Used instead of `web::Bytes` so that an
/// oversized or broken body is answered in the `{"error":"…"}` shape too: the SDK reads every error
/// body as JSON (and fails with a TypeError of its own on actix's plain-text 413).
pub struct Body(web::Bytes);

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for Body {
    type Error = SpacesError;
    type Future = LocalBoxFuture<'static, Result<Body, SpacesError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let too_large = || SpacesError::TooLarge(format!("Request body is larger than {MAX_BODY} bytes"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return Box::pin(std::future::ready(Err(too_large())));
        }
        let mut payload = payload.take();
        Box::pin(async move {
            let mut buf = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| SpacesError::bad_request(format!("Could not read the request body: {e}")))?;
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Body(buf.freeze()))
        })
    }
}

/// Parses a JSON body into `T`, answering 400 with the field named.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SpacesError> {
    crate::error::parse_json(body).map_err(|e| SpacesError::BadRequest(e.to_string()))
}

/// Parses the query string into `T`, answering 400 in the spaces shape.
pub fn parse_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, SpacesError> {
    serde_urlencoded::from_str(query).map_err(|e| SpacesError::BadRequest(format!("Invalid query string: {e}")))
}

/// Result of a spaces handler.
pub type SpacesResult = Result<HttpResponse, SpacesError>;
