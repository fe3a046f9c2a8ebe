//! The built-in demo orchestrator: streams some thinking, one tool call with its result, then the
//! answer word by word. A request to delete something asks for confirmation first and honours the
//! answer. Enough to exercise every event of the protocol without an upstream agent.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::json;

use super::{EventSink, Orchestrator, OrchestratorError, Turn};
use crate::chat::protocol::AgentEvent;

/// Answers from canned behaviour, pausing `delay` between streamed pieces.
pub struct DemoOrchestrator {
    delay: Duration,
}

impl DemoOrchestrator {
    pub fn new(delay: Duration) -> Self {
        DemoOrchestrator { delay }
    }

    async fn pause(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    async fn stream_text(&self, sink: &mut EventSink, text: &str) {
        for (i, word) in text.split(' ').enumerate() {
            let piece = if i == 0 { word.to_string() } else { format!(" {word}") };
            sink.emit(AgentEvent::TextDelta(piece));
            self.pause().await;
        }
    }

    async fn answer(&self, turn: &mut Turn, sink: &mut EventSink) {
        for piece in ["Reading your message.", " Looking it up", " in the knowledge base."] {
            sink.emit(AgentEvent::ThinkingDelta(piece.into()));
            self.pause().await;
        }
        let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
        let query: String = turn.message.chars().take(200).collect();
        sink.emit(AgentEvent::ToolCallStart {
            tool_call_id: call_id.clone(),
            tool_name: "search_knowledge_base".into(),
            arguments: json!({ "query": query }),
        });
        self.pause().await;
        sink.emit(AgentEvent::ToolResult {
            tool_call_id: call_id,
            tool_name: "search_knowledge_base".into(),
            result: json!({ "matches": 2, "top": "Switchyard streams answers over one WebSocket." }),
            is_error: false,
        });
        self.pause().await;
        let earlier = turn.history.len();
        let text = format!(
            "You asked: \"{}\". This is the demo orchestrator: I found 2 notes, and the best one says \
             that Switchyard streams answers over one WebSocket. ({earlier} earlier messages in this conversation.)",
            quote(&turn.message)
        );
        self.stream_text(sink, &text).await;
    }

    async fn delete(&self, turn: &mut Turn, sink: &mut EventSink, target: String) {
        sink.emit(AgentEvent::ThinkingDelta("Deleting cannot be undone, so I will ask first.".into()));
        self.pause().await;
        let operation_id = format!("op_{}", uuid::Uuid::new_v4().simple());
        sink.emit(AgentEvent::ConfirmationRequired {
            operation_id: operation_id.clone(),
            risk_level: "high".into(),
            message: format!("Delete \"{target}\"? This cannot be undone."),
            details: json!({ "tool_name": "delete_item", "target": target }),
        });
        let confirmed = tokio::time::timeout(turn.confirmation_timeout, async {
            while let Some(answer) = turn.confirmations.recv().await {
                if answer.operation_id == operation_id {
                    return answer.confirmed;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if !confirmed {
            let text = format!("Okay, I did not delete \"{target}\".");
            self.stream_text(sink, &text).await;
            return;
        }
        let call_id = format!("call_{}", uuid::Uuid::new_v4().simple());
        sink.emit(AgentEvent::ToolCallStart {
            tool_call_id: call_id.clone(),
            tool_name: "delete_item".into(),
            arguments: json!({ "target": target }),
        });
        self.pause().await;
        sink.emit(AgentEvent::ToolResult {
            tool_call_id: call_id,
            tool_name: "delete_item".into(),
            result: json!({ "deleted": true, "target": target }),
            is_error: false,
        });
        self.pause().await;
        let text = format!("Done: I deleted \"{target}\".");
        self.stream_text(sink, &text).await;
    }
}

/// What a "delete …" request names, if the message asks to delete something.
fn delete_target(message: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets, so `at` is valid in `message` too.
    let at = message.to_ascii_lowercase().find("delete")?;
    let rest = message.get(at + "delete".len()..).unwrap_or("");
    let target: String = rest.trim().trim_end_matches(['.', '!', '?']).chars().take(80).collect();
    Some(if target.is_empty() { "the item".to_string() } else { target })
}

fn quote(message: &str) -> String {
    let mut short: String = message.chars().take(120).collect();
    if short.len() < message.len() {
        short.push('…');
    }
    short.replace('\n', " ")
}

impl Orchestrator for DemoOrchestrator {
    fn name(&self) -> &'static str {
        "demo"
    }

    fn run<'a>(&'a self, turn: &'a mut Turn, sink: &'a mut EventSink) -> BoxFuture<'a, Result<(), OrchestratorError>> {
        Box::pin(async move {
            match delete_target(&turn.message) {
                Some(target) => self.delete(turn, sink, target).await,
                None => self.answer(turn, sink).await,
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_to_delete() {
        assert_eq!(delete_target("please Delete report.pdf!").as_deref(), Some("report.pdf"));
        assert_eq!(delete_target("delete").as_deref(), Some("the item"));
        assert_eq!(delete_target("what is new?"), None);
        assert_eq!(delete_target("İİ DELETE x").as_deref(), Some("x"));
    }
}
