//! JSON hub protocol: one object per message, terminated by 0x1E.
//!
//! Encoding writes fields in ASP.NET's order and omits what ASP.NET omits, so the official
//! clients see familiar bytes. Decoding accepts any field order, ignores unknown fields and
//! reports wrong field types with ASP.NET's error texts.

use serde_json::{Map, Value as Json};

use super::framing::RECORD_SEPARATOR;
use super::message::message_type as mt;
use super::{invalid, CompletionResult, Headers, HubMessage, ProtocolError, Value};

/// Appends one message and its 0x1E terminator to `out`.
pub fn encode(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    write_body(msg, out)?;
    out.push(RECORD_SEPARATOR);
    Ok(())
}

/// Appends the JSON object alone (no terminator), for callers that frame themselves.
pub fn write_body(msg: &HubMessage, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    out.extend_from_slice(b"{\"type\":");
    out.push(b'0' + msg.type_id()); // always a single digit (1-9)
    match msg {
        HubMessage::Invocation { invocation_id, target, arguments, stream_ids, headers } => {
            write_headers(headers, out)?;
            if let Some(id) = invocation_id.as_deref().filter(|id| !id.is_empty()) {
                write_str_field("invocationId", id, out)?;
            }
            write_call(target, arguments, stream_ids, out)?;
        }
        HubMessage::StreamInvocation { invocation_id, target, arguments, stream_ids, headers } => {
            write_headers(headers, out)?;
            write_str_field("invocationId", invocation_id, out)?;
            write_call(target, arguments, stream_ids, out)?;
        }
        HubMessage::StreamItem { invocation_id, item, headers } => {
            write_headers(headers, out)?;
            write_str_field("invocationId", invocation_id, out)?;
            out.extend_from_slice(b",\"item\":");
            write_value(item, out)?;
        }
        HubMessage::Completion { invocation_id, result, headers } => {
            write_headers(headers, out)?;
            write_str_field("invocationId", invocation_id, out)?;
            match result {
                CompletionResult::Void => {}
                CompletionResult::Value(v) => {
                    out.extend_from_slice(b",\"result\":");
                    write_value(v, out)?;
                }
                CompletionResult::Error(e) => write_str_field("error", e, out)?,
            }
        }
        HubMessage::CancelInvocation { invocation_id, headers } => {
            write_headers(headers, out)?;
            write_str_field("invocationId", invocation_id, out)?;
        }
        HubMessage::Ping => {}
        HubMessage::Close { error, allow_reconnect } => {
            if let Some(e) = error {
                write_str_field("error", e, out)?;
            }
            // ASP.NET writes the flag only when set.
            if *allow_reconnect {
                out.extend_from_slice(b",\"allowReconnect\":true");
            }
        }
        HubMessage::Ack { sequence_id } | HubMessage::Sequence { sequence_id } => {
            out.extend_from_slice(b",\"sequenceId\":");
            write_value(sequence_id, out)?;
        }
    }
    out.push(b'}');
    Ok(())
}

fn write_call(
    target: &str,
    arguments: &[Value],
    stream_ids: &[String],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    write_str_field("target", target, out)?;
    out.extend_from_slice(b",\"arguments\":[");
    for (i, arg) in arguments.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(arg, out)?;
    }
    out.push(b']');
    if !stream_ids.is_empty() {
        out.extend_from_slice(b",\"streamIds\":[");
        for (i, id) in stream_ids.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(id, out)?;
        }
        out.push(b']');
    }
    Ok(())
}

fn write_headers(headers: &Headers, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    if headers.is_empty() {
        return Ok(());
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (k, v)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(k, out)?;
        out.push(b':');
        write_value(v, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// `,"name":"escaped value"` — field names are fixed ASCII and need no escaping.
fn write_str_field(name: &str, value: &str, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    write_value(value, out)
}

fn write_value<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| ProtocolError::Encode(format!("JSON serialization failed: {e}")))
}

/// Decodes one JSON record (without its 0x1E). `Ok(None)` for an unknown message type, which
/// the caller must ignore ("future protocol changes can add message types").
pub fn decode(payload: &[u8]) -> Result<Option<HubMessage>, ProtocolError> {
    let root: Json = serde_json::from_slice(payload).map_err(ProtocolError::Json)?;
    let mut obj = match root {
        Json::Object(map) => map,
        other => {
            return Err(invalid(format!(
                "Unexpected JSON Token Type '{}'. Expected a JSON Object.",
                token_name(&other)
            )))
        }
    };

    // Like ASP.NET, every known property is type-checked whatever the message type.
    let msg_type = match obj.get("type") {
        None => None,
        Some(Json::Number(n)) => {
            Some(n.as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(|| expected("type", "Number"))?)
        }
        Some(_) => return Err(expected("type", "Number")),
    };
    let invocation_id = take_string(&mut obj, "invocationId")?;
    let target = take_string(&mut obj, "target")?;
    let error = take_string(&mut obj, "error")?;
    let allow_reconnect = match obj.get("allowReconnect") {
        None => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err(invalid("Expected 'allowReconnect' to be true or false.")),
    };
    let stream_ids = take_stream_ids(&mut obj)?;
    let arguments = match obj.remove("arguments") {
        None => None,
        Some(Json::Array(a)) => Some(a.into_iter().map(Value::from).collect()),
        Some(_) => return Err(expected("arguments", "Array")),
    };
    let headers = take_headers(&mut obj)?;
    let sequence_id = match obj.get("sequenceId") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => {
            Some(n.as_u64().ok_or_else(|| invalid("Expected 'sequenceId' to be a non-negative integer."))?)
        }
        Some(_) => return Err(expected("sequenceId", "Number")),
    };
    let result = obj.remove("result").map(Value::from);
    let item = obj.remove("item").map(Value::from);

    let Some(msg_type) = msg_type else {
        return Err(missing("type"));
    };
    let non_empty = |id: Option<String>| id.filter(|s| !s.is_empty());
    let msg = match u8::try_from(msg_type).unwrap_or(0) {
        mt::INVOCATION => {
            let target = non_empty(target).ok_or_else(|| missing("target"))?;
            HubMessage::Invocation {
                // An empty id means non-blocking, as in ASP.NET.
                invocation_id: non_empty(invocation_id),
                target,
                arguments: arguments.ok_or_else(|| missing("arguments"))?,
                stream_ids: stream_ids.unwrap_or_default(),
                headers,
            }
        }
        mt::STREAM_INVOCATION => {
            let target = target.ok_or_else(|| missing("target"))?;
            let invocation_id = non_empty(invocation_id).ok_or_else(|| missing("invocationId"))?;
            let arguments = arguments.ok_or_else(|| missing("arguments"))?;
            if target.is_empty() {
                return Err(missing("target"));
            }
            HubMessage::StreamInvocation {
                invocation_id,
                target,
                arguments,
                stream_ids: stream_ids.unwrap_or_default(),
                headers,
            }
        }
        mt::STREAM_ITEM => HubMessage::StreamItem {
            invocation_id: non_empty(invocation_id).ok_or_else(|| missing("invocationId"))?,
            item: item.ok_or_else(|| missing("item"))?,
            headers,
        },
        mt::COMPLETION => {
            let invocation_id = non_empty(invocation_id).ok_or_else(|| missing("invocationId"))?;
            let result = match (error, result) {
                (Some(_), Some(_)) => {
                    return Err(invalid("The 'error' and 'result' properties are mutually exclusive."))
                }
                (Some(e), None) => CompletionResult::Error(e),
                (None, Some(v)) => CompletionResult::Value(v),
                (None, None) => CompletionResult::Void,
            };
            HubMessage::Completion { invocation_id, result, headers }
        }
        mt::CANCEL_INVOCATION => HubMessage::CancelInvocation {
            invocation_id: non_empty(invocation_id).ok_or_else(|| missing("invocationId"))?,
            headers,
        },
        mt::PING => HubMessage::Ping,
        mt::CLOSE => HubMessage::Close { error, allow_reconnect },
        mt::ACK => HubMessage::Ack { sequence_id: sequence_id.ok_or_else(|| missing("sequenceId"))? },
        mt::SEQUENCE => HubMessage::Sequence { sequence_id: sequence_id.ok_or_else(|| missing("sequenceId"))? },
        _ => return Ok(None),
    };
    Ok(Some(msg))
}

fn expected(prop: &str, kind: &str) -> ProtocolError {
    invalid(format!("Expected '{prop}' to be of type {kind}."))
}

fn missing(prop: &str) -> ProtocolError {
    invalid(format!("Missing required property '{prop}'."))
}

/// Token name as System.Text.Json reports it in ASP.NET's messages.
pub(crate) fn token_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "Null",
        Json::Bool(true) => "True",
        Json::Bool(false) => "False",
        Json::Number(_) => "Number",
        Json::String(_) => "String",
        Json::Array(_) => "Array",
        Json::Object(_) => "Object",
    }
}

/// Optional string property; present but not a string (null included) is an error, as in ASP.NET.
fn take_string(obj: &mut Map<String, Json>, prop: &str) -> Result<Option<String>, ProtocolError> {
    match obj.remove(prop) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(_) => Err(expected(prop, "String")),
    }
}

fn take_stream_ids(obj: &mut Map<String, Json>) -> Result<Option<Vec<String>>, ProtocolError> {
    let arr = match obj.remove("streamIds") {
        None => return Ok(None),
        Some(Json::Array(a)) => a,
        Some(_) => return Err(expected("streamIds", "Array")),
    };
    arr.into_iter()
        .map(|v| match v {
            Json::String(s) => Ok(s),
            Json::Null => Err(invalid("Null value for 'streamIds' is not valid.")),
            other => Err(invalid(format!(
                "Expected 'streamIds' to contain only String values, found {}.",
                token_name(&other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn take_headers(obj: &mut Map<String, Json>) -> Result<Headers, ProtocolError> {
    let map = match obj.remove("headers") {
        None => return Ok(Headers::new()),
        Some(Json::Object(m)) => m,
        Some(_) => return Err(expected("headers", "StartObject")),
    };
    let mut headers = Headers::with_capacity(map.len());
    for (k, v) in map {
        match v {
            Json::String(s) => {
                headers.insert(k, s);
            }
            _ => return Err(invalid(format!("Expected header '{k}' to be of type String."))),
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::json!`, as a hub [`Value`].
    macro_rules! json {
        ($($t:tt)*) => { Value::from(serde_json::json!($($t)*)) };
    }

    fn enc(msg: &HubMessage) -> String {
        let mut out = Vec::new();
        encode(msg, &mut out).unwrap();
        assert_eq!(out.pop(), Some(RECORD_SEPARATOR));
        String::from_utf8(out).unwrap()
    }

    fn dec(s: &str) -> Result<Option<HubMessage>, ProtocolError> {
        decode(s.as_bytes())
    }

    fn dec_err(s: &str) -> String {
        dec(s).unwrap_err().to_string()
    }

    #[test]
    fn spec_invocation_examples() {
        let blocking = HubMessage::invocation_with_id("123", "Send", vec![json!(42), json!("Test Message")]);
        assert_eq!(
            enc(&blocking),
            r#"{"type":1,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#
        );
        let non_blocking = HubMessage::invocation("Send", vec![json!(42), json!("Test Message")]);
        assert_eq!(enc(&non_blocking), r#"{"type":1,"target":"Send","arguments":[42,"Test Message"]}"#);
        let streams = HubMessage::Invocation {
            invocation_id: Some("123".into()),
            target: "Send".into(),
            arguments: vec![json!(42)],
            stream_ids: vec!["1".into()],
            headers: Headers::new(),
        };
        assert_eq!(
            enc(&streams),
            r#"{"type":1,"invocationId":"123","target":"Send","arguments":[42],"streamIds":["1"]}"#
        );
        let headers = blocking.clone().with_headers([("Foo".to_string(), "Bar".to_string())].into());
        assert_eq!(
            enc(&headers),
            r#"{"type":1,"headers":{"Foo":"Bar"},"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#
        );
        // The spec's pretty-printed forms decode to the same messages.
        let pretty = "{\n    \"type\": 1,\n    \"headers\": {\n        \"Foo\": \"Bar\"\n    },\n    \"invocationId\": \"123\",\n    \"target\": \"Send\",\n    \"arguments\": [\n        42,\n        \"Test Message\"\n    ]\n}";
        assert_eq!(dec(pretty).unwrap(), Some(headers));
        assert_eq!(dec(r#"{"type":1,"target":"Send","arguments":[42,"Test Message"]}"#).unwrap(), Some(non_blocking));
        assert_eq!(
            dec(r#"{"type":1,"invocationId":"123","target":"Send","arguments":[42],"streamIds":["1"]}"#).unwrap(),
            Some(streams)
        );
    }

    #[test]
    fn spec_other_examples() {
        let cases: Vec<(HubMessage, &str)> = vec![
            (
                HubMessage::stream_invocation("123", "Send", vec![json!(42), json!("Test Message")]),
                r#"{"type":4,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
            ),
            (HubMessage::stream_item("123", json!(42)), r#"{"type":2,"invocationId":"123","item":42}"#),
            (HubMessage::completion_void("123"), r#"{"type":3,"invocationId":"123"}"#),
            (HubMessage::completion_result("123", json!(42)), r#"{"type":3,"invocationId":"123","result":42}"#),
            (HubMessage::completion_result("123", Value::Null), r#"{"type":3,"invocationId":"123","result":null}"#),
            (
                HubMessage::completion_error("123", "It didn't work!"),
                r#"{"type":3,"invocationId":"123","error":"It didn't work!"}"#,
            ),
            (HubMessage::cancel_invocation("123"), r#"{"type":5,"invocationId":"123"}"#),
            (HubMessage::Ping, r#"{"type":6}"#),
            (HubMessage::close(None, false), r#"{"type":7}"#),
            (
                HubMessage::close(Some("Connection closed because of an error!".into()), false),
                r#"{"type":7,"error":"Connection closed because of an error!"}"#,
            ),
            (
                HubMessage::close(Some("Connection closed because of an error!".into()), true),
                r#"{"type":7,"error":"Connection closed because of an error!","allowReconnect":true}"#,
            ),
            (HubMessage::close(None, true), r#"{"type":7,"allowReconnect":true}"#),
            (HubMessage::ack(1394), r#"{"type":8,"sequenceId":1394}"#),
            (HubMessage::sequence(1234), r#"{"type":9,"sequenceId":1234}"#),
        ];
        for (msg, text) in cases {
            assert_eq!(enc(&msg), text);
            assert_eq!(dec(text).unwrap(), Some(msg), "{text}");
        }
    }

    #[test]
    fn lenient_decoding() {
        // Field order, unknown fields, explicit allowReconnect false, headers on Ping ignored.
        assert_eq!(
            dec(r#"{"arguments":[],"extra":{"a":[1]},"target":"T","type":1,"invocationId":""}"#).unwrap(),
            Some(HubMessage::invocation("T", vec![]))
        );
        assert_eq!(dec(r#"{"type":7,"allowReconnect":false}"#).unwrap(), Some(HubMessage::close(None, false)));
        assert_eq!(dec(r#"{"type":6,"headers":{"a":"b"}}"#).unwrap(), Some(HubMessage::Ping));
        assert_eq!(
            dec(r#"{"type":3,"invocationId":"1","result":{"x":[null]}}"#).unwrap(),
            Some(HubMessage::completion_result("1", json!({"x": [null]})))
        );
        assert_eq!(
            dec(r#"{"type":2,"invocationId":"1","item":null}"#).unwrap(),
            Some(HubMessage::stream_item("1", Value::Null))
        );
        assert_eq!(dec(r#"{"type":10,"whatever":true}"#).unwrap(), None);
        assert_eq!(dec(r#"{"type":0}"#).unwrap(), None);
        assert_eq!(dec(r#"{"type":-1}"#).unwrap(), None);
    }

    #[test]
    fn error_texts() {
        let cases = [
            (r#"{"type":1,"target":5,"arguments":[]}"#, "Expected 'target' to be of type String."),
            (r#"{"type":1,"arguments":[]}"#, "Missing required property 'target'."),
            (r#"{"type":1,"target":"","arguments":[]}"#, "Missing required property 'target'."),
            (r#"{"type":1,"target":"x"}"#, "Missing required property 'arguments'."),
            (r#"{"type":1,"target":"x","arguments":{}}"#, "Expected 'arguments' to be of type Array."),
            (
                r#"{"type":1,"invocationId":null,"target":"x","arguments":[]}"#,
                "Expected 'invocationId' to be of type String.",
            ),
            (r#"{"type":1,"target":"x","arguments":[],"streamIds":"1"}"#, "Expected 'streamIds' to be of type Array."),
            (
                r#"{"type":1,"target":"x","arguments":[],"streamIds":[null]}"#,
                "Null value for 'streamIds' is not valid.",
            ),
            (r#"{"type":1,"target":"x","arguments":[],"headers":[]}"#, "Expected 'headers' to be of type StartObject."),
            (
                r#"{"type":1,"target":"x","arguments":[],"headers":{"a":1}}"#,
                "Expected header 'a' to be of type String.",
            ),
            (r#"{"target":"x","arguments":[]}"#, "Missing required property 'type'."),
            (r#"{"type":"1"}"#, "Expected 'type' to be of type Number."),
            (r#"{"type":null}"#, "Expected 'type' to be of type Number."),
            (r#"{"type":1.5}"#, "Expected 'type' to be of type Number."),
            (r#"{"type":4,"target":"x","arguments":[]}"#, "Missing required property 'invocationId'."),
            (r#"{"type":4,"invocationId":"1","arguments":[]}"#, "Missing required property 'target'."),
            (r#"{"type":2,"item":1}"#, "Missing required property 'invocationId'."),
            (r#"{"type":2,"invocationId":"1"}"#, "Missing required property 'item'."),
            (r#"{"type":3}"#, "Missing required property 'invocationId'."),
            (r#"{"type":3,"invocationId":""}"#, "Missing required property 'invocationId'."),
            (
                r#"{"type":3,"invocationId":"1","result":1,"error":"e"}"#,
                "The 'error' and 'result' properties are mutually exclusive.",
            ),
            (r#"{"type":3,"invocationId":"1","error":null}"#, "Expected 'error' to be of type String."),
            (r#"{"type":5}"#, "Missing required property 'invocationId'."),
            (r#"{"type":7,"allowReconnect":"yes"}"#, "Expected 'allowReconnect' to be true or false."),
            (r#"{"type":8}"#, "Missing required property 'sequenceId'."),
            (r#"{"type":9,"sequenceId":null}"#, "Missing required property 'sequenceId'."),
            (r#"{"type":8,"sequenceId":"3"}"#, "Expected 'sequenceId' to be of type Number."),
            (r#"{"type":8,"sequenceId":-3}"#, "Expected 'sequenceId' to be a non-negative integer."),
            (r#"[1,2]"#, "Unexpected JSON Token Type 'Array'. Expected a JSON Object."),
            (r#""str""#, "Unexpected JSON Token Type 'String'. Expected a JSON Object."),
            // Field types are checked even for unknown message types, as ASP.NET does.
            (r#"{"type":99,"target":1}"#, "Expected 'target' to be of type String."),
        ];
        for (text, err) in cases {
            assert_eq!(dec_err(text), err, "{text}");
        }
        assert!(matches!(dec("{\"type\":1,"), Err(ProtocolError::Json(_))));
        assert!(matches!(dec(""), Err(ProtocolError::Json(_))));
        assert!(matches!(decode(b"{\"type\":6}\xff"), Err(ProtocolError::Json(_))));
        assert_eq!(dec_err("nope"), "Error reading JSON.");
    }

    #[test]
    fn bytes_and_instants_are_written_as_aspnet_writes_them() {
        let when = chrono::DateTime::from_timestamp(1_017_656_415, 0).unwrap();
        let obj = Value::object([("ByteArray", Value::binary(*b"hello")), ("DateTime", Value::from(when))]);
        assert_eq!(
            enc(&HubMessage::completion_result("1", obj)),
            r#"{"type":3,"invocationId":"1","result":{"ByteArray":"aGVsbG8=","DateTime":"2002-04-01T10:20:15Z"}}"#
        );
        // JSON has no such types: what comes back are the strings, for typed arguments to read.
        assert_eq!(
            dec(r#"{"type":2,"invocationId":"1","item":"aGVsbG8="}"#).unwrap(),
            Some(HubMessage::stream_item("1", json!("aGVsbG8=")))
        );
    }

    #[test]
    fn escaping_never_emits_raw_separator() {
        let msg = HubMessage::invocation("t\u{1e}", vec![json!("a\u{1e}b\"\\\n")]);
        let mut out = Vec::new();
        encode(&msg, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == RECORD_SEPARATOR).count(), 1);
        assert_eq!(decode(&out[..out.len() - 1]).unwrap(), Some(msg));
    }

    #[test]
    fn empty_ids_and_headers_omitted() {
        let msg = HubMessage::Invocation {
            invocation_id: Some(String::new()),
            target: "x".into(),
            arguments: vec![],
            stream_ids: vec![],
            headers: Headers::new(),
        };
        assert_eq!(enc(&msg), r#"{"type":1,"target":"x","arguments":[]}"#);
    }
}
