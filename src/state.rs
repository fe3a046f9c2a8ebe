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
    /// This process's id among the nodes serving the same hubs (random per start). Key changes it
    /// writes carry it, so that its own key change watcher skips them.
    pub node_id: String,
    /// Every cluster-wide fan-out goes through it (local only without Redis).
    pub backplane: actix::Addr<crate::backplane::Backplane>,
    /// Per-principal connection groups, shared by every hub.
    pub groups: actix::Addr<crate::groups::ConnectionGroups>,
    /// The SignalR hubs this server serves.
    pub hubs: Vec<crate::signalr::HubEndpoint>,
    /// Delivers task updates to the generation hubs.
    pub progress: Option<actix::Addr<crate::generation::progress::TaskProgress>>,
    /// In-process rate-limit counters (used when Redis is not configured).
    pub limits: actix::Addr<crate::generation::limits::LocalCounters>,
    /// Turns key, spend, cap and provider changes into admin hub events.
    pub admin_events: actix::Addr<crate::admin::notifier::AdminNotifier>,
    /// Provider health, from task outcomes and workers' reports.
    pub provider_health: actix::Addr<crate::ops::provider_health::ProviderHealth>,
    /// Tickets, JWT verification and the orchestrator of the ticketed chat.
    pub chat: crate::chat::ChatState,
    /// The spaces gateway: its keys, user-JWT verifier and fan-out.
    pub spaces: crate::spaces::Spaces,
}
