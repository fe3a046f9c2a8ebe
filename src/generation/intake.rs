//! Worker reports through Redis: workers may append events to the stream `<redis.key_prefix>:task-events`
//! instead of calling `POST /api/tasks/{id}/events`. Every node reads it through one consumer group, so
//! each event is stored exactly once; storing publishes the new state to all nodes as usual.
//!
//! Entry fields: `taskId`, `type` (progress | processing | completed | failed | cancelled | timedout), and
//! as the type needs: `progress` (0–100), `message`, `result` (JSON text), `error`, `cost`.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;
use deadpool_redis::redis::{self, AsyncCommands, Value as RedisValue};

use super::updates::{self, WorkerReport};
use crate::state::AppState;

/// The consumer group every node joins.
pub const GROUP: &str = "switchyard";

/// Reads and applies worker events for the server's lifetime.
pub async fn run(state: web::Data<AppState>, stream: String) {
    let Some(pool) = state.redis.clone() else { return };
    let consumer = format!("node-{}", uuid::Uuid::new_v4().simple());
    loop {
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(GROUP)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                tracing::warn!(error = %e, "task events stream: cannot create the consumer group");
                crate::ops::metrics::REDIS_ERRORS.inc();
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        loop {
            let options = redis::streams::StreamReadOptions::default()
                .group(GROUP, &consumer)
                .block(crate::redis_pool::STREAM_BLOCK.as_millis() as usize)
                .count(100);
            let reply: Result<redis::streams::StreamReadReply, _> =
                conn.xread_options(&[stream.as_str()], &[">"], &options).await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(error = %e, "task events stream: read failed, reconnecting");
                    crate::ops::metrics::REDIS_ERRORS.inc();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            };
            for key in reply.keys {
                for entry in key.ids {
                    apply_entry(&state, &entry.id, &entry.map).await;
                    let _: Result<i64, _> = conn.xack(&stream, GROUP, &[&entry.id]).await;
                }
            }
        }
    }
}

fn text(map: &HashMap<String, RedisValue>, field: &str) -> Option<String> {
    map.get(field).and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
}

async fn apply_entry(state: &AppState, entry_id: &str, map: &HashMap<String, RedisValue>) {
    let Some(task_id) = text(map, "taskId").filter(|id| uuid::Uuid::parse_str(id).is_ok()) else {
        tracing::warn!(entry = entry_id, "task event without a valid taskId skipped");
        return;
    };
    let report = WorkerReport {
        kind: text(map, "type").unwrap_or_default(),
        progress: text(map, "progress").and_then(|p| p.trim().parse().ok()),
        message: text(map, "message"),
        result: text(map, "result").and_then(|r| serde_json::from_str(&r).ok()),
        error: text(map, "error"),
        cost: text(map, "cost").and_then(|c| c.trim().parse().ok()),
    };
    match report.into_update() {
        Ok(update) => match updates::apply(state, &task_id, update).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!(task = %task_id, "task event for an unknown or finished task ignored"),
            Err(e) => tracing::error!(task = %task_id, error = %e, "cannot store a task event"),
        },
        Err(reason) => tracing::warn!(entry = entry_id, task = %task_id, %reason, "invalid task event skipped"),
    }
}
