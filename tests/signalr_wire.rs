//! SignalR at the wire: negotiate shapes, transport status codes, and robustness against bad input.
//! Raw HTTP and WebSocket clients, so that each byte the server sends is checked; the official clients
//! are exercised by tests/node and tests/python.

mod common;

use std::time::Duration;

use actix_web::web::Bytes;
use awc::ws;
use common::ws::{handshake_json, invoke, next_data, open_ws, read_until, RS};
use common::{json_body, Options, TestServer, MASTER_KEY};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

async fn conformance_server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("SWITCHYARD__SIGNALR__CONFORMANCE".to_string(), "true".to_string())];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestServer::start_with(Options { env, ..Options::default() }).await
}

async fn stats(srv: &TestServer) -> Value {
    let mut res =
        srv.client().get(srv.url("/api/stats")).insert_header(("X-API-Key", MASTER_KEY)).send().await.unwrap();
    json_body(&mut res).await
}

fn hub_stats<'a>(stats: &'a Value, path: &str) -> &'a Value {
    stats["hubs"].as_array().unwrap().iter().find(|h| h["path"] == path).unwrap()
}

/// Waits until /testhub has no connections and no group entries left.
async fn assert_no_leaks(srv: &TestServer) {
    let mut last = Value::Null;
    for _ in 0..60 {
        let s = stats(srv).await;
        let hub = hub_stats(&s, "/testhub").clone();
        if hub["connections"] == 0 && hub["groupEntries"] == 0 {
            return;
        }
        last = hub;
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("connections leaked: {last}");
}

#[actix_rt::test]
async fn negotiate_answers_versions_zero_and_one() {
    let srv = conformance_server(&[]).await;
    let client = srv.client();
    let mut res = client.post(srv.url("/testhub/negotiate?NegotiateVersion=1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v1 = json_body(&mut res).await;
    assert_eq!(v1["negotiateVersion"], 1);
    let token = v1["connectionToken"].as_str().unwrap();
    assert_ne!(token, v1["connectionId"].as_str().unwrap(), "the token is secret, the id is public");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "URL-safe token");
    assert!(v1.get("ProtocolVersion").is_none() && v1.get("url").is_none());
    let transports: Vec<&str> =
        v1["availableTransports"].as_array().unwrap().iter().map(|t| t["transport"].as_str().unwrap()).collect();
    assert_eq!(transports, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    assert_eq!(v1["availableTransports"][0]["transferFormats"], json!(["Text", "Binary"]));
    assert_eq!(v1["availableTransports"][1]["transferFormats"], json!(["Text"]));

    let mut res = client.post(srv.url("/testhub/negotiate")).send().await.unwrap();
    let v0 = json_body(&mut res).await;
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none(), "version 0 has no token");
    // A version-0 client addresses its connection by connectionId.
    let id = v0["connectionId"].as_str().unwrap();
    let first_poll = client.get(srv.url(&format!("/testhub?id={id}"))).send().await.unwrap();
    assert_eq!(first_poll.status(), 200);

    let mut res =
        client.post(srv.url("/testhub/negotiate?negotiateVersion=1&useStatefulReconnect=true")).send().await.unwrap();
    assert_eq!(json_body(&mut res).await["useStatefulReconnect"], true);
}

#[actix_rt::test]
async fn transports_answer_with_the_status_codes_clients_expect() {
    let srv = conformance_server(&[]).await;
    let client = srv.client();
    let res = client.get(srv.url("/testhub?id=nope")).send().await.unwrap();
    assert_eq!(res.status(), 404, "unknown id");
    let ws_url = srv.url("/testhub?id=nope").replacen("http", "ws", 1);
    assert!(client.ws(ws_url).connect().await.is_err(), "unknown id on a WebSocket is refused");

    // WebSocket connection: a second socket is 409, a POST is 405.
    let mut res = client.post(srv.url("/testhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    let token = json_body(&mut res).await["connectionToken"].as_str().unwrap().to_string();
    let first_socket = open_ws(&srv, &format!("/testhub?id={token}")).await;
    let second = client.ws(srv.url(&format!("/testhub?id={token}")).replacen("http", "ws", 1)).connect().await;
    match second {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => assert_eq!(status, 409),
        other => panic!("second socket must get 409, got {:?}", other.map(|(r, _)| r.status())),
    }
    let res = client.post(srv.url(&format!("/testhub?id={token}"))).send_body("x").await.unwrap();
    assert_eq!(res.status(), 405);
    drop(first_socket);

    // Long polling: first poll 200 empty at once; DELETE 202 ends the open poll with 204.
    let mut res = client.post(srv.url("/testhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    let token = json_body(&mut res).await["connectionToken"].as_str().unwrap().to_string();
    let poll_url = srv.url(&format!("/testhub?id={token}"));
    let mut first = client.get(&poll_url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.body().await.unwrap().is_empty());
    let send = client.post(&poll_url).send_body(format!("{{\"protocol\":\"json\",\"version\":1}}{RS}")).await.unwrap();
    assert_eq!(send.status(), 200);
    let mut handshake = client.get(&poll_url).send().await.unwrap();
    assert_eq!(handshake.body().await.unwrap(), Bytes::from(format!("{{}}{RS}")));
    let open_poll = client.get(&poll_url).send();
    let delete = async {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        client.delete(&poll_url).send().await.unwrap()
    };
    let (polled, deleted) = tokio::join!(open_poll, delete);
    assert_eq!(deleted.status(), 202);
    assert_eq!(polled.unwrap().status(), 204);
    assert_no_leaks(&srv).await;
}

#[actix_rt::test]
async fn server_sent_events_frame_each_message_as_data_lines() {
    let srv = conformance_server(&[]).await;
    let client = srv.client();
    let mut res = client.post(srv.url("/testhub/negotiate?negotiateVersion=1")).send().await.unwrap();
    let token = json_body(&mut res).await["connectionToken"].as_str().unwrap().to_string();
    let url = srv.url(&format!("/testhub?id={token}"));
    let mut stream = client.get(&url).insert_header(("Accept", "text/event-stream")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers().get("content-type").unwrap(), "text/event-stream");
    client.post(&url).send_body(format!("{{\"protocol\":\"json\",\"version\":1}}{RS}")).await.unwrap();
    let invocation = json!({"type": 1, "invocationId": "1", "target": "Echo", "arguments": ["sse"]});
    client.post(&url).send_body(format!("{invocation}{RS}")).await.unwrap();
    let mut text = String::new();
    while !text.contains("\"result\":\"sse\"") {
        let chunk = actix_rt::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with(":\r\n"), "the stream opens with a comment: {text:?}");
    assert!(text.contains(&format!("data: {{}}{RS}\r\n\r\n")), "handshake as a data line: {text:?}");
    assert!(text.contains("data: {\"type\":3,\"invocationId\":\"1\",\"result\":\"sse\"}"), "{text:?}");
}

#[actix_rt::test]
async fn bad_handshakes_get_the_protocol_error_and_a_close() {
    let srv = conformance_server(&[]).await;
    let cases: [(&str, &str); 4] = [
        ("garbage before", "xx{\"protocol\":\"json\",\"version\":1}\u{1e}"),
        ("not json", "hello\u{1e}"),
        ("unknown protocol", "{\"protocol\":\"xml\",\"version\":1}\u{1e}"),
        ("future version", "{\"protocol\":\"json\",\"version\":3}\u{1e}"),
    ];
    for (name, handshake) in cases {
        let mut framed = open_ws(&srv, "/testhub").await;
        framed.send(ws::Message::Text(handshake.into())).await.unwrap();
        let reply = next_data(&mut framed).await.unwrap_or_else(|| panic!("{name}: a handshake response"));
        let text = String::from_utf8_lossy(&reply);
        assert!(text.ends_with(RS), "{name}: {text}");
        let body: Value = serde_json::from_str(text.trim_end_matches(RS)).unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{name}: {body}");
        assert!(next_data(&mut framed).await.is_none(), "{name}: then the socket closes");
    }
    let mut framed = open_ws(&srv, "/testhub").await;
    framed.send(ws::Message::Text("{\"protocol\":\"xml\",\"version\":1}\u{1e}".into())).await.unwrap();
    let reply = next_data(&mut framed).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&reply), "{\"error\":\"The protocol 'xml' is not supported.\"}\u{1e}");
    assert_no_leaks(&srv).await;
}

#[actix_rt::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let srv = conformance_server(&[("SWITCHYARD__SIGNALR__HANDSHAKE_TIMEOUT_SECONDS", "1")]).await;
    let mut framed = open_ws(&srv, "/testhub").await;
    let started = std::time::Instant::now();
    assert!(next_data(&mut framed).await.is_none(), "closed without a handshake response");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_no_leaks(&srv).await;
}

#[actix_rt::test]
async fn bad_messages_get_errors_and_the_server_keeps_serving() {
    let srv = conformance_server(&[]).await;
    let mut bystander = open_ws(&srv, "/testhub").await;
    handshake_json(&mut bystander).await;

    // Unknown method and wrong-typed argument: Completion errors, connection stays.
    let mut framed = open_ws(&srv, "/testhub").await;
    handshake_json(&mut framed).await;
    let reply = invoke(&mut framed, "1", "NoSuchMethod", json!([])).await;
    assert_eq!(
        reply["error"],
        "Failed to invoke 'NoSuchMethod' due to an error on the server. HubException: Method does not exist."
    );
    let reply = invoke(&mut framed, "2", "Echo", json!([{"not": "a string"}])).await;
    assert!(
        reply["error"].as_str().unwrap().starts_with("Failed to invoke 'Echo' due to an error on the server."),
        "{reply}"
    );
    let reply = invoke(&mut framed, "3", "Echo", json!(["a", "b"])).await;
    assert!(
        reply["error"].as_str().unwrap().contains("Invocation provides 2 argument(s) but target expects 1."),
        "{reply}"
    );
    let reply = invoke(&mut framed, "4", "echo", json!(["case-insensitive"])).await;
    assert_eq!(reply["result"], "case-insensitive");

    // An oversized message closes with the size error.
    let big = "x".repeat(40 * 1024);
    let msg = json!({"type": 1, "invocationId": "5", "target": "Echo", "arguments": [big]});
    framed.send(ws::Message::Text(format!("{msg}{RS}").into())).await.unwrap();
    let close = read_until(&mut framed, |m| m["type"] == 7).await;
    assert!(close["error"].as_str().unwrap().contains("maximum message size of 32768B"), "{close}");
    assert!(next_data(&mut framed).await.is_none());

    // A truncated MessagePack array closes with a protocol error.
    let mut framed = open_ws(&srv, "/testhub").await;
    framed.send(ws::Message::Text(format!("{{\"protocol\":\"messagepack\",\"version\":1}}{RS}").into())).await.unwrap();
    assert_eq!(next_data(&mut framed).await.unwrap(), Bytes::from(format!("{{}}{RS}")));
    // Length 4, then an array that announces 6 elements but carries 2.
    framed.send(ws::Message::Binary(Bytes::from_static(&[0x04, 0x96, 0x01, 0x80, 0xc0]))).await.unwrap();
    let data = next_data(&mut framed).await.expect("a Close message");
    assert_eq!(data[1], 0x93, "a 3-element Close array");
    assert_eq!(data[2], 0x07);
    assert!(next_data(&mut framed).await.is_none());

    // Garbage instead of JSON after the handshake.
    let mut framed = open_ws(&srv, "/testhub").await;
    handshake_json(&mut framed).await;
    framed.send(ws::Message::Text(format!("{{not json{RS}").into())).await.unwrap();
    let close = read_until(&mut framed, |m| m["type"] == 7).await;
    assert!(close["error"].as_str().unwrap().starts_with("Connection closed with an error."), "{close}");

    let reply = invoke(&mut bystander, "9", "Echo", json!(["still here"])).await;
    assert_eq!(reply["result"], "still here");
    drop(bystander);
    assert_no_leaks(&srv).await;
}

#[actix_rt::test]
async fn one_message_split_across_frames_and_several_in_one_frame() {
    let srv = conformance_server(&[]).await;
    let mut framed = open_ws(&srv, "/testhub").await;
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    let a = json!({"type": 1, "invocationId": "a", "target": "Echo", "arguments": ["1"]});
    let b = json!({"type": 1, "invocationId": "b", "target": "Echo", "arguments": ["2"]});
    // Handshake and two invocations in one frame.
    framed.send(ws::Message::Text(format!("{handshake}{a}{RS}{b}{RS}").into())).await.unwrap();
    let first = read_until(&mut framed, |m| m["invocationId"] == "a").await;
    assert_eq!(first["result"], "1");
    // One invocation in two frames.
    let c = format!("{}{RS}", json!({"type": 1, "invocationId": "c", "target": "Echo", "arguments": ["3"]}));
    let (head, tail) = c.split_at(10);
    framed.send(ws::Message::Text(head.to_string().into())).await.unwrap();
    framed.send(ws::Message::Text(tail.to_string().into())).await.unwrap();
    let third = read_until(&mut framed, |m| m["invocationId"] == "c").await;
    assert_eq!(third["result"], "3");
}

#[actix_rt::test]
async fn a_thousand_abandoned_connections_leave_nothing_behind() {
    let srv = conformance_server(&[]).await;
    let mut keeper = open_ws(&srv, "/testhub").await;
    handshake_json(&mut keeper).await;
    for batch in 0..10 {
        let mut sockets = Vec::new();
        for _ in 0..100 {
            let mut framed = open_ws(&srv, "/testhub").await;
            if batch % 2 == 0 {
                handshake_json(&mut framed).await;
            }
            sockets.push(framed);
        }
        // Dropped without a close frame or a Close message.
        drop(sockets);
    }
    let reply = invoke(&mut keeper, "k", "Echo", json!(["alive"])).await;
    assert_eq!(reply["result"], "alive");
    drop(keeper);
    assert_no_leaks(&srv).await;
}

#[actix_rt::test]
async fn a_client_that_stops_reading_is_closed_as_a_slow_consumer() {
    let srv = conformance_server(&[("SWITCHYARD__SIGNALR__MAX_OUTGOING_QUEUE", "16")]).await;
    let before = stats(&srv).await["slowConsumersDropped"].as_u64().unwrap();
    let mut framed = open_ws(&srv, "/testhub").await;
    handshake_json(&mut framed).await;
    let msg = json!({"type": 1, "invocationId": "s", "target": "SendSequence", "arguments": [100000, 0]});
    framed.send(ws::Message::Text(format!("{msg}{RS}").into())).await.unwrap();
    // Never read again: the socket's buffers fill, then the bounded queue.
    let mut dropped = before;
    for _ in 0..80 {
        actix_rt::time::sleep(Duration::from_millis(250)).await;
        dropped = stats(&srv).await["slowConsumersDropped"].as_u64().unwrap();
        if dropped > before {
            break;
        }
    }
    assert!(dropped > before, "the slow consumer was dropped");
    drop(framed);
    assert_no_leaks(&srv).await;
}
