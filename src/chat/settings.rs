//! `[chat]` settings: tickets, the socket's limits, the orchestrator and the demo page.

use serde::Deserialize;

/// The `[chat]` section of the configuration (see config/default.toml for each setting's meaning).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// `false` is a development mode: every caller is dev-tenant / dev-user / dev-session.
    pub require_auth: bool,
    /// "auto" (Redis when configured, else the in-process TicketActor), "redis" or "memory".
    pub ticket_store: String,
    pub ticket_ttl_seconds: u64,
    pub ticket_max_age_seconds: u64,
    pub max_frame_bytes: usize,
    pub max_message_chars: usize,
    pub idle_timeout_seconds: u64,
    pub confirmation_timeout_seconds: u64,
    /// "demo" or "http".
    pub orchestrator: String,
    pub orchestrator_url: String,
    pub orchestrator_timeout_seconds: u64,
    pub demo_delay_ms: u64,
    pub web_dir: String,
}

/// Where tickets live, as resolved from `chat.ticket_store` and `redis.url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStoreKind {
    Redis,
    Memory,
}

/// Which orchestrator answers chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrchestratorKind {
    Demo,
    Http,
}

impl ChatSettings {
    /// The ticket store this configuration selects.
    pub fn ticket_store_kind(&self, redis_configured: bool) -> TicketStoreKind {
        match self.ticket_store.as_str() {
            "redis" => TicketStoreKind::Redis,
            "memory" => TicketStoreKind::Memory,
            _ if redis_configured => TicketStoreKind::Redis,
            _ => TicketStoreKind::Memory,
        }
    }

    /// The orchestrator this configuration selects (validated by [`ChatSettings::check`]).
    pub fn orchestrator_kind(&self) -> OrchestratorKind {
        if self.orchestrator == "http" {
            OrchestratorKind::Http
        } else {
            OrchestratorKind::Demo
        }
    }

    /// Checks the section; the error is (setting, message). The production profile refuses the
    /// development mode, so that a forgotten REQUIRE_AUTH=false can never reach real users.
    pub fn check(&self, profile: Option<&str>, redis_configured: bool) -> Result<(), (&'static str, String)> {
        if !self.require_auth && profile == Some("production") {
            return Err((
                "chat.require_auth",
                "must be true in the production profile (false is a development mode that lets \
                 anyone act as dev-user)"
                    .into(),
            ));
        }
        if !["auto", "redis", "memory"].contains(&self.ticket_store.as_str()) {
            return Err(("chat.ticket_store", format!("'{}' must be auto, redis or memory", self.ticket_store)));
        }
        if self.ticket_store == "redis" && !redis_configured {
            return Err(("chat.ticket_store", "is redis, but redis.url is not set".into()));
        }
        if self.ticket_ttl_seconds == 0 {
            return Err(("chat.ticket_ttl_seconds", "must be at least 1".into()));
        }
        if self.ticket_max_age_seconds < self.ticket_ttl_seconds {
            return Err(("chat.ticket_max_age_seconds", "must be at least chat.ticket_ttl_seconds".into()));
        }
        if self.max_frame_bytes < 1024 {
            return Err(("chat.max_frame_bytes", "must be at least 1024".into()));
        }
        if self.max_message_chars == 0 {
            return Err(("chat.max_message_chars", "must be at least 1".into()));
        }
        if self.idle_timeout_seconds == 0 {
            return Err(("chat.idle_timeout_seconds", "must be at least 1".into()));
        }
        match self.orchestrator.as_str() {
            "demo" => {}
            "http" => {
                let url = &self.orchestrator_url;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err((
                        "chat.orchestrator_url",
                        "must be an http:// or https:// URL when chat.orchestrator is http".into(),
                    ));
                }
            }
            other => return Err(("chat.orchestrator", format!("'{other}' must be demo or http"))),
        }
        if self.orchestrator_timeout_seconds == 0 {
            return Err(("chat.orchestrator_timeout_seconds", "must be at least 1".into()));
        }
        Ok(())
    }
}
