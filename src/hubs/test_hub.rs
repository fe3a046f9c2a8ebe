//! The conformance hub: the methods the official TypeScript client's functional tests call on
//! ASP.NET's `TestHub`, with the same semantics, so that that client can be checked against us.
//! Mounted only with `signalr.conformance = true`.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::signalr::hub::{Call, Hub, HubContext, HubError, HubReply, MethodInfo};

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

/// Tells the caller its infinite stream was cancelled, when the stream is dropped.
struct CancelNotice(HubContext);

impl Drop for CancelNotice {
    fn drop(&mut self) {
        self.0.send_caller("StreamCanceled", vec![]);
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
                "GetCallerConnectionId" => Ok(HubReply::Value(json!(ctx.connection_id.as_ref()))),
                "GetNumRedirects" => {
                    let n = ctx.request.query.get("numRedirects").and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                    Ok(HubReply::Value(json!(n)))
                }
                "ThrowException" => Err(HubError::internal("InvalidOperationException", call.arg::<String>(0)?)),
                "InvokeWithString" => {
                    ctx.send_caller("Message", vec![Value::String(call.arg::<String>(0)?)]);
                    Ok(HubReply::Void)
                }
                "SendCustomObject" => {
                    ctx.send_caller("CustomObject", vec![call.arg::<Value>(0)?]);
                    Ok(HubReply::Void)
                }
                "Stream" => Ok(HubReply::Stream(stream::iter(["a", "b", "c"].map(|s| Ok(json!(s)))).boxed_local())),
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
                "GetActiveTransportName" => Ok(HubReply::Value(json!(ctx.transport))),
                "EchoComplexObject" => Ok(HubReply::Value(call.arg::<Value>(0)?)),
                "SendComplexObject" => Ok(HubReply::Value(json!({
                    "byteArray": "AQID",
                    "dateTime": "2000-01-01T00:00:00Z",
                    "guid": "00010203-0405-0607-0706-050403020100",
                    "intArray": [1, 2, 3],
                    "string": "hello world",
                }))),
                "GetContentTypeHeader" => Ok(HubReply::Value(header(&ctx, "content-type"))),
                "GetHeader" => Ok(HubReply::Value(header(&ctx, &call.arg::<String>(0)?))),
                "GetCookie" => {
                    let name = call.arg::<String>(0)?;
                    Ok(HubReply::Value(ctx.request.cookies.get(&name).map(|v| json!(v)).unwrap_or(Value::Null)))
                }
                "GetUserNameIdentifier" => {
                    Ok(HubReply::Value(ctx.user.as_ref().map(|u| json!(u.name)).unwrap_or(Value::Null)))
                }
                "GetUserClaim" => {
                    let claim = call.arg::<String>(0)?;
                    Ok(HubReply::Value(
                        ctx.user.as_ref().and_then(|u| u.claims.get(&claim)).map(|v| json!(v)).unwrap_or(Value::Null),
                    ))
                }
                "SendSequence" => {
                    // Not in ASP.NET's TestHub: numbered events at a steady pace, to prove that a stateful
                    // reconnect loses and repeats nothing.
                    let count = call.arg::<u64>(0)?.min(100_000);
                    let interval = std::time::Duration::from_millis(call.arg::<u64>(1)?.min(10_000));
                    for i in 1..=count {
                        ctx.send_caller("Seq", vec![json!(i)]);
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
    ctx.request.headers.get(&name).map(|v| json!(v)).unwrap_or(Value::Null)
}
