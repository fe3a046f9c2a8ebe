//! Virtual keys as credentials: where they are read from, and whether one may be used now. REST calls
//! and hub connections share the rules; both answer "Invalid Virtual Key" without saying why, so a
//! caller learns nothing about keys it does not hold.

use std::collections::HashMap;

use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::credentials;
use super::secrets::sha256_hex;
use crate::db::virtual_keys::{find_by_hash, VirtualKeyRow};
use crate::db::{now_ms, Database};
use crate::error::ApiError;
use crate::signalr::endpoint::{AuthRejection, Authenticator};
use crate::signalr::ConnectionUser;
use crate::state::AppState;
use crate::virtual_keys::KEY_PREFIX;

/// The one answer to every unusable key.
pub const INVALID_KEY: &str = "Invalid Virtual Key";

/// The group key of a virtual key's connections.
pub fn principal_key(key_id: i64) -> String {
    format!("vkey:{key_id}")
}

/// The key of a REST call: `Authorization: Bearer`, then `X-API-Key`.
pub fn presented_rest_key(req: &HttpRequest) -> Option<String> {
    credentials::bearer(req.headers()).or_else(|| credentials::header(req.headers(), "X-API-Key"))
}

/// The key of a hub request: `Authorization: Bearer`, the `access_token` or `api_key` query parameter
/// (browsers cannot set headers on WebSockets), then `X-API-Key`.
pub fn presented_hub_key(req: &HttpRequest) -> Option<String> {
    credentials::bearer(req.headers())
        .or_else(|| credentials::query_param(req.query_string(), "access_token"))
        .or_else(|| credentials::query_param(req.query_string(), "api_key"))
        .or_else(|| credentials::header(req.headers(), "X-API-Key"))
}

/// Why a key was refused (for logs and metrics; callers only ever see [`INVALID_KEY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Unknown,
    Unusable(&'static str),
    StoreUnavailable,
}

/// Finds the key and checks that it may be used now.
pub async fn authenticate(db: &Database, key: Option<&str>) -> Result<VirtualKeyRow, KeyRejection> {
    let key = key.ok_or(KeyRejection::Missing)?;
    if !key.starts_with(KEY_PREFIX) || key.len() > 256 {
        return Err(KeyRejection::Unknown);
    }
    let row = find_by_hash(db, &sha256_hex(key)).await.map_err(|e| {
        tracing::error!(error = %e, "key lookup failed");
        KeyRejection::StoreUnavailable
    })?;
    let row = row.ok_or(KeyRejection::Unknown)?;
    match row.unusable_reason(now_ms()) {
        Some(reason) => Err(KeyRejection::Unusable(reason)),
        None => Ok(row),
    }
}

/// Extractor for REST handlers that need a usable virtual key.
pub struct VirtualKeyAuth(pub VirtualKeyRow);

impl FromRequest for VirtualKeyAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let key = presented_rest_key(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("application state missing".into()))?;
            match authenticate(&state.db, key.as_deref()).await {
                Ok(row) => Ok(VirtualKeyAuth(row)),
                Err(KeyRejection::StoreUnavailable) => Err(ApiError::Unavailable("The database is unavailable".into())),
                Err(reason) => {
                    tracing::debug!(?reason, "virtual key refused");
                    crate::ops::metrics::AUTH_FAILURES.inc();
                    let reason = if reason == KeyRejection::Missing { "missing" } else { "invalid" };
                    crate::ops::metrics::AUTH_FAILURES_BY_REASON.inc([reason]);
                    Err(ApiError::Authentication(INVALID_KEY.into()))
                }
            }
        })
    }
}

/// Hub authenticator for virtual keys: a connection is bound to its key's group, capped at the key's
/// `maxConnections` (or the configured default).
pub struct VirtualKeyHubAuth {
    pub db: Database,
    pub default_max_connections: usize,
}

impl Authenticator for VirtualKeyHubAuth {
    fn authenticate(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Option<ConnectionUser>, AuthRejection>> {
        let key = presented_hub_key(req);
        let db = self.db.clone();
        let default_cap = self.default_max_connections;
        Box::pin(async move {
            if key.is_none() {
                return Ok(None);
            }
            let row = authenticate(&db, key.as_deref()).await.map_err(|_| AuthRejection::Unauthorized)?;
            let cap = row.max_connections.map(|n| n.max(0) as usize).unwrap_or(default_cap);
            Ok(Some(ConnectionUser {
                kind: "vkey",
                id: row.id.to_string(),
                name: row.key_name.clone(),
                claims: HashMap::new(),
                max_connections: (cap > 0).then_some(cap),
            }))
        })
    }

    fn required(&self) -> bool {
        true
    }

    fn credential(&self, req: &HttpRequest) -> Option<String> {
        presented_hub_key(req)
    }
}
