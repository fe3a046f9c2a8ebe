//! One log line per request: method, path, redacted query, status and latency. Credentials never reach
//! the log: headers are not logged, and secret query values are replaced before the line is written.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;

/// Query parameters whose values are secrets (compared case-insensitively). `id` is a SignalR
/// connection token: whoever holds it can act as that connection.
pub const SECRET_QUERY_PARAMS: &[&str] = &["access_token", "api_key", "apikey", "ticket", "token", "id", "key"];

/// The query string with the values of secret parameters replaced by `***`.
pub fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret(name: &str) -> bool {
    let decoded = crate::auth::credentials::url_decoded_pairs(&format!("{name}=")).into_iter().next().map(|(k, _)| k);
    let name = decoded.as_deref().unwrap_or(name);
    SECRET_QUERY_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// The middleware (use with `actix_web::middleware::from_fn`).
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_string();
    let query = redact_query(req.query_string());
    let result = next.call(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(res) => {
            tracing::info!(%method, %path, %query, status = res.status().as_u16(), latency_ms = format_args!("{latency_ms:.2}"), "request")
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            tracing::info!(%method, %path, %query, status, latency_ms = format_args!("{latency_ms:.2}"), "request")
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_replaced() {
        assert_eq!(
            redact_query("access_token=abc&negotiateVersion=1&API_KEY=k&ticket=t&id=x"),
            "access_token=***&negotiateVersion=1&API_KEY=***&ticket=***&id=***"
        );
        assert_eq!(redact_query("access%5Ftoken=abc"), "access%5Ftoken=***");
        assert_eq!(redact_query(""), "");
    }
}
