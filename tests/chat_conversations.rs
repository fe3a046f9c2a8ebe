//! Conversations over REST and over the socket, isolated per tenant and user: someone else's
//! conversation answers 404 on REST, on the ticket endpoint, and when a chat names its id.
//! Runs on SQLite or PostgreSQL.

mod chat_support;
mod common;

use chat_support::*;
use common::{json_body, TestServer};
use serde_json::{json, Value};

async fn call(srv: &TestServer, method: &str, path: &str, jwt: Option<&str>) -> (u16, Value) {
    let client = srv.client();
    let mut req = match method {
        "DELETE" => client.delete(srv.url(path)),
        _ => client.get(srv.url(path)),
    };
    if let Some(t) = jwt {
        req = req.bearer_auth(t);
    }
    let mut res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = if status == 204 { Value::Null } else { json_body(&mut res).await };
    (status, body)
}

/// Chats once as `user` of `tenant`; the new conversation's id.
async fn chat_once(srv: &TestServer, tenant: &str, user: &str, message: &str) -> String {
    let mut socket = connect(srv, tenant, user).await;
    socket.send_json(json!({"type": "chat", "message": message})).await;
    let done = socket.events_until("done").await.pop().unwrap();
    socket.send_close().await;
    done["metadata"]["conversation_id"].as_str().unwrap().to_string()
}

#[actix_rt::test]
async fn conversations_are_listed_read_and_deleted_by_their_owner_only() {
    let srv = chat_server(false).await;
    let owner = token("acme", "alice");
    let id = chat_once(&srv, "acme", "alice", "First question").await;
    let second = chat_once(&srv, "acme", "alice", "Second question").await;

    let (status, list) = call(&srv, "GET", "/api/agent/conversations", Some(&owner)).await;
    assert_eq!(status, 200);
    let items = list["conversations"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.as_str(), "latest first");
    assert_eq!(items[1]["title"], "First question");
    assert_eq!(items[1]["message_count"], 2);
    let (_, page) = call(&srv, "GET", "/api/agent/conversations?limit=1&offset=1", Some(&owner)).await;
    assert_eq!(page["conversations"][0]["id"], id.as_str());
    let (status, _) = call(&srv, "GET", "/api/agent/conversations?limit=-1", Some(&owner)).await;
    assert_eq!(status, 400);

    let (status, one) = call(&srv, "GET", &format!("/api/agent/conversations/{id}"), Some(&owner)).await;
    assert_eq!(status, 200);
    let messages = one["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[0]["role"].as_str(), messages[0]["content"].as_str()), (Some("user"), Some("First question")));
    assert_eq!(messages[1]["role"], "assistant");
    assert!(messages[1]["content"].as_str().unwrap().contains("First question"));
    assert!(one["created_at"].as_str().unwrap().ends_with('Z'));

    // Another user of the same tenant, and the same user id in another tenant, see nothing.
    for stranger in [token("acme", "bob"), token("globex", "alice")] {
        let (_, list) = call(&srv, "GET", "/api/agent/conversations", Some(&stranger)).await;
        assert_eq!(list, json!({"conversations": []}));
        for method in ["GET", "DELETE"] {
            let (status, body) = call(&srv, method, &format!("/api/agent/conversations/{id}"), Some(&stranger)).await;
            assert_eq!((status, body), (404, json!({"detail": "Conversation not found"})), "{method}");
        }
    }
    let (status, _) = call(&srv, "GET", &format!("/api/agent/conversations/{id}"), Some(&owner)).await;
    assert_eq!(status, 200, "a stranger's DELETE changed nothing");

    let (status, _) = call(&srv, "DELETE", &format!("/api/agent/conversations/{id}"), Some(&owner)).await;
    assert_eq!(status, 204);
    let (status, _) = call(&srv, "GET", &format!("/api/agent/conversations/{id}"), Some(&owner)).await;
    assert_eq!(status, 404);
    let (status, _) = call(&srv, "DELETE", &format!("/api/agent/conversations/{id}"), Some(&owner)).await;
    assert_eq!(status, 404);
    let (_, list) = call(&srv, "GET", "/api/agent/conversations", Some(&owner)).await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
}

#[actix_rt::test]
async fn rest_needs_a_valid_jwt() {
    let srv = chat_server(false).await;
    let (status, body) = call(&srv, "GET", "/api/agent/conversations", None).await;
    assert_eq!((status, body), (401, json!({"detail": "Authorization header required"})));
    let expired = token_with(json!({"sub": "u", "tenant_id": "t", "exp": now_secs() - 3600}));
    let (status, body) = call(&srv, "GET", "/api/agent/conversations/x", Some(&expired)).await;
    assert_eq!((status, body), (401, json!({"detail": "Token has expired"})));
}

#[actix_rt::test]
async fn a_chat_naming_someone_elses_conversation_is_refused() {
    let srv = chat_server(true).await;
    let id = chat_once(&srv, "acme", "alice", "Private").await;

    let mut bob = connect(&srv, "acme", "bob").await;
    bob.send_json(json!({"type": "chat", "message": "let me in", "conversation_id": id})).await;
    let e = bob.event().await;
    assert_eq!(
        (e["type"].as_str(), e["error_type"].as_str(), e["content"].as_str()),
        (Some("error"), Some("validation_error"), Some("Conversation not found"))
    );
    bob.send_json(json!({"type": "chat", "message": "x", "conversation_id": "no-such-id"})).await;
    assert_eq!(bob.event().await["content"], "Conversation not found");

    // The ticket endpoint refuses binding a ticket to it, too.
    let (status, body, _) =
        request_ticket(&srv, Some(&token("globex", "alice")), Some(json!({"conversation_id": id}))).await;
    assert_eq!((status, body), (404, json!({"detail": "Conversation not found"})));

    // Alice's history is untouched.
    let (_, one) = call(&srv, "GET", &format!("/api/agent/conversations/{id}"), Some(&token("acme", "alice"))).await;
    assert_eq!(one["message_count"], 2);
}

#[actix_rt::test]
async fn a_ticket_bound_to_a_conversation_continues_it() {
    let srv = chat_server(false).await;
    let id = chat_once(&srv, "acme", "alice", "Start").await;
    let t = ticket_for(&srv, "acme", "alice", Some(&id)).await;
    let mut socket = open(&srv, &format!("ticket={t}")).await;
    socket.send_json(json!({"type": "chat", "message": "Continue"})).await;
    let done = socket.events_until("done").await.pop().unwrap();
    assert_eq!(done["metadata"]["conversation_id"], id.as_str());
    assert_eq!(done["metadata"]["message_count"], 4);
}

#[actix_rt::test]
async fn development_mode_acts_as_dev_user_everywhere() {
    let srv = TestServer::start_with(chat_options(false, &[("REQUIRE_AUTH", "false")])).await;
    let (status, body, _) = request_ticket(&srv, None, None).await;
    assert_eq!(status, 200);
    let mut socket = open(&srv, &format!("ticket={}", body["ticket"].as_str().unwrap())).await;
    socket.send_json(json!({"type": "chat", "message": "dev"})).await;
    socket.events_until("done").await;
    let (status, list) = call(&srv, "GET", "/api/agent/conversations", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["conversations"][0]["title"], "dev");
}
