//! Per-key limits on REST calls: allowed models, requests per minute and per UTC day. Counters live in
//! Redis when it is configured (so they hold across nodes) and in the [`LocalCounters`] actor otherwise.

use std::collections::HashMap;

use actix::prelude::*;

use crate::db::virtual_keys::VirtualKeyRow;
use crate::error::ApiError;
use crate::state::AppState;

/// Whether `model` is allowed by a key's `allowedModels` (comma list, case-insensitive, a trailing `*`
/// matches a prefix; none set = everything).
pub fn model_allowed(allowed: Option<&str>, model: &str) -> bool {
    let Some(allowed) = allowed.filter(|a| !a.trim().is_empty()) else { return true };
    let model = model.to_ascii_lowercase();
    allowed.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()).any(|pattern| {
        match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => model == pattern,
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Window {
    Minute,
    Day,
}

impl Window {
    fn seconds(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Day => 86_400,
        }
    }
}

/// In-process counters, one per key and window.
#[derive(Default)]
pub struct LocalCounters {
    counts: HashMap<(i64, Window), (i64, u32)>,
}

impl Actor for LocalCounters {
    type Context = Context<Self>;
}

/// Counts a request; answers the count in the current window.
#[derive(Message)]
#[rtype(result = "u32")]
struct Hit {
    key: i64,
    window: Window,
    slot: i64,
}

impl Handler<Hit> for LocalCounters {
    type Result = u32;
    fn handle(&mut self, msg: Hit, _: &mut Self::Context) -> u32 {
        let entry = self.counts.entry((msg.key, msg.window)).or_insert((msg.slot, 0));
        if entry.0 != msg.slot {
            *entry = (msg.slot, 0);
        }
        entry.1 += 1;
        entry.1
    }
}

async fn hit(state: &AppState, key: i64, window: Window, now_secs: i64) -> Result<u32, ApiError> {
    let slot = now_secs.div_euclid(window.seconds());
    if let Some(pool) = &state.redis {
        let name =
            state.config.redis.key(&format!("rl:{key}:{}:{slot}", if window == Window::Minute { "m" } else { "d" }));
        let mut conn = pool.get().await.map_err(|e| {
            crate::ops::metrics::REDIS_ERRORS.inc();
            ApiError::Unavailable(format!("Rate limit store unavailable: {e}"))
        })?;
        let (count,): (u32,) = deadpool_redis::redis::pipe()
            .atomic()
            .incr(&name, 1)
            .expire(&name, window.seconds() + 5)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| {
                crate::ops::metrics::REDIS_ERRORS.inc();
                ApiError::Unavailable(format!("Rate limit store unavailable: {e}"))
            })?;
        return Ok(count);
    }
    state.limits.send(Hit { key, window, slot }).await.map_err(|_| ApiError::Internal("rate limiter stopped".into()))
}

/// Counts this request against the key's per-minute and per-day limits; 429 with `Retry-After` beyond.
pub async fn check_rate(state: &AppState, key: &VirtualKeyRow) -> Result<(), ApiError> {
    let now = chrono::Utc::now().timestamp();
    for (limit, window, what) in
        [(key.rate_limit_rpm, Window::Minute, "per minute"), (key.rate_limit_rpd, Window::Day, "per day")]
    {
        let Some(limit) = limit.filter(|l| *l > 0) else { continue };
        let count = hit(state, key.id, window, now).await?;
        if count > limit as u32 {
            let retry_after_secs = (window.seconds() - now.rem_euclid(window.seconds())).max(1) as u64;
            return Err(ApiError::RateLimited {
                message: format!("Rate limit exceeded: {limit} requests {what}"),
                retry_after_secs,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::model_allowed;

    #[test]
    fn allowed_models_match_case_insensitively_with_prefixes() {
        assert!(model_allowed(None, "anything"));
        assert!(model_allowed(Some("sim-image,dall-e-*"), "SIM-IMAGE"));
        assert!(model_allowed(Some("sim-image,dall-e-*"), "dall-e-3"));
        assert!(!model_allowed(Some("sim-image,dall-e-*"), "sim-video"));
        assert!(!model_allowed(Some("sim-image"), "sim-image-2"));
        assert!(model_allowed(Some("*"), "x"));
    }
}
