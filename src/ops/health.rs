//! `/health/live`, `/health/ready` and `/health`. No auth: load balancers and orchestrators call them.

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/health", web::get().to(ready));
}

/// One dependency's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    status: &'static str,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
}

impl Check {
    fn from_result(started: Instant, result: Result<(), String>, backend: Option<&'static str>) -> Check {
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) => Check { status: "Healthy", duration_ms, error: None, backend },
            Err(error) => Check { status: "Unhealthy", duration_ms, error: Some(error), backend },
        }
    }
}

async fn live(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "Healthy", "uptimeSeconds": state.started_at.elapsed().as_secs() }))
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let timeout = Duration::from_millis(state.config.redis.timeout_ms.max(500));
    let db_started = Instant::now();
    let db_result = match tokio::time::timeout(timeout, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    };
    let mut checks = serde_json::Map::new();
    let database = Check::from_result(db_started, db_result, Some(state.db.kind_name()));
    let mut healthy = database.status == "Healthy";
    checks.insert("database".into(), json!(database));
    if let Some(pool) = &state.redis {
        let started = Instant::now();
        let redis = Check::from_result(started, crate::redis_pool::ping(pool, timeout).await, None);
        healthy &= redis.status == "Healthy";
        checks.insert("redis".into(), json!(redis));
    }
    let body = json!({ "status": if healthy { "Healthy" } else { "Unhealthy" }, "checks": checks });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
