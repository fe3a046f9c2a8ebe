//! Where answers come from. An [`Orchestrator`] runs one turn: it streams [`AgentEvent`]s into an
//! [`EventSink`], may ask the user to confirm a risky operation (the answers arrive on
//! [`Turn::confirmations`]), and is told when the user cancels. The socket and the storage around a
//! turn do not depend on which one is configured.

pub mod demo;
pub mod http;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

use super::protocol::AgentEvent;
use super::settings::{ChatSettings, OrchestratorKind};
use crate::auth::jwt::ChatIdentity;

/// A user's answer to a `confirmation_required` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    pub operation_id: String,
    pub confirmed: bool,
}

/// An earlier message of the conversation, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub role: String,
    pub content: String,
}

/// One question to answer.
pub struct Turn {
    /// Unique per turn; names the turn to an upstream agent (cancel, confirm).
    pub run_id: String,
    pub identity: ChatIdentity,
    pub conversation_id: String,
    pub message: String,
    pub history: Vec<HistoryEntry>,
    /// The user's confirmations, forwarded by the socket only for an operation that asked for one.
    pub confirmations: mpsc::UnboundedReceiver<Confirmation>,
    /// How long to wait for a confirmation before treating it as declined.
    pub confirmation_timeout: Duration,
}

/// Carries a turn's events to its socket, keeping the answer's text for storage.
pub struct EventSink {
    deliver: Box<dyn FnMut(AgentEvent, bool) + Send>,
    text: String,
}

impl EventSink {
    /// A sink calling `deliver(event, is_last)` for each event.
    pub fn new(deliver: Box<dyn FnMut(AgentEvent, bool) + Send>) -> EventSink {
        EventSink { deliver, text: String::new() }
    }

    /// Streams one event of the answer.
    pub fn emit(&mut self, event: AgentEvent) {
        if let AgentEvent::TextDelta(text) = &event {
            self.text.push_str(text);
        }
        (self.deliver)(event, false);
    }

    /// Sends the turn's final event (`done` or `error`).
    pub fn finish(mut self, event: AgentEvent) {
        (self.deliver)(event, true);
    }

    /// The answer's text so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Why an orchestrator could not finish a turn. Details go to the log; the user sees a generic text.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("upstream agent unreachable or failed: {0}")]
    Upstream(String),
    #[error("upstream agent answered with status {0}")]
    Status(u16),
    #[error("upstream agent stream is malformed: {0}")]
    Protocol(String),
    #[error("upstream agent reported an error: {0}")]
    Reported(String),
}

/// Produces answers. Implementations must be cancel-safe: the socket drops a turn's future when the
/// user cancels, then calls [`Orchestrator::cancel`].
pub trait Orchestrator: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Answers one turn, streaming into `sink`. The caller sends the final `done` or `error`.
    fn run<'a>(&'a self, turn: &'a mut Turn, sink: &'a mut EventSink) -> BoxFuture<'a, Result<(), OrchestratorError>>;

    /// Tells whoever runs the turn that the user cancelled it (best effort).
    fn cancel(&self, run_id: String) -> BoxFuture<'static, ()> {
        let _ = run_id;
        Box::pin(async {})
    }
}

/// The orchestrator the settings select; the error is for `chat.orchestrator_url`.
pub fn from_settings(settings: &ChatSettings) -> Result<Arc<dyn Orchestrator>, String> {
    Ok(match settings.orchestrator_kind() {
        OrchestratorKind::Demo => Arc::new(demo::DemoOrchestrator::new(Duration::from_millis(settings.demo_delay_ms))),
        OrchestratorKind::Http => {
            Arc::new(http::HttpOrchestrator::new(&settings.orchestrator_url, Duration::from_secs(10))?)
        }
    })
}
