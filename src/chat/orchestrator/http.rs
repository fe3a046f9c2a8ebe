//! The HTTP orchestrator: relays a configured upstream agent. One turn is `POST {url}` with the
//! question and the history; the agent answers with NDJSON, one event per line in the wire shape
//! (`{"type":"text_delta","content":"…"}`), and may end with `{"type":"done"}`. The user's answers
//! go to `POST {url}/confirm` (`{run_id, operation_id, confirmed}`), a cancel to `POST {url}/cancel`
//! (`{run_id}`), and the response stream is dropped.

use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{json, Value};

use super::{Confirmation, EventSink, Orchestrator, OrchestratorError, Turn};
use crate::chat::protocol::AgentEvent;

/// Longest accepted NDJSON line.
const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Bound on the confirm and cancel calls.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Relays an upstream agent's event stream.
pub struct HttpOrchestrator {
    client: reqwest::Client,
    url: String,
}

impl HttpOrchestrator {
    /// An orchestrator for the agent at `url`; `connect_timeout` bounds connecting only (answers
    /// may stream for long; the turn's own timeout bounds them).
    pub fn new(url: &str, connect_timeout: Duration) -> Result<Self, String> {
        // reqwest is built without a default TLS provider; ring's is the one this crate uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpOrchestrator { client, url: url.trim_end_matches('/').to_string() })
    }

    async fn confirm(&self, run_id: &str, answer: &Confirmation) {
        let body = json!({ "run_id": run_id, "operation_id": answer.operation_id, "confirmed": answer.confirmed });
        let sent = self.client.post(format!("{}/confirm", self.url)).timeout(CONTROL_TIMEOUT).json(&body).send().await;
        match sent {
            Ok(res) if res.status().is_success() => {}
            Ok(res) => tracing::warn!(status = res.status().as_u16(), "upstream agent refused a confirmation"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot relay a confirmation to the upstream agent")
            }
        }
    }

    async fn relay(&self, turn: &mut Turn, sink: &mut EventSink) -> Result<(), OrchestratorError> {
        let body = json!({
            "run_id": turn.run_id,
            "tenant_id": turn.identity.tenant_id,
            "user_id": turn.identity.user_id,
            "session_id": turn.identity.session_id,
            "conversation_id": turn.conversation_id,
            "message": turn.message,
            "history": turn.history,
        });
        let mut response = self
            .client
            .post(&self.url)
            .header(ACCEPT, "application/x-ndjson")
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| OrchestratorError::Upstream(e.to_string()))?;
        if !response.status().is_success() {
            return Err(OrchestratorError::Status(response.status().as_u16()));
        }
        let mut buffer: Vec<u8> = Vec::new();
        let mut confirmations_open = true;
        loop {
            tokio::select! {
                chunk = response.chunk() => match chunk {
                    Ok(Some(bytes)) => {
                        buffer.extend_from_slice(&bytes);
                        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buffer.drain(..=end).collect();
                            if relay_line(&line, sink)? {
                                return Ok(());
                            }
                        }
                        if buffer.len() > MAX_LINE_BYTES {
                            return Err(OrchestratorError::Protocol("line too long".into()));
                        }
                    }
                    Ok(None) => {
                        relay_line(&buffer, sink)?;
                        return Ok(());
                    }
                    Err(e) => return Err(OrchestratorError::Upstream(e.to_string())),
                },
                answer = turn.confirmations.recv(), if confirmations_open => match answer {
                    Some(answer) => self.confirm(&turn.run_id, &answer).await,
                    None => confirmations_open = false,
                },
            }
        }
    }
}

/// Relays one NDJSON line; `true` when it ends the turn.
fn relay_line(line: &[u8], sink: &mut EventSink) -> Result<bool, OrchestratorError> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    if line.is_empty() {
        return Ok(false);
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a malformed line from the upstream agent");
            return Ok(false);
        }
    };
    match value.get("type").and_then(Value::as_str) {
        Some("done") => return Ok(true),
        Some("error") => {
            let message = value.get("content").and_then(Value::as_str).unwrap_or("The assistant reported an error");
            return Err(OrchestratorError::Reported(message.chars().take(500).collect()));
        }
        _ => {}
    }
    match AgentEvent::from_upstream(&value) {
        Some(event) => sink.emit(event),
        None => tracing::debug!("skipping an unknown event type from the upstream agent"),
    }
    Ok(false)
}

impl Orchestrator for HttpOrchestrator {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run<'a>(&'a self, turn: &'a mut Turn, sink: &'a mut EventSink) -> BoxFuture<'a, Result<(), OrchestratorError>> {
        Box::pin(self.relay(turn, sink))
    }

    fn cancel(&self, run_id: String) -> BoxFuture<'static, ()> {
        let client = self.client.clone();
        let url = format!("{}/cancel", self.url);
        Box::pin(async move {
            let sent = client.post(url).timeout(CONTROL_TIMEOUT).json(&json!({ "run_id": run_id })).send().await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "cannot relay a cancel to the upstream agent");
            }
        })
    }
}
