//! The chat protocol: what a client sends, what the server streams back, and how both look on the
//! wire. Nothing here knows about sockets, tickets or storage.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A message from the client, after validation of its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// Ask something; a new chat cancels the one in progress.
    Chat { message: String, conversation_id: Option<String> },
    /// Answer a `confirmation_required` event.
    Confirm { operation_id: String, confirmed: bool },
    /// Stop the answer in progress.
    Cancel,
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// Why a client frame was refused; each becomes an `error` event and the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    Validation(String),
}

impl ClientError {
    /// The `error_type` this refusal is reported with.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ClientError::InvalidJson(_) => ErrorType::InvalidJson,
            ClientError::Validation(_) => ErrorType::ValidationError,
        }
    }
}

#[derive(Deserialize)]
struct ChatFields {
    message: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

#[derive(Deserialize)]
struct ConfirmFields {
    operation_id: String,
    confirmed: bool,
}

/// Parses one text frame. Unknown fields are ignored so that clients may add their own (e.g. an id).
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ClientError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ClientError::InvalidJson(format!("Invalid JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ClientError::Validation("A message must be a JSON object with a type".into()));
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(ClientError::Validation("type must be a string".into())),
        None => return Err(ClientError::Validation("Message type is required".into())),
    };
    let fields = |what: &str, e: serde_json::Error| ClientError::Validation(format!("Invalid {what} message: {e}"));
    match kind {
        "chat" => {
            let f: ChatFields = serde_json::from_value(value.clone()).map_err(|e| fields("chat", e))?;
            Ok(ClientMessage::Chat { message: f.message, conversation_id: f.conversation_id.filter(|c| !c.is_empty()) })
        }
        "confirm" => {
            let f: ConfirmFields = serde_json::from_value(value.clone()).map_err(|e| fields("confirm", e))?;
            Ok(ClientMessage::Confirm { operation_id: f.operation_id, confirmed: f.confirmed })
        }
        "cancel" => Ok(ClientMessage::Cancel),
        "ping" => Ok(ClientMessage::Ping),
        other => {
            let shown: String = other.chars().take(40).collect();
            Err(ClientError::Validation(format!("Unknown message type: {shown}")))
        }
    }
}

/// The `error_type` of an `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// The answer failed; sending again may work.
    Recoverable,
    /// The connection cannot continue.
    Fatal,
    /// The message was understood but refused.
    ValidationError,
    InvalidJson,
    MessageTooLarge,
}

/// Something the answer produced, before the connection numbers it.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    TextDelta(String),
    ThinkingDelta(String),
    ToolCallStart {
        tool_call_id: String,
        tool_name: String,
        arguments: Value,
    },
    ToolResult {
        tool_call_id: String,
        tool_name: String,
        result: Value,
        is_error: bool,
    },
    /// A risky operation waits for the user's `confirm`.
    ConfirmationRequired {
        operation_id: String,
        risk_level: String,
        message: String,
        details: Value,
    },
    Done {
        conversation_id: String,
        message_count: i64,
    },
    Error {
        error_type: ErrorType,
        message: String,
    },
    Cancelled {
        reason: String,
    },
}

/// One event on the wire. `sequence` and `event_id` are on every event but `pong`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl ServerEvent {
    /// The answer to a client `ping`: unnumbered.
    pub fn pong() -> ServerEvent {
        ServerEvent {
            kind: "pong".into(),
            content: None,
            metadata: None,
            error_type: None,
            sequence: None,
            event_id: None,
        }
    }

    /// As JSON text for a frame.
    pub fn to_text(&self) -> String {
        // Serialising this struct cannot fail: every field is a string, number or JSON value.
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"type":"error"}"#.to_string())
    }
}

impl AgentEvent {
    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentEvent::TextDelta(_) => "text_delta",
            AgentEvent::ThinkingDelta(_) => "thinking_delta",
            AgentEvent::ToolCallStart { .. } => "tool_call_start",
            AgentEvent::ToolResult { .. } => "tool_result",
            AgentEvent::ConfirmationRequired { .. } => "confirmation_required",
            AgentEvent::Done { .. } => "done",
            AgentEvent::Error { .. } => "error",
            AgentEvent::Cancelled { .. } => "cancelled",
        }
    }

    /// The event as sent, numbered by the connection.
    pub fn into_wire(self, sequence: u64, event_id: String) -> ServerEvent {
        let kind = self.kind().to_string();
        let (content, metadata, error_type) = match self {
            AgentEvent::TextDelta(text) | AgentEvent::ThinkingDelta(text) => (Some(text), None, None),
            AgentEvent::ToolCallStart { tool_call_id, tool_name, arguments } => (
                Some(tool_name.clone()),
                Some(json!({ "tool_call_id": tool_call_id, "tool_name": tool_name, "arguments": arguments })),
                None,
            ),
            AgentEvent::ToolResult { tool_call_id, tool_name, result, is_error } => (
                Some(match &result {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                Some(
                    json!({ "tool_call_id": tool_call_id, "tool_name": tool_name, "result": result, "is_error": is_error }),
                ),
                None,
            ),
            AgentEvent::ConfirmationRequired { operation_id, risk_level, message, details } => (
                Some(message),
                Some(json!({ "operation_id": operation_id, "risk_level": risk_level, "details": details })),
                None,
            ),
            AgentEvent::Done { conversation_id, message_count } => {
                (None, Some(json!({ "conversation_id": conversation_id, "message_count": message_count })), None)
            }
            AgentEvent::Error { error_type, message } => (Some(message), None, Some(error_type)),
            AgentEvent::Cancelled { reason } => {
                (Some("Cancelled".to_string()), Some(json!({ "reason": reason })), None)
            }
        };
        ServerEvent { kind, content, metadata, error_type, sequence: Some(sequence), event_id: Some(event_id) }
    }

    /// Reads an event an upstream agent streamed (the wire shape, unnumbered). `done` and unknown
    /// types are `None`: the relay decides when a turn ends.
    pub fn from_upstream(value: &Value) -> Option<AgentEvent> {
        let kind = value.get("type")?.as_str()?;
        let content = value.get("content").and_then(Value::as_str).unwrap_or_default().to_string();
        let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
        let text = |key: &str| meta.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        Some(match kind {
            "text_delta" => AgentEvent::TextDelta(content),
            "thinking_delta" => AgentEvent::ThinkingDelta(content),
            "tool_call_start" => AgentEvent::ToolCallStart {
                tool_call_id: text("tool_call_id"),
                tool_name: Some(text("tool_name")).filter(|n| !n.is_empty()).unwrap_or(content),
                arguments: meta.get("arguments").cloned().unwrap_or(Value::Null),
            },
            "tool_result" => AgentEvent::ToolResult {
                tool_call_id: text("tool_call_id"),
                tool_name: text("tool_name"),
                result: meta.get("result").cloned().unwrap_or(Value::String(content)),
                is_error: meta.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            },
            "confirmation_required" => AgentEvent::ConfirmationRequired {
                operation_id: text("operation_id"),
                risk_level: Some(text("risk_level")).filter(|r| !r.is_empty()).unwrap_or_else(|| "high".into()),
                message: content,
                details: meta.get("details").cloned().unwrap_or(Value::Null),
            },
            "error" => AgentEvent::Error {
                error_type: ErrorType::Recoverable,
                message: if content.is_empty() { "The assistant reported an error".into() } else { content },
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_message() {
        assert_eq!(
            parse_client_message(r#"{"type":"chat","message":"hi","conversation_id":"c"}"#),
            Ok(ClientMessage::Chat { message: "hi".into(), conversation_id: Some("c".into()) })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"chat","message":"hi","conversation_id":null,"x":1}"#),
            Ok(ClientMessage::Chat { message: "hi".into(), conversation_id: None })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"confirm","operation_id":"o","confirmed":false}"#),
            Ok(ClientMessage::Confirm { operation_id: "o".into(), confirmed: false })
        );
        assert_eq!(parse_client_message(r#"{"type":"cancel"}"#), Ok(ClientMessage::Cancel));
        assert_eq!(parse_client_message(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping));
    }

    #[test]
    fn refuses_bad_input_with_the_right_error_type() {
        let kind = |t: &str| parse_client_message(t).unwrap_err().error_type();
        assert_eq!(kind("{nope"), ErrorType::InvalidJson);
        assert_eq!(kind("[1]"), ErrorType::ValidationError);
        assert_eq!(kind(r#"{"message":"x"}"#), ErrorType::ValidationError);
        assert_eq!(kind(r#"{"type":"dance"}"#), ErrorType::ValidationError);
        assert_eq!(kind(r#"{"type":"chat"}"#), ErrorType::ValidationError);
        assert_eq!(kind(r#"{"type":"confirm","operation_id":"o"}"#), ErrorType::ValidationError);
        assert!(parse_client_message(r#"{"type":"dance"}"#)
            .unwrap_err()
            .to_string()
            .contains("Unknown message type: dance"));
    }

    #[test]
    fn wire_shapes() {
        let e = AgentEvent::Done { conversation_id: "c".into(), message_count: 2 }.into_wire(7, "e".into());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type":"done","metadata":{"conversation_id":"c","message_count":2},"sequence":7,"event_id":"e"})
        );
        let e = AgentEvent::Error { error_type: ErrorType::MessageTooLarge, message: "big".into() }
            .into_wire(1, "x".into());
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type":"error","content":"big","error_type":"message_too_large","sequence":1,"event_id":"x"})
        );
        assert_eq!(ServerEvent::pong().to_text(), r#"{"type":"pong"}"#);
    }

    #[test]
    fn upstream_events_round_trip() {
        let events = [
            AgentEvent::TextDelta("a".into()),
            AgentEvent::ThinkingDelta("b".into()),
            AgentEvent::ToolCallStart { tool_call_id: "t".into(), tool_name: "n".into(), arguments: json!({"q": 1}) },
            AgentEvent::ToolResult {
                tool_call_id: "t".into(),
                tool_name: "n".into(),
                result: json!({"ok": true}),
                is_error: false,
            },
            AgentEvent::ConfirmationRequired {
                operation_id: "o".into(),
                risk_level: "high".into(),
                message: "sure?".into(),
                details: json!({"x": 1}),
            },
        ];
        for event in events {
            let wire = serde_json::to_value(event.clone().into_wire(1, "e".into())).unwrap();
            assert_eq!(AgentEvent::from_upstream(&wire), Some(event));
        }
        assert_eq!(AgentEvent::from_upstream(&json!({"type": "done"})), None);
        assert_eq!(AgentEvent::from_upstream(&json!({"type": "mystery"})), None);
    }
}
