//! Task updates: every change is stored first, then published for delivery (to the local TaskProgress
//! actor, or through a Redis stream that every node reads). A finished task never changes again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::progress::PublishTask;
use super::TaskKind;
use crate::db::tasks::{self as repo, TaskChanges, TaskRow};
use crate::db::{now_ms, DbError};
use crate::state::AppState;

/// What happened to a task.
#[derive(Debug, Clone)]
pub enum UpdateKind {
    Processing,
    Progress(i32),
    Completed { result: Value, cost: Option<f64> },
    Failed(String),
    Cancelled,
    TimedOut,
}

/// One reported change.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    pub kind: UpdateKind,
    pub message: Option<String>,
}

/// What a worker reports, over REST (`POST /api/tasks/{id}/events`) or the Redis events stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub progress: Option<i32>,
    pub message: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub cost: Option<f64>,
}

impl WorkerReport {
    /// The update it asks for; the error text says what is wrong with it.
    pub fn into_update(self) -> Result<TaskUpdate, String> {
        let kind = match self.kind.as_str() {
            "progress" => UpdateKind::Progress(
                self.progress
                    .filter(|p| (0..=100).contains(p))
                    .ok_or("progress events need an integer progress from 0 to 100")?,
            ),
            "processing" => UpdateKind::Processing,
            "completed" => UpdateKind::Completed {
                result: self.result.unwrap_or(Value::Null),
                cost: self.cost.filter(|c| c.is_finite() && *c >= 0.0),
            },
            "failed" => UpdateKind::Failed(self.error.unwrap_or_else(|| "Generation failed".into())),
            "cancelled" => UpdateKind::Cancelled,
            "timedout" => UpdateKind::TimedOut,
            other => {
                return Err(format!(
                "Unknown event type '{other}'; expected progress, processing, completed, failed, cancelled or timedout"
            ))
            }
        };
        Ok(TaskUpdate { kind, message: self.message })
    }
}

/// The published form of a task's state: what subscribers are told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub progress: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the update was stored (Unix ms), to measure delivery latency.
    pub stored_at: i64,
}

impl TaskEvent {
    pub fn from_row(row: &TaskRow) -> TaskEvent {
        TaskEvent {
            id: row.id.clone(),
            kind: row.kind.clone(),
            status: row.status.clone(),
            progress: row.progress,
            result: row.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
            error: row.error.clone(),
            stored_at: row.updated_at,
        }
    }

    /// The hub event that tells a subscriber this state: `(method, arguments)`.
    pub fn hub_event(&self) -> Option<(&'static str, Vec<Value>)> {
        let kind = TaskKind::parse(&self.kind)?;
        let (progress, completed, failed) = kind.events();
        let id = Value::String(self.id.clone());
        Some(match self.status.as_str() {
            "completed" => (completed, vec![id, self.result.clone().unwrap_or(Value::Null)]),
            "failed" | "cancelled" | "timedout" => {
                let error = self.error.clone().unwrap_or_else(|| format!("Task {}", self.status));
                (failed, vec![id, Value::String(error)])
            }
            _ => (progress, vec![id, Value::from(self.progress)]),
        })
    }
}

/// Stores an update and publishes the new state. `Ok(None)`: the task is unknown or already finished,
/// and nothing changed.
pub async fn apply(state: &AppState, task_id: &str, update: TaskUpdate) -> Result<Option<TaskRow>, DbError> {
    let now = now_ms();
    let mut changes = TaskChanges { updated_at: Some(now), ..TaskChanges::default() };
    if update.message.is_some() {
        changes.message = Some(update.message.clone());
    }
    let mut cost = None;
    match update.kind {
        UpdateKind::Processing => changes.status = Some("processing".into()),
        UpdateKind::Progress(p) => {
            changes.status = Some("processing".into());
            changes.progress = Some(p.clamp(0, 100));
        }
        UpdateKind::Completed { result, cost: c } => {
            changes.status = Some("completed".into());
            changes.progress = Some(100);
            changes.result = Some(Some(result.to_string()));
            changes.cost = Some(c);
            cost = c;
        }
        UpdateKind::Failed(error) => {
            changes.status = Some("failed".into());
            changes.error = Some(Some(error));
        }
        UpdateKind::Cancelled => {
            changes.status = Some("cancelled".into());
            changes.error = Some(Some("Task was cancelled".into()));
        }
        UpdateKind::TimedOut => {
            changes.status = Some("timedout".into());
            changes.error = Some(Some("Task timed out".into()));
        }
    }
    let Some(row) = repo::update_unfinished(&state.db, task_id, changes).await? else {
        return Ok(None);
    };
    publish(state, TaskEvent::from_row(&row)).await;
    record_outcome(state, &row);
    if let Some(amount) = cost.filter(|c| *c > 0.0) {
        crate::virtual_keys::record_spend(state, row.virtual_key_id, amount).await;
    }
    Ok(Some(row))
}

/// Counts a finished task towards its provider's health: completed is a success; failed and timed out
/// are failures; a cancellation says nothing about the provider.
fn record_outcome(state: &AppState, row: &TaskRow) {
    let ok = match row.status.as_str() {
        "completed" => true,
        "failed" | "timedout" => false,
        _ => return,
    };
    let provider = if super::simulated::handles(&row.model) {
        crate::ops::provider_health::SIMULATED.to_string()
    } else {
        // Models named `provider/model` belong to that provider; others to no provider known here.
        match row.model.split_once('/') {
            Some((provider, _)) => provider.to_string(),
            None => return,
        }
    };
    let response_time_ms = u64::try_from(row.updated_at.saturating_sub(row.created_at)).ok();
    state.provider_health.do_send(crate::ops::provider_health::RecordOutcome { provider, ok, response_time_ms });
}

/// Hands a stored state to delivery: the Redis stream when configured (every node reads it), else the
/// local TaskProgress actor. If Redis fails, this node still delivers to its own connections.
pub async fn publish(state: &AppState, event: TaskEvent) {
    if let Some(pool) = &state.redis {
        match xadd(pool, &state.config.redis.key(&state.config.generation.updates_stream), &event).await {
            Ok(()) => return,
            Err(e) => {
                crate::ops::metrics::REDIS_ERRORS.inc();
                tracing::error!(error = %e, "cannot append a task update to Redis; delivering locally");
            }
        }
    }
    if let Some(progress) = &state.progress {
        progress.do_send(PublishTask(event));
    }
}

async fn xadd(pool: &deadpool_redis::Pool, stream: &str, event: &TaskEvent) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let payload = serde_json::to_string(event).map_err(|e| e.to_string())?;
    deadpool_redis::redis::cmd("XADD")
        .arg(stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(100_000)
        .arg("*")
        .arg("task")
        .arg(payload)
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
