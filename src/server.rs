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
use crate::signalr::hub_actor::CloseConnections;
use crate::signalr::{Anonymous, HubEndpoint, Target, TransportKind};
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
    /// The open metrics listener (`ops.metrics_bind`), stopped with the main server.
    metrics: Option<(SocketAddr, Server)>,
    shutdown: Shutdown,
}

/// A graceful shutdown: stop accepting, refuse new hub connections, tell every SignalR client to
/// reconnect (a Close with `allowReconnect: true`, which also ends SSE streams and long polls), close
/// chat sockets with 1001, then let running requests finish within `shutdown.timeout`. SIGTERM and SIGINT run it; tests may call it.
#[derive(Clone)]
pub struct Shutdown {
    hubs: Vec<HubEndpoint>,
    spaces: crate::spaces::Spaces,
    handle: ServerHandle,
    /// Tells the chat sockets to close with 1001.
    chat_closing: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The reason in the Close message clients receive when the server shuts down.
pub const SHUTDOWN_REASON: &str = "Server is shutting down";

impl Shutdown {
    /// Runs the shutdown; resolves when the server has stopped.
    pub async fn run(&self) {
        tracing::info!("shutting down: no new connections; asking clients to reconnect");
        self.handle.pause().await;
        for hub in &self.hubs {
            hub.drain();
        }
        let mut closed = 0;
        for hub in &self.hubs {
            closed += hub
                .addr
                .send(CloseConnections {
                    to: Target::All,
                    error: Some(SHUTDOWN_REASON.to_string()),
                    allow_reconnect: true,
                })
                .await
                .unwrap_or(0);
        }
        // Spaces SSE streams are cut (not ended cleanly): the SDK reconnects only after an error.
        self.spaces.close_streams();
        // Chat sockets close with 1001 rather than holding the shutdown until its timeout.
        self.chat_closing.send_replace(true);
        tracing::info!(connections = closed, "clients told to reconnect; finishing running requests");
        self.handle.stop(true).await;
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                tracing::error!("cannot listen for termination signals; stop the process with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

impl RunningServer {
    /// Serves until the server is stopped (by its handle, or SIGINT/SIGTERM).
    pub async fn wait(self) -> std::io::Result<()> {
        let shutdown = self.shutdown.clone();
        let signals = actix_web::rt::spawn(async move {
            termination_signal().await;
            shutdown.run().await;
        });
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        signals.abort();
        if let Some(handle) = metrics {
            handle.stop(true).await;
        }
        result
    }

    /// A handle to shut the server down gracefully, as SIGTERM does.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The open metrics listener's real address, when `ops.metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
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
    let node_id = uuid::Uuid::new_v4().to_string();
    let backplane_stream = redis.clone().map(|pool| (pool, config.redis.key(&config.redis.backplane_stream)));
    let backplane = actix::Actor::start(crate::backplane::Backplane::new(node_id.clone(), backplane_stream));
    let admin_events = actix::Actor::start(crate::admin::notifier::AdminNotifier::new(backplane.clone()));
    let mut groups = crate::groups::ConnectionGroups::new(
        g.connect_burst,
        std::time::Duration::from_secs(g.connect_window_seconds),
        std::time::Duration::from_secs(g.connect_cooldown_seconds),
    )
    .notify_limits(admin_events.clone().recipient());
    if let Some(pool) = &redis {
        groups = groups.share_counts(Arc::new(crate::shared_counts::SharedCounts::new(
            pool.clone(),
            config.redis.key_prefix.clone(),
            crate::shared_counts::LEASE,
            std::time::Duration::from_millis(config.redis.timeout_ms),
        )));
    }
    let groups = actix::Actor::start(groups);
    let provider_names = g
        .simulated_provider
        .then(|| crate::ops::provider_health::SIMULATED.to_string())
        .into_iter()
        .chain(g.providers.iter().filter(|p| !p.trim().is_empty()).map(|p| p.trim().to_string()));
    let provider_health = actix::Actor::start(crate::ops::provider_health::ProviderHealth::new(
        provider_names,
        admin_events.clone(),
        backplane.clone(),
    ));
    backplane.do_send(crate::backplane::Attach::ProviderHealth(provider_health.clone()));
    backplane.do_send(crate::backplane::Attach::Groups(groups.clone()));
    let limits = actix::Actor::start(crate::generation::limits::LocalCounters::default());
    let chat = crate::chat::ChatState::build(&config, &db, redis.as_ref())?;
    let spaces = crate::spaces::Spaces::new(&config);
    backplane.do_send(crate::backplane::Attach::Spaces(spaces.fanout.clone()));
    Ok(AppState {
        chat,
        config: Arc::new(config),
        db,
        redis,
        started_at: Instant::now(),
        node_id,
        backplane,
        groups,
        hubs: Vec::new(),
        progress: None,
        limits,
        admin_events,
        provider_health,
        spaces,
    })
}

/// Registers every route of the application.
pub fn routes(cfg: &mut web::ServiceConfig, state: &AppState, conformance: Option<&ConformanceJwt>) {
    ops::health::configure(cfg);
    ops::prometheus::configure(cfg);
    ops::pages::configure(cfg);
    crate::admin::configure(cfg);
    crate::generation::configure(cfg);
    crate::chat::configure(cfg);
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
    let admin_hub: Arc<dyn crate::signalr::Hub> = Arc::new(crate::hubs::admin_notifications::AdminNotificationsHub {
        db: state.db.clone(),
        health: state.provider_health.clone(),
    });
    let master_key =
        Arc::new(crate::auth::master_key::MasterKeyHubAuth { master_key: config.admin.master_key.as_str().into() });
    let admin = HubEndpoint::new(
        crate::hubs::admin_notifications::PATH,
        admin_hub,
        options.clone(),
        master_key,
        state.groups.clone(),
    );
    state.admin_events.do_send(crate::admin::notifier::AttachHub(admin.addr.clone()));
    hubs.push(admin);
    let navigation = HubEndpoint::new(
        crate::hubs::navigation_state::PATH,
        Arc::new(crate::hubs::navigation_state::NavigationStateHub::default()),
        options.clone(),
        // Checked in `start`; an unparsable list here allows nobody.
        Arc::new(crate::hubs::navigation_state::NetworkAllowList {
            networks: config.navigation_networks().unwrap_or_default(),
        }),
        state.groups.clone(),
    );
    state.provider_health.do_send(crate::ops::provider_health::AttachNavigation(navigation.addr.clone()));
    hubs.push(navigation);
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
    for hub in &hubs {
        state.backplane.do_send(crate::backplane::Attach::Hub(hub.path.to_string(), hub.addr.clone()));
    }
    hubs
}

/// Starts listening. The returned server must be awaited (or spawned) to serve.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let addr = config.bind_addr()?;
    let metrics_addr = config.metrics_addr()?;
    config.navigation_networks()?;
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
    actix::Actor::start(crate::admin::key_changes::KeyChangeWatcher::new(state.clone()));
    if state.config.generation.simulated_provider {
        actix_web::rt::spawn(crate::generation::simulated::resume_abandoned(state.clone()));
    }
    if state.redis.is_some() {
        let stream = state.config.redis.key(&state.config.generation.events_stream);
        actix_web::rt::spawn(crate::generation::intake::run(state.clone(), stream));
    }
    let state_for_metrics = state.clone();
    let shutdown_hubs = state.hubs.clone();
    let shutdown_spaces = state.spaces.clone();
    let chat_closing = state.chat.closing.clone();
    let shutdown_timeout = state.config.shutdown.timeout;
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
    // Signals are handled by `Shutdown`, which first tells SignalR clients to reconnect.
    .disable_signals()
    // A client that closes its side has gone (as Kestrel sees it): without this, a Server-Sent Events
    // response whose client sent FIN stays open until the next write fails, keeping the connection alive.
    .h1_allow_half_closed(false)
    .shutdown_timeout(shutdown_timeout)
    .bind(addr)
    .map_err(|error| StartError::Bind { addr, error })?;
    let addr = server.addrs().first().copied().unwrap_or(addr);
    let metrics = match metrics_addr {
        Some(metrics_addr) => {
            let data = state_for_metrics;
            let listener =
                HttpServer::new(move || App::new().app_data(data.clone()).configure(ops::prometheus::configure_open))
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .bind(metrics_addr)
                    .map_err(|error| StartError::Bind { addr: metrics_addr, error })?;
            let bound = listener.addrs().first().copied().unwrap_or(metrics_addr);
            tracing::info!(addr = %bound, "metrics listening without a key (ops.metrics_bind)");
            Some((bound, listener.run()))
        }
        None => None,
    };
    let server = server.run();
    tracing::info!(%addr, workers, "switchyard listening");
    let handle = server.handle();
    let shutdown = Shutdown { hubs: shutdown_hubs, spaces: shutdown_spaces, handle: handle.clone(), chat_closing };
    Ok(RunningServer { addr, handle, server, metrics, shutdown })
}
