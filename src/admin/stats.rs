//! `GET /api/stats`: live counts per hub, transport and principal, for operators and leak checks.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::auth::AdminAuth;
use crate::groups::PrincipalCount;
use crate::ops::metrics;
use crate::signalr::hub_actor::GetStats;
use crate::state::AppState;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/stats", web::get().to(stats));
}

async fn stats(_: AdminAuth, state: web::Data<AppState>) -> HttpResponse {
    let mut hubs = Vec::with_capacity(state.hubs.len());
    for hub in &state.hubs {
        if let Ok(stats) = hub.addr.send(GetStats).await {
            hubs.push(stats);
        }
    }
    let principals = state.groups.send(PrincipalCount).await.unwrap_or(0);
    HttpResponse::Ok().json(json!({
        "hubs": hubs,
        "principalsConnected": principals,
        "connectionActors": metrics::CONNECTIONS_OPEN.get(),
        "invocations": metrics::INVOCATIONS.get(),
        "invocationErrors": metrics::INVOCATION_ERRORS.get(),
        "slowConsumersDropped": metrics::SLOW_CONSUMERS.get(),
        "authFailures": metrics::AUTH_FAILURES.get(),
        "connectionCapRefusals": metrics::CONNECTION_CAP_REFUSALS.get(),
    }))
}
