//! The conformance hub: the methods the official TypeScript client's functional tests call on
//! ASP.NET's `TestHub`, with the same semantics, so that that client can be checked against us.
//! Mounted only with `signalr.conformance = true`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

use crate::signalr::hub::{Call, Hub, HubContext, HubError, HubReply, MethodInfo};
use crate::signalr::protocol::value::Bytes;
use crate::signalr::protocol::Value;

/// See the module documentation.
pub struct TestHub;

const METHODS: &[MethodInfo] = &[
    MethodInfo::unary("Echo", 1),
    MethodInfo::unary("GetCallerConnectionId", 0),
    MethodInfo::unary("GetNumRedirects", 0),
    MethodInfo::unary("ThrowException", 1),
    MethodInfo::unary("InvokeWithString", 1),
    MethodInfo::unary("SendCustomObject", 1),
    MethodInfo::streaming("Stream", 0),
    MethodInfo::streaming("InfiniteStream", 0),
    MethodInfo::unary("StreamingConcat", 0).with_uploads(1),
    MethodInfo::streaming("EmptyStream", 0),
    MethodInfo::streaming("StreamThrowException", 1),
    MethodInfo::unary("GetActiveTransportName", 0),
    MethodInfo::unary("EchoComplexObject", 1),
    MethodInfo::unary("SendComplexObject", 0),
    MethodInfo::unary("GetContentTypeHeader", 0),
    MethodInfo::unary("GetHeader", 1),
    MethodInfo::unary("GetCookie", 1),
    MethodInfo::unary("GetUserNameIdentifier", 0),
    MethodInfo::unary("GetUserClaim", 1),
    MethodInfo::unary("SendSequence", 2),
];

/// ASP.NET's `CustomObject` (`SendCustomObject`). Bound like a .NET parameter: missing members take their
/// defaults and unknown ones are dropped; sent back with its members' own names on both protocols (the
/// functional test server turns JSON's camelCase naming off).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CustomObject {
    name: Option<String>,
    value: i32,
}

impl From<CustomObject> for Value {
    fn from(o: CustomObject) -> Value {
        Value::object([("Name", Value::from(o.name)), ("Value", Value::from(o.value))])
    }
}

/// ASP.NET's `ComplexObject` (`EchoComplexObject`, `SendComplexObject`): its `byte[]` travels as MessagePack
/// `bin` or a base64 string, its `DateTime` as a MessagePack timestamp or an ISO-8601 string.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ComplexObject {
    string: Option<String>,
    int_array: Option<Vec<i32>>,
    byte_array: Option<Bytes>,
    guid: uuid::Uuid,
    date_time: DateTime<Utc>,
}

impl Default for ComplexObject {
    fn default() -> Self {
        ComplexObject {
            string: None,
            int_array: None,
            byte_array: None,
            guid: uuid::Uuid::nil(),
            // .NET's default(DateTime): 0001-01-01T00:00:00.
            date_time: DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default(),
        }
    }
}

impl From<ComplexObject> for Value {
    fn from(o: ComplexObject) -> Value {
        Value::object([
            ("String", Value::from(o.string)),
            ("IntArray", Value::from(o.int_array.map(|a| a.into_iter().map(Value::from).collect::<Vec<_>>()))),
            ("ByteArray", Value::from(o.byte_array)),
            ("Guid", Value::from(o.guid.to_string())),
            ("DateTime", Value::from(o.date_time)),
        ])
    }
}

/// Tells the caller its infinite stream was cancelled, when the stream is dropped.
struct CancelNotice(HubContext);

impl Drop for CancelNotice {
    fn drop(&mut self) {
        self.0.send_caller("StreamCanceled", Vec::<Value>::new());
    }
}

impl Hub for TestHub {
    fn methods(&self) -> &'static [MethodInfo] {
        METHODS
    }

    fn invoke(self: Arc<Self>, mut call: Call) -> LocalBoxFuture<'static, Result<HubReply, HubError>> {
        // ASP.NET runs the method body when the StreamInvocation arrives, so its cancellation callback is
        // registered even if the CancelInvocation follows at once (before this future is ever polled).
        let cancel_notice = (call.method == "InfiniteStream").then(|| CancelNotice(call.ctx.clone()));
        Box::pin(async move {
            let ctx = call.ctx.clone();
            match call.method {
                "Echo" => Ok(HubReply::Value(Value::String(call.arg::<String>(0)?))),
                "GetCallerConnectionId" => Ok(HubReply::Value(Value::from(ctx.connection_id.as_ref()))),
                "GetNumRedirects" => {
                    let n = ctx.request.query.get("numRedirects").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                    Ok(HubReply::Value(Value::from(n)))
                }
                "ThrowException" => Err(HubError::internal("InvalidOperationException", call.arg::<String>(0)?)),
                "InvokeWithString" => {
                    ctx.send_caller("Message", vec![Value::String(call.arg::<String>(0)?)]);
                    Ok(HubReply::Void)
                }
                "SendCustomObject" => {
                    ctx.send_caller("CustomObject", vec![call.arg::<CustomObject>(0)?]);
                    Ok(HubReply::Void)
                }
                "Stream" => {
                    Ok(HubReply::Stream(stream::iter(["a", "b", "c"].map(|s| Ok(Value::from(s)))).boxed_local()))
                }
                "InfiniteStream" => {
                    let notice = cancel_notice;
                    Ok(HubReply::Stream(
                        stream::pending::<Result<Value, HubError>>()
                            .map(move |item| {
                                let _keep = &notice;
                                item
                            })
                            .boxed_local(),
                    ))
                }
                "StreamingConcat" => {
                    let mut upload =
                        call.upload(0).ok_or_else(|| HubError::internal("InvalidOperationException", "no stream"))?;
                    let mut joined = String::new();
                    while let Some(item) = upload.recv().await {
                        match item {
                            Ok(Value::String(s)) => joined.push_str(&s),
                            Ok(other) => joined.push_str(&other.to_string()),
                            Err(e) => return Err(HubError::internal("Exception", e)),
                        }
                    }
                    Ok(HubReply::Value(Value::String(joined)))
                }
                "EmptyStream" => Ok(HubReply::Stream(stream::empty().boxed_local())),
                "StreamThrowException" => Err(HubError::internal("InvalidOperationException", call.arg::<String>(0)?)),
                "GetActiveTransportName" => Ok(HubReply::Value(Value::from(ctx.transport))),
                "EchoComplexObject" => Ok(HubReply::Value(call.arg::<ComplexObject>(0)?.into())),
                "SendComplexObject" => Ok(HubReply::Value(
                    ComplexObject {
                        string: Some("hello world".into()),
                        int_array: Some(vec![1, 2, 3]),
                        byte_array: Some(Bytes(vec![1, 2, 3])),
                        guid: uuid::Uuid::from_u128(0x0001_0203_0405_0607_0706_0504_0302_0100),
                        date_time: DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(), // 2000-01-01T00:00:00Z
                    }
                    .into(),
                )),
                "GetContentTypeHeader" => Ok(HubReply::Value(header(&ctx, "content-type"))),
                "GetHeader" => Ok(HubReply::Value(header(&ctx, &call.arg::<String>(0)?))),
                "GetCookie" => {
                    let name = call.arg::<String>(0)?;
                    Ok(HubReply::Value(Value::from(ctx.request.cookies.get(&name).map(String::as_str))))
                }
                "GetUserNameIdentifier" => Ok(HubReply::Value(Value::from(ctx.user.as_ref().map(|u| u.name.as_str())))),
                "GetUserClaim" => {
                    let claim = call.arg::<String>(0)?;
                    Ok(HubReply::Value(Value::from(
                        ctx.user.as_ref().and_then(|u| u.claims.get(&claim)).map(String::as_str),
                    )))
                }
                "SendSequence" => {
                    // Not in ASP.NET's TestHub: numbered events at a steady pace, to prove that a stateful
                    // reconnect loses and repeats nothing.
                    let count = call.arg::<u64>(0)?.min(100_000);
                    let interval = std::time::Duration::from_millis(call.arg::<u64>(1)?.min(10_000));
                    for i in 1..=count {
                        ctx.send_caller("Seq", vec![Value::from(i)]);
                        if !interval.is_zero() {
                            tokio::time::sleep(interval).await;
                        }
                    }
                    Ok(HubReply::Void)
                }
                other => Err(HubError::hub(format!("Method {other} is not implemented"))),
            }
        })
    }
}

fn header(ctx: &HubContext, name: &str) -> Value {
    let name = name.to_ascii_lowercase();
    Value::from(ctx.request.headers.get(&name).map(String::as_str))
}
