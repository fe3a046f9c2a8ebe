//! The optional Redis connection pool.

use std::time::Duration;

use deadpool_redis::{Config as PoolConfig, Pool, PoolConfig as Sizing, Runtime, Timeouts};

use crate::config::RedisConfig;

/// Builds the pool when `redis.url` is set. Connections are made lazily, so a Redis that is down at
/// start does not stop the server: readiness reports it.
pub fn connect(config: &RedisConfig) -> Result<Option<Pool>, String> {
    if config.url.is_empty() {
        return Ok(None);
    }
    let timeout = Some(Duration::from_millis(config.timeout_ms));
    let mut cfg = PoolConfig::from_url(config.url.clone());
    cfg.pool = Some(Sizing {
        max_size: config.pool_size,
        timeouts: Timeouts { wait: timeout, create: timeout, recycle: timeout },
        ..Sizing::default()
    });
    cfg.create_pool(Some(Runtime::Tokio1)).map(Some).map_err(|e| e.to_string())
}

/// `PING`, bounded by the configured timeout.
pub async fn ping(pool: &Pool, timeout: Duration) -> Result<(), String> {
    let work = async {
        let mut conn = pool.get().await.map_err(|e| e.to_string())?;
        let pong: String =
            deadpool_redis::redis::cmd("PING").query_async(&mut conn).await.map_err(|e| e.to_string())?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(format!("unexpected reply {pong}"))
        }
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| "timed out".to_string())?
}
