//! Helpers shared by the chat suites: minting user JWTs, starting a chat server, fetching tickets and
//! speaking the chat protocol over awc's WebSocket client.
#![allow(dead_code)]

use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::common::{json_body, Options, TestServer};

pub const JWT_SECRET: &str = "chat-test-secret-that-is-long-enough-for-hs256-0123456789";

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// An HS256 token for `user` in `tenant`, valid for five minutes.
pub fn token(tenant: &str, user: &str) -> String {
    token_with(json!({ "sub": user, "tenant_id": tenant, "session_id": "s-1", "exp": now_secs() + 300 }))
}

/// An HS256 token with exactly these claims.
pub fn token_with(claims: Value) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).expect("sign test token")
}

/// Server options for the chat: the JWT secret, fast demo streaming, plus `extra` settings.
pub fn chat_options(redis: bool, extra: &[(&str, &str)]) -> Options {
    let mut env = vec![
        ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
        ("SWITCHYARD__CHAT__DEMO_DELAY_MS".to_string(), "1".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Options { redis, env, ..Options::default() }
}

pub async fn chat_server(redis: bool) -> TestServer {
    TestServer::start_with(chat_options(redis, &[])).await
}

/// `POST /api/agent/ticket` with `token`; the answer's status and JSON body.
pub async fn request_ticket(
    srv: &TestServer,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, awc::http::header::HeaderMap) {
    let mut req = srv.client().post(srv.url("/api/agent/ticket"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    }
    .expect("ticket request");
    let headers = res.headers().clone();
    (res.status().as_u16(), json_body(&mut res).await, headers)
}

/// A ticket for `user` in `tenant`.
pub async fn ticket(srv: &TestServer, tenant: &str, user: &str) -> String {
    ticket_for(srv, tenant, user, None).await
}

pub async fn ticket_for(srv: &TestServer, tenant: &str, user: &str, conversation: Option<&str>) -> String {
    let body = conversation.map(|c| json!({ "conversation_id": c }));
    let (status, body, _) = request_ticket(srv, Some(&token(tenant, user)), body).await;
    assert_eq!(status, 200, "ticket: {body}");
    body["ticket"].as_str().expect("ticket text").to_string()
}

/// An open chat socket.
pub struct ChatSocket {
    pub framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
}

/// What a socket yielded.
#[derive(Debug)]
pub enum Received {
    Event(Value),
    Closed(Option<u16>, String),
}

/// Opens `/api/agent/ws` with `query` (e.g. `ticket=…`).
pub async fn open(srv: &TestServer, query: &str) -> ChatSocket {
    let url = srv.url(&format!("/api/agent/ws?{query}")).replacen("http://", "ws://", 1);
    let (_res, framed) = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .ws(url)
        .max_frame_size(16 * 1024 * 1024)
        .connect()
        .await
        .expect("websocket upgrade");
    ChatSocket { framed }
}

pub async fn connect(srv: &TestServer, tenant: &str, user: &str) -> ChatSocket {
    let t = ticket(srv, tenant, user).await;
    open(srv, &format!("ticket={t}")).await
}

impl ChatSocket {
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.framed.send(ws::Message::Text(text.into().into())).await.expect("send frame");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_close(&mut self) {
        self.framed.send(ws::Message::Close(Some(ws::CloseCode::Normal.into()))).await.expect("send close");
    }

    /// The next event or the close; pings are answered, pongs skipped. Panics after 10 s of silence.
    pub async fn recv(&mut self) -> Received {
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(10), self.framed.next()).await.expect("a frame within 10 s");
            match frame {
                None => return Received::Closed(None, "stream ended".into()),
                Some(Err(e)) => return Received::Closed(None, format!("protocol error: {e}")),
                Some(Ok(ws::Frame::Text(bytes))) => {
                    let value: Value = serde_json::from_slice(&bytes).expect("event is JSON");
                    return Received::Event(value);
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    let code = reason.as_ref().map(|r| u16::from(r.code));
                    let text = reason.and_then(|r| r.description).unwrap_or_default();
                    return Received::Closed(code, text);
                }
                Some(Ok(ws::Frame::Ping(p))) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next event; panics on a close.
    pub async fn event(&mut self) -> Value {
        match self.recv().await {
            Received::Event(v) => v,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Events up to and including the first of type `last`.
    pub async fn events_until(&mut self, last: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let e = self.event().await;
            let done = e["type"] == last;
            events.push(e);
            if done {
                return events;
            }
        }
    }

    /// The close code (panics if an event comes first).
    pub async fn close_code(&mut self) -> (Option<u16>, String) {
        match self.recv().await {
            Received::Closed(code, text) => (code, text),
            Received::Event(e) => panic!("expected a close, got {e}"),
        }
    }
}

pub fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or("?").to_string()).collect()
}

pub fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
