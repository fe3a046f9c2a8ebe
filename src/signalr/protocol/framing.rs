//! Message framing: 0x1E-terminated text records (JSON, handshake) and varint-length-prefixed
//! binary frames (MessagePack), plus an incremental decoder for byte streams.
//!
//! Transports deliver arbitrary chunks (a WebSocket frame may hold several messages, a long
//! polling POST may end mid-message), so framing is kept apart from message contents.

use super::{HubMessage, ProtocolError, ProtocolKind};

/// ASCII record separator that ends every JSON message and every handshake message.
pub const RECORD_SEPARATOR: u8 = 0x1E;

/// A length prefix never needs more than 5 bytes (7 payload bits each).
pub const MAX_VARINT_LEN: usize = 5;

/// Largest MessagePack body the framing can announce (2 GiB - 1, as in ASP.NET).
pub const MAX_BINARY_MESSAGE_SIZE: usize = 0x7fff_ffff;

/// A frame's payload and the bytes after it.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Splits the first text record off `buf`: `(payload without 0x1E, rest after it)`, or `None`
/// when no separator has arrived yet.
pub fn split_text_record(buf: &[u8]) -> Option<Split<'_>> {
    let i = buf.iter().position(|&b| b == RECORD_SEPARATOR)?;
    Some((&buf[..i], &buf[i + 1..]))
}

/// Encodes a body length as the protocol's varint (low 7-bit group first) into a fixed buffer;
/// returns the buffer and how many bytes of it are used. Lengths over 2 GiB - 1 are refused.
pub fn encode_varint(len: usize) -> Result<([u8; MAX_VARINT_LEN], usize), ProtocolError> {
    if len > MAX_BINARY_MESSAGE_SIZE {
        return Err(ProtocolError::Encode(format!(
            "Cannot frame a message of {len} bytes: the MessagePack framing is limited to {MAX_BINARY_MESSAGE_SIZE} bytes."
        )));
    }
    let mut bytes = [0u8; MAX_VARINT_LEN];
    let mut v = len;
    let mut n = 0;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            bytes[n] = low;
            return Ok((bytes, n + 1));
        }
        bytes[n] = low | 0x80;
        n += 1;
    }
}

/// Appends a varint length prefix to `out` (see [`encode_varint`]).
pub fn write_varint(len: usize, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let (bytes, n) = encode_varint(len)?;
    out.extend_from_slice(&bytes[..n]);
    Ok(())
}

/// Reads a varint length prefix: `Ok(Some((value, prefix_len)))`, `Ok(None)` if more bytes are
/// needed, or an error for a prefix that is longer than 5 bytes or encodes 2 GiB or more
/// (ASP.NET's rule: the fifth byte may be at most 0x07).
pub fn read_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, ProtocolError> {
    let mut value: usize = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        if i == MAX_VARINT_LEN - 1 && b > 0x07 {
            return Err(ProtocolError::InvalidLengthPrefix);
        }
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Ok(None)
}

/// Splits the first binary frame off `buf`: `(body, rest)`, `Ok(None)` if incomplete.
pub fn split_binary_frame(buf: &[u8]) -> Result<Option<Split<'_>>, ProtocolError> {
    match read_varint(buf)? {
        Some((len, n)) if buf.len() - n >= len => Ok(Some((&buf[n..n + len], &buf[n + len..]))),
        _ => Ok(None),
    }
}

/// Incremental decoder: push received bytes, pull complete messages.
///
/// The size limit applies to a whole framed message (JSON including its 0x1E, MessagePack
/// including its prefix), as ASP.NET's `MaximumReceiveMessageSize` does; use `usize::MAX` for
/// no limit. Oversized messages are rejected as soon as that is certain, without buffering the
/// rest. Messages of unknown type are skipped, as the spec asks. Any error is fatal: the
/// connection should be closed.
#[derive(Debug)]
pub struct MessageDecoder {
    kind: ProtocolKind,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    /// JSON only: bytes before this index are known to hold no separator.
    scanned: usize,
    max_message_size: usize,
}

/// Frame location inside the decoder buffer: payload range and total framed length.
struct Frame {
    payload_start: usize,
    payload_end: usize,
    framed_len: usize,
}

impl MessageDecoder {
    /// Creates a decoder for a negotiated protocol and a receive limit in bytes.
    pub fn new(kind: ProtocolKind, max_message_size: usize) -> Self {
        MessageDecoder { kind, buf: Vec::new(), start: 0, scanned: 0, max_message_size }
    }

    /// Protocol this decoder parses.
    pub fn kind(&self) -> ProtocolKind {
        self.kind
    }

    /// Configured receive limit.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Bytes received but not yet returned as messages (a partial message, if non-zero after
    /// `next_message` returned `None`).
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            // Reclaim consumed space once it dominates; amortised O(1) per byte.
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let Some(frame) = self.next_frame()? else {
                return Ok(None);
            };
            let payload = &self.buf[frame.payload_start..frame.payload_end];
            let decoded = self.kind.decode_payload(payload);
            // Consume the frame even on error so the decoder state stays consistent.
            self.start += frame.framed_len;
            self.scanned = self.start;
            if let Some(msg) = decoded? {
                return Ok(Some(msg));
            }
            // Unknown message type: ignored, try the next one.
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let avail = self.buf.len() - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let limit = self.max_message_size;
        let too_large = ProtocolError::MessageTooLarge { limit };
        match self.kind {
            ProtocolKind::Json => {
                let from = self.scanned.max(self.start);
                match self.buf[from..].iter().position(|&b| b == RECORD_SEPARATOR) {
                    Some(i) => {
                        let sep = from + i;
                        let framed_len = sep + 1 - self.start;
                        if framed_len > limit {
                            return Err(too_large);
                        }
                        Ok(Some(Frame { payload_start: self.start, payload_end: sep, framed_len }))
                    }
                    None => {
                        self.scanned = self.buf.len();
                        // Even if the separator came next, the record would exceed the limit.
                        if avail >= limit {
                            return Err(too_large);
                        }
                        Ok(None)
                    }
                }
            }
            ProtocolKind::MessagePack => match read_varint(&self.buf[self.start..])? {
                Some((len, prefix)) => {
                    let framed_len = prefix + len;
                    if framed_len > limit {
                        return Err(too_large);
                    }
                    if avail < framed_len {
                        return Ok(None);
                    }
                    Ok(Some(Frame {
                        payload_start: self.start + prefix,
                        payload_end: self.start + framed_len,
                        framed_len,
                    }))
                }
                None if avail >= limit => Err(too_large),
                None => Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signalr::protocol::Value;

    /// `serde_json::json!`, as a hub [`Value`].
    macro_rules! json {
        ($($t:tt)*) => { Value::from(serde_json::json!($($t)*)) };
    }

    #[test]
    fn text_records() {
        assert_eq!(split_text_record(b"abc"), None);
        assert_eq!(split_text_record(b"a\x1eb\x1e"), Some((&b"a"[..], &b"b\x1e"[..])));
        assert_eq!(split_text_record(b"\x1e"), Some((&b""[..], &b""[..])));
    }

    #[test]
    fn varint_boundaries() {
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (53, &[0x35]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (5248, &[0x80, 0x29]),
            (16383, &[0xff, 0x7f]),
            (16384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
            (268_435_456, &[0x80, 0x80, 0x80, 0x80, 0x01]),
            (0x7fff_ffff, &[0xff, 0xff, 0xff, 0xff, 0x07]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            write_varint(value, &mut out).unwrap();
            assert_eq!(out, bytes, "encode {value}");
            assert_eq!(read_varint(bytes).unwrap(), Some((value, bytes.len())), "decode {value}");
            // Every strict prefix is incomplete, not an error.
            for cut in 0..bytes.len() {
                assert_eq!(read_varint(&bytes[..cut]).unwrap(), None);
            }
            // Trailing bytes are not part of the prefix.
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(&[0xff, 0xff]);
            assert_eq!(read_varint(&longer).unwrap(), Some((value, bytes.len())));
        }
        assert!(write_varint(0x8000_0000, &mut Vec::new()).is_err());
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0x08][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ] {
            assert!(matches!(read_varint(bad), Err(ProtocolError::InvalidLengthPrefix)));
        }
    }

    #[test]
    fn binary_frames() {
        assert_eq!(split_binary_frame(b"").unwrap(), None);
        assert_eq!(split_binary_frame(&[0x02, 0x91]).unwrap(), None);
        assert_eq!(split_binary_frame(&[0x02, 0x91, 0x06, 0x00]).unwrap(), Some((&[0x91, 0x06][..], &[0x00][..])));
        // The spec's framing example: "Hello\nWorld" then 0x01 0x02.
        let data = b"\x0bHello\nWorld\x02\x01\x02";
        let (a, rest) = split_binary_frame(data).unwrap().unwrap();
        assert_eq!(a, b"Hello\nWorld");
        let (b, rest) = split_binary_frame(rest).unwrap().unwrap();
        assert_eq!(b, &[1, 2]);
        assert!(rest.is_empty());
    }

    fn messages() -> Vec<HubMessage> {
        vec![
            HubMessage::invocation_with_id("1", "Send", vec![json!("héllo"), json!([1, 2])]),
            HubMessage::Ping,
            HubMessage::stream_item("2", json!({"k": -3})),
            HubMessage::completion_error("1", "bad"),
            HubMessage::close(Some("x".into()), true),
        ]
    }

    fn drain(dec: &mut MessageDecoder) -> Vec<HubMessage> {
        let mut v = Vec::new();
        while let Some(m) = dec.next_message().unwrap() {
            v.push(m);
        }
        v
    }

    #[test]
    fn several_messages_in_one_buffer() {
        for kind in ProtocolKind::ALL {
            let mut bytes = Vec::new();
            super::super::encode_many(kind, &messages(), &mut bytes).unwrap();
            let mut dec = MessageDecoder::new(kind, 1 << 20);
            dec.push(&bytes);
            assert_eq!(drain(&mut dec), messages());
            assert_eq!(dec.buffered_len(), 0);
        }
    }

    #[test]
    fn split_at_every_offset() {
        for kind in ProtocolKind::ALL {
            let mut bytes = Vec::new();
            super::super::encode_many(kind, &messages(), &mut bytes).unwrap();
            for cut in 0..=bytes.len() {
                let mut dec = MessageDecoder::new(kind, 1 << 20);
                dec.push(&bytes[..cut]);
                let mut got = drain(&mut dec);
                dec.push(&bytes[cut..]);
                got.extend(drain(&mut dec));
                assert_eq!(got, messages(), "{kind:?} cut at {cut}");
            }
            // And one byte at a time.
            let mut dec = MessageDecoder::new(kind, 1 << 20);
            let mut got = Vec::new();
            for b in &bytes {
                dec.push(std::slice::from_ref(b));
                got.extend(drain(&mut dec));
            }
            assert_eq!(got, messages(), "{kind:?} byte by byte");
            assert_eq!(dec.buffered_len(), 0);
        }
    }

    #[test]
    fn msgpack_sizes_around_varint_boundaries() {
        // Body = 0x94 0x02 0x80 0xa1 'x' + string; vary the string so the body crosses 127/128
        // and 16383/16384.
        for target in [120..136, 16375..16392] {
            for n in target {
                let msg = HubMessage::stream_item("x", json!("a".repeat(n)));
                let bytes = ProtocolKind::MessagePack.encode_to_vec(&msg).unwrap();
                let (body_len, prefix) = read_varint(&bytes).unwrap().unwrap();
                assert_eq!(prefix + body_len, bytes.len());
                assert_eq!(
                    prefix,
                    if body_len < 128 {
                        1
                    } else if body_len < 16384 {
                        2
                    } else {
                        3
                    }
                );
                let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, bytes.len());
                dec.push(&bytes);
                assert_eq!(dec.next_message().unwrap(), Some(msg));
            }
        }
    }

    #[test]
    fn limit_is_inclusive_of_framing() {
        for kind in ProtocolKind::ALL {
            let msg = HubMessage::invocation("Send", vec![json!("payload")]);
            let bytes = kind.encode_to_vec(&msg).unwrap();
            let mut ok = MessageDecoder::new(kind, bytes.len());
            ok.push(&bytes);
            assert_eq!(ok.next_message().unwrap(), Some(msg));
            let mut too_small = MessageDecoder::new(kind, bytes.len() - 1);
            too_small.push(&bytes);
            assert!(matches!(
                too_small.next_message(),
                Err(ProtocolError::MessageTooLarge { limit }) if limit == bytes.len() - 1
            ));
        }
    }

    #[test]
    fn msgpack_oversize_rejected_from_prefix_alone() {
        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 32 * 1024);
        // Prefix announcing 1 MiB, no body yet.
        let mut prefix = Vec::new();
        write_varint(1 << 20, &mut prefix).unwrap();
        dec.push(&prefix);
        assert!(matches!(dec.next_message(), Err(ProtocolError::MessageTooLarge { limit: 32768 })));
        // Even a partial prefix is enough once it cannot fit.
        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 2);
        dec.push(&[0x80, 0x80]);
        assert!(matches!(dec.next_message(), Err(ProtocolError::MessageTooLarge { .. })));
    }

    #[test]
    fn json_oversize_rejected_before_separator() {
        let mut dec = MessageDecoder::new(ProtocolKind::Json, 100);
        dec.push(&[b' '; 60]);
        assert_eq!(dec.next_message().unwrap(), None);
        dec.push(&[b' '; 40]);
        assert!(matches!(dec.next_message(), Err(ProtocolError::MessageTooLarge { limit: 100 })));
        // A first small message passes, the oversized second one fails.
        let mut dec = MessageDecoder::new(ProtocolKind::Json, 20);
        dec.push(b"{\"type\":6}\x1e{\"type\":1,\"target\":\"xxxxxxxxxxxxxxxx");
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));
        assert!(dec.next_message().is_err());
    }

    #[test]
    fn bad_length_prefix() {
        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, usize::MAX);
        dec.push(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(dec.next_message(), Err(ProtocolError::InvalidLengthPrefix)));
    }

    #[test]
    fn unknown_types_are_skipped() {
        let mut dec = MessageDecoder::new(ProtocolKind::Json, 1024);
        dec.push(b"{\"type\":42,\"x\":1}\x1e{\"type\":6}\x1e");
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));
        assert_eq!(dec.next_message().unwrap(), None);

        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 1024);
        dec.push(&[0x02, 0x91, 0x63, 0x02, 0x91, 0x06]);
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));
        assert_eq!(dec.next_message().unwrap(), None);
    }

    #[test]
    fn garbage_and_truncation() {
        let mut dec = MessageDecoder::new(ProtocolKind::Json, 1024);
        dec.push(b"garbage\x1e{\"type\":6}\x1e");
        assert!(matches!(dec.next_message(), Err(ProtocolError::Json(_))));
        // The bad record was consumed; the decoder is still coherent.
        assert_eq!(dec.next_message().unwrap(), Some(HubMessage::Ping));

        let mut dec = MessageDecoder::new(ProtocolKind::Json, 1024);
        dec.push(b"\x1e");
        assert!(dec.next_message().is_err());

        // Frame complete but the array claims more elements than it has.
        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 1024);
        dec.push(&[0x04, 0x96, 0x01, 0x80, 0xc0]);
        let err = dec.next_message().unwrap_err();
        assert_eq!(err.to_string(), "Reading 'target' as String failed.");

        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 1024);
        dec.push(&[0x03, 0xde, 0xad, 0xbe]);
        assert!(matches!(dec.next_message(), Err(ProtocolError::InvalidMessage(_))));

        let mut dec = MessageDecoder::new(ProtocolKind::MessagePack, 1024);
        dec.push(&[0x00]);
        assert!(dec.next_message().is_err());
    }

    #[test]
    fn compaction_keeps_partial_data() {
        let kind = ProtocolKind::Json;
        let frame = kind.encode_to_vec(&HubMessage::Ping).unwrap();
        let mut dec = MessageDecoder::new(kind, 1024);
        let mut stream = Vec::new();
        for _ in 0..50 {
            stream.extend_from_slice(&frame);
        }
        let mut count = 0;
        for chunk in stream.chunks(7) {
            dec.push(chunk);
            count += drain(&mut dec).len();
            assert!(dec.buffered_len() < frame.len());
        }
        assert_eq!(count, 50);
    }
}
