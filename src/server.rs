//! Starting the server: migrations, pools, routes, and the HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::db::{self, Database, DatabaseKind};
use crate::ops;
use crate::state::AppState;

/// Why the server could not start. Nothing is left running when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("redis.url: {0}")]
    Redis(String),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A started server: its real address (useful with port 0) and a handle to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    server: Server,
}

impl RunningServer {
    /// Serves until the server is stopped (by its handle, or SIGINT/SIGTERM).
    pub async fn wait(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Builds the shared state: migrations first (so no request ever meets an old schema), then pools.
pub async fn prepare(config: Config) -> Result<AppState, StartError> {
    let kind = DatabaseKind::resolve(&config)?;
    let applied = db::migrate(&config).await?;
    tracing::info!(backend = kind.name(), applied, "database ready");
    let db = Database::connect(&config)?;
    let redis = crate::redis_pool::connect(&config.redis).map_err(StartError::Redis)?;
    if config.admin.master_key.is_empty() {
        tracing::warn!("{}", crate::auth::master_key::NO_MASTER_KEY);
    }
    let chat = crate::chat::ChatState::build(&config, &db, redis.as_ref())?;
    Ok(AppState {
        chat,
        config: Arc::new(config),
        db,
        redis,
        started_at: Instant::now(),
    })
}

/// Registers every route of the application.
pub fn routes(cfg: &mut web::ServiceConfig) {
    ops::health::configure(cfg);
    crate::admin::configure(cfg);
    crate::chat::configure(cfg);
}

/// Starts listening. The returned server must be awaited (or spawned) to serve.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let addr = config.bind_addr()?;
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let state = web::Data::new(prepare(config).await?);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(
                web::PathConfig::default().error_handler(|e, _| {
                    crate::error::ApiError::InvalidRequest(e.to_string()).into()
                }),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                crate::error::ApiError::InvalidRequest(format!("Invalid query string: {e}")).into()
            }))
            .wrap(from_fn(ops::request_log::log_request))
            .configure(routes)
    })
    .workers(workers)
    .shutdown_timeout(30)
    .bind(addr)
    .map_err(|error| StartError::Bind { addr, error })?;
    let addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    tracing::info!(%addr, workers, "switchyard listening");
    Ok(RunningServer {
        addr,
        handle: server.handle(),
        server,
    })
}
