//! The protocol-independent hub message model shared by the JSON and MessagePack codecs.

use std::collections::HashMap;

pub use super::value::Value;

/// Header map carried by invocation-style messages; the spec says receivers must accept and may
/// ignore them, so they are kept as plain strings.
pub type Headers = HashMap<String, String>;

/// Numeric message type ids as they appear on the wire (`type` in JSON, first array item in
/// MessagePack). Kept in one place so both codecs and callers agree.
pub mod message_type {
    /// Call a method, optionally expecting a Completion.
    pub const INVOCATION: u8 = 1;
    /// One item of a stream (server-to-client result or client-to-server upload).
    pub const STREAM_ITEM: u8 = 2;
    /// End of an invocation or stream, with a result or an error.
    pub const COMPLETION: u8 = 3;
    /// Call a streaming method.
    pub const STREAM_INVOCATION: u8 = 4;
    /// Ask the callee to stop an invocation or stream.
    pub const CANCEL_INVOCATION: u8 = 5;
    /// Keep-alive.
    pub const PING: u8 = 6;
    /// Connection is being closed, possibly with an error.
    pub const CLOSE: u8 = 7;
    /// Stateful reconnect: acknowledges received sequenced messages.
    pub const ACK: u8 = 8;
    /// Stateful reconnect: announces the next sequence id after a reconnect.
    pub const SEQUENCE: u8 = 9;
}

/// One SignalR hub message, independent of its encoding.
///
/// Variants mirror the protocol's message types 1–9 so that transports and hubs can work with
/// one model whichever protocol a connection negotiated.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1. `invocation_id` is `None` for a non-blocking call (no Completion expected).
    Invocation {
        invocation_id: Option<String>,
        target: String,
        arguments: Vec<Value>,
        stream_ids: Vec<String>,
        headers: Headers,
    },
    /// Type 2.
    StreamItem { invocation_id: String, item: Value, headers: Headers },
    /// Type 3.
    Completion { invocation_id: String, result: CompletionResult, headers: Headers },
    /// Type 4.
    StreamInvocation {
        invocation_id: String,
        target: String,
        arguments: Vec<Value>,
        stream_ids: Vec<String>,
        headers: Headers,
    },
    /// Type 5.
    CancelInvocation { invocation_id: String, headers: Headers },
    /// Type 6. Carries nothing, not even headers (the spec fixes its MessagePack bytes).
    Ping,
    /// Type 7. `allow_reconnect` tells auto-reconnecting clients to try again.
    Close { error: Option<String>, allow_reconnect: bool },
    /// Type 8.
    Ack { sequence_id: u64 },
    /// Type 9.
    Sequence { sequence_id: u64 },
}

/// Outcome carried by a Completion; the three cases are distinct on the wire (MessagePack result
/// kinds 2, 3 and 1) and clients treat "no result" differently from "result null".
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionResult {
    /// Void method or end of a stream: no `result`, no `error`.
    Void,
    /// Non-void result, which may be `null`.
    Value(Value),
    /// The invocation failed with this message.
    Error(String),
}

impl HubMessage {
    /// Wire type id (1–9), for logging, metrics and dispatch tables.
    pub fn type_id(&self) -> u8 {
        use message_type::*;
        match self {
            HubMessage::Invocation { .. } => INVOCATION,
            HubMessage::StreamItem { .. } => STREAM_ITEM,
            HubMessage::Completion { .. } => COMPLETION,
            HubMessage::StreamInvocation { .. } => STREAM_INVOCATION,
            HubMessage::CancelInvocation { .. } => CANCEL_INVOCATION,
            HubMessage::Ping => PING,
            HubMessage::Close { .. } => CLOSE,
            HubMessage::Ack { .. } => ACK,
            HubMessage::Sequence { .. } => SEQUENCE,
        }
    }

    /// Whether the message takes a sequence id under stateful reconnect (types 1–5); the others
    /// are neither counted, buffered nor replayed.
    pub fn is_sequenced(&self) -> bool {
        (message_type::INVOCATION..=message_type::CANCEL_INVOCATION).contains(&self.type_id())
    }

    /// Invocation id of types 1–5, so callers can correlate without matching every variant.
    pub fn invocation_id(&self) -> Option<&str> {
        match self {
            HubMessage::Invocation { invocation_id, .. } => invocation_id.as_deref(),
            HubMessage::StreamItem { invocation_id, .. }
            | HubMessage::Completion { invocation_id, .. }
            | HubMessage::StreamInvocation { invocation_id, .. }
            | HubMessage::CancelInvocation { invocation_id, .. } => Some(invocation_id),
            _ => None,
        }
    }

    /// Headers of types 1–5 (other types have none on the wire).
    pub fn headers(&self) -> Option<&Headers> {
        match self {
            HubMessage::Invocation { headers, .. }
            | HubMessage::StreamItem { headers, .. }
            | HubMessage::Completion { headers, .. }
            | HubMessage::StreamInvocation { headers, .. }
            | HubMessage::CancelInvocation { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// Replaces the headers of types 1–5 (ignored for the others, which cannot carry any).
    pub fn with_headers(mut self, new_headers: Headers) -> Self {
        match &mut self {
            HubMessage::Invocation { headers, .. }
            | HubMessage::StreamItem { headers, .. }
            | HubMessage::Completion { headers, .. }
            | HubMessage::StreamInvocation { headers, .. }
            | HubMessage::CancelInvocation { headers, .. } => *headers = new_headers,
            _ => {}
        }
        self
    }

    /// Non-blocking invocation, the usual server-to-client "call this handler" broadcast.
    pub fn invocation(target: impl Into<String>, arguments: Vec<Value>) -> Self {
        HubMessage::Invocation {
            invocation_id: None,
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
            headers: Headers::new(),
        }
    }

    /// Blocking invocation expecting a Completion (e.g. server-to-client client results).
    pub fn invocation_with_id(
        invocation_id: impl Into<String>,
        target: impl Into<String>,
        arguments: Vec<Value>,
    ) -> Self {
        HubMessage::Invocation {
            invocation_id: Some(invocation_id.into()),
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
            headers: Headers::new(),
        }
    }

    /// Streaming invocation.
    pub fn stream_invocation(
        invocation_id: impl Into<String>,
        target: impl Into<String>,
        arguments: Vec<Value>,
    ) -> Self {
        HubMessage::StreamInvocation {
            invocation_id: invocation_id.into(),
            target: target.into(),
            arguments,
            stream_ids: Vec::new(),
            headers: Headers::new(),
        }
    }

    /// One stream item.
    pub fn stream_item(invocation_id: impl Into<String>, item: Value) -> Self {
        HubMessage::StreamItem { invocation_id: invocation_id.into(), item, headers: Headers::new() }
    }

    /// Completion without result (void method, or end of a stream).
    pub fn completion_void(invocation_id: impl Into<String>) -> Self {
        Self::completion(invocation_id, CompletionResult::Void)
    }

    /// Completion with a result value.
    pub fn completion_result(invocation_id: impl Into<String>, result: Value) -> Self {
        Self::completion(invocation_id, CompletionResult::Value(result))
    }

    /// Completion with an error message.
    pub fn completion_error(invocation_id: impl Into<String>, error: impl Into<String>) -> Self {
        Self::completion(invocation_id, CompletionResult::Error(error.into()))
    }

    /// Completion with any result kind.
    pub fn completion(invocation_id: impl Into<String>, result: CompletionResult) -> Self {
        HubMessage::Completion { invocation_id: invocation_id.into(), result, headers: Headers::new() }
    }

    /// Cancel an invocation or stream.
    pub fn cancel_invocation(invocation_id: impl Into<String>) -> Self {
        HubMessage::CancelInvocation { invocation_id: invocation_id.into(), headers: Headers::new() }
    }

    /// Close, optionally with an error and a hint that the client may reconnect.
    pub fn close(error: Option<String>, allow_reconnect: bool) -> Self {
        HubMessage::Close { error, allow_reconnect }
    }

    /// Stateful-reconnect acknowledgement.
    pub fn ack(sequence_id: u64) -> Self {
        HubMessage::Ack { sequence_id }
    }

    /// Stateful-reconnect sequence announcement.
    pub fn sequence(sequence_id: u64) -> Self {
        HubMessage::Sequence { sequence_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::json!`, as a hub [`Value`].
    macro_rules! json {
        ($($t:tt)*) => { Value::from(serde_json::json!($($t)*)) };
    }

    #[test]
    fn type_ids_and_sequencing() {
        let all = [
            (HubMessage::invocation("a", vec![]), 1, true),
            (HubMessage::stream_item("1", json!(1)), 2, true),
            (HubMessage::completion_void("1"), 3, true),
            (HubMessage::stream_invocation("1", "s", vec![]), 4, true),
            (HubMessage::cancel_invocation("1"), 5, true),
            (HubMessage::Ping, 6, false),
            (HubMessage::close(None, false), 7, false),
            (HubMessage::ack(1), 8, false),
            (HubMessage::sequence(1), 9, false),
        ];
        for (msg, id, seq) in all {
            assert_eq!(msg.type_id(), id, "{msg:?}");
            assert_eq!(msg.is_sequenced(), seq, "{msg:?}");
        }
    }

    #[test]
    fn constructors_and_accessors() {
        let m = HubMessage::completion_error("7", "boom");
        assert_eq!(
            m,
            HubMessage::Completion {
                invocation_id: "7".into(),
                result: CompletionResult::Error("boom".into()),
                headers: Headers::new()
            }
        );
        assert_eq!(m.invocation_id(), Some("7"));
        assert_eq!(HubMessage::invocation("x", vec![]).invocation_id(), None);
        assert_eq!(HubMessage::invocation_with_id("3", "x", vec![]).invocation_id(), Some("3"));
        let h: Headers = [("a".to_string(), "b".to_string())].into();
        let m = HubMessage::cancel_invocation("1").with_headers(h.clone());
        assert_eq!(m.headers(), Some(&h));
        assert_eq!(HubMessage::Ping.with_headers(h).headers(), None);
        assert_eq!(
            HubMessage::close(Some("e".into()), true),
            HubMessage::Close { error: Some("e".into()), allow_reconnect: true }
        );
    }
}
