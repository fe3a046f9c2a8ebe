//! The API error type and its one HTTP shape: `{"error":{"message":"…","type":"…"}}`.
//!
//! Handlers return [`ApiError`]; its variant decides the status code and the `type` field. Internal
//! failures are logged with their detail and answered with a generic text that leaks nothing.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;

/// Everything a REST handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Authentication(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// 400: the request itself is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 429, with the seconds after which a retry may succeed.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// 503: a feature is not configured, or a dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the detail is logged, never sent.
    #[error("An internal error occurred")]
    Internal(String),
}

impl ApiError {
    /// The `type` field of the error body.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Authentication(_) => "authentication_error",
            ApiError::PermissionDenied(_) => "permission_error",
            ApiError::InvalidRequest(_) => "invalid_request_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::Conflict(_) => "conflict_error",
            ApiError::RateLimited { .. } => "rate_limit_error",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "server_error",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        crate::ops::metrics::STORAGE_ERRORS.inc();
        match e {
            DbError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                ApiError::Unavailable("The database is unavailable".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Authentication(_) => StatusCode::UNAUTHORIZED,
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs, .. } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        response.json(json!({ "error": { "message": self.to_string(), "type": self.kind() } }))
    }
}

/// Parses a JSON request body, naming the offending field in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest("A JSON request body is required".into()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::InvalidRequest(format!("Malformed JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::InvalidRequest(format!("Invalid request body: {inner}"))
        } else {
            ApiError::InvalidRequest(format!("Invalid value for '{path}': {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::InvalidRequest(format!("Malformed JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        key_name: String,
        rate_limit_rpm: Option<i32>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"keyName":"a","rateLimitRpm":"x"}"#).unwrap_err().to_string();
        assert!(e.contains("rateLimitRpm"), "{e}");
        let e = parse_json::<Body>(br#"{"keyName":"a","#).unwrap_err().to_string();
        assert!(e.starts_with("Malformed JSON"), "{e}");
        let e = parse_json::<Body>(br#"{"keyName":"a","bogus":1}"#).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(parse_json::<Body>(b"  ").is_err());
    }
}
