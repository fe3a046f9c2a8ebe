//! Starting the server: migrations, pools, routes, and the HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::config::Config;
use crate::db::{self, Database, DatabaseKind};
use crate::generation::progress::{RegisterHub, TaskProgress};
use crate::generation::TaskKind;
use crate::hubs::conformance::ConformanceJwt;
use crate::ops;
use crate::signalr::{Anonymous, HubEndpoint, TransportKind};
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
    Bind { addr: SocketAddr, error: std::io::Error },
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
    let g = &config.generation;
    let groups = actix::Actor::start(crate::groups::ConnectionGroups::new(
        g.connect_burst,
        std::time::Duration::from_secs(g.connect_window_seconds),
        std::time::Duration::from_secs(g.connect_cooldown_seconds),
    ));
    let limits = actix::Actor::start(crate::generation::limits::LocalCounters::default());
    let spaces = crate::spaces::Spaces::new(&config);
    Ok(AppState {
        config: Arc::new(config),
        db,
        redis,
        started_at: Instant::now(),
        groups,
        hubs: Vec::new(),
        progress: None,
        limits,
        spaces,
    })
}

/// Registers every route of the application.
pub fn routes(cfg: &mut web::ServiceConfig, state: &AppState, conformance: Option<&ConformanceJwt>) {
    ops::health::configure(cfg);
    crate::admin::configure(cfg);
    crate::generation::configure(cfg);
    crate::spaces::routes::configure(cfg);
    for hub in &state.hubs {
        hub.configure(cfg);
    }
    if let (Some(jwt), Some(test_hub)) = (conformance, state.hubs.iter().find(|h| h.path == "/testhub")) {
        crate::hubs::conformance::configure(cfg, jwt, test_hub);
    }
}

/// The hubs this configuration serves. Their actors start on the current arbiter.
pub fn hubs(state: &AppState, conformance: Option<&ConformanceJwt>) -> Vec<HubEndpoint> {
    let config = &state.config;
    let mut hubs = Vec::new();
    let key_auth = Arc::new(crate::auth::virtual_key::VirtualKeyHubAuth {
        db: state.db.clone(),
        default_max_connections: config.generation.default_max_connections,
    });
    let options = config.signalr.hub_options();
    let image: Arc<dyn crate::signalr::Hub> = Arc::new(crate::hubs::image_generation::hub(state.db.clone()));
    let video: Arc<dyn crate::signalr::Hub> = Arc::new(crate::hubs::video_generation::hub(state.db.clone()));
    for (kind, hub) in [(TaskKind::Image, image), (TaskKind::Video, video)] {
        hubs.push(HubEndpoint::new(kind.hub_path(), hub, options.clone(), key_auth.clone(), state.groups.clone()));
    }
    if let Some(jwt) = conformance {
        tracing::warn!("signalr.conformance is on: test hubs are exposed with detailed errors");
        let mut options = config.signalr.hub_options();
        options.detailed_errors = true;
        let test_hub: Arc<dyn crate::signalr::Hub> = Arc::new(crate::hubs::test_hub::TestHub);
        let groups = state.groups.clone();
        hubs.push(HubEndpoint::new("/testhub", test_hub.clone(), options.clone(), Arc::new(Anonymous), groups.clone()));
        hubs.push(HubEndpoint::new(
            "/authorizedhub",
            test_hub.clone(),
            options.clone(),
            Arc::new(jwt.clone()),
            groups.clone(),
        ));
        let mut no_ws = options;
        no_ws.transports.retain(|t| *t != TransportKind::WebSockets);
        hubs.push(HubEndpoint::new("/testhub-nowebsockets", test_hub, no_ws, Arc::new(Anonymous), groups));
    }
    hubs
}

/// Starts listening. The returned server must be awaited (or spawned) to serve.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let addr = config.bind_addr()?;
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let mut state = prepare(config).await?;
    let conformance = if state.config.signalr.conformance { ConformanceJwt::new() } else { None };
    state.hubs = hubs(&state, conformance.as_ref());
    let redis_updates =
        state.redis.clone().map(|pool| (pool, state.config.redis.key(&state.config.generation.updates_stream)));
    let progress = actix::Actor::start(TaskProgress::new(redis_updates));
    for hub in &state.hubs {
        for kind in [TaskKind::Image, TaskKind::Video] {
            if hub.path == kind.hub_path() {
                progress.do_send(RegisterHub(kind, hub.addr.clone()));
            }
        }
    }
    state.progress = Some(progress);
    let state = web::Data::new(state);
    actix_web::rt::spawn(crate::virtual_keys::watch_expiry(state.clone()));
    if state.redis.is_some() {
        let stream = state.config.redis.key(&state.config.generation.events_stream);
        actix_web::rt::spawn(crate::generation::intake::run(state.clone(), stream));
    }
    let server = HttpServer::new(move || {
        let app_state = state.clone();
        let conformance = conformance.clone();
        let cookies = conformance.is_some();
        App::new()
            .app_data(state.clone())
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| crate::error::ApiError::InvalidRequest(e.to_string()).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                crate::error::ApiError::InvalidRequest(format!("Invalid query string: {e}")).into()
            }))
            .wrap(actix_web::middleware::Condition::new(cookies, from_fn(crate::hubs::conformance::negotiate_cookies)))
            .wrap(from_fn(ops::cors::cors))
            .wrap(from_fn(ops::request_log::log_request))
            .configure(move |cfg| routes(cfg, &app_state, conformance.as_ref()))
    })
    .workers(workers)
    .shutdown_timeout(30)
    .bind(addr)
    .map_err(|error| StartError::Bind { addr, error })?;
    let addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    tracing::info!(%addr, workers, "switchyard listening");
    Ok(RunningServer { addr, handle: server.handle(), server })
}
