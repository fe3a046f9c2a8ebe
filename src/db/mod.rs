//! Storage: one pool of SQLite or PostgreSQL connections, migrations for both, and the repository
//! functions every other module calls. Queries are written once and compiled for each backend through
//! [`with_conn!`], so both run exactly the same diesel code.

pub mod conversations;
pub mod schema;
pub mod spaces;
pub mod tasks;
pub mod virtual_keys;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

use crate::config::Config;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// SQLite runs its blocking calls on tokio's blocking pool through this wrapper.
pub type SqliteAsync = SyncConnectionWrapper<SqliteConnection>;

/// Per-connection settings that let several pooled SQLite connections share one file safely.
/// `busy_timeout` comes first: connections opened at the same moment must wait for each other's locks,
/// including the one `journal_mode` takes, instead of failing at once with "database is locked".
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                              PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";

/// Storage failures. Callers map them to a generic server error: details go to the log only.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database connection unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database setup failed: {0}")]
    Setup(String),
}

/// Which backend, and where: what a `database.url` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseKind {
    /// Checks a `database.url` value: `Ok(None)` is the embedded default. The error text is shown with the
    /// setting's name.
    pub fn parse(url: &str) -> Result<Option<DatabaseKind>, String> {
        if url.is_empty() {
            Ok(None)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                Err("sqlite:// needs a file path, e.g. sqlite://data/switchyard.sqlite3".into())
            } else {
                Ok(Some(DatabaseKind::Sqlite(PathBuf::from(path))))
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Some(DatabaseKind::Postgres(url.to_string())))
        } else {
            Err("must be empty (embedded SQLite), sqlite://PATH or postgres://...".into())
        }
    }

    /// What the configuration selects, with the default resolved to `<data_dir>/switchyard.sqlite3`.
    pub fn resolve(config: &Config) -> Result<DatabaseKind, DbError> {
        Ok(DatabaseKind::parse(&config.database.url)
            .map_err(DbError::Setup)?
            .unwrap_or_else(|| DatabaseKind::Sqlite(config.sqlite_default_path())))
    }

    /// A short name for logs and health output.
    pub fn name(&self) -> &'static str {
        match self {
            DatabaseKind::Postgres(_) => "postgres",
            DatabaseKind::Sqlite(_) => "sqlite",
        }
    }
}

/// The connection pool; cheap to clone.
#[derive(Clone)]
pub enum Database {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite(Pool<SqliteAsync>),
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend is configured. The body is
/// compiled once per backend, which is how both run the same queries.
#[macro_export]
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Database::Postgres(pool) => {
                let mut pooled = pool.get().await.map_err(|e| $crate::db::DbError::Unavailable(e.to_string()))?;
                let $conn: &mut diesel_async::AsyncPgConnection = &mut pooled;
                $body
            }
            $crate::db::Database::Sqlite(pool) => {
                let mut pooled = pool.get().await.map_err(|e| $crate::db::DbError::Unavailable(e.to_string()))?;
                let $conn: &mut $crate::db::SqliteAsync = &mut pooled;
                $body
            }
        }
    };
}

impl Database {
    /// Opens the pool (lazily: connections are made on first use) for the configured backend.
    pub fn connect(config: &Config) -> Result<Database, DbError> {
        let size = config.database.pool_size;
        let wait = Some(Duration::from_millis(config.database.acquire_timeout_ms));
        match DatabaseKind::resolve(config)? {
            DatabaseKind::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
                let pool = Pool::builder(manager)
                    .max_size(size)
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool_runtime())
                    .build()
                    .map_err(|e| DbError::Setup(e.to_string()))?;
                Ok(Database::Postgres(pool))
            }
            DatabaseKind::Sqlite(path) => {
                ensure_parent_dir(&path)?;
                let mut manager_config = ManagerConfig::<SqliteAsync>::default();
                manager_config.custom_setup = Box::new(|url| {
                    let url = url.to_string();
                    async move {
                        let mut conn = SqliteAsync::establish(&url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let url = path.to_string_lossy().into_owned();
                let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
                let pool = Pool::builder(manager)
                    .max_size(size)
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool_runtime())
                    .build()
                    .map_err(|e| DbError::Setup(e.to_string()))?;
                Ok(Database::Sqlite(pool))
            }
        }
    }

    /// The backend's name, for health output.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }

    /// One round trip to the database; readiness uses it.
    pub async fn ping(&self) -> Result<(), DbError> {
        with_conn!(self, |conn| {
            diesel::sql_query("SELECT 1").execute(conn).await?;
            Ok(())
        })
    }
}

fn deadpool_runtime() -> deadpool_redis::Runtime {
    deadpool_redis::Runtime::Tokio1
}

fn ensure_parent_dir(path: &Path) -> Result<(), DbError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| DbError::Setup(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// Applies pending migrations and returns how many ran. The work runs on a thread of its own, because
/// diesel-async's migration wrapper must not run inside the server's runtime, and the caller's runtime
/// stays free while it waits.
pub async fn migrate(config: &Config) -> Result<usize, DbError> {
    let kind = DatabaseKind::resolve(config)?;
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(migrate_blocking(kind));
    });
    result.await.map_err(|_| DbError::Migration("migration thread panicked".into()))?
}

fn migrate_blocking(kind: DatabaseKind) -> Result<usize, DbError> {
    {
        match kind {
            DatabaseKind::Sqlite(path) => {
                ensure_parent_dir(&path)?;
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                conn.batch_execute(SQLITE_PRAGMAS)?;
                run_pending(&mut conn, SQLITE_MIGRATIONS)
            }
            DatabaseKind::Postgres(url) => {
                let mut conn = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(&url)
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                run_pending(&mut conn, POSTGRES_MIGRATIONS)
            }
        }
    }
}

fn run_pending<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<usize, DbError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations).map(|done| done.len()).map_err(|e| DbError::Migration(e.to_string()))
}

/// Current time in Unix milliseconds: the storage format of every timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Renders a stored timestamp as RFC 3339 for the API.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
