//! The HTTP orchestrator against a real upstream agent (an actix-web server started here that streams
//! NDJSON): events are relayed in order and numbered, confirmations and cancels reach the upstream,
//! and upstream failures become recoverable error events. Runs on SQLite or PostgreSQL.

mod chat_support;
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use chat_support::*;
use common::TestServer;
use futures_util::stream;
use serde_json::{json, Value};

/// What the upstream saw.
#[derive(Default)]
struct Seen {
    requests: Vec<Value>,
    cancels: Vec<Value>,
    confirms: Vec<Value>,
    disconnected: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn line(v: Value) -> web::Bytes {
    web::Bytes::from(format!("{v}\n"))
}

/// Streams the lines a producer task sends; the task learns of a disconnect when a send fails.
fn ndjson(rx: tokio::sync::mpsc::Receiver<web::Bytes>) -> HttpResponse {
    let body = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx)) });
    HttpResponse::Ok().content_type("application/x-ndjson").streaming(body)
}

async fn agent(seen: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    let request = body.into_inner();
    seen.lock().unwrap().requests.push(request.clone());
    let run_id = request["run_id"].as_str().unwrap_or_default().to_string();
    let message = request["message"].as_str().unwrap_or_default().to_string();
    if message == "500" {
        return HttpResponse::InternalServerError().body("boom");
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let seen = seen.get_ref().clone();
    actix_rt::spawn(async move {
        let send = |v: Value| {
            let tx = tx.clone();
            async move { tx.send(line(v)).await.is_ok() }
        };
        match message.as_str() {
            "hello" => {
                send(json!({"type": "thinking_delta", "content": "Thinking upstream"})).await;
                send(json!({"type": "tool_call_start", "content": "lookup", "metadata": {"tool_call_id": "tc-1", "tool_name": "lookup", "arguments": {"q": "hello"}}})).await;
                send(json!({"type": "tool_result", "metadata": {"tool_call_id": "tc-1", "tool_name": "lookup", "result": {"found": 1}}})).await;
                // A line split across writes, and noise the relay must skip.
                let _ = tx.send(web::Bytes::from_static(b"{\"type\":\"text_delta\",")).await;
                let _ = tx.send(web::Bytes::from_static(b"\"content\":\"Hello \"}\n\nnot json\n")).await;
                send(json!({"type": "mystery"})).await;
                send(json!({"type": "text_delta", "content": "from upstream"})).await;
                send(json!({"type": "done"})).await;
                send(json!({"type": "text_delta", "content": "after done: never relayed"})).await;
            }
            "slow" => {
                let mut i = 0;
                while send(json!({"type": "text_delta", "content": format!("{i} ")})).await {
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                seen.lock().unwrap().disconnected.push(run_id);
            }
            "risky" => {
                send(json!({"type": "confirmation_required", "content": "Drop the table?", "metadata": {"operation_id": "op-1", "risk_level": "critical"}})).await;
                let answer = loop {
                    if let Some(c) = seen.lock().unwrap().confirms.iter().find(|c| c["run_id"] == run_id.as_str()) {
                        break c["confirmed"].as_bool().unwrap_or(false);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                };
                send(json!({"type": "text_delta", "content": format!("confirmed: {answer}")})).await;
            }
            "fail" => {
                send(json!({"type": "text_delta", "content": "partial"})).await;
                send(json!({"type": "error", "content": "Upstream is overloaded"})).await;
            }
            _ => {}
        }
    });
    ndjson(rx)
}

async fn cancel(seen: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    seen.lock().unwrap().cancels.push(body.into_inner());
    HttpResponse::NoContent().finish()
}

async fn confirm(seen: web::Data<Shared>, body: web::Json<Value>) -> HttpResponse {
    seen.lock().unwrap().confirms.push(body.into_inner());
    HttpResponse::NoContent().finish()
}

/// A running upstream agent and what it saw.
struct Upstream {
    url: String,
    seen: Shared,
}

fn start_upstream() -> Upstream {
    let seen: Shared = Arc::default();
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/agent", web::post().to(agent))
            .route("/agent/cancel", web::post().to(cancel))
            .route("/agent/confirm", web::post().to(confirm))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind upstream");
    let addr = server.addrs()[0];
    actix_rt::spawn(server.run());
    Upstream { url: format!("http://{addr}/agent"), seen }
}

async fn relay_server(url: &str) -> TestServer {
    TestServer::start_with(chat_options(
        false,
        &[("SWITCHYARD__CHAT__ORCHESTRATOR", "http"), ("ORCHESTRATOR_URL", url)],
    ))
    .await
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix_rt::test]
async fn upstream_events_are_relayed_in_order_and_stored() {
    let upstream = start_upstream();
    let srv = relay_server(&upstream.url).await;
    let mut socket = connect(&srv, "acme", "alice").await;
    socket.send_json(json!({"type": "chat", "message": "hello"})).await;
    let events = socket.events_until("done").await;
    assert_eq!(
        types(&events),
        ["thinking_delta", "tool_call_start", "tool_result", "text_delta", "text_delta", "done"]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"], i as u64 + 1);
        assert!(e["event_id"].is_string());
    }
    assert_eq!(
        events[1]["metadata"],
        json!({"tool_call_id": "tc-1", "tool_name": "lookup", "arguments": {"q": "hello"}})
    );
    assert_eq!(events[2]["metadata"]["result"], json!({"found": 1}));
    assert_eq!(events[3]["content"], "Hello ");
    let conversation = events[5]["metadata"]["conversation_id"].as_str().unwrap().to_string();
    assert_eq!(events[5]["metadata"]["message_count"], 2);

    let request = upstream.seen.lock().unwrap().requests[0].clone();
    assert_eq!(request["tenant_id"], "acme");
    assert_eq!(request["user_id"], "alice");
    assert_eq!(request["conversation_id"], conversation.as_str());
    assert_eq!(request["history"], json!([]));
    assert!(request["run_id"].as_str().unwrap().starts_with("run_"));

    // The stored answer is the relayed text, and the next turn carries the history.
    socket.send_json(json!({"type": "chat", "message": "hello", "conversation_id": conversation})).await;
    socket.events_until("done").await;
    let request = upstream.seen.lock().unwrap().requests[1].clone();
    assert_eq!(
        request["history"],
        json!([{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hello from upstream"}])
    );
}

#[actix_rt::test]
async fn a_cancel_reaches_the_upstream() {
    let upstream = start_upstream();
    let srv = relay_server(&upstream.url).await;
    let mut socket = connect(&srv, "acme", "alice").await;
    socket.send_json(json!({"type": "chat", "message": "slow"})).await;
    assert_eq!(socket.event().await["type"], "text_delta");
    socket.send_json(json!({"type": "cancel"})).await;
    let events = socket.events_until("cancelled").await;
    assert_eq!(events.last().unwrap()["metadata"]["reason"], "user");

    let run_id = upstream.seen.lock().unwrap().requests[0]["run_id"].clone();
    let seen = upstream.seen.clone();
    eventually("the cancel call", || seen.lock().unwrap().cancels.iter().any(|c| c["run_id"] == run_id)).await;
    let expected = run_id.as_str().unwrap().to_string();
    eventually("the stream to be dropped", || seen.lock().unwrap().disconnected.contains(&expected)).await;
}

#[actix_rt::test]
async fn a_superseded_or_abandoned_turn_is_cancelled_upstream() {
    let upstream = start_upstream();
    let srv = relay_server(&upstream.url).await;
    let mut socket = connect(&srv, "acme", "alice").await;
    socket.send_json(json!({"type": "chat", "message": "slow"})).await;
    socket.event().await;
    socket.send_json(json!({"type": "chat", "message": "slow"})).await;
    socket.events_until("cancelled").await;
    socket.event().await;
    socket.send_close().await;
    let seen = upstream.seen.clone();
    eventually("both runs cancelled", || seen.lock().unwrap().cancels.len() == 2).await;
}

#[actix_rt::test]
async fn a_confirmation_is_relayed_to_the_upstream() {
    let upstream = start_upstream();
    let srv = relay_server(&upstream.url).await;
    let mut socket = connect(&srv, "acme", "alice").await;
    socket.send_json(json!({"type": "chat", "message": "risky"})).await;
    let ask = socket.event().await;
    assert_eq!(ask["type"], "confirmation_required");
    assert_eq!(ask["metadata"]["operation_id"], "op-1");
    assert_eq!(ask["metadata"]["risk_level"], "critical");
    socket.send_json(json!({"type": "confirm", "operation_id": "op-1", "confirmed": true})).await;
    let rest = socket.events_until("done").await;
    assert_eq!(rest[0]["content"], "confirmed: true");
    let confirm = upstream.seen.lock().unwrap().confirms[0].clone();
    let run_id = upstream.seen.lock().unwrap().requests[0]["run_id"].clone();
    assert_eq!(confirm, json!({"run_id": run_id, "operation_id": "op-1", "confirmed": true}));
}

#[actix_rt::test]
async fn upstream_failures_are_recoverable_errors() {
    let upstream = start_upstream();
    let srv = relay_server(&upstream.url).await;
    let mut socket = connect(&srv, "acme", "alice").await;

    socket.send_json(json!({"type": "chat", "message": "fail"})).await;
    let events = socket.events_until("error").await;
    let e = events.last().unwrap();
    assert_eq!(
        (e["error_type"].as_str(), e["content"].as_str()),
        (Some("recoverable"), Some("Upstream is overloaded"))
    );

    socket.send_json(json!({"type": "chat", "message": "500"})).await;
    let e = socket.event().await;
    assert_eq!(e["error_type"], "recoverable");
    assert!(!e["content"].as_str().unwrap().contains("500"), "no upstream detail leaks: {e}");

    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}));
}

#[actix_rt::test]
async fn an_unreachable_upstream_is_a_recoverable_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let srv = relay_server(&format!("http://127.0.0.1:{port}/agent")).await;
    let mut socket = connect(&srv, "acme", "alice").await;
    socket.send_json(json!({"type": "chat", "message": "anyone?"})).await;
    let e = socket.event().await;
    assert_eq!((e["type"].as_str(), e["error_type"].as_str()), (Some("error"), Some("recoverable")));
}
