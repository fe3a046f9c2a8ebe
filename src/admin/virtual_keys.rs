//! `/api/virtualkeys`: create, list, read, update and delete virtual keys.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AdminAuth;
use crate::db::virtual_keys as repo;
use crate::error::{parse_json, ApiError};
use crate::state::AppState;
use crate::virtual_keys::{self, CreateKeyRequest, KeyInfo, UpdateKeyRequest};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/virtualkeys").route(web::post().to(create)).route(web::get().to(list))).service(
        web::resource("/api/virtualkeys/{id}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::InvalidRequest(format!("'{raw}' is not a virtual key id")))
}

fn not_found() -> ApiError {
    ApiError::NotFound("Virtual key not found".into())
}

async fn create(_: AdminAuth, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let req: CreateKeyRequest = parse_json(&body)?;
    let created = virtual_keys::create(&state.db, req, &virtual_keys::writer(&state)).await?;
    tracing::info!(key_id = created.key_info.id, "virtual key created");
    virtual_keys::notify_created(&state, &created.key_info);
    Ok(HttpResponse::Created().json(created))
}

/// Paging parameters; `pageSize` is capped so that one request cannot load the whole table.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageQuery {
    page: Option<i64>,
    page_size: Option<i64>,
}

/// A page of results in the shape Conduit's admin clients read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    items: Vec<T>,
    page: i64,
    page_size: i64,
    total_count: i64,
    total_pages: i64,
}

const MAX_PAGE_SIZE: i64 = 500;

async fn list(
    _: AdminAuth,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(50);
    if page < 1 {
        return Err(ApiError::InvalidRequest("page must be at least 1".into()));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::InvalidRequest(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let (rows, total_count) = repo::list(&state.db, (page - 1).saturating_mul(page_size), page_size).await?;
    Ok(HttpResponse::Ok().json(Page {
        items: rows.iter().map(KeyInfo::from).collect(),
        page,
        page_size,
        total_count,
        total_pages: (total_count + page_size - 1) / page_size,
    }))
}

async fn get(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let row = repo::get(&state.db, parse_id(&id)?).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(KeyInfo::from(&row)))
}

async fn update(
    _: AdminAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let req: UpdateKeyRequest = parse_json(&body)?;
    // The request names what changed; it holds no secret (keys cannot be changed, only settings).
    let details = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let row = virtual_keys::update(&state.db, id, req, &details, &virtual_keys::writer(&state))
        .await?
        .ok_or_else(not_found)?;
    virtual_keys::enforce(&state, &row);
    virtual_keys::notify_updated(&state, &row, details);
    tracing::info!(key_id = id, enabled = row.is_enabled, "virtual key updated");
    Ok(HttpResponse::Ok().json(KeyInfo::from(&row)))
}

async fn delete(_: AdminAuth, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    if !repo::delete(&state.db, id, &virtual_keys::writer(&state)).await? {
        return Err(not_found());
    }
    virtual_keys::close_connections(&state, id, "Virtual key was deleted");
    virtual_keys::notify_deleted(&state, id);
    tracing::info!(key_id = id, "virtual key deleted");
    Ok(HttpResponse::NoContent().finish())
}
