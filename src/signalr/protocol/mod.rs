//! SignalR hub protocol: handshake, framing and the JSON and MessagePack message encodings.
//!
//! Pure byte-level code (no I/O, no actix) so transports and hubs share one implementation that
//! behaves like ASP.NET Core SignalR towards the official clients. Error texts follow ASP.NET's
//! wherever it has one, so what a client sees in a Close or handshake error matches.

pub mod framing;
pub mod handshake;
pub mod json;
pub mod message;
pub mod msgpack;
pub mod value;

pub use framing::{
    read_varint, split_binary_frame, split_text_record, write_varint, MessageDecoder, MAX_BINARY_MESSAGE_SIZE,
    MAX_VARINT_LEN, RECORD_SEPARATOR,
};
pub use handshake::{
    handshake_response, parse_handshake, select_protocol, unsupported_transfer_format_error, HandshakeParse,
    HandshakeRequest, HANDSHAKE_SUCCESS, SUPPORTED_VERSIONS,
};
pub use message::{message_type, CompletionResult, Headers, HubMessage, Value};

/// Everything that can go wrong while framing, decoding or encoding.
///
/// Decode errors are fatal for the connection (ASP.NET closes it too); `Display` gives the text
/// ASP.NET would put after the exception name, see [`ProtocolError::close_error_text`].
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A framed message (or the prefix announcing it) exceeds the receive limit. Raised before
    /// the message is fully buffered so a peer cannot make us hold more than the limit.
    #[error("The maximum message size of {limit}B was exceeded. The message size can be configured in AddHubOptions.")]
    MessageTooLarge { limit: usize },
    /// A MessagePack length prefix is malformed or announces 2 GiB or more.
    #[error("Messages over 2GB in size are not supported.")]
    InvalidLengthPrefix,
    /// The message is well framed but its content breaks the protocol.
    #[error("{0}")]
    InvalidMessage(String),
    /// A JSON record is not valid JSON; the serde error is kept as the source for logs.
    #[error("Error reading JSON.")]
    Json(#[source] serde_json::Error),
    /// No complete handshake within the size limit; ASP.NET answers "Handshake was canceled.".
    #[error("The handshake request exceeded the maximum size of {limit}B.")]
    HandshakeTooLarge { limit: usize },
    /// The handshake request is not the JSON object the protocol requires.
    #[error("{0}")]
    InvalidHandshake(String),
    /// A message cannot be encoded (lengths beyond what the format can express).
    #[error("{0}")]
    Encode(String),
}

impl ProtocolError {
    /// Name of the .NET exception ASP.NET raises for this error, used in detailed error texts.
    pub fn exception_name(&self) -> &'static str {
        match self {
            ProtocolError::InvalidLengthPrefix => "FormatException",
            ProtocolError::Encode(_) => "InvalidOperationException",
            _ => "InvalidDataException",
        }
    }

    /// Text for the Close message sent when this error ends a connection, as ASP.NET builds it:
    /// a generic sentence, plus the exception name and message when detailed errors are on.
    pub fn close_error_text(&self, detailed: bool) -> String {
        const BASE: &str = "Connection closed with an error.";
        if detailed {
            format!("{BASE} {}: {self}", self.exception_name())
        } else {
            BASE.to_string()
        }
    }

    /// Text for the handshake error response when [`parse_handshake`] fails, as ASP.NET builds it.
    pub fn handshake_error_text(&self, detailed: bool) -> String {
        if let ProtocolError::HandshakeTooLarge { .. } = self {
            return "Handshake was canceled.".to_string();
        }
        const BASE: &str = "An unexpected error occurred during connection handshake.";
        if detailed {
            format!("{BASE} {}: {self}", self.exception_name())
        } else {
            BASE.to_string()
        }
    }
}

/// Helper for the many "content is wrong" errors.
pub(crate) fn invalid(text: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidMessage(text.into())
}

/// The two hub protocols a connection can negotiate in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    /// `"json"`: text frames, 0x1E-terminated records.
    Json,
    /// `"messagepack"`: binary frames, varint length prefixes.
    MessagePack,
}

/// Whether a protocol needs a binary-capable transport; SSE and text-only WebSocket frames
/// can only carry [`TransferFormat::Text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferFormat {
    /// UTF-8 text is enough.
    Text,
    /// Arbitrary bytes must pass through unchanged.
    Binary,
}

impl TransferFormat {
    /// Name as ASP.NET prints it in the transfer-format handshake error.
    pub fn name(&self) -> &'static str {
        match self {
            TransferFormat::Text => "Text",
            TransferFormat::Binary => "Binary",
        }
    }
}

impl ProtocolKind {
    /// Both protocols, e.g. for an "allow everything" handshake configuration.
    pub const ALL: [ProtocolKind; 2] = [ProtocolKind::Json, ProtocolKind::MessagePack];

    /// Name used in the handshake request (`"json"` / `"messagepack"`).
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolKind::Json => "json",
            ProtocolKind::MessagePack => "messagepack",
        }
    }

    /// Looks a handshake protocol name up; case-insensitive like ASP.NET's resolver.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// Transfer format the transport must support for this protocol.
    pub fn transfer_format(&self) -> TransferFormat {
        match self {
            ProtocolKind::Json => TransferFormat::Text,
            ProtocolKind::MessagePack => TransferFormat::Binary,
        }
    }

    /// Appends one framed message (JSON + 0x1E, or varint length + MessagePack body) to `out`.
    ///
    /// Appending to a caller-owned buffer lets the broker encode a fan-out message once per
    /// protocol and share the bytes. On error `out` is left as it was.
    pub fn encode(&self, msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let start = out.len();
        let res = match self {
            ProtocolKind::Json => json::encode(msg, out),
            ProtocolKind::MessagePack => msgpack::encode(msg, out),
        };
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    /// [`ProtocolKind::encode`] into a fresh buffer.
    pub fn encode_to_vec(&self, msg: &HubMessage) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::with_capacity(64);
        self.encode(msg, &mut out)?;
        Ok(out)
    }

    /// Decodes one unframed payload (a JSON record without its 0x1E, or a MessagePack body
    /// without its length prefix). `Ok(None)` means a message type this code does not know,
    /// which receivers must ignore for forward compatibility.
    pub fn decode_payload(&self, payload: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
        match self {
            ProtocolKind::Json => json::decode(payload),
            ProtocolKind::MessagePack => msgpack::decode(payload),
        }
    }

    /// Framed Ping, precomputed because keep-alives are sent on every idle connection.
    pub fn ping_frame(&self) -> &'static [u8] {
        match self {
            ProtocolKind::Json => b"{\"type\":6}\x1e",
            ProtocolKind::MessagePack => &[0x02, 0x91, 0x06],
        }
    }
}

/// Encodes several messages back to back into `out` (one batch for one transport write).
/// On error `out` is left as it was.
pub fn encode_many<'a>(
    kind: ProtocolKind,
    msgs: impl IntoIterator<Item = &'a HubMessage>,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let start = out.len();
    for msg in msgs {
        if let Err(e) = kind.encode(msg, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::json!`, as a hub [`Value`].
    macro_rules! json {
        ($($t:tt)*) => { Value::from(serde_json::json!($($t)*)) };
    }

    fn sample_messages() -> Vec<HubMessage> {
        let headers: Headers = [("k".to_string(), "v".to_string())].into();
        vec![
            HubMessage::invocation("Send", vec![json!(42), json!("Test Message")]),
            HubMessage::Invocation {
                invocation_id: Some("123".into()),
                target: "Upload".into(),
                arguments: vec![json!({"a": [1, 2.5, null, true]}), json!(-7)],
                stream_ids: vec!["1".into(), "2".into()],
                headers: headers.clone(),
            },
            HubMessage::StreamItem {
                invocation_id: "s".into(),
                item: json!({"nested": {"deep": ["x", -1_000_000_000_000i64, u64::MAX]}}),
                headers: headers.clone(),
            },
            HubMessage::completion_void("1"),
            HubMessage::completion_result("2", json!(null)),
            HubMessage::completion_result("3", json!([0, 1, 2, 3, 4])),
            HubMessage::completion_error("4", "It didn't work!"),
            HubMessage::StreamInvocation {
                invocation_id: "5".into(),
                target: "Stream".into(),
                arguments: vec![json!(5)],
                stream_ids: vec!["u".into()],
                headers: headers.clone(),
            },
            HubMessage::cancel_invocation("6").with_headers(headers),
            HubMessage::Ping,
            HubMessage::close(None, false),
            HubMessage::close(Some("bye ✓ \"quoted\"".into()), true),
            HubMessage::close(Some("only error".into()), false),
            HubMessage::ack(1394),
            HubMessage::sequence(u64::from(u32::MAX) + 5),
            HubMessage::invocation("Unicode ✓ 日本", vec![json!("tab\tnl\n\u{1e}rs")]),
        ]
    }

    #[test]
    fn round_trip_every_message_type_in_both_protocols() {
        for kind in ProtocolKind::ALL {
            for msg in sample_messages() {
                let bytes = kind.encode_to_vec(&msg).unwrap();
                let mut dec = MessageDecoder::new(kind, usize::MAX);
                dec.push(&bytes);
                let back = dec.next_message().unwrap();
                assert_eq!(back.as_ref(), Some(&msg), "{kind:?}");
                assert!(dec.next_message().unwrap().is_none());
                assert_eq!(dec.buffered_len(), 0);
            }
        }
    }

    #[test]
    fn encode_many_then_decode_all() {
        for kind in ProtocolKind::ALL {
            let msgs = sample_messages();
            let mut out = Vec::new();
            encode_many(kind, &msgs, &mut out).unwrap();
            let mut dec = MessageDecoder::new(kind, usize::MAX);
            dec.push(&out);
            let mut got = Vec::new();
            while let Some(m) = dec.next_message().unwrap() {
                got.push(m);
            }
            assert_eq!(got, msgs);
        }
    }

    #[test]
    fn ping_frame_matches_encoder() {
        for kind in ProtocolKind::ALL {
            assert_eq!(kind.encode_to_vec(&HubMessage::Ping).unwrap(), kind.ping_frame());
        }
    }

    #[test]
    fn names_and_formats() {
        assert_eq!(ProtocolKind::Json.name(), "json");
        assert_eq!(ProtocolKind::MessagePack.name(), "messagepack");
        assert_eq!(ProtocolKind::Json.transfer_format(), TransferFormat::Text);
        assert_eq!(ProtocolKind::MessagePack.transfer_format(), TransferFormat::Binary);
        assert_eq!(ProtocolKind::from_name("MessagePack"), Some(ProtocolKind::MessagePack));
        assert_eq!(ProtocolKind::from_name("JSON"), Some(ProtocolKind::Json));
        assert_eq!(ProtocolKind::from_name("xml"), None);
    }

    #[test]
    fn error_texts() {
        let e = ProtocolError::MessageTooLarge { limit: 32768 };
        assert_eq!(
            e.to_string(),
            "The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions."
        );
        assert_eq!(e.close_error_text(false), "Connection closed with an error.");
        assert_eq!(
            e.close_error_text(true),
            "Connection closed with an error. InvalidDataException: The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions."
        );
        assert_eq!(
            ProtocolError::InvalidLengthPrefix.close_error_text(true),
            "Connection closed with an error. FormatException: Messages over 2GB in size are not supported."
        );
        assert_eq!(
            ProtocolError::HandshakeTooLarge { limit: 10 }.handshake_error_text(true),
            "Handshake was canceled."
        );
        assert_eq!(
            ProtocolError::InvalidHandshake("Missing required property 'protocol'.".into())
                .handshake_error_text(true),
            "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'protocol'."
        );
        assert_eq!(
            ProtocolError::InvalidHandshake("x".into()).handshake_error_text(false),
            "An unexpected error occurred during connection handshake."
        );
    }

    #[test]
    fn encode_error_leaves_buffer_untouched() {
        // A msgpack body over 2 GiB is the only realistic encode failure; test the guard directly.
        let mut out = b"keep".to_vec();
        assert!(write_varint(MAX_BINARY_MESSAGE_SIZE + 1, &mut out).is_err());
        assert_eq!(out, b"keep");
    }
}
