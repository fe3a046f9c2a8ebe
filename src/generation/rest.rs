//! The REST side of generation: start a job, read its status, cancel it (virtual key), and the workers'
//! endpoint that reports task events (master key or worker token).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::limits::{check_rate, model_allowed};
use super::updates::{self, TaskUpdate, UpdateKind, WorkerReport};
use super::{simulated, TaskKind};
use crate::auth::credentials;
use crate::auth::master_key::{check_master_key, presented_master_key};
use crate::auth::secrets::constant_time_eq;
use crate::auth::virtual_key::VirtualKeyAuth;
use crate::db::tasks::{self as repo, TaskRow, TERMINAL};
use crate::db::{ms_to_rfc3339, now_ms};
use crate::error::{parse_json, ApiError};
use crate::state::AppState;

/// Registers the routes for both kinds and the workers' endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for kind in [TaskKind::Image, TaskKind::Video] {
        let base = kind.base_path();
        cfg.service(
            web::resource(format!("{base}/async")).app_data(web::Data::new(kind)).route(web::post().to(create)),
        )
        .service(
            web::resource(format!("{base}/{{id}}/status")).app_data(web::Data::new(kind)).route(web::get().to(status)),
        )
        .service(
            web::resource(format!("{base}/{{id}}")).app_data(web::Data::new(kind)).route(web::delete().to(cancel)),
        );
    }
    cfg.route("/api/tasks/{id}/events", web::post().to(worker_event));
}

/// A generation request. Fields beyond these are kept with the task and handed to the worker.
#[derive(Debug, Deserialize)]
struct CreateRequest {
    model: String,
    prompt: String,
    n: Option<u32>,
    size: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// The base URL clients reach this server at, for links in responses.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    if !state.config.server.public_url.is_empty() {
        return state.config.server.public_url.trim_end_matches('/').to_string();
    }
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

async fn create(
    key: VirtualKeyAuth,
    kind: web::Data<TaskKind>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = key.0;
    let kind = **kind;
    let request: CreateRequest = parse_json(&body)?;
    let model = request.model.trim().to_string();
    if model.is_empty() {
        return Err(ApiError::InvalidRequest("model is required".into()));
    }
    if request.prompt.trim().is_empty() {
        return Err(ApiError::InvalidRequest("prompt is required".into()));
    }
    if request.prompt.chars().count() > 32_000 {
        return Err(ApiError::InvalidRequest("prompt must be at most 32000 characters".into()));
    }
    let n = request.n.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err(ApiError::InvalidRequest("n must be between 1 and 10".into()));
    }
    if !model_allowed(key.allowed_models.as_deref(), &model) {
        return Err(ApiError::PermissionDenied(format!("Model '{model}' is not allowed for this virtual key")));
    }
    check_rate(&state, &key).await?;

    let now = now_ms();
    let base = base_url(&state, &req);
    let mut stored = request.extra.clone();
    stored.insert("model".into(), json!(model));
    stored.insert("prompt".into(), json!(request.prompt));
    stored.insert("n".into(), json!(n));
    if let Some(size) = &request.size {
        stored.insert("size".into(), json!(size));
    }
    let row = repo::insert(
        &state.db,
        TaskRow {
            id: uuid::Uuid::new_v4().to_string(),
            kind: kind.name().into(),
            virtual_key_id: key.id,
            model: model.clone(),
            request: Value::Object(stored.clone()).to_string(),
            status: "queued".into(),
            progress: 0,
            message: None,
            result: None,
            error: None,
            cost: None,
            created_at: now,
            updated_at: now,
            base_url: Some(base.clone()),
        },
    )
    .await?;

    if simulated::handles(&model) && state.config.generation.simulated_provider {
        simulated::spawn(state.clone(), simulated::Job::new(kind, &row.id, &model, &base, n));
    } else if let Some(pool) = &state.redis {
        enqueue_for_workers(pool, &state.config.redis.key(&state.config.generation.jobs_stream), &row, &stored).await?;
    } else {
        tracing::warn!(task = %row.id, %model, "no provider runs this model on this node; it stays queued until a worker reports");
    }
    tracing::info!(task = %row.id, kind = kind.name(), key_id = key.id, %model, "generation task created");
    Ok(HttpResponse::Accepted().json(json!({
        kind.id_field(): row.id,
        "status": "queued",
        "checkStatusUrl": format!("{base}{}/{}/status", kind.base_path(), row.id),
        "createdAt": ms_to_rfc3339(row.created_at),
    })))
}

/// Appends a new job to the workers' Redis stream.
async fn enqueue_for_workers(
    pool: &deadpool_redis::Pool,
    stream: &str,
    row: &TaskRow,
    request: &Map<String, Value>,
) -> Result<(), ApiError> {
    let mut conn = pool.get().await.map_err(|e| ApiError::Unavailable(format!("Job queue unavailable: {e}")))?;
    deadpool_redis::redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("taskId")
        .arg(&row.id)
        .arg("kind")
        .arg(&row.kind)
        .arg("model")
        .arg(&row.model)
        .arg("request")
        .arg(Value::Object(request.clone()).to_string())
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| {
            crate::ops::metrics::REDIS_ERRORS.inc();
            ApiError::Unavailable(format!("Job queue unavailable: {e}"))
        })
}

/// The caller's own task, or 404: another key's task is indistinguishable from a missing one.
async fn owned_task(state: &AppState, kind: TaskKind, key_id: i64, id: &str) -> Result<TaskRow, ApiError> {
    let not_found = || ApiError::NotFound(kind.not_found().into());
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    match repo::get(&state.db, id).await? {
        Some(row) if row.virtual_key_id == key_id && row.kind == kind.name() => Ok(row),
        _ => Err(not_found()),
    }
}

/// The status body of a task.
pub fn status_body(kind: TaskKind, row: &TaskRow) -> Value {
    let mut body = json!({
        kind.id_field(): row.id,
        "status": row.status,
        "progress": row.progress,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    });
    if let Some(result) = row.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) {
        body["result"] = result;
    }
    if let Some(error) = &row.error {
        body["error"] = json!(error);
    }
    if let Some(message) = &row.message {
        body["message"] = json!(message);
    }
    body
}

async fn status(
    key: VirtualKeyAuth,
    kind: web::Data<TaskKind>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let row = owned_task(&state, **kind, key.0.id, &id).await?;
    Ok(HttpResponse::Ok().json(status_body(**kind, &row)))
}

async fn cancel(
    key: VirtualKeyAuth,
    kind: web::Data<TaskKind>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let row = owned_task(&state, kind, key.0.id, &id).await?;
    let finished = || ApiError::InvalidRequest("Task has already completed".into());
    if TERMINAL.contains(&row.status.as_str()) {
        return Err(finished());
    }
    let cancelled = updates::apply(&state, &row.id, TaskUpdate { kind: UpdateKind::Cancelled, message: None })
        .await?
        .ok_or_else(finished)?;
    Ok(HttpResponse::Ok().json(status_body(kind, &cancelled)))
}

/// Admits the master key, or the configured worker token (`X-Worker-Token` or `Authorization: Bearer`).
pub(crate) fn check_worker(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let token = &state.config.generation.worker_token;
    if !token.is_empty() {
        let presented =
            credentials::header(req.headers(), "X-Worker-Token").or_else(|| credentials::bearer(req.headers()));
        if presented.is_some_and(|p| constant_time_eq(token, &p)) {
            return Ok(());
        }
    }
    check_master_key(&state.config.admin.master_key, presented_master_key(req).as_deref())
}

async fn worker_event(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_worker(&state, &req)?;
    let report: WorkerReport = parse_json(&body)?;
    let update = report.into_update().map_err(ApiError::InvalidRequest)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::NotFound("Task not found".into()));
    }
    match updates::apply(&state, &id, update).await? {
        Some(row) => {
            let kind = TaskKind::parse(&row.kind).unwrap_or(TaskKind::Image);
            Ok(HttpResponse::Ok().json(status_body(kind, &row)))
        }
        None => match repo::get(&state.db, &id).await? {
            Some(_) => Err(ApiError::Conflict("Task has already completed".into())),
            None => Err(ApiError::NotFound("Task not found".into())),
        },
    }
}
