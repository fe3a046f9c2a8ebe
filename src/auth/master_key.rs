//! The master key: the operators' credential for the admin API and the admin hub.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use super::credentials;
use super::secrets::constant_time_eq;
use crate::error::ApiError;
use crate::state::AppState;

/// Where a master key may come from, in the order they are read.
pub const MASTER_KEY_HEADERS: [&str; 2] = ["X-API-Key", "X-Master-Key"];

/// The text logged at start-up, and answered with 503, when no master key is configured.
pub const NO_MASTER_KEY: &str = "The admin API is disabled because no master key is configured. \
     Set CONDUIT_MASTER_KEY (or admin.master_key in the config file, or SWITCHYARD__ADMIN__MASTER_KEY).";

/// The master key a request presents: `X-API-Key`, `X-Master-Key`, `Authorization: Bearer`, then the
/// `access_token` query parameter. The first one present is the one judged.
pub fn presented_master_key(req: &HttpRequest) -> Option<String> {
    let headers = req.headers();
    MASTER_KEY_HEADERS
        .iter()
        .find_map(|name| credentials::header(headers, name))
        .or_else(|| credentials::bearer(headers))
        .or_else(|| credentials::query_param(req.query_string(), "access_token"))
}

/// Checks a presented key against the configured one in constant time.
pub fn check_master_key(configured: &str, presented: Option<&str>) -> Result<(), ApiError> {
    if configured.is_empty() {
        return Err(ApiError::Unavailable(NO_MASTER_KEY.into()));
    }
    match presented {
        None => Err(ApiError::Authentication("Master key required".into())),
        Some(key) if constant_time_eq(configured, key) => Ok(()),
        Some(_) => Err(ApiError::Authentication("Invalid master key".into())),
    }
}

/// Extractor that admits only requests carrying the master key. Put it first in a handler's arguments
/// so that nothing else about the request is looked at before the caller is known.
pub struct AdminAuth;

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Internal("application state missing".into())));
        };
        let presented = presented_master_key(req);
        let checked = check_master_key(&state.config.admin.master_key, presented.as_deref());
        if let Err(ApiError::Authentication(_)) = &checked {
            let reason = if presented.is_none() { "master_key_missing" } else { "master_key_invalid" };
            crate::ops::metrics::AUTH_FAILURES_BY_REASON.inc([reason]);
        }
        ready(checked.map(|_| AdminAuth))
    }
}

/// Hub authenticator for the admin hub: the master key, from `Authorization: Bearer` (negotiate) or
/// `access_token` (browsers' sockets), or the admin API's headers. Every refusal is a 401, so that a
/// caller learns nothing about why.
pub struct MasterKeyHubAuth {
    /// The configured master key; empty means the admin hub refuses everyone.
    pub master_key: std::sync::Arc<str>,
}

impl crate::signalr::endpoint::Authenticator for MasterKeyHubAuth {
    fn authenticate(
        &self,
        req: &HttpRequest,
    ) -> futures_util::future::LocalBoxFuture<
        'static,
        Result<Option<crate::signalr::ConnectionUser>, crate::signalr::endpoint::AuthRejection>,
    > {
        let presented = presented_master_key(req);
        if presented.is_none() {
            // No credential at all: the endpoint refuses it (401) and counts it as missing.
            return Box::pin(std::future::ready(Ok(None)));
        }
        let result = match check_master_key(&self.master_key, presented.as_deref()) {
            Ok(()) => Ok(Some(crate::signalr::ConnectionUser {
                kind: "admin",
                id: "master".into(),
                name: "admin".into(),
                claims: Default::default(),
                max_connections: None,
            })),
            Err(_) => Err(crate::signalr::endpoint::AuthRejection::Unauthorized),
        };
        Box::pin(std::future::ready(result))
    }

    fn required(&self) -> bool {
        true
    }
}
