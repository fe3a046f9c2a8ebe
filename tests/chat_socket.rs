//! The chat WebSocket against a real server: close codes (4001, 4003, 1000), one-time tickets under
//! 1,000 concurrent sockets, the demo orchestrator's event stream with its numbering, confirmation,
//! cancel, a new chat superseding the old, bad input that keeps the socket open, and the idle timeout.
//! Runs on SQLite or PostgreSQL, with Redis and with the TicketActor.

mod chat_support;
mod common;

use std::collections::HashSet;
use std::time::Duration;

use awc::ws;
use chat_support::*;
use common::{proxy::Proxy, redis_url, Options, TestServer};
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

fn assert_numbered(events: &[Value], first: u64) {
    let mut ids = HashSet::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"].as_u64(), Some(first + i as u64), "event {i}: {e}");
        let id = e["event_id"].as_str().expect("event_id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        assert!(ids.insert(id.to_string()), "event ids are unique");
    }
}

fn text_of(events: &[Value], kind: &str) -> String {
    events.iter().filter(|e| e["type"] == kind).filter_map(|e| e["content"].as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------------------------

async fn bad_tickets_close_with_4001(redis: bool) {
    let srv = chat_server(redis).await;
    for query in ["", "ticket=", "ticket=nonsense", &format!("ticket={}", "A".repeat(43))] {
        let mut socket = open(&srv, query).await;
        assert_eq!(socket.close_code().await, (Some(4001), "Invalid or expired ticket".to_string()), "{query:?}");
    }
    let t = ticket(&srv, "t", "u").await;
    let mut first = open(&srv, &format!("ticket={t}")).await;
    let mut reused = open(&srv, &format!("ticket={t}")).await;
    assert_eq!(reused.close_code().await.0, Some(4001), "a ticket opens one socket");
    first.send_json(json!({"type": "ping"})).await;
    assert_eq!(first.event().await, json!({"type": "pong"}));
}

#[actix_rt::test]
async fn missing_invalid_and_reused_tickets_close_with_4001_with_redis() {
    bad_tickets_close_with_4001(true).await;
}

#[actix_rt::test]
async fn missing_invalid_and_reused_tickets_close_with_4001_with_the_ticket_actor() {
    bad_tickets_close_with_4001(false).await;
}

async fn expired_ticket_closes_with_4001(redis: bool) {
    let srv = TestServer::start_with(chat_options(
        redis,
        &[("SWITCHYARD__CHAT__TICKET_TTL_SECONDS", "1"), ("SWITCHYARD__CHAT__TICKET_MAX_AGE_SECONDS", "1")],
    ))
    .await;
    let t = ticket(&srv, "t", "u").await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut socket = open(&srv, &format!("ticket={t}")).await;
    assert_eq!(socket.close_code().await.0, Some(4001));
}

#[actix_rt::test]
async fn an_expired_ticket_closes_with_4001_with_redis() {
    expired_ticket_closes_with_4001(true).await;
}

#[actix_rt::test]
async fn an_expired_ticket_closes_with_4001_with_the_ticket_actor() {
    expired_ticket_closes_with_4001(false).await;
}

#[actix_rt::test]
async fn an_unreachable_ticket_store_closes_with_4003() {
    let proxy = Proxy::start(&common::host_port(&redis_url())).await;
    let srv = TestServer::start_with(Options {
        redis_url: Some(format!("redis://{}", proxy.addr)),
        ..chat_options(true, &[])
    })
    .await;
    let t = ticket(&srv, "t", "u").await;
    proxy.down();
    let mut socket = open(&srv, &format!("ticket={t}")).await;
    assert_eq!(socket.close_code().await, (Some(4003), "Ticket auth not configured".to_string()));
}

#[actix_rt::test]
async fn a_client_close_ends_normally_with_1000() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_close().await;
    assert_eq!(socket.close_code().await.0, Some(1000));
}

async fn one_socket_per_ticket_among_1000(redis: bool) {
    // What is asserted is one-time consumption, not latency: on a loaded machine 1,000 consumers may wait
    // longer than the default second for a pooled Redis connection (and would rightly get 4003).
    let srv = TestServer::start_with(chat_options(
        redis,
        &[("SWITCHYARD__REDIS__TIMEOUT_MS", "20000"), ("SWITCHYARD__REDIS__POOL_SIZE", "32")],
    ))
    .await;
    let t = ticket(&srv, "t", "u").await;
    let attempts = (0..1000).map(|_| {
        let url = srv.url(&format!("/api/agent/ws?ticket={t}")).replacen("http://", "ws://", 1);
        async move {
            let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
            let (_, mut framed) = client.ws(url).connect().await.expect("upgrade");
            // The admitted socket answers a ping; the others are closed with 4001.
            let _ = framed.send(ws::Message::Text(r#"{"type":"ping"}"#.into())).await;
            loop {
                match tokio::time::timeout(Duration::from_secs(30), framed.next()).await {
                    Ok(Some(Ok(ws::Frame::Text(_)))) => return Ok(()),
                    Ok(Some(Ok(ws::Frame::Close(reason)))) => return Err(reason.map(|r| u16::from(r.code))),
                    Ok(Some(Ok(_))) => continue,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    });
    let results = join_all(attempts).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| **r == Err(Some(4001))).count();
    assert_eq!((admitted, refused), (1, 999));
}

#[actix_rt::test]
async fn one_of_1000_concurrent_sockets_gets_in_with_redis() {
    one_socket_per_ticket_among_1000(true).await;
}

#[actix_rt::test]
async fn one_of_1000_concurrent_sockets_gets_in_with_the_ticket_actor() {
    one_socket_per_ticket_among_1000(false).await;
}

#[actix_rt::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let srv = TestServer::start_with(chat_options(false, &[("SWITCHYARD__CHAT__IDLE_TIMEOUT_SECONDS", "1")])).await;
    let mut socket = connect(&srv, "t", "u").await;
    // Read raw frames without answering the server's pings.
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.framed.next().await {
                Some(Ok(ws::Frame::Close(reason))) => return reason.map(|r| u16::from(r.code)),
                Some(Ok(_)) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 5 s");
    assert_eq!(close, Some(1000));
}

// ---------------------------------------------------------------------------------------------
// The protocol with the demo orchestrator
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_chat_streams_thinking_a_tool_call_text_and_done_in_order() {
    let srv = chat_server(true).await;
    let mut socket = connect(&srv, "t-1", "u-1").await;
    socket.send_json(json!({"type": "chat", "message": "What is Switchyard?"})).await;
    let events = socket.events_until("done").await;
    assert_numbered(&events, 1);
    let kinds = types(&events);
    let first_tool = kinds.iter().position(|k| k == "tool_call_start").unwrap();
    let result = kinds.iter().position(|k| k == "tool_result").unwrap();
    let first_text = kinds.iter().position(|k| k == "text_delta").unwrap();
    assert!(kinds[..first_tool].iter().all(|k| k == "thinking_delta") && first_tool > 0, "{kinds:?}");
    assert!(first_tool < result && result < first_text, "{kinds:?}");
    assert!(kinds[first_text..kinds.len() - 1].iter().all(|k| k == "text_delta"), "{kinds:?}");
    assert_eq!(events[first_tool]["metadata"]["tool_name"], "search_knowledge_base");
    assert_eq!(events[first_tool]["metadata"]["tool_call_id"], events[result]["metadata"]["tool_call_id"]);
    assert!(text_of(&events, "text_delta").contains("What is Switchyard?"));
    let done = events.last().unwrap();
    assert_eq!(done["metadata"]["message_count"], 2);
    let conversation = done["metadata"]["conversation_id"].as_str().unwrap().to_string();

    // The same conversation continues; numbering continues on the connection.
    socket.send_json(json!({"type": "chat", "message": "And then?", "conversation_id": conversation})).await;
    let more = socket.events_until("done").await;
    assert_numbered(&more, events.len() as u64 + 1);
    assert_eq!(more.last().unwrap()["metadata"]["message_count"], 4);
    assert_eq!(more.last().unwrap()["metadata"]["conversation_id"], conversation.as_str());
    assert!(text_of(&more, "text_delta").contains("2 earlier messages"));
}

#[actix_rt::test]
async fn ping_gets_an_unnumbered_pong() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}));
    socket.send_text("{}").await;
    assert_eq!(socket.event().await["sequence"], 1, "pong took no number");
}

#[actix_rt::test]
async fn bad_input_gets_an_error_event_and_the_socket_stays_open() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    let oversized = format!(r#"{{"type":"chat","message":"{}"}}"#, "x".repeat(1024 * 1024));
    let cases: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "invalid_json", "Invalid JSON"),
        (r#"{"type":"dance"}"#.into(), "validation_error", "Unknown message type: dance"),
        (r#"{"message":"hi"}"#.into(), "validation_error", "type is required"),
        (r#"{"type":"chat","message":""}"#.into(), "validation_error", "must not be empty"),
        (r#"{"type":"chat","message":"  \n "}"#.into(), "validation_error", "must not be empty"),
        (r#"{"type":"chat"}"#.into(), "validation_error", "missing field `message`"),
        (
            json!({"type": "chat", "message": "é".repeat(10_001)}).to_string(),
            "validation_error",
            "at most 10000 characters",
        ),
        (oversized, "message_too_large", "at most 1048576 bytes"),
        (
            r#"{"type":"confirm","operation_id":"op_nope","confirmed":true}"#.into(),
            "validation_error",
            "No operation is waiting",
        ),
    ];
    let mut errors = Vec::new();
    for (frame, error_type, needle) in &cases {
        socket.send_text(frame.clone()).await;
        let e = socket.event().await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["error_type"], *error_type, "{e}");
        assert!(e["content"].as_str().unwrap().contains(needle), "{e}");
        errors.push(e);
    }
    socket.framed.send(ws::Message::Binary(bytes("{}"))).await.unwrap();
    let e = socket.event().await;
    assert_eq!((e["type"].as_str(), e["error_type"].as_str()), (Some("error"), Some("validation_error")));
    errors.push(e);
    assert_numbered(&errors, 1);

    // A message of exactly the limit is accepted.
    socket.send_json(json!({"type": "chat", "message": "é".repeat(10_000)})).await;
    assert_eq!(socket.events_until("done").await.last().unwrap()["type"], "done");
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}));
}

#[actix_rt::test]
async fn fragmented_messages_are_assembled_and_limited_as_a_whole() {
    use actix_http::ws::Item;
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    let parts = [r#"{"type":"#, r#""chat","mess"#, r#"age":"in pieces"}"#];
    socket.framed.send(ws::Message::Continuation(Item::FirstText(bytes(parts[0])))).await.unwrap();
    socket.framed.send(ws::Message::Continuation(Item::Continue(bytes(parts[1])))).await.unwrap();
    socket.framed.send(ws::Message::Continuation(Item::Last(bytes(parts[2])))).await.unwrap();
    let events = socket.events_until("done").await;
    assert!(text_of(&events, "text_delta").contains("in pieces"));

    let half = "y".repeat(600 * 1024);
    socket.framed.send(ws::Message::Continuation(Item::FirstText(bytes(&half)))).await.unwrap();
    socket.framed.send(ws::Message::Continuation(Item::Last(bytes(&half)))).await.unwrap();
    let e = socket.event().await;
    assert_eq!(e["error_type"], "message_too_large", "{e}");
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}));
}

#[actix_rt::test]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_text("z".repeat(4 * 1024 * 1024 + 1)).await;
    let e = socket.event().await;
    assert_eq!((e["type"].as_str(), e["error_type"].as_str()), (Some("error"), Some("fatal")));
    assert_eq!(socket.close_code().await.0, Some(1009));
}

async fn delete_request(socket: &mut ChatSocket) -> (Vec<Value>, String) {
    socket.send_json(json!({"type": "chat", "message": "Please delete report.pdf"})).await;
    let events = socket.events_until("confirmation_required").await;
    let ask = events.last().unwrap();
    assert_eq!(ask["metadata"]["risk_level"], "high");
    assert!(ask["content"].as_str().unwrap().contains("report.pdf"));
    let op = ask["metadata"]["operation_id"].as_str().unwrap().to_string();
    assert!(!types(&events).contains(&"tool_call_start".to_string()), "nothing runs before the answer");
    (events, op)
}

#[actix_rt::test]
async fn a_risky_operation_runs_only_after_confirmation() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    let (asked, op) = delete_request(&mut socket).await;
    socket.send_json(json!({"type": "confirm", "operation_id": "op_other", "confirmed": true})).await;
    assert_eq!(socket.event().await["error_type"], "validation_error");
    socket.send_json(json!({"type": "confirm", "operation_id": op, "confirmed": true})).await;
    let rest = socket.events_until("done").await;
    let kinds = types(&rest);
    assert_eq!(kinds[0], "tool_call_start", "{kinds:?}");
    assert_eq!(rest[0]["metadata"]["tool_name"], "delete_item");
    assert_eq!(rest[1]["metadata"]["result"]["deleted"], true);
    assert!(text_of(&rest, "text_delta").contains("I deleted \"report.pdf\""));
    assert_numbered(&rest, asked.len() as u64 + 2);
}

#[actix_rt::test]
async fn a_declined_operation_does_not_run() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    let (_, op) = delete_request(&mut socket).await;
    socket.send_json(json!({"type": "confirm", "operation_id": op, "confirmed": false})).await;
    let rest = socket.events_until("done").await;
    assert!(!types(&rest).contains(&"tool_call_start".to_string()));
    assert!(text_of(&rest, "text_delta").contains("did not delete"));
    socket.send_json(json!({"type": "confirm", "operation_id": op, "confirmed": true})).await;
    assert_eq!(socket.event().await["error_type"], "validation_error", "an answer counts once");
}

fn slow_server_options(redis: bool) -> Options {
    chat_options(redis, &[("SWITCHYARD__CHAT__DEMO_DELAY_MS", "40")])
}

#[actix_rt::test]
async fn cancel_stops_the_answer() {
    let srv = TestServer::start_with(slow_server_options(false)).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_json(json!({"type": "chat", "message": "a long answer please"})).await;
    let first = socket.event().await;
    assert_eq!(first["type"], "thinking_delta");
    socket.send_json(json!({"type": "cancel"})).await;
    // Events already on their way may precede it; nothing of the turn follows it.
    let events = socket.events_until("cancelled").await;
    assert_eq!(events.last().unwrap()["metadata"]["reason"], "user");
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}), "the turn sent nothing more");
    socket.send_json(json!({"type": "cancel"})).await;
    assert_eq!(socket.event().await["metadata"]["reason"], "nothing_running");
}

#[actix_rt::test]
async fn a_new_chat_cancels_the_one_in_progress() {
    let srv = TestServer::start_with(slow_server_options(false)).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_json(json!({"type": "chat", "message": "first question"})).await;
    let first = socket.event().await;
    assert_eq!(first["type"], "thinking_delta");
    socket.send_json(json!({"type": "chat", "message": "second question"})).await;
    let mut before = vec![first];
    before.extend(socket.events_until("cancelled").await);
    assert_eq!(before.last().unwrap()["metadata"]["reason"], "superseded");
    let after = socket.events_until("done").await;
    let text = text_of(&after, "text_delta");
    assert!(text.contains("second question") && !text.contains("first question"), "{text}");
    let mut all = before.clone();
    all.extend(after);
    assert_numbered(&all, 1);
    assert_eq!(all.iter().filter(|e| e["type"] == "done").count(), 1);
}

#[actix_rt::test]
async fn a_graceful_shutdown_closes_chat_sockets_with_1001() {
    let srv = chat_server(false).await;
    let mut socket = connect(&srv, "t", "u").await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await, json!({"type": "pong"}));
    let started = std::time::Instant::now();
    let shutdown = srv.shutdown.clone();
    let stopping = actix_web::rt::spawn(async move { shutdown.run().await });
    assert_eq!(socket.close_code().await, (Some(1001), switchyard::server::SHUTDOWN_REASON.to_string()));
    actix_rt::time::timeout(std::time::Duration::from_secs(10), stopping).await.expect("shutdown finishes").unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the open chat socket did not hold the shutdown up");
}
