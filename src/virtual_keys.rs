//! Virtual keys: the API customers' credential. A key is `condt_` + 32 random bytes in URL-safe base64;
//! it is shown once, at creation, and only its SHA-256 and a short display prefix are stored.
//!
//! This module holds the rules (validation, what the API shows); `db::virtual_keys` holds the queries;
//! the admin API and the CLI both go through the functions here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::admin::notifier::{AdminEvent, Priority};
use crate::auth::secrets;
use crate::db::virtual_keys::{self as repo, ChangeWriter, NewVirtualKey, VirtualKeyChanges, VirtualKeyRow};
use crate::db::{ms_to_rfc3339, now_ms, Database};
use crate::error::ApiError;

/// Every virtual key starts with this.
pub const KEY_PREFIX: &str = "condt_";

/// How many characters of a key are kept for display (the prefix plus a few of the random part).
const DISPLAY_CHARS: usize = KEY_PREFIX.len() + 6;

/// A key as the admin API shows it: never the key itself, never its hash.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: i64,
    pub key_name: String,
    pub key_prefix: String,
    pub description: Option<String>,
    pub is_enabled: bool,
    pub expires_at: Option<String>,
    pub allowed_models: Option<String>,
    pub rate_limit_rpm: Option<i32>,
    pub rate_limit_rpd: Option<i32>,
    pub max_connections: Option<i32>,
    pub max_budget: Option<f64>,
    pub current_spend: f64,
    pub metadata: Option<serde_json::Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&VirtualKeyRow> for KeyInfo {
    fn from(row: &VirtualKeyRow) -> Self {
        KeyInfo {
            id: row.id,
            key_name: row.key_name.clone(),
            key_prefix: row.key_prefix.clone(),
            description: row.description.clone(),
            is_enabled: row.is_enabled,
            expires_at: row.expires_at.map(ms_to_rfc3339),
            allowed_models: row.allowed_models.clone(),
            rate_limit_rpm: row.rate_limit_rpm,
            rate_limit_rpd: row.rate_limit_rpd,
            max_connections: row.max_connections,
            max_budget: row.max_budget,
            current_spend: row.current_spend,
            metadata: row.metadata.as_deref().and_then(|m| serde_json::from_str(m).ok()),
            created_at: ms_to_rfc3339(row.created_at),
            updated_at: ms_to_rfc3339(row.updated_at),
        }
    }
}

/// The answer to a creation: the only time the key is ever shown.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub virtual_key: String,
    pub key_info: KeyInfo,
}

/// `POST /api/virtualkeys` body. Unknown fields are refused, so that a misspelt setting (say `isEnable`)
/// cannot silently leave a key other than intended.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub key_name: String,
    pub description: Option<String>,
    pub is_enabled: Option<bool>,
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_models: Option<String>,
    pub rate_limit_rpm: Option<i32>,
    pub rate_limit_rpd: Option<i32>,
    pub max_connections: Option<i32>,
    pub max_budget: Option<f64>,
    pub metadata: Option<serde_json::Value>,
}

/// `PUT /api/virtualkeys/{id}` body: a partial update. An absent field is left alone; `null` clears a
/// field that may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateKeyRequest {
    #[serde(default, deserialize_with = "present")]
    pub key_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub is_enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_models: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_rpm: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit_rpd: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_connections: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Option<serde_json::Value>>,
}

/// Marks a field as present (`Some`) even when its value is `null` (`Some(None)`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A freshly generated key and what is stored of it.
pub struct GeneratedKey {
    pub key: String,
    pub hash: String,
    pub display_prefix: String,
}

/// Makes a new key from the OS random generator.
pub fn generate_key() -> Result<GeneratedKey, ApiError> {
    let random = secrets::random_urlsafe(32).map_err(|_| ApiError::Internal("random generator failed".into()))?;
    let key = format!("{KEY_PREFIX}{random}");
    Ok(GeneratedKey { hash: secrets::sha256_hex(&key), display_prefix: format!("{}...", &key[..DISPLAY_CHARS]), key })
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::InvalidRequest("keyName must not be empty".into()));
    }
    if name.chars().count() > 100 {
        return Err(ApiError::InvalidRequest("keyName must be at most 100 characters".into()));
    }
    Ok(name.to_string())
}

fn check_positive(field: &str, value: Option<i32>) -> Result<Option<i32>, ApiError> {
    match value {
        Some(v) if v < 1 => Err(ApiError::InvalidRequest(format!("{field} must be at least 1"))),
        other => Ok(other),
    }
}

fn check_budget(value: Option<f64>) -> Result<Option<f64>, ApiError> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(ApiError::InvalidRequest("maxBudget must be zero or more".into())),
        other => Ok(other),
    }
}

fn normalise_models(models: Option<String>) -> Option<String> {
    models
        .map(|m| m.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","))
        .filter(|m| !m.is_empty())
}

fn metadata_text(value: Option<serde_json::Value>) -> Option<String> {
    value.filter(|v| !v.is_null()).map(|v| v.to_string())
}

/// Creates a key and returns it with its info; the only place a key is ever returned.
pub async fn create(db: &Database, req: CreateKeyRequest, writer: &ChangeWriter) -> Result<CreatedKey, ApiError> {
    let now = now_ms();
    let new_key = generate_key()?;
    let row = repo::insert(
        db,
        NewVirtualKey {
            key_name: check_name(&req.key_name)?,
            key_hash: new_key.hash,
            key_prefix: new_key.display_prefix,
            description: req.description.filter(|d| !d.is_empty()),
            is_enabled: req.is_enabled.unwrap_or(true),
            expires_at: req.expires_at.map(|t| t.timestamp_millis()),
            allowed_models: normalise_models(req.allowed_models),
            rate_limit_rpm: check_positive("rateLimitRpm", req.rate_limit_rpm)?,
            rate_limit_rpd: check_positive("rateLimitRpd", req.rate_limit_rpd)?,
            max_connections: check_positive("maxConnections", req.max_connections)?,
            max_budget: check_budget(req.max_budget)?,
            current_spend: 0.0,
            metadata: metadata_text(req.metadata),
            created_at: now,
            updated_at: now,
        },
        writer,
    )
    .await?;
    Ok(CreatedKey { virtual_key: new_key.key, key_info: KeyInfo::from(&row) })
}

/// Applies a partial update. `details` names what the request set (the admin hub shows it, and the key
/// change log keeps it); it must hold no secret. `Ok(None)` when the key does not exist.
pub async fn update(
    db: &Database,
    id: i64,
    req: UpdateKeyRequest,
    details: &serde_json::Value,
    writer: &ChangeWriter,
) -> Result<Option<VirtualKeyRow>, ApiError> {
    let not_null = |field: &str| ApiError::InvalidRequest(format!("{field} cannot be null"));
    let changes = VirtualKeyChanges {
        key_name: match req.key_name {
            Some(Some(name)) => Some(check_name(&name)?),
            Some(None) => return Err(not_null("keyName")),
            None => None,
        },
        description: req.description.map(|d| d.filter(|d| !d.is_empty())),
        is_enabled: match req.is_enabled {
            Some(Some(v)) => Some(v),
            Some(None) => return Err(not_null("isEnabled")),
            None => None,
        },
        expires_at: req.expires_at.map(|t| t.map(|t| t.timestamp_millis())),
        allowed_models: req.allowed_models.map(normalise_models),
        rate_limit_rpm: req.rate_limit_rpm.map(|v| check_positive("rateLimitRpm", v)).transpose()?,
        rate_limit_rpd: req.rate_limit_rpd.map(|v| check_positive("rateLimitRpd", v)).transpose()?,
        max_connections: req.max_connections.map(|v| check_positive("maxConnections", v)).transpose()?,
        max_budget: req.max_budget.map(check_budget).transpose()?,
        current_spend: None,
        metadata: req.metadata.map(metadata_text),
        updated_at: Some(now_ms()),
    };
    Ok(repo::update(db, id, changes, &details.to_string(), writer).await?)
}

impl VirtualKeyRow {
    /// Why this key may not be used now, if it may not: disabled, expired, or out of budget.
    pub fn unusable_reason(&self, now_ms: i64) -> Option<&'static str> {
        if !self.is_enabled {
            Some("Virtual key is disabled")
        } else if self.expires_at.is_some_and(|t| t <= now_ms) {
            Some("Virtual key has expired")
        } else if self.max_budget.is_some_and(|b| self.current_spend >= b) {
            Some("Virtual key budget exceeded")
        } else {
            None
        }
    }
}

/// How this server node writes key changes: it announces and enforces them itself, at once.
pub fn writer(state: &crate::state::AppState) -> ChangeWriter {
    ChangeWriter::node(&state.node_id)
}

/// Closes every live connection of a key, across hubs and nodes, with a Close message saying why.
pub fn close_connections(state: &crate::state::AppState, key_id: i64, reason: &str) {
    state.backplane.do_send(crate::backplane::Broadcast::ClosePrincipal {
        principal: crate::auth::virtual_key::principal_key(key_id),
        reason: reason.to_string(),
    });
}

/// Closes this node's live connections of a key: for changes that every node notices by itself (expiry,
/// entries of the key change log).
pub fn close_local_connections(state: &crate::state::AppState, key_id: i64, reason: &str) {
    state.groups.do_send(crate::groups::CloseAll {
        key: crate::auth::virtual_key::principal_key(key_id),
        reason: reason.to_string(),
    });
}

/// After a change through the admin API: a key that may no longer be used loses its connections now,
/// on every node.
pub fn enforce(state: &crate::state::AppState, row: &VirtualKeyRow) {
    if let Some(reason) = row.unusable_reason(now_ms()) {
        close_connections(state, row.id, reason);
    }
}

/// After a change seen in the key change log, which every node reads: a key that may no longer be used
/// loses this node's connections.
pub fn enforce_locally(state: &crate::state::AppState, row: &VirtualKeyRow) {
    if let Some(reason) = row.unusable_reason(now_ms()) {
        close_local_connections(state, row.id, reason);
    }
}

/// Adds a finished job's cost to its key's spend (atomically, in storage); a key that reaches its
/// budget stops authenticating and loses its live connections.
pub async fn record_spend(state: &crate::state::AppState, key_id: i64, amount: f64) {
    match repo::add_spend(&state.db, key_id, amount, &writer(state)).await {
        Ok(Some(row)) => {
            notify_spend(state, &row, amount);
            enforce(state, &row);
        }
        Ok(None) => {}
        Err(e) => {
            crate::ops::metrics::STORAGE_ERRORS.inc();
            tracing::error!(key_id, error = %e, "cannot record spend");
        }
    }
}

/// Tells operators about a new key (the admin hub's `VirtualKeyCreated`).
pub fn notify_created(state: &crate::state::AppState, info: &KeyInfo) {
    state.admin_events.do_send(AdminEvent::KeyCreated(info.clone()));
}

/// Tells operators and the key's subscribers about a change made with `req` (already applied to `row`).
/// Disabling is high priority: the key's clients have just lost their connections.
pub fn notify_updated(state: &crate::state::AppState, row: &VirtualKeyRow, details: serde_json::Value) {
    let enabled = details.get("isEnabled").and_then(serde_json::Value::as_bool);
    let (update_type, priority) = match enabled {
        Some(false) => ("Disabled", Priority::High),
        Some(true) => ("Enabled", Priority::Normal),
        None => ("Updated", Priority::Normal),
    };
    state.admin_events.do_send(AdminEvent::KeyUpdated { info: KeyInfo::from(row), update_type, details, priority });
}

/// Tells operators and the key's subscribers that a key is gone.
pub fn notify_deleted(state: &crate::state::AppState, key_id: i64) {
    state.admin_events.do_send(AdminEvent::KeyDeleted { key_id });
}

/// After spend grew by `amount` (atomically, so the spend before was `current - amount`): the key's
/// subscribers see the new spend, and operators get one `HighSpendAlert` per budget threshold crossed.
fn notify_spend(state: &crate::state::AppState, row: &VirtualKeyRow, amount: f64) {
    let before = row.current_spend - amount;
    let mut priority = Priority::Normal;
    if let Some(budget) = row.max_budget {
        for threshold in crate::admin::notifier::crossed_thresholds(before, row.current_spend, budget) {
            if threshold >= 100 {
                priority = Priority::High;
            }
            state.admin_events.do_send(AdminEvent::SpendAlert {
                key_id: row.id,
                threshold,
                current_spend: row.current_spend,
                budget_limit: budget,
            });
        }
    }
    let update_type = if priority == Priority::High { "BudgetExceeded" } else { "SpendUpdated" };
    let details =
        serde_json::json!({ "amount": amount, "currentSpend": row.current_spend, "maxBudget": row.max_budget });
    state.admin_events.do_send(AdminEvent::KeyUpdated { info: KeyInfo::from(row), update_type, details, priority });
}

/// Closes the connections of keys as they expire, within half a second. Runs for the server's lifetime,
/// on every node, so each node closes its own connections and tells its own operators.
pub async fn watch_expiry(state: actix_web::web::Data<crate::state::AppState>) {
    let mut checked_until = now_ms();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        let now = now_ms();
        match repo::expired_between(&state.db, checked_until, now).await {
            Ok(ids) => {
                for id in ids {
                    close_local_connections(&state, id, "Virtual key has expired");
                    state.admin_events.do_send(AdminEvent::KeyExpired { key_id: id });
                }
                checked_until = now;
            }
            Err(e) => {
                crate::ops::metrics::STORAGE_ERRORS.inc();
                tracing::debug!(error = %e, "expiry check failed; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = generate_key().unwrap();
        assert!(k.key.starts_with("condt_"));
        assert_eq!(k.key.len(), 6 + 43);
        assert_eq!(k.hash, secrets::sha256_hex(&k.key));
        assert!(k.display_prefix.starts_with(&k.key[..12]) && k.display_prefix.ends_with("..."));
        assert!(!k.display_prefix.contains(&k.key[12..20]));
    }

    #[test]
    fn update_distinguishes_absent_from_null() {
        let r: UpdateKeyRequest = serde_json::from_str(r#"{"maxBudget":null}"#).unwrap();
        assert_eq!(r.max_budget, Some(None));
        assert_eq!(r.description, None);
    }

    #[test]
    fn models_are_normalised() {
        assert_eq!(normalise_models(Some(" a, b*,,".into())).as_deref(), Some("a,b*"));
        assert_eq!(normalise_models(Some(" , ".into())), None);
    }
}
