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

/// Follows a Redis stream from its end, forever: every entry appended from now on is handed to
/// `on_entry`, in order. After a failure it reconnects and resumes after the last entry it saw, so
/// nothing appended meanwhile is missed. `what` names the stream in logs.
pub async fn follow_stream(
    pool: Pool,
    stream: String,
    what: &'static str,
    mut on_entry: impl FnMut(deadpool_redis::redis::streams::StreamId),
) {
    use deadpool_redis::redis::streams::{StreamReadOptions, StreamReadReply};
    use deadpool_redis::redis::AsyncCommands;
    let mut last_id = "$".to_string();
    loop {
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, stream = what, "Redis unavailable, retrying");
                crate::ops::metrics::REDIS_ERRORS.inc();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let options = StreamReadOptions::default().block(1000).count(500);
            let reply: Result<StreamReadReply, _> =
                conn.xread_options(&[stream.as_str()], &[last_id.as_str()], &options).await;
            match reply {
                Ok(reply) => {
                    for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
                        last_id = entry.id.clone();
                        on_entry(entry);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, stream = what, "stream read failed, reconnecting");
                    crate::ops::metrics::REDIS_ERRORS.inc();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}
