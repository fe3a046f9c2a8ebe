//! Test harness: a real Switchyard server per test, on the backend the run selects, with real
//! PostgreSQL and Redis.
//!
//! `SWITCHYARD_TEST_BACKEND` = `sqlite` (default) or `postgres`; `SWITCHYARD_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) is the database used to create one fresh database per test;
//! `SWITCHYARD_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).
#![allow(dead_code)]

pub mod proxy;
pub mod ws;

use std::collections::HashMap;
use std::path::PathBuf;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use switchyard::config::{Config, ConfigSources};
use switchyard::server::RunningServer;

pub const MASTER_KEY: &str = "test-master-key-0123456789";

/// Which storage backend this run tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("SWITCHYARD_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

pub fn pg_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Host and port of a URL like `scheme://user@host:port/db`.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// A fresh PostgreSQL database for one test; its URL.
pub async fn fresh_pg_database() -> String {
    let admin = pg_admin_url();
    let name = format!("sy_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = AsyncPgConnection::establish(&admin).await.expect("PostgreSQL reachable for tests");
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

/// Options of a test server.
pub struct Options {
    pub master_key: Option<String>,
    pub redis: bool,
    /// Replaces the database URL (e.g. to go through a proxy); `{db}` in it is the fresh database name.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            master_key: Some(MASTER_KEY.into()),
            redis: false,
            database_url: None,
            redis_url: None,
            env: Vec::new(),
        }
    }
}

/// A running server and what a test needs to reach it.
pub struct TestServer {
    pub base: String,
    pub config: Config,
    pub running: Option<actix_web::dev::ServerHandle>,
    /// Runs a graceful shutdown, as SIGTERM does.
    pub shutdown: switchyard::server::Shutdown,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestServer {
        let dir = TempDir::new();
        let config = test_config(&options, &dir).await;
        let running: RunningServer = switchyard::server::start(config.clone()).await.expect("server starts");
        let base = format!("http://{}", running.addr);
        let handle = running.handle.clone();
        let shutdown = running.shutdown();
        actix_web::rt::spawn(running.wait());
        TestServer { base, config, running: Some(handle), shutdown, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> awc::Client {
        awc::Client::builder().timeout(std::time::Duration::from_secs(30)).finish()
    }
}

/// The configuration a test server runs with: defaults, plus a fresh database, loopback port 0, one worker.
pub async fn test_config(options: &Options, dir: &TempDir) -> Config {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("SWITCHYARD__SERVER__BIND".into(), "127.0.0.1:0".into());
    env.insert("SWITCHYARD__SERVER__WORKERS".into(), "1".into());
    env.insert("SWITCHYARD__SERVER__DATA_DIR".into(), dir.path.to_string_lossy().into_owned());
    env.insert("SWITCHYARD__DATABASE__POOL_SIZE".into(), "4".into());
    if let Some(key) = &options.master_key {
        env.insert("CONDUIT_MASTER_KEY".into(), key.clone());
    }
    let db_url = match backend() {
        Backend::Sqlite => format!("sqlite://{}/switchyard.sqlite3", dir.path.display()),
        Backend::Postgres => fresh_pg_database().await,
    };
    let db_url = match &options.database_url {
        Some(template) => {
            let name = db_url.rsplit('/').next().unwrap_or_default().to_string();
            template.replace("{db}", &name)
        }
        None => db_url,
    };
    env.insert("DATABASE_URL".into(), db_url);
    if options.redis {
        env.insert("REDIS_URL".into(), options.redis_url.clone().unwrap_or_else(redis_url));
        // Each test server gets its own namespace in the shared Redis, unless a test shares one on purpose.
        env.insert("SWITCHYARD__REDIS__KEY_PREFIX".into(), format!("sy-test-{}", uuid::Uuid::new_v4().simple()));
    }
    env.insert("SWITCHYARD__REDIS__TIMEOUT_MS".into(), "1000".into());
    for (k, v) in &options.env {
        env.insert(k.clone(), v.clone());
    }
    let sources = ConfigSources {
        profile: None,
        config_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        env,
        overrides: Vec::new(),
    };
    Config::load(&sources).expect("test configuration loads")
}

/// A temporary folder removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("switchyard-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Reads a response body as JSON.
pub async fn json_body<S>(res: &mut awc::ClientResponse<S>) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let bytes = res.body().limit(10 * 1024 * 1024).await.expect("response body");
    serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("JSON body, got {:?}", String::from_utf8_lossy(&bytes)))
}

/// Negotiates on the image generation hub with a virtual key; answers the negotiate body, which holds
/// either a `connectionId` or the `error` that refused it.
pub async fn negotiate_image_hub(srv: &TestServer, key: &str) -> serde_json::Value {
    let mut res = srv
        .client()
        .post(srv.url("/hubs/image-generation/negotiate?negotiateVersion=1"))
        .bearer_auth(key)
        .send()
        .await
        .expect("negotiate answers");
    assert_eq!(res.status(), awc::http::StatusCode::OK);
    json_body(&mut res).await
}
