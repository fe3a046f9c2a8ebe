//! The optional Redis connection pool.

use std::time::Duration;

use deadpool_redis::redis::AsyncConnectionConfig;
use deadpool_redis::{Manager, Pool, Runtime};

use crate::config::RedisConfig;

/// How long a stream read blocks waiting for new entries.
pub const STREAM_BLOCK: Duration = Duration::from_millis(1000);

/// Builds the pool when `redis.url` is set. Connections are made lazily, so a Redis that is down at
/// start does not stop the server: readiness reports it.
///
/// The client's own default response timeout (500 ms) is shorter than a blocking stream read, which
/// would then fail every time and lose what arrives meanwhile: replies may take `timeout_ms` plus the
/// longest block.
pub fn connect(config: &RedisConfig) -> Result<Option<Pool>, String> {
    if config.url.is_empty() {
        return Ok(None);
    }
    let timeout = Duration::from_millis(config.timeout_ms);
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout + STREAM_BLOCK));
    let manager = Manager::new_with_config(config.url.as_str(), connection).map_err(|e| e.to_string())?;
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
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
    use deadpool_redis::redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
    use deadpool_redis::redis::AsyncCommands;
    // Known once a first connection told where the stream ends; from then on no gap loses an entry.
    let mut last_id: Option<String> = None;
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
        let mut from = match &last_id {
            Some(id) => id.clone(),
            None => match conn.xrevrange_count::<_, _, _, _, StreamRangeReply>(&stream, "+", "-", 1).await {
                Ok(range) => range.ids.first().map(|e| e.id.clone()).unwrap_or_else(|| "0-0".to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, stream = what, "cannot find the stream's end, retrying");
                    crate::ops::metrics::REDIS_ERRORS.inc();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        last_id = Some(from.clone());
        loop {
            let options = StreamReadOptions::default().block(STREAM_BLOCK.as_millis() as usize).count(500);
            let reply: Result<StreamReadReply, _> =
                conn.xread_options(&[stream.as_str()], &[from.as_str()], &options).await;
            match reply {
                Ok(reply) => {
                    for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
                        from = entry.id.clone();
                        last_id = Some(from.clone());
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
