//! `GET /api/connections` lists live SignalR connections across hubs (id, hub, transport, principal,
//! remote address, connected since, messages in and out: never a secret); `DELETE /api/connections/{id}`
//! closes one with a Close message carrying a reason. Both behind the master key.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::signalr::connection::{CloseConnection, Describe};
use crate::signalr::hub_actor::{FindConnection, ListConnections};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/connections", web::get().to(list)).route("/api/connections/{id}", web::delete().to(close));
}

/// Reason given to the client when an operator closes its connection without saying why.
pub const DEFAULT_REASON: &str = "Connection closed by an operator";

/// `?reason=` of a DELETE; shown to the client in its Close message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseQuery {
    reason: Option<String>,
}

async fn list(_: AdminAuth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut connections = Vec::new();
    for hub in &state.hubs {
        let Ok(addrs) = hub.addr.send(ListConnections).await else { continue };
        let described = futures_util::future::join_all(addrs.iter().map(|a| a.send(Describe))).await;
        // A connection that ended meanwhile simply does not answer.
        connections.extend(described.into_iter().flatten());
    }
    connections.sort_by(|a, b| a.connected_since.cmp(&b.connected_since).then(a.connection_id.cmp(&b.connection_id)));
    Ok(HttpResponse::Ok().json(json!({ "count": connections.len(), "connections": connections })))
}

async fn close(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<CloseQuery>,
) -> Result<HttpResponse, ApiError> {
    let reason = query.into_inner().reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 200) {
        return Err(ApiError::InvalidRequest("reason must be at most 200 characters".into()));
    }
    let reason = reason.unwrap_or_else(|| DEFAULT_REASON.to_string());
    let id = id.into_inner();
    for hub in &state.hubs {
        if let Ok(Some(conn)) = hub.addr.send(FindConnection { id: id.clone() }).await {
            conn.do_send(CloseConnection { error: Some(reason), allow_reconnect: false });
            tracing::info!(connection = %id, hub = %hub.path, "connection closed by an operator");
            return Ok(HttpResponse::NoContent().finish());
        }
    }
    Err(ApiError::NotFound("Connection not found".into()))
}
