//! Raw SignalR-over-WebSocket helpers for tests that check bytes on the wire.

use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use super::TestServer;

/// The JSON protocol's record separator.
pub const RS: char = '\u{1e}';

pub type Framed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

pub async fn open_ws(srv: &TestServer, path: &str) -> Framed {
    let url = srv.url(path).replacen("http", "ws", 1);
    let (_, framed) = srv.client().ws(url).max_frame_size(1 << 20).connect().await.expect("websocket opens");
    framed
}

/// Reads frames until a text or binary one arrives; `None` when the socket closes.
pub async fn next_data(framed: &mut Framed) -> Option<Bytes> {
    loop {
        match actix_rt::time::timeout(Duration::from_secs(10), framed.next()).await.ok()?? {
            Ok(ws::Frame::Text(b)) | Ok(ws::Frame::Binary(b)) => return Some(b),
            Ok(ws::Frame::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Reads JSON hub messages until one satisfies `pick`.
pub async fn read_until(framed: &mut Framed, pick: impl Fn(&Value) -> bool) -> Value {
    loop {
        let data = next_data(framed).await.expect("socket stays open until the expected message");
        for record in String::from_utf8_lossy(&data).split(RS).filter(|r| !r.is_empty()) {
            let msg: Value = serde_json::from_str(record).unwrap();
            if pick(&msg) {
                return msg;
            }
        }
    }
}

pub async fn handshake_json(framed: &mut Framed) {
    framed.send(ws::Message::Text(format!("{{\"protocol\":\"json\",\"version\":1}}{RS}").into())).await.unwrap();
    assert_eq!(next_data(framed).await.unwrap(), Bytes::from(format!("{{}}{RS}")));
}

pub async fn invoke(framed: &mut Framed, id: &str, target: &str, args: Value) -> Value {
    let msg = json!({"type": 1, "invocationId": id, "target": target, "arguments": args});
    framed.send(ws::Message::Text(format!("{msg}{RS}").into())).await.unwrap();
    read_until(framed, |m| m["type"] == 3 && m["invocationId"] == id).await
}
