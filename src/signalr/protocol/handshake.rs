//! The handshake: the client's first message names the protocol and version; the server answers
//! `{}` or `{"error":"…"}`. Both are always JSON ended by 0x1E, even for MessagePack, and the
//! client may send its first hub messages in the same packet, so the parser reports how many
//! bytes it used.

use std::ops::RangeInclusive;

use serde_json::Value;

use super::framing::RECORD_SEPARATOR;
use super::json::token_name;
use super::{ProtocolError, ProtocolKind};

/// Protocol versions accepted for both protocols: ASP.NET accepts any version up to its
/// current one (2), and some clients (signalrcore) send 0.
pub const SUPPORTED_VERSIONS: RangeInclusive<u32> = 0..=2;

/// Successful handshake response, ready to send.
pub const HANDSHAKE_SUCCESS: &[u8] = b"{}\x1e";

/// What the client asked for in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// Protocol name as sent (matched case-insensitively by [`select_protocol`]).
    pub protocol: String,
    /// Requested protocol version (checked against [`SUPPORTED_VERSIONS`]).
    pub version: u32,
}

/// Outcome of [`parse_handshake`] on the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeParse {
    /// No 0x1E yet: wait for more bytes.
    Incomplete,
    /// Parsed; `consumed` bytes (including the 0x1E) belong to the handshake and anything after
    /// them is already hub-protocol data.
    Complete {
        /// The parsed request.
        request: HandshakeRequest,
        /// Handshake length in bytes, 0x1E included.
        consumed: usize,
    },
}

/// Parses the handshake request at the start of `buf`.
///
/// Fails with [`ProtocolError::HandshakeTooLarge`] once `max_size` bytes have arrived without
/// a complete request (ASP.NET uses the receive message size limit here), or with
/// [`ProtocolError::InvalidHandshake`] for anything that is not the expected JSON object.
/// Send [`ProtocolError::handshake_error_text`] back in either case.
pub fn parse_handshake(buf: &[u8], max_size: usize) -> Result<HandshakeParse, ProtocolError> {
    let window = &buf[..buf.len().min(max_size)];
    let Some(end) = window.iter().position(|&b| b == RECORD_SEPARATOR) else {
        if buf.len() >= max_size {
            return Err(ProtocolError::HandshakeTooLarge { limit: max_size });
        }
        return Ok(HandshakeParse::Incomplete);
    };
    let payload = &buf[..end];
    let content = || String::from_utf8_lossy(payload).into_owned();
    let bad = |text: String| ProtocolError::InvalidHandshake(text);

    let root: Value =
        serde_json::from_slice(payload).map_err(|e| bad(format!("Error reading handshake JSON: {e}.")))?;
    let Value::Object(obj) = root else {
        return Err(bad(format!(
            "Unexpected JSON Token Type '{}' when reading handshake request JSON. Message content: {}",
            token_name(&root),
            content()
        )));
    };
    let protocol = match obj.get("protocol") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("Expected 'protocol' to be of type String.".into())),
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad("Expected 'version' to be a non-negative integer.".into()))?,
        ),
        Some(_) => return Err(bad("Expected 'version' to be of type Number.".into())),
    };
    let missing = |p: &str| bad(format!("Missing required property '{p}'. Message content: {}", content()));
    let protocol = protocol.ok_or_else(|| missing("protocol"))?;
    let version = version.ok_or_else(|| missing("version"))?;
    Ok(HandshakeParse::Complete { request: HandshakeRequest { protocol, version }, consumed: end + 1 })
}

/// Picks the protocol for a parsed request among those this endpoint allows; the `Err` text
/// is what ASP.NET sends in the handshake error response.
pub fn select_protocol(req: &HandshakeRequest, allowed: &[ProtocolKind]) -> Result<ProtocolKind, String> {
    let kind = ProtocolKind::from_name(&req.protocol)
        .filter(|k| allowed.contains(k))
        .ok_or_else(|| format!("The protocol '{}' is not supported.", req.protocol))?;
    if !SUPPORTED_VERSIONS.contains(&req.version) {
        return Err(format!("The server does not support version {} of the '{}' protocol.", req.version, req.protocol));
    }
    Ok(kind)
}

/// Handshake error text when the transport cannot carry the protocol's transfer format
/// (e.g. MessagePack over Server-Sent Events), worded as ASP.NET does.
pub fn unsupported_transfer_format_error(kind: ProtocolKind) -> String {
    format!(
        "Cannot use the '{}' protocol on the current transport. The transport does not support '{}' transfer format.",
        kind.name(),
        kind.transfer_format().name()
    )
}

/// Handshake response bytes: `{}` + 0x1E on success, `{"error":"…"}` + 0x1E otherwise
/// (an empty error counts as success, as in ASP.NET).
pub fn handshake_response(error: Option<&str>) -> Vec<u8> {
    match error.filter(|e| !e.is_empty()) {
        None => HANDSHAKE_SUCCESS.to_vec(),
        Some(e) => {
            let mut out = b"{\"error\":".to_vec();
            // Serializing a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, e);
            out.extend_from_slice(b"}\x1e");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HubMessage, MessageDecoder};
    use super::*;

    fn complete(buf: &[u8]) -> (HandshakeRequest, usize) {
        match parse_handshake(buf, 1024).unwrap() {
            HandshakeParse::Complete { request, consumed } => (request, consumed),
            HandshakeParse::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn parses_request() {
        let buf = b"{\"protocol\":\"json\",\"version\":1}\x1e";
        let (req, consumed) = complete(buf);
        assert_eq!(req, HandshakeRequest { protocol: "json".into(), version: 1 });
        assert_eq!(consumed, buf.len());
        // Field order and unknown fields do not matter; whitespace is fine.
        let (req, _) = complete(b" {\"version\": 0, \"x\": [1], \"protocol\": \"messagepack\"} \x1e");
        assert_eq!(req.protocol, "messagepack");
        assert_eq!(req.version, 0);
    }

    #[test]
    fn incomplete_until_separator() {
        let buf = b"{\"protocol\":\"json\",\"version\":1}\x1e";
        for cut in 0..buf.len() {
            assert_eq!(parse_handshake(&buf[..cut], 1024).unwrap(), HandshakeParse::Incomplete);
        }
    }

    #[test]
    fn trailing_binary_data_is_left_for_the_decoder() {
        let mut buf = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e".to_vec();
        let hs_len = buf.len();
        buf.extend_from_slice(&[0x02, 0x91, 0x06, 0x05, 0x93, 0x05, 0x80, 0xa1]);
        let (req, consumed) = complete(&buf);
        assert_eq!(consumed, hs_len);
        let kind = select_protocol(&req, &ProtocolKind::ALL).unwrap();
        assert_eq!(kind, ProtocolKind::MessagePack);
        let mut dec = MessageDecoder::new(kind, 1024);
        dec.push(&buf[consumed..]);
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));
        assert_eq!(dec.next_message().unwrap(), None);
        dec.push(b"1");
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::cancel_invocation("1")));

        // Text data after a JSON handshake, including a partial record.
        let buf = b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e{\"ty";
        let (_, consumed) = complete(buf);
        let mut dec = MessageDecoder::new(ProtocolKind::Json, 1024);
        dec.push(&buf[consumed..]);
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));
        assert_eq!(dec.next_message().unwrap(), None);
        assert_eq!(dec.buffered_len(), 4);
    }

    #[test]
    fn too_large() {
        let err = parse_handshake(&[b' '; 64], 64).unwrap_err();
        assert!(matches!(err, ProtocolError::HandshakeTooLarge { limit: 64 }));
        assert_eq!(err.handshake_error_text(false), "Handshake was canceled.");
        assert_eq!(parse_handshake(&[b' '; 63], 64).unwrap(), HandshakeParse::Incomplete);
        // A separator beyond the window does not count.
        let mut buf = vec![b' '; 70];
        buf.push(RECORD_SEPARATOR);
        assert!(parse_handshake(&buf, 64).is_err());
    }

    #[test]
    fn invalid_requests() {
        let err = |b: &[u8]| parse_handshake(b, 1024).unwrap_err().to_string();
        assert_eq!(
            err(b"{\"version\":1}\x1e"),
            "Missing required property 'protocol'. Message content: {\"version\":1}"
        );
        assert_eq!(
            err(b"{\"protocol\":\"json\"}\x1e"),
            "Missing required property 'version'. Message content: {\"protocol\":\"json\"}"
        );
        assert_eq!(err(b"{\"protocol\":1,\"version\":1}\x1e"), "Expected 'protocol' to be of type String.");
        assert_eq!(err(b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e"), "Expected 'version' to be of type Number.");
        assert_eq!(
            err(b"{\"protocol\":\"json\",\"version\":-1}\x1e"),
            "Expected 'version' to be a non-negative integer."
        );
        assert_eq!(
            err(b"[]\x1e"),
            "Unexpected JSON Token Type 'Array' when reading handshake request JSON. Message content: []"
        );
        assert!(err(b"{nope\x1e").starts_with("Error reading handshake JSON"));
        let e = parse_handshake(b"\x91\x06\x1e", 1024).unwrap_err();
        assert!(matches!(e, ProtocolError::InvalidHandshake(_)));
        assert_eq!(e.handshake_error_text(false), "An unexpected error occurred during connection handshake.");
    }

    fn req(protocol: &str, version: u32) -> HandshakeRequest {
        HandshakeRequest { protocol: protocol.into(), version }
    }

    #[test]
    fn versions_zero_to_two_accepted_three_rejected() {
        for kind in ProtocolKind::ALL {
            for v in 0..=2 {
                assert_eq!(select_protocol(&req(kind.name(), v), &ProtocolKind::ALL), Ok(kind));
            }
            assert_eq!(
                select_protocol(&req(kind.name(), 3), &ProtocolKind::ALL),
                Err(format!("The server does not support version 3 of the '{}' protocol.", kind.name()))
            );
        }
    }

    #[test]
    fn unknown_or_disallowed_protocol() {
        assert_eq!(
            select_protocol(&req("foo", 1), &ProtocolKind::ALL),
            Err("The protocol 'foo' is not supported.".to_string())
        );
        assert_eq!(
            select_protocol(&req("messagepack", 1), &[ProtocolKind::Json]),
            Err("The protocol 'messagepack' is not supported.".to_string())
        );
        assert_eq!(select_protocol(&req("MessagePack", 1), &ProtocolKind::ALL), Ok(ProtocolKind::MessagePack));
    }

    #[test]
    fn responses() {
        assert_eq!(handshake_response(None), b"{}\x1e");
        assert_eq!(handshake_response(Some("")), b"{}\x1e");
        assert_eq!(
            handshake_response(Some("The protocol 'x\"y' is not supported.")),
            b"{\"error\":\"The protocol 'x\\\"y' is not supported.\"}\x1e".to_vec()
        );
        assert_eq!(
            unsupported_transfer_format_error(ProtocolKind::MessagePack),
            "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."
        );
    }
}
