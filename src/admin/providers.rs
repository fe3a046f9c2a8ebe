//! Provider health over HTTP: `POST /api/providers/{name}/health` lets workers (master key or worker
//! token) report on a provider they call; `GET /api/providers/health` lists every provider's health
//! (master key). Changes reach the admin hub as `ProviderHealthUpdate`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::AdminAuth;
use crate::error::{parse_json, ApiError};
use crate::ops::provider_health::{AllHealth, HealthStatus, Report};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/providers/health", web::get().to(list))
        .route("/api/providers/{name}/health", web::post().to(report));
}

/// A worker's report; unknown fields are refused like every admin body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HealthReport {
    status: String,
    response_time_ms: Option<u64>,
    details: Option<String>,
}

fn unavailable<E>(_: E) -> ApiError {
    ApiError::Internal("provider health is unavailable".into())
}

async fn report(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    crate::generation::rest::check_worker(&state, &req)?;
    let body: HealthReport = parse_json(&body)?;
    let status = HealthStatus::parse(&body.status).ok_or_else(|| {
        ApiError::InvalidRequest(format!("status must be Healthy, Degraded or Unhealthy, not '{}'", body.status))
    })?;
    if body.details.as_ref().is_some_and(|d| d.chars().count() > 1000) {
        return Err(ApiError::InvalidRequest("details must be at most 1000 characters".into()));
    }
    let name = name.into_inner();
    let report =
        Report { provider: name.clone(), status, response_time_ms: body.response_time_ms, details: body.details };
    match state.provider_health.send(report).await.map_err(unavailable)? {
        Some(info) => Ok(HttpResponse::Ok().json(info)),
        None => Err(ApiError::NotFound(format!("Provider {name} not found"))),
    }
}

async fn list(_: AdminAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let all = state.provider_health.send(AllHealth).await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(all))
}
