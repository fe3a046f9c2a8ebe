//! Ticketed WebSocket chat: a widget authenticates with a user JWT over REST, exchanges it for a
//! short-lived one-time ticket, and opens a plain WebSocket with that ticket (the JWT never appears in
//! a URL). Each socket is an actor; answers come from an orchestrator behind a trait; conversations are
//! stored per tenant and user.

pub mod auth;
pub mod conversations;
pub mod demo_page;
pub mod error;
pub mod orchestrator;
pub mod protocol;
pub mod routes;
pub mod settings;
pub mod socket;
pub mod ticket_actor;
pub mod tickets;
pub mod turn;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::jwt::JwtVerifier;
use crate::config::{Config, ConfigError};
use crate::db::Database;
use orchestrator::Orchestrator;

pub use routes::configure;
use settings::{ChatSettings, TicketStoreKind};
use ticket_actor::ActorTicketStore;
use tickets::{ConsumeMode, RedisTicketStore, TicketStore, Tickets};

/// What the chat handlers and sockets share. Cheap to clone.
#[derive(Clone)]
pub struct ChatState {
    pub settings: Arc<ChatSettings>,
    /// `None` when no JWT key is configured: every token is then refused.
    pub jwt: Option<JwtVerifier>,
    pub tickets: Tickets,
    pub db: Database,
    pub orchestrator: Arc<dyn Orchestrator>,
    /// Set once when the server shuts down: every chat socket then closes with 1001 (going away).
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl ChatState {
    /// Builds the chat services from the (validated) configuration. Starts the TicketActor when
    /// tickets stay in process, so it must run inside an actix system.
    pub fn build(
        config: &Config,
        db: &Database,
        redis: Option<&deadpool_redis::Pool>,
    ) -> Result<ChatState, ConfigError> {
        let settings = config.chat.clone();
        let invalid =
            |source_name: &str, message: String| ConfigError::Invalid { source_name: source_name.to_string(), message };
        let jwt = JwtVerifier::from_settings(&config.jwt).map_err(|e| invalid(e.setting, e.message))?;
        if !settings.require_auth {
            tracing::warn!(
                "!!! chat.require_auth is false (REQUIRE_AUTH=false): DEVELOPMENT MODE. No JWT is \
                 checked and every chat caller acts as dev-tenant/dev-user. Never run this in production. !!!"
            );
        } else if jwt.is_none() {
            tracing::warn!(
                "no JWT key is configured (JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL): the chat refuses every token"
            );
        }
        let store: Arc<dyn TicketStore> = match settings.ticket_store_kind(redis.is_some()) {
            TicketStoreKind::Redis => {
                let pool =
                    redis.ok_or_else(|| invalid("chat.ticket_store", "is redis, but redis.url is not set".into()))?;
                Arc::new(RedisTicketStore::new(
                    pool.clone(),
                    Duration::from_millis(config.redis.timeout_ms),
                    ConsumeMode::Detect,
                ))
            }
            TicketStoreKind::Memory => Arc::new(ActorTicketStore::start()),
        };
        tracing::info!(store = store.kind(), "chat tickets ready");
        let tickets = Tickets::new(
            store,
            Duration::from_secs(settings.ticket_ttl_seconds),
            Duration::from_secs(settings.ticket_max_age_seconds),
        );
        let orchestrator =
            orchestrator::from_settings(&settings).map_err(|message| invalid("chat.orchestrator_url", message))?;
        tracing::info!(orchestrator = orchestrator.name(), "chat orchestrator ready");
        Ok(ChatState {
            orchestrator,
            settings: Arc::new(settings),
            jwt,
            tickets,
            db: db.clone(),
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }
}
