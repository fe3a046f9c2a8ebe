//! MessagePack hub protocol: each message is an array whose first item is the type, framed with
//! a varint length prefix.
//!
//! Written by hand (no MessagePack crate) because only a small, fixed subset is needed and the
//! encoder must write straight into a shared output buffer. Layouts and error texts follow
//! ASP.NET's `MessagePackHubProtocolWorker`.
//!
//! Values convert to and from [`Value`]: `bin` (8/16/32) is [`Value::Binary`] and the timestamp
//! extension (-1, in its 32, 64 and 96-bit forms) is [`Value::Timestamp`], as ASP.NET sends .NET
//! `byte[]` and `DateTime`. Other extension types, non-string map keys, NaN/infinite floats and
//! instants beyond chrono's range (about ±262,000 years) are rejected with
//! [`ProtocolError::InvalidMessage`]. `float32` widens exactly to f64; floats encode as `float64`,
//! integers, bins and timestamps in their smallest encoding.
//!
//! The encoding is lossless for every [`HubMessage`], so `write_body` + `decode` also serve to
//! carry hub messages between processes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::value::Number;

use super::framing::{encode_varint, MAX_VARINT_LEN};
use super::message::message_type as mt;
use super::{invalid, CompletionResult, Headers, HubMessage, ProtocolError, Value};

const RESULT_KIND_ERROR: u8 = 1;
const RESULT_KIND_VOID: u8 = 2;
const RESULT_KIND_VALUE: u8 = 3;

/// The MessagePack extension type of timestamps.
const TIMESTAMP_EXT: i8 = -1;

/// Deepest nesting of arrays/maps accepted in a value, so a small hostile message cannot
/// exhaust the stack (serde_json applies the same bound to JSON).
pub const MAX_DEPTH: usize = 128;

/// Appends one framed message (varint length + body) to `out`.
///
/// The body is written after a 5-byte placeholder and moved back once its length is known:
/// one memmove instead of a temporary buffer.
pub fn encode(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&[0; MAX_VARINT_LEN]);
    let body_start = start + MAX_VARINT_LEN;
    let framed = write_body(msg, out).and_then(|()| encode_varint(out.len() - body_start));
    let (prefix, n) = match framed {
        Ok(p) => p,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out[start..start + n].copy_from_slice(&prefix[..n]);
    if n < MAX_VARINT_LEN {
        out.copy_within(body_start.., start + n);
        out.truncate(out.len() - (MAX_VARINT_LEN - n));
    }
    Ok(())
}

/// Appends the message body alone (no length prefix).
pub fn write_body(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match msg {
        HubMessage::Invocation { invocation_id, target, arguments, stream_ids, headers } => {
            out.extend_from_slice(&[0x96, mt::INVOCATION]);
            write_headers(headers, out)?;
            match invocation_id.as_deref().filter(|id| !id.is_empty()) {
                Some(id) => write_str(id, out)?,
                None => out.push(0xc0),
            }
            write_str(target, out)?;
            write_array(arguments, out)?;
            write_str_array(stream_ids, out)?;
        }
        HubMessage::StreamInvocation { invocation_id, target, arguments, stream_ids, headers } => {
            out.extend_from_slice(&[0x96, mt::STREAM_INVOCATION]);
            write_headers(headers, out)?;
            write_str(invocation_id, out)?;
            write_str(target, out)?;
            write_array(arguments, out)?;
            write_str_array(stream_ids, out)?;
        }
        HubMessage::StreamItem { invocation_id, item, headers } => {
            out.extend_from_slice(&[0x94, mt::STREAM_ITEM]);
            write_headers(headers, out)?;
            write_str(invocation_id, out)?;
            write_value(item, out)?;
        }
        HubMessage::Completion { invocation_id, result, headers } => {
            let len = if matches!(result, CompletionResult::Void) { 0x94 } else { 0x95 };
            out.extend_from_slice(&[len, mt::COMPLETION]);
            write_headers(headers, out)?;
            write_str(invocation_id, out)?;
            match result {
                CompletionResult::Error(e) => {
                    out.push(RESULT_KIND_ERROR);
                    write_str(e, out)?;
                }
                CompletionResult::Void => out.push(RESULT_KIND_VOID),
                CompletionResult::Value(v) => {
                    out.push(RESULT_KIND_VALUE);
                    write_value(v, out)?;
                }
            }
        }
        HubMessage::CancelInvocation { invocation_id, headers } => {
            out.extend_from_slice(&[0x93, mt::CANCEL_INVOCATION]);
            write_headers(headers, out)?;
            write_str(invocation_id, out)?;
        }
        HubMessage::Ping => out.extend_from_slice(&[0x91, mt::PING]),
        HubMessage::Close { error, allow_reconnect } => {
            // Always 3 items; an empty error goes out as nil, as in ASP.NET.
            out.extend_from_slice(&[0x93, mt::CLOSE]);
            match error.as_deref().filter(|e| !e.is_empty()) {
                Some(e) => write_str(e, out)?,
                None => out.push(0xc0),
            }
            out.push(if *allow_reconnect { 0xc3 } else { 0xc2 });
        }
        HubMessage::Ack { sequence_id } => {
            out.extend_from_slice(&[0x92, mt::ACK]);
            write_uint(*sequence_id, out);
        }
        HubMessage::Sequence { sequence_id } => {
            out.extend_from_slice(&[0x92, mt::SEQUENCE]);
            write_uint(*sequence_id, out);
        }
    }
    Ok(())
}

fn write_headers(headers: &Headers, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    write_len(headers.len(), [0x80, 0xde, 0xdf], 16, out)?;
    for (k, v) in headers {
        write_str(k, out)?;
        write_str(v, out)?;
    }
    Ok(())
}

fn write_array(values: &[Value], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    write_len(values.len(), [0x90, 0xdc, 0xdd], 16, out)?;
    values.iter().try_for_each(|v| write_value(v, out))
}

fn write_str_array(values: &[String], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    write_len(values.len(), [0x90, 0xdc, 0xdd], 16, out)?;
    values.iter().try_for_each(|v| write_str(v, out))
}

/// Writes a container/str length: fix form below `fix_limit`, else 16- or 32-bit form.
fn write_len(len: usize, [fix, m16, m32]: [u8; 3], fix_limit: usize, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    if len < fix_limit {
        out.push(fix | len as u8);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(m16);
        out.extend_from_slice(&l.to_be_bytes());
    } else if let Ok(l) = u32::try_from(len) {
        out.push(m32);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        return Err(ProtocolError::Encode(format!("Cannot encode a MessagePack item of length {len}.")));
    }
    Ok(())
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let len = s.len();
    if (32..=0xff).contains(&len) {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else {
        write_len(len, [0xa0, 0xda, 0xdb], 32, out)?;
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn write_uint(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
    } else if let Ok(b) = u8::try_from(v) {
        out.extend_from_slice(&[0xcc, b]);
    } else if let Ok(w) = u16::try_from(v) {
        out.push(0xcd);
        out.extend_from_slice(&w.to_be_bytes());
    } else if let Ok(d) = u32::try_from(v) {
        out.push(0xce);
        out.extend_from_slice(&d.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn write_sint(v: i64, out: &mut Vec<u8>) {
    if v >= 0 {
        write_uint(v as u64, out);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[0xd0, b as u8]);
    } else if let Ok(w) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&w.to_be_bytes());
    } else if let Ok(d) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&d.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends bytes as `bin` 8, 16 or 32, whichever is smallest.
fn write_bin(b: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let len = b.len();
    if let Ok(l) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, l]);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(0xc5);
        out.extend_from_slice(&l.to_be_bytes());
    } else if let Ok(l) = u32::try_from(len) {
        out.push(0xc6);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        return Err(ProtocolError::Encode(format!("Cannot encode a MessagePack item of length {len}.")));
    }
    out.extend_from_slice(b);
    Ok(())
}

/// Appends an instant as the timestamp extension, in the smallest of its three forms (as the spec
/// and MessagePack-CSharp do): 32-bit seconds when there is no fraction and the seconds fit, 64-bit
/// (30-bit nanoseconds, 34-bit seconds) when the seconds fit 34 bits, else 96-bit.
fn write_timestamp(t: &DateTime<Utc>, out: &mut Vec<u8>) {
    let secs = t.timestamp();
    // chrono represents a leap second as nanoseconds past 1e9; the format cannot.
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    let ext = TIMESTAMP_EXT as u8;
    match u64::try_from(secs) {
        Ok(s) if s >> 32 == 0 && nanos == 0 => {
            out.extend_from_slice(&[0xd6, ext]);
            out.extend_from_slice(&(s as u32).to_be_bytes());
        }
        Ok(s) if s >> 34 == 0 => {
            out.extend_from_slice(&[0xd7, ext]);
            out.extend_from_slice(&((u64::from(nanos) << 34) | s).to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&[0xc7, 12, ext]);
            out.extend_from_slice(&nanos.to_be_bytes());
            out.extend_from_slice(&secs.to_be_bytes());
        }
    }
}

/// Appends `value` as MessagePack: integers in their smallest form, other numbers as float64,
/// objects as maps with string keys, bytes as `bin`, instants as timestamps.
pub fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_uint(u, out);
            } else if let Some(i) = n.as_i64() {
                write_sint(i, out);
            } else if let Some(f) = n.as_f64() {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            } else {
                return Err(ProtocolError::Encode(format!("Cannot encode the number {n} as MessagePack.")));
            }
        }
        Value::String(s) => write_str(s, out)?,
        Value::Binary(b) => write_bin(b, out)?,
        Value::Timestamp(t) => write_timestamp(t, out),
        Value::Array(a) => write_array(a, out)?,
        Value::Object(m) => {
            write_len(m.len(), [0x80, 0xde, 0xdf], 16, out)?;
            for (k, v) in m {
                write_str(k, out)?;
                write_value(v, out)?;
            }
        }
    }
    Ok(())
}

/// Byte cursor; `None` from a read means end of data or an unexpected format code.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    fn len16(&mut self) -> Option<usize> {
        self.be::<2>().map(|b| usize::from(u16::from_be_bytes(b)))
    }

    fn len32(&mut self) -> Option<usize> {
        self.be::<4>().map(|b| u32::from_be_bytes(b) as usize)
    }

    fn array_len(&mut self) -> Option<usize> {
        match self.u8()? {
            b @ 0x90..=0x9f => Some(usize::from(b & 0x0f)),
            0xdc => self.len16(),
            0xdd => self.len32(),
            _ => None,
        }
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.u8()? {
            b @ 0x80..=0x8f => Some(usize::from(b & 0x0f)),
            0xde => self.len16(),
            0xdf => self.len32(),
            _ => None,
        }
    }

    /// Any integer format, widened.
    fn int(&mut self) -> Option<i128> {
        let b = self.u8()?;
        Some(match b {
            0x00..=0x7f => i128::from(b),
            0xe0..=0xff => i128::from(b as i8),
            0xcc => i128::from(self.u8()?),
            0xcd => i128::from(u16::from_be_bytes(self.be()?)),
            0xce => i128::from(u32::from_be_bytes(self.be()?)),
            0xcf => i128::from(u64::from_be_bytes(self.be()?)),
            0xd0 => i128::from(self.u8()? as i8),
            0xd1 => i128::from(i16::from_be_bytes(self.be()?)),
            0xd2 => i128::from(i32::from_be_bytes(self.be()?)),
            0xd3 => i128::from(i64::from_be_bytes(self.be()?)),
            _ => return None,
        })
    }

    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0xc2 => Some(false),
            0xc3 => Some(true),
            _ => None,
        }
    }

    /// `Some(None)` for nil, `Some(Some(s))` for a valid UTF-8 str.
    fn str_or_nil(&mut self) -> Option<Option<&'a str>> {
        let len = match self.u8()? {
            0xc0 => return Some(None),
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => usize::from(self.u8()?),
            0xda => self.len16()?,
            0xdb => self.len32()?,
            _ => return None,
        };
        std::str::from_utf8(self.bytes(len)?).ok().map(Some)
    }
}

/// Reads one MessagePack value from the start of `buf`; returns it and the bytes it used.
pub fn read_value(buf: &[u8]) -> Result<(Value, usize), ProtocolError> {
    let mut r = Reader { buf, pos: 0 };
    let v = value(&mut r, 0, "value")?;
    Ok((v, r.pos))
}

fn value(r: &mut Reader<'_>, depth: usize, field: &str) -> Result<Value, ProtocolError> {
    let eof = || invalid(format!("Unexpected end of MessagePack data while reading '{field}'."));
    let b = r.u8().ok_or_else(eof)?;
    match b {
        0x00..=0x7f => Ok(Value::from(b)),
        0x80..=0x8f => map(r, usize::from(b & 0x0f), depth, field),
        0x90..=0x9f => array(r, usize::from(b & 0x0f), depth, field),
        0xa0..=0xbf => string(r, usize::from(b & 0x1f), field),
        0xc0 => Ok(Value::Null),
        0xc1 => Err(invalid(format!("Invalid MessagePack format code 0xc1 in '{field}'."))),
        0xc2 => Ok(Value::Bool(false)),
        0xc3 => Ok(Value::Bool(true)),
        0xc4..=0xc6 => {
            let len = match b {
                0xc4 => r.u8().map(usize::from),
                0xc5 => r.len16(),
                _ => r.len32(),
            }
            .ok_or_else(eof)?;
            Ok(Value::Binary(r.bytes(len).ok_or_else(eof)?.to_vec()))
        }
        0xc7..=0xc9 | 0xd4..=0xd8 => {
            let len = match b {
                0xc7 => r.u8().map(usize::from),
                0xc8 => r.len16(),
                0xc9 => r.len32(),
                _ => Some(1 << (b - 0xd4)),
            }
            .ok_or_else(eof)?;
            let ext_type = r.u8().ok_or_else(eof)? as i8;
            let data = r.bytes(len).ok_or_else(eof)?;
            if ext_type != TIMESTAMP_EXT {
                return Err(invalid(format!("MessagePack extension type {ext_type} in '{field}' is not supported.")));
            }
            timestamp(data, field).map(Value::Timestamp)
        }
        0xca => {
            let f = f32::from_be_bytes(r.be().ok_or_else(eof)?);
            float(f64::from(f), field)
        }
        0xcb => float(f64::from_be_bytes(r.be().ok_or_else(eof)?), field),
        0xcc..=0xd3 => {
            r.pos -= 1;
            let i = r.int().ok_or_else(eof)?;
            Ok(match u64::try_from(i) {
                Ok(u) => Value::from(u),
                // Signed formats only reach i64, so this cannot truncate.
                Err(_) => Value::from(i as i64),
            })
        }
        0xd9 => {
            let len = r.u8().ok_or_else(eof)?;
            string(r, usize::from(len), field)
        }
        0xda => {
            let len = r.len16().ok_or_else(eof)?;
            string(r, len, field)
        }
        0xdb => {
            let len = r.len32().ok_or_else(eof)?;
            string(r, len, field)
        }
        0xdc => {
            let len = r.len16().ok_or_else(eof)?;
            array(r, len, depth, field)
        }
        0xdd => {
            let len = r.len32().ok_or_else(eof)?;
            array(r, len, depth, field)
        }
        0xde => {
            let len = r.len16().ok_or_else(eof)?;
            map(r, len, depth, field)
        }
        0xdf => {
            let len = r.len32().ok_or_else(eof)?;
            map(r, len, depth, field)
        }
        0xe0..=0xff => Ok(Value::from(b as i8)),
    }
}

/// Reads a timestamp extension's data by its length, as MessagePack-CSharp does: 4 bytes of
/// seconds; 8 bytes of 30-bit nanoseconds and 34-bit seconds; 4 bytes of nanoseconds then 8 of
/// signed seconds.
fn timestamp(data: &[u8], field: &str) -> Result<DateTime<Utc>, ProtocolError> {
    let (secs, nanos) = match *data {
        [a, b, c, d] => (i64::from(u32::from_be_bytes([a, b, c, d])), 0),
        [a, b, c, d, e, f, g, h] => {
            let v = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
            ((v & ((1 << 34) - 1)) as i64, (v >> 34) as u32)
        }
        [a, b, c, d, e, f, g, h, i, j, k, l] => {
            (i64::from_be_bytes([e, f, g, h, i, j, k, l]), u32::from_be_bytes([a, b, c, d]))
        }
        _ => {
            return Err(invalid(format!(
                "Invalid MessagePack timestamp of {} bytes in '{field}' (expected 4, 8 or 12).",
                data.len()
            )))
        }
    };
    if nanos > 999_999_999 {
        return Err(invalid(format!("Invalid MessagePack timestamp in '{field}': nanoseconds out of range.")));
    }
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| invalid(format!("The MessagePack timestamp in '{field}' is out of the supported range.")))
}

fn float(f: f64, field: &str) -> Result<Value, ProtocolError> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| {
        invalid(format!(
            "The floating point value {f} in '{field}' cannot be represented (NaN and infinities are not supported)."
        ))
    })
}

fn string(r: &mut Reader<'_>, len: usize, field: &str) -> Result<Value, ProtocolError> {
    let bytes =
        r.bytes(len).ok_or_else(|| invalid(format!("Unexpected end of MessagePack data while reading '{field}'.")))?;
    std::str::from_utf8(bytes)
        .map(|s| Value::String(s.to_owned()))
        .map_err(|_| invalid(format!("Invalid UTF-8 string in '{field}'.")))
}

fn check_depth(depth: usize, field: &str) -> Result<(), ProtocolError> {
    if depth >= MAX_DEPTH {
        return Err(invalid(format!("The value in '{field}' is nested deeper than {MAX_DEPTH} levels.")));
    }
    Ok(())
}

fn array(r: &mut Reader<'_>, len: usize, depth: usize, field: &str) -> Result<Value, ProtocolError> {
    check_depth(depth, field)?;
    // Each element takes at least one byte: never trust a huge announced length.
    let mut items = Vec::with_capacity(len.min(r.remaining()));
    for _ in 0..len {
        items.push(value(r, depth + 1, field)?);
    }
    Ok(Value::Array(items))
}

fn map(r: &mut Reader<'_>, len: usize, depth: usize, field: &str) -> Result<Value, ProtocolError> {
    check_depth(depth, field)?;
    let mut m = BTreeMap::new();
    for _ in 0..len {
        let key = match value(r, depth + 1, field)? {
            Value::String(s) => s,
            other => {
                return Err(invalid(format!(
                    "MessagePack map keys must be strings, found {} in '{field}'.",
                    other.kind_name()
                )))
            }
        };
        let v = value(r, depth + 1, field)?;
        m.insert(key, v);
    }
    Ok(Value::Object(m))
}

/// Top-level array items: reading past the announced count fails like reading bad data.
struct Fields<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Fields<'a> {
    fn next<T>(
        &mut self,
        read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
        err: impl FnOnce() -> String,
    ) -> Result<T, ProtocolError> {
        if self.left == 0 {
            return Err(invalid(err()));
        }
        self.left -= 1;
        read(&mut self.r).ok_or_else(|| invalid(err()))
    }

    fn next_value(&mut self, field: &str) -> Result<Value, ProtocolError> {
        if self.left == 0 {
            return Err(invalid(format!("Unexpected end of MessagePack data while reading '{field}'.")));
        }
        self.left -= 1;
        value(&mut self.r, 0, field)
    }

    fn has_more(&self) -> bool {
        self.left > 0
    }

    fn string(&mut self, field: &str) -> Result<Option<&'a str>, ProtocolError> {
        self.next(|r| r.str_or_nil(), || format!("Reading '{field}' as String failed."))
    }

    fn int32(&mut self, field: &str) -> Result<i32, ProtocolError> {
        self.next(|r| r.int().and_then(|i| i32::try_from(i).ok()), || format!("Reading '{field}' as Int32 failed."))
    }

    fn headers(&mut self) -> Result<Headers, ProtocolError> {
        let n = self.next(|r| r.map_len(), || "Reading map length for 'headers' failed.".to_string())?;
        let mut headers = Headers::with_capacity(n.min(self.r.remaining() / 2));
        for i in 0..n {
            let key =
                self.r.str_or_nil().ok_or_else(|| invalid(format!("Reading 'headers[{i}].Key' as String failed.")))?;
            let key = non_empty(key).ok_or_else(|| invalid("Null or empty key in header."))?;
            let val = self
                .r
                .str_or_nil()
                .ok_or_else(|| invalid(format!("Reading 'headers[{i}].Value' as String failed.")))?;
            let val = non_empty(val).ok_or_else(|| invalid("Null or empty value in header."))?;
            headers.insert(key.to_owned(), val.to_owned());
        }
        Ok(headers)
    }

    fn invocation_id(&mut self, message: &str) -> Result<String, ProtocolError> {
        non_empty(self.string("invocationId")?)
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("Null or empty invocation ID for {message} message.")))
    }

    fn target(&mut self, message: &str) -> Result<String, ProtocolError> {
        non_empty(self.string("target")?)
            .map(str::to_owned)
            .ok_or_else(|| invalid(format!("Null or empty target for {message} message.")))
    }

    fn arguments(&mut self) -> Result<Vec<Value>, ProtocolError> {
        let n = self.next(|r| r.array_len(), || "Reading array length for 'arguments' failed.".to_string())?;
        let mut args = Vec::with_capacity(n.min(self.r.remaining()));
        for _ in 0..n {
            args.push(value(&mut self.r, 0, "arguments")?);
        }
        Ok(args)
    }

    /// Optional trailing streamIds (older clients send 5-item invocations without it).
    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        if !self.has_more() {
            return Ok(Vec::new());
        }
        let n = self.next(|r| r.array_len(), || "Reading array length for 'streamIds' failed.".to_string())?;
        let mut ids = Vec::with_capacity(n.min(self.r.remaining()));
        for _ in 0..n {
            let id = self.r.str_or_nil().ok_or_else(|| invalid("Reading 'streamIds' as String failed."))?;
            let id = non_empty(id).ok_or_else(|| invalid("Null or empty value in streamIds received."))?;
            ids.push(id.to_owned());
        }
        Ok(ids)
    }

    fn sequence_id(&mut self) -> Result<u64, ProtocolError> {
        let i = self.next(|r| r.int(), || "Reading 'sequenceId' as Int64 failed.".to_string())?;
        u64::try_from(i).map_err(|_| invalid("Expected 'sequenceId' to be a non-negative integer."))
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Decodes one message body (without its length prefix). `Ok(None)` for an unknown message
/// type, which the caller must ignore. Items after the ones this version knows are ignored.
pub fn decode(body: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    let mut r = Reader { buf: body, pos: 0 };
    let count = r.array_len().ok_or_else(|| invalid("Expected the message to be a MessagePack array."))?;
    let mut f = Fields { r, left: count };
    let msg_type = f.int32("messageType")?;
    let msg = match u8::try_from(msg_type).unwrap_or(0) {
        mt::INVOCATION => {
            let headers = f.headers()?;
            // Nil or empty id both mean a non-blocking invocation.
            let invocation_id = non_empty(f.string("invocationId")?).map(str::to_owned);
            HubMessage::Invocation {
                invocation_id,
                target: f.target("Invocation")?,
                arguments: f.arguments()?,
                stream_ids: f.stream_ids()?,
                headers,
            }
        }
        mt::STREAM_INVOCATION => {
            let headers = f.headers()?;
            HubMessage::StreamInvocation {
                invocation_id: f.invocation_id("StreamInvocation")?,
                target: f.target("StreamInvocation")?,
                arguments: f.arguments()?,
                stream_ids: f.stream_ids()?,
                headers,
            }
        }
        mt::STREAM_ITEM => {
            let headers = f.headers()?;
            HubMessage::StreamItem {
                invocation_id: f.invocation_id("StreamItem")?,
                item: f.next_value("item")?,
                headers,
            }
        }
        mt::COMPLETION => {
            let headers = f.headers()?;
            let invocation_id = f.invocation_id("Completion")?;
            let kind = f.int32("resultKind")?;
            let result = match u8::try_from(kind).unwrap_or(0) {
                // A nil error reads as "no error" in ASP.NET, i.e. a void completion.
                RESULT_KIND_ERROR => match f.string("error")? {
                    Some(e) => CompletionResult::Error(e.to_owned()),
                    None => CompletionResult::Void,
                },
                RESULT_KIND_VOID => CompletionResult::Void,
                RESULT_KIND_VALUE => CompletionResult::Value(f.next_value("result")?),
                _ => return Err(invalid("Invalid invocation result kind.")),
            };
            HubMessage::Completion { invocation_id, result, headers }
        }
        mt::CANCEL_INVOCATION => {
            let headers = f.headers()?;
            HubMessage::CancelInvocation { invocation_id: f.invocation_id("CancelInvocation")?, headers }
        }
        mt::PING => HubMessage::Ping,
        mt::CLOSE => {
            let error = f.string("error")?.map(str::to_owned);
            let allow_reconnect = if f.has_more() {
                f.next(|r| r.bool(), || "Reading 'allowReconnect' as Boolean failed.".into())?
            } else {
                false
            };
            HubMessage::Close { error, allow_reconnect }
        }
        mt::ACK => HubMessage::Ack { sequence_id: f.sequence_id()? },
        mt::SEQUENCE => HubMessage::Sequence { sequence_id: f.sequence_id()? },
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::json!`, as a hub [`Value`].
    macro_rules! json {
        ($($t:tt)*) => { Value::from(serde_json::json!($($t)*)) };
    }

    fn body(msg: &HubMessage) -> Vec<u8> {
        let mut out = Vec::new();
        write_body(msg, &mut out).unwrap();
        out
    }

    fn dec(bytes: &[u8]) -> Option<HubMessage> {
        decode(bytes).unwrap()
    }

    fn dec_err(bytes: &[u8]) -> String {
        decode(bytes).unwrap_err().to_string()
    }

    const XYZ: [u8; 4] = [0xa3, b'x', b'y', b'z'];
    const METHOD: [u8; 7] = [0xa6, b'm', b'e', b't', b'h', b'o', b'd'];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn spec_examples_encode_and_decode() {
        let cases: Vec<(HubMessage, Vec<u8>)> = vec![
            (
                HubMessage::invocation_with_id("xyz", "method", vec![json!(42)]),
                cat(&[&[0x96, 0x01, 0x80], &XYZ, &METHOD, &[0x91, 0x2a, 0x90]]),
            ),
            (
                HubMessage::invocation("method", vec![json!(42)]),
                cat(&[&[0x96, 0x01, 0x80, 0xc0], &METHOD, &[0x91, 0x2a, 0x90]]),
            ),
            (
                HubMessage::stream_invocation("xyz", "method", vec![json!(42)]),
                cat(&[&[0x96, 0x04, 0x80], &XYZ, &METHOD, &[0x91, 0x2a, 0x90]]),
            ),
            (HubMessage::stream_item("xyz", json!(42)), cat(&[&[0x94, 0x02, 0x80], &XYZ, &[0x2a]])),
            (HubMessage::completion_error("xyz", "Error"), cat(&[&[0x95, 0x03, 0x80], &XYZ, &[0x01, 0xa5], b"Error"])),
            (HubMessage::completion_void("xyz"), cat(&[&[0x94, 0x03, 0x80], &XYZ, &[0x02]])),
            (HubMessage::completion_result("xyz", json!(42)), cat(&[&[0x95, 0x03, 0x80], &XYZ, &[0x03, 0x2a]])),
            (HubMessage::cancel_invocation("xyz"), cat(&[&[0x93, 0x05, 0x80], &XYZ])),
            (HubMessage::Ping, vec![0x91, 0x06]),
            (HubMessage::close(Some("xyz".into()), true), cat(&[&[0x93, 0x07], &XYZ, &[0xc3]])),
            (
                HubMessage::invocation_with_id("xyz", "method", vec![json!(42)])
                    .with_headers([("x".to_string(), "y".to_string())].into()),
                cat(&[&[0x96, 0x01, 0x81, 0xa1, b'x', 0xa1, b'y'], &XYZ, &METHOD, &[0x91, 0x2a, 0x90]]),
            ),
        ];
        for (msg, bytes) in cases {
            assert_eq!(body(&msg), bytes, "{msg:?}");
            assert_eq!(dec(&bytes), Some(msg));
        }
    }

    #[test]
    fn spec_examples_decode_only() {
        // Two-item Close from older peers.
        assert_eq!(dec(&cat(&[&[0x92, 0x07], &XYZ])), Some(HubMessage::close(Some("xyz".into()), false)));
        // Non-minimal integer encodings are fine ("any unsigned int size is fine").
        assert_eq!(dec(&[0x92, 0x08, 0xcc, 0x24]), Some(HubMessage::ack(36)));
        assert_eq!(dec(&[0x92, 0x09, 0xcc, 0x13]), Some(HubMessage::sequence(19)));
        assert_eq!(body(&HubMessage::ack(36)), [0x92, 0x08, 0x24]);
        // Two headers.
        let bytes = cat(&[
            &[0x96, 0x01, 0x82, 0xa1, b'x', 0xa1, b'y', 0xa1, b'z', 0xa1, b'z'],
            &XYZ,
            &METHOD,
            &[0x91, 0x2a, 0x90],
        ]);
        let headers: Headers = [("x".into(), "y".into()), ("z".into(), "z".into())].into();
        assert_eq!(
            dec(&bytes),
            Some(HubMessage::invocation_with_id("xyz", "method", vec![json!(42)]).with_headers(headers))
        );
        // Five-item invocation (no streamIds).
        assert_eq!(
            dec(&cat(&[&[0x95, 0x01, 0x80, 0xc0], &METHOD, &[0x90]])),
            Some(HubMessage::invocation("method", vec![]))
        );
        // Empty invocation id means non-blocking.
        assert_eq!(
            dec(&cat(&[&[0x95, 0x01, 0x80, 0xa0], &METHOD, &[0x90]])),
            Some(HubMessage::invocation("method", vec![]))
        );
        // Extra trailing items are ignored; so are unknown types.
        assert_eq!(dec(&[0x92, 0x06, 0xc0]), Some(HubMessage::Ping));
        assert_eq!(dec(&[0x93, 0x0a, 0x01, 0x02]), None);
        assert_eq!(dec(&[0x91, 0xff]), None);
        // Close with nil error, and nil error completion (ASP.NET reads it as void).
        assert_eq!(dec(&[0x93, 0x07, 0xc0, 0xc2]), Some(HubMessage::close(None, false)));
        assert_eq!(dec(&cat(&[&[0x95, 0x03, 0x80], &XYZ, &[0x01, 0xc0]])), Some(HubMessage::completion_void("xyz")));
    }

    #[test]
    fn close_with_empty_error_is_nil() {
        assert_eq!(body(&HubMessage::close(Some(String::new()), false)), [0x93, 0x07, 0xc0, 0xc2]);
    }

    #[test]
    fn framed_encoding() {
        let mut out = vec![0xaa];
        encode(&HubMessage::Ping, &mut out).unwrap();
        assert_eq!(out, [0xaa, 0x02, 0x91, 0x06]);
        let big = HubMessage::stream_item("x", json!("a".repeat(20_000)));
        let mut out = Vec::new();
        encode(&big, &mut out).unwrap();
        let b = body(&big);
        let (len, n) = super::super::framing::read_varint(&out).unwrap().unwrap();
        assert_eq!((len, n), (b.len(), 3));
        assert_eq!(&out[3..], &b[..]);
    }

    fn round_trip_value(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&v, &mut out).unwrap();
        let (back, used) = read_value(&out).unwrap();
        assert_eq!(back, v);
        assert_eq!(used, out.len());
        out
    }

    #[test]
    fn integers_use_smallest_encoding() {
        let cases: Vec<(Value, Vec<u8>)> = vec![
            (json!(0), vec![0x00]),
            (json!(127), vec![0x7f]),
            (json!(128), vec![0xcc, 0x80]),
            (json!(255), vec![0xcc, 0xff]),
            (json!(256), vec![0xcd, 0x01, 0x00]),
            (json!(65535), vec![0xcd, 0xff, 0xff]),
            (json!(65536), vec![0xce, 0x00, 0x01, 0x00, 0x00]),
            (json!(u32::MAX), vec![0xce, 0xff, 0xff, 0xff, 0xff]),
            (json!(u64::from(u32::MAX) + 1), vec![0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (json!(u64::MAX), vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (json!(-1), vec![0xff]),
            (json!(-32), vec![0xe0]),
            (json!(-33), vec![0xd0, 0xdf]),
            (json!(-128), vec![0xd0, 0x80]),
            (json!(-129), vec![0xd1, 0xff, 0x7f]),
            (json!(-32768), vec![0xd1, 0x80, 0x00]),
            (json!(-32769), vec![0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (json!(i32::MIN), vec![0xd2, 0x80, 0, 0, 0]),
            (json!(i64::from(i32::MIN) - 1), vec![0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]),
            (json!(i64::MIN), vec![0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            (json!(1.5), vec![0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            (json!(null), vec![0xc0]),
            (json!(true), vec![0xc3]),
            (json!(false), vec![0xc2]),
        ];
        for (v, bytes) in cases {
            assert_eq!(round_trip_value(v.clone()), bytes, "{v}");
        }
        // Signed formats holding non-negative values decode to the same number.
        assert_eq!(read_value(&[0xd0, 0x05]).unwrap().0, json!(5));
        assert_eq!(read_value(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap().0, json!(9));
    }

    #[test]
    fn strings_and_containers_at_length_boundaries() {
        for (n, header) in [
            (0usize, vec![0xa0]),
            (31, vec![0xbf]),
            (32, vec![0xd9, 32]),
            (255, vec![0xd9, 0xff]),
            (256, vec![0xda, 0x01, 0x00]),
            (65535, vec![0xda, 0xff, 0xff]),
            (65536, vec![0xdb, 0x00, 0x01, 0x00, 0x00]),
        ] {
            let out = round_trip_value(Value::String("s".repeat(n)));
            assert_eq!(&out[..header.len()], &header[..], "str {n}");
        }
        for (n, array_header, map_header) in [
            (15usize, vec![0x9f], vec![0x8f]),
            (16, vec![0xdc, 0x00, 0x10], vec![0xde, 0x00, 0x10]),
            (65536, vec![0xdd, 0x00, 0x01, 0x00, 0x00], vec![0xdf, 0x00, 0x01, 0x00, 0x00]),
        ] {
            let out = round_trip_value(Value::Array(vec![json!(1); n]));
            assert_eq!(&out[..array_header.len()], &array_header[..], "array {n}");
            let obj: BTreeMap<String, Value> = (0..n).map(|i| (i.to_string(), json!(i))).collect();
            let out = round_trip_value(Value::Object(obj));
            assert_eq!(&out[..map_header.len()], &map_header[..], "map {n}");
        }
        round_trip_value(json!({"a": {"b": [1, -2, 3.25, "ü", null, {"c": []}]}, "": {}}));
    }

    #[test]
    fn value_conversions_and_limits() {
        // float32 widens exactly.
        assert_eq!(read_value(&[0xca, 0x3f, 0xc0, 0x00, 0x00]).unwrap().0, json!(1.5));
        // Extension types other than the timestamp are refused.
        let err = read_value(&[0xd4, 0x05, 0]).unwrap_err();
        assert_eq!(err.to_string(), "MessagePack extension type 5 in 'value' is not supported.");
        assert!(read_value(&[0xc7, 0x01, 0x05, 0x00]).is_err());
        assert!(read_value(&[0xd8, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Non-string keys.
        let err = read_value(&[0x81, 0x01, 0x02]).unwrap_err();
        assert_eq!(err.to_string(), "MessagePack map keys must be strings, found Number in 'value'.");
        // NaN.
        let mut nan = vec![0xcb];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert!(read_value(&nan).is_err());
        // Reserved code, bad UTF-8, truncation.
        assert!(read_value(&[0xc1]).is_err());
        assert_eq!(read_value(&[0xa2, 0xff, 0xfe]).unwrap_err().to_string(), "Invalid UTF-8 string in 'value'.");
        assert_eq!(
            read_value(&[0x92, 0x01]).unwrap_err().to_string(),
            "Unexpected end of MessagePack data while reading 'value'."
        );
        assert!(read_value(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Depth limit.
        let mut deep = vec![0x91; MAX_DEPTH + 1];
        deep.push(0xc0);
        assert!(read_value(&deep).unwrap_err().to_string().contains("nested deeper"));
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0xc0);
        assert!(read_value(&ok).is_ok());
    }

    #[test]
    fn error_texts() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0x06], "Expected the message to be a MessagePack array."),
            (vec![], "Expected the message to be a MessagePack array."),
            (vec![0x90], "Reading 'messageType' as Int32 failed."),
            (vec![0x91, 0xa1, b'1'], "Reading 'messageType' as Int32 failed."),
            (vec![0x91, 0xce, 0xff, 0xff, 0xff, 0xff], "Reading 'messageType' as Int32 failed."),
            (cat(&[&[0x96, 0x01, 0x80, 0xc0, 0xc0, 0x90, 0x90]]), "Null or empty target for Invocation message."),
            (cat(&[&[0x96, 0x01, 0x80, 0xc0, 0x05, 0x90, 0x90]]), "Reading 'target' as String failed."),
            (cat(&[&[0x96, 0x01, 0x90]]), "Reading map length for 'headers' failed."),
            (cat(&[&[0x96, 0x01, 0x81, 0xc0, 0xa1, b'v']]), "Null or empty key in header."),
            (cat(&[&[0x96, 0x01, 0x81, 0xa1, b'k', 0xa0]]), "Null or empty value in header."),
            (cat(&[&[0x96, 0x01, 0x81, 0xa1, b'k', 0x01]]), "Reading 'headers[0].Value' as String failed."),
            (cat(&[&[0x96, 0x01, 0x80, 0xc0], &METHOD, &[0x80]]), "Reading array length for 'arguments' failed."),
            (
                cat(&[&[0x96, 0x01, 0x80, 0xc0], &METHOD, &[0x90, 0x91, 0xc0]]),
                "Null or empty value in streamIds received.",
            ),
            (cat(&[&[0x96, 0x01, 0x80, 0xc0], &METHOD, &[0x90, 0x80]]), "Reading array length for 'streamIds' failed."),
            (
                cat(&[&[0x96, 0x04, 0x80, 0xc0], &METHOD, &[0x90, 0x90]]),
                "Null or empty invocation ID for StreamInvocation message.",
            ),
            (
                cat(&[&[0x96, 0x04, 0x80], &XYZ, &[0xa0, 0x90, 0x90]]),
                "Null or empty target for StreamInvocation message.",
            ),
            (cat(&[&[0x94, 0x02, 0x80, 0xa0, 0x01]]), "Null or empty invocation ID for StreamItem message."),
            (cat(&[&[0x93, 0x02, 0x80], &XYZ]), "Unexpected end of MessagePack data while reading 'item'."),
            (cat(&[&[0x94, 0x03, 0x80], &XYZ, &[0x04]]), "Invalid invocation result kind."),
            (cat(&[&[0x94, 0x03, 0x80], &XYZ, &[0xc0]]), "Reading 'resultKind' as Int32 failed."),
            (cat(&[&[0x94, 0x03, 0x80], &XYZ, &[0x03]]), "Unexpected end of MessagePack data while reading 'result'."),
            (cat(&[&[0x93, 0x03, 0x80, 0xc0]]), "Null or empty invocation ID for Completion message."),
            (cat(&[&[0x93, 0x05, 0x80, 0xc0]]), "Null or empty invocation ID for CancelInvocation message."),
            (cat(&[&[0x93, 0x07, 0xc0, 0x01]]), "Reading 'allowReconnect' as Boolean failed."),
            (cat(&[&[0x92, 0x07, 0x01]]), "Reading 'error' as String failed."),
            (cat(&[&[0x91, 0x08]]), "Reading 'sequenceId' as Int64 failed."),
            (cat(&[&[0x92, 0x09, 0xa1, b'1']]), "Reading 'sequenceId' as Int64 failed."),
            (cat(&[&[0x92, 0x08, 0xff]]), "Expected 'sequenceId' to be a non-negative integer."),
            (
                cat(&[&[0x96, 0x01, 0x80, 0xc0], &METHOD, &[0x91, 0xd4, 0x01, 0x00, 0x90]]),
                "MessagePack extension type 1 in 'arguments' is not supported.",
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(dec_err(&bytes), err, "{bytes:02x?}");
        }
    }

    fn bin_of(n: usize) -> Value {
        Value::binary((0..n).map(|i| i as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn bin_formats_round_trip_at_length_boundaries() {
        for (n, header) in [
            (0usize, vec![0xc4, 0x00]),
            (3, vec![0xc4, 0x03]),
            (255, vec![0xc4, 0xff]),
            (256, vec![0xc5, 0x01, 0x00]),
            (65535, vec![0xc5, 0xff, 0xff]),
            (65536, vec![0xc6, 0x00, 0x01, 0x00, 0x00]),
        ] {
            let out = round_trip_value(bin_of(n));
            assert_eq!(&out[..header.len()], &header[..], "bin {n}");
            assert_eq!(out.len(), header.len() + n);
        }
        assert_eq!(read_value(&[0xc4, 0x03, 1, 2, 255]).unwrap().0, Value::binary([1u8, 2, 255]));
        // Any bin size is accepted, not only the smallest.
        assert_eq!(read_value(&[0xc5, 0x00, 0x01, 7]).unwrap().0, Value::binary([7u8]));
        assert_eq!(read_value(&[0xc6, 0, 0, 0, 2, 8, 9]).unwrap().0, Value::binary([8u8, 9]));
    }

    #[test]
    fn truncated_bin_is_a_protocol_error() {
        for bytes in [
            &[0xc4][..],
            &[0xc4, 0x02, 0x01],
            &[0xc5, 0x00],
            &[0xc5, 0x01, 0x00, 0x00],
            &[0xc6, 0x00, 0x00, 0x01],
            // Announces 4 GiB: refused without allocating it.
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00],
        ] {
            let err = read_value(bytes).unwrap_err();
            assert_eq!(err.to_string(), "Unexpected end of MessagePack data while reading 'value'.", "{bytes:02x?}");
        }
    }

    fn ts(secs: i64, nanos: u32) -> Value {
        Value::Timestamp(DateTime::from_timestamp(secs, nanos).unwrap())
    }

    #[test]
    fn timestamp_formats_round_trip() {
        let cases: Vec<(Value, Vec<u8>)> = vec![
            // 2000-01-01T00:00:00Z: timestamp 32.
            (ts(946_684_800, 0), vec![0xd6, 0xff, 0x38, 0x6d, 0x43, 0x80]),
            (ts(0, 0), vec![0xd6, 0xff, 0, 0, 0, 0]),
            (ts(u32::MAX.into(), 0), vec![0xd6, 0xff, 0xff, 0xff, 0xff, 0xff]),
            // A fraction, or seconds past 32 bits: timestamp 64 (nanos << 34 | seconds).
            (ts(1_017_656_415, 123_000_000), {
                let mut b = vec![0xd7, 0xff];
                b.extend_from_slice(&((123_000_000u64 << 34) | 1_017_656_415).to_be_bytes());
                b
            }),
            (ts(1 << 32, 0), vec![0xd7, 0xff, 0, 0, 0, 0x01, 0, 0, 0, 0]),
            (ts((1 << 34) - 1, 999_999_999), {
                let mut b = vec![0xd7, 0xff];
                b.extend_from_slice(&((999_999_999u64 << 34) | ((1 << 34) - 1)).to_be_bytes());
                b
            }),
            // Before 1970 or from 2514 on: timestamp 96 (ext8, 4-byte nanos, 8-byte signed seconds).
            (ts(-1, 0), vec![0xc7, 12, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            (ts(-62_135_596_800, 5), {
                let mut b = vec![0xc7, 12, 0xff, 0, 0, 0, 5];
                b.extend_from_slice(&(-62_135_596_800i64).to_be_bytes());
                b
            }),
            (ts(1 << 34, 0), vec![0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0]),
        ];
        for (v, bytes) in cases {
            assert_eq!(round_trip_value(v.clone()), bytes, "{v:?}");
        }
        // Non-minimal forms and ext8 holding 4 or 8 bytes decode too, as in MessagePack-CSharp.
        assert_eq!(read_value(&[0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 7]).unwrap().0, ts(7, 0));
        assert_eq!(read_value(&[0xc7, 12, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7]).unwrap().0, ts(7, 1));
        assert_eq!(read_value(&[0xc7, 4, 0xff, 0, 0, 0, 9]).unwrap().0, ts(9, 0));
        assert_eq!(read_value(&[0xc8, 0, 4, 0xff, 0, 0, 0, 9]).unwrap().0, ts(9, 0));
    }

    #[test]
    fn bad_or_truncated_timestamps_are_protocol_errors() {
        let eof = "Unexpected end of MessagePack data while reading 'value'.";
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0xd6], eof),
            (vec![0xd6, 0xff, 0, 0, 0], eof),
            (vec![0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0], eof),
            (vec![0xc7], eof),
            (vec![0xc7, 12], eof),
            (vec![0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], eof),
            (vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0xff], eof),
            (
                vec![0xc7, 5, 0xff, 0, 0, 0, 0, 0],
                "Invalid MessagePack timestamp of 5 bytes in 'value' (expected 4, 8 or 12).",
            ),
            (
                vec![0xd8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                "Invalid MessagePack timestamp of 16 bytes in 'value' (expected 4, 8 or 12).",
            ),
            // Nanoseconds of 1e9 or more, in the 64- and 96-bit forms.
            (
                [&[0xd7, 0xff][..], &(1_000_000_000u64 << 34).to_be_bytes()].concat(),
                "Invalid MessagePack timestamp in 'value': nanoseconds out of range.",
            ),
            (
                vec![0xc7, 12, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
                "Invalid MessagePack timestamp in 'value': nanoseconds out of range.",
            ),
            (
                [&[0xc7, 12, 0xff, 0, 0, 0, 0][..], &i64::MAX.to_be_bytes()].concat(),
                "The MessagePack timestamp in 'value' is out of the supported range.",
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(read_value(&bytes).unwrap_err().to_string(), err, "{bytes:02x?}");
        }
    }

    fn typed_message() -> HubMessage {
        let obj = Value::object([
            ("ByteArray", Value::binary([1u8, 2, 3])),
            ("DateTime", ts(946_684_800, 0)),
            ("Later", ts(1_017_656_415, 1)),
            ("Early", ts(-62_135_596_800, 0)),
            ("Big", bin_of(300)),
            ("Nested", Value::from(vec![Value::binary(Vec::<u8>::new()), Value::Null])),
        ]);
        HubMessage::invocation_with_id("7", "EchoComplexObject", vec![obj, bin_of(70_000)])
    }

    #[test]
    fn every_prefix_of_a_message_with_bins_and_timestamps_is_an_error_not_a_panic() {
        let full = body(&typed_message());
        assert_eq!(dec(&full), Some(typed_message()));
        for n in 0..full.len() {
            assert!(decode(&full[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn hub_messages_survive_a_trip_through_bytes() {
        // What a backplane relies on: body bytes back to the same message, bins and instants included.
        for msg in [
            typed_message(),
            HubMessage::completion_result("1", ts(1 << 40, 42)),
            HubMessage::stream_item("2", bin_of(5)),
        ] {
            let mut out = Vec::new();
            encode(&msg, &mut out).unwrap();
            let mut dec = super::super::MessageDecoder::new(super::super::ProtocolKind::MessagePack, usize::MAX);
            dec.push(&out);
            assert_eq!(dec.next_message().unwrap(), Some(msg));
        }
    }
}
