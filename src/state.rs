//! What every handler shares: configuration and the pools. Cheap to clone (everything inside is shared).

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::db::Database;

/// Shared application state, registered once as `web::Data<AppState>`.
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    /// `None` when Redis is not configured (one node, everything in process).
    pub redis: Option<deadpool_redis::Pool>,
    pub started_at: Instant,
    /// Tickets, JWT verification and the orchestrator of the ticketed chat.
    pub chat: crate::chat::ChatState,
}
